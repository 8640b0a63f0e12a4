// @vitest-environment node
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import type { ChatCompletion, ChatCompletionChunk, EmbeddingResponse, GenerateChunk, GeneratedToken } from '../src/index.ts';
import { LanternError } from '../src/errors.ts';
import { readGGUF, type GGUFFile } from '../src/model/gguf.ts';
import { tokenizerFromGGUF, type Tokenizer } from '../src/model/tokenizer/index.ts';
import { declaredPooling } from '../src/runtime/embeddings.ts';
import { bytesSource } from '../src/storage/source.ts';
import { layoutOf, withMetadata } from './helpers/gguf-fuzz.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppEmbedding } from './oracle/llamacpp.ts';

/**
 * Log-probabilities (GenerateOptions.logprobs, chat `logprobs`/`top_logprobs`) and embeddings
 * (Runtime.embed, engine.embeddings.create) on stories260K in Chromium: one engine on the page's
 * thread, and the Runtime it loaded for the logits and read modes. Log-probabilities are checked
 * against the log-softmax, in double, of Runtime.logits (what `lantern logits` prints); embeddings
 * against llama.cpp's embedding mode on the same file, with each pooling it declares.
 */

type Helpers = typeof import('./helpers/logprobs-page.ts');
const HELPERS = '/tests/helpers/logprobs-page.ts';
const PROMPT = 'Once upon a time';

const stories = new Uint8Array(readFileSync(STORIES_GGUF));
const layout = layoutOf(stories);
/** stories260K declaring a pooling (llama.cpp's enum: 1 mean, 2 cls, 3 last); the page serves the mean one. */
const dir = mkdtempSync(join(tmpdir(), 'lantern-embed-'));
const pooled = Object.fromEntries((['mean', 'cls', 'last'] as const).map((name, i) => {
  const file = join(dir, `stories260K-${name}.gguf`);
  writeFileSync(file, withMetadata(layout, [['llama.pooling_type', { type: 'u32', value: i + 1 }]]));
  return [name, file];
})) as Record<'mean' | 'cls' | 'last', string>;

let gpu: GpuPage;
let tokenizer: Tokenizer;

beforeAll(async () => {
  tokenizer = tokenizerFromGGUF(await readGGUF(bytesSource(stories)));
  gpu = await openGpuPage({ modelFile: pooled.mean, warmup: ['./src/index.ts', './tests/helpers/logprobs-page.ts'] });
  await gpu.evaluate(async (path) => {
    const h: Helpers = await window.lanternImport(path);
    await h.start();
  }, HELPERS);
});

afterAll(async () => {
  await gpu?.close();
  await disposeLlamaCpp();
});

/** log-softmax of [n_vocab] logits at `id`, in double. */
function logSoftmax(logits: number[], id: number): number {
  const max = Math.max(...logits);
  const sum = logits.reduce((s, l) => s + Math.exp(l - max), 0);
  return logits[id] - max - Math.log(sum);
}

/** What an entry's bytes must be: the token's text bytes, or a control token's spelling. */
function bytesOf(id: number): number[] {
  return Array.from(tokenizer.tokenBytes(id) ?? new TextEncoder().encode(tokenizer.tokenText(id)));
}

