// Rotary position embedding over [n_tokens, n_heads, head_dim], token t at position pos0 + t.
// Rotates the first rope_dim dims of each head; the rest pass through.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n_heads, head_dim, rope_dim, cache_rows}),
//           2 table [n_positions, rope_dim / 2] vec2<f32>: (cos, sin) of pos * theta_base^(-2i / rope_dim),
//             computed on the host in f64 (SwiftShader's sin/cos are off by ~1e-4, which WGSL allows),
//           3 x [n_tokens, n_heads * head_dim] f32, in place; or with TO_CACHE read-only, and
//           4 cache [cache_rows, n_heads * head_dim] f32, token t's row written at (pos0 + t) % cache_rows
//             (the whole context, or a ring for a sliding-window layer; the rotation keeps the absolute position)
// Variants: NEOX pairs (i, i + rope_dim/2) as in GPT-NeoX/Qwen2; otherwise adjacent pairs (2i, 2i+1)
//           as llama.cpp's "norm" style. TO_CACHE writes the rotated rows into the KV cache.
// Dispatch: (ceil(n_heads * head_dim / 2 / WG), n_tokens); one invocation per pair.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> table: array<vec2<f32>>;
#ifdef TO_CACHE
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> cache: array<f32>;
#else
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
#endif

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let half_dim = params.head_dim / 2u;
  let head = gid.x / half_dim;
  let p = gid.x % half_dim;
  let t = gid.y;
  if (head >= params.n_heads || t >= step.n_tokens) { return; }
  let width = params.n_heads * params.head_dim;
  let base = t * width + head * params.head_dim;
  let pos = step.pos0 + t;

  let half_rope = params.rope_dim / 2u;
  let rotated = p < half_rope;
  var i0 = 2u * p;
  var i1 = 2u * p + 1u;
#ifdef NEOX
  if (rotated) {
    i0 = p;
    i1 = p + half_rope;
  }
#endif
  var a = x[base + i0];
  var b = x[base + i1];
  if (rotated) {
    let cs = table[pos * half_rope + p];
    let c = cs.x;
    let s = cs.y;
    let ra = a * c - b * s;
    let rb = a * s + b * c;
    a = ra;
    b = rb;
  }
#ifdef TO_CACHE
  let out_base = (pos % params.cache_rows) * width + head * params.head_dim;
  cache[out_base + i0] = a;
  cache[out_base + i1] = b;
#else
  x[base + i0] = a;
  x[base + i1] = b;
#endif
}
