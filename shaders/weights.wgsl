// Weight element access, shared by kernels that read a weight matrix.
// Expects:  @binding var<storage, read> W: array<u32>;  raw words of a row-major [rows, k] matrix.
// Variants (one of):
//   W_F32  one element per word
//   W_F16  two halves per u32 word, unpacked with unpack2x16float (no shader-f16 needed)
//   W_BF16 two bfloat16 per u32 word, each the top half of an f32
//   W_Q8_0, W_Q4_0, W_Q4_1, W_Q5_0, W_Q5_1, W_Q4_K, W_Q6_K, W_Q5_K, W_Q3_K, W_Q2_K, W_IQ4_NL, W_IQ4_XS  ggml blocks (and W_Q5_0R, W_Q6_KR: regrouped for CPU adapters) decoded in registers by
//          quant.wgsl, which also gives matvec its per-32-element w_dot32 under W_DOT
// Provides: w_load(i) -> f32, element i of the flat matrix.

#ifdef W_F32
fn w_load(i: u32) -> f32 {
  return bitcast<f32>(W[i]);
}
#endif
#ifdef W_F16
fn w_load(i: u32) -> f32 {
  let pair = unpack2x16float(W[i >> 1u]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}
#endif
#ifdef W_BF16
fn w_load(i: u32) -> f32 {
  let pair = W[i >> 1u];
  return bitcast<f32>(select(pair << 16u, pair & 0xffff0000u, (i & 1u) == 1u));
}
#endif
#ifdef W_Q8_0
#include "quant"
#endif
#ifdef W_Q4_0
#include "quant"
#endif
#ifdef W_Q4_1
#include "quant"
#endif
#ifdef W_Q5_0
#include "quant"
#endif
#ifdef W_Q5_1
#include "quant"
#endif
#ifdef W_Q5_0R
#include "quant"
#endif
#ifdef W_Q6_KR
#include "quant"
#endif
#ifdef W_Q4_K
#include "quant"
#endif
#ifdef W_Q6_K
#include "quant"
#endif
#ifdef W_Q5_K
#include "quant"
#endif
#ifdef W_Q3_K
#include "quant"
#endif
#ifdef W_Q2_K
#include "quant"
#endif
#ifdef W_IQ4_NL
#include "quant"
#endif
#ifdef W_IQ4_XS
#include "quant"
#endif
