// @vitest-environment node
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import type { ChatCompletion, ChatCompletionChunk } from '../src/index.ts';
import { STORIES_GGUF } from './helpers/paths.ts';

/**
 * The public engine API on stories260K in Chromium (SwiftShader WebGPU): in-thread for the
 * generation loop, sampling, scheduler and KV reuse, then through a dedicated Web Worker and a
 * SharedWorker shared by two tabs.
 */

type Helpers = typeof import('./helpers/engine-page.ts');
const HELPERS = '/tests/helpers/engine-page.ts';

/** What stories260K generates greedily after "Once upon a time" (llama.cpp agrees; see tests/e2e/demo.test.ts). */
const GREEDY = ', there was a little girl named Lily. She loved to play outside in the park.';

let gpu: GpuPage;

beforeAll(async () => {
  gpu = await openGpuPage({ modelFile: STORIES_GGUF, warmup: ['./src/index.ts', './tests/helpers/engine-page.ts'] });
  const loaded = await gpu.evaluate(async (path) => {
    const h: Helpers = await window.lanternImport(path);
    return h.start('local', 'none');
  }, HELPERS);
  expect(loaded.worker).toBe('none');
});

afterAll(async () => {
  await gpu?.close();
});

describe('engine on this thread', () => {
  it('greedy generation streams the reference text; seeds repeat exactly and differ from each other', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const greedy = await h.collect('local', 'Once upon a time', { maxTokens: 20 });
      const sampled = { temperature: 1, topK: 40, topP: 0.95, minP: 0.02, repetitionPenalty: 1.1, maxTokens: 40 };
      const a = await h.collect('local', 'Once upon a time', { ...sampled, seed: 7 });
      const b = await h.collect('local', 'Once upon a time', { ...sampled, seed: 7 });
      const c = await h.collect('local', 'Once upon a time', { ...sampled, seed: 8 });
      return { greedy, a, b, c };
    }, HELPERS);
    expect(GREEDY.startsWith(r.greedy.text) && r.greedy.text.length > 40, r.greedy.text).toBe(true);
    expect(r.greedy.stats.finishReason).toBe('length');
    expect(r.greedy.tokens.length).toBe(20);
    expect(r.a.tokens).toEqual(r.b.tokens);
    expect(r.a.text).toBe(r.b.text);
    expect(r.c.tokens).not.toEqual(r.a.tokens);
    expect(r.a.tokens.length).toBe(40);
  });

  it('ends before a stop string that spans tokens, which never reaches the caller, and at EOS', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const stopped = await h.collect('local', 'Once upon a time', { maxTokens: 40, stop: ['le girl na', 'zzz'] });
      // A bias that makes EOS (id 2 in stories260K) the greedy choice: it ends the run and is not yielded.
      const eos = await h.collect('local', 'Once upon a time', { maxTokens: 40, logitBias: { 2: 1000 } });
      return { ...stopped, eos };
    }, HELPERS);
    expect(r.text).toBe(', there was a litt');
    expect(r.stats.finishReason).toBe('stop');
    expect(r.eos.stats).toMatchObject({ finishReason: 'stop', generatedTokens: 0 });
    expect(r.eos.text).toBe('');
  });

  it('an abort mid-stream frees the engine, and the next request is correct', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const aborted = await h.collect('local', 'Once upon a time', { maxTokens: 300, abortAfter: 3 });
      const t0 = performance.now();
      const after = await h.collect('local', 'Once upon a time', { maxTokens: 20 });
      // An abort that lands before the request starts: it never runs.
      const controller = new AbortController();
      controller.abort();
      const early = h.engine('local').generate('Once', { signal: controller.signal });
      return { aborted, after, ms: performance.now() - t0, early: await early.result };
    }, HELPERS);
    expect(r.aborted.stats.finishReason).toBe('abort');
    expect(r.aborted.stats.generatedTokens).toBeLessThan(20);
    expect(GREEDY.startsWith(r.aborted.text)).toBe(true);
    expect(GREEDY.startsWith(r.after.text) && r.after.tokens.length === 20, r.after.text).toBe(true);
    expect(r.early).toMatchObject({ finishReason: 'abort', generatedTokens: 0 });
  });

  it('an abort during a long prefill lands between chunks; the chunks done stay in the KV cache', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const prompt = 'The dog ran to the park. He saw a big red ball and a little girl named Lily. '.repeat(5);
      const controller = new AbortController();
      const stream = h.engine('local').generate(prompt, { maxTokens: 4, signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 150));
      const t0 = performance.now();
      controller.abort();
      const aborted = await stream.result;
      const abortMs = performance.now() - t0;
      const again = await h.collect('local', prompt, { maxTokens: 1 });
      return { aborted, abortMs, again: again.stats };
    }, HELPERS);
    console.log(`prefill abort: answered in ${r.abortMs.toFixed(0)} ms; ${r.again.cachedTokens} of ${r.again.promptTokens} prompt tokens were kept`);
    expect(r.aborted.finishReason).toBe('abort');
    expect(r.aborted.generatedTokens).toBe(0);
    expect(r.aborted.promptTokens).toBeGreaterThan(64); // at least two chunks
    // Whole 64-token chunks after the prefix it reused itself were kept: the rerun reuses them and
    // prefills the rest. The abort came while the first chunk ran, so that one was finished.
    const kept = r.again.cachedTokens - r.aborted.cachedTokens;
    expect(kept % 64, `cached ${r.again.cachedTokens}, of which ${r.aborted.cachedTokens} before`).toBe(0);
    expect(kept).toBeGreaterThanOrEqual(64);
    expect(r.again.cachedTokens).toBeLessThan(r.again.promptTokens - 1);
    expect(r.again.prefilledTokens).toBe(r.again.promptTokens - r.again.cachedTokens);
    // That the abort did not wait for the whole prefill is what the rerun's own prefill shows (no
    // wall-clock limit: a slower machine answers later, and still between chunks).
  });

  it('two concurrent callers each get the tokens they get alone; a queued request can be aborted by id', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const one = { temperature: 0.9, seed: 1, maxTokens: 24 };
      const two = { temperature: 0, maxTokens: 24 };
      const aloneOne = await h.collect('local', 'The cat', one);
      const aloneTwo = await h.collect('local', 'Once upon a time', two);
      const [bothOne, bothTwo] = await Promise.all([h.collect('local', 'The cat', one), h.collect('local', 'Once upon a time', two)]);
      // Three requests: the third is queued behind the first two and aborted by id before it starts.
      const engine = h.engine('local');
      const s1 = engine.generate('A', { maxTokens: 8 });
      const s2 = engine.generate('B', { maxTokens: 8 });
      const s3 = engine.generate('C', { maxTokens: 8, id: 'queued-one' });
      const cancelled = await engine.abort('queued-one');
      const results = await Promise.all([s1.result, s2.result, s3.result]);
      return { aloneOne, aloneTwo, bothOne, bothTwo, cancelled, results };
    }, HELPERS);
    expect(r.bothOne.tokens).toEqual(r.aloneOne.tokens);
    expect(r.bothTwo.tokens).toEqual(r.aloneTwo.tokens);
    expect(r.cancelled).toBe(true);
    expect(r.results.map((s) => s.finishReason)).toEqual(['length', 'length', 'abort']);
    expect(r.results[2].generatedTokens).toBe(0);
  });

  it('a second chat turn prefills only the tokens after the prefix the KV cache holds', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const engine = h.engine('local');
      const chat = engine.chat.completions;
      const first = [{ role: 'user' as const, content: 'Tell me a story about a dog.' }];
      const turn1 = await chat.create({ messages: first, chat_template: h.SIMPLE_TEMPLATE, temperature: 0, max_tokens: 10 });
      const second = [...first, { role: 'assistant' as const, content: turn1.choices[0].message.content }, { role: 'user' as const, content: 'And then?' }];
      const turn2 = await chat.create({ messages: second, chat_template: h.SIMPLE_TEMPLATE, temperature: 0, max_tokens: 10 });
      // The same turn on a cold cache: the reply must not depend on the reuse.
      await engine.generate('Unrelated text', { maxTokens: 1 }).result;
      const cold = await chat.create({ messages: second, chat_template: h.SIMPLE_TEMPLATE, temperature: 0, max_tokens: 10 });
      return { turn1, turn2, cold };
    }, HELPERS);
    const cached = r.turn2.usage.prompt_tokens_details!.cached_tokens;
    expect(cached).toBeGreaterThanOrEqual(r.turn1.usage.prompt_tokens);
    expect(cached).toBeLessThan(r.turn2.usage.prompt_tokens);
    expect(r.cold.usage.prompt_tokens_details!.cached_tokens).toBeLessThan(3);
    expect(r.turn2.choices[0].message.content).toBe(r.cold.choices[0].message.content);
    expect(r.turn2.choices[0].message.content!.length).toBeGreaterThan(0);
  });

  it('a prompt longer than the context is CONTEXT_OVERFLOW; a full context ends with "length"', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      await h.start('small', 'none', 24);
      const overflow = await h.failure(() => h.collect('small', 'Once upon a time '.repeat(20)));
      const full = await h.collect('small', 'Once upon a time', { maxTokens: 1000 });
      await h.engine('small').unload();
      const unloaded = await h.failure(() => h.collect('small', 'Once'));
      return { overflow, full, unloaded };
    }, HELPERS);
    expect(r.overflow).toMatchObject({ isLanternError: true, code: 'CONTEXT_OVERFLOW', details: { contextLength: 24 } });
    expect((r.overflow!.details as { promptTokens: number }).promptTokens).toBeGreaterThan(24);
    expect(r.full.stats.finishReason).toBe('length');
    expect(r.full.stats.promptTokens + r.full.stats.generatedTokens).toBe(25); // the last token needs no KV slot
    expect(r.unloaded).toMatchObject({ code: 'NOT_LOADED' });
  });

  it('reports DEVICE_LOST when the GPU goes away, and loads again without a reload', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const { WorkerEngine } = await window.lanternImport('/src/worker/worker-engine.ts');
      const engine = new WorkerEngine();
      await engine.load(h.MODEL_URL);
      // What a driver reset does to the device: destroy() loses it with reason "destroyed".
      (engine as unknown as { runtime: { gpu: { device: GPUDevice } } }).runtime.gpu.device.destroy();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const request = { id: 'x', caller: 't', prompt: 'Once', options: { maxTokens: 4 } };
      const lost = await h.failure(() => engine.request(request, () => {}));
      await engine.load(h.MODEL_URL);
      const again = await engine.request({ ...request, id: 'y' }, () => {});
      return { lost, again };
    }, HELPERS);
    expect(r.lost).toMatchObject({ isLanternError: true, code: 'DEVICE_LOST' });
    expect(r.again.generatedTokens).toBe(4);
  });
});

