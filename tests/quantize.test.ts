/**
 * Quantize-on-load (src/model/quantize.ts) against llama.cpp's own quantizer: ggml_quantize_chunk
 * in node-llama-cpp's libggml-base, called through koffi, must write the same bytes for every
 * input (random normals at many scales, zeros, constant rows, huge and tiny values, several rows at
 * once). Then the streaming RowQuantizer: pieces that end anywhere give the bytes of the whole.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { floatToHalfBits, halfBitsToFloat } from '../src/model/f16.ts';
import { folderFiles } from '../src/cli/model-source.ts';
import { readGGUF } from '../src/model/gguf.ts';
import { convertCheckpoint } from '../src/model/hf/convert.ts';
import { readSafetensors, readTensorF32 } from '../src/model/safetensors.ts';
import { QUANTIZE_LAYOUT, quantizedByteSize, quantizedRowBytes, quantizeRows, type QuantizeType, RowQuantizer } from '../src/model/quantize.ts';
import { seeded } from './helpers/gguf-fuzz.ts';
import { REPO_ROOT } from './helpers/paths.ts';

const TYPES: QuantizeType[] = ['q8_0', 'q4_0', 'q4_k', 'f16', 'bf16'];
/** enum ggml_type in ggml/include/ggml.h. */
const GGML_TYPE_ID: Record<QuantizeType, number> = { q8_0: 8, q4_0: 2, q4_k: 12, f16: 1, bf16: 30 };

// node-llama-cpp (a dev dependency) ships llama.cpp's ggml as shared libraries; libggml-base holds the quantizers.
const platform = `${process.platform}-${process.arch}`;
const GGML_BASE = resolve(REPO_ROOT, `node_modules/@node-llama-cpp/${platform}/bins/${platform}/libggml-base.so`);

function loadGgml() {
  if (!existsSync(GGML_BASE)) {
    throw new Error(`llama.cpp's ggml library is not at ${GGML_BASE}: these tests compare against it, so install the dev dependencies (npm ci) on a ${platform} machine that node-llama-cpp ships binaries for.`);
  }
  const lib = koffi.load(GGML_BASE);
  return {
    quantizeChunk: lib.func('size_t ggml_quantize_chunk(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)'),
    typeName: lib.func('const char *ggml_type_name(int type)'),
    rowSize: lib.func('size_t ggml_row_size(int type, int64_t ne)'),
  };
}
const ggml = loadGgml();

/** llama.cpp's bytes for `values` ([nRows, rowLength] f32). */
function ggmlQuantize(type: QuantizeType, values: Float32Array, rowLength: number): Uint8Array {
  const nRows = values.length / rowLength;
  const out = new Uint8Array(quantizedByteSize(type, rowLength, nRows));
  const written = Number(ggml.quantizeChunk(GGML_TYPE_ID[type], values, out, 0, nRows, rowLength, null));
  expect(written).toBe(out.length);
  return out;
}

/** Where two byte arrays first differ, as a readable line (or 'equal'). */
function firstDifference(type: QuantizeType, ours: Uint8Array, theirs: Uint8Array): string {
  if (ours.length !== theirs.length) return `${ours.length} bytes against llama.cpp's ${theirs.length}`;
  const block = QUANTIZE_LAYOUT[type].blockBytes;
  for (let i = 0; i < ours.length; i++) {
    if (ours[i] !== theirs[i]) {
      const b = Math.floor(i / block);
      const hex = (a: Uint8Array) => Buffer.from(a.subarray(b * block, (b + 1) * block)).toString('hex');
      return `byte ${i} (block ${b}, byte ${i % block}): ours ${hex(ours)}\n                               llama.cpp ${hex(theirs)}`;
    }
  }
  return 'equal';
}

