// Element-wise, in place over [n_tokens, n]: x[t, i] = f(x[t, i]).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n, factor}), 2 x [n_tokens, n] f32 (read-write)
// Variants (one of): GELU    f(x) = gelu(x), as llama.cpp's CPU backend (gelu.wgsl);
//                    SCALE   f(x) = factor * x (Gemma's embeddings times sqrt(n_embd));
//                    SOFTCAP f(x) = factor * tanh(x / factor) (Gemma 2's final-logit soft-capping).
// Dispatch: (ceil(n / WG), n_tokens): the grid, not step.n_tokens, bounds the rows, so an op encoded
// for one row (the logits, [1, vocab]) touches row 0 only.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

#ifdef GELU
#include "tanh"
#include "gelu"
#endif
#ifdef SOFTCAP
#include "tanh"
#endif

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= params.n || t >= step.n_tokens) { return; }
  let at = t * params.n + i;
#ifdef GELU
  x[at] = gelu(x[at]);
#endif
#ifdef SCALE
  x[at] = x[at] * params.factor;
#endif
#ifdef SOFTCAP
  x[at] = params.factor * tanh_precise(x[at] * (1.0 / params.factor)); // llama.cpp scales by 1 / cap
#endif
}
