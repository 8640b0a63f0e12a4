/**
 * A model is checked before the GPU sees it: every hyperparameter the families read, and every
 * tensor their graphs read (shape and type), on files written with one thing wrong. No GPU: the
 * graph's plan (src/runtime/graph.ts) runs in Node.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { Graph } from '../src/runtime/graph.ts';
import { FAMILIES, modelConfig, SUPPORTED_ARCHITECTURES } from '../src/runtime/models/index.ts';
import { bytesSource } from '../src/storage/source.ts';
import { writeGGUF, type MetaValue } from '../scripts/lib/gguf-writer.ts';
import { type ModelShape, vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { STORIES_GGUF } from './helpers/paths.ts';

let vocab: Record<string, MetaValue>;
beforeAll(async () => {
  vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(STORIES_GGUF))));
});

const base: ModelShape = { architecture: 'qwen3', nLayers: 2, nEmbd: 32, nFF: 48, nHeads: 4, nKvHeads: 2, contextLength: 64 };

/** Reads a written model, then plans its graph as Forward.create does before allocating. */
async function plan(bytes: Uint8Array): Promise<Graph> {
  const file = await readGGUF(bytesSource(bytes));
  const { family, config } = modelConfig(file);
  const graph = new Graph(config, file, config.windows.map(() => config.contextLength));
  await family.build(graph);
  return graph;
}

/** The model of `shape` with metadata `key` (under the architecture) set, or removed when undefined. */
function withKey(shape: ModelShape, key: string, value: MetaValue | undefined): Promise<Uint8Array> | Uint8Array {
  if (value) return writeRandomModel({ ...shape, extra: { [key]: value } }, vocab, GGMLType.F32, 3);
  return rebuild(writeRandomModel(shape, vocab, GGMLType.F32, 3), (metadata) => delete metadata[`${shape.architecture}.${key}`]);
}

type Tensors = { name: string; type: GGMLType; dims: number[]; data: Uint8Array }[];

/** A written model written again with its metadata or tensors edited. */
async function rebuild(bytes: Uint8Array, edit: (metadata: Record<string, MetaValue>, tensors: Tensors) => unknown): Promise<Uint8Array> {
  const file = await readGGUF(bytesSource(bytes));
  const metadata = vocabAndKeys(file.metadata);
  const tensors: Tensors = file.tensors.map((t) => ({ name: t.name, type: t.type, dims: t.dims, data: bytes.subarray(t.offset, t.offset + t.nBytes) }));
  edit(metadata, tensors);
  return writeGGUF({ metadata, tensors });
}

