import { LanternError } from '../errors.ts';
import type { ByteSource } from '../storage/source.ts';
import { halfBitsToFloat } from './f16.ts';

/**
 * safetensors reader (Hugging Face checkpoints). The header is JSON; tensor data is read later by
 * byte range, so a checkpoint never has to sit whole in memory.
 *
 * Layout: u64 N (little-endian) | N bytes of UTF-8 JSON, maybe padded with spaces | data section
 *
 *   { "__metadata__": { "format": "pt" },                        optional, string → string
 *     "transformer.wte.weight": { "dtype": "F32", "shape": [50257, 64], "data_offsets": [BEGIN, END] },
 *     ... }
 *
 * data_offsets are relative to the data section. Nothing in the header is trusted: the checks are
 * those of the reference implementation (huggingface/safetensors 0.6, tensor.rs: read_metadata and
 * Metadata::validate): the header fits in MAX_HEADER_BYTES and in the file; it is a UTF-8 JSON
 * object; each shape's size in bits is a whole number of bytes equal to END − BEGIN, without
 * overflow; the tensors, sorted by offsets, cover the data section exactly, with no gap or
 * overlap, and end where the file ends. Like the reference, keys of an entry other than dtype,
 * shape and data_offsets are ignored. Stricter than the reference, on purpose:
 * - the header must begin with '{' (the reference has this check written but commented out until
 *   its 0.4.0; every writer emits '{' first);
 * - a key given twice in one object is refused: the reference's map silently keeps the last
 *   tensor of a name, so one entry could shadow another;
 * - a dimension or offset must be a whole number as a double, so 2.0 passes where serde would
 *   refuse it for a usize (JSON.parse cannot tell 2.0 from 2), while 2^53 and above are refused.
 */

/** The dtypes the format defines, with their width in bits (F4 and F6 pack below a byte). */
const DTYPE_BITS = new Map<string, number>([
  ['BOOL', 8], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8], ['F8_E8M0', 8], ['F4', 4],
  ['F6_E2M3', 6], ['F6_E3M2', 6], ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32], ['F64', 64], ['I64', 64], ['U64', 64], ['C64', 64],
]);

/** The dtypes Lantern reads as weights; the others parse, with `supported: false`. */
const SUPPORTED_DTYPES = new Set(['F32', 'F16', 'BF16']);

export interface SafetensorsTensor {
  name: string;
  /** One of the format's dtypes: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, ... */
  dtype: string;
  /** Row-major, outermost first, as PyTorch writes it: a Linear weight is [out, in]. [] is a scalar. */
  shape: number[];
  nElements: number;
  /** Absolute byte range of the tensor's data in the file: [begin, end). */
  begin: number;
  end: number;
  /** Whether readTensorF32 can read it (F32, F16, BF16). */
  supported: boolean;
}

export interface SafetensorsFile {
  /** `__metadata__`, or an empty map when the file has none. */
  metadata: Map<string, string>;
  /** In file order (by offset). */
  tensors: SafetensorsTensor[];
  byName: Map<string, SafetensorsTensor>;
  /** Absolute offset of the data section: 8 + the header's length. */
  dataOffset: number;
  size: number;
}

/**
 * The largest header Lantern reads: 100,000,000 bytes, the reference implementation's
 * MAX_HEADER_SIZE. Real headers are small (about 100 bytes per tensor: 5.5 KB for GPT-Neo here,
 * under 200 KB for a checkpoint of a thousand tensors); the cap bounds what a damaged length can
 * make the reader fetch and hold.
 */
export const MAX_HEADER_BYTES = 100_000_000;
/** The first read: the length and, for most files, the whole header. */
const FIRST_READ = 1 << 16;

