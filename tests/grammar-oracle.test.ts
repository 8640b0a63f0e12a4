// @vitest-environment node
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { disposeLlamaCpp, llamaCppGrammarGreedy, llamaCppLogits } from './oracle/llamacpp.ts';
import { LLAMACPP_VOCAB_DIR, REPO_ROOT, STORIES_GGUF } from './helpers/paths.ts';

/**
 * Constrained greedy decoding against llama.cpp's own grammar sampler (node-llama-cpp's
 * LlamaGrammar): the same GGUF, the same prompt ids and the same GBNF (llama.cpp's example
 * grammars) give the same tokens in Lantern, whose mask is applied on the GPU before the argmax,
 * and in llama.cpp, up to a checked near tie. On stories260K (SentencePiece) and on a written
 * random-weight model with GPT-2's byte-level BPE vocabulary, where a token can end inside a
 * UTF-8 character and JSON strings split at other places. The replies are also checked by
 * recognizers that are neither engine's matcher.
 */

const exampleGbnf = (name: string) => readFileSync(resolve(REPO_ROOT, 'node_modules/node-llama-cpp/llama/grammars', `${name}.gbnf`), 'utf8');

/** Where the two part, llama.cpp's logits for both picks within this much of the largest |logit|. */
const NEAR_TIE = 1e-3;
const TOKENS = 20;

/** Recognizers of each grammar's language, for a reply that may be cut off (`complete` false). */
const RECOGNIZERS: Record<string, (text: string, complete: boolean) => boolean> = {
  // json.gbnf: an object, as JSON.parse reads it.
  json: (text, complete) => text.startsWith('{') && (!complete || (() => { try { return typeof JSON.parse(text) === 'object'; } catch { return false; } })()),
  // list.gbnf: lines "- item".
  list: (text, complete) => (complete ? /^(- [^\n]+\n)+$/ : /^(- [^\n]+\n)*(- [^\n]*)?$/).test(text),
  // arithmetic.gbnf: equations over [a-z][a-z0-9_]* and numbers, + - * / and parentheses, and whitespace.
  arithmetic: (text) => /^[a-z0-9_+\-*/=() \t\n]*$/.test(text),
};

let dir: string;
const models: Record<string, { file: string; prompt: string; grammars: string[]; session?: ModelSession }> = {
  stories260K: { file: STORIES_GGUF, prompt: 'Once upon a time', grammars: ['json', 'list', 'arithmetic'] },
  'byte-level BPE (written)': { file: '', prompt: 'Once upon a time', grammars: ['json', 'list'] },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-grammar-oracle-'));
  const bpe = models['byte-level BPE (written)'];
  bpe.file = join(dir, 'bpe-random.gguf');
  const vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(`${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-2.gguf`))));
  writeFileSync(bpe.file, writeRandomModel({ architecture: 'llama', nLayers: 1, nEmbd: 64, nFF: 96, nHeads: 2, nKvHeads: 2, contextLength: 128 }, vocab, GGMLType.F32, 5));
  // f32 KV caches, as the oracle's.
  for (const m of Object.values(models)) m.session = await openSession(m.file, { contextLength: 128, kvCache: 'f32' });
}, 120_000);

afterAll(async () => {
  for (const m of Object.values(models)) await m.session?.close();
  await disposeLlamaCpp();
  rmSync(dir, { recursive: true, force: true });
});

for (const [name, m] of Object.entries(models)) {
  describe(name, () => {
    it(`constrained greedy equals llama.cpp's with ${m.grammars.join(', ')}.gbnf, up to a checked near tie`, async () => {
      const session = m.session!;
      const promptIds = await session.encode(m.prompt, true);
      const agreed: string[] = [];
      for (const grammarName of m.grammars) {
        const gbnf = exampleGbnf(grammarName);
        const ours: number[] = [];
        let text = '';
        const stats = await session.generate(promptIds, { temperature: 0, maxTokens: TOKENS, grammar: gbnf }, (t) => {
          if (t.id >= 0) ours.push(t.id);
          text += t.text;
        });
        const theirs = await llamaCppGrammarGreedy(m.file, promptIds, gbnf, TOKENS);
        const recognize = RECOGNIZERS[grammarName];
        const split = ours.findIndex((id, i) => id !== theirs.ids[i]);
        if (split < 0 && ours.length === theirs.ids.length) {
          expect(stats?.finishReason, grammarName).toBe(theirs.eog ? 'stop' : 'length');
          if (recognize) expect(recognize(text, theirs.eog), `${grammarName}: ${JSON.stringify(text)}`).toBe(true);
          agreed.push(`${grammarName} ${ours.length}/${ours.length}`);
          continue;
        }
        // They part at `at`: both picks must be allowed there and llama.cpp must find them a near tie.
        const at = split < 0 ? Math.min(ours.length, theirs.ids.length) : split;
        expect(at, `${grammarName}: one ended and the other went on`).toBeLessThan(Math.min(ours.length, theirs.ids.length));
        expect(at, `${grammarName}: parted at the first token`).toBeGreaterThan(0);
        const logits = await llamaCppLogits(m.file, [...promptIds, ...ours.slice(0, at)]);
        const gap = Math.abs(logits[theirs.ids[at]] - logits[ours[at]]) / Math.max(1, ...Array.from(logits, Math.abs));
        expect(gap, `${grammarName}: parted at token ${at} of ${ours.length}`).toBeLessThanOrEqual(NEAR_TIE);
        agreed.push(`${grammarName} ${at}/${ours.length} (near tie ${gap.toExponential(1)})`);
      }
      console.log(`${name}: ${agreed.join(', ')}`);
    });
  });
}
