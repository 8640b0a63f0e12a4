// Argmax over logits [n] f32 -> result [2] u32: the id of the largest finite logit (ties go to the
// lowest index, as llama.cpp's greedy sampler), and how many logits are NaN or ±Inf. Greedy
// decoding reads both back as one small buffer; a non-zero count is a numeric fault, and so is an
// id of NONE (no finite logit at all), so a caller never takes an id outside [0, n).
// Bindings: 0 params (uniform Params {n}), 1 logits [n] f32, 2 result [2] u32 {id, non-finite count}
//           MASK: 3 mask [ceil(n / 32)] u32, a grammar's allowed tokens (bit i & 31 of word i >> 5)
// Variants: MASK picks only among allowed ids (NONE when none is allowed); every logit is still
//   checked for NaN and ±Inf. Reading the mask here costs one u32 per 32 logits in the same scan,
//   where a separate kernel writing -Inf into the logits would cost a dispatch and a pass over
//   [n] f32, and would turn banned logits into the non-finite values this kernel counts as faults
//   (and into what a logits readback returns).
// Dispatch: (1); one workgroup of WG invocations scans strided, then reduces.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;
#ifdef MASK
@group(0) @binding(3) var<storage, read> mask: array<u32>;
#endif

override WG: u32 = 256u;
const NONE = 0xffffffffu;
var<workgroup> best_val: array<f32, WG>;
var<workgroup> best_idx: array<u32, WG>;
var<workgroup> non_finite: atomic<u32>; // zeroed at the start of every dispatch

// By its bits: WGSL lets compilers assume no NaN or Inf, so `x != x` may be folded away.
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var v = 0.0;
  var idx = NONE;
  var bad = 0u;
  for (var i = lid.x; i < params.n; i += WG) {
    let x = logits[i];
    if (!finite(x)) { bad++; continue; }
#ifdef MASK
    if ((mask[i >> 5u] & (1u << (i & 31u))) == 0u) { continue; }
#endif
    if (idx == NONE || x > v) { v = x; idx = i; } // strictly greater keeps the first index within this stride
  }
  if (bad > 0u) { atomicAdd(&non_finite, bad); }
  best_val[lid.x] = v;
  best_idx[lid.x] = idx;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid.x < stride) {
      let ov = best_val[lid.x + stride];
      let oi = best_idx[lid.x + stride];
      let mine = best_idx[lid.x];
      if (oi != NONE && (mine == NONE || ov > best_val[lid.x] || (ov == best_val[lid.x] && oi < mine))) {
        best_val[lid.x] = ov;
        best_idx[lid.x] = oi;
      }
    }
    workgroupBarrier();
  }
  let count = atomicLoad(&non_finite);
  if (lid.x == 0u) {
    result[0] = best_idx[0];
    result[1] = count;
  }
}
