// Split decode attention's second step (flash-decoding): the partial softmaxes of a head's chunks
// (attention_partials.wgsl) combined into its output, as the online softmax does chunk by chunk:
// m = max m_c, l = sum l_c exp(m_c - m), out[d] = sum acc_c[d] exp(m_c - m) / l. An empty chunk
// (m_c = -3e38) weighs exp(-3e38 - m) = 0.
// Bindings: 1 params (uniform Params, as attention.wgsl's; head_dim read),
//           5 out [1, n_heads * head_dim] f32, 6 partials (attention_partials.wgsl) f32
// Dispatch: (n_heads) workgroups of WG; each invocation owns dims lid, lid + WG, ... and reads
//           the (few) chunk maxima itself, so no barrier is needed (CPU adapters pay for those).

@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> partials: array<f32>;

#include "attention_partials"

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let head = wid.x;
  let hd = params.head_dim;
  let n_chunks = u32(partials[0]);
  var m = -3.0e38;
  for (var c = 0u; c < n_chunks; c++) { m = max(m, partials[partial_record(head, c, n_chunks, hd)]); }
  var l = 0.0;
  for (var c = 0u; c < n_chunks; c++) {
    let rec = partial_record(head, c, n_chunks, hd);
    l += partials[rec + 1u] * exp(partials[rec] - m);
  }
  for (var d = lid.x; d < hd; d += WG) {
    var a = 0.0;
    for (var c = 0u; c < n_chunks; c++) {
      let rec = partial_record(head, c, n_chunks, hd);
      a += partials[rec + 2u + d] * exp(partials[rec] - m);
    }
    out[head * hd + d] = a / l;
  }
}
