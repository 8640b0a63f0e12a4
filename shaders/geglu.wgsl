// GeGLU, in place: gate[i] = gelu(gate[i]) * up[i]   over [n_tokens, n_ff] (Gemma's MLP), with
// GELU as llama.cpp's CPU backend computes it (gelu.wgsl; the product itself is not rounded).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n}), 2 gate f32 (read-write), 3 up f32
// Dispatch: (ceil(n_tokens * n / WG)).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;

#include "tanh"
#include "gelu"

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= step.n_tokens * params.n) { return; }
  gate[i] = gelu(gate[i]) * up[i];
}
