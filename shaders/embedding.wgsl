// Embedding lookup: out[t, :] = W[tokens[t], :]; with POSITIONS, learned absolute positions added
// in place: out[t, :] += W[pos0 + t, :] (GPT-2's position_embd).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n_embd}),
//           2 tokens [n_tokens] u32 (absent with POSITIONS), 3 W [n_rows, n_embd] (weights.wgsl words:
//           F32, F16 or ggml blocks), 4 out [n_tokens, n_embd] f32
// Variants: W_F32, W_F16, W_BF16 or a ggml block format (W_Q8_0 ... W_IQ4_XS, weights.wgsl); POSITIONS.
// Dispatch: (ceil(n_embd / WG), n_tokens).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
#ifndef POSITIONS
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
#endif
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

#include "weights"

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= params.n_embd || t >= step.n_tokens) { return; }
#ifdef POSITIONS
  out[t * params.n_embd + i] += w_load((step.pos0 + t) * params.n_embd + i);
#else
  out[t * params.n_embd + i] = w_load(tokens[t] * params.n_embd + i);
#endif
}
