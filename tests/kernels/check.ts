/**
 * What the kernel tests share on the Node side: packing weights as the GPU stores them, and
 * comparing a kernel's output with its twin's.
 */
import { expect } from 'vitest';
import { GGMLType } from '../../src/model/gguf.ts';
import * as ref from './reference.ts';

/** Fails with the worst few elements listed, so a wrong kernel reads as a diff, not a boolean. */
export function expectClose(got: number[], want: Float64Array | number[], tol: { abs: number; rel: number }, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const bad: string[] = [];
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const allowed = tol.abs + tol.rel * Math.abs(want[i]);
    if (!(err <= allowed)) {
      worst = Math.max(worst, err);
      if (bad.length < 8) bad.push(`  [${i}] got ${got[i]} want ${want[i]} (|diff| ${err.toExponential(2)} > ${allowed.toExponential(2)})`);
    }
  }
  if (bad.length) throw new Error(`${what}: mismatches (worst |diff| ${worst.toExponential(2)}):\n${bad.join('\n')}`);
}

/** Weight storage: f32 words, or f16 / bf16 halves packed two per word (values rounded to f16 / bf16 first). */
export function packWeight(values: Float64Array, format: 'f32' | 'f16' | 'bf16'): { words: number[]; rounded: Float64Array } {
  if (format === 'f32') {
    const f = Float32Array.from(values);
    return { words: Array.from(new Uint32Array(f.buffer)), rounded: Float64Array.from(f) };
  }
  if (format === 'bf16') return packQuantized(values, GGMLType.BF16);
  const halves = new Uint16Array(values.length + (values.length % 2));
  values.forEach((v, i) => (halves[i] = ref.floatToHalfBits(v)));
  const rounded = Float64Array.from(values, (_, i) => ref.halfBitsToFloat(halves[i]));
  return { words: Array.from(new Uint32Array(halves.buffer)), rounded };
}

/** ggml blocks, zero-padded to a whole word as the weight loader uploads them; `rounded` is what they decode to. */
export function packQuantized(values: Float64Array, type: ref.QuantType): { words: number[]; rounded: Float64Array } {
  const bytes = ref.quantize(values, type);
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  return { words: Array.from(new Uint32Array(padded.buffer)), rounded: ref.dequantize(bytes, type, values.length) };
}

export const f32 = (a: Float64Array): number[] => Array.from(Float32Array.from(a));
/** Inputs as the GPU sees them (rounded to f32), for the twin. */
export const asF32 = (a: Float64Array): Float64Array => Float64Array.from(Float32Array.from(a));
