// The cost of one kind of WGSL operation on this adapter (runtime/bench.ts measureOpCosts): each
// invocation runs params.rounds rounds, each applying the operation 1024 times (OP_UNPACK2X16FLOAT
// 512) to four vec4 values, and writes what it computed so that nothing can be optimized away.
// Time per round against OP_ADD's says what the operation costs in integer adds. On a CPU
// adapter, where invocations are the lanes of SIMD registers, some operations have no vector
// instruction and cost many times an add: this is where decoding a quantized weight goes.
// Variants (one of): OP_ADD (u32 +), OP_MUL (u32 *), OP_XOR, OP_SHIFT (u32 >> by a uniform
//   amount), OP_FMA (f32 a * b + c, counted as one), OP_I2F (i32 to f32), OP_DOT4I8
//   (dot4I8Packed), OP_UNPACK2X16FLOAT, OP_LOAD (a u32 of storage at an index the value gives,
//   masked: one & besides the load), OP_BROADCAST (subgroupBroadcast; needs subgroups);
//   with LOOP (and OP_ADD), 16 adds a round, to time the loop itself.
// Bindings: 0 params (uniform Params {rounds, mask, shift}), 1 data [mask + 1] u32 (OP_LOAD),
//           2 sink [invocations] u32
// Dispatch: (invocations / WG) workgroups.

#ifdef OP_BROADCAST
enable subgroups;
#endif

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

override WG: u32 = 64u;

// Four vec4 values, the state each round works on.
struct State {
  a: vec4<u32>,
  b: vec4<u32>,
  c: vec4<u32>,
  d: vec4<u32>,
}

