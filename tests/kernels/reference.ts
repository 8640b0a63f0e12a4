import { seededRandom } from '../../src/runtime/sampler.ts';
import { floatToHalfBits, halfBitsToFloat } from '../../src/model/f16.ts';

export { floatToHalfBits, halfBitsToFloat } from '../../src/model/f16.ts';
/** Quantized weights: the twin reads the same blocks through the TypeScript dequantizer, in float64. */
export { dequantize, quantize, QUANT_BLOCKS, type QuantType } from '../../scripts/lib/quantize.ts';

/**
 * CPU twins of the WGSL kernels, accumulating in float64. Shapes and layouts mirror the shaders'
 * headers; weights arrive already rounded to their storage format.
 */

export function embedding(table: Float64Array, cols: number, tokens: number[]): Float64Array {
  const out = new Float64Array(tokens.length * cols);
  tokens.forEach((tok, t) => out.set(table.subarray(tok * cols, (tok + 1) * cols), t * cols));
  return out;
}

export function rmsnorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const n = w.length;
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[r * n + i] ** 2;
    const scale = 1 / Math.sqrt(sum / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] * scale * w[i];
  }
  return out;
}

/** LayerNorm of each w.length-wide row: (x - mean) / sqrt(var + eps) * w (+ b), the variance about the mean. */
export function layernorm(x: Float64Array, w: Float64Array, b: Float64Array | undefined, eps: number): Float64Array {
  const n = w.length;
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    const row = x.subarray(r * n, (r + 1) * n);
    const mean = row.reduce((a, v) => a + v, 0) / n;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
    for (let i = 0; i < n; i++) out[r * n + i] = ((row[i] - mean) / Math.sqrt(variance + eps)) * w[i] + (b ? b[i] : 0);
  }
  return out;
}

/** y[t, n] = sum_k x[t, k] W[n, k] (+ bias[n]) */
export function linear(x: Float64Array, w: Float64Array, k: number, nOut: number, bias?: Float64Array): Float64Array {
  const nTokens = x.length / k;
  const y = new Float64Array(nTokens * nOut);
  for (let t = 0; t < nTokens; t++) {
    for (let n = 0; n < nOut; n++) {
      let acc = bias ? bias[n] : 0;
      for (let i = 0; i < k; i++) acc += x[t * k + i] * w[n * k + i];
      y[t * nOut + n] = acc;
    }
  }
  return y;
}

/** round() as WGSL has it: to nearest, ties to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Twin of quantize_x.wgsl: x [n, k] (k a multiple of 32) as the int8 path sees it, each block of 32
 * replaced by d * q with d = max|x| / 127, q = round(x * (127 / max|x|)) in f32 arithmetic.
 */
export function quantizeActivations(x: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let max = 0;
    for (let i = b; i < b + 32; i++) max = Math.max(max, Math.abs(x[i]));
    const scale = max > 0 ? Math.fround(127 / max) : 0;
    const d = Math.fround(max / 127);
    for (let i = b; i < b + 32; i++) out[i] = d * Math.max(-127, Math.min(127, roundHalfEven(Math.fround(x[i] * scale))));
  }
  return out;
}

export function rope(
  x: Float64Array,
  shape: { nHeads: number; headDim: number; ropeDim: number; thetaBase: number; neox: boolean },
  pos0: number,
): Float64Array {
  const { nHeads, headDim, ropeDim, thetaBase, neox } = shape;
  const out = Float64Array.from(x);
  const width = nHeads * headDim;
  for (let t = 0; t < x.length / width; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = t * width + h * headDim;
      for (let p = 0; p < ropeDim / 2; p++) {
        const [i0, i1] = neox ? [p, p + ropeDim / 2] : [2 * p, 2 * p + 1];
        const theta = (pos0 + t) * thetaBase ** ((-2 * p) / ropeDim);
        const a = x[base + i0];
        const b = x[base + i1];
        out[base + i0] = a * Math.cos(theta) - b * Math.sin(theta);
        out[base + i1] = a * Math.sin(theta) + b * Math.cos(theta);
      }
    }
  }
  return out;
}

