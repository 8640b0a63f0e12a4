// Tiled matmul for prefill: y[t, n] = sum_k x[t, k] * W[n, k]   (W row-major [n_out, k], as ggml stores it)
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, cache_rows, n0, n1}),
//           2 x [n_tokens, k] f32, 3 W [n_out, k] (weights.wgsl words: F32, F16 or ggml blocks), 4 y [n_tokens, n_out] f32
//           cache_rows > 0 writes row t at row (pos0 + t) % cache_rows (the V projection straight into the KV cache)
// Variants: W_F32, W_F16, W_BF16 or a ggml block format (W_Q8_0 ... W_IQ4_XS, weights.wgsl); BIAS adds binding 5 bias [n_out] f32 (Qwen2 q/k/v projections);
//           STACK2, STACK3 (linear_store.wgsl): a weight stacking 2 or 3 linears, each part's rows
//           to its own output (y, then bindings 8 and 9).
// Overrides: TILE (tile edge; workgroup is TILE x TILE, one output per invocation).
// Dispatch: (ceil(n_out / TILE), ceil(n_tokens / TILE)).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#ifdef BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

#include "weights"
#include "linear_store"

override TILE: u32 = 16u;
var<workgroup> x_tile: array<f32, TILE * TILE>; // [t][k]
var<workgroup> w_tile: array<f32, TILE * TILE>; // [n][k]

@compute @workgroup_size(TILE, TILE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n_out = wid.x * TILE + lid.x;
  let t = wid.y * TILE + lid.y;
  let k = params.k;
  var acc = 0.0;
  for (var k0 = 0u; k0 < k; k0 += TILE) {
    // Invocation (lx, ly) loads x[t0 + ly, k0 + lx] and W[n0 + ly, k0 + lx].
    let kk = k0 + lid.x;
    let xt = wid.y * TILE + lid.y;
    let wn = wid.x * TILE + lid.y;
    x_tile[lid.y * TILE + lid.x] = select(0.0, x[xt * k + kk], xt < step.n_tokens && kk < k);
    w_tile[lid.y * TILE + lid.x] = select(0.0, w_load(wn * k + kk), wn < params.n && kk < k);
    workgroupBarrier();
    for (var j = 0u; j < TILE; j++) {
      acc += x_tile[lid.y * TILE + j] * w_tile[lid.x * TILE + j];
    }
    workgroupBarrier();
  }
  if (n_out < params.n && t < step.n_tokens) {
    store_y(t, n_out, acc);
  }
}
