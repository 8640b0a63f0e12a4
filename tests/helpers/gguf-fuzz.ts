/**
 * Mutations of GGUF files for tests/fuzz.test.ts: a map of every field in a (trusted) seed's header,
 * and edits of those fields, byte flips, truncations, values spliced in by key, and files built
 * from raw bytes (deep nesting, huge declared lengths). Everything is driven by a seeded generator,
 * so a failing mutant is found again by its label.
 */
import { ByteWriter, encodeMetaValue, type MetaValue } from '../../scripts/lib/gguf-writer.ts';

/** mulberry32: a small seeded generator, uniform in [0, 1). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Random = () => number;
export const pick = <T>(rand: Random, items: readonly T[]): T => items[Math.floor(rand() * items.length)];
const int = (rand: Random, n: number): number => Math.floor(rand() * n);

/** What a header field holds; a mutation picks a kind first, so that no kind drowns in token lengths. */
export type FieldKind =
  | 'version' | 'count' | 'keyLength' | 'valueType' | 'itemType' | 'arrayCount' | 'stringLength' | 'scalar'
  | 'nameLength' | 'nDims' | 'dim' | 'tensorType' | 'offset';

export interface Field { at: number; width: 1 | 2 | 4 | 8; kind: FieldKind }

/** One metadata pair: where its key's length field starts, where its type id is, where it ends. */
export interface KVSpan { key: string; at: number; typeAt: number; end: number }

export interface SeedLayout {
  bytes: Uint8Array;
  byKind: Map<FieldKind, Field[]>;
  kvs: KVSpan[];
  /** End of the metadata section, of the tensor infos, and the start of the data section. */
  kvEnd: number;
  infoEnd: number;
  dataOffset: number;
  alignment: number;
}

const FIXED_WIDTH: Record<number, 1 | 2 | 4 | 8> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Maps every field of a well-formed seed's header. Seeds are trusted; this is no reader. */
export function layoutOf(bytes: Uint8Array): SeedLayout {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: Field[] = [];
  const field = (at: number, width: Field['width'], kind: FieldKind) => fields.push({ at, width, kind });
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => Number(view.getBigUint64(at, true));
  const utf8 = new TextDecoder();
  let at = 0;
  const string = (kind: FieldKind): string => {
    field(at, 8, kind);
    const n = u64(at);
    const s = utf8.decode(bytes.subarray(at + 8, at + 8 + n));
    at += 8 + n;
    return s;
  };
  field(4, 4, 'version');
  field(8, 8, 'count');
  field(16, 8, 'count');
  const nTensors = u64(8);
  const nKV = u64(16);
  at = 24;
  const kvs: KVSpan[] = [];
  let alignment = 32;
  for (let i = 0; i < nKV; i++) {
    const start = at;
    const key = string('keyLength');
    const typeAt = at;
    field(at, 4, 'valueType');
    const type = u32(at);
    at += 4;
    if (type === 8) string('stringLength');
    else if (type === 9) {
      field(at, 4, 'itemType');
      const itemType = u32(at);
      field(at + 4, 8, 'arrayCount');
      const n = u64(at + 4);
      at += 12;
      if (itemType === 8) for (let k = 0; k < n; k++) string('stringLength');
      else {
        const width = FIXED_WIDTH[itemType];
        if (n > 0) field(at, width, 'scalar');
        if (n > 1) field(at + (n - 1) * width, width, 'scalar');
        at += n * width;
      }
    } else {
      field(at, FIXED_WIDTH[type], 'scalar');
      if (key === 'general.alignment') alignment = u32(at);
      at += FIXED_WIDTH[type];
    }
    kvs.push({ key, at: start, typeAt, end: at });
  }
  const kvEnd = at;
  for (let i = 0; i < nTensors; i++) {
    string('nameLength');
    field(at, 4, 'nDims');
    const nDims = u32(at);
    at += 4;
    for (let d = 0; d < nDims; d++, at += 8) field(at, 8, 'dim');
    field(at, 4, 'tensorType');
    field(at + 4, 8, 'offset');
    at += 12;
  }
  const byKind = new Map<FieldKind, Field[]>();
  for (const f of fields) {
    const same = byKind.get(f.kind);
    if (same) same.push(f);
    else byKind.set(f.kind, [f]);
  }
  return { bytes, byKind, kvs, kvEnd, infoEnd: at, dataOffset: Math.ceil(at / alignment) * alignment, alignment };
}

