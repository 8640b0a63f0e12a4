// Weight element access, shared by kernels that read a weight matrix.
// Expects:  @binding var<storage, read> W: array<u32>;  raw words of a row-major [rows, k] matrix.
// Variants: W_F16  two halves per u32 word, unpacked with unpack2x16float (no shader-f16 needed)
//           (none) f32, one element per word

#ifdef W_F16
fn w_load(i: u32) -> f32 {
  let pair = unpack2x16float(W[i >> 1u]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}
#else
fn w_load(i: u32) -> f32 {
  return bitcast<f32>(W[i]);
}
#endif
