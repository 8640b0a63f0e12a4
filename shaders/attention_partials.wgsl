// The partial softmaxes of split decode attention (flash-decoding), written by attention.wgsl and
// attention_subgroup.wgsl with SPLIT and combined by attention_reduce.wgsl.
// Layout of the partials buffer, f32: [0] the number of chunks n_chunks (the split dispatch's
// grid height, written by its first workgroup), then per (head, chunk) a record of head_dim + 2:
// m (the chunk's largest score; -3e38 for an empty chunk), l (sum of exp(s - m)), then
// acc[head_dim] (sum of exp(s - m) * v). The query is the one token of a decode step.

fn partial_record(head: u32, chunk: u32, n_chunks: u32, head_dim: u32) -> u32 {
  return 1u + (head * n_chunks + chunk) * (head_dim + 2u);
}