async function expectRefused(bytes: Promise<Uint8Array> | Uint8Array, code: string, mentions: RegExp): Promise<void> {
  let error: unknown;
  try {
    await plan(await bytes);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(LanternError);
  expect((error as LanternError).code).toBe(code);
  expect((error as LanternError).message).toMatch(mentions);
}

describe('every family plans its graph from a well-formed file', () => {
  for (const family of FAMILIES) {
    for (const architecture of family.architectures) {
      it(architecture, async () => {
        const shape = { ...base, architecture } as ModelShape;
        const graph = await plan(writeRandomModel(shape, vocab, GGMLType.F32, 5));
        expect(graph.weightBytes.size).toBeGreaterThan(5);
        expect([...graph.weightBytes.keys()]).toContain('blk.1.ffn_down.weight');
      });
    }
  }
  it('UNSUPPORTED_ARCH lists the families', async () => {
    const bytes = writeGGUF({ metadata: { 'general.architecture': { type: 'string', value: 'mamba' } }, tensors: [] });
    await expect(plan(bytes)).rejects.toMatchObject({ code: 'UNSUPPORTED_ARCH', message: expect.stringContaining(SUPPORTED_ARCHITECTURES.join(', ')) });
    expect(SUPPORTED_ARCHITECTURES).toEqual(expect.arrayContaining(['llama', 'qwen2', 'qwen3', 'smollm3', 'phi3', 'gemma2', 'gemma3', 'olmo2', 'gpt2', 'gptneox']));
  });
});

describe('hyperparameters out of range are refused, naming the key', () => {
  const cases: [string, MetaValue | undefined, RegExp][] = [
    ['attention.head_count', { type: 'u32', value: 0 }, /qwen3\.attention\.head_count is 0/],
    ['block_count', { type: 'u64', value: 2n ** 53n - 1n }, /qwen3\.block_count/],
    ['block_count', undefined, /lacks qwen3\.block_count/],
    ['embedding_length', { type: 'f32', value: 32.5 }, /qwen3\.embedding_length is 32\.5/],
    ['attention.head_count_kv', { type: 'u32', value: 3 }, /4 query heads are not a multiple of 3/],
    ['attention.key_length', { type: 'u32', value: 4096 }, /key_length is 4096/],
    ['context_length', { type: 'i32', value: -1 }, /context_length is -1/],
    ['attention.layer_norm_rms_epsilon', { type: 'f32', value: Number.NaN }, /epsilon is NaN/],
    ['rope.freq_base', { type: 'string', value: 'ten thousand' }, /freq_base is ten thousand/],
    ['rope.dimension_count', { type: 'u32', value: 7 }, /RoPE over 7 dims/],
  ];
  for (const [key, value, message] of cases) {
    it(`${key} = ${value === undefined ? 'absent' : String(value.value)}`, async () => {
      await expectRefused(withKey(base, key, value), 'BAD_MODEL_FILE', message);
    });
  }
  it('a vocabulary size that disagrees with the token list', async () => {
    await expectRefused(withKey(base, 'vocab_size', { type: 'u32', value: 511 }), 'BAD_MODEL_FILE', /vocabulary of 511 tokens and a token list of 512/);
  });
  it('a sliding-window pattern of the wrong length', async () => {
    const shape: ModelShape = { ...base, architecture: 'gemma3', extra: { 'attention.sliding_window': { type: 'u32', value: 8 }, 'attention.sliding_window_pattern': { type: 'array', itemType: 'bool', value: [true] } } };
    await expectRefused(writeRandomModel(shape, vocab, GGMLType.F32, 5), 'BAD_MODEL_FILE', /sliding_window_pattern is an array, but it must be 2 booleans/);
  });
});

describe('tensors are checked against the architecture before anything is allocated', () => {
  const model = () => writeRandomModel(base, vocab, GGMLType.F32, 5);
  it('a missing tensor', async () => {
    const bytes = rebuild(model(), (_, tensors) => tensors.splice(tensors.findIndex((t) => t.name === 'blk.1.attn_k_norm.weight'), 1));
    await expectRefused(bytes, 'BAD_MODEL_FILE', /blk\.1\.attn_k_norm\.weight, which every qwen3 model has, is missing/);
  });
  it('a tensor of the wrong shape', async () => {
    const bytes = rebuild(model(), (_, tensors) => {
      const up = tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!;
      up.dims = [up.dims[1], up.dims[0]];
    });
    await expectRefused(bytes, 'BAD_MODEL_FILE', /blk\.0\.ffn_up\.weight is \[48, 32\] but this qwen3 model's hyperparameters make it \[32, 48\]/);
  });
  it('a tensor of a type the kernels do not read', async () => {
    const bytes = rebuild(model(), (_, tensors) => (tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type = GGMLType.I32));
    await expectRefused(bytes, 'UNSUPPORTED_TENSOR_TYPE', /blk\.0\.attn_q\.weight is I32/);
  });
});

/** A file's metadata back as writer input, for the keys the model writer writes (strings, numbers, arrays of them). */
function vocabAndKeys(metadata: Map<string, unknown>): Record<string, MetaValue> {
  const out: Record<string, MetaValue> = {};
  for (const [key, value] of metadata) {
    if (key === 'general.alignment') continue;
    if (typeof value === 'string') out[key] = { type: 'string', value };
    else if (typeof value === 'number') out[key] = Number.isInteger(value) && !/epsilon|freq_base/.test(key) ? { type: 'u32', value } : { type: 'f32', value };
    else if (Array.isArray(value)) out[key] = { type: 'array', itemType: 'string', value: value as string[] };
    else if (value instanceof Float32Array) out[key] = { type: 'array', itemType: 'f32', value: Array.from(value) };
    else if (value instanceof Int32Array) out[key] = { type: 'array', itemType: 'i32', value: Array.from(value) };
  }
  return out;
}