/** Parses the header of a safetensors file and checks every entry against the file. */
export async function readSafetensors(source: ByteSource): Promise<SafetensorsFile> {
  if (source.size < 8) {
    throw new LanternError('TRUNCATED_FILE', `The safetensors file is ${source.size} bytes long, too short to hold its 8-byte header length; the file is truncated, download it again.`, { size: source.size });
  }
  const prefix = await readExactly(source, 0, Math.min(source.size, FIRST_READ));
  const declared = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new LanternError('BAD_MODEL_FILE', `The safetensors header says it is ${declared} bytes long, more than the format's limit of ${MAX_HEADER_BYTES}; the file is damaged or not a safetensors file.`, { field: 'header length' });
  }
  const headerLength = Number(declared);
  const dataOffset = 8 + headerLength;
  if (dataOffset > source.size) {
    throw new LanternError('TRUNCATED_FILE', `The safetensors header says it is ${headerLength} bytes long, but the file ends at byte ${source.size}; the file is truncated, download it again.`, { field: 'header length', size: source.size });
  }
  const header = dataOffset <= prefix.byteLength ? prefix.subarray(8, dataOffset) : await readExactly(source, 8, headerLength);
  const root = parseJSON(header);
  const { tensors, metadata } = readEntries(root);
  checkLayout(tensors, source.size - dataOffset);
  for (const t of tensors) {
    t.begin += dataOffset;
    t.end += dataOffset;
  }
  return { metadata, tensors, byName: new Map(tensors.map((t) => [t.name, t])), dataOffset, size: source.size };
}

async function readExactly(source: ByteSource, offset: number, length: number): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new LanternError('TRUNCATED_FILE', `Asked for ${length} bytes at ${offset} of the safetensors file and got ${bytes.byteLength}; the file is truncated, download it again.`, { size: source.size });
  }
  return bytes;
}

/** A name from the file, short enough to quote in a message whatever the file holds. */
function shown(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

function damaged(message: string, details: Record<string, unknown>): LanternError {
  return new LanternError('BAD_MODEL_FILE', `${message}; the file is damaged or not a safetensors file.`, details);
}

/** The header's JSON, decoded strictly: UTF-8, an object, no key given twice in any object. */
function parseJSON(header: Uint8Array): Record<string, unknown> {
  if (header[0] !== 0x7b /* { */) {
    throw damaged('The safetensors header does not begin with "{"', { field: 'header' });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    throw damaged('The safetensors header is not valid UTF-8', { field: 'header' });
  }
  let root: unknown;
  try {
    // V8 parses iteratively; an engine that recurses throws on deep nesting, and that is caught here.
    root = JSON.parse(text);
  } catch (e) {
    throw damaged(`The safetensors header is not valid JSON (${(e as Error).message.slice(0, 120)})`, { field: 'header' });
  }
  checkDuplicateKeys(text);
  // Valid JSON that begins with '{' is an object.
  return root as Record<string, unknown>;
}

/**
 * JSON.parse keeps the last of two equal keys, so duplicates are found on the text: one pass over
 * the (already valid) JSON, holding the keys seen in each open object.
 */
function checkDuplicateKeys(text: string): void {
  // One frame per open container: its keys (null for an array), and the key it sits under.
  const open: { keys: Set<string> | null; under: string }[] = [];
  let lastKey = '';
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const frame = open[open.length - 1];
        if (frame.keys!.has(key)) {
          throw open.length === 1
            ? damaged(`The safetensors header names tensor ${shown(key)} twice`, { tensor: key, field: 'name' })
            : damaged(`The safetensors header gives key ${shown(key)} twice in the entry of ${shown(frame.under)}`, { tensor: frame.under, field: key });
        }
        frame.keys!.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      open.push({ keys: c === '{' ? new Set() : null, under: open.length === 1 ? lastKey : (open[open.length - 1]?.under ?? '') });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',') {
      expectKey = open[open.length - 1].keys !== null;
    }
  }
}

