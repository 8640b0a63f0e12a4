/**
 * Writes GGUF files: metadata of every value type, tensor infos, alignment and data, laid out as the
 * reader in gguf.ts expects (v2/v3). ggufHeader() gives the header alone, with where each tensor's
 * data goes, so that a converter can stream the data after it (src/model/hf/convert.ts).
 */
import { type GGMLType, tensorByteSize } from './gguf.ts';

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

export const TYPE_IDS = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

const utf8 = new TextEncoder();

/**
 * Little-endian bytes, appended. Scalars and short strings go into one scratch block at a time rather
 * than an allocation each (a vocabulary is ~10^5 of them); long byte runs such as tensor data are
 * kept as they are, uncopied, until concat().
 */
export class ByteWriter {
  private chunks: Uint8Array[] = [];
  private block = new Uint8Array(BLOCK);
  private view = new DataView(this.block.buffer);
  private used = 0;
  length = 0;
  /** Reserves n bytes of the block and returns where they start. */
  private room(n: number): number {
    if (this.used + n > this.block.byteLength) this.flush(Math.max(n, BLOCK));
    const at = this.used;
    this.used += n;
    this.length += n;
    return at;
  }
  private flush(size: number): void {
    if (this.used > 0) this.chunks.push(this.block.subarray(0, this.used));
    this.block = new Uint8Array(size);
    this.view = new DataView(this.block.buffer);
    this.used = 0;
  }
  bytes(b: Uint8Array): void {
    if (b.byteLength <= SHORT) {
      const at = this.room(b.byteLength); // first: room() may start a new block
      this.block.set(b, at);
      return;
    }
    this.flush(BLOCK);
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  /** `this.at(n)` before `this.view`: reserving may start a new block. */
  private at(n: number): [DataView, number] { const at = this.room(n); return [this.view, at]; }
  u8(v: number): void { const [d, at] = this.at(1); d.setUint8(at, v); }
  i8(v: number): void { const [d, at] = this.at(1); d.setInt8(at, v); }
  u16(v: number): void { const [d, at] = this.at(2); d.setUint16(at, v, true); }
  i16(v: number): void { const [d, at] = this.at(2); d.setInt16(at, v, true); }
  u32(v: number): void { const [d, at] = this.at(4); d.setUint32(at, v, true); }
  i32(v: number): void { const [d, at] = this.at(4); d.setInt32(at, v, true); }
  f32(v: number): void { const [d, at] = this.at(4); d.setFloat32(at, v, true); }
  f64(v: number): void { const [d, at] = this.at(8); d.setFloat64(at, v, true); }
  u64(v: bigint | number): void { const [d, at] = this.at(8); d.setBigUint64(at, BigInt(v), true); }
  i64(v: bigint): void { const [d, at] = this.at(8); d.setBigInt64(at, v, true); }
  string(s: string): void { const b = utf8.encode(s); this.u64(b.byteLength); this.bytes(b); }
  pad(alignment: number): void { const n = (alignment - (this.length % alignment)) % alignment; if (n) this.bytes(new Uint8Array(n)); }
  concat(): Uint8Array {
    this.flush(0);
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.byteLength; }
    return out;
  }
}
const BLOCK = 1 << 16;
const SHORT = 4096;

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

/** A metadata value as it follows its key: the type id, then the value. */
function writeMetaValue(w: ByteWriter, meta: MetaValue): void {
  w.u32(TYPE_IDS[meta.type]);
  if (meta.type === 'array') {
    w.u32(TYPE_IDS[meta.itemType]);
    w.u64(meta.value.length);
    for (const v of meta.value) writeScalar(w, meta.itemType, v);
  } else {
    writeScalar(w, meta.type, meta.value);
  }
}

/** The bytes of one metadata value (type id and value), to splice into a file (tests/fuzz.test.ts). */
export function encodeMetaValue(meta: MetaValue): Uint8Array {
  const w = new ByteWriter();
  writeMetaValue(w, meta);
  return w.concat();
}

/** A tensor as the header describes it; its data is `tensorByteSize(type, ∏dims)` bytes. */
export interface TensorHeader {
  name: string;
  type: GGMLType;
  /** ggml order: dims[0] innermost. */
  dims: number[];
}

/** A GGUF header and where the data of each of its tensors starts, relative to the header's end. */
export interface GGUFLayout {
  header: Uint8Array;
  /** Data offset of each tensor (aligned), in the order given. */
  offsets: number[];
  /** Byte size of each tensor's data. */
  sizes: number[];
  /** Bytes of the data section, the last tensor padded to the alignment. */
  dataBytes: number;
  alignment: number;
}

/** The header of a GGUF file holding `tensors` in order, padded so that the data starts aligned. */
export function ggufHeader(options: { version?: number; metadata: Readonly<Record<string, MetaValue>>; tensors: readonly TensorHeader[]; alignment?: number }): GGUFLayout {
  const { version = 3, metadata, tensors } = options;
  const alignment = options.alignment ?? 32;
  const w = new ByteWriter();
  w.bytes(utf8.encode('GGUF'));
  w.u32(version);
  w.u64(tensors.length);
  const entries = Object.entries(metadata);
  if (options.alignment !== undefined && !metadata['general.alignment']) entries.push(['general.alignment', { type: 'u32', value: alignment }]);
  w.u64(entries.length);
  for (const [key, meta] of entries) {
    w.string(key);
    writeMetaValue(w, meta);
  }
  let offset = 0;
  const offsets: number[] = [];
  const sizes: number[] = [];
  for (const t of tensors) {
    const size = tensorByteSize(t.type, t.dims.reduce((a, b) => a * b, 1), t.name);
    offsets.push(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offsets[i]);
  });
  w.pad(alignment);
  return { header: w.concat(), offsets, sizes, dataBytes: offset, alignment };
}

/** A whole GGUF file in memory (tests and tools). */
export function writeGGUF(options: { version?: number; metadata: Readonly<Record<string, MetaValue>>; tensors: TensorSpec[]; alignment?: number }): Uint8Array {
  const layout = ggufHeader(options);
  const w = new ByteWriter();
  w.bytes(layout.header);
  options.tensors.forEach((t, i) => {
    if (t.data.byteLength !== layout.sizes[i]) throw new Error(`tensor ${t.name}: ${t.data.byteLength} bytes given, ${layout.sizes[i]} expected`);
    w.bytes(t.data);
    w.pad(layout.alignment);
  });
  return w.concat();
}
