// Matvec for decode: y[t, n] = sum_k W[n, k] * x[t, k], one token per z of the grid (decode has
// one; CPU adapters also run block-format prefill here, barrier-free, instead of the tiled matmul).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, cache_rows, n0, n1}),
//           2 x [n_tokens, k] f32, 3 W [n_out, k] (weights.wgsl words),
//           4 y [n_tokens, n_out] f32 (token t at row (pos0 + t) % cache_rows when cache_rows > 0)
// Variants: W_F32 / W_F16 / W_BF16 (element loop) or W_Q8_0 / W_Q4_0 / W_Q4_1 / W_Q5_0 / W_Q5_1 / W_Q4_K /
//           W_Q6_K / W_Q5_K / W_Q3_K / W_Q2_K / W_IQ4_NL / W_IQ4_XS (k a multiple of the block size; each invocation takes whole 32-element chunks,
//           decoded in registers);
//           BIAS adds binding 5 bias [n_out] f32 (Qwen2 q/k/v projections);
//           STACK2, STACK3 (linear_store.wgsl): a weight stacking 2 or 3 linears, each part's rows
//           to its own output (y, then bindings 8 and 9).
//           SUBGROUPS: TPR is the subgroup size, one subgroup per row, reduced with subgroupAdd
//           (no barrier; invocations of a subgroup are assumed consecutive, as on every driver seen).
// Overrides: WG (invocations per workgroup), TPR (invocations sharing one row; WG / TPR rows per workgroup).
// Dispatch: g = ceil(n_out / (WG / TPR)) workgroups, as (min(g, 65535), ceil(g / 65535), n_tokens).

#ifdef SUBGROUPS
enable subgroups;
#endif

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
#ifdef W_F32
#define W_ELEMENTS
#endif
#ifdef W_F16
#define W_ELEMENTS
#endif
#ifdef W_BF16
#define W_ELEMENTS
#endif
#ifdef W_ELEMENTS
@group(0) @binding(2) var<storage, read> x: array<f32>;
#else
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>; // [k / 4]: k is whole 32-element blocks
fn x4(i: u32) -> vec4<f32> {
  return x[i >> 2u];
}
#define W_DOT
#endif
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#ifdef BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

#include "weights"
#include "linear_store"

override WG: u32 = 64u;  // invocations per workgroup
override TPR: u32 = 8u;  // invocations per row: a power of two dividing WG
#ifndef SUBGROUPS
var<workgroup> partial: array<f32, WG>;
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = (wid.x + wid.y * 65535u) * (WG / TPR) + lid.x / TPR;
  let lane = lid.x % TPR;
  let t = wid.z;
  let k = params.k;
  var sum = 0.0;
  if (row < params.n) {
#ifdef W_ELEMENTS
    let base = row * k;
    for (var i = lane; i < k; i += TPR) {
      sum += w_load(base + i) * x[t * k + i];
    }
#else
    let chunks = k / 32u;
    let base = row * chunks;
    for (var c = lane; c < chunks; c += TPR) {
      sum += w_dot32(base + c, t * k + 32u * c);
    }
#endif
  }
#ifdef SUBGROUPS
  let row_sum = subgroupAdd(sum);
#else
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var stride = TPR / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) { partial[lid.x] += partial[lid.x + stride]; }
    workgroupBarrier();
  }
  let row_sum = partial[lid.x];
#endif
  if (lane == 0u && row < params.n) {
    store_y(t, row, row_sum);
  }
}
