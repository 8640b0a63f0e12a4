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

/**
 * K or V rows [rows, width] stored as a KV cache of form `type` (shaders/kv_cache.wgsl): the words
 * copy_to_cache.wgsl writes, and the values attention reads back. f16: round to nearest, ties to
 * even; Q8_0 as llama.cpp's quantize_row_q8_0 (d = amax / 127 stored as f16, q = round-to-even(x *
 * 127 / amax), in f32), each row padded to a whole word.
 */
export function packKvCache(values: Float64Array, width: number, type: 'f16' | 'q8_0'): { words: number[]; rounded: Float64Array } {
  const rows = values.length / width;
  const rounded = new Float64Array(values.length);
  if (type === 'f16') {
    const halves = new Uint16Array(values.length + (values.length % 2));
    values.forEach((v, i) => {
      halves[i] = ref.floatToHalfBits(Math.fround(v));
      rounded[i] = ref.halfBitsToFloat(halves[i]);
    });
    return { words: Array.from(new Uint32Array(halves.buffer)), rounded };
  }
  const rowBytes = Math.ceil(((width / 32) * 34) / 4) * 4;
  const bytes = new Uint8Array(rows * rowBytes);
  const roundEven = (v: number) => {
    const r = Math.round(v);
    return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < width / 32; b++) {
      const x = Float32Array.from(values.subarray(r * width + b * 32, r * width + b * 32 + 32));
      const amax = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const dh = ref.floatToHalfBits(Math.fround(amax / 127));
      const id = amax !== 0 ? Math.fround(127 / amax) : 0;
      const at = r * rowBytes + b * 34;
      bytes[at] = dh & 0xff;
      bytes[at + 1] = dh >> 8;
      x.forEach((v, i) => {
        const q = roundEven(Math.fround(v * id));
        bytes[at + 2 + i] = q & 0xff;
        rounded[r * width + b * 32 + i] = ref.halfBitsToFloat(dh) * q;
      });
    }
  }
  return { words: Array.from(new Uint32Array(bytes.buffer)), rounded };
}
