/**
 * GGUF → Hugging Face checkpoint → `lantern convert --type none` → GGUF, checked against llama.cpp.
 * For every architecture llama.cpp also runs, at a small shape: a random-weight GGUF
 * (scripts/lib/model-writer.ts) is written out as HF's modeling code lays it out
 * (scripts/lib/hf-writer.ts: F32, or F16/BF16, or sharded) into a folder, converted from that
 * folder (convertCheckpoint(folderFiles(dir)), written with writeSource, as the CLI does), and:
 * - the converted tensors are byte for byte the original's: the F32 model's, or for an F16/BF16
 *   checkpoint the original rounded to that type (Gemma's norms, stored as w - 1, come back as
 *   (w - 1) + 1 in f32);
 * - the metadata keys the family reads have the original's values;
 * - llama.cpp gives the same greedy tokens and next-token logits on both files, and (GPT-2's
 *   byte-level BPE, Llama's SentencePiece) the same tokens for a few texts;
 * - Lantern on the converted Llama (rotate-half q/k permuted back to adjacent pairs) matches
 *   llama.cpp on the original.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderFiles, writeSource } from '../src/cli/model-source.ts';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { GGMLType, type GGUFFile, readGGUF } from '../src/model/gguf.ts';
import type { MetaValue } from '../src/model/gguf-writer.ts';
import { convertCheckpoint } from '../src/model/hf/convert.ts';
import { modelConfig } from '../src/runtime/models/index.ts';
import { seededRandom } from '../src/runtime/sampler.ts';
import { bytesSource } from '../src/storage/source.ts';
import { type HfWriteOptions, writeCheckpointDir, writeRandomHfModel } from '../scripts/lib/hf-writer.ts';
import { type ModelShape, restoreModel, vocabularyOf } from '../scripts/lib/model-writer.ts';
import { type FloatDtype, roundFloats } from '../scripts/lib/safetensors-writer.ts';
import { LLAMACPP_VOCAB_DIR, STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits, llamaCppTokenize } from './oracle/llamacpp.ts';

/** Largest |Δlogit|, relative to the largest |logit| (at least 1), as in families.test.ts. */
const RELATIVE_LOGIT_TOLERANCE = 1e-3;

const small = { nLayers: 2, nEmbd: 64, nFF: 96, nHeads: 4, nKvHeads: 2, contextLength: 256 };
const window8 = { 'attention.sliding_window': { type: 'u32', value: 8 } } as const;

interface Case {
  shape: ModelShape;
  options?: HfWriteOptions;
  /** The GPT-2 vocabulary (byte-level BPE) rather than stories260K's SentencePiece one. */
  gpt2Vocab?: boolean;
  /** Also compare llama.cpp's tokenization of TEXTS on both files. */
  tokenizer?: boolean;
  /** Also run Lantern on the converted file. */
  lantern?: boolean;
}

const CASES: Record<string, Case> = {
  'gpt2: Conv1D, tied, the GPT-2 vocabulary': { shape: { architecture: 'gpt2', ...small, nKvHeads: 4, tiedOutput: true }, gpt2Vocab: true, tokenizer: true },
  'gptneox: interleaved QKV, parallel residual, rotary_pct 0.5, 3 shards': {
    shape: { architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 8, extra: { use_parallel_residual: { type: 'bool', value: true } } },
    options: { shards: 3 },
  },
  'llama: rotate-half q/k, GQA, own lm_head': { shape: { architecture: 'llama', ...small, ropeTheta: 500000 }, tokenizer: true, lantern: true },
  'mistral: MistralForCausalLM, tied, F16': { shape: { architecture: 'llama', ...small, tiedOutput: true }, options: { hfArchitecture: 'MistralForCausalLM', dtype: 'F16' } },
  'qwen2: q/k/v biases, tied, BF16': { shape: { architecture: 'qwen2', ...small, tiedOutput: true, ropeTheta: 1e6 }, options: { dtype: 'BF16' } },
  'qwen3: per-head q/k norms, head_dim 32': { shape: { architecture: 'qwen3', ...small, headDim: 32, ropeTheta: 1e6 } },
  'gemma2: norms as w - 1, soft-capping, window 8': { shape: { architecture: 'gemma2', ...small, headDim: 32, tiedOutput: true, extra: window8 } },
  'gemma3: q/k norms, 5 local : 1 global': {
    shape: { architecture: 'gemma3', ...small, nLayers: 6, nEmbd: 32, nFF: 64, nHeads: 2, nKvHeads: 1, headDim: 32, ropeTheta: 1e6, extra: window8 },
  },
  'phi3: fused qkv and gate_up, LongRoPE factors from config.json': {
    shape: { architecture: 'phi3', ...small, ropeFactors: true, extra: { 'rope.scaling.original_context_length': { type: 'u32', value: 4096 } } },
  },
};

