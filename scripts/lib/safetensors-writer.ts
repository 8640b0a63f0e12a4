/**
 * safetensors writing, for tests and tools (the reader is src/model/safetensors.ts):
 *
 *   u64 N (little-endian) | N bytes of JSON header, padded with spaces to a multiple of 8 | data
 *
 * as huggingface/safetensors serializes: the header maps each name to dtype, shape and
 * data_offsets (relative to the data section), plus an optional "__metadata__" of strings; the
 * tensors tile the data section in the order given.
 */
import { floatToHalfBits, halfBitsToFloat } from '../../src/model/f16.ts';

export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface SafetensorsEntry {
  name: string;
  /** Any safetensors dtype; `data` holds its little-endian bytes. */
  dtype: string;
  /** PyTorch order, outermost first. */
  shape: readonly number[];
  data: Uint8Array;
}

export function writeSafetensors(tensors: readonly SafetensorsEntry[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    if (Object.hasOwn(header, t.name)) throw new Error(`writeSafetensors: tensor ${t.name} given twice`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.byteLength] };
    at += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const bytes = new Uint8Array(padded).fill(0x20);
    bytes.set(json);
    json = bytes;
  }
  const out = new Uint8Array(8 + json.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let offset = 8 + json.byteLength;
  for (const t of tensors) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** f32 → bf16 bits, rounding to nearest even as torch's .to(torch.bfloat16) does (NaN kept quiet). */
export function floatToBf16Bits(value: number): number {
  const bits = new Uint32Array(Float32Array.of(value).buffer)[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f32 values stored as `dtype`, little-endian. */
export function encodeFloats(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.slice().buffer);
  const halves = Uint16Array.from(values, dtype === 'F16' ? floatToHalfBits : floatToBf16Bits);
  return new Uint8Array(halves.buffer);
}

/** What `dtype` keeps of each f32 value: the values a reader of the stored form gets back. */
export function roundFloats(values: Float32Array, dtype: FloatDtype): Float32Array {
  if (dtype === 'F32') return values.slice();
  const halves = new Uint16Array(encodeFloats(values, dtype).buffer);
  const out = new Float32Array(values.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
    return out;
  }
  for (let i = 0; i < halves.length; i++) out[i] = halfBitsToFloat(halves[i]);
  return out;
}
