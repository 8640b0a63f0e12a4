// Split decode attention for CPU adapters (SwiftShader), the heads of a KV head together: as
// attention_subgroup.wgsl with SPLIT (one subgroup of 4 lanes splitting the head's dimensions,
// positions walked in turn, no barrier), but one workgroup serves up to 4 query heads that read
// the same KV head (grouped-query attention), so each K and V value of its chunk is loaded and
// decoded once for all of them. Their 4 running maxima and sums are one vec4, as are their
// scores, added across the lanes by one subgroupAdd per position.
// Query head h reads KV head h / group (group = n_heads / n_kv_heads); a KV head's group is served
// by ceil(group / 4) workgroups of 4 slots, the last one's spare slots computed and not written.
// Positions, windows, rings, softcap: as attention_subgroup.wgsl.
// Bindings: 0 step (uniform Step, one token), 1 params (uniform Params, as attention.wgsl's),
//           2 q [1, n_heads * head_dim] f32, 3 k_cache, 4 v_cache [cache_rows, n_kv_heads * head_dim]
//           in one of kv_cache.wgsl's forms, 6 partials (attention_partials.wgsl) f32
// Variants: head_dim 64 (4 vec4 per lane), or HD128 (8); KV_F16, KV_Q8_0 (kv_cache.wgsl; none: f32).
// Needs subgroups of at least 4. Dispatch: (n_kv_heads * ceil(group / 4), n_chunks) workgroups of 4.

enable subgroups;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;

#include "kv_cache"
#include "tanh"
#include "attention_partials"

#ifdef HD128
const NV: u32 = 8u; // vec4 per lane
#else
const NV: u32 = 4u;
#endif

@compute @workgroup_size(4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3<u32>) {
  let group = params.n_heads / params.n_kv_heads;
  let per_kv = (group + 3u) / 4u; // workgroups per KV head
  let kv_head = wid.x / per_kv;
  let head0 = kv_head * group + (wid.x % per_kv) * 4u; // slot s serves query head head0 + s
  let slots = min(4u, kv_head * group + group - head0);
  let hd4 = params.head_dim / 4u;
  let c = (kv_head * hd4 + lane) * 4u; // the lane's first column in a cache row
  let q_pos = step.pos0;
  var first = 0u;
  if (params.window != 0u && q_pos >= params.window) { first = q_pos + 1u - params.window; }
  // This workgroup's share: first > last leaves it empty (more chunks than positions).
  let share = (q_pos + 1u - first + groups.y - 1u) / groups.y;
  first += wid.y * share;
  let last = min(q_pos, first + share - 1u);

  var qv: array<vec4<f32>, 4 * NV>; // [slot][i]: the lane's i-th vec4 of each slot's query, scaled; spare slots 0
  var acc: array<vec4<f32>, 4 * NV>;
  for (var s = 0u; s < 4u; s++) {
    let h = min(head0 + s, params.n_heads - 1u);
    let on = select(0.0, params.scale, s < slots);
    for (var i = 0u; i < NV; i++) {
      qv[s * NV + i] = q[h * hd4 + lane + 4u * i] * on;
      acc[s * NV + i] = vec4<f32>(0.0);
    }
  }
  var m = vec4<f32>(-3.0e38); // running max of each slot's scores
  var l = vec4<f32>(0.0);     // running sum of exp(score - m)
  var row = first % params.cache_rows;
  for (var p = first; p <= last; p++) {
    let at = row;
    row = select(row + 1u, 0u, row + 1u == params.cache_rows);
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < NV; i++) {
      let k = k4(at, c + 16u * i);
      s += vec4<f32>(dot(qv[i], k), dot(qv[NV + i], k), dot(qv[2u * NV + i], k), dot(qv[3u * NV + i], k));
    }
    s = subgroupAdd(s);
    if (params.softcap != 0.0) {
      let cap = params.softcap;
      s = cap * vec4<f32>(tanh_precise(s.x / cap), tanh_precise(s.y / cap), tanh_precise(s.z / cap), tanh_precise(s.w / cap));
    }
    let m_new = max(m, s);
    let correction = exp(m - m_new);
    let e = exp(s - m_new);
    l = l * correction + e;
    m = m_new;
    for (var i = 0u; i < NV; i++) {
      let v = v4(at, c + 16u * i);
      acc[i] = acc[i] * correction.x + e.x * v;
      acc[NV + i] = acc[NV + i] * correction.y + e.y * v;
      acc[2u * NV + i] = acc[2u * NV + i] * correction.z + e.z * v;
      acc[3u * NV + i] = acc[3u * NV + i] * correction.w + e.w * v;
    }
  }

  if (wid.x == 0u && wid.y == 0u && lane == 0u) { partials[0] = f32(groups.y); }
  for (var s = 0u; s < slots; s++) {
    let rec = partial_record(head0 + s, wid.y, groups.y, params.head_dim);
    if (lane == 0u) { partials[rec] = m[s]; partials[rec + 1u] = l[s]; }
    for (var i = 0u; i < NV; i++) {
      // The lane's i-th vec4: dims 4 (lane + 4 i) .. + 3.
      let a = acc[s * NV + i];
      let d = rec + 2u + 4u * (lane + 4u * i);
      partials[d] = a.x; partials[d + 1u] = a.y; partials[d + 2u] = a.z; partials[d + 3u] = a.w;
    }
  }
}
