// RMSNorm: out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n, eps}),
//           2 x [n_tokens, rows_per_token * n] f32, 3 W [n] (F32 or F16 words), 4 out [n_tokens, n] f32
// Variants: W_F16; LAST_ROW normalizes only row n_tokens-1 into out row 0 (for the logits);
//           IN_PLACE normalizes x itself (binding 2 read-write, no binding 4), each of its
//           rows_per_token rows of n per token: per-head q/k norms (Qwen3, Gemma 3: n = head_dim),
//           or OLMo 2's norm over a whole q or k projection (rows_per_token = 1);
//           SUBGROUPS: the workgroup is one subgroup (WG = the subgroup size), reduced with
//           subgroupAdd, for CPU adapters, where a workgroup barrier costs dearly (SwiftShader then
//           runs the shader as a coroutine: 3x slower per dispatch at SmolLM2's width).
// Dispatch: (1, n_tokens) workgroups, (rows_per_token, n_tokens) with IN_PLACE, or (1) with LAST_ROW.

#ifdef SUBGROUPS
enable subgroups;
#endif

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
#ifdef IN_PLACE
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#endif
@group(0) @binding(3) var<storage, read> W: array<u32>;

#include "weights"

override WG: u32 = 64u;
#ifndef SUBGROUPS
var<workgroup> partial: array<f32, WG>;
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
#ifdef LAST_ROW
  let row = step.n_tokens - 1u;
  let out_row = 0u;
#else
  // Token wid.y's row wid.x of the groups.x it holds.
  let row = wid.y * groups.x + wid.x;
  let out_row = row;
  if (wid.y >= step.n_tokens) { return; }
#endif
  let n = params.n;
  let base = row * n;
  var sum = 0.0;
  for (var i = lid.x; i < n; i += WG) {
    let v = x[base + i];
    sum += v * v;
  }
#ifdef SUBGROUPS
  let total = subgroupAdd(sum);
#else
  partial[lid.x] = sum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) { partial[lid.x] += partial[lid.x + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
#endif
  let scale = inverseSqrt(total / f32(n) + params.eps);
  // With IN_PLACE each invocation rewrites only the elements it read itself.
  for (var i = lid.x; i < n; i += WG) {
#ifdef IN_PLACE
    x[base + i] = x[base + i] * scale * w_load(i);
#else
    out[out_row * n + i] = x[base + i] * scale * w_load(i);
#endif
  }
}
