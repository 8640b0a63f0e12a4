// Residual add, in place: x[i] += y[i]   over [n_tokens, n]
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n}), 2 x f32 (read-write), 3 y f32,
//           4 z f32 with ADD2
// Variants: ADD2: x[i] = (x[i] + y[i]) + z[i], the parallel residual's two adds in one dispatch
//           (GPT-NeoX, Phi-2: x + ffn, then + attn, in llama.cpp's order).
// Dispatch: (ceil(n_tokens * n / WG)).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
#ifdef ADD2
@group(0) @binding(4) var<storage, read> z: array<f32>;
#endif

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= step.n_tokens * params.n) { return; }
#ifdef ADD2
  x[i] = (x[i] + y[i]) + z[i];
#else
  x[i] += y[i];
#endif
}