const TEXTS = ['Once upon a time, there was a little girl named Lily.', ' two  spaces,\ttabs\nand lines', "don't stop: 123 4567!", 'héllo wörld 🙂 — ünïcode'];

/** The two files of a case: the original GGUF and the one converted from its HF checkpoint. */
interface Pair {
  original: string;
  converted: string;
  originalFile: GGUFFile;
  convertedFile: GGUFFile;
  originalBytes: Uint8Array;
  convertedBytes: Uint8Array;
}

let dir: string;
const pairs: Record<string, Pair> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-hf-roundtrip-'));
  const vocabOf = async (path: string) => vocabularyOf(await readGGUF(bytesSource(new Uint8Array(readFileSync(path)))));
  const stories = await vocabOf(STORIES_GGUF);
  const gpt2 = await vocabOf(join(LLAMACPP_VOCAB_DIR, 'ggml-vocab-gpt-2.gguf'));
  for (const [i, [name, c]] of Object.entries(CASES).entries()) {
    const vocab: Record<string, MetaValue> = c.gpt2Vocab ? gpt2 : stories;
    const { gguf, file, checkpoint } = await writeRandomHfModel(c.shape, vocab, 31 + i, c.options);
    // An F16/BF16 checkpoint holds every value rounded: the original to compare with is the same
    // model rounded so, its 2-D weights stored in that type (norms and biases F32, as converted).
    const dtype = c.options?.dtype ?? 'F32';
    const originalBytes = dtype === 'F32' ? gguf : restoreModel(file, roundedModel(file, gguf, dtype), dtype === 'F16' ? GGMLType.F16 : GGMLType.BF16);
    const original = join(dir, `${i}-original.gguf`);
    writeFileSync(original, originalBytes);

    const folder = join(dir, `${i}-hf`);
    writeCheckpointDir(folder, checkpoint);
    const files = folderFiles(folder);
    const converted = join(dir, `${i}-converted.gguf`);
    try {
      const model = await convertCheckpoint(files, { quantize: 'none' });
      expect(model.quantize).toBe('none');
      await writeSource(model.source, converted);
    } finally {
      await files.close?.();
    }
    const convertedBytes = new Uint8Array(readFileSync(converted));
    pairs[name] = {
      original,
      converted,
      originalBytes,
      convertedBytes,
      originalFile: await readGGUF(bytesSource(originalBytes)),
      convertedFile: await readGGUF(bytesSource(convertedBytes)),
    };
  }
});

afterAll(async () => {
  await disposeLlamaCpp();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A copy of an all-F32 GGUF's bytes with every tensor's values rounded to `dtype` (and kept F32). */
function roundedModel(file: GGUFFile, bytes: Uint8Array, dtype: FloatDtype): Uint8Array {
  const out = bytes.slice();
  for (const t of file.tensors) {
    const values = roundFloats(new Float32Array(new Uint8Array(bytes.subarray(t.offset, t.offset + t.nBytes)).buffer), dtype);
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), t.offset);
  }
  return out;
}

/** `n` token ids after a first id of 1, from a seed (ids 3..502: in both vocabularies). */
function promptOf(n: number, seed: number): number[] {
  const next = seededRandom(seed);
  return [1, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(next() * 500))];
}

function tensorBytes(file: GGUFFile, bytes: Uint8Array, name: string): Uint8Array {
  const t = file.tensors.find((x) => x.name === name)!;
  return bytes.subarray(t.offset, t.offset + t.nBytes);
}