/**
 * Causal attention: query t (at position p = pos0 + t) over cache rows j <= p, except with a
 * window those llama.cpp masks (is_masked_swa, standard: p - j >= window). Scores scale * q.k
 * (default 1 / sqrt(headDim)), then softcap * tanh(s / softcap) with a softcap. The caches here are
 * indexed by position (no ring).
 */
export function attention(
  q: Float64Array, kCache: Float64Array, vCache: Float64Array,
  shape: { nHeads: number; nKvHeads: number; headDim: number; scale?: number; softcap?: number; window?: number }, pos0: number,
): Float64Array {
  const { nHeads, nKvHeads, headDim: hd, scale = 1 / Math.sqrt(hd), softcap = 0, window = 0 } = shape;
  const nTokens = q.length / (nHeads * hd);
  const kvStride = nKvHeads * hd;
  const out = new Float64Array(q.length);
  for (let t = 0; t < nTokens; t++) {
    for (let h = 0; h < nHeads; h++) {
      const kvOff = Math.floor(h / (nHeads / nKvHeads)) * hd;
      const qBase = t * nHeads * hd + h * hd;
      const p = pos0 + t;
      const keys: number[] = [];
      const scores: number[] = [];
      for (let j = 0; j <= p; j++) {
        if (window > 0 && p - j >= window) continue;
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[qBase + d] * kCache[j * kvStride + kvOff + d];
        const s = dot * scale;
        keys.push(j);
        scores.push(softcap > 0 ? softcap * Math.tanh(s / softcap) : s);
      }
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const total = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < hd; d++) {
        let acc = 0;
        keys.forEach((j, i) => (acc += e[i] * vCache[j * kvStride + kvOff + d]));
        out[qBase + d] = acc / total;
      }
    }
  }
  return out;
}

export function swiglu(gate: Float64Array, up: Float64Array): Float64Array {
  return gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
}

/** GELU's tanh form, exact: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
export function geluExact(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

const toHalf = (v: number): number => halfBitsToFloat(floatToHalfBits(v));

/**
 * GELU as llama.cpp's CPU backend computes f32 GELU (ggml-cpu/vec.h, GGML_GELU_FP16): 0 at or below
 * -10, x at or above 10, else x rounded to f16 looked up in a table of f16 values of the tanh form,
 * each evaluated in f32 (ggml_gelu_f32): for x below about -3, 1 + tanh(...) then keeps only f32's
 * absolute precision near 1, as llama.cpp's table does.
 */
export function gelu(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  const f = Math.fround;
  const h = toHalf(x);
  const inner = f(f(f(0.7978845608028654) * h) * f(1 + f(f(f(0.044715) * h) * h)));
  return toHalf(f(f(0.5 * h) * f(1 + f(Math.tanh(inner)))));
}

export function geglu(gate: Float64Array, up: Float64Array): Float64Array {
  return gate.map((g, i) => gelu(g) * up[i]);
}

export function softcap(x: Float64Array, cap: number): Float64Array {
  return x.map((v) => cap * Math.tanh(v / cap));
}

export function add(x: Float64Array, y: Float64Array): Float64Array {
  return x.map((v, i) => v + y[i]);
}

export function argmax(x: Float64Array): number {
  return argmaxFinite(x).id;
}

/** argmax.wgsl's whole result: the first largest finite value's index (-1 if none) and the count of NaN and ±Inf. */
export function argmaxFinite(x: ArrayLike<number>): { id: number; nonFinite: number } {
  let id = -1;
  let nonFinite = 0;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) nonFinite++;
    else if (id === -1 || x[i] > x[id]) id = i;
  }
  return { id, nonFinite };
}

/** Deterministic uniform values in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float64Array {
  const next = seededRandom(seed);
  return Float64Array.from({ length: n }, () => (next() * 2 - 1) * scale);
}
