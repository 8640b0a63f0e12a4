import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { floatToHalfBits, halfBitsToFloat } from '../src/model/f16.ts';
import { MAX_HEADER_BYTES, readSafetensors, readTensorF32, type SafetensorsFile } from '../src/model/safetensors.ts';
import { type ByteSource, bytesSource, checkRange } from '../src/storage/source.ts';
import { seeded } from './helpers/gguf-fuzz.ts';
import { REPO_ROOT, SHARED_MODELS_DIR } from './helpers/paths.ts';

const GPTNEO_DIR = resolve(SHARED_MODELS_DIR, 'tinystories-gptneo');
const GPTNEO_F16_DIR = resolve(SHARED_MODELS_DIR, 'tinystories-gptneo-f16');
const read = (path: string) => new Uint8Array(readFileSync(path));

/** The tensor names and shapes of a GPTNeoForCausalLM checkpoint (lm_head tied, so absent). */
function gptNeoShapes(config: { hidden_size: number; num_layers: number; vocab_size: number; max_position_embeddings: number }): Map<string, number[]> {
  const h = config.hidden_size;
  const shapes = new Map<string, number[]>([
    ['transformer.wte.weight', [config.vocab_size, h]],
    ['transformer.wpe.weight', [config.max_position_embeddings, h]],
    ['transformer.ln_f.weight', [h]],
    ['transformer.ln_f.bias', [h]],
  ]);
  for (let i = 0; i < config.num_layers; i++) {
    const p = `transformer.h.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) shapes.set(`${p}.attn.attention.${proj}.weight`, [h, h]);
    shapes.set(`${p}.attn.attention.out_proj.bias`, [h]);
    for (const ln of ['ln_1', 'ln_2']) {
      shapes.set(`${p}.${ln}.weight`, [h]);
      shapes.set(`${p}.${ln}.bias`, [h]);
    }
    // intermediate_size null: the MLP is 4 × hidden.
    shapes.set(`${p}.mlp.c_fc.weight`, [4 * h, h]);
    shapes.set(`${p}.mlp.c_fc.bias`, [4 * h]);
    shapes.set(`${p}.mlp.c_proj.weight`, [h, 4 * h]);
    shapes.set(`${p}.mlp.c_proj.bias`, [h]);
  }
  return shapes;
}

/** The tensors tile the data section, in order, up to the end of the file. */
function expectTiled(file: SafetensorsFile): void {
  let at = file.dataOffset;
  for (const t of file.tensors) {
    expect(t.begin).toBe(at);
    expect(t.end).toBeGreaterThanOrEqual(t.begin);
    at = t.end;
  }
  expect(at).toBe(file.size);
  expect(file.byName.size).toBe(file.tensors.length);
}

describe('safetensors: the real GPT-Neo checkpoints', () => {
  const config = JSON.parse(readFileSync(resolve(GPTNEO_DIR, 'config.json'), 'utf8'));

  for (const [dir, dtype] of [[GPTNEO_DIR, 'F32'], [GPTNEO_F16_DIR, 'F16']] as const) {
    it(`lists every tensor of a GPTNeoForCausalLM with its shape (${dtype})`, async () => {
      const bytes = read(resolve(dir, 'model.safetensors'));
      const file = await readSafetensors(bytesSource(bytes));
      expect(config).toMatchObject({ hidden_size: 64, num_layers: 4, vocab_size: 50257 });
      const expected = gptNeoShapes(config);
      expect(new Map(file.tensors.map((t) => [t.name, t.shape]))).toEqual(expected);
      expect(file.tensors.every((t) => t.dtype === dtype && t.supported)).toBe(true);
      expect([...file.metadata]).toEqual([['format', 'pt']]);
      // 3,448,512 parameters, as the model's README says.
      expect(file.tensors.reduce((n, t) => n + t.nElements, 0)).toBe(3_448_512);
      const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      expect(file.dataOffset).toBe(8 + headerLength);
      expectTiled(file);
    });
  }

  it('decodes the same weights from F32 and F16 within f16 rounding', async () => {
    const f32Source = bytesSource(read(resolve(GPTNEO_DIR, 'model.safetensors')));
    const f16Source = bytesSource(read(resolve(GPTNEO_F16_DIR, 'model.safetensors')));
    const f32 = await readSafetensors(f32Source);
    const f16 = await readSafetensors(f16Source);
    for (const name of ['transformer.wpe.weight', 'transformer.h.2.mlp.c_fc.weight']) {
      const a = await readTensorF32(f32Source, f32.byName.get(name)!);
      const b = await readTensorF32(f16Source, f16.byName.get(name)!);
      expect(a.length).toBe(f32.byName.get(name)!.nElements);
      expect(b.length).toBe(a.length);
      let worst = 0;
      let exact = 0;
      for (let i = 0; i < a.length; i++) {
        // Half an f16 ulp: 2^-11 relative for normal values, 2^-25 absolute for subnormal ones.
        worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]) * 2 ** -11, 2 ** -25));
        if (halfBitsToFloat(floatToHalfBits(a[i])) === b[i]) exact++;
      }
      expect(worst).toBeLessThanOrEqual(1);
      // The F16 file was written by rounding the F32 weights to nearest: every value is that rounding.
      expect(exact).toBe(a.length);
      expect(a.some((x) => x !== 0)).toBe(true);
    }
  });

  it('reads a tensor by its byte range, not the whole file', async () => {
    const bytes = read(resolve(GPTNEO_DIR, 'model.safetensors'));
    const reads: [number, number][] = [];
    const inner = bytesSource(bytes);
    const source: ByteSource = { size: inner.size, read: (offset, length) => (reads.push([offset, length]), inner.read(offset, length)) };
    const file = await readSafetensors(source);
    expect(reads.every(([, length]) => length <= 1 << 16)).toBe(true);
    reads.length = 0;
    const bias = file.byName.get('transformer.ln_f.bias')!;
    const values = await readTensorF32(source, bias);
    expect(reads).toEqual([[bias.begin, 64 * 4]]);
    expect(Array.from(values)).toEqual(Array.from(new Float32Array(bytes.slice(bias.begin, bias.end).buffer)));
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-built files

const utf8 = new TextEncoder();

/** A safetensors file: the length (or `length` in its place), the header, `data` bytes. */
function fileOf(header: string | Uint8Array, data: Uint8Array | number = 0, length?: bigint): Uint8Array {
  const text = typeof header === 'string' ? utf8.encode(header) : header;
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + text.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(body, 8 + text.byteLength);
  return out;
}

const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const parse = (bytes: Uint8Array) => readSafetensors(bytesSource(bytes));

async function refusal(bytes: Uint8Array): Promise<LanternError> {
  try {
    await parse(bytes);
  } catch (e) {
    expect(e).toBeInstanceOf(LanternError);
    return e as LanternError;
  }
  throw new Error('the file was accepted');
}

describe('safetensors: hostile headers', () => {
  const ok = JSON.stringify({ a: entry('F32', [2], [0, 8]) });

  // [what, file, code, details]
  const cases: [string, Uint8Array, string, Record<string, unknown>][] = [
    ['a file shorter than 8 bytes', new Uint8Array(5), 'TRUNCATED_FILE', {}],
    ['a header length over the cap', fileOf(ok, 8, BigInt(MAX_HEADER_BYTES) + 1n), 'BAD_MODEL_FILE', { field: 'header length' }],
    ['a header length of 2^64 - 1', fileOf(ok, 8, 2n ** 64n - 1n), 'BAD_MODEL_FILE', { field: 'header length' }],
    ['a header length past the end of the file', fileOf(ok, 8, BigInt(ok.length + 9)), 'TRUNCATED_FILE', { field: 'header length' }],
    ['a header that does not begin with {', fileOf(` ${ok}`, 8), 'BAD_MODEL_FILE', { field: 'header' }],
    ['a header that is a list', fileOf('[]', 0), 'BAD_MODEL_FILE', { field: 'header' }],
    ['a header that is not UTF-8', fileOf(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 'BAD_MODEL_FILE', { field: 'header' }],
    ['an encoded surrogate', fileOf(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d])), 'BAD_MODEL_FILE', { field: 'header' }],
    ['a header that is not JSON', fileOf(ok.slice(0, -1), 8), 'BAD_MODEL_FILE', { field: 'header' }],
    ['an entry that is a number', fileOf('{"w":5}'), 'BAD_MODEL_FILE', { tensor: 'w', field: 'entry' }],
    ['an entry that is a list', fileOf('{"w":[0,8]}'), 'BAD_MODEL_FILE', { tensor: 'w', field: 'entry' }],
    ['an entry that is null', fileOf('{"w":null}'), 'BAD_MODEL_FILE', { tensor: 'w', field: 'entry' }],
    ['an entry without dtype', fileOf('{"w":{"shape":[2],"data_offsets":[0,8]}}', 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'dtype' }],
    ['an entry without shape', fileOf('{"w":{"dtype":"F32","data_offsets":[0,8]}}', 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['an entry without data_offsets', fileOf('{"w":{"dtype":"F32","shape":[2]}}', 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['an unknown dtype', fileOf(JSON.stringify({ w: entry('F128', [2], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'dtype' }],
    ['a dtype that is a number', fileOf(JSON.stringify({ w: entry(0, [2], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'dtype' }],
    ['a dtype named after a prototype key', fileOf(JSON.stringify({ w: entry('constructor', [2], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'dtype' }],
    ['a negative dimension', fileOf(JSON.stringify({ w: entry('F32', [-2], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a fractional dimension', fileOf(JSON.stringify({ w: entry('F32', [1.5, 2], [0, 12]) }), 12), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a dimension given as a string', fileOf(JSON.stringify({ w: entry('F32', ['2'], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a nested shape', fileOf(JSON.stringify({ w: entry('F32', [[2]], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a shape that is not a list', fileOf(JSON.stringify({ w: entry('F32', 2, [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a dimension past 2^53', fileOf('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a dimension of 1e400', fileOf('{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}}', 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['an element count that overflows', fileOf(JSON.stringify({ w: entry('F32', [2 ** 26, 2 ** 26, 2 ** 26, 0], [0, 0]) })), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['a byte count that overflows', fileOf(JSON.stringify({ w: entry('F64', [2 ** 51], [0, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['F4 data that is not whole bytes', fileOf(JSON.stringify({ w: entry('F4', [3], [0, 2]) }), 2), 'BAD_MODEL_FILE', { tensor: 'w', field: 'shape' }],
    ['offsets that are not a pair', fileOf(JSON.stringify({ w: entry('F32', [2], [0, 8, 16]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['offsets that are a string', fileOf(JSON.stringify({ w: entry('F32', [2], '0,8') }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['a negative offset', fileOf(JSON.stringify({ w: entry('F32', [2], [-8, 0]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['a fractional offset', fileOf(JSON.stringify({ w: entry('F32', [2], [0.5, 8.5]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['offsets in reverse', fileOf(JSON.stringify({ w: entry('F32', [0], [8, 0]) }), 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['offsets that do not match the shape', fileOf(JSON.stringify({ w: entry('F32', [2], [0, 12]) }), 12), 'BAD_MODEL_FILE', { tensor: 'w', field: 'data_offsets' }],
    ['overlapping tensors', fileOf(JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'b', field: 'data_offsets' }],
    ['two tensors on the same bytes', fileOf(JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F16', [4], [0, 8]) }), 8), 'BAD_MODEL_FILE', { field: 'data_offsets' }],
    ['a gap between tensors', fileOf(JSON.stringify({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }), 12), 'BAD_MODEL_FILE', { tensor: 'b', field: 'data_offsets' }],
    ['data that does not begin at 0', fileOf(JSON.stringify({ a: entry('F32', [1], [4, 8]) }), 8), 'BAD_MODEL_FILE', { tensor: 'a', field: 'data_offsets' }],
    ['a tensor past the end of the file', fileOf(JSON.stringify({ a: entry('F32', [4], [0, 16]) }), 8), 'TRUNCATED_FILE', { tensor: 'a', field: 'data_offsets' }],
    ['bytes after the last tensor', fileOf(ok, 12), 'BAD_MODEL_FILE', { tensor: 'a', field: 'data_offsets' }],
    ['data without tensors', fileOf('{}', 4), 'BAD_MODEL_FILE', { field: 'data_offsets' }],
    ['a tensor named twice', fileOf(`{"w":${JSON.stringify(entry('F32', [1], [0, 4]))},"w":${JSON.stringify(entry('F32', [1], [4, 8]))}}`, 8), 'BAD_MODEL_FILE', { tensor: 'w', field: 'name' }],
    ['a prototype name given twice', fileOf(`{"__proto__":${JSON.stringify(entry('F32', [1], [0, 4]))},"\\u005f_proto__":${JSON.stringify(entry('F32', [1], [4, 8]))}}`, 8), 'BAD_MODEL_FILE', { tensor: '__proto__', field: 'name' }],
    ['an entry with dtype twice', fileOf('{"w":{"dtype":"F32","shape":[1],"dtype":"I32","data_offsets":[0,4]}}', 4), 'BAD_MODEL_FILE', { tensor: 'w', field: 'dtype' }],
    ['metadata given twice', fileOf(`{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"},"w":${JSON.stringify(entry('F32', [1], [0, 4]))}}`, 4), 'BAD_MODEL_FILE', { tensor: '__metadata__', field: 'name' }],
    ['metadata that is a list', fileOf(JSON.stringify({ __metadata__: ['pt'] })), 'BAD_MODEL_FILE', { field: '__metadata__' }],
    ['metadata that is a string', fileOf(JSON.stringify({ __metadata__: 'pt' })), 'BAD_MODEL_FILE', { field: '__metadata__' }],
    ['a metadata value that is a number', fileOf(JSON.stringify({ __metadata__: { format: 'pt', step: 3 } })), 'BAD_MODEL_FILE', { field: 'step' }],
    ['a metadata value that is an object', fileOf('{"__metadata__":{"__proto__":{"polluted":"yes"}}}'), 'BAD_MODEL_FILE', { field: '__proto__' }],
  ];

  for (const [what, bytes, code, details] of cases) {
    it(`refuses ${what} with ${code}`, async () => {
      const e = await refusal(bytes);
      expect(e.code).toBe(code);
      expect(e.details).toMatchObject(details);
      expect(e.message).toMatch(/download it again\.$|not a safetensors file\.$/);
      if (typeof details.tensor === 'string' && details.tensor !== '') expect(e.message).toContain(JSON.stringify(details.tensor));
    });
  }

  it('refuses deep nesting in a shape, and parses it in a field it ignores, without crashing', async () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const e = await refusal(fileOf(`{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`));
    expect(e.details).toMatchObject({ tensor: 'w', field: 'shape' });
    const file = await parse(fileOf(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":${deep}}}`, 8));
    expect(file.byName.get('w')!.shape).toEqual([2]);
  });

  it('keeps prototype names as tensor and metadata names, without touching Object.prototype', async () => {
    const header = `{"__metadata__":{"__proto__":"x","constructor":"y"},"__proto__":${JSON.stringify(entry('F32', [1], [0, 4]))},"constructor":${JSON.stringify(entry('F16', [2], [4, 8]))},"toString":${JSON.stringify(entry('U8', [0], [8, 8]))}}`;
    const file = await parse(fileOf(header, 8));
    expect(file.tensors.map((t) => t.name)).toEqual(['__proto__', 'constructor', 'toString']);
    expect(file.byName.get('__proto__')!.dtype).toBe('F32');
    expect(file.byName.get('constructor')!.shape).toEqual([2]);
    expect([...file.metadata]).toEqual([['__proto__', 'x'], ['constructor', 'y']]);
    expect(({} as Record<string, unknown>).dtype).toBeUndefined();
    expect(typeof ({}).toString).toBe('function');
  });

  it('parses what the format allows: scalars, empty tensors, padding, null metadata, other dtypes', async () => {
    const header = JSON.stringify({
      __metadata__: null,
      scalar: entry('F32', [], [0, 4]),
      empty: entry('F16', [3, 0], [4, 4]),
      alsoEmpty: entry('BF16', [0], [4, 4]),
      ids: entry('I64', [2], [4, 20]),
      mask: entry('BOOL', [3], [20, 23]),
      packed: entry('F4', [2], [23, 24]),
    });
    const file = await parse(fileOf(`${header}       `, 24));
    expect(file.metadata.size).toBe(0);
    expect(file.byName.get('scalar')).toMatchObject({ shape: [], nElements: 1, supported: true });
    expect(file.byName.get('empty')).toMatchObject({ nElements: 0, begin: file.byName.get('empty')!.end });
    expect(file.byName.get('ids')).toMatchObject({ dtype: 'I64', nElements: 2, supported: false });
    expect(file.byName.get('packed')).toMatchObject({ dtype: 'F4', supported: false });
    expectTiled(file);
    expect(await readTensorF32(bytesSource(fileOf(`${header}       `, 24)), file.byName.get('empty')!)).toEqual(new Float32Array(0));
  });

  it('decodes F32, F16 and BF16, and refuses other dtypes with UNSUPPORTED_TENSOR_TYPE', async () => {
    const values = [1, -2.5, 0.1, 65504, 2 ** -24, -0, 3.140625];
    const f32 = new Float32Array(values);
    const f16 = Uint16Array.from(values, floatToHalfBits);
    const bf16 = Uint16Array.from(new Uint32Array(f32.buffer), (bits) => bits >>> 16); // truncated
    const data = new Uint8Array(28 + 14 + 14 + 8);
    data.set(new Uint8Array(f32.buffer), 0);
    data.set(new Uint8Array(f16.buffer), 28);
    data.set(new Uint8Array(bf16.buffer), 42);
    const n = values.length;
    const bytes = fileOf(JSON.stringify({
      f32: entry('F32', [n], [0, 28]), f16: entry('F16', [n], [28, 42]), bf16: entry('BF16', [1, n], [42, 56]), i64: entry('I64', [1], [56, 64]),
    }), data);
    const source = bytesSource(bytes);
    const file = await readSafetensors(source);
    expect(Array.from(await readTensorF32(source, file.byName.get('f32')!))).toEqual(Array.from(f32));
    expect(Array.from(await readTensorF32(source, file.byName.get('f16')!))).toEqual(Array.from(f16, halfBitsToFloat));
    const fromBF16 = Array.from(await readTensorF32(source, file.byName.get('bf16')!));
    expect(fromBF16).toEqual(Array.from(new Float32Array(new Uint32Array(Array.from(bf16, (h) => h << 16)).buffer)));
    expect(fromBF16.slice(0, 2)).toEqual([1, -2.5]);
    await expect(readTensorF32(source, file.byName.get('i64')!)).rejects.toMatchObject({ code: 'UNSUPPORTED_TENSOR_TYPE', details: { tensor: 'i64' } });
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz

/**
 * A file of `size` bytes whose first bytes are `prefix` and the rest zeros, without allocating the
 * rest: mutants of a 13.8 MB checkpoint stay cheap, since the reader only reads the header.
 */
function overlaySource(prefix: Uint8Array, size: number): ByteSource {
  return {
    size,
    async read(offset, length) {
      checkRange(offset, length, size);
      const out = new Uint8Array(length);
      if (offset < prefix.byteLength) out.set(prefix.subarray(offset, Math.min(prefix.byteLength, offset + length)));
      return out;
    },
  };
}

interface Mutant { kind: string; prefix: Uint8Array; size: number }

/**
 * A seeded campaign over the header of the real F32 checkpoint: each kind of damage makes 40
 * mutants. Every outcome must be a parse (whose tensors then tile the data section, and one of
 * which is read back) or a LanternError BAD_MODEL_FILE / TRUNCATED_FILE, each within 5 s. The
 * counts are printed and written to test-results/safetensors-fuzz-outcomes.json.
 */
describe('safetensors: fuzzing a real header', () => {
  it('turns every mutant into a parse or a LanternError', async () => {
    const real = read(resolve(GPTNEO_DIR, 'model.safetensors'));
    const headerLength = Number(new DataView(real.buffer, real.byteOffset).getBigUint64(0, true));
    const realPrefix = real.slice(0, 8 + headerLength);
    const dataBytes = real.byteLength - realPrefix.byteLength;
    const realText = new TextDecoder().decode(realPrefix.subarray(8));
    const realHeader = JSON.parse(realText) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    const names = Object.keys(realHeader).filter((k) => k !== '__metadata__');
    const rand = seeded(0x5afe);
    const int = (n: number) => Math.floor(rand() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

    const withHeader = (kind: string, header: string | Uint8Array, size?: number): Mutant => {
      const prefix = fileOf(header);
      return { kind, prefix, size: size ?? prefix.byteLength + dataBytes };
    };
    const edited = (edit: (h: Record<string, Record<string, unknown>>, name: string) => void): string => {
      const h = structuredClone(realHeader) as unknown as Record<string, Record<string, unknown>>;
      edit(h, pick(names));
      return JSON.stringify(h);
    };
    const hostile: unknown[] = [-1, 1.5, 0, 2 ** 53, 1e300, -0.5, '64', null, true, [], {}, [[64]], [64, 64, 64, 64, 64, 64, 64, 64, 64, 64], 2 ** 31, 4294967296];

    const mutations: Record<string, () => Mutant> = {
      flip: () => {
        const prefix = realPrefix.slice();
        for (let k = 1 + int(4); k > 0; k--) {
          const at = int(prefix.length);
          prefix[at] = rand() < 0.5 ? int(256) : prefix[at] ^ (1 << int(8));
        }
        return { kind: 'flip', prefix, size: real.byteLength };
      },
      length: () => {
        const prefix = realPrefix.slice();
        const n = BigInt(headerLength);
        const value = pick([0n, 1n, 7n, n - 1n, n + 1n, BigInt(real.byteLength - 8), BigInt(real.byteLength), 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, BigInt(MAX_HEADER_BYTES) + 1n, BigInt(int(2 ** 30))]);
        new DataView(prefix.buffer).setBigUint64(0, value, true);
        return { kind: 'length', prefix, size: real.byteLength };
      },
      field: () => withHeader('field', edited((h, name) => {
        const key = pick(['dtype', 'shape', 'data_offsets']);
        if (rand() < 0.2) delete h[name][key];
        else if (key === 'dtype') h[name].dtype = pick(['F128', 'f32', '', 'I64', 'F16', 'BOOL', 'toString', 0, null]);
        else if (key === 'shape') h[name].shape = rand() < 0.5 ? pick(hostile) : (h[name].shape as number[]).map((d) => (rand() < 0.5 ? pick(hostile) : d));
        else h[name].data_offsets = rand() < 0.5 ? pick(hostile) : (h[name].data_offsets as number[]).map((d) => (rand() < 0.5 ? pick(hostile) : d));
      })),
      offsets: () => withHeader('offsets', edited((h, name) => {
        const other = h[pick(names)].data_offsets as number[];
        const mine = h[name].data_offsets as number[];
        const shift = pick([-4, -1, 1, 4, 256, -256]);
        h[name].data_offsets = pick([[...other], [mine[0] + shift, mine[1] + shift], [mine[0], mine[1] + shift], [mine[1], mine[0]], [mine[0], mine[0] + 2 ** 40]]);
      })),
      truncate: () => {
        const size = rand() < 0.5 ? int(realPrefix.byteLength) : realPrefix.byteLength + int(dataBytes);
        return { kind: 'truncate', prefix: realPrefix.subarray(0, Math.min(size, realPrefix.byteLength)), size };
      },
      utf8: () => {
        const bad = pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0xef, 0xbb, 0xbf]]);
        const text = utf8.encode(realText);
        const at = rand() < 0.2 ? 0 : realText.indexOf(pick(names)) + 1;
        return withHeader('utf8', new Uint8Array([...text.subarray(0, at), ...bad, ...text.subarray(at)]));
      },
      nesting: () => {
        const depth = pick([64, 1000, 100_000]);
        const deep = rand() < 0.5 ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
        const name = JSON.stringify(pick(names));
        const at = realText.indexOf(`${name}:{`) + name.length + 2;
        if (rand() < 0.5) return withHeader('nesting', `${realText.slice(0, at)}"extra":${deep},${realText.slice(at)}`); // a field the reader ignores
        // In place of the tensor's shape.
        const shapeAt = realText.indexOf('"shape":', at) + '"shape":'.length;
        return withHeader('nesting', `${realText.slice(0, shapeAt)}${deep}${realText.slice(realText.indexOf(']', shapeAt) + 1)}`);
      },
      names: () => {
        const name = pick(names);
        const quoted = JSON.stringify(name);
        const newName = pick(['__proto__', 'constructor', 'toString', 'hasOwnProperty', '__metadata__', '', 'x'.repeat(5000), '\u0000', '\ud83e\udd99', pick(names)]);
        if (rand() < 0.5) return withHeader('names', realText.replace(`${quoted}:`, `${JSON.stringify(newName)}:`));
        // The same name twice: an entry copied, as JSON.parse would silently keep one of them.
        const start = realText.indexOf(`${quoted}:`);
        const end = realText.indexOf('}', start) + 1;
        return withHeader('names', `${realText.slice(0, end)},${realText.slice(start, end)}${realText.slice(end)}`);
      },
      text: () => {
        let text = realText;
        for (let k = 1 + int(3); k > 0; k--) {
          const at = int(text.length);
          text = rand() < 0.5 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + pick(['"', ',', '{', '}', '[', ']', ':', '0', '-', '\\', ' ', 'e']) + text.slice(at);
        }
        return withHeader('text', text);
      },
    };

    const counts = new Map<string, number>();
    const failures: string[] = [];
    const PER_KIND = 40;
    for (const kind of Object.keys(mutations)) {
      for (let i = 0; i < PER_KIND; i++) {
        const mutant = mutations[kind]();
        const source = overlaySource(mutant.prefix, mutant.size);
        const started = performance.now();
        let outcome: string;
        try {
          const file = await readSafetensors(source);
          expectTiled(file);
          // The smallest tensor Lantern can read, read back (zeros here).
          const small = file.tensors.filter((t) => t.supported).sort((a, b) => a.nElements - b.nElements)[0];
          if (small) expect((await readTensorF32(source, small)).length).toBe(small.nElements);
          outcome = 'parsed';
        } catch (e) {
          if (e instanceof LanternError && (e.code === 'BAD_MODEL_FILE' || e.code === 'TRUNCATED_FILE')) {
            outcome = e.code;
          } else {
            outcome = 'FAILED';
            failures.push(`${kind} #${i}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
          }
        }
        const ms = performance.now() - started;
        if (ms > 5_000) failures.push(`${kind} #${i}: took ${ms.toFixed(0)} ms`);
        counts.set(`${kind} ${outcome}`, (counts.get(`${kind} ${outcome}`) ?? 0) + 1);
        counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      }
    }
    const summary = Object.fromEntries([...counts].sort());
    mkdirSync(resolve(REPO_ROOT, 'test-results'), { recursive: true });
    writeFileSync(resolve(REPO_ROOT, 'test-results/safetensors-fuzz-outcomes.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`safetensors fuzz: ${Object.keys(mutations).length * PER_KIND} mutants ${JSON.stringify(summary, null, 2)}`);
    expect(failures).toEqual([]);
    // The campaign reaches both sides: mutants that still parse, and both kinds of refusal.
    expect(counts.get('parsed')).toBeGreaterThan(0);
    expect(counts.get('BAD_MODEL_FILE')).toBeGreaterThan(0);
    expect(counts.get('TRUNCATED_FILE')).toBeGreaterThan(0);
    for (const kind of ['field', 'offsets', 'utf8', 'names', 'length']) expect(counts.get(`${kind} BAD_MODEL_FILE`) ?? 0).toBeGreaterThan(0);
  });
});
