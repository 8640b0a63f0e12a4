// Matvec for F16, BF16 and F32 weights on CPU adapters (SwiftShader, llvmpipe): y[t, n] = sum_k W[n, k] x[t, k].
// matvec.wgsl loads one weight and one x value per element, and a CPU pays for every load (each is
// a gather across lanes). Here each invocation computes 4 consecutive rows, so each x load serves
// four rows, and lanes 0..3 each load a quarter of the x values all lanes share, handed round with
// subgroupBroadcast; an F16 word brings two weights.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, cache_rows, n0, n1}),
//           2 x [n_tokens, k] f32, 3 W [n_out, k] (f32 words, or two f16 or bf16 per word),
//           4 y [n_tokens, n_out] f32 (token t at row (pos0 + t) % cache_rows when cache_rows > 0);
//           BIAS adds 5 bias [n_out] f32.
// Variants: W_F16, W_BF16 or W_F32; k a multiple of 16. BIAS. STACK2, STACK3 (linear_store.wgsl: stacked
// linears, outputs at bindings 8, 9). TOKENS4 (prefill): four tokens per
// invocation too, so that each weight is loaded and unpacked once for four tokens.
// Needs subgroups of at least 4. Dispatch: g = ceil(n_out / (4 WG)) workgroups, as
// (min(g, 65535), ceil(g / 65535), n_tokens), or ceil(n_tokens / 4) with TOKENS4.

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

// Elements 16 c .. 16 c + 15 of a row whose first word is `row`, as four columns of 4.
#ifdef W_F16
fn chunk(row: u32, c: u32) -> mat4x4<f32> {
  let i = row + 8u * c; // 8 words of two halves each
  return mat4x4<f32>(vec4<f32>(unpack2x16float(W[i]), unpack2x16float(W[i + 1u])), vec4<f32>(unpack2x16float(W[i + 2u]), unpack2x16float(W[i + 3u])),
                     vec4<f32>(unpack2x16float(W[i + 4u]), unpack2x16float(W[i + 5u])), vec4<f32>(unpack2x16float(W[i + 6u]), unpack2x16float(W[i + 7u])));
}
#endif
#ifdef W_BF16
// The two bfloat16 of a word: each the top half of an f32.
fn bf16x2(w: u32) -> vec2<f32> {
  return bitcast<vec2<f32>>(vec2<u32>(w << 16u, w & 0xffff0000u));
}

fn chunk(row: u32, c: u32) -> mat4x4<f32> {
  let i = row + 8u * c; // 8 words of two bfloat16 each
  return mat4x4<f32>(vec4<f32>(bf16x2(W[i]), bf16x2(W[i + 1u])), vec4<f32>(bf16x2(W[i + 2u]), bf16x2(W[i + 3u])),
                     vec4<f32>(bf16x2(W[i + 4u]), bf16x2(W[i + 5u])), vec4<f32>(bf16x2(W[i + 6u]), bf16x2(W[i + 7u])));
}
#endif
#ifdef W_F32
fn word4(i: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(W[i], W[i + 1u], W[i + 2u], W[i + 3u]));
}

fn chunk(row: u32, c: u32) -> mat4x4<f32> {
  let i = row + 16u * c;
  return mat4x4<f32>(word4(i), word4(i + 4u), word4(i + 8u), word4(i + 12u));
}
#endif

// The 16 x values of chunk c of token t, as four vec4 (lanes 0..3 load a quarter each).
struct X16 {
  a: vec4<f32>,
  b: vec4<f32>,
  c: vec4<f32>,
  d: vec4<f32>,
}

fn x16(t: u32, c: u32, lane: u32) -> X16 {
  let at = t * params.k + 16u * c + lane;
  return X16(spread_f32(x[at]), spread_f32(x[at + 4u]), spread_f32(x[at + 8u]), spread_f32(x[at + 12u]));
}

fn chunk_dot(w: mat4x4<f32>, v: X16) -> f32 {
  return dot(w[0], v.a) + dot(w[1], v.b) + dot(w[2], v.c) + dot(w[3], v.d);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sg: u32) {
#ifdef TOKENS4
  let t = 4u * wid.z; // tokens t .. t + 3, those below n_tokens
#else
  let t = wid.z;
#endif
  if (t >= step.n_tokens) { return; }
  let row0 = first_row(wid, lid, WG);
  let rows = clamped_rows(row0);
  let k = params.k;
#ifdef W_F32
  let starts = rows * k;
#else
  let starts = rows * (k / 2u); // each row's first word: two halves per word
#endif
  let lane = sg & 3u;
#ifdef TOKENS4
  // Tokens past the end repeat the last one (not stored), as rows do.
  let ts = min(vec4<u32>(t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(step.n_tokens - 1u));
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0)); // per token, over the 4 rows
  for (var c = 0u; c < k / 16u; c++) {
    let v0 = x16(ts.x, c, lane); let v1 = x16(ts.y, c, lane); let v2 = x16(ts.z, c, lane); let v3 = x16(ts.w, c, lane);
    let w0 = chunk(starts.x, c); let w1 = chunk(starts.y, c); let w2 = chunk(starts.z, c); let w3 = chunk(starts.w, c);
    acc[0] += vec4<f32>(chunk_dot(w0, v0), chunk_dot(w1, v0), chunk_dot(w2, v0), chunk_dot(w3, v0));
    acc[1] += vec4<f32>(chunk_dot(w0, v1), chunk_dot(w1, v1), chunk_dot(w2, v1), chunk_dot(w3, v1));
    acc[2] += vec4<f32>(chunk_dot(w0, v2), chunk_dot(w1, v2), chunk_dot(w2, v2), chunk_dot(w3, v2));
    acc[3] += vec4<f32>(chunk_dot(w0, v3), chunk_dot(w1, v3), chunk_dot(w2, v3), chunk_dot(w3, v3));
  }
  for (var j = 0u; j < 4u; j++) {
    if (t + j < step.n_tokens) { store_rows(acc[j], row0, t + j); }
  }
#else
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < k / 16u; c++) {
    let v = x16(t, c, lane);
    acc += vec4<f32>(chunk_dot(chunk(starts.x, c), v), chunk_dot(chunk(starts.y, c), v),
                     chunk_dot(chunk(starts.z, c), v), chunk_dot(chunk(starts.w, c), v));
  }
  store_rows(acc, row0, t);
#endif
}
