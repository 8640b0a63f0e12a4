// Argmax over logits [n] f32 -> result [1] u32; ties go to the lowest index (as llama.cpp's greedy sampler).
// Bindings: 0 params (uniform Params {n}), 1 logits [n] f32, 2 result [1] u32
// Dispatch: (1); one workgroup of WG invocations scans strided, then reduces.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;

override WG: u32 = 256u;
var<workgroup> best_val: array<f32, WG>;
var<workgroup> best_idx: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var v = -3.0e38;
  var idx = 0xffffffffu;
  for (var i = lid.x; i < params.n; i += WG) {
    let x = logits[i];
    if (x > v) { v = x; idx = i; } // strictly greater keeps the first index within this stride
  }
  best_val[lid.x] = v;
  best_idx[lid.x] = idx;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      let ov = best_val[lid.x + stride];
      let oi = best_idx[lid.x + stride];
      if (ov > best_val[lid.x] || (ov == best_val[lid.x] && oi < best_idx[lid.x])) {
        best_val[lid.x] = ov;
        best_idx[lid.x] = oi;
      }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { result[0] = best_idx[0]; }
}
