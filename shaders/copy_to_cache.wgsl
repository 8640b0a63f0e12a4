// Writes rows into the KV cache: cache[(pos0 + t) % cache_rows, :] = x[t, :], in the cache's form
// (kv_cache.wgsl): K in layers without RoPE (GPT-2, SmolLM3's NoPE layers) into an f32 cache, and
// every K and V row into an f16 or q8_0 cache. cache_rows: the whole context, or a ring of rows
// for a sliding-window layer.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {width, cache_rows}),
//           2 x [n_tokens, width] f32, 3 cache [cache_rows, width] in the cache's form
// Variants: (none) f32, one invocation per value; KV_F16, one per pair (pack2x16float, width even);
//           KV_Q8_0, one per pair of 32-value blocks (68 bytes, 17 whole words; a row's odd last
//           block alone, 9 words with its 2 bytes of padding), quantized as llama.cpp's
//           quantize_row_q8_0: d = amax / 127, q = round-to-nearest-even(x * 127 / amax).
// Dispatch: (ceil(units / WG), n_tokens), units = width, width / 2, or ceil(width / 64).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
#ifdef KV_F16
@group(0) @binding(3) var<storage, read_write> cache: array<u32>;
#else
#ifdef KV_Q8_0
@group(0) @binding(3) var<storage, read_write> cache: array<u32>;
#else
@group(0) @binding(3) var<storage, read_write> cache: array<f32>;
#endif
#endif

override WG: u32 = 64u;

#ifdef KV_Q8_0
var<private> words: array<u32, 17>;

// Byte `at` of the pair's 68 bytes is b (0..255).
fn put_byte(at: u32, b: u32) {
  words[at >> 2u] |= (b & 0xffu) << ((at & 3u) * 8u);
}

// Block `block` of row t of x into the pair's bytes from `at`: d (f16), then 32 i8.
fn quantize_block(t: u32, block: u32, at: u32) {
  let base = t * params.width + block * 32u;
  var amax = 0.0;
  for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(x[base + i])); }
  let d = amax / 127.0;
  let id = select(0.0, 127.0 / amax, amax != 0.0);
  let dh = pack2x16float(vec2<f32>(d, 0.0));
  put_byte(at, dh);
  put_byte(at + 1u, dh >> 8u);
  for (var i = 0u; i < 32u; i++) {
    put_byte(at + 2u + i, bitcast<u32>(i32(round(x[base + i] * id))));
  }
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (t >= step.n_tokens) { return; }
  let row = (step.pos0 + t) % params.cache_rows;
#ifdef KV_F16
  if (2u * i >= params.width) { return; }
  let at = t * params.width + 2u * i;
  cache[(row * params.width) / 2u + i] = pack2x16float(vec2<f32>(x[at], x[at + 1u]));
#else
#ifdef KV_Q8_0
  let blocks = params.width / 32u;
  if (2u * i >= blocks) { return; }
  let row_words = (blocks * 34u + 3u) / 4u;
  let w0 = row * row_words + 17u * i;
  for (var w = 0u; w < 17u; w++) { words[w] = 0u; }
  quantize_block(t, 2u * i, 0u);
  var n = 9u; // a lone last block: 34 bytes and 2 of padding
  if (2u * i + 1u < blocks) {
    quantize_block(t, 2u * i + 1u, 34u);
    n = 17u;
  }
  for (var w = 0u; w < n; w++) { cache[w0 + w] = words[w]; }
#else
  if (i >= params.width) { return; }
  cache[row * params.width + i] = x[t * params.width + i];
#endif
#endif
}
