/**
 * The graph variants a llama-family GGUF can ask for, each against llama.cpp on the same file:
 * F16 weights, Qwen2 (NeoX RoPE, Q/K/V biases), tied output embeddings, grouped-query and plain
 * multi-head attention, Llama 3's RoPE frequency factors. The files are written by scripts/lib/model-writer.ts into a temp folder.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { restoreModel, vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy, llamaCppLogits } from './oracle/llamacpp.ts';

/** Largest |Δlogit| against llama.cpp, relative to the largest |logit| (at least 1). */
const RELATIVE_LOGIT_TOLERANCE = 1e-3;

let dir: string;
const files: Record<string, string> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-arch-'));
  const storiesBytes = readFileSync(STORIES_GGUF);
  const stories = await readGGUF(bytesSource(storiesBytes));
  const vocab = vocabularyOf(stories);
  const models: Record<string, Uint8Array> = {
    'stories260K, F16 weights': restoreModel(stories, storiesBytes, GGMLType.F16),
    'qwen2: NeoX RoPE, QKV bias, tied output, GQA 4/2, F16': writeRandomModel(
      { architecture: 'qwen2', nLayers: 2, nEmbd: 64, nFF: 96, nHeads: 4, nKvHeads: 2, contextLength: 256, ropeTheta: 1e6, tiedOutput: true }, vocab, GGMLType.F16, 7),
    'llama: multi-head 3/3 of 32, tied output, F32': writeRandomModel(
      { architecture: 'llama', nLayers: 2, nEmbd: 96, nFF: 160, nHeads: 3, nKvHeads: 3, contextLength: 256, tiedOutput: true }, vocab, GGMLType.F32, 11),
    'llama 3: rope_freqs frequency factors, theta 500000, GQA 4/1': writeRandomModel(
      { architecture: 'llama', nLayers: 2, nEmbd: 128, nFF: 192, nHeads: 4, nKvHeads: 1, contextLength: 256, ropeTheta: 500000, ropeFreqs: true }, vocab, GGMLType.F32, 13),
  };
  for (const [name, bytes] of Object.entries(models)) {
    files[name] = join(dir, `${name.replace(/\W+/g, '-')}.gguf`);
    writeFileSync(files[name], bytes);
  }
});

afterAll(async () => {
  await disposeLlamaCpp();
  rmSync(dir, { recursive: true, force: true });
});

for (const name of [
  'stories260K, F16 weights',
  'qwen2: NeoX RoPE, QKV bias, tied output, GQA 4/2, F16',
  'llama: multi-head 3/3 of 32, tied output, F32',
  'llama 3: rope_freqs frequency factors, theta 500000, GQA 4/1',
]) {
  describe(name, () => {
    let session: ModelSession;
    beforeAll(async () => {
      session = await openSession(files[name], { contextLength: 128, kvCache: 'f32' }); // as the llama.cpp oracle's cache
    });
    afterAll(() => session?.close());

    const promptIds = [1, 403, 407, 261, 378, 432, 383, 286, 261];
    it('greedy tokens match llama.cpp', async () => {
      const ours: number[] = [];
      await session.generate(promptIds, { maxTokens: 24, temperature: 0 }, (t) => { if (t.id >= 0) ours.push(t.id); });
      expect(ours).toEqual(await llamaCppGreedy(files[name], promptIds, ours.length));
      expect(ours.length).toBe(24);
    });

    it(`next-token logits match llama.cpp within ${RELATIVE_LOGIT_TOLERANCE} of the largest`, async () => {
      const ours = await session.logits(promptIds);
      const theirs = await llamaCppLogits(files[name], promptIds);
      const scale = Math.max(1, ...Array.from(theirs, Math.abs));
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
      expect(worst / scale).toBeLessThanOrEqual(RELATIVE_LOGIT_TOLERANCE);
    });
  });
}
