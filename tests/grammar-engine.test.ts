// @vitest-environment node
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { REPO_ROOT, STORIES_GGUF } from './helpers/paths.ts';

/**
 * Constrained decoding end to end: stories260K (a model that has never seen JSON) in Chromium
 * (SwiftShader WebGPU), through the public engine, with `responseFormat` and `grammar`. Greedy and
 * top-k apply the mask on the GPU (argmax.wgsl and topk.wgsl's MASK variants); other sampling
 * applies it to read-back logits on the CPU. Every reply that ends with "stop" must parse and
 * validate (ajv); one cut off by maxTokens ends with "length".
 */

type Helpers = typeof import('./helpers/engine-page.ts');
const HELPERS = '/tests/helpers/engine-page.ts';

const ajv = new Ajv2020({ strict: false });

/** llama.cpp's example grammars, as node-llama-cpp ships them. */
const exampleGbnf = (name: string) => readFileSync(resolve(REPO_ROOT, 'node_modules/node-llama-cpp/llama/grammars', `${name}.gbnf`), 'utf8');

/**
 * A logit bias of 0 changes no logit but makes the sampler adjust logits, which takes the
 * full-logits path: the mask is then applied on the CPU (runtime.ts runStep).
 */
const CPU_MASK = { logitBias: { 0: 0 } };

const SCHEMAS: Record<string, unknown>[] = [
  { enum: ['red', 'green', 'blue', 42, null] },
  { type: 'object', properties: { mood: { enum: ['happy', 'sad'] }, age: { type: 'integer', minimum: 1, maximum: 12 }, ok: { type: 'boolean' } }, required: ['mood', 'age'] },
  { type: 'array', items: { type: 'integer', minimum: 0, maximum: 99 }, minItems: 1, maxItems: 4 },
  { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, pets: { type: 'array', items: { type: 'string', maxLength: 8 }, maxItems: 2 } }, required: ['name', 'pets'] },
];

let gpu: GpuPage;

beforeAll(async () => {
  gpu = await openGpuPage({ modelFile: STORIES_GGUF, warmup: ['./src/index.ts', './tests/helpers/engine-page.ts'] });
  await gpu.evaluate(async (path) => {
    const h: Helpers = await window.lanternImport(path);
    return h.start('local', 'none');
  }, HELPERS);
});

afterAll(async () => {
  await gpu?.close();
});

