// The KV cache's storage forms, read by the attention kernels (#include "kv_cache" after their
// params, which give n_kv_heads and head_dim: a cache row holds width = n_kv_heads * head_dim values).
// Declares k_cache and v_cache at bindings 3 and 4, and k_at/v_at (one value) and k4/v4 (four
// values from a multiple of 4) by cache row and column.
// Variants: (none) f32     [cache_rows, width] f32
//           KV_F16         [cache_rows, width / 2] u32: pairs of f16 (pack2x16float), width even
//           KV_Q8_0        [cache_rows, row_words] u32: width / 32 ggml Q8_0 blocks per row (34
//                          bytes: f16 d, then 32 i8; x = d * q), as llama.cpp lays them out, each
//                          row padded to a whole word (2 bytes where its block count is odd)
// KV_SCALAR declares the f32 form as array<f32> (k_at, v_at); otherwise as array<vec4<f32>> (k4, v4).

#ifdef KV_F16
@group(0) @binding(3) var<storage, read> k_cache: array<u32>;
@group(0) @binding(4) var<storage, read> v_cache: array<u32>;

fn kv_width() -> u32 { return params.n_kv_heads * params.head_dim; }
fn kv_half(word: u32, col: u32) -> f32 { let h = unpack2x16float(word); return select(h.x, h.y, (col & 1u) != 0u); }
fn k_at(row: u32, col: u32) -> f32 { let i = row * kv_width() + col; return kv_half(k_cache[i >> 1u], i); }
fn v_at(row: u32, col: u32) -> f32 { let i = row * kv_width() + col; return kv_half(v_cache[i >> 1u], i); }
fn k4(row: u32, col: u32) -> vec4<f32> {
  let w = (row * kv_width() + col) >> 1u;
  return vec4<f32>(unpack2x16float(k_cache[w]), unpack2x16float(k_cache[w + 1u]));
}
fn v4(row: u32, col: u32) -> vec4<f32> {
  let w = (row * kv_width() + col) >> 1u;
  return vec4<f32>(unpack2x16float(v_cache[w]), unpack2x16float(v_cache[w + 1u]));
}
#else
#ifdef KV_Q8_0
@group(0) @binding(3) var<storage, read> k_cache: array<u32>;
@group(0) @binding(4) var<storage, read> v_cache: array<u32>;

// Byte offset of column col's block in row row: rows are (width / 32) * 34 bytes rounded up to a word.
fn kv_block(row: u32, col: u32) -> u32 {
  let row_words = ((params.n_kv_heads * params.head_dim / 32u) * 34u + 3u) / 4u;
  return row * row_words * 4u + (col >> 5u) * 34u;
}
// The f16 at byte b (even), from the word holding it.
fn kv_half_at(word: u32, b: u32) -> f32 { let h = unpack2x16float(word); return select(h.x, h.y, (b & 2u) != 0u); }
fn kv_i8(word: u32, b: u32) -> f32 { return f32(extractBits(bitcast<i32>(word), (b & 3u) * 8u, 8u)); }
// Four i8 from byte b (even): one word, or the upper half of one joined to the lower half of the next.
fn kv_i8x4(w0: u32, w1: u32, b: u32) -> vec4<f32> {
  let w = select((w0 >> 16u) | (w1 << 16u), w0, (b & 2u) == 0u);
  let i = bitcast<i32>(w);
  return vec4<f32>(f32(extractBits(i, 0u, 8u)), f32(extractBits(i, 8u, 8u)), f32(extractBits(i, 16u, 8u)), f32(extractBits(i, 24u, 8u)));
}
fn k_at(row: u32, col: u32) -> f32 {
  let b = kv_block(row, col);
  let q = b + 2u + (col & 31u);
  return kv_half_at(k_cache[b >> 2u], b) * kv_i8(k_cache[q >> 2u], q);
}
fn v_at(row: u32, col: u32) -> f32 {
  let b = kv_block(row, col);
  let q = b + 2u + (col & 31u);
  return kv_half_at(v_cache[b >> 2u], b) * kv_i8(v_cache[q >> 2u], q);
}
fn k4(row: u32, col: u32) -> vec4<f32> {
  let b = kv_block(row, col);
  let q = b + 2u + (col & 31u);
  return kv_half_at(k_cache[b >> 2u], b) * kv_i8x4(k_cache[q >> 2u], k_cache[(q >> 2u) + 1u], q);
}
fn v4(row: u32, col: u32) -> vec4<f32> {
  let b = kv_block(row, col);
  let q = b + 2u + (col & 31u);
  return kv_half_at(v_cache[b >> 2u], b) * kv_i8x4(v_cache[q >> 2u], v_cache[(q >> 2u) + 1u], q);
}
#else
#ifdef KV_SCALAR
@group(0) @binding(3) var<storage, read> k_cache: array<f32>;
@group(0) @binding(4) var<storage, read> v_cache: array<f32>;

fn k_at(row: u32, col: u32) -> f32 { return k_cache[row * params.n_kv_heads * params.head_dim + col]; }
fn v_at(row: u32, col: u32) -> f32 { return v_cache[row * params.n_kv_heads * params.head_dim + col]; }
#else
@group(0) @binding(3) var<storage, read> k_cache: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> v_cache: array<vec4<f32>>;

fn k4(row: u32, col: u32) -> vec4<f32> { return k_cache[(row * params.n_kv_heads * params.head_dim + col) >> 2u]; }
fn v4(row: u32, col: u32) -> vec4<f32> { return v_cache[(row * params.n_kv_heads * params.head_dim + col) >> 2u]; }
#endif
#endif
#endif
