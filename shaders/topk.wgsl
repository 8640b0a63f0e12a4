// Top-k of logits [n] f32, best first: ids and values of the k largest finite logits, ties to the
// lower index (the order the CPU sampler uses), so that sampling reads back 2k + 1 words instead
// of n. NaN and ±Inf logits are never picked but counted: a non-zero count is a numeric fault, and
// a pick past the last finite logit is NONE, which the host refuses rather than sampling from.
// Bindings: 0 params (uniform Params {n, k}), 1 logits [n] f32,
//           2 result [2 * K_MAX + 1] u32: ids in [0, k), f32 bits of their logits in [K_MAX, K_MAX + k),
//             and at 2 * K_MAX the count of non-finite logits
//           MASK: 3 mask [ceil(n / 32)] u32, a grammar's allowed tokens (bit i & 31 of word i >> 5)
// Variants: MASK picks only among allowed ids (as argmax.wgsl's MASK, and for the same reasons);
//   picks past the last allowed finite logit are NONE, which is no fault there.
// Overrides: WG (invocations), K_MAX (capacity of result; k <= K_MAX).
// Dispatch: (1). k rounds; round j finds, in one strided scan and a tree reduction, the best logit
// ordered strictly after pick j-1 (value descending, index ascending), so no candidate list is kept.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<u32>;
#ifdef MASK
@group(0) @binding(3) var<storage, read> mask: array<u32>;
#endif

override WG: u32 = 256u;
override K_MAX: u32 = 256u;
const NONE = 0xffffffffu;
var<workgroup> best_val: array<f32, WG>;
var<workgroup> best_idx: array<u32, WG>;
var<workgroup> non_finite: atomic<u32>; // zeroed at the start of every dispatch

// By its bits: WGSL lets compilers assume no NaN or Inf, so `x != x` may be folded away.
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn allowed(i: u32) -> bool {
#ifdef MASK
  return (mask[i >> 5u] & (1u << (i & 31u))) != 0u;
#else
  return true;
#endif
}

// Whether (v, i) comes before (w, j) in the order value descending, index ascending; NONE comes last.
fn before(v: f32, i: u32, w: f32, j: u32) -> bool {
  if (i == NONE) { return false; }
  if (j == NONE) { return true; }
  return v > w || (v == w && i < j);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var bad = 0u;
  for (var i = lid.x; i < params.n; i += WG) {
    if (!finite(logits[i])) { bad++; }
  }
  if (bad > 0u) { atomicAdd(&non_finite, bad); }
  // Pick j-1; the first round takes every finite logit.
  var prev_val = 0.0;
  var prev_idx = NONE;
  var first = true;
  for (var j = 0u; j < params.k; j++) {
    var v = 0.0;
    var idx = NONE;
    if (first || prev_idx != NONE) {
      for (var i = lid.x; i < params.n; i += WG) {
        let x = logits[i];
        let after_prev = first || before(prev_val, prev_idx, x, i);
        if (finite(x) && allowed(i) && after_prev && before(x, i, v, idx)) { v = x; idx = i; }
      }
    }
    best_val[lid.x] = v;
    best_idx[lid.x] = idx;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
      if (lid.x < stride && before(best_val[lid.x + stride], best_idx[lid.x + stride], best_val[lid.x], best_idx[lid.x])) {
        best_val[lid.x] = best_val[lid.x + stride];
        best_idx[lid.x] = best_idx[lid.x + stride];
      }
      workgroupBarrier();
    }
    prev_val = best_val[0];
    prev_idx = best_idx[0];
    first = false;
    if (lid.x == 0u) {
      result[j] = prev_idx;
      result[K_MAX + j] = bitcast<u32>(prev_val);
    }
    workgroupBarrier(); // best_* is rewritten by the next round
  }
  let count = atomicLoad(&non_finite);
  if (lid.x == 0u) { result[2u * K_MAX] = count; }
}
