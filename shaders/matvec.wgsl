// Matvec for decode (one token): y[n] = sum_k W[n, k] * x[k]
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, out_at_pos}),
//           2 x [k] f32, 3 W [n_out, k] (F32 or F16 words), 4 y [n_out] f32 (at row pos0 when out_at_pos = 1)
// Variants: W_F16; BIAS adds binding 5 bias [n_out] f32 (Qwen2 q/k/v projections).
// Overrides: WG (invocations per workgroup), TPR (invocations sharing one row; WG / TPR rows per workgroup).
// Dispatch: ceil(n_out / (WG / TPR)) workgroups, as (min(g, 65535), ceil(g / 65535)).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#ifdef BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

#include "weights"

override WG: u32 = 64u;  // invocations per workgroup
override TPR: u32 = 8u;  // invocations per row: a power of two dividing WG
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = (wid.x + wid.y * 65535u) * (WG / TPR) + lid.x / TPR;
  let lane = lid.x % TPR;
  let k = params.k;
  var sum = 0.0;
  if (row < params.n) {
    let base = row * k;
    for (var i = lane; i < k; i += TPR) {
      sum += w_load(base + i) * x[i];
    }
  }
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var stride = TPR / 2u; stride > 0u; stride /= 2u) {
    if (lane < stride) { partial[lid.x] += partial[lid.x + stride]; }
    workgroupBarrier();
  }
  if (lane == 0u && row < params.n) {
    var total = partial[lid.x];
#ifdef BIAS
    total += bias[row];
#endif
    let out_row = select(0u, step.pos0, params.out_at_pos == 1u);
    y[out_row * params.n + row] = total;
  }
}