/** (w - 1) + 1 in f32, for each F32 value: what a Gemma norm stored as w - 1 gives back. */
function gemmaNormRoundTrip(bytes: Uint8Array): Uint8Array {
  const w = new Float32Array(new Uint8Array(bytes).buffer);
  return new Uint8Array(Float32Array.from(Float32Array.from(w, (x) => x - 1), (x) => x + 1).buffer);
}

/** The metadata keys `modelConfig` reads from `file`. */
function keysRead(file: GGUFFile): Set<string> {
  const read = new Set<string>();
  class Recording extends Map<string, unknown> {
    override get(key: string) {
      read.add(key);
      return super.get(key);
    }
    override has(key: string) {
      read.add(key);
      return super.has(key);
    }
  }
  modelConfig({ ...file, metadata: new Recording(file.metadata) as GGUFFile['metadata'] });
  return read;
}

function worstRelative(ours: Float32Array, theirs: Float32Array): number {
  expect(ours.length).toBe(theirs.length);
  const scale = Math.max(1, ...Array.from(theirs, Math.abs));
  let worst = 0;
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
  return worst / scale;
}

const promptIds = promptOf(20, 5);

for (const [name, c] of Object.entries(CASES)) {
  describe(name, () => {
    it('the converted tensors are the original\'s, byte for byte, and the keys the family reads are equal', () => {
      const { originalFile: a, convertedFile: b, originalBytes, convertedBytes } = pairs[name];
      expect(b.metadata.get('general.architecture')).toBe(a.metadata.get('general.architecture'));
      expect(b.tensors.map((t) => t.name).sort()).toEqual(a.tensors.map((t) => t.name).sort());
      const gemma = c.shape.architecture.startsWith('gemma');
      for (const t of a.tensors) {
        const u = b.tensors.find((x) => x.name === t.name)!;
        expect([GGMLType[u.type], u.dims], t.name).toEqual([GGMLType[t.type], t.dims]);
        let want = tensorBytes(a, originalBytes, t.name);
        if (gemma && t.name.endsWith('norm.weight')) want = gemmaNormRoundTrip(want);
        const got = tensorBytes(b, convertedBytes, t.name);
        expect(Buffer.from(got).equals(Buffer.from(want)), `${t.name} differs`).toBe(true);
      }
      for (const key of keysRead(a)) {
        if (a.metadata.has(key)) expect(b.metadata.get(key), key).toEqual(a.metadata.get(key));
      }
      expect(modelConfig(b).config).toEqual(modelConfig(a).config);
    });

    it('llama.cpp gives the same greedy tokens and logits on both files', async () => {
      const { original, converted } = pairs[name];
      const want = await llamaCppGreedy(original, promptIds, 12);
      expect(await llamaCppGreedy(converted, promptIds, 12)).toEqual(want);
      const theirs = await llamaCppLogits(original, promptIds);
      expect(worstRelative(await llamaCppLogits(converted, promptIds), theirs)).toBeLessThanOrEqual(RELATIVE_LOGIT_TOLERANCE);
    });

    if (c.tokenizer) {
      it('llama.cpp tokenizes texts the same with the converted file\'s tokenizer', async () => {
        const { original, converted } = pairs[name];
        for (const text of TEXTS) {
          const want = await llamaCppTokenize(original, text);
          expect(want.length, text).toBeGreaterThan(3);
          expect(await llamaCppTokenize(converted, text), text).toEqual(want);
        }
      });
    }

    if (c.lantern) {
      describe('Lantern on the converted file', () => {
        let session: ModelSession;
        beforeAll(async () => {
          session = await openSession(pairs[name].converted, { contextLength: 128 });
        });
        afterAll(() => session?.close());

        it('greedy tokens and logits match llama.cpp on the original', async () => {
          const ours: number[] = [];
          await session.generate(promptIds, { maxTokens: 12, temperature: 0 }, (t) => { if (t.id >= 0) ours.push(t.id); });
          expect(ours).toEqual(await llamaCppGreedy(pairs[name].original, promptIds, 12));
          const logits = await session.logits(promptIds);
          expect(worstRelative(logits, await llamaCppLogits(pairs[name].original, promptIds))).toBeLessThanOrEqual(RELATIVE_LOGIT_TOLERANCE);
        });
      });
    }
  });
}
