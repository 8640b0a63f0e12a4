/**
 * Writes random-weight GGUFs at the exact shapes of real models, for scripts/bench.ts: speed does
 * not depend on the weight values, and llama.cpp loads the same files. They are generated on
 * demand into bench/models/ (git-ignored), never committed.
 *
 *   npm run bench:models -- [--models smollm2-135m,qwen2.5-0.5b,qwen3-0.6b,gemma3-1b,llama3.2-1b] [--types F16,Q8_0,Q4_K,Q4_K_M] [--out DIR] [--force]
 *     [--vocab FILE]   (the GGUF whose vocabulary is padded; default: ../shared/models' stories260K)
 *
 * Default: every type of smollm2-135m. A file that exists is kept unless --force. A type the model
 * writer cannot store yet is skipped with a message.
 */
import { open } from 'node:fs/promises';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openFileSource } from '../src/cli/file-source.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import type { MetaValue } from './lib/gguf-writer.ts';
import * as writer from './lib/model-writer.ts';
import { type ModelShape, vocabularyOf, writeRandomModel } from './lib/model-writer.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BENCH_MODELS_DIR = join(ROOT, 'bench/models');
/** A real SentencePiece vocabulary (512 pieces), padded to each model's vocabulary size. */
const BASE_VOCAB = resolve(ROOT, '../shared/models/stories260K/stories260K.gguf');

type Types = Parameters<typeof writeRandomModel>[2];

/** Shapes from each model's config.json (SmolLM2: ../shared/models/smollm2-135m-tokenizer/config.json). */
export const BENCH_SHAPES: Record<string, { shape: ModelShape; vocabSize: number }> = {
  'smollm2-135m': {
    shape: { architecture: 'llama', nLayers: 30, nEmbd: 576, nFF: 1536, nHeads: 9, nKvHeads: 3, contextLength: 8192, ropeTheta: 100000, tiedOutput: true },
    vocabSize: 49152,
  },
  'qwen2.5-0.5b': {
    shape: { architecture: 'qwen2', nLayers: 24, nEmbd: 896, nFF: 4864, nHeads: 14, nKvHeads: 2, contextLength: 32768, ropeTheta: 1e6, tiedOutput: true },
    vocabSize: 151936,
  },
  'qwen3-0.6b': {
    shape: { architecture: 'qwen3', nLayers: 28, nEmbd: 1024, nFF: 3072, nHeads: 16, nKvHeads: 8, headDim: 128, contextLength: 40960, ropeTheta: 1e6, tiedOutput: true },
    vocabSize: 151936,
  },
  'gemma3-1b': {
    shape: {
      architecture: 'gemma3', nLayers: 26, nEmbd: 1152, nFF: 6912, nHeads: 4, nKvHeads: 1, headDim: 256, contextLength: 32768, ropeTheta: 1e6, tiedOutput: true,
      extra: { 'attention.sliding_window': { type: 'u32', value: 512 } },
    },
    vocabSize: 262144,
  },
  'llama3.2-1b': {
    shape: { architecture: 'llama', nLayers: 16, nEmbd: 2048, nFF: 8192, nHeads: 32, nKvHeads: 8, contextLength: 131072, ropeTheta: 500000, tiedOutput: true },
    vocabSize: 128256,
  },
};

/**
 * The storage types by the names llama.cpp gives its files. Looked up in the model writer by name,
 * so a type it does not export yet (Q4_K_M) is reported as missing rather than failing to compile.
 */
function storageTypes(): Record<string, Types | undefined> {
  const named = writer as unknown as Record<string, Types | undefined>;
  return { F16: GGMLType.F16, Q8_0: GGMLType.Q8_0 as Types, Q4_K: GGMLType.Q4_K as Types, Q4_K_M: named.Q4_K_M };
}

/** The path the bench writes a model of `name` stored as `type` to, e.g. bench/models/smollm2-135m-q4_k_m.gguf. */
export function benchModelPath(name: string, type: string, dir = BENCH_MODELS_DIR): string {
  return join(dir, `${name}-${type.toLowerCase()}.gguf`);
}

