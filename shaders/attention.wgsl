// Causal attention over the KV cache, for prefill (many tokens) and decode (one).
// Query row t sits at position p = pos0 + t and attends to key positions first..p: first = 0, or
// with a sliding window (window > 0) max(0, p - window + 1), as llama.cpp masks SWA layers
// (is_masked_swa, LLAMA_SWA_TYPE_STANDARD: masked when p - j >= window). Key position j lives at
// cache row j % cache_rows (cache_rows: the whole context, or a ring of at least window +
// n_tokens - 1 rows). Score s = scale * q.k, then with softcap > 0, s = softcap * tanh(s / softcap)
// (the scale inside the cap, as llama.cpp's flash-attention path; its other path caps q.k and
// scales after, which agrees where scale = 1, as for Gemma 2, whose Q is scaled beforehand).
// Grouped-query: query head h reads KV head h / (n_heads / n_kv_heads).
// Softmax is computed online, one chunk of WG positions at a time, so shared memory stays small
// whatever the context length.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {n_heads, n_kv_heads, head_dim, scale,
//           softcap, window, cache_rows}),
//           2 q [n_tokens, n_heads * head_dim] f32, 3 k_cache, 4 v_cache [cache_rows, n_kv_heads * head_dim]
//           in one of kv_cache.wgsl's forms, 5 out [n_tokens, n_heads * head_dim] f32
//           with SPLIT, 6 partials (attention_partials.wgsl) in place of out
// Variants: KV_F16, KV_Q8_0 (kv_cache.wgsl; none: f32). SPLIT: decode split over the context
//           (flash-decoding): workgroup (head, c) of a grid (n_heads, n_chunks) takes the c-th of
//           n_chunks equal shares of the query's positions and writes its partial softmax;
//           attention_reduce.wgsl combines them. An empty share writes an empty partial.
// Limits:   head_dim <= 4 * WG (each invocation owns up to 4 output dims).
// Dispatch: (n_heads, n_tokens); WG invocations per (head, token). SPLIT: (n_heads, n_chunks), one token.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> q: array<f32>;
#ifdef SPLIT
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
#include "attention_partials"
#else
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
#endif

#define KV_SCALAR
#include "kv_cache"
#include "tanh"

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
var<workgroup> q_row: array<f32, MAX_HEAD_DIM>;
var<workgroup> p: array<f32, WG>;       // scores, then probabilities, of the current chunk
var<workgroup> reduce: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let head = wid.x;
#ifdef SPLIT
  let t = 0u;
#else
  let t = wid.y;
#endif
  let hd = params.head_dim;
  let q_base = t * params.n_heads * hd + head * hd;
  let kv_head = head / (params.n_heads / params.n_kv_heads);
  let kv_off = kv_head * hd;
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

  for (var d = lid.x; d < hd; d += WG) { q_row[d] = q[q_base + d]; }
  workgroupBarrier();

  var m = -3.0e38; // running max
  var l = 0.0;            // running sum of exp
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);

  for (var start = first; start <= last; start += WG) {
    let j = start + lid.x;
    var s = -3.0e38;
    if (j <= last) {
      var dot = 0.0;
      let k_row = j % params.cache_rows;
      for (var d = 0u; d < hd; d++) { dot += q_row[d] * k_at(k_row, kv_off + d); }
      s = dot * params.scale;
      if (params.softcap != 0.0) { s = params.softcap * tanh_precise(s / params.softcap); }
    }
    p[lid.x] = s;
    reduce[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
      if (lid.x < stride) { reduce[lid.x] = max(reduce[lid.x], reduce[lid.x + stride]); }
      workgroupBarrier();
    }
    let m_new = max(m, reduce[0]);
    let correction = exp(m - m_new);
    workgroupBarrier();
    p[lid.x] = select(0.0, exp(s - m_new), j <= last);
    reduce[lid.x] = p[lid.x];
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
      if (lid.x < stride) { reduce[lid.x] += reduce[lid.x + stride]; }
      workgroupBarrier();
    }
    l = l * correction + reduce[0];
    m = m_new;
    let n_valid = min(WG, last + 1u - start);
    let row0 = start % params.cache_rows;
    for (var r = 0u; r < 4u; r++) {
      let d = lid.x + r * WG;
      if (d < hd) {
        var a = acc[r] * correction;
        for (var jj = 0u; jj < n_valid; jj++) {
          let row = select(row0 + jj, row0 + jj - params.cache_rows, row0 + jj >= params.cache_rows);
          a += p[jj] * v_at(row, kv_off + d);
        }
        acc[r] = a;
      }
    }
    workgroupBarrier();
  }

#ifdef SPLIT
  if (head == 0u && wid.y == 0u && lid.x == 0u) { partials[0] = f32(groups.y); }
  let rec = partial_record(head, wid.y, groups.y, hd);
  if (lid.x == 0u) { partials[rec] = m; partials[rec + 1u] = l; }
  for (var r = 0u; r < 4u; r++) {
    let d = lid.x + r * WG;
    if (d < hd) { partials[rec + 2u + d] = acc[r]; }
  }
#else
  for (var r = 0u; r < 4u; r++) {
    let d = lid.x + r * WG;
    if (d < hd) { out[q_base + d] = acc[r] / l; }
  }
#endif
}
