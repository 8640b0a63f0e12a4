/**
 * The llama.cpp oracle agrees with an independent implementation before anything is judged by it:
 * greedy decoding of stories260K from BOS equals the numpy fp32 reference, and the logits it
 * returns are the ones its greedy choice was made from.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { STORIES_GGUF, STORIES_REFERENCE } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits } from './oracle/llamacpp.ts';

const BOS = 1;
const N = 64;
const reference = JSON.parse(readFileSync(STORIES_REFERENCE, 'utf8')) as { prompt_ids: number[]; generated_ids: number[] };

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

describe('llama.cpp oracle on stories260K', () => {
  afterAll(disposeLlamaCpp);

  it(`greedy from BOS gives the reference's first ${N} tokens`, async () => {
    expect(reference.prompt_ids).toEqual([BOS]);
    const ids = await llamaCppGreedy(STORIES_GGUF, [BOS], N);
    expect(ids).toEqual(reference.generated_ids.slice(0, N));
  });

  it('logits are the full vocabulary and their argmax is the greedy token', async () => {
    for (const prompt of [[BOS], [BOS, ...reference.generated_ids.slice(0, 20)]]) {
      const logits = await llamaCppLogits(STORIES_GGUF, prompt);
      expect(logits.length).toBe(512);
      expect(logits.every(Number.isFinite)).toBe(true);
      const [greedy] = await llamaCppGreedy(STORIES_GGUF, prompt, 1);
      expect(argmax(logits)).toBe(greedy);
      expect(greedy).toBe(reference.generated_ids[prompt.length - 1]);
    }
  });
});