/**
 * `vocabulary` padded with filler pieces to `size` entries. Fillers are ordinary pieces with the
 * lowest scores, so neither tokenizer (Lantern's or llama.cpp's) ever prefers them.
 */
export function padVocabulary(vocabulary: Record<string, MetaValue>, size: number): Record<string, MetaValue> {
  const array = <T>(key: string): T[] => {
    const entry = vocabulary[key];
    if (!entry || entry.type !== 'array') throw new Error(`the base vocabulary lacks ${key}`);
    return [...(entry.value as readonly T[])];
  };
  const tokens = array<string>('tokenizer.ggml.tokens');
  const scores = array<number>('tokenizer.ggml.scores');
  const types = array<number>('tokenizer.ggml.token_type');
  if (tokens.length > size) throw new Error(`the base vocabulary has ${tokens.length} pieces, more than ${size}`);
  const lowest = Math.min(...scores);
  for (let i = tokens.length; i < size; i++) {
    tokens.push(`<filler_${i}>`);
    scores.push(lowest - 1);
    types.push(1); // normal
  }
  return {
    ...vocabulary,
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: tokens },
    'tokenizer.ggml.scores': { type: 'array', itemType: 'f32', value: scores },
    'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: types },
  };
}

/** Whether the model writer can store `types`: a one-layer model whose rows fit every block size. */
function writerSupports(types: Types | undefined, vocabulary: Record<string, MetaValue>): boolean {
  if (types === undefined) return false;
  const shape: ModelShape = { architecture: 'llama', nLayers: 1, nEmbd: 256, nFF: 256, nHeads: 2, nKvHeads: 1, contextLength: 16 };
  try {
    writeRandomModel(shape, vocabulary, types);
    return true;
  } catch {
    return false;
  }
}

/** Writes large files in pieces: one write() call takes at most 2 GB. */
async function writeLarge(path: string, bytes: Uint8Array): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (let at = 0; at < bytes.byteLength; at += 256 << 20) await file.write(bytes.subarray(at, Math.min(bytes.byteLength, at + (256 << 20))));
  } finally {
    await file.close();
  }
}

/** Writes the models asked for; returns the paths that exist afterwards. */
export async function writeBenchModels(options: { models: string[]; types: string[]; dir?: string; force?: boolean; vocab?: string; log?: (line: string) => void }): Promise<string[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const dir = options.dir ?? BENCH_MODELS_DIR;
  mkdirSync(dir, { recursive: true });
  const source = await openFileSource(options.vocab ?? BASE_VOCAB);
  let base: Record<string, MetaValue>;
  try {
    base = vocabularyOf(await readGGUF(source));
  } finally {
    await source.close();
  }
  const known = storageTypes();
  const written: string[] = [];
  for (const typeName of options.types) {
    if (!(typeName in known)) throw new Error(`unknown type ${typeName}; choose from ${Object.keys(known).join(', ')}`);
    if (!writerSupports(known[typeName], base)) {
      log(`skip ${typeName}: scripts/lib/model-writer.ts cannot write it yet`);
      continue;
    }
    for (const name of options.models) {
      const model = BENCH_SHAPES[name];
      if (!model) throw new Error(`unknown model ${name}; choose from ${Object.keys(BENCH_SHAPES).join(', ')}`);
      const path = benchModelPath(name, typeName, dir);
      if (existsSync(path) && !options.force) {
        log(`keep  ${path} (exists; --force writes it again)`);
        written.push(path);
        continue;
      }
      const t0 = performance.now();
      const bytes = writeRandomModel(model.shape, padVocabulary(base, model.vocabSize), known[typeName]!);
      await writeLarge(path, bytes);
      log(`wrote ${path}: ${(bytes.byteLength / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      written.push(path);
    }
  }
  return written;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { models: { type: 'string' }, types: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, vocab: { type: 'string' } },
    strict: true,
  });
  const list = (value: string | undefined, fallback: string[]) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : fallback);
  await writeBenchModels({
    models: list(values.models, ['smollm2-135m']),
    types: list(values.types, Object.keys(storageTypes())),
    dir: values.out ? resolve(values.out) : undefined,
    force: values.force,
    vocab: values.vocab ? resolve(values.vocab) : undefined,
  });
  return 0;
}
