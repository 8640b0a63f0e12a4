// Streaming read: XOR of every word of data, as one u32 per workgroup. It exists to measure how fast
// this adapter reads memory (runtime/bench.ts); the XOR keeps the loads from being optimized away.
// Bindings: 0 params (uniform Params {n_vec4, n_threads}), 1 data [n_vec4] vec4<u32>,
//           2 partial [n_workgroups] u32: XOR of the words that workgroup read
// Dispatch: (n_workgroups); n_threads = n_workgroups * WG invocations stride over data, so each
// wave of loads is contiguous across the whole grid.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> partial: array<u32>;

override WG: u32 = 256u;
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
