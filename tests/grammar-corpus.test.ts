/**
 * The JSON-schema corpus (tests/helpers/grammar-schemas.ts: 35 schemas, every keyword of the
 * supported subset) on stories260K, a model that has never seen JSON: greedy and five seeds at
 * temperature 1 per schema, through the same constraint and sampler the runtime uses (constraintFor,
 * Sampler), with the model's logits from its float64 CPU twin (tests/helpers/cpu-llama.ts), which
 * is fast enough at this size for 210 generations. Every reply that ends by itself must parse and
 * validate with ajv. That the GPU path picks the same tokens under a mask is held in
 * grammar-engine.test.ts (GPU mask = CPU mask) and grammar-oracle.test.ts (= llama.cpp).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { readGGUF } from '../src/model/gguf.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import { constraintFor } from '../src/runtime/grammar/index.ts';
import { Sampler } from '../src/runtime/sampler.ts';
import { bytesSource } from '../src/storage/source.ts';
import { CpuLlama } from './helpers/cpu-llama.ts';
import { SCHEMA_CASES } from './helpers/grammar-schemas.ts';
import { validates } from './helpers/json-validator.ts';
import { STORIES_GGUF, STORIES_REFERENCE } from './helpers/paths.ts';

const MAX_TOKENS = 64;

describe('the schema corpus on stories260K (its CPU twin)', async () => {
  const bytes = new Uint8Array(readFileSync(STORIES_GGUF));
  const file = await readGGUF(bytesSource(bytes));
  const tokenizer = tokenizerFromGGUF(file);
  const model = new CpuLlama(file, bytes, 128);

  test('the twin is stories260K: its greedy continuation of BOS is the reference\'s', () => {
    const reference: number[] = JSON.parse(readFileSync(STORIES_REFERENCE, 'utf8')).generated_ids;
    model.reset();
    const ids: number[] = [];
    let logits = model.step(1);
    for (let i = 0; i < 40; i++) {
      const id = logits.indexOf(Math.max(...logits));
      ids.push(id);
      logits = model.step(id);
    }
    expect(ids).toEqual(reference.slice(0, 40));
  });

  test(`${SCHEMA_CASES.length} schemas, greedy and 5 seeds at temperature 1: every reply that stops parses and validates`, () => {
    expect(SCHEMA_CASES.length).toBeGreaterThanOrEqual(30);
    const prompt = tokenizer.encode('Once upon a time', { addSpecial: true });
    let stopped = 0;
    let runs = 0;
    for (const c of SCHEMA_CASES) {
      const responseFormat = c.schema === undefined
        ? { type: 'json_object' as const }
        : { type: 'json_schema' as const, json_schema: { name: 'corpus', schema: c.schema } };
      for (const sampling of [{ temperature: 0 }, ...[1, 2, 3, 4, 5].map((seed) => ({ temperature: 1, seed }))]) {
        const constraint = constraintFor(tokenizer, { responseFormat })!;
        const sampler = new Sampler(sampling);
        model.reset();
        let logits: Float32Array<ArrayBuffer> = new Float32Array(0);
        for (const id of prompt) logits = model.step(id);
        const ids: number[] = [];
        let finish: 'stop' | 'length' = 'length';
        while (ids.length < MAX_TOKENS) {
          const id = sampler.sample(logits, [...prompt, ...ids], constraint.mask());
          constraint.advance(id);
          if (tokenizer.isEndOfGeneration(id)) {
            finish = 'stop';
            break;
          }
          ids.push(id);
          logits = model.step(id);
        }
        runs++;
        const text = tokenizer.decode(ids);
        if (finish === 'stop') {
          stopped++;
          expect(validates(c.schema, text), `${c.name} (${JSON.stringify(sampling)}): ${text}`).toBe(true);
        } else {
          expect(ids.length).toBe(MAX_TOKENS);
        }
      }
    }
    console.log(`schema corpus: ${stopped} of ${runs} replies ended by themselves within ${MAX_TOKENS} tokens, every one valid`);
    // A model that knows no JSON still finishes most of them: the grammar leaves it few choices.
    expect(stopped).toBeGreaterThanOrEqual(runs / 2);
  });
});
