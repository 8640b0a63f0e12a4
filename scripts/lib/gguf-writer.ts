/**
 * A GGUF writer for tests and tools: metadata of every value type, tensor infos, alignment and
 * data, laid out as the reader in src/model/gguf.ts expects (v2/v3).
 */
import { GGMLType, tensorByteSize } from '../../src/model/gguf.ts';

export type MetaValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64' | 'bool' | 'string' | 'u64' | 'i64'; value: readonly (number | bigint | boolean | string)[] };

export interface TensorSpec {
  name: string;
  type: GGMLType;
  /** ggml order: dims[0] innermost. */
  dims: number[];
  /** Raw bytes in the tensor's storage format. */
  data: Uint8Array;
}

const TYPE_IDS = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

class ByteWriter {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): void { this.chunks.push(b); this.length += b.byteLength; }
  private view(n: number, fill: (v: DataView) => void): void {
    const b = new Uint8Array(n);
    fill(new DataView(b.buffer));
    this.bytes(b);
  }
  u8(v: number): void { this.view(1, (d) => d.setUint8(0, v)); }
  i8(v: number): void { this.view(1, (d) => d.setInt8(0, v)); }
  u16(v: number): void { this.view(2, (d) => d.setUint16(0, v, true)); }
  i16(v: number): void { this.view(2, (d) => d.setInt16(0, v, true)); }
  u32(v: number): void { this.view(4, (d) => d.setUint32(0, v, true)); }
  i32(v: number): void { this.view(4, (d) => d.setInt32(0, v, true)); }
  f32(v: number): void { this.view(4, (d) => d.setFloat32(0, v, true)); }
  f64(v: number): void { this.view(8, (d) => d.setFloat64(0, v, true)); }
  u64(v: bigint | number): void { this.view(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  i64(v: bigint): void { this.view(8, (d) => d.setBigInt64(0, v, true)); }
  string(s: string): void { const b = new TextEncoder().encode(s); this.u64(b.byteLength); this.bytes(b); }
  pad(alignment: number): void { const n = (alignment - (this.length % alignment)) % alignment; if (n) this.bytes(new Uint8Array(n)); }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.byteLength; }
    return out;
  }
}

function writeScalar(w: ByteWriter, type: string, value: number | bigint | boolean | string): void {
  switch (type) {
    case 'u8': return w.u8(value as number);
    case 'i8': return w.i8(value as number);
    case 'u16': return w.u16(value as number);
    case 'i16': return w.i16(value as number);
    case 'u32': return w.u32(value as number);
    case 'i32': return w.i32(value as number);
    case 'f32': return w.f32(value as number);
    case 'f64': return w.f64(value as number);
    case 'u64': return w.u64(value as bigint);
    case 'i64': return w.i64(value as bigint);
    case 'bool': return w.u8(value ? 1 : 0);
    case 'string': return w.string(value as string);
  }
  throw new Error(`unknown GGUF value type ${type}`);
}

export function writeGGUF(options: { version?: number; metadata: Readonly<Record<string, MetaValue>>; tensors: TensorSpec[]; alignment?: number }): Uint8Array {
  const { version = 3, metadata, tensors } = options;
  const alignment = options.alignment ?? 32;
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(version);
  w.u64(tensors.length);
  const entries = Object.entries(metadata);
  if (options.alignment !== undefined && !metadata['general.alignment']) entries.push(['general.alignment', { type: 'u32', value: alignment }]);
  w.u64(entries.length);
  for (const [key, meta] of entries) {
    w.string(key);
    w.u32(TYPE_IDS[meta.type]);
    if (meta.type === 'array') {
      w.u32(TYPE_IDS[meta.itemType]);
      w.u64(meta.value.length);
      for (const v of meta.value) writeScalar(w, meta.itemType, v);
    } else {
      writeScalar(w, meta.type, meta.value);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const nElements = t.dims.reduce((a, b) => a * b, 1);
    const expected = tensorByteSize(t.type, nElements, t.name);
    if (t.data.byteLength !== expected) throw new Error(`tensor ${t.name}: ${t.data.byteLength} bytes given, ${expected} expected`);
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]);
  });
  w.pad(alignment);
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(alignment);
  }
  return w.concat();
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
