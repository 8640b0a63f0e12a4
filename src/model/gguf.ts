import { LanternError } from '../errors.ts';
import { type ByteSource, splitName } from '../storage/source.ts';

/**
 * GGUF reader (versions 2 and 3). The header (metadata and tensor infos) is parsed from the first
 * bytes of the file, read in growing prefixes; tensor data is read later by byte range.
 *
 * Layout: magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | kv pairs | tensor infos |
 *         padding to `general.alignment` (default 32) | tensor data
 */

/** ggml tensor types, numbered as in the file. */
export enum GGMLType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
}

/** [elements per block, bytes per block] for the types whose layout this reader can size. */
const BLOCK_LAYOUT: Partial<Record<GGMLType, readonly [number, number]>> = {
  [GGMLType.F32]: [1, 4], [GGMLType.F16]: [1, 2], [GGMLType.BF16]: [1, 2], [GGMLType.F64]: [1, 8],
  [GGMLType.I8]: [1, 1], [GGMLType.I16]: [1, 2], [GGMLType.I32]: [1, 4], [GGMLType.I64]: [1, 8],
  [GGMLType.Q4_0]: [32, 18], [GGMLType.Q4_1]: [32, 20], [GGMLType.Q5_0]: [32, 22], [GGMLType.Q5_1]: [32, 24],
  [GGMLType.Q8_0]: [32, 34], [GGMLType.Q8_1]: [32, 36],
  [GGMLType.Q2_K]: [256, 84], [GGMLType.Q3_K]: [256, 110], [GGMLType.Q4_K]: [256, 144],
  [GGMLType.Q5_K]: [256, 176], [GGMLType.Q6_K]: [256, 210], [GGMLType.Q8_K]: [256, 292],
  [GGMLType.IQ4_NL]: [32, 18], [GGMLType.IQ4_XS]: [256, 136],
};

export type GGUFScalar = number | bigint | boolean | string;
export type GGUFValue =
  | GGUFScalar
  | string[]
  | boolean[]
  /** An array of arrays: each element one inner array. */
  | GGUFValue[]
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array;

export interface GGUFTensorInfo {
  name: string;
  type: GGMLType;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  nElements: number;
  nBytes: number;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
}

export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  /** Absolute offset where the tensor data section begins (the first part's, when split). */
  dataOffset: number;
  size: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian

export function ggmlTypeName(type: number): string {
  return GGMLType[type] ?? `type ${type}`;
}

