/**
 * Every model family (src/runtime/models/*.ts) against llama.cpp on the same random-weight file,
 * written by scripts/lib/model-writer.ts at small shapes with llama.cpp's keys and tensor names:
 * greedy tokens equal, and next-token logits within RELATIVE_LOGIT_TOLERANCE, with f32 activations.
 * Prompts are longer than every sliding window in the files (8), and the sliding-window families
 * continue a conversation past the wrap-around of their ring caches.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { type ModelShape, vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { seededRandom } from '../src/runtime/sampler.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits, llamaCppLogitsFrom } from './oracle/llamacpp.ts';

/** Largest |Δlogit| against llama.cpp, relative to the largest |logit| (at least 1). */
const RELATIVE_LOGIT_TOLERANCE = 1e-3;

const small = { nLayers: 2, nEmbd: 64, nFF: 96, nHeads: 4, nKvHeads: 2, contextLength: 256 };
const window8 = { 'attention.sliding_window': { type: 'u32', value: 8 } } as const;

interface Case {
  shape: ModelShape;
  type: GGMLType.F32 | GGMLType.F16;
  /** A second turn past the ring caches' wrap-around (sliding-window families). */
  wraps?: boolean;
}

const CASES: Record<string, Case> = {
  'gpt2: learned positions, LayerNorm, fused QKV, biases, tied output': { shape: { architecture: 'gpt2', ...small, nKvHeads: 4, tiedOutput: true }, type: GGMLType.F32 },
  'gpt2: separate output, F16': { shape: { architecture: 'gpt2', ...small, nKvHeads: 4 }, type: GGMLType.F16 },
  'gptneox: parallel residual, partial rotary (8 of 16)': {
    shape: { architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 8, extra: { use_parallel_residual: { type: 'bool', value: true } } },
    type: GGMLType.F32,
  },
  'gptneox: sequential residual, F16': {
    shape: { architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 4, extra: { use_parallel_residual: { type: 'bool', value: false } } },
    type: GGMLType.F16,
  },
  'phi3: fused QKV and gate/up, LongRoPE short factors': {
    shape: { architecture: 'phi3', ...small, ropeFactors: true, extra: { 'rope.scaling.original_context_length': { type: 'u32', value: 4096 } } },
    type: GGMLType.F32,
  },
  'phi3: separate QKV, long factors, sliding window read but not applied': {
    shape: {
      architecture: 'phi3', ...small, fusedQkv: false, ropeFactors: true,
      extra: { 'rope.scaling.original_context_length': { type: 'u32', value: 16 }, ...window8 },
    },
    type: GGMLType.F16,
  },
  'gemma2: sandwich norms, soft-capping (defaults), alternating window 8, head dim 32': {
    shape: { architecture: 'gemma2', ...small, headDim: 32, tiedOutput: true, extra: window8 },
    type: GGMLType.F32,
    wraps: true,
  },
  // Caps low enough to bend real scores and logits (with F16 weights llama.cpp rounds activations
  // to f16, which logits capped this low cannot absorb: F32 here, F16 in the other families).
  'gemma2: soft-capping from the file': {
    shape: {
      architecture: 'gemma2', ...small, headDim: 16, tiedOutput: true,
      extra: { ...window8, attn_logit_softcapping: { type: 'f32', value: 5 }, final_logit_softcapping: { type: 'f32', value: 10 } },
    },
    type: GGMLType.F32,
  },
  'gemma3: q/k norms, 5 local : 1 global, freq_base 1e6 and freq_base_swa 10000': {
    shape: { architecture: 'gemma3', ...small, nLayers: 6, nEmbd: 32, nFF: 64, nHeads: 2, nKvHeads: 1, headDim: 32, ropeTheta: 1e6, extra: window8 },
    type: GGMLType.F32,
    wraps: true,
  },
  'qwen3: per-head q/k norms, head dim 32 of n_embd 64 over 4 heads': { shape: { architecture: 'qwen3', ...small, headDim: 32, ropeTheta: 1e6 }, type: GGMLType.F32 },
  'olmo2: norms after attention and MLP, q/k norms over the whole projection': { shape: { architecture: 'olmo2', ...small }, type: GGMLType.F32 },
  'smollm3: every fourth layer without RoPE': { shape: { architecture: 'smollm3', ...small, nLayers: 4 }, type: GGMLType.F32 },
};

let dir: string;
const files: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-families-'));
  const vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(STORIES_GGUF))));
  for (const [i, [name, c]] of Object.entries(CASES).entries()) {
    files[name] = join(dir, `${i}.gguf`);
    writeFileSync(files[name], writeRandomModel(c.shape, vocab, c.type, 17 + i));
  }
});

