import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { modelConfig } from '../src/runtime/models/index.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource, type ByteSource } from '../src/storage/source.ts';
import { f32Bytes, writeGGUF } from '../scripts/lib/gguf-writer.ts';
import { STORIES_GGUF } from './helpers/paths.ts';

async function expectCode(work: Promise<unknown>, code: string): Promise<LanternError> {
  const error = await work.then(() => undefined, (e: unknown) => e);
  expect(error, `expected a LanternError ${code}`).toBeInstanceOf(LanternError);
  expect((error as LanternError).code).toBe(code);
  expect((error as LanternError).message.length).toBeGreaterThan(20);
  return error as LanternError;
}

const ALL_TYPES = {
  'a.u8': { type: 'u8', value: 250 },
  'a.i8': { type: 'i8', value: -100 },
  'a.u16': { type: 'u16', value: 65000 },
  'a.i16': { type: 'i16', value: -32000 },
  'a.u32': { type: 'u32', value: 4_000_000_000 },
  'a.i32': { type: 'i32', value: -2_000_000_000 },
  'a.f32': { type: 'f32', value: 0.5 },
  'a.f64': { type: 'f64', value: Math.PI },
  'a.u64': { type: 'u64', value: 2n ** 60n },
  'a.i64': { type: 'i64', value: -5n },
  'a.bool': { type: 'bool', value: true },
  'a.string': { type: 'string', value: 'héllo ▁wörld' },
  'a.strings': { type: 'array', itemType: 'string', value: ['<s>', '', '▁a'] },
  'a.floats': { type: 'array', itemType: 'f32', value: [1.5, -2] },
  'a.ints': { type: 'array', itemType: 'i32', value: [1, -2, 3] },
  'a.bools': { type: 'array', itemType: 'bool', value: [true, false] },
} as const;

const tensor = { name: 'w', type: GGMLType.F32, dims: [3, 2], data: f32Bytes([1, 2, 3, 4, 5, 6]) };

describe('GGUF reader', () => {
  for (const version of [2, 3]) {
    it(`reads every metadata value type and tensor infos (v${version}, alignment 64)`, async () => {
      const bytes = writeGGUF({ version, metadata: { ...ALL_TYPES }, tensors: [tensor, { ...tensor, name: 'v', dims: [6] }], alignment: 64 });
      const file = await readGGUF(bytesSource(bytes));
      expect(file.version).toBe(version);
      expect(file.alignment).toBe(64);
      expect(file.dataOffset % 64).toBe(0);
      const m = file.metadata;
      expect([m.get('a.u8'), m.get('a.i8'), m.get('a.u16'), m.get('a.i16'), m.get('a.u32'), m.get('a.i32')]).toEqual([250, -100, 65000, -32000, 4_000_000_000, -2_000_000_000]);
      expect(m.get('a.f32')).toBe(0.5);
      expect(m.get('a.f64')).toBe(Math.PI);
      expect(m.get('a.u64')).toBe(2n ** 60n); // beyond 2^53 stays a bigint
      expect(m.get('a.i64')).toBe(-5);
      expect(m.get('a.bool')).toBe(true);
      expect(m.get('a.string')).toBe('héllo ▁wörld');
      expect(m.get('a.strings')).toEqual(['<s>', '', '▁a']);
      expect(Array.from(m.get('a.floats') as Float32Array)).toEqual([1.5, -2]);
      expect(Array.from(m.get('a.ints') as Int32Array)).toEqual([1, -2, 3]);
      expect(m.get('a.bools')).toEqual([true, false]);
      expect(file.tensors.map((t) => [t.name, t.dims, t.nBytes])).toEqual([['w', [3, 2], 24], ['v', [6], 24]]);
      expect(file.tensors[1].offset - file.tensors[0].offset).toBe(64);
      const data = bytes.subarray(file.tensors[0].offset, file.tensors[0].offset + 24);
      expect(Array.from(new Float32Array(data.slice().buffer))).toEqual([1, 2, 3, 4, 5, 6]);
    });
  }

  it('reads only a prefix of the file for the header, growing it when the header is larger', async () => {
    const big = { 'big.tokens': { type: 'array', itemType: 'string', value: Array.from({ length: 100_000 }, (_, i) => `token${i}`) } } as const;
    const bytes = writeGGUF({ metadata: big, tensors: [tensor] });
    const reads: [number, number][] = [];
    const inner = bytesSource(bytes);
    const source: ByteSource = { size: inner.size, read: (o, n) => { reads.push([o, n]); return inner.read(o, n); } };
    const file = await readGGUF(source);
    expect((file.metadata.get('big.tokens') as string[])[99_999]).toBe('token99999');
    expect(reads.every(([o]) => o === 0)).toBe(true);
    expect(reads.length).toBeGreaterThan(1);
  });

  it('reads the real stories260K header', async () => {
    const file = await readGGUF(bytesSource(readFileSync(STORIES_GGUF)));
    expect(file.tensors.length).toBe(48);
    const { config } = modelConfig(file);
    expect(config).toMatchObject({ architecture: 'llama', nLayers: 5, nEmbd: 64, nFF: 172, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 512, rope: { dims: 8, neox: false }, windows: [0, 0, 0, 0, 0] });
  });

  describe('bad files get a code and a sentence', () => {
    const good = writeGGUF({ metadata: { 'general.architecture': { type: 'string', value: 'llama' } }, tensors: [tensor] });

    it('wrong magic', async () => {
      await expectCode(readGGUF(bytesSource(new TextEncoder().encode('<html>not a model</html>'))), 'BAD_MODEL_FILE');
    });
    it('unsupported version', async () => {
      const v1 = good.slice();
      new DataView(v1.buffer).setUint32(4, 1, true);
      await expectCode(readGGUF(bytesSource(v1)), 'UNSUPPORTED_VERSION');
    });
    it('truncated header', async () => {
      await expectCode(readGGUF(bytesSource(good.subarray(0, 40))), 'TRUNCATED_FILE');
      await expectCode(readGGUF(bytesSource(good.subarray(0, 5))), 'TRUNCATED_FILE');
    });
    it('truncated data: a tensor out of bounds', async () => {
      await expectCode(readGGUF(bytesSource(good.subarray(0, good.length - 20))), 'TENSOR_OUT_OF_BOUNDS');
    });
    it('unsupported tensor type', async () => {
      const odd = writeGGUF({ metadata: {}, tensors: [{ ...tensor, type: GGMLType.F32 }] });
      const file = await readGGUF(bytesSource(odd));
      // Patch the tensor's type id (the u32 after its dims) to an id ggml never assigned.
      const view = new DataView(odd.buffer);
      let typeAt = -1;
      for (let i = 0; i + 4 <= file.dataOffset; i++) if (view.getUint32(i, true) === GGMLType.F32 && view.getBigUint64(i - 8, true) === 2n) typeAt = i;
      view.setUint32(typeAt, 99, true);
      await expectCode(readGGUF(bytesSource(odd)), 'UNSUPPORTED_TENSOR_TYPE');
    });
    it('unsupported architecture', async () => {
      const file = await readGGUF(bytesSource(writeGGUF({ metadata: { 'general.architecture': { type: 'string', value: 'mamba' } }, tensors: [] })));
      expect(() => modelConfig(file)).toThrowError(expect.objectContaining({ code: 'UNSUPPORTED_ARCH' }));
    });
  });
});
