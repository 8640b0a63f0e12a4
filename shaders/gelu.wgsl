// GELU as llama.cpp's CPU backend computes it for f32 tensors (ggml-cpu/vec.h, GGML_GELU_FP16),
// the tanh form 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) read from a table of f16:
// x <= -10 gives 0, x >= 10 gives x; otherwise x is rounded to f16 and the table holds the f16
// nearest to GELU of that f16. Both roundings are kept here (each up to 2^-11 relative): exact
// GELU differs from llama.cpp's by up to 9.7e-4 relative for x in [0, 10] (3.4e-3 near x = -3,
// where GELU is small; rms 4.8e-4 over [-3, 10]), which moves a 3072-wide down projection by
// ~3e-4 of its output's size per layer: too much for end-to-end logits within 1e-3 of llama.cpp.
// (tests/kernels-families.test.ts checks the kernel against this form and measures the gap.)
// Expects: #include "tanh". Provides: gelu(x) -> f32, round_f16(x) -> f32.

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF_A: f32 = 0.044715;

// x rounded to the nearest f16 value (ties to even), as an f32; |x| within f16's finite range.
// By bits rather than pack2x16float, whose rounding WGSL leaves to the implementation.
fn round_f16(x: f32) -> f32 {
  if (abs(x) < 6.103515625e-5) {
    return round(x * 16777216.0) / 16777216.0; // f16 subnormals: multiples of 2^-24 (round: ties to even)
  }
  let u = bitcast<u32>(x);
  return bitcast<f32>((u + 0xfffu + ((u >> 13u) & 1u)) & 0xffffe000u);
}

fn gelu(x: f32) -> f32 {
  if (x <= -10.0) { return 0.0; }
  if (x >= 10.0) { return x; }
  let h = round_f16(x);
  return round_f16(0.5 * h * (1.0 + tanh_precise(SQRT_2_OVER_PI * h * (1.0 + GELU_COEF_A * h * h))));
}