afterAll(async () => {
  await disposeLlamaCpp();
  rmSync(dir, { recursive: true, force: true });
});

/** `n` token ids of the 512-token vocabulary, after BOS, from a seed. */
function promptOf(n: number, seed: number): number[] {
  const next = seededRandom(seed);
  return [1, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(next() * 500))];
}

for (const [name, c] of Object.entries(CASES)) {
  describe(name, () => {
    let session: ModelSession;
    beforeAll(async () => {
      session = await openSession(files[name], { contextLength: 128, kvCache: 'f32' }); // as the llama.cpp oracle's cache
    });
    afterAll(() => session?.close());

    // Longer than the windows (8), so the sliding layers mask real keys.
    const promptIds = promptOf(20, 5);

    it('greedy tokens match llama.cpp', async () => {
      const ours: number[] = [];
      await session.generate(promptIds, { maxTokens: 16, temperature: 0 }, (t) => { if (t.id >= 0) ours.push(t.id); });
      expect(ours.length).toBe(16);
      expect(ours).toEqual(await llamaCppGreedy(files[name], promptIds, ours.length));
    });

    it(`next-token logits match llama.cpp within ${RELATIVE_LOGIT_TOLERANCE} of the largest`, async () => {
      const ours = await session.logits(promptIds);
      const theirs = await llamaCppLogits(files[name], promptIds);
      const scale = Math.max(1, ...Array.from(theirs, Math.abs));
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
      expect(worst / scale).toBeLessThanOrEqual(RELATIVE_LOGIT_TOLERANCE);
    });

    it('every position\'s log-probability of the next token matches llama.cpp (perplexity\'s head over all rows)', async () => {
      // 100 tokens: two prefill chunks, and past the ring caches' 71 rows in the sliding-window families.
      const ids = promptOf(100, 13);
      const ours = await session.tokenLogProbs(ids, 0);
      const theirs = await llamaCppLogitsFrom(files[name], ids, 0);
      expect(ours).toHaveLength(ids.length - 1);
      let worst = 0;
      let scale = 1;
      for (let pos = 0; pos < ids.length - 1; pos++) {
        const logits = theirs[pos];
        let top = -Infinity;
        for (const l of logits) {
          top = Math.max(top, l);
          scale = Math.max(scale, Math.abs(l));
        }
        let sum = 0;
        for (const l of logits) sum += Math.exp(l - top);
        worst = Math.max(worst, Math.abs(ours[pos] - (logits[ids[pos + 1]] - top - Math.log(sum))));
      }
      // A log-probability is a logit minus the log-sum-exp: at most twice the logits' error.
      expect(worst / scale).toBeLessThanOrEqual(2 * RELATIVE_LOGIT_TOLERANCE);
    });

    if (c.wraps) {
      it('a conversation continued past the ring caches\' wrap-around matches llama.cpp', async () => {
        // The ring holds window + 63 rows (71): turn one ends near them, turn two runs past them,
        // reusing turn one's keys, and turn three rewinds into the part the ring no longer holds.
        const first = promptOf(50, 7);
        const reply: number[] = [];
        await session.generate(first, { maxTokens: 16, temperature: 0 }, (t) => { if (t.id >= 0) reply.push(t.id); });
        const second = [...first, ...reply, ...promptOf(20, 9).slice(1)];
        const ours: number[] = [];
        const stats = await session.generate(second, { maxTokens: 12, temperature: 0 }, (t) => { if (t.id >= 0) ours.push(t.id); });
        expect(stats?.cachedTokens).toBeGreaterThan(60);
        expect(ours).toEqual(await llamaCppGreedy(files[name], second, 12));
        const third = [...first.slice(0, 20), ...promptOf(10, 11).slice(1)];
        const again: number[] = [];
        const thirdStats = await session.generate(third, { maxTokens: 8, temperature: 0 }, (t) => { if (t.id >= 0) again.push(t.id); });
        expect(thirdStats?.cachedTokens).toBe(0); // positions 13..19 were overwritten in the ring (it holds 25..95): prefilled again
        expect(again).toEqual(await llamaCppGreedy(files[name], third, 8));
      });

      it('sliding-window layers keep only a ring of their window', () => {
        const kvRow = 2 * c.shape.nKvHeads * (c.shape.headDim ?? c.shape.nEmbd / c.shape.nHeads) * 4;
        const global = c.shape.architecture === 'gemma2' ? c.shape.nLayers / 2 : Math.floor(c.shape.nLayers / 6);
        expect(session.info.kvBytesPerToken).toBe(global * kvRow);
        expect(session.info.kvBytes).toBe(global * kvRow * 128 + (c.shape.nLayers - global) * kvRow * (8 + 63));
      });
    }
  });
}
