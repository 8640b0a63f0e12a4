// Activations to int8, per block of 32, for matvec_int8.wgsl: d = max|x| / 127, q = round(x * 127 / max|x|)
// (half to even, 0 where the block is all zero), as llama.cpp quantizes activations to Q8_0 on the CPU.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k}), 2 x [n_tokens, k] f32,
//           3 xq: the quants, in one of two layouts (below), 4 xs [n_tokens, k / 32] vec2<f32>: (d, d * sum of the block's q)
// Variants: default: xq [n_tokens, k / 4] u32, four int8 per word, element 4 i in the low byte of word i
//             (for dot4I8Packed);
//           PAIRS: xq [n_tokens, k / 2] u32, two 16-bit halves per word: for elements 4 g .. 4 g + 3,
//             word 2 g = q[4 g + 2] + 65536 q[4 g] and word 2 g + 1 = q[4 g + 3] + 65536 q[4 g + 1]
//             (as integers, mod 2^32), for the packed multiplies of matvec_int8.wgsl.
// Dispatch: (ceil(k / 32 / WG), n_tokens); one invocation per block of 32.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> xq: array<u32>;
@group(0) @binding(4) var<storage, read_write> xs: array<vec2<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let blocks = params.k / 32u;
  let t = gid.y;
  if (gid.x >= blocks || t >= step.n_tokens) { return; }
  let block = t * blocks + gid.x;
  var amax = vec4<f32>(0.0);
  for (var i = 0u; i < 8u; i++) {
    amax = max(amax, abs(x[8u * block + i]));
  }
  let m = max(max(amax.x, amax.y), max(amax.z, amax.w));
  let scale = select(0.0, 127.0 / m, m > 0.0);
  var sum = vec4<i32>(0);
  for (var i = 0u; i < 8u; i++) {
    let q = clamp(vec4<i32>(round(x[8u * block + i] * scale)), vec4<i32>(-127), vec4<i32>(127));
    sum += q;
#ifdef PAIRS
    let u = bitcast<vec4<u32>>(q);
    xq[16u * block + 2u * i] = u.z + (u.x << 16u);
    xq[16u * block + 2u * i + 1u] = u.w + (u.y << 16u);
#else
    xq[8u * block + i] = pack4xI8(q);
#endif
  }
  let d = m / 127.0;
  xs[block] = vec2<f32>(d, d * f32(sum.x + sum.y + sum.z + sum.w));
}
