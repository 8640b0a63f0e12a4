// Copies rows into the KV cache: cache[(pos0 + t) % cache_rows, :] = x[t, :], for K in layers
// without RoPE (GPT-2, SmolLM3's NoPE layers). cache_rows: the whole context, or a ring of rows
// for a sliding-window layer.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {width, cache_rows}),
//           2 x [n_tokens, width] f32, 3 cache [cache_rows, width] f32
// Dispatch: (ceil(width / WG), n_tokens).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> cache: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  let t = gid.y;
  if (i >= params.width || t >= step.n_tokens) { return; }
  cache[((step.pos0 + t) % params.cache_rows) * params.width + i] = x[t * params.width + i];
}