/** Values a damaged or hostile count, length or offset takes. */
function hostileU64(rand: Random, old: bigint, fileSize: number, at: number): bigint {
  const choices: (() => bigint)[] = [
    () => 0n, () => 1n, () => old + 1n, () => (old > 0n ? old - 1n : 2n), () => old * 2n + 7n,
    () => 2n ** 31n, () => 2n ** 32n, () => 2n ** 32n + 1n, () => 2n ** 53n, () => 2n ** 53n + 1n,
    () => 2n ** 63n, () => 2n ** 64n - 1n, () => BigInt(fileSize), () => BigInt(fileSize - at),
    () => 600_000_000n, () => 70n << 20n, () => BigInt(int(rand, 1000)),
    () => (BigInt(int(rand, 2 ** 32)) << 32n) | BigInt(int(rand, 2 ** 32)),
  ];
  return pick(rand, choices)();
}

function hostileU32(rand: Random, old: number): number {
  return pick(rand, [0, 1, 9, 13, 64, old + 1, Math.max(0, old - 1), int(rand, 16), 0x7fffffff, 0x80000000, 0xffffffff, int(rand, 2 ** 32)]);
}

export interface Mutant { label: string; bytes: Uint8Array }

/** One field set to a hostile value. */
export function fieldEdit(seed: SeedLayout, rand: Random): Mutant {
  const kinds = [...seed.byKind.keys()];
  const kind = pick(rand, kinds);
  const f = pick(rand, seed.byKind.get(kind)!);
  const bytes = seed.bytes.slice();
  const view = new DataView(bytes.buffer);
  let shown: string;
  if (f.width === 8 && kind !== 'scalar') {
    const v = hostileU64(rand, view.getBigUint64(f.at, true), bytes.byteLength, f.at);
    view.setBigUint64(f.at, v, true);
    shown = String(v);
  } else if (f.width === 4 && kind !== 'scalar') {
    const v = hostileU32(rand, view.getUint32(f.at, true));
    view.setUint32(f.at, v, true);
    shown = String(v);
  } else {
    for (let k = 0; k < f.width; k++) bytes[f.at + k] = pick(rand, [0, 0xff, int(rand, 256)]);
    shown = Array.from(bytes.subarray(f.at, f.at + f.width), (b) => b.toString(16)).join(' ');
  }
  return { label: `${kind}@${f.at}=${shown}`, bytes };
}

/** A key's value type, or an array's element type, changed to another type id. */
export function typeConfusion(seed: SeedLayout, rand: Random): Mutant {
  const f = pick(rand, [...(seed.byKind.get('valueType') ?? []), ...(seed.byKind.get('itemType') ?? [])]);
  const bytes = seed.bytes.slice();
  const type = int(rand, 13);
  new DataView(bytes.buffer).setUint32(f.at, type, true);
  return { label: `${f.kind}@${f.at}=${type}`, bytes };
}

/** A few bytes of the header overwritten. */
export function byteFlips(seed: SeedLayout, rand: Random): Mutant {
  const bytes = seed.bytes.slice();
  const n = 1 + int(rand, 8);
  const at: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = int(rand, seed.infoEnd);
    at.push(i);
    bytes[i] = pick(rand, [bytes[i] ^ (1 << int(rand, 8)), 0, 0xff, int(rand, 256)]);
  }
  return { label: `flips@${at.join(',')}`, bytes };
}

/** The file cut short: within the header half the time, anywhere otherwise. */
export function truncation(seed: SeedLayout, rand: Random): Mutant {
  const end = rand() < 0.5 ? int(rand, seed.infoEnd) : int(rand, seed.bytes.byteLength);
  return { label: `cut@${end}`, bytes: seed.bytes.slice(0, end) };
}