describe('constrained generation on stories260K', () => {
  it('json_schema: greedy and sampled replies that stop parse and validate', async () => {
    const runs = await gpu.evaluate(async ({ path, schemas }) => {
      const h: Helpers = await window.lanternImport(path);
      const out: { schema: number; text: string; finish: string; tokens: number }[] = [];
      for (let i = 0; i < schemas.length; i++) {
        const responseFormat = { type: 'json_schema' as const, json_schema: { name: `s${i}`, schema: schemas[i] } };
        for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1, seed: 2 }, { temperature: 1, topK: 40, seed: 3 }]) {
          const r = await h.collect('local', 'Once upon a time', { ...sampling, maxTokens: 60, responseFormat });
          out.push({ schema: i, text: r.text, finish: r.stats.finishReason, tokens: r.tokens.length });
        }
      }
      return out;
    }, { path: HELPERS, schemas: SCHEMAS });
    let stopped = 0;
    for (const r of runs) {
      if (r.finish === 'stop') {
        stopped++;
        let value: unknown;
        expect(() => (value = JSON.parse(r.text)), r.text).not.toThrow();
        expect(ajv.validate(SCHEMAS[r.schema], value), `${JSON.stringify(SCHEMAS[r.schema])}: ${r.text}`).toBe(true);
      } else {
        expect(r.finish).toBe('length');
        expect(r.tokens).toBe(60);
      }
    }
    // the enum and the bounded array always finish well within 60 tokens
    expect(runs.filter((r) => r.schema === 0).every((r) => r.finish === 'stop')).toBe(true);
    expect(stopped).toBeGreaterThanOrEqual(8);
  });

  it('json_object and GBNF through chat.completions and generate; unsupported schemas fail before any token', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const engine = h.engine('local');
      const chat = await engine.chat.completions.create({
        messages: [{ role: 'user', content: 'Give me JSON.' }], chat_template: h.SIMPLE_TEMPLATE, temperature: 0, max_tokens: 80,
        response_format: { type: 'json_object' },
      });
      const gbnf = await h.collect('local', 'Once upon a time', { temperature: 1, seed: 5, maxTokens: 40, grammar: 'root ::= ("yes" | "no" | "maybe") "!"\n' });
      const before = await h.collect('local', 'Once upon a time', { maxTokens: 5 });
      const unsupported = await h.failure(() => h.collect('local', 'Once upon a time', { maxTokens: 5, responseFormat: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'ipv6' } } } }));
      const badGrammar = await h.failure(() => h.collect('local', 'Once upon a time', { maxTokens: 5, grammar: 'root ::= "a" (\n' }));
      const after = await h.collect('local', 'Once upon a time', { maxTokens: 5 });
      return { chat: { content: chat.choices[0].message.content, finish: chat.choices[0].finish_reason }, gbnf, before: before.text, unsupported, badGrammar, after: after.text };
    }, HELPERS);
    if (r.chat.finish === 'stop') {
      const value = JSON.parse(r.chat.content!);
      expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    } else {
      expect(r.chat.finish).toBe('length');
      expect(r.chat.content!.startsWith('{')).toBe(true);
    }
    expect(['yes!', 'no!', 'maybe!']).toContain(r.gbnf.text);
    expect(r.gbnf.stats.finishReason).toBe('stop');
    expect(r.unsupported).toMatchObject({ isLanternError: true, code: 'UNSUPPORTED_SCHEMA', details: { keyword: 'format', path: '#' } });
    expect(r.badGrammar).toMatchObject({ isLanternError: true, code: 'BAD_GRAMMAR' });
    expect(r.after).toBe(r.before); // the engine is fine afterwards
  });

  it('the GPU mask gives the tokens the CPU mask gives: greedy, and seeded top-k (which only draws allowed tokens)', async () => {
    const schema = SCHEMAS[1];
    const responseFormat = { type: 'json_schema' as const, json_schema: { name: 'mood', schema } };
    const list = exampleGbnf('list');
    const r = await gpu.evaluate(async ({ path, responseFormat, list, cpu }) => {
      const h: Helpers = await window.lanternImport(path);
      const pair = async (options: Parameters<Helpers['collect']>[2]) => {
        const onGpu = await h.collect('local', 'Once upon a time', options);
        const onCpu = await h.collect('local', 'Once upon a time', { ...options, ...cpu });
        return { gpu: { text: onGpu.text, tokens: onGpu.tokens, finish: onGpu.stats.finishReason }, cpu: { text: onCpu.text, tokens: onCpu.tokens } };
      };
      return {
        schemaGreedy: await pair({ temperature: 0, maxTokens: 40, responseFormat }),
        listGreedy: await pair({ temperature: 0, maxTokens: 24, grammar: list }),
        topK: [await pair({ temperature: 1.5, topK: 8, seed: 7, maxTokens: 40, responseFormat }), await pair({ temperature: 1.5, topK: 8, seed: 8, maxTokens: 24, grammar: list })],
      };
    }, { path: HELPERS, responseFormat, list, cpu: CPU_MASK });
    for (const run of [r.schemaGreedy, r.listGreedy, ...r.topK]) {
      expect(run.gpu.tokens.length).toBeGreaterThan(3);
      expect(run.gpu.tokens).toEqual(run.cpu.tokens);
      expect(run.gpu.text).toBe(run.cpu.text);
    }
    for (const run of [r.schemaGreedy, r.topK[0]]) {
      if (run.gpu.finish === 'stop') expect(ajv.validate(schema, JSON.parse(run.gpu.text)), run.gpu.text).toBe(true);
      else expect(run.gpu.text.startsWith('{'), run.gpu.text).toBe(true);
    }
    // list.gbnf: lines of "- item"; a reply cut off by maxTokens is a prefix of such lines.
    for (const run of [r.listGreedy, r.topK[1]]) expect(run.gpu.text, run.gpu.text).toMatch(/^(- [^\n]+\n)*(- [^\n]*)?$/);
  });
});
