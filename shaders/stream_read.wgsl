// Streaming read: XOR of every word of data. It exists to measure how fast this adapter reads
// memory (runtime/bench.ts); the XOR keeps the loads from being optimized away. Two access
// patterns, since the fastest read differs by adapter and the bench keeps the faster:
//   (default) grid stride: n_threads invocations stride over data, so each wave of loads is
//             contiguous across the whole grid (what a GPU's memory wants); one u32 per workgroup,
//             reduced through a workgroup atomic.
//   SPANS     each invocation reads its own contiguous span, four vec4s per step, and writes its
//             own XOR, with no barrier (a CPU adapter runs each invocation's loop on one core, and
//             a barrier makes SwiftShader run the shader as a coroutine: this pattern reads about
//             twice as fast there).
// Bindings: 0 params (uniform Params {n_vec4, n_threads}), 1 data [n_vec4] vec4<u32>,
//           2 partial u32: one per workgroup (grid stride) or per invocation (SPANS)
// Dispatch: (n_threads / WG) workgroups.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> partial: array<u32>;

override WG: u32 = 256u;

#ifdef SPANS
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let span = (params.n_vec4 + params.n_threads - 1u) / params.n_threads;
  let end = min(params.n_vec4, (gid.x + 1u) * span);
  var acc = vec4<u32>(0u);
  var i = gid.x * span;
  for (; i + 3u < end; i += 4u) {
    acc ^= data[i] ^ data[i + 1u] ^ data[i + 2u] ^ data[i + 3u];
  }
  for (; i < end; i++) {
    acc ^= data[i];
  }
  partial[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
#else
var<workgroup> group_xor: atomic<u32>;

@compute @workgroup_size(WG)
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
) {
  if (lid == 0u) { atomicStore(&group_xor, 0u); }
  workgroupBarrier();
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < params.n_vec4; i += params.n_threads) {
    acc ^= data[i];
  }
  atomicXor(&group_xor, acc.x ^ acc.y ^ acc.z ^ acc.w);
  workgroupBarrier();
  if (lid == 0u) { partial[wid.x] = atomicLoad(&group_xor); }
}
#endif
