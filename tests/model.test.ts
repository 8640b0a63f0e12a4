/**
 * End to end on a real model, in Chromium's WebGPU: greedy decoding of stories260K reproduces an
 * independent numpy forward pass (golden), and tokens and next-token logits match llama.cpp
 * (node-llama-cpp, CPU) on the same GGUF (oracle).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession } from '../src/cli/session.ts';
import type { ModelSession } from '../src/cli/session.ts';
import { STORIES_GGUF, STORIES_REFERENCE } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits, llamaCppTokenize } from './oracle/llamacpp.ts';

/** Largest |Δlogit| allowed against llama.cpp: f32 on both sides, different summation orders. */
const LOGIT_TOLERANCE = 1e-3;

let session: ModelSession;
beforeAll(async () => {
  // An f32 KV cache, as the numpy golden and the llama.cpp oracle's default (tests/kv-cache.test.ts covers f16 and Q8_0).
  session = await openSession(STORIES_GGUF, { contextLength: 512, kvCache: 'f32' });
});
afterAll(async () => {
  await session?.close();
  await disposeLlamaCpp();
});

async function greedy(promptIds: number[], maxTokens: number): Promise<number[]> {
  const ids: number[] = [];
  await session.generate(promptIds, { maxTokens, temperature: 0 }, (t) => {
    if (t.id >= 0) ids.push(t.id);
  });
  return ids;
}

describe('stories260K', () => {
  it('golden: greedy from BOS reproduces the numpy reference (256 tokens)', async () => {
    const reference = JSON.parse(readFileSync(STORIES_REFERENCE, 'utf8')) as { prompt_ids: number[]; generated_ids: number[] };
    const ids = await greedy(reference.prompt_ids, 256);
    expect(ids.slice(0, 64)).toEqual(reference.generated_ids.slice(0, 64));
    expect(ids).toEqual(reference.generated_ids);
  });

  it('oracle: the text prompt "Once upon a time" tokenizes and continues as in llama.cpp', async () => {
    const ids = await session.encode('Once upon a time', true);
    expect(ids).toEqual(await llamaCppTokenize(STORIES_GGUF, 'Once upon a time'));
    expect(await greedy(ids, 64)).toEqual(await llamaCppGreedy(STORIES_GGUF, ids, 64));
  });

  const prompts: Record<string, number[]> = {
    'BOS': [1],
    'BOS + "Once upon a time"': [1, 403, 407, 261, 378],
    'no BOS, 70 ids (prefill spans two chunks)': Array.from({ length: 70 }, (_, i) => 3 + ((i * 37) % 500)),
  };
  for (const [name, promptIds] of Object.entries(prompts)) {
    it(`oracle: greedy tokens and logits match llama.cpp for ${name}`, async () => {
      const want = await llamaCppGreedy(STORIES_GGUF, promptIds, 48);
      expect(await greedy(promptIds, 48)).toEqual(want);

      const ours = await session.logits(promptIds);
      const theirs = await llamaCppLogits(STORIES_GGUF, promptIds);
      expect(ours.length).toBe(theirs.length);
      let worst = 0, at = -1;
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i] - theirs[i]);
        if (!(d <= worst)) { worst = d; at = i; }
      }
      expect(worst, `max |Δlogit| ${worst} at token ${at} (ours ${ours[at]}, llama.cpp ${theirs[at]})`).toBeLessThanOrEqual(LOGIT_TOLERANCE);
    });
  }
});