function readEntries(root: Record<string, unknown>): { tensors: SafetensorsTensor[]; metadata: Map<string, string> } {
  const metadata = new Map<string, string>();
  const tensors: SafetensorsTensor[] = [];
  // Object.entries lists own keys only, "__proto__" and "constructor" among them, as JSON.parse makes them.
  for (const [name, entry] of Object.entries(root)) {
    if (name === '__metadata__') {
      if (entry === null) continue; // the reference reads null as no metadata
      if (typeof entry !== 'object' || Array.isArray(entry)) {
        throw damaged('The safetensors __metadata__ is not an object of strings', { field: '__metadata__' });
      }
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') {
          throw damaged(`The safetensors __metadata__ key ${shown(key)} holds a ${jsonType(value)}, not a string`, { field: key });
        }
        metadata.set(key, value);
      }
      continue;
    }
    tensors.push(readEntry(name, entry));
  }
  return { tensors, metadata };
}

function jsonType(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value;
}

/** One tensor's entry, checked in itself: dtype known, shape and offsets whole and consistent. */
function readEntry(name: string, entry: unknown): SafetensorsTensor {
  const where = `Tensor ${shown(name)} in the safetensors header`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw damaged(`${where} is a ${jsonType(entry)}, not an object with dtype, shape and data_offsets`, { tensor: name, field: 'entry' });
  }
  const field = (key: string): unknown => {
    if (!Object.hasOwn(entry, key)) throw damaged(`${where} has no ${key}`, { tensor: name, field: key });
    return (entry as Record<string, unknown>)[key];
  };

  const dtype = field('dtype');
  const bits = typeof dtype === 'string' ? DTYPE_BITS.get(dtype) : undefined;
  if (bits === undefined) {
    throw damaged(`${where} has dtype ${typeof dtype === 'string' ? shown(dtype) : jsonType(dtype)}, which is not a safetensors dtype`, { tensor: name, field: 'dtype' });
  }

  const shape = field('shape');
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw damaged(`${where} has shape ${shownJSON(shape)}, not a list of whole numbers ≥ 0`, { tensor: name, field: 'shape' });
  }
  let nElements = 1;
  for (const dim of shape as number[]) {
    nElements *= dim;
    if (!Number.isSafeInteger(nElements)) {
      throw damaged(`${where} has shape ${shownJSON(shape)}, too many elements to count`, { tensor: name, field: 'shape' });
    }
  }
  const nBits = nElements * bits;
  if (!Number.isSafeInteger(nBits) || nBits % 8 !== 0) {
    throw damaged(`${where} has shape ${shownJSON(shape)}, whose ${dtype} data is not a whole number of bytes that can be counted`, { tensor: name, field: 'shape' });
  }

  const offsets = field('data_offsets');
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw damaged(`${where} has data_offsets ${shownJSON(offsets)}, not a pair [begin, end] of whole numbers with begin ≤ end`, { tensor: name, field: 'data_offsets' });
  }
  const [begin, end] = offsets as [number, number];
  if (end - begin !== nBits / 8) {
    throw damaged(`${where} has shape ${shownJSON(shape)} of ${dtype}, ${nBits / 8} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`, { tensor: name, field: 'data_offsets' });
  }
  return { name, dtype: dtype as string, shape: shape as number[], nElements, begin, end, supported: SUPPORTED_DTYPES.has(dtype as string) };
}

