// tanh within ~1e-6 relative over the whole f32 range, included by kernels that soft-cap or take
// GELU. WGSL's tanh may be computed as (e^x - e^-x) / (e^x + e^-x), which loses precision near 0
// and turns inf / inf = NaN for large |x| on some backends.
// Provides: tanh_precise(x) -> f32: a Taylor series below |x| = 0.125 (its first omitted term is
//           below 2e-9 relative there), else (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.78, which
//           neither overflows nor cancels.

fn tanh_precise(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.125) {
    let x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
  }
  let e = exp(-2.0 * min(a, 20.0)); // tanh(20) rounds to 1 in f32
  return sign(x) * (1.0 - e) / (1.0 + e);
}
