/**
 * An f16 and a Q8_0 KV cache against llama.cpp run with the same cache type (node-llama-cpp's
 * experimentalKvCacheKeyType/ValueType): greedy tokens equal, next-token logits within a tolerance,
 * on stories260K (f16; its heads of 8 are too small for Q8_0 blocks, in llama.cpp too) and on a
 * random llama-shaped file with heads of 32 (both forms); and each form's bytes per token.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import type { KvCacheType } from '../src/kernels/ops.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits, type LlamaCppKvCache } from './oracle/llamacpp.ts';

/**
 * Largest |Δlogit| allowed against llama.cpp with the same cache type, relative to the largest
 * |logit|. Both round K and V alike, but llama.cpp also rounds what meets them: Q (and the
 * probabilities, for f16 V) to f16 in its f16 matmuls, Q to Q8_0 in its flash-attention path for a
 * Q8_0 K. Measured here: f16 at most 5.1e-4 (1.8e-7 for one token), Q8_0 2.4e-3; about 4x that.
 */
const TOLERANCE: Record<'f16' | 'q8_0', number> = { f16: 2e-3, q8_0: 1e-2 };

let dir: string;
/** llama, 2 layers, 4 heads / 2 KV heads of 32, F32 weights: random, at a shape Q8_0 blocks fit. */
let RANDOM_GGUF: string;
const sessions = new Map<string, ModelSession>();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-kv-'));
  const vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(STORIES_GGUF))));
  RANDOM_GGUF = join(dir, 'llama-heads-of-32.gguf');
  writeFileSync(RANDOM_GGUF, writeRandomModel({ architecture: 'llama', nLayers: 2, nEmbd: 128, nFF: 192, nHeads: 4, nKvHeads: 2, contextLength: 256 }, vocab, GGMLType.F32, 17));
  sessions.set('stories:f32', await openSession(STORIES_GGUF, { contextLength: 256, kvCache: 'f32' }));
  sessions.set('stories:f16', await openSession(STORIES_GGUF, { contextLength: 256 })); // the default
  for (const kvCache of ['f32', 'f16', 'q8_0'] as const) sessions.set(`random:${kvCache}`, await openSession(RANDOM_GGUF, { contextLength: 128, kvCache }));
}, 300_000);
afterAll(async () => {
  for (const session of sessions.values()) await session.close();
  await disposeLlamaCpp();
  rmSync(dir, { recursive: true, force: true });
});

async function greedy(session: ModelSession, promptIds: number[], maxTokens: number): Promise<number[]> {
  const ids: number[] = [];
  await session.generate(promptIds, { maxTokens, temperature: 0 }, (t) => {
    if (t.id >= 0) ids.push(t.id);
  });
  return ids;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b[i])), 0);

describe('an f16 or Q8_0 KV cache against llama.cpp with the same', () => {
  it('bytes per token of context: f16 half of f32, Q8_0 34 bytes per block of 32', () => {
    const f32 = sessions.get('stories:f32')!.info, f16 = sessions.get('stories:f16')!.info;
    expect(f32.kvBytesPerToken).toBe(5 * 2 * 32 * 4); // 5 layers, K and V, 4 KV heads of 8
    expect(f16.kvBytesPerToken).toBe(f32.kvBytesPerToken / 2);
    const r32 = sessions.get('random:f32')!.info, r16 = sessions.get('random:f16')!.info, q8 = sessions.get('random:q8_0')!.info;
    expect(r16.kvBytesPerToken).toBe(r32.kvBytesPerToken / 2);
    expect(q8.kvBytesPerToken).toBe(2 * 2 * 68); // 2 layers, K and V, 2 blocks of 34 bytes
    expect(r16.kvBytes).toBe(r32.kvBytes / 2);
    expect([f32.kvCache, f16.kvCache, q8.kvCache]).toEqual(['f32', 'f16', 'q8_0']);
  });

  it('the default is f16; Q8_0 with heads of 8 is refused before loading, with BAD_ARGUMENT', async () => {
    expect(sessions.get('stories:f16')!.info.kvCache).toBe('f16');
    await expect(openSession(STORIES_GGUF, { contextLength: 32, kvCache: 'q8_0' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT', message: expect.stringMatching(/heads hold 8 values.*whole blocks of 32/) });
  });

  const cases: { model: 'stories' | 'random'; kvCache: 'f16' | 'q8_0'; name: string; promptIds: number[]; tokens: number }[] = [
    { model: 'stories', kvCache: 'f16', name: 'BOS', promptIds: [1], tokens: 64 },
    { model: 'stories', kvCache: 'f16', name: 'no BOS, 70 ids (prefill spans two chunks)', promptIds: Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % 500)), tokens: 64 },
    { model: 'random', kvCache: 'f16', name: '9 ids', promptIds: [1, 403, 407, 261, 378, 432, 383, 286, 261], tokens: 24 },
    { model: 'random', kvCache: 'q8_0', name: '9 ids', promptIds: [1, 403, 407, 261, 378, 432, 383, 286, 261], tokens: 24 },
    { model: 'random', kvCache: 'q8_0', name: 'no BOS, 70 ids', promptIds: Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % 500)), tokens: 24 },
  ];
  for (const { model, kvCache, name, promptIds, tokens } of cases) {
    const theirs = kvCache.toUpperCase() as LlamaCppKvCache;
    it(`${model === 'stories' ? 'stories260K' : 'random llama, heads of 32'}, ${kvCache}: greedy tokens and logits match llama.cpp's ${theirs} cache for ${name}`, async () => {
      const file = model === 'stories' ? STORIES_GGUF : RANDOM_GGUF;
      const session = sessions.get(`${model}:${kvCache}`)!;
      expect(await greedy(session, promptIds, tokens)).toEqual(await llamaCppGreedy(file, promptIds, tokens, theirs));
      const ours = await session.logits(promptIds);
      const want = await llamaCppLogits(file, promptIds, theirs);
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      expect(maxDiff(ours, want) / scale, `max |Δlogit| against llama.cpp ${theirs}, relative to the largest`).toBeLessThanOrEqual(TOLERANCE[kvCache]);
      // The cache form shows: our f32 cache's logits are not these (the comparison could fail).
      expect(maxDiff(ours, await sessions.get(`${model}:f32`)!.logits(promptIds)), 'differs from the f32 cache').toBeGreaterThan(0);
    });
  }
});