/** A whole number ≥ 0 that is exact as a double. */
function isCount(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

/**
 * A value from the file, quoted in a message: one level deep and cut short, since JSON.stringify
 * of a deeply nested value would overflow the stack.
 */
function shownJSON(value: unknown): string {
  const one = (v: unknown): string =>
    Array.isArray(v) ? '[…]' : v !== null && typeof v === 'object' ? '{…}' : (JSON.stringify(v) ?? String(v));
  const s = Array.isArray(value) ? `[${value.slice(0, 8).map(one).join(',')}${value.length > 8 ? ',…' : ''}]` : value !== null && typeof value === 'object' ? '{…}' : one(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * The tensors, sorted by offsets, must tile the data section: each begins where the one before it
 * ends (empty tensors may share an offset), and the last ends where the file ends.
 */
function checkLayout(tensors: SafetensorsTensor[], dataBytes: number): void {
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous: SafetensorsTensor | undefined;
  for (const t of tensors) {
    if (t.begin !== at) {
      const detail = t.begin < at
        ? `overlaps tensor ${shown(previous!.name)} (bytes ${previous!.begin} to ${previous!.end})`
        : `leaves ${t.begin - at} bytes unused before it`;
      throw damaged(`Tensor ${shown(t.name)} in the safetensors header begins at byte ${t.begin} of the data and ${detail}`, { tensor: t.name, field: 'data_offsets' });
    }
    at = t.end;
    previous = t;
  }
  if (at > dataBytes) {
    throw new LanternError('TRUNCATED_FILE', `Tensor ${shown(previous!.name)} ends at byte ${at} of the safetensors data, but the file holds ${dataBytes} bytes of data; the file is truncated, download it again.`, { tensor: previous!.name, field: 'data_offsets', size: dataBytes });
  }
  if (at < dataBytes) {
    const last = previous ? ` (tensor ${shown(previous.name)} is the last)` : '';
    throw damaged(`The safetensors tensors end at byte ${at} of the data${last}, but the file holds ${dataBytes} bytes of data after its header`, { tensor: previous?.name ?? '', field: 'data_offsets' });
  }
}

/**
 * A tensor's values as f32, from F32, F16 or BF16 data, read by byte range. Assumes a little-endian
 * host for F32, as safetensors and every WebGPU platform are.
 */
export async function readTensorF32(source: ByteSource, tensor: SafetensorsTensor): Promise<Float32Array<ArrayBuffer>> {
  if (!tensor.supported) {
    throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Tensor ${shown(tensor.name)} is ${tensor.dtype}, which Lantern cannot read; use a checkpoint of F32, F16 or BF16 weights.`, { tensor: tensor.name, type: tensor.dtype });
  }
  // [nElements] of the tensor's dtype, copied into a buffer of its own so that it is aligned.
  const bytes = (await source.read(tensor.begin, tensor.end - tensor.begin)).slice();
  const width = tensor.dtype === 'F32' ? 4 : 2;
  if (bytes.byteLength !== tensor.nElements * width) {
    throw new LanternError('TRUNCATED_FILE', `Asked for the ${tensor.end - tensor.begin} bytes of tensor ${shown(tensor.name)} and got ${bytes.byteLength}; the file is truncated, download it again.`, { tensor: tensor.name });
  }
  return decodeF32(bytes, tensor.dtype);
}

/**
 * F32, F16 or BF16 values (little-endian, as safetensors stores them) as f32. `bytes` must start on
 * a multiple of 4 within its buffer for F32 (a fresh copy does).
 */
export function decodeF32(bytes: Uint8Array, dtype: string): Float32Array<ArrayBuffer> {
  if (dtype === 'F32') {
    return bytes.byteOffset % 4 === 0 && bytes.buffer instanceof ArrayBuffer
      ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      : new Float32Array(bytes.slice().buffer);
  }
  const halves = bytes.byteOffset % 2 === 0 && bytes.buffer instanceof ArrayBuffer ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer);
  const out = new Float32Array(halves.length); // [n] f32
  if (dtype === 'BF16') {
    // bf16 is the top half of an f32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  } else {
    const table = halfTable();
    for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]];
  }
  return out;
}

let halfTableCache: Float32Array | undefined;
/** The value of every f16 bit pattern: [65536] f32, 256 KiB, built on first use. */
function halfTable(): Float32Array {
  if (!halfTableCache) {
    halfTableCache = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTableCache[h] = halfBitsToFloat(h);
  }
  return halfTableCache;
}