describe('log-probabilities', () => {
  it('of a greedy generation equal the log-softmax of the logits of each prefix; the top ones are the largest, in order', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const runtime = h.theRuntime();
      const prompt = runtime.encode('Once upon a time', true);
      h.takeReads();
      const plain: GeneratedToken[] = [];
      for await (const t of runtime.generate(prompt, { maxTokens: 8, temperature: 0 })) plain.push(t);
      const plainReads = h.takeReads();
      const tokens: GeneratedToken[] = [];
      for await (const t of runtime.generate(prompt, { maxTokens: 8, temperature: 0, logprobs: 5 })) tokens.push(t);
      const withReads = h.takeReads();
      const ids = tokens.filter((t) => t.id >= 0).map((t) => t.id);
      const logits: number[][] = [];
      for (let i = 0; i < ids.length; i++) logits.push(Array.from(await runtime.logits([...prompt, ...ids.slice(0, i)])));
      // Sampled (top-k would read back k logits): the raw distribution still, whatever the temperature.
      const sampled: GeneratedToken[] = [];
      for await (const t of runtime.generate(prompt, { maxTokens: 3, temperature: 1.5, topK: 5, seed: 1, logprobs: 0 })) sampled.push(t);
      const sampledIds = sampled.filter((t) => t.id >= 0).map((t) => t.id);
      const sampledLogits: number[][] = [];
      for (let i = 0; i < sampledIds.length; i++) sampledLogits.push(Array.from(await runtime.logits([...prompt, ...sampledIds.slice(0, i)])));
      const bad = [];
      for (const logprobs of [21, -1, 1.5]) bad.push(await h.failure(() => runtime.generate(prompt, { logprobs }).next()));
      return { plain, plainReads, tokens, withReads, logits, sampled, sampledLogits, bad };
    }, HELPERS);

    const ids = r.tokens.filter((t) => t.id >= 0).map((t) => t.id);
    expect(ids).toHaveLength(8);
    expect(ids, 'asking for logprobs does not change greedy decoding').toEqual(r.plain.filter((t) => t.id >= 0).map((t) => t.id));
    expect(r.plain.every((t) => t.logprob === undefined && t.topLogprobs === undefined)).toBe(true);
    expect(new Set(r.plainReads), 'greedy without logprobs reads back one id per step').toEqual(new Set(['argmax']));
    expect(new Set(r.withReads)).toEqual(new Set(['logits']));
    r.tokens.filter((t) => t.id >= 0).forEach((t, i) => {
      const logits = r.logits[i];
      expect(Math.abs(t.logprob! - logSoftmax(logits, t.id)), `step ${i}`).toBeLessThan(1e-5);
      expect(t.bytes).toEqual(bytesOf(t.id));
      const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 5);
      expect(t.topLogprobs!.map((e) => e.id), `step ${i}`).toEqual(order);
      for (const e of t.topLogprobs!) {
        expect(Math.abs(e.logprob - logSoftmax(logits, e.id))).toBeLessThan(1e-5);
        expect(e.bytes).toEqual(bytesOf(e.id));
      }
      expect(t.topLogprobs![0].id, 'greedy takes the most likely token').toBe(t.id);
      expect(t.topLogprobs![0].logprob).toBe(t.logprob);
    });
    const sampled = r.sampled.filter((t) => t.id >= 0);
    expect(sampled).toHaveLength(3);
    sampled.forEach((t, i) => {
      expect(t.topLogprobs).toEqual([]);
      expect(Math.abs(t.logprob! - logSoftmax(r.sampledLogits[i], t.id))).toBeLessThan(1e-5);
    });
    for (const bad of r.bad) expect(bad).toMatchObject({ isLanternError: true, code: 'BAD_ARGUMENT' });
  });

  it('come through chat.completions, streamed and not, in OpenAI\'s shape; off, they are null and no logits are read', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const engine = h.theEngine();
      const request = { messages: [{ role: 'user' as const, content: 'Once upon a time' }], chat_template: h.SIMPLE_TEMPLATE, max_tokens: 6, temperature: 0 };
      h.takeReads();
      const off = await engine.chat.completions.create(request);
      const offChunks = [];
      for await (const chunk of await engine.chat.completions.create({ ...request, stream: true })) offChunks.push(chunk);
      const offReads = h.takeReads();
      const on = await engine.chat.completions.create({ ...request, logprobs: true, top_logprobs: 3 });
      const onChunks = [];
      for await (const chunk of await engine.chat.completions.create({ ...request, stream: true, logprobs: true, top_logprobs: 3 })) onChunks.push(chunk);
      const generated = [];
      for await (const chunk of engine.generate('Once upon a time', { maxTokens: 4, temperature: 0, logprobs: 2 })) generated.push(chunk);
      const bad = [
        await h.failure(() => engine.chat.completions.create({ ...request, top_logprobs: 2 })), // without logprobs: true
        await h.failure(() => engine.chat.completions.create({ ...request, logprobs: true, top_logprobs: 21 })),
      ];
      return { off, offChunks, offReads, on, onChunks, generated, bad };
    }, HELPERS);

    const off: ChatCompletion = r.off;
    expect(off.choices[0].logprobs).toBeNull();
    expect(r.offChunks.every((c: ChatCompletionChunk) => c.choices[0].logprobs === null)).toBe(true);
    expect(r.offReads.length).toBeGreaterThan(0);
    expect(r.offReads, 'greedy chat without logprobs reads no logits').not.toContain('logits');

    const on: ChatCompletion = r.on;
    const content = on.choices[0].logprobs!.content!;
    expect(on.choices[0].message.content).toBe(off.choices[0].message.content);
    expect(content).toHaveLength(on.usage.completion_tokens);
    expect(content.map((e) => e.token).join('')).toBe(on.choices[0].message.content);
    for (const e of content) {
      expect(e.token).toBe(new TextDecoder().decode(Uint8Array.from(e.bytes!)));
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top_logprobs).toHaveLength(3);
      expect(e.top_logprobs[0]).toEqual({ token: e.token, logprob: e.logprob, bytes: e.bytes });
      expect(e.top_logprobs[1].logprob).toBeLessThanOrEqual(e.top_logprobs[0].logprob);
      expect(e.top_logprobs[2].logprob).toBeLessThanOrEqual(e.top_logprobs[1].logprob);
    }
    const chunks: ChatCompletionChunk[] = r.onChunks;
    const streamed = chunks.flatMap((c) => c.choices[0].logprobs?.content ?? []);
    expect(streamed.map((e) => e.token)).toEqual(content.map((e) => e.token));
    streamed.forEach((e, i) => expect(Math.abs(e.logprob - content[i].logprob)).toBeLessThan(1e-5));
    for (const c of chunks) {
      // Each chunk's entries are its own tokens: their text is the chunk's text.
      const entries = c.choices[0].logprobs?.content;
      if (entries) expect(entries.map((e) => e.token).join('')).toBe(c.choices[0].delta.content);
    }

    const generated: GenerateChunk[] = r.generated;
    const tokens = generated.flatMap((c) => c.tokens);
    expect(tokens).toHaveLength(4);
    expect(generated.flatMap((c) => c.logprobs!.map((e) => e.id))).toEqual(tokens);
    expect(generated.flatMap((c) => c.logprobs!.map((e) => e.topLogprobs.length))).toEqual([2, 2, 2, 2]);
    for (const bad of r.bad) expect(bad).toMatchObject({ isLanternError: true, code: 'BAD_ARGUMENT' });
  });
});