/** Standard normals (Box-Muller), seeded. */
function normals(n: number, seed: number, scale: number): Float32Array {
  const next = seeded(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return out;
}

/** Named inputs, [nRows, rowLength] f32; every row length is whole Q4_K blocks, so every type takes every case. */
function cases(): { name: string; rowLength: number; values: Float32Array }[] {
  const list: { name: string; rowLength: number; values: Float32Array }[] = [];
  for (const [i, scale] of [1e-4, 0.02, 1, 7.5, 300, 6e4].entries()) list.push({ name: `normals × ${scale}`, rowLength: 256, values: normals(1024, 11 + i, scale) });

  // Mostly zeros with a few normals, whole zero sub-blocks, and a whole zero block.
  const sparse = normals(1024, 21, 1);
  for (let i = 0; i < sparse.length; i++) if (i % 3 !== 0 || (i >= 256 && i < 320) || i >= 768) sparse[i] = 0;
  list.push({ name: 'zeros', rowLength: 256, values: sparse });

  // All-equal rows, blocks and sub-blocks; min > 0 and max < 0 sub-blocks.
  const equal = new Float32Array(1024);
  for (let i = 0; i < 256; i++) equal[i] = 0.75;
  for (let i = 256; i < 512; i++) equal[i] = -3.25;
  for (let i = 512; i < 768; i++) equal[i] = (i >> 5) % 2 ? 2.5 : -1e-3;
  for (let i = 768; i < 1024; i++) equal[i] = 1 + ((i >> 5) & 3);
  list.push({ name: 'all-equal', rowLength: 256, values: equal });

  // Ties: q8_0 and q4_0 scales of exactly 1 over values on half steps, and a ramp.
  const ties = new Float32Array(512);
  for (let i = 0; i < 256; i++) ties[i] = i % 32 === 0 ? 127 : ((i % 32) - 16) * 4 + 0.5;
  for (let i = 256; i < 512; i++) ties[i] = i % 32 === 0 ? -8 : ((i % 32) % 16) - 7.5;
  list.push({ name: 'half-step ties', rowLength: 256, values: ties });
  list.push({ name: 'ramp', rowLength: 512, values: Float32Array.from({ length: 512 }, (_, i) => (i - 200) / 64) });

  // Huge and tiny magnitudes: overflows of sums and f16 scales, subnormal f32 and f16, underflow to 0.
  for (const [i, scale] of [1e18, 1e30, 1e36, 1e-20, 1e-30, 1e-38, 1e-42].entries()) list.push({ name: `normals × ${scale}`, rowLength: 256, values: normals(512, 31 + i, scale) });
  const extremes = normals(1024, 41, 1);
  extremes[3] = 3.4e38;
  extremes[300] = -3.4028234663852886e38;
  extremes[600] = 1.4e-45;
  extremes[700] = 65519;
  extremes[701] = 65520;
  extremes[800] = -1e-7;
  list.push({ name: 'outliers', rowLength: 256, values: extremes });
  const mixed = new Float32Array(1024);
  for (let i = 0; i < mixed.length; i++) mixed[i] = normals(1, 50 + i, 1)[0] * 10 ** (((i >> 5) % 16) * 3 - 24);
  list.push({ name: 'a scale per sub-block, 1e-24 to 1e21', rowLength: 256, values: mixed });

  list.push({ name: 'one row of 768', rowLength: 768, values: normals(768, 61, 0.05) });
  list.push({ name: 'five rows of 512', rowLength: 512, values: normals(2560, 62, 0.1) });
  return list;
}

describe('quantizeRows: the bytes of llama.cpp\'s ggml_quantize_chunk', () => {
  it('names the ggml types and row sizes as this file assumes', () => {
    const names: Record<QuantizeType, string> = { q8_0: 'q8_0', q4_0: 'q4_0', q4_k: 'q4_K', f16: 'f16', bf16: 'bf16' };
    for (const type of TYPES) {
      expect(ggml.typeName(GGML_TYPE_ID[type])).toBe(names[type]);
      expect(Number(ggml.rowSize(GGML_TYPE_ID[type], 768))).toBe(quantizedRowBytes(type, 768));
    }
  });

  for (const type of TYPES) {
    it(`${type}: every byte matches`, () => {
      for (const { name, rowLength, values } of cases()) {
        const ours = quantizeRows(type, values, rowLength);
        const theirs = ggmlQuantize(type, values, rowLength);
        expect(firstDifference(type, ours, theirs), `${type}, ${name}`).toBe('equal');
      }
    });
  }

  it('f16 and bf16: random f32 bit patterns, NaNs with payloads, infinities and signed zeros', () => {
    const next = seeded(71);
    const bits = new Uint32Array(1 << 16);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(next() * 2 ** 32);
    // Around the f16 rounding edges: every f32 exponent from 2^-26 to 2^17, ties and their neighbours.
    for (let i = 0; i < 4096; i++) bits[i] = (((101 + (i % 44)) << 23) | (((i >> 6) & 1) << 31) | ((i * 0x1000 + (i & 3) - 1) & 0x7fffff)) >>> 0;
    bits.set([0x7fc00000, 0xffc00000, 0x7f800001, 0xff812345, 0x7fbfffff, 0x7f800000, 0xff800000, 0, 0x80000000, 1, 0x80000001, 0x477fefff, 0x477ff000, 0x33000000, 0x33000001], 4096);
    const values = new Float32Array(bits.buffer);
    for (const type of ['f16', 'bf16'] as const) {
      expect(firstDifference(type, quantizeRows(type, values, 256), ggmlQuantize(type, values, 256)), type).toBe('equal');
    }
    // And f16 agrees with the codec the GGUF reader uses, on every value that is not NaN.
    const ours = new Uint16Array(quantizeRows('f16', values, 256).buffer);
    const disagree = [...values.keys()].filter((i) => !Number.isNaN(values[i]) && ours[i] !== floatToHalfBits(values[i]));
    expect(disagree.map((i) => bits[i].toString(16))).toEqual([]);
  });

  it('refuses NaN and infinity for the block types, and rows that are not whole blocks', () => {
    const values = normals(256, 81, 1);
    for (const bad of [NaN, Infinity, -Infinity]) {
      values[100] = bad;
      for (const type of ['q8_0', 'q4_0', 'q4_k'] as const) {
        expect(() => quantizeRows(type, values, 256)).toThrow(expect.objectContaining({ code: 'NUMERIC_ERROR' }));
      }
    }
    expect(() => quantizeRows('q4_k', new Float32Array(576), 576)).toThrow(/576 values are not a whole number of 256-value q4_k blocks/);
    expect(() => quantizeRows('q8_0', new Float32Array(100), 64)).toThrow(LanternError);
    expect(() => quantizedRowBytes('q5_0' as QuantizeType, 32)).toThrow(/choose one of q8_0, q4_0, q4_k, f16, bf16/);
    expect(() => quantizedRowBytes('q8_0', 0)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(quantizedByteSize('q4_k', 768, 5)).toBe(5 * 3 * 144);
  });
});

describe('RowQuantizer: a tensor in pieces that need not end on a row', () => {
  /** Source bytes of `values` as `dtype`, little-endian, and the f32 values they hold. */
  function sourceBytes(values: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): { bytes: Uint8Array; f32: Float32Array } {
    if (dtype === 'F32') return { bytes: new Uint8Array(values.slice().buffer), f32: values };
    const halves = new Uint16Array(values.length);
    const f32 = new Float32Array(values.length);
    const bits = new Uint32Array(f32.buffer);
    for (let i = 0; i < values.length; i++) {
      if (dtype === 'F16') {
        halves[i] = floatToHalfBits(values[i]);
        f32[i] = halfBitsToFloat(halves[i]);
      } else {
        halves[i] = new Uint32Array(new Float32Array([values[i]]).buffer)[0] >>> 16;
        bits[i] = halves[i] << 16;
      }
    }
    return { bytes: new Uint8Array(halves.buffer), f32 };
  }

  for (const type of TYPES) {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      it(`${type} from ${dtype}: pieces of any size give the bytes of the whole`, () => {
        const rowLength = type === 'q4_k' ? 512 : type === 'f16' || type === 'bf16' ? 101 : 96;
        const nRows = 7;
        const { bytes, f32 } = sourceBytes(normals(nRows * rowLength, 91, 0.5), dtype);
        const whole = quantizeRows(type, f32, rowLength);
        const next = seeded(92);
        for (const maxPiece of [1, 7, 1000, bytes.length]) {
          const rows = new RowQuantizer(type, rowLength, dtype, nRows);
          const parts: Uint8Array[] = [];
          // Pieces are views at odd offsets into one buffer, as a stream's chunks may be.
          for (let at = 0; at < bytes.length; ) {
            const size = Math.min(bytes.length - at, 1 + Math.floor(next() * maxPiece));
            parts.push(rows.push(bytes.subarray(at, at + size)));
            at += size;
          }
          rows.end();
          expect(rows.rows).toBe(nRows);
          expect(Buffer.concat(parts).equals(whole), `pieces up to ${maxPiece} bytes`).toBe(true);
        }
      });
    }
  }

  it('quantizes a piece of more rows than its batch in several batches', () => {
    const rowLength = 256;
    const values = normals(1500 * rowLength, 93, 1); // 1.5 MB of f32: over one 1 MiB batch
    const rows = new RowQuantizer('q4_0', rowLength);
    const head = rows.push(new Uint8Array(values.buffer, 0, values.byteLength - 10));
    const tail = rows.push(new Uint8Array(values.buffer, values.byteLength - 10));
    rows.end();
    expect(head.length).toBe(1499 * 144);
    expect(Buffer.concat([head, tail]).equals(ggmlQuantize('q4_0', values, rowLength))).toBe(true);
  });

  it('says when the data stops mid-row, or holds too few or too many rows', () => {
    const part = new RowQuantizer('q8_0', 64, 'F16', 2);
    expect(part.push(new Uint8Array(258)).length).toBe(2 * 68);
    expect(() => part.end()).toThrow(expect.objectContaining({ code: 'TRUNCATED_FILE' }));
    const few = new RowQuantizer('q8_0', 64, 'F32', 3);
    few.push(new Uint8Array(512));
    expect(() => few.end()).toThrow(/after 2 of its 3 rows/);
    const many = new RowQuantizer('q8_0', 64, 'F32', 1);
    expect(() => many.push(new Uint8Array(512))).toThrow(expect.objectContaining({ code: 'BAD_MODEL_FILE' }));
    expect(() => new RowQuantizer('q8_0', 64, 'F64' as 'F32')).toThrow(/pass F32, F16 or BF16 data/);
    expect(() => new RowQuantizer('q8_0', 64, 'F32', 1.5)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => new RowQuantizer('q4_k', 576)).toThrow(/not a whole number of 256-value q4_k blocks/);
  });
});

describe('quantize on load: a converted checkpoint holds what ggml_quantize_chunk gives for its floats', () => {
  const NEO = resolve(REPO_ROOT, '../shared/models/tinystories-gptneo');
  const TYPE_OF = new Map<number, QuantizeType>(Object.entries(GGML_TYPE_ID).map(([name, id]) => [id, name as QuantizeType]));
  for (const choice of ['q8_0', 'q4_0', 'q4_k', 'f16'] as const) {
    it(`${choice}: the layer-0 matrices and the embedding of tinystories-gptneo, byte for byte`, async () => {
      const files = folderFiles(NEO);
      try {
        const converted = await convertCheckpoint(files, { quantize: choice });
        const file = await readGGUF(converted.source);
        const checkpoint = await readSafetensors(await files.open('model.safetensors'));
        const types = new Set<string>();
        // The layer-0 matrices (rows of 64 and of 256) and the tied embedding.
        const names = new Map([
          ['blk.0.attn_q.weight', 'transformer.h.0.attn.attention.q_proj.weight'],
          ['blk.0.ffn_up.weight', 'transformer.h.0.mlp.c_fc.weight'],
          ['blk.0.ffn_down.weight', 'transformer.h.0.mlp.c_proj.weight'],
          ['token_embd.weight', 'transformer.wte.weight'],
        ]);
        for (const [name, source] of names) {
          const info = file.tensors.find((t) => t.name === name)!;
          const type = TYPE_OF.get(info.type)!;
          types.add(`${name}:${type}`);
          const floats = await readTensorF32(await files.open('model.safetensors'), checkpoint.byName.get(source)!);
          const expected = ggmlQuantize(type, floats, info.dims[0]);
          const actual = await converted.source.read(info.offset, info.nBytes);
          expect(Buffer.from(actual).equals(Buffer.from(expected)), `${name} as ${type}: ${firstDifference(type, actual, expected)}`).toBe(true);
        }
        // Which type each matrix took: the choice, with llama.cpp's fallbacks and the output kept at q8_0 for 4-bit choices.
        const expectedTypes: Record<typeof choice, string[]> = {
          q8_0: ['q8_0', 'q8_0', 'q8_0', 'q8_0'],
          q4_0: ['q4_0', 'q4_0', 'q4_0', 'q8_0'],
          q4_k: ['q4_0', 'q4_0', 'q4_k', 'q8_0'],
          f16: ['f16', 'f16', 'f16', 'f16'],
        };
        expect([...types].map((t) => t.split(':')[1])).toEqual(expectedTypes[choice]);
      } finally {
        await files.close?.();
      }
    });
  }
});
