// Causal attention for CPU adapters (SwiftShader): as attention.wgsl, with one subgroup of 4
// invocations per (head, token) and no workgroup barrier. A CPU runs every barrier by switching
// between the workgroup's subgroups, which made attention.wgsl cost ~1 ms per layer on SwiftShader
// at any context length; here the 4 lanes split the head's dimensions, walk the positions together,
// add their partial scores with subgroupAdd, and keep the online softmax in registers.
// Query row t sits at position p = pos0 + t and attends to key positions first..p: first = 0, or
// with a sliding window (window > 0) max(0, p - window + 1); key position j lives at cache row
// j % cache_rows (a ring for sliding-window layers); score s = scale * q.k, then with softcap > 0
// s = softcap * tanh(s / softcap); all as attention.wgsl. Query head h reads KV head
// h / (n_heads / n_kv_heads).
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n_heads, n_kv_heads, head_dim, scale,
//           softcap, window, cache_rows}),
//           2 q [n_tokens, n_heads * head_dim] f32, 3 k_cache, 4 v_cache [cache_rows, n_kv_heads * head_dim]
//           in one of kv_cache.wgsl's forms, 5 out [n_tokens, n_heads * head_dim] f32
//           (all read by four values: lane l owns the head's chunks of 4 l, l + 4, l + 8, ...)
//           with SPLIT, 6 partials (attention_partials.wgsl) in place of out
// Variants: head_dim 64 (4 chunks per lane), or HD128 (8 chunks per lane); KV_F16, KV_Q8_0
//           (kv_cache.wgsl; none: f32). SPLIT: decode split over the context, as attention.wgsl's.
// Needs subgroups of at least 4. Dispatch: (n_heads, n_tokens) workgroups of 4; SPLIT: (n_heads, n_chunks).

enable subgroups;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
#ifdef SPLIT
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
#include "attention_partials"
#else
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
#endif

#include "kv_cache"
#include "tanh"

@compute @workgroup_size(4)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32, @builtin(num_workgroups) groups: vec3<u32>) {
  let head = wid.x;
#ifdef SPLIT
  let t = 0u;
#else
  let t = wid.y;
#endif
  if (t >= step.n_tokens) { return; }
  let hd4 = params.head_dim / 4u;
  let q_at = (t * params.n_heads + head) * hd4 + lane;
  let kv_head = head / (params.n_heads / params.n_kv_heads);
  let c = (kv_head * hd4 + lane) * 4u; // the lane's first column in a cache row
  let q_pos = step.pos0 + t;
  var first = 0u;
  if (params.window != 0u && q_pos >= params.window) { first = q_pos + 1u - params.window; }
  var last = q_pos; // inclusive
#ifdef SPLIT
  // This workgroup's share: first > last leaves it empty (more chunks than positions).
  let share = (q_pos + 1u - first + groups.y - 1u) / groups.y;
  first += wid.y * share;
  last = min(q_pos, first + share - 1u);
#endif

  let q0 = q[q_at] * params.scale; let q1 = q[q_at + 4u] * params.scale;
  let q2 = q[q_at + 8u] * params.scale; let q3 = q[q_at + 12u] * params.scale;
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0); var a2 = vec4<f32>(0.0); var a3 = vec4<f32>(0.0);
#ifdef HD128
  let q4 = q[q_at + 16u] * params.scale; let q5 = q[q_at + 20u] * params.scale;
  let q6 = q[q_at + 24u] * params.scale; let q7 = q[q_at + 28u] * params.scale;
  var a4 = vec4<f32>(0.0); var a5 = vec4<f32>(0.0); var a6 = vec4<f32>(0.0); var a7 = vec4<f32>(0.0);
#endif
  var m = -3.0e38; // running max of the scores
  var l = 0.0;     // running sum of exp(score - m)
  var row = first % params.cache_rows;
  for (var p = first; p <= last; p++) {
    let at = row; // this position's cache row
    row = select(row + 1u, 0u, row + 1u == params.cache_rows);
    var s = dot(q0, k4(at, c)) + dot(q1, k4(at, c + 16u)) + dot(q2, k4(at, c + 32u)) + dot(q3, k4(at, c + 48u));
#ifdef HD128
    s += dot(q4, k4(at, c + 64u)) + dot(q5, k4(at, c + 80u)) + dot(q6, k4(at, c + 96u)) + dot(q7, k4(at, c + 112u));
#endif
    s = subgroupAdd(s);
    if (params.softcap != 0.0) { s = params.softcap * tanh_precise(s / params.softcap); }
    let m_new = max(m, s);
    let correction = exp(m - m_new);
    let e = exp(s - m_new);
    l = l * correction + e;
    m = m_new;
    a0 = a0 * correction + e * v4(at, c); a1 = a1 * correction + e * v4(at, c + 16u);
    a2 = a2 * correction + e * v4(at, c + 32u); a3 = a3 * correction + e * v4(at, c + 48u);
#ifdef HD128
    a4 = a4 * correction + e * v4(at, c + 64u); a5 = a5 * correction + e * v4(at, c + 80u);
    a6 = a6 * correction + e * v4(at, c + 96u); a7 = a7 * correction + e * v4(at, c + 112u);
#endif
  }
#ifdef SPLIT
  if (head == 0u && wid.y == 0u && lane == 0u) { partials[0] = f32(groups.y); }
  let rec = partial_record(head, wid.y, groups.y, params.head_dim);
  if (lane == 0u) { partials[rec] = m; partials[rec + 1u] = l; }
  // The lane's dims: 4 (lane + 4 i) .. + 3 for its i-th vec4.
  let d0 = rec + 2u + 4u * lane;
  put4(d0, a0); put4(d0 + 16u, a1); put4(d0 + 32u, a2); put4(d0 + 48u, a3);
#ifdef HD128
  put4(d0 + 64u, a4); put4(d0 + 80u, a5); put4(d0 + 96u, a6); put4(d0 + 112u, a7);
#endif
#else
  out[q_at] = a0 / l; out[q_at + 4u] = a1 / l; out[q_at + 8u] = a2 / l; out[q_at + 12u] = a3 / l;
#ifdef HD128
  out[q_at + 16u] = a4 / l; out[q_at + 20u] = a5 / l; out[q_at + 24u] = a6 / l; out[q_at + 28u] = a7 / l;
#endif
#endif
}
#ifdef SPLIT

fn put4(at: u32, a: vec4<f32>) {
  partials[at] = a.x; partials[at + 1u] = a.y; partials[at + 2u] = a.z; partials[at + 3u] = a.w;
}
#endif
