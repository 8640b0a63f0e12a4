// Matvec for F16 and F32 weights on CPU adapters (SwiftShader, llvmpipe): y[t, n] = sum_k W[n, k] x[t, k].
// matvec.wgsl loads one weight and one x value per element, and a CPU pays for every load (each is
// a gather across lanes). Here each invocation computes 4 consecutive rows, so each x load serves
// four rows, and lanes 0..3 each load a quarter of the x values all lanes share, handed round with
// subgroupBroadcast; an F16 word brings two weights.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, out_at_pos}),
//           2 x [n_tokens, k] f32, 3 W [n_out, k] (f32 words, or two f16 per word),
//           4 y [n_tokens, n_out] f32 (token t at row pos0 + t when out_at_pos = 1);
//           BIAS adds 5 bias [n_out] f32.
// Variants: W_F16 or W_F32; k a multiple of 16. BIAS.
// Needs subgroups of at least 4. Dispatch: g = ceil(n_out / (4 WG)) workgroups, as
// (min(g, 65535), ceil(g / 65535), n_tokens).

enable subgroups;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
#ifdef BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

override WG: u32 = 16u;

#include "rows4"

fn spread_f32(v: f32) -> vec4<f32> {
  return bitcast<vec4<f32>>(spread(bitcast<u32>(v)));
}

#ifdef W_F16
// Elements 16 c .. 16 c + 15 of a row whose first word is `row`: 8 words of two halves each.
fn chunk_dot(row: u32, c: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
  let i = row + 8u * c;
  let w0 = unpack2x16float(W[i]); let w1 = unpack2x16float(W[i + 1u]); let w2 = unpack2x16float(W[i + 2u]); let w3 = unpack2x16float(W[i + 3u]);
  let w4 = unpack2x16float(W[i + 4u]); let w5 = unpack2x16float(W[i + 5u]); let w6 = unpack2x16float(W[i + 6u]); let w7 = unpack2x16float(W[i + 7u]);
  return dot(vec4<f32>(w0, w1), x0) + dot(vec4<f32>(w2, w3), x1) + dot(vec4<f32>(w4, w5), x2) + dot(vec4<f32>(w6, w7), x3);
}
#endif
#ifdef W_F32
fn word4(i: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(W[i], W[i + 1u], W[i + 2u], W[i + 3u]));
}

fn chunk_dot(row: u32, c: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> f32 {
  let i = row + 16u * c;
  return dot(word4(i), x0) + dot(word4(i + 4u), x1) + dot(word4(i + 8u), x2) + dot(word4(i + 12u), x3);
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sg: u32) {
  let t = wid.z;
  if (t >= step.n_tokens) { return; }
  let row0 = first_row(wid, lid, WG);
  let rows = clamped_rows(row0);
  let k = params.k;
#ifdef W_F16
  let starts = rows * (k / 2u); // each row's first word
#else
  let starts = rows * k;
#endif
  let xl = t * k + (sg & 3u); // this lane's share of token t's x
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < k / 16u; c++) {
    let at = xl + 16u * c;
    let x0 = spread_f32(x[at]); let x1 = spread_f32(x[at + 4u]); let x2 = spread_f32(x[at + 8u]); let x3 = spread_f32(x[at + 12u]);
    acc += vec4<f32>(chunk_dot(starts.x, c, x0, x1, x2, x3), chunk_dot(starts.y, c, x0, x1, x2, x3),
                     chunk_dot(starts.z, c, x0, x1, x2, x3), chunk_dot(starts.w, c, x0, x1, x2, x3));
  }
  store_rows(acc, rows, row0, t);
}
