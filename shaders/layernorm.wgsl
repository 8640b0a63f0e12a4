// LayerNorm (llama.cpp's ggml_norm, then * w + b): out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b,
// mean and variance over the row's n values, the variance as the mean of (x - mean)^2 (two passes).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n, eps}),
//           2 x [n_tokens, n] f32, 3 W [n] (F32 or F16 words), 4 out [n_tokens, n] f32,
//           5 B [n] (F32 words, or F16 with B_F16), with BIAS
// Variants: W_F32 / W_F16; BIAS, B_F16; LAST_ROW normalizes only row n_tokens-1 into out row 0
//           (for the logits); SUBGROUPS: the workgroup is one subgroup (WG = the subgroup size),
//           reduced with subgroupAdd, for CPU adapters (as rmsnorm.wgsl).
// Dispatch: (n_tokens) workgroups, or (1) with LAST_ROW.

#ifdef SUBGROUPS
enable subgroups;
#endif

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#ifdef BIAS
@group(0) @binding(5) var<storage, read> B: array<u32>;

fn b_load(i: u32) -> f32 {
#ifdef B_F16
  let pair = unpack2x16float(B[i >> 1u]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
#else
  return bitcast<f32>(B[i]);
#endif
}
#endif

#include "weights"

override WG: u32 = 64u;

// The sum of every invocation's v, in each invocation.
#ifdef SUBGROUPS
fn row_sum(v: f32, lid: u32) -> f32 {
  return subgroupAdd(v);
}
#else
var<workgroup> partial: array<f32, WG>;

fn row_sum(v: f32, lid: u32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // every invocation has read partial[0] before the next sum overwrites it
  return total;
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
#ifdef LAST_ROW
  let row = step.n_tokens - 1u;
  let out_row = 0u;
#else
  let row = wid.x;
  let out_row = wid.x;
  if (row >= step.n_tokens) { return; }
#endif
  let n = params.n;
  let base = row * n;
  var sum = 0.0;
  for (var i = lid.x; i < n; i += WG) { sum += x[base + i]; }
  let mean = row_sum(sum, lid.x) / f32(n);
  var sq = 0.0;
  for (var i = lid.x; i < n; i += WG) {
    let d = x[base + i] - mean;
    sq += d * d;
  }
  let scale = inverseSqrt(row_sum(sq, lid.x) / f32(n) + params.eps);
  for (var i = lid.x; i < n; i += WG) {
    var v = (x[base + i] - mean) * scale * w_load(i);
#ifdef BIAS
    v += b_load(i);
#endif
    out[out_row * n + i] = v;
  }
}
