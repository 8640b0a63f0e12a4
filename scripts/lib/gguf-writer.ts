/**
 * GGUF writing for tests and tools: the writer itself is src/model/gguf-writer.ts; this adds
 * f32Bytes and splitGGUF.
 */
import { readGGUF } from '../../src/model/gguf.ts';
import { bytesSource } from '../../src/storage/source.ts';
import { ByteWriter, TYPE_IDS } from '../../src/model/gguf-writer.ts';

export { ByteWriter, encodeMetaValue, ggufHeader, type MetaValue, type TensorSpec, writeGGUF } from '../../src/model/gguf-writer.ts';

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/**
 * Splits a GGUF file as llama.cpp's `llama-gguf-split --split-max-tensors` does, into `count`
 * parts of ceil(n_tensors / count) tensors each, in file order. Every part is a whole GGUF file:
 * the first carries all of the model's metadata (copied byte for byte), and every part carries
 * split.no (u16, from 0), split.count (u16) and split.tensors.count (i32) and the infos and data
 * of its own tensors. Parts after the first have no general.alignment, so they use 32.
 */
export async function splitGGUF(bytes: Uint8Array, count: number): Promise<Uint8Array[]> {
  const file = await readGGUF(bytesSource(bytes));
  const perPart = Math.ceil(file.tensors.length / count);
  if (!(count >= 2) || (count - 1) * perPart >= file.tensors.length) {
    throw new Error(`splitGGUF: ${file.tensors.length} tensors cannot fill ${count} parts of ${perPart}`);
  }
  const { kvCount, kvEnd } = metadataExtent(bytes);
  const parts: Uint8Array[] = [];
  for (let k = 0; k < count; k++) {
    const tensors = file.tensors.slice(k * perPart, (k + 1) * perPart);
    const alignment = k === 0 ? file.alignment : 32;
    const w = new ByteWriter();
    w.bytes(bytes.subarray(0, 8)); // magic and version
    w.u64(tensors.length);
    w.u64((k === 0 ? kvCount : 0) + 3);
    if (k === 0) w.bytes(bytes.subarray(24, kvEnd));
    w.string('split.no');
    w.u32(TYPE_IDS.u16);
    w.u16(k);
    w.string('split.count');
    w.u32(TYPE_IDS.u16);
    w.u16(count);
    w.string('split.tensors.count');
    w.u32(TYPE_IDS.i32);
    w.i32(file.tensors.length);
    let offset = 0;
    for (const t of tensors) {
      w.string(t.name);
      w.u32(t.dims.length);
      for (const d of t.dims) w.u64(d);
      w.u32(t.type);
      w.u64(offset);
      offset += Math.ceil(t.nBytes / alignment) * alignment;
    }
    w.pad(alignment);
    for (const t of tensors) {
      w.bytes(bytes.subarray(t.offset, t.offset + t.nBytes));
      w.pad(alignment);
    }
    parts.push(w.concat());
  }
  return parts;
}

/** The number of metadata pairs and the offset just past them (where the tensor infos begin). */
function metadataExtent(bytes: Uint8Array): { kvCount: number; kvEnd: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number) => Number(view.getBigUint64(at, true));
  // Bytes of one value of each fixed-size type, by type id; strings (8) and arrays (9) vary.
  const FIXED: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skipValue = (at: number, type: number): number => {
    if (type === TYPE_IDS.string) return at + 8 + u64(at);
    if (type !== TYPE_IDS.array) return at + FIXED[type];
    const itemType = view.getUint32(at, true);
    const n = u64(at + 4);
    at += 12;
    if (FIXED[itemType] !== undefined) return at + n * FIXED[itemType];
    for (let i = 0; i < n; i++) at = skipValue(at, itemType);
    return at;
  };
  const kvCount = u64(16);
  let at = 24;
  for (let i = 0; i < kvCount; i++) {
    at += 8 + u64(at); // key
    const type = view.getUint32(at, true);
    at = skipValue(at + 4, type);
  }
  return { kvCount, kvEnd: at };
}