export function tensorByteSize(type: GGMLType, nElements: number, name = '?'): number {
  const layout = BLOCK_LAYOUT[type];
  if (!layout) {
    throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Tensor ${name} uses ggml type ${ggmlTypeName(type)}, which Lantern cannot read; use a GGUF of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or IQ4_XS weights.`, { tensor: name, type });
  }
  const [blockElems, blockBytes] = layout;
  if (nElements % blockElems !== 0) {
    throw new LanternError('BAD_MODEL_FILE', `Tensor ${name} has ${nElements} elements, not a whole number of ${ggmlTypeName(type)} blocks of ${blockElems}; the file is damaged.`);
  }
  return (nElements / blockElems) * blockBytes;
}

/**
 * Parses the header of a GGUF file. Reads a prefix of the file, growing it until the header fits.
 *
 * A split GGUF (llama.cpp's gguf-split: NAME-00001-of-0000N.gguf ...) comes as a source whose
 * `parts` say where each file lies. Every part is a whole GGUF file; the first holds the model's
 * metadata, and each part's tensor infos describe the tensors stored in that part. They are
 * merged into one list with offsets into the joined source.
 */
export async function readGGUF(source: ByteSource): Promise<GGUFFile> {
  const parts = source.parts ?? [{ offset: 0, size: source.size }];
  const first = await readHeader(partOf(source, parts[0]));
  const count = metaInteger(first, SPLIT_COUNT) ?? 1;
  if (count <= 1 && parts.length === 1) return first;
  if (count <= 1) {
    throw new LanternError('BAD_MODEL_FILE', `${parts.length} files were given, but the first is not part 1 of a split GGUF (it has no ${SPLIT_COUNT}); load a single .gguf file, or all parts of a split one.`, { parts: parts.length });
  }
  checkSplitNo(first, 0, count);
  if (parts.length < count) {
    throw new LanternError(
      'BAD_MODEL_FILE',
      `This model is split into ${count} files but only ${parts.length} ${parts.length === 1 ? 'was' : 'were'} given: part ${splitName(parts.length, count)} is missing. Put all ${count} parts (…-${splitName(0, count)}.gguf to …-${splitName(count - 1, count)}.gguf) side by side and load the first.`,
      { parts: parts.length, expected: count, missing: parts.length + 1 },
    );
  }
  if (parts.length > count) {
    throw new LanternError('BAD_MODEL_FILE', `This model is split into ${count} files but ${parts.length} were given; load only the ${count} parts of one model.`, { parts: parts.length, expected: count });
  }
  const tensors = [...first.tensors];
  for (let k = 1; k < count; k++) {
    const header = await readHeader(partOf(source, parts[k]));
    checkSplitNo(header, k, count);
    for (const t of header.tensors) tensors.push({ ...t, offset: parts[k].offset + t.offset });
  }
  const expected = metaInteger(first, SPLIT_TENSORS_COUNT);
  if (expected !== undefined && expected !== tensors.length) {
    throw new LanternError('BAD_MODEL_FILE', `The ${count} parts of this split GGUF hold ${tensors.length} tensors, but the first says ${expected}; a part is damaged or from another model, download the parts again.`, { tensors: tensors.length, expected });
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new LanternError('BAD_MODEL_FILE', `Tensor ${t.name} is in two parts of this split GGUF; a part is from another model, download the parts again.`, { tensor: t.name });
    names.add(t.name);
  }
  return { ...first, tensors, size: source.size };
}

/** gguf-split's keys, in every part: this part's index from 0, the number of parts, and of tensors. */
const SPLIT_NO = 'split.no';
const SPLIT_COUNT = 'split.count';
const SPLIT_TENSORS_COUNT = 'split.tensors.count';

function checkSplitNo(header: GGUFFile, k: number, count: number): void {
  const no = metaInteger(header, SPLIT_NO);
  const partCount = metaInteger(header, SPLIT_COUNT);
  if (no !== k || (partCount ?? count) !== count) {
    throw new LanternError(
      'BAD_MODEL_FILE',
      `File ${k + 1} of this split GGUF should be part ${splitName(k, count)}, but its header says ${no === undefined ? 'it is not a split part' : `part ${splitName(no, partCount ?? count)}`}; part ${splitName(k, count)} is missing or misnamed. Load the parts of one model, named as llama-gguf-split wrote them.`,
      { part: k + 1, expected: count, found: no === undefined ? -1 : no + 1 },
    );
  }
}

/** One part of a joined source, read as a file of its own. */
function partOf(source: ByteSource, part: { offset: number; size: number }): ByteSource {
  if (part.offset === 0 && part.size === source.size) return source;
  return { size: part.size, read: (offset, length) => source.read(part.offset + offset, length) };
}

/**
 * The largest header (metadata and tensor infos) Lantern reads. Real headers are a few MB: a
 * 262,144-token vocabulary with scores and token types (Gemma 3's size) and 151,387 merges
 * (Qwen2's count) take 8.1 MiB together (measured in tests/fuzz.test.ts with GPT-2's texts), a
 * chat template tens of KB, a thousand tensor infos about 100 KB. 64 MiB leaves a margin of
 * about seven times that, and bounds what a damaged length can make the reader fetch and hold.
 */
export const MAX_HEADER_BYTES = 64 << 20;
/** The first read; most headers fit, and a larger one is read again in a prefix that fits it. */
const FIRST_READ = 1 << 20;
/** Arrays of arrays nest at most this deep (llama.cpp reads none; gguf-py can write them). */
const MAX_ARRAY_DEPTH = 8;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;

async function readHeader(source: ByteSource): Promise<GGUFFile> {
  let prefix = Math.min(source.size, FIRST_READ);
  for (;;) {
    const bytes = await source.read(0, prefix);
    if (bytes.byteLength < prefix) {
      throw new LanternError('TRUNCATED_FILE', `Asked for the first ${prefix} bytes of the model file and got ${bytes.byteLength}; the file is truncated, download it again.`, { size: source.size });
    }
    try {
      return parseHeader(bytes, source.size);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
      // need() has checked that e.end lies within the file and within MAX_HEADER_BYTES.
      prefix = Math.min(source.size, MAX_HEADER_BYTES, Math.max(prefix * 4, e.end));
    }
  }
}

/** The header goes on past the prefix read so far, up to byte `end` (which lies in the file). */
class NeedMoreBytes extends Error {
  constructor(readonly end: number) {
    super();
  }
}

/** A name from the file, short enough to quote in a message whatever the file holds. */
function shown(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

class Reader {
  private readonly view: DataView;
  pos = 0;
  /** What is being read, for messages: "metadata key \"general.name\"", "tensor \"output.weight\"". */
  what = 'the GGUF header';
  // ignoreBOM: a vocabulary may hold U+FEFF as a token of its own (llama-spm, phi-3).
  private readonly utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
  constructor(private readonly bytes: Uint8Array, private readonly fileSize: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** Makes sure the next n bytes can be read: in the file, within MAX_HEADER_BYTES, in the prefix. */
  private need(n: number): void {
    const end = this.pos + n;
    if (end <= this.bytes.byteLength) return;
    if (end > this.fileSize) {
      throw new LanternError('TRUNCATED_FILE', `The GGUF header runs past the end of the file (${this.fileSize} bytes) in ${this.what}; the file is truncated or damaged, download it again.`, { size: this.fileSize, at: this.what });
    }
    if (end > MAX_HEADER_BYTES) {
      throw new LanternError('BAD_MODEL_FILE', `The GGUF header goes on past ${MAX_HEADER_BYTES >> 20} MiB in ${this.what}; no model's header is that large, so the file is damaged.`, { at: this.what });
    }
    throw new NeedMoreBytes(end);
  }
  u8(): number { this.need(1); return this.view.getUint8(this.pos++); }
  i8(): number { this.need(1); return this.view.getInt8(this.pos++); }
  u16(): number { this.need(2); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(): number { this.need(2); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(): number { this.need(4); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(): number { this.need(4); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(): number { this.need(8); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64(): bigint { this.need(8); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v; }
  i64(): bigint { this.need(8); const v = this.view.getBigInt64(this.pos, true); this.pos += 8; return v; }
  /**
   * A u64 count of items that take at least `minBytes` each, refused before anything is sized by
   * it when the bytes it needs could not be in a header, or are not in the file.
   */
  count(minBytes: number, items: string): number {
    // Read as two u32 halves: no BigInt for each of a vocabulary's 100k+ string lengths.
    this.need(8);
    const low = this.view.getUint32(this.pos, true);
    const high = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    if (high !== 0 || low * minBytes > MAX_HEADER_BYTES) {
      const n = (BigInt(high) << 32n) | BigInt(low);
      throw new LanternError('BAD_MODEL_FILE', `The GGUF header gives ${n} ${items} in ${this.what}, which would take more than ${MAX_HEADER_BYTES >> 20} MiB; the file is damaged.`, { at: this.what, count: String(n) });
    }
    this.need(low * minBytes);
    return low;
  }
  /** A u64 offset or size, which must fit in a JS number. */
  size(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new LanternError('BAD_MODEL_FILE', `The GGUF header gives ${what} as ${v}, which is impossible; the file is damaged.`, { at: this.what });
    }
    return Number(v);
  }
  string(): string {
    const n = this.count(1, 'bytes of string');
    const s = this.utf8.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  /** A copy of n elements of a typed array (the source may be unaligned); n was checked by count(). */
  typed<T>(n: number, width: number, make: (buf: ArrayBuffer) => T): T {
    this.need(n * width);
    // Copied into a fresh buffer: a Node Buffer's slice() is a view into a shared pool.
    const copy = new Uint8Array(n * width);
    copy.set(this.bytes.subarray(this.pos, this.pos + n * width));
    this.pos += n * width;
    return make(copy.buffer);
  }
}

enum ValueType { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 }

/** Bytes one value of each type takes at least: a string its u64 length, an array its type and count. */
const MIN_VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

function readValue(r: Reader, type: number, key: string): GGUFValue {
  switch (type) {
    case ValueType.U8: return r.u8();
    case ValueType.I8: return r.i8();
    case ValueType.U16: return r.u16();
    case ValueType.I16: return r.i16();
    case ValueType.U32: return r.u32();
    case ValueType.I32: return r.i32();
    case ValueType.F32: return r.f32();
    case ValueType.F64: return r.f64();
    case ValueType.BOOL: return r.u8() !== 0;
    case ValueType.STRING: return r.string();
    case ValueType.U64: return narrow(r.u64());
    case ValueType.I64: return narrow(r.i64());
    case ValueType.ARRAY: return readArray(r, key);
    default:
      throw new LanternError('BAD_MODEL_FILE', `Metadata key ${shown(key)} has unknown value type ${type}; the file is damaged or from a newer GGUF version.`, { key });
  }
}

/**
 * An array, arrays of arrays included, read with a stack of the arrays still being filled rather
 * than by recursion, so that no nesting in a file can overflow the call stack.
 */
function readArray(r: Reader, key: string): GGUFValue {
  const open: { items: GGUFValue[]; n: number }[] = [];
  for (;;) {
    const type = r.u32();
    if (!(type in ValueType)) {
      throw new LanternError('BAD_MODEL_FILE', `Metadata array ${shown(key)} has unknown element type ${type}; the file is damaged or from a newer GGUF version.`, { key });
    }
    const n = r.count(MIN_VALUE_BYTES[type], 'array elements');
    if (type === ValueType.ARRAY && n > 0) {
      if (open.length + 1 >= MAX_ARRAY_DEPTH) {
        throw new LanternError('BAD_MODEL_FILE', `Metadata array ${shown(key)} nests arrays more than ${MAX_ARRAY_DEPTH} deep; the file is damaged.`, { key });
      }
      open.push({ items: [], n });
      continue; // its first element comes next
    }
    let value: GGUFValue = type === ValueType.ARRAY ? [] : readFlatArray(r, type, n);
    // Hand the finished array to the one it belongs to; close every array that is now full.
    for (;;) {
      const parent = open.at(-1);
      if (parent === undefined) return value;
      parent.items.push(value);
      if (parent.items.length < parent.n) break;
      open.pop();
      value = parent.items;
    }
  }
}

function readFlatArray(r: Reader, type: ValueType, n: number): GGUFValue {
  switch (type) {
    case ValueType.U8: return r.typed(n, 1, (b) => new Uint8Array(b));
    case ValueType.I8: return r.typed(n, 1, (b) => new Int8Array(b));
    case ValueType.U16: return r.typed(n, 2, (b) => new Uint16Array(b));
    case ValueType.I16: return r.typed(n, 2, (b) => new Int16Array(b));
    case ValueType.U32: return r.typed(n, 4, (b) => new Uint32Array(b));
    case ValueType.I32: return r.typed(n, 4, (b) => new Int32Array(b));
    case ValueType.F32: return r.typed(n, 4, (b) => new Float32Array(b));
    case ValueType.F64: return r.typed(n, 8, (b) => new Float64Array(b));
    case ValueType.U64: return r.typed(n, 8, (b) => new BigUint64Array(b));
    case ValueType.I64: return r.typed(n, 8, (b) => new BigInt64Array(b));
    case ValueType.BOOL: return Array.from(r.typed(n, 1, (b) => new Uint8Array(b)), (v) => v !== 0);
    default: {
      const out = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = r.string();
      return out;
    }
  }
}

function narrow(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function parseHeader(bytes: Uint8Array, fileSize: number): GGUFFile {
  const r = new Reader(bytes, fileSize);
  if (fileSize < 8) {
    throw new LanternError('TRUNCATED_FILE', `The file is only ${fileSize} bytes, too short to be a GGUF model; download it again.`);
  }
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) {
    throw new LanternError('BAD_MODEL_FILE', 'This is not a GGUF file (its first bytes are not "GGUF"); choose a .gguf model file.', { magic });
  }
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    throw new LanternError('UNSUPPORTED_VERSION', `This GGUF file is version ${version}; Lantern reads versions 2 and 3. Convert it with a current llama.cpp.`, { version });
  }
  // A tensor info takes at least 24 bytes (name length, n_dims, type, offset); a pair at least 13.
  r.what = 'the tensor count';
  const nTensors = r.count(24, 'tensors');
  r.what = 'the metadata count';
  const nKV = r.count(13, 'metadata pairs');

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < nKV; i++) {
    r.what = `metadata pair ${i + 1} of ${nKV}`;
    const key = r.string();
    if (key === '') throw new LanternError('BAD_MODEL_FILE', `Metadata pair ${i + 1} has an empty key; the file is damaged.`);
    r.what = `metadata key ${shown(key)}`;
    if (metadata.has(key)) throw new LanternError('BAD_MODEL_FILE', `Metadata key ${shown(key)} appears twice; the file is damaged.`, { key });
    const type = r.u32();
    metadata.set(key, readValue(r, type, key));
  }

  const alignment = alignmentOf(metadata.get(ALIGNMENT_KEY));

  const names = new Set<string>();
  const infos: { name: string; dims: number[]; nElements: number; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    r.what = `tensor info ${i + 1} of ${nTensors}`;
    const name = r.string();
    r.what = `tensor ${shown(name)}`;
    if (names.has(name)) throw new LanternError('BAD_MODEL_FILE', `Tensor ${shown(name)} appears twice in the header; the file is damaged.`, { tensor: name });
    names.add(name);
    const nDims = r.u32();
    if (nDims > MAX_DIMS) throw new LanternError('BAD_MODEL_FILE', `Tensor ${shown(name)} claims ${nDims} dimensions (at most ${MAX_DIMS}); the file is damaged.`, { tensor: name });
    const dims: number[] = [];
    let nElements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dim = r.u64();
      nElements *= dim;
      if (dim === 0n || nElements > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new LanternError('BAD_MODEL_FILE', `Tensor ${shown(name)} has dimension ${d} of ${dim}${dim === 0n ? '' : ', too many elements'}; the file is damaged.`, { tensor: name });
      }
      dims.push(Number(dim));
    }
    const type = r.u32();
    const rel = r.size(`the offset of tensor ${shown(name)}`);
    if (rel % alignment !== 0) {
      throw new LanternError('BAD_MODEL_FILE', `Tensor ${shown(name)} starts at offset ${rel}, not a multiple of the alignment ${alignment}; the file is damaged.`, { tensor: name, offset: rel, alignment });
    }
    infos.push({ name, dims, nElements: Number(nElements), type, rel });
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;

  const tensors: GGUFTensorInfo[] = infos.map(({ name, dims, nElements, type, rel }) => {
    if (!(type in GGMLType)) {
      throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Tensor ${shown(name)} has unknown ggml type ${type}; the file is damaged, or uses a type newer than Lantern knows. Use a GGUF of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or IQ4_XS weights.`, { tensor: name, type });
    }
    const nBytes = tensorByteSize(type, nElements, name);
    const rowBlock = BLOCK_LAYOUT[type as GGMLType]![0];
    if ((dims[0] ?? 1) % rowBlock !== 0) {
      throw new LanternError('BAD_MODEL_FILE', `Tensor ${shown(name)} has rows of ${dims[0] ?? 1} elements, not a whole number of ${ggmlTypeName(type)} blocks of ${rowBlock}; the file is damaged.`, { tensor: name });
    }
    const offset = dataOffset + rel;
    if (offset + nBytes > fileSize) {
      throw new LanternError(
        'TENSOR_OUT_OF_BOUNDS',
        `Tensor ${shown(name)} lies at bytes ${offset}..${offset + nBytes} but the file has ${fileSize} bytes; the file is truncated or damaged, download it again.`,
        { tensor: name, offset, nBytes, fileSize },
      );
    }
    return { name, type, dims, nElements, nBytes, offset };
  });

  return { version, metadata, tensors, alignment, dataOffset, size: fileSize };
}

const ALIGNMENT_KEY = 'general.alignment';
/** llama.cpp reads the alignment as a u32; the largest power of two that fits. */
const MAX_ALIGNMENT = 2n ** 31n;

/** general.alignment: a power of two, checked in 64-bit arithmetic (2^32 + 2 is not one). */
function alignmentOf(value: GGUFValue | undefined): number {
  if (value === undefined) return 32;
  const a = typeof value === 'bigint' ? value : typeof value === 'number' && Number.isInteger(value) ? BigInt(value) : undefined;
  if (a === undefined || a <= 0n || a > MAX_ALIGNMENT || (a & (a - 1n)) !== 0n) {
    throw new LanternError('BAD_MODEL_FILE', `${ALIGNMENT_KEY} is ${describeValue(value)}, not a power of two up to 2^31; the file is damaged.`, { key: ALIGNMENT_KEY });
  }
  return Number(a);
}

/** A metadata value as a message may quote it: short, whatever its size. */
export function describeValue(value: GGUFValue): string {
  if (typeof value === 'string') return `the string ${shown(value)}`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return `an array of ${value.length}`;
}

/** Typed metadata access with a clear error when a required key is missing or of the wrong type. */
export function metaNumber(file: GGUFFile, key: string, fallback?: number): number {
  const v = file.metadata.get(key);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v === undefined && fallback !== undefined) return fallback;
  throw missingOrWrong(key, v, 'number');
}

export function metaString(file: GGUFFile, key: string, fallback?: string): string {
  const v = file.metadata.get(key);
  if (typeof v === 'string') return v;
  if (v === undefined && fallback !== undefined) return fallback;
  throw missingOrWrong(key, v, 'string');
}

/** A count or id: undefined when absent, else a whole number from 0 to 2^53 - 1, whatever its GGUF integer type. */
export function metaInteger(file: GGUFFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if ((typeof v === 'number' || typeof v === 'bigint') && Number.isSafeInteger(Number(v)) && v >= 0) return Number(v);
  throw new LanternError('BAD_MODEL_FILE', `${key} is ${describeValue(v)}, not a whole number from 0; the file is damaged.`, { key });
}

function missingOrWrong(key: string, v: GGUFValue | undefined, type: string): LanternError {
  if (v === undefined) return new LanternError('BAD_MODEL_FILE', `The model file lacks the ${type} ${key}; it was not written by a GGUF converter Lantern knows.`, { key });
  return new LanternError('BAD_MODEL_FILE', `${key} is ${describeValue(v)}, not a ${type}; the file is damaged.`, { key });
}
