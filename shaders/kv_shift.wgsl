// A context shift's move of one layer's K or V cache (Forward.shift): rows src .. src + rows - 1
// go to rows dst .. dst + rows - 1, in the cache's own form (kv_cache.wgsl). dst < src and
// rows <= src - dst, so that no row is both read and written by one dispatch.
// Bindings: 0 step (unused), 1 params (uniform Params {src, dst, rows, width, head_dim, rope_dim,
//             row_words, heads_per_unit}: written before each shift, shared by every layer),
//           2 cache [cache_rows, row_words] u32: the rows of any form, as words,
//           3 (ROTATE) table [rope_dim / 2] vec2<f32>: (cos, sin) of -delta * theta_i, computed on the
//             host in f64 (no attn_factor: the cached K already carries it once)
// Variants: (none) rows copied verbatim, one invocation per word: V, and K of layers without RoPE.
//           ROTATE: K rotated by -delta (RoPE is a rotation: K rotated at position p, rotated by
//           -delta, is K rotated at p - delta), as llama.cpp's K-shift. Each head is decoded to f32,
//           its first rope_dim values rotated (NEOX: pairs (i, i + rope_dim/2); otherwise (2i, 2i+1)),
//           and encoded back: f32, KV_F16 (pack2x16float), or KV_Q8_0 (requantized per block of 32 as
//           copy_to_cache.wgsl does). One invocation per unit of heads_per_unit heads: 1, or 2 for Q8_0
//           heads of an odd block count, whose 34-byte blocks would share a word with the next head's.
// Dispatch: ceil(rows * units / WG) workgroups as (x, y), x + 65535 y, units = row_words or heads per
//           row / heads_per_unit.

@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> cache: array<u32>;
#ifdef ROTATE
@group(0) @binding(3) var<storage, read> table: array<vec2<f32>>;
#endif

override WG: u32 = 64u;

fn invocation(wid: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + 65535u * wid.y) * WG + lid;
}

#ifndef ROTATE
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = invocation(wid, lid);
  let t = i / params.row_words;
  let w = i % params.row_words;
  if (t >= params.rows) { return; }
  cache[(params.dst + t) * params.row_words + w] = cache[(params.src + t) * params.row_words + w];
}
#else
var<private> h: array<f32, 256>; // [head_dim] one head, decoded

#ifdef KV_Q8_0
// A head's bytes from the start of the row: whole blocks of 34 bytes.
fn head_byte(row: u32, head: u32) -> u32 {
  return row * params.row_words * 4u + head * (params.head_dim / 32u) * 34u;
}
// The 16 bits at byte b (even).
fn get_half(b: u32) -> u32 { return (cache[b >> 2u] >> ((b & 2u) * 8u)) & 0xffffu; }
fn put_half(b: u32, v: u32) {
  let shift = (b & 2u) * 8u;
  cache[b >> 2u] = (cache[b >> 2u] & ~(0xffffu << shift)) | ((v & 0xffffu) << shift);
}

fn load_head(row: u32, head: u32) {
  let base = head_byte(row, head);
  for (var block = 0u; block < params.head_dim / 32u; block++) {
    let at = base + block * 34u;
    let d = unpack2x16float(get_half(at)).x;
    for (var i = 0u; i < 32u; i++) {
      let q = at + 2u + i;
      h[block * 32u + i] = d * f32(extractBits(bitcast<i32>(cache[q >> 2u]), (q & 3u) * 8u, 8u));
    }
  }
}

fn store_head(row: u32, head: u32) {
  let base = head_byte(row, head);
  for (var block = 0u; block < params.head_dim / 32u; block++) {
    let at = base + block * 34u;
    let x = block * 32u;
    var amax = 0.0;
    for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(h[x + i])); }
    let d = amax / 127.0;
    let id = select(0.0, 127.0 / amax, amax != 0.0);
    put_half(at, pack2x16float(vec2<f32>(d, 0.0)));
    for (var i = 0u; i < 32u; i += 2u) {
      let q0 = bitcast<u32>(i32(round(h[x + i] * id))) & 0xffu;
      let q1 = bitcast<u32>(i32(round(h[x + i + 1u] * id))) & 0xffu;
      put_half(at + 2u + i, q0 | (q1 << 8u));
    }
  }
}
#else
#ifdef KV_F16
fn load_head(row: u32, head: u32) {
  let base = row * params.row_words + head * params.head_dim / 2u;
  for (var j = 0u; j < params.head_dim / 2u; j++) {
    let v = unpack2x16float(cache[base + j]);
    h[2u * j] = v.x;
    h[2u * j + 1u] = v.y;
  }
}

fn store_head(row: u32, head: u32) {
  let base = row * params.row_words + head * params.head_dim / 2u;
  for (var j = 0u; j < params.head_dim / 2u; j++) {
    cache[base + j] = pack2x16float(vec2<f32>(h[2u * j], h[2u * j + 1u]));
  }
}
#else
fn load_head(row: u32, head: u32) {
  let base = row * params.row_words + head * params.head_dim;
  for (var i = 0u; i < params.head_dim; i++) { h[i] = bitcast<f32>(cache[base + i]); }
}

fn store_head(row: u32, head: u32) {
  let base = row * params.row_words + head * params.head_dim;
  for (var i = 0u; i < params.head_dim; i++) { cache[base + i] = bitcast<u32>(h[i]); }
}
#endif
#endif

fn rotate() {
  let half_rope = params.rope_dim / 2u;
  for (var p = 0u; p < half_rope; p++) {
#ifdef NEOX
    let i0 = p;
    let i1 = p + half_rope;
#else
    let i0 = 2u * p;
    let i1 = 2u * p + 1u;
#endif
    let cs = table[p];
    let a = h[i0];
    let b = h[i1];
    h[i0] = a * cs.x - b * cs.y;
    h[i1] = a * cs.y + b * cs.x;
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let heads = params.width / params.head_dim;
  let units = (heads + params.heads_per_unit - 1u) / params.heads_per_unit;
  let i = invocation(wid, lid);
  let t = i / units;
  if (t >= params.rows) { return; }
  let first = (i % units) * params.heads_per_unit;
  let last = min(first + params.heads_per_unit, heads);
  for (var head = first; head < last; head++) {
    load_head(params.src + t, head);
    rotate();
    store_head(params.dst + t, head);
  }
}
#endif