/**
 * The seed with its metadata section rewritten: `pairs` (key → value bytes, or undefined to drop the
 * key) replace the pairs of those keys in place, or are added at the end. The tensor infos and data
 * follow unchanged, the data realigned, so tensor offsets stay right.
 */
export function withMetadata(seed: SeedLayout, pairs: readonly [key: string, value: MetaValue | Uint8Array | undefined][], rename?: [from: string, to: string]): Uint8Array {
  const src = seed.bytes;
  const changes = new Map(pairs);
  const kvs = new ByteWriter();
  let nKV = 0;
  const put = (key: string, value: MetaValue | Uint8Array) => {
    kvs.string(key);
    kvs.bytes(value instanceof Uint8Array ? value : encodeMetaValue(value));
    nKV++;
  };
  for (const kv of seed.kvs) {
    const key = rename && kv.key === rename[0] ? rename[1] : kv.key;
    if (!changes.has(kv.key)) {
      put(key, src.subarray(kv.typeAt, kv.end));
      continue;
    }
    const value = changes.get(kv.key);
    changes.delete(kv.key);
    if (value !== undefined) put(key, value);
  }
  for (const [key, value] of changes) if (value !== undefined) put(key, value);
  const file = new ByteWriter();
  file.bytes(src.subarray(0, 16)); // magic, version, tensor count
  file.u64(nKV);
  file.bytes(kvs.concat());
  file.bytes(src.subarray(seed.kvEnd, seed.infoEnd));
  file.pad(seed.alignment);
  file.bytes(src.subarray(seed.dataOffset));
  return file.concat();
}

/** A file whose only pair nests arrays `depth` deep, one element per level, around a u8 array. */
export function nestedArrays(depth: number, key = 'fuzz.nested'): Uint8Array {
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.string(key);
  w.u32(9); // array
  const level = new Uint8Array(12); // element type ARRAY, one element
  new DataView(level.buffer).setUint32(0, 9, true);
  new DataView(level.buffer).setBigUint64(4, 1n, true);
  for (let d = 1; d < depth; d++) w.bytes(level);
  w.u32(0); // the innermost: a u8 array of 3
  w.u64(3);
  w.bytes(new Uint8Array([1, 2, 3]));
  return w.concat();
}

/** The first bytes of a file whose only pair declares a value of `declared` bytes or elements. */
export function declaring(kind: 'string' | 'u8 array' | 'string array' | 'array array', declared: bigint, key = 'fuzz.huge'): Uint8Array {
  const w = new ByteWriter();
  w.bytes(new TextEncoder().encode('GGUF'));
  w.u32(3);
  w.u64(0);
  w.u64(1);
  w.string(key);
  if (kind === 'string') w.u32(8);
  else {
    w.u32(9);
    w.u32(kind === 'u8 array' ? 0 : kind === 'string array' ? 8 : 9);
  }
  w.u64(declared);
  return w.concat();
}

/** A string array value (type ids, count, strings) built in one pass, for arrays of 100k+ strings. */
export function stringArrayValue(texts: readonly string[]): Uint8Array {
  const utf8 = new TextEncoder();
  const encoded = texts.map((t) => utf8.encode(t));
  const out = new Uint8Array(16 + encoded.reduce((n, b) => n + 8 + b.byteLength, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, 9, true);
  view.setUint32(4, 8, true);
  view.setBigUint64(8, BigInt(texts.length), true);
  let at = 16;
  for (const b of encoded) {
    view.setBigUint64(at, BigInt(b.byteLength), true);
    out.set(b, at + 8);
    at += 8 + b.byteLength;
  }
  return out;
}

/** An f32 (element type 6) or i32 (5) array value of n copies of `fill`. */
export function filledArrayValue(itemType: 5 | 6, n: number, fill: number): Uint8Array {
  const out = new Uint8Array(16 + 4 * n);
  const view = new DataView(out.buffer);
  view.setUint32(0, 9, true);
  view.setUint32(4, itemType, true);
  view.setBigUint64(8, BigInt(n), true);
  (itemType === 6 ? new Float32Array(out.buffer, 16) : new Int32Array(out.buffer, 16)).fill(fill);
  return out;
}