describe('top-k on the GPU', () => {
  it('selects the k largest logits as its float64 CPU twin does, ties and -Infinity included', async () => {
    const cases = [
      { n: 517, k: 1 }, { n: 517, k: 7 }, { n: 1000, k: 40 }, { n: 300, k: 256 }, { n: 5, k: 5 },
    ];
    const r = await gpu.evaluate(async (cases) => {
      const { acquireGpu } = await window.lanternImport('/src/gpu/device.ts');
      const { Kernels, STEP } = await window.lanternImport('/src/kernels/ops.ts');
      const { topK, topKReference, TOPK_MAX, TOPK_RESULT_WORDS } = await window.lanternImport('/src/kernels/topk.ts');
      const ctx = await acquireGpu(navigator.gpu);
      const { device } = ctx;
      const kernels = new Kernels(ctx, device.createBuffer({ size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM }));
      const out = [];
      for (const { n, k } of cases) {
        // Values on a coarse grid so that ties are common; a few banned tokens.
        let seed = n * 31 + k;
        const logits = Float32Array.from({ length: n }, (_, i) => {
          seed = (seed * 1103515245 + 12345) % 2 ** 31;
          return i % 97 === 3 ? -Infinity : Math.round(((seed / 2 ** 31) * 20 - 10) * 4) / 4;
        });
        const logitsBuffer = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(logitsBuffer, 0, logits);
        const result = device.createBuffer({ size: TOPK_RESULT_WORDS * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
        const read = device.createBuffer({ size: 2 * TOPK_MAX * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        device.pushErrorScope('validation');
        const op = await topK(kernels, logitsBuffer, n, result);
        op.setK(k);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        op.encode(pass, 1);
        pass.end();
        encoder.copyBufferToBuffer(result, 0, read, 0, 2 * TOPK_MAX * 4);
        device.queue.submit([encoder.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const words = read.getMappedRange();
        const ids = Array.from(new Uint32Array(words, 0, k));
        const values = Array.from(new Float32Array(words, TOPK_MAX * 4, k));
        read.unmap();
        const error = await device.popErrorScope();
        const finite = Array.from(logits).filter((x) => x > -Infinity).length;
        const want = topKReference(Array.from(logits), Math.min(k, finite));
        out.push({ n, k, ids: ids.slice(0, want.ids.length), values: values.slice(0, want.ids.length), want, error: error?.message ?? null });
      }
      device.destroy();
      return out;
    }, cases);
    for (const c of r) {
      expect(c.error, `n=${c.n} k=${c.k}`).toBeNull();
      expect(c.ids, `n=${c.n} k=${c.k}`).toEqual(c.want.ids);
      expect(c.values).toEqual(c.want.values);
    }
  });

  it('sampling from the GPU top-k draws what sampling from all logits draws', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const { candidates, candidatesFromTopK } = await window.lanternImport('/src/runtime/sampler.ts');
      const { urlSource } = await window.lanternImport('/src/storage/source.ts');
      const { Runtime } = await window.lanternImport('/src/runtime/runtime.ts');
      const runtime = await Runtime.load(navigator.gpu, await urlSource(h.MODEL_URL));
      const forward = (runtime as unknown as { forward: { step(t: number[], p: number, r: string, k?: number): Promise<any> } }).forward;
      const prompt = runtime.encode('Once upon a time, there was a', true);
      const options = { temperature: 2, topK: 12, topP: 0.999, minP: 0.0001 }; // wide enough to keep several candidates
      const full = candidates(await forward.step(prompt, 0, 'logits'), options, []);
      const top = await forward.step(prompt, 0, 'topk', 12);
      const fromTop = candidatesFromTopK(top.ids, top.logits, options);
      // The generation loop takes the top-k path for these options; the same seed repeats it.
      const a = await h.collect('local', 'Once upon a time', { ...options, seed: 11, maxTokens: 16 });
      const b = await h.collect('local', 'Once upon a time', { ...options, seed: 11, maxTokens: 16 });
      runtime.dispose();
      return { full, fromTop, a: a.tokens, b: b.tokens };
    }, HELPERS);
    expect(r.fromTop.ids).toEqual(r.full.ids);
    r.fromTop.probs.forEach((p: number, i: number) => expect(p).toBeCloseTo(r.full.probs[i], 12));
    expect(r.full.ids.length).toBeGreaterThan(1);
    expect(r.a).toEqual(r.b);
    expect(r.a).toHaveLength(16);
  });
});

describe('engine in workers', () => {
  it('streams an OpenAI-shaped chat through a dedicated worker; errors arrive with their code', async () => {
    const r = await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      const { createEngine } = await window.lanternImport('/src/index.ts');
      const bare = createEngine();
      const notLoaded = await h.failure(() => bare.info());
      bare.terminate();
      const started = await h.start('worker', 'dedicated');
      const engine = h.engine('worker');
      const noTemplate = await h.failure(() => engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }] }));
      const stream = await engine.chat.completions.create({
        messages: [{ role: 'system', content: 'Tell stories.' }, { role: 'user', content: 'Once upon a time' }],
        chat_template: h.SIMPLE_TEMPLATE,
        stream: true,
        temperature: 0.8,
        top_k: 20,
        seed: 3,
        max_tokens: 12,
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      // The same URL with other options is loaded again, not shared.
      const first = await engine.info();
      const memory = await engine.memory(); // the GPU memory account, across the worker boundary
      const exact = await engine.load(h.MODEL_URL, { int8Activations: false });
      return { notLoaded, started, noTemplate, chunks, int8: [first.int8Activations, exact.int8Activations], memory, kvBytes: first.kvBytes };
    }, HELPERS);
    expect(r.memory.kvCache).toBe(r.kvBytes);
    expect(r.memory.total).toBe(r.memory.weights + r.memory.kvCache + r.memory.activations + r.memory.staging);
    expect(r.memory.weights).toBeGreaterThan(0);
    expect(r.int8, 'SwiftShader takes int8 activations unless they are turned off').toEqual([true, false]);
    expect(r.notLoaded).toMatchObject({ isLanternError: true, code: 'NOT_LOADED' });
    expect(r.started.worker).toBe('dedicated');
    expect(r.noTemplate).toMatchObject({ isLanternError: true, code: 'NO_CHAT_TEMPLATE' });
    const chunks: ChatCompletionChunk[] = r.chunks;
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    const last = chunks[chunks.length - 1];
    expect(last.choices[0].finish_reason).toBe('length');
    expect(last.usage!.completion_tokens).toBe(12);
    expect(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('').length).toBeGreaterThan(0);
  });

  it('two tabs share one SharedWorker and one loaded model', async () => {
    // A second tab of the same origin and profile (a page Playwright opens itself would get its own profile).
    const [second] = await Promise.all([
      gpu.page.waitForEvent('popup'),
      gpu.evaluate((url) => void window.open(url, '_blank'), `${gpu.url}/__lantern/blank.html`),
    ]);
    try {
      await second.waitForLoadState();
      await second.waitForFunction(() => typeof window.lanternImport === 'function');
      const run = (page: typeof second) =>
        page.evaluate(async (path) => {
          const h: Helpers = await window.lanternImport(path);
          const started = await h.start('shared', 'shared');
          const chat: ChatCompletion = await h.engine('shared').chat.completions.create({
            messages: [{ role: 'user', content: 'Once upon a time' }],
            chat_template: h.SIMPLE_TEMPLATE,
            temperature: 0,
            max_tokens: 10,
          });
          return { started, chat };
        }, HELPERS);
      const [a, b] = await gpu.guard(Promise.all([run(gpu.page), run(second)]));
      expect(a.started.worker).toBe('shared');
      expect(b.started.worker).toBe('shared');
      expect(a.chat.choices[0].message.content).toBe(b.chat.choices[0].message.content);
      expect(a.chat.usage.completion_tokens).toBe(10);
      // Same prompt, one model: the tab that ran second found the whole prompt but its last token in the KV cache.
      const cached = [a, b].map((x) => x.chat.usage.prompt_tokens_details!.cached_tokens).sort((x, y) => x - y);
      expect(cached[1]).toBe(a.chat.usage.prompt_tokens - 1);
    } finally {
      await second.close();
    }
  });
});