describe('embeddings', () => {
  it('equal llama.cpp\'s pooling (mean, cls, last) of the final hidden states, normalized; a batch equals single calls', async () => {
    const texts = ['Once upon a time', 'The cat sat on the mat.', 'Lily'];
    const r = await gpu.evaluate(async ([path, texts]) => {
      const h: Helpers = await window.lanternImport(path);
      const engine = h.theEngine();
      const runtime = h.theRuntime();
      const batch = await engine.embeddings.create({ input: texts, model: 'any', encoding_format: 'float' });
      const singles = [];
      for (const input of texts) singles.push((await engine.embeddings.create({ input })).data[0].embedding);
      const ids = texts.map((t) => runtime.encode(t, true));
      const cls = Array.from(await runtime.embed(ids[1], { pooling: 'cls' }));
      const last = Array.from(await runtime.embed(ids[1], { pooling: 'last' }));
      // The KV cache now holds text 1: a generation from it reuses all of it but the last token, and is right.
      const after = [];
      for await (const t of runtime.generate(ids[1], { maxTokens: 4 })) after.push(t.id);
      const cachedTokens = runtime.lastStats!.cachedTokens;
      // The same from an empty cache: an embedding of another text first (mean runs from position 0).
      await runtime.embed(ids[2]);
      const fresh = [];
      for await (const t of runtime.generate(ids[1], { maxTokens: 4 })) fresh.push(t.id);
      const bad = [
        await h.failure(() => engine.embeddings.create({ input: [] })),
        await h.failure(() => engine.embeddings.create({ input: '' })),
        await h.failure(() => engine.embeddings.create({ input: 'x', encoding_format: 'base64' as 'float' })),
        await h.failure(() => runtime.embed(ids[0], { pooling: 'max' as 'mean' })),
      ];
      return { batch, singles, ids, cls, last, after, cachedTokens, fresh, freshCached: runtime.lastStats!.cachedTokens, bad };
    }, [HELPERS, texts] as const);

    const batch: EmbeddingResponse = r.batch;
    expect(batch.object).toBe('list');
    expect(batch.model).toMatch(/\S/);
    expect(batch.data.map((d) => [d.object, d.index])).toEqual([['embedding', 0], ['embedding', 1], ['embedding', 2]]);
    const tokens = r.ids.reduce((n: number, ids: number[]) => n + ids.length, 0);
    expect(batch.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    batch.data.forEach((d, i) => expect(d.embedding, `input ${i}`).toEqual(r.singles[i]));

    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const normalized = (v: number[]) => v.map((x) => x / norm(v));
    const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
    const cases: [pooling: 'mean' | 'cls' | 'last', ids: number[], ours: number[]][] = [
      ...batch.data.map((d, i): ['mean', number[], number[]] => ['mean', r.ids[i], d.embedding]),
      ['cls', r.ids[1], r.cls],
      ['last', r.ids[1], r.last],
    ];
    for (const [pooling, ids, ours] of cases) {
      expect(ours).toHaveLength(64); // stories260K's n_embd
      expect(Math.abs(norm(ours) - 1), pooling).toBeLessThan(1e-6);
      const want = normalized(await llamaCppEmbedding(pooled[pooling], ids));
      expect(maxDiff(ours, want), `${pooling} of ${ids.length} tokens`).toBeLessThan(1e-4);
    }
    expect(maxDiff(r.cls, r.last), 'the poolings differ').toBeGreaterThan(1e-2);

    expect(r.cachedTokens).toBe(r.ids[1].length - 1);
    expect(r.freshCached, 'text 2 shares only BOS with text 1').toBe(1);
    expect(r.after).toHaveLength(4);
    expect(r.after).toEqual(r.fresh);
    for (const bad of r.bad) expect(bad).toMatchObject({ isLanternError: true, code: 'BAD_ARGUMENT' });
  });

  it('pool as the file declares: {arch}.pooling_type, the mean where there is none; a reranker\'s is refused when embedding', () => {
    const file = (value?: number) => ({ metadata: new Map<string, unknown>([['general.architecture', 'qwen3'], ...(value === undefined ? [] : [['qwen3.pooling_type', value] as const])]) }) as unknown as GGUFFile;
    expect(declaredPooling(file())()).toBe('mean');
    expect([0, 1, 2, 3].map((n) => declaredPooling(file(n))())).toEqual(['mean', 'mean', 'cls', 'last']);
    const rank = declaredPooling(file(4)); // loading is not refused...
    expect(rank).toThrow(LanternError); // ...embedding is
    expect(() => rank()).toThrow(/pooling_type is 4/);
  });
});