// The operation, 16 times (OP_UNPACK2X16FLOAT 8).
fn apply(st: State) -> State {
  var a = st.a; var b = st.b; var c = st.c; var d = st.d;
#ifdef OP_ADD
  a = a + b; b = b + c; c = c + d; d = d + a;
#endif
#ifdef OP_MUL
  a = a * b; b = b * c; c = c * d; d = d * a;
#endif
#ifdef OP_XOR
  a = a ^ b; b = b ^ c; c = c ^ d; d = d ^ a;
#endif
#ifdef OP_SHIFT
  let s = vec4<u32>(params.shift);
  a = a >> s; b = b >> s; c = c >> s; d = d >> s;
#endif
#ifdef OP_FMA
  // Each chain converges to 4 / 3: no overflow, no denormals.
  let h = vec4<f32>(0.25);
  let one = vec4<f32>(1.0);
  a = bitcast<vec4<u32>>(bitcast<vec4<f32>>(a) * h + one); b = bitcast<vec4<u32>>(bitcast<vec4<f32>>(b) * h + one);
  c = bitcast<vec4<u32>>(bitcast<vec4<f32>>(c) * h + one); d = bitcast<vec4<u32>>(bitcast<vec4<f32>>(d) * h + one);
#endif
#ifdef OP_I2F
  a = bitcast<vec4<u32>>(vec4<f32>(bitcast<vec4<i32>>(a))); b = bitcast<vec4<u32>>(vec4<f32>(bitcast<vec4<i32>>(b)));
  c = bitcast<vec4<u32>>(vec4<f32>(bitcast<vec4<i32>>(c))); d = bitcast<vec4<u32>>(vec4<f32>(bitcast<vec4<i32>>(d)));
#endif
#ifdef OP_DOT4I8
  a = vec4<u32>(bitcast<u32>(dot4I8Packed(a.x, b.x)), bitcast<u32>(dot4I8Packed(a.y, b.y)), bitcast<u32>(dot4I8Packed(a.z, b.z)), bitcast<u32>(dot4I8Packed(a.w, b.w)));
  b = vec4<u32>(bitcast<u32>(dot4I8Packed(b.x, c.x)), bitcast<u32>(dot4I8Packed(b.y, c.y)), bitcast<u32>(dot4I8Packed(b.z, c.z)), bitcast<u32>(dot4I8Packed(b.w, c.w)));
  c = vec4<u32>(bitcast<u32>(dot4I8Packed(c.x, d.x)), bitcast<u32>(dot4I8Packed(c.y, d.y)), bitcast<u32>(dot4I8Packed(c.z, d.z)), bitcast<u32>(dot4I8Packed(c.w, d.w)));
  d = vec4<u32>(bitcast<u32>(dot4I8Packed(d.x, a.x)), bitcast<u32>(dot4I8Packed(d.y, a.y)), bitcast<u32>(dot4I8Packed(d.z, a.z)), bitcast<u32>(dot4I8Packed(d.w, a.w)));
#endif
#ifdef OP_UNPACK2X16FLOAT
  a = vec4<u32>(bitcast<vec2<u32>>(unpack2x16float(a.x)), bitcast<vec2<u32>>(unpack2x16float(a.y)));
  b = vec4<u32>(bitcast<vec2<u32>>(unpack2x16float(b.x)), bitcast<vec2<u32>>(unpack2x16float(b.y)));
  c = vec4<u32>(bitcast<vec2<u32>>(unpack2x16float(c.x)), bitcast<vec2<u32>>(unpack2x16float(c.y)));
  d = vec4<u32>(bitcast<vec2<u32>>(unpack2x16float(d.x)), bitcast<vec2<u32>>(unpack2x16float(d.y)));
#endif
#ifdef OP_LOAD
  let m = params.mask;
  a = vec4<u32>(data[a.x & m], data[a.y & m], data[a.z & m], data[a.w & m]);
  b = vec4<u32>(data[b.x & m], data[b.y & m], data[b.z & m], data[b.w & m]);
  c = vec4<u32>(data[c.x & m], data[c.y & m], data[c.z & m], data[c.w & m]);
  d = vec4<u32>(data[d.x & m], data[d.y & m], data[d.z & m], data[d.w & m]);
#endif
#ifdef OP_BROADCAST
  a = vec4<u32>(subgroupBroadcast(a.x, 1u), subgroupBroadcast(a.y, 2u), subgroupBroadcast(a.z, 3u), subgroupBroadcast(a.w, 0u));
  b = vec4<u32>(subgroupBroadcast(b.x, 1u), subgroupBroadcast(b.y, 2u), subgroupBroadcast(b.z, 3u), subgroupBroadcast(b.w, 0u));
  c = vec4<u32>(subgroupBroadcast(c.x, 1u), subgroupBroadcast(c.y, 2u), subgroupBroadcast(c.z, 3u), subgroupBroadcast(c.w, 0u));
  d = vec4<u32>(subgroupBroadcast(d.x, 1u), subgroupBroadcast(d.y, 2u), subgroupBroadcast(d.z, 3u), subgroupBroadcast(d.w, 0u));
#endif
  return State(a, b, c, d);
}

// 64 applications a round: a round of SwiftShader's loop costs about 60 adds, so it holds many.
fn apply4(st: State) -> State { return apply(apply(apply(apply(st)))); }
fn apply16(st: State) -> State { return apply4(apply4(apply4(apply4(st)))); }
fn apply64(st: State) -> State { return apply16(apply16(apply16(apply16(st)))); }

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a = vec4<u32>(gid.x) * vec4<u32>(0x9e3779b1u, 0x85ebca6bu, 0xc2b2ae35u, 0x27d4eb2fu);
  var b = a ^ vec4<u32>(0x3c6ef372u);
  var c = a + vec4<u32>(0x7f4a7c15u);
  var d = b * vec4<u32>(5u);
#ifdef OP_FMA
  // Finite, positive floats to start from.
  a &= vec4<u32>(0x3fffffffu); b &= vec4<u32>(0x3fffffffu); c &= vec4<u32>(0x3fffffffu); d &= vec4<u32>(0x3fffffffu);
#endif
  var st = State(a, b, c, d);
  for (var i = 0u; i < params.rounds; i++) {
#ifdef LOOP
    st = apply(st);
#else
    st = apply64(st);
#endif
  }
  let r = st.a ^ st.b ^ st.c ^ st.d;
  sink[gid.x] = r.x ^ r.y ^ r.z ^ r.w;
}
