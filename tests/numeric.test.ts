// @vitest-environment node
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { topKReference } from '../src/kernels/topk.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { argmaxFinite } from './kernels/reference.ts';

/**
 * Numeric faults (issue 14, item 4): NaN or ±Inf in the logits is counted on the GPU next to the
 * argmax id and the top-k result (shaders/argmax.wgsl, topk.wgsl), checked on the host where the
 * full logits come back, and ends a request with NUMERIC_ERROR naming the step, never with an id
 * outside the vocabulary. Kernels against their CPU twins, then stories260K with one weight made
 * NaN or +Inf, on the greedy, top-k and full-logits paths, in this thread and through a worker.
 */

let gpu: GpuPage;
beforeAll(async () => {
  gpu = await openGpuPage({ modelFile: STORIES_GGUF, warmup: ['./src/index.ts', './src/runtime/runtime.ts'] });
});
afterAll(() => gpu?.close());

/** Logits with non-finite values at given indices ('nan', 'inf', '-inf'); the rest seeded in [-8, 8). */
function logitsWith(n: number, seed: number, faults: Record<number, 'nan' | 'inf' | '-inf'>): number[] {
  let s = seed;
  const values = Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return Math.fround((s / 2 ** 31) * 16 - 8);
  });
  for (const [i, f] of Object.entries(faults)) values[Number(i)] = f === 'nan' ? NaN : f === 'inf' ? Infinity : -Infinity;
  return values;
}

describe('argmax and top-k kernels count NaN and ±Inf and never pick them', () => {
  const cases = [
    { name: 'finite', n: 1000, faults: {} },
    { name: 'one NaN at the would-be maximum', n: 1000, faults: { 7: 'nan' } },
    { name: '+Inf and -Inf', n: 777, faults: { 0: 'inf', 776: '-inf', 300: 'inf' } },
    { name: 'the f32 extremes, finite', n: 300, faults: {}, extremes: true },
  ] as const;

  it('matches the CPU twins: the id of the largest finite logit, the top-k of the finite ones, and the count', async () => {
    const inputs = cases.map((c, i) => {
      const logits = logitsWith(c.n, 17 + i, c.faults);
      // Every logit at or below -3e38, the old sentinel: the id must still be a real one.
      if ('extremes' in c) logits.forEach((_, j) => (logits[j] = Math.fround(-3.4028234663852886e38 + (j === 123 ? 1e32 : 0))));
      return { name: c.name, logits: logits.map((x) => (Number.isNaN(x) ? 'nan' : x === Infinity ? 'inf' : x === -Infinity ? '-inf' : x)), k: 40 };
    });
    const got = await gpu.evaluate(async (inputs) => {
      const { acquireGpu } = await window.lanternImport('/src/gpu/device.ts');
      const { Kernels, STEP } = await window.lanternImport('/src/kernels/ops.ts');
      const { topK, TOPK_MAX, TOPK_NON_FINITE, TOPK_RESULT_WORDS } = await window.lanternImport('/src/kernels/topk.ts');
      const ctx = await acquireGpu(navigator.gpu);
      const { device } = ctx;
      const kernels = new Kernels(ctx, device.createBuffer({ size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM }));
      const out = [];
      for (const { name, logits, k } of inputs) {
        const values = Float32Array.from(logits, (x) => (x === 'nan' ? NaN : x === 'inf' ? Infinity : x === '-inf' ? -Infinity : x));
        const n = values.length;
        device.pushErrorScope('validation');
        const logitsBuffer = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
        device.queue.writeBuffer(logitsBuffer, 0, values);
        const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
        const argmaxResult = device.createBuffer({ size: 16, usage });
        const topKResult = device.createBuffer({ size: TOPK_RESULT_WORDS * 4, usage });
        const read = device.createBuffer({ size: 16 + TOPK_RESULT_WORDS * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        const argmax = await kernels.argmax(logitsBuffer, n, argmaxResult);
        const top = await topK(kernels, logitsBuffer, n, topKResult);
        top.setK(k);
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        argmax.encode(pass, 1);
        top.encode(pass, 1);
        pass.end();
        encoder.copyBufferToBuffer(argmaxResult, 0, read, 0, 16);
        encoder.copyBufferToBuffer(topKResult, 0, read, 16, TOPK_RESULT_WORDS * 4);
        device.queue.submit([encoder.finish()]);
        await read.mapAsync(GPUMapMode.READ);
        const words = new Uint32Array(read.getMappedRange().slice(0));
        read.unmap();
        const error = await device.popErrorScope();
        const topWords = words.subarray(4);
        out.push({
          name,
          argmax: { id: words[0], nonFinite: words[1] },
          topK: {
            ids: Array.from(topWords.subarray(0, k)),
            values: Array.from(new Float32Array(topWords.buffer, topWords.byteOffset + TOPK_MAX * 4, k)),
            nonFinite: topWords[TOPK_NON_FINITE],
          },
          error: error?.message ?? null,
        });
        for (const b of [logitsBuffer, argmaxResult, topKResult, read]) b.destroy();
      }
      device.destroy();
      return out;
    }, inputs);
    for (const [i, c] of got.entries()) {
      const logits = inputs[i].logits.map((x) => (x === 'nan' ? NaN : x === 'inf' ? Infinity : x === '-inf' ? -Infinity : x));
      expect(c.error, c.name).toBeNull();
      expect(c.argmax, c.name).toEqual(argmaxFinite(logits));
      const want = topKReference(logits, 40);
      expect(c.topK, c.name).toEqual(want);
      expect(c.argmax.id, c.name).toBeLessThan(logits.length);
      expect(c.topK.ids.every((id) => id < logits.length), c.name).toBe(true);
    }
    expect(got.map((c) => c.argmax.nonFinite)).toEqual([0, 1, 3, 0]);
    expect(got[1].argmax.id).not.toBe(7);
    expect(got[3].argmax.id).toBe(123);
  });

  it('picks past the last finite logit are NONE, not a stale or out-of-range id', async () => {
    const got = await gpu.evaluate(async () => {
      const { acquireGpu } = await window.lanternImport('/src/gpu/device.ts');
      const { Kernels, STEP } = await window.lanternImport('/src/kernels/ops.ts');
      const { topK, TOPK_NON_FINITE, TOPK_RESULT_WORDS } = await window.lanternImport('/src/kernels/topk.ts');
      const ctx = await acquireGpu(navigator.gpu);
      const { device } = ctx;
      const kernels = new Kernels(ctx, device.createBuffer({ size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM }));
      const n = 10;
      // Two finite logits of ten; the rest NaN.
      const values = new Float32Array(n).fill(NaN);
      values[4] = 1;
      values[8] = 2;
      const logits = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(logits, 0, values);
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
      const argmaxResult = device.createBuffer({ size: 16, usage });
      const allNaN = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(allNaN, 0, new Float32Array(n).fill(NaN));
      const topKResult = device.createBuffer({ size: TOPK_RESULT_WORDS * 4, usage });
      const read = device.createBuffer({ size: 16 + TOPK_RESULT_WORDS * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const argmax = await kernels.argmax(allNaN, n, argmaxResult);
      const top = await topK(kernels, logits, n, topKResult);
      top.setK(5);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      argmax.encode(pass, 1);
      top.encode(pass, 1);
      pass.end();
      encoder.copyBufferToBuffer(argmaxResult, 0, read, 0, 16);
      encoder.copyBufferToBuffer(topKResult, 0, read, 16, TOPK_RESULT_WORDS * 4);
      device.queue.submit([encoder.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const words = new Uint32Array(read.getMappedRange().slice(0));
      device.destroy();
      return { argmax: [words[0], words[1]], ids: Array.from(words.subarray(4, 9)), nonFinite: words[4 + TOPK_NON_FINITE] };
    }, undefined);
    expect(got.argmax).toEqual([0xffffffff, 10]);
    expect(got.ids).toEqual([8, 4, 0xffffffff, 0xffffffff, 0xffffffff]);
    expect(got.nonFinite).toBe(8);
  });
});

interface Outcome {
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
  tokens: number[];
}

describe('a model whose weights hold NaN or +Inf ends the request with NUMERIC_ERROR', () => {
  /** stories260K with one f32 weight element replaced, loaded in the page; each path runs one request. */
  function runDamaged(tensor: string, element: number, value: 'nan' | 'inf') {
    return gpu.evaluate(
      async ([tensor, element, value]) => {
        const { readGGUF } = await window.lanternImport('/src/model/gguf.ts');
        const { bytesSource } = await window.lanternImport('/src/storage/source.ts');
        const { Runtime } = await window.lanternImport('/src/runtime/runtime.ts');
        const bytes = new Uint8Array(await (await fetch('/__lantern/model.gguf')).arrayBuffer());
        const file = await readGGUF(bytesSource(bytes));
        const info = file.tensors.find((t: { name: string }) => t.name === tensor);
        new DataView(bytes.buffer).setFloat32(info.offset + 4 * element, value === 'nan' ? NaN : Infinity, true);
        const runtime = await Runtime.load(navigator.gpu, bytesSource(bytes), { contextLength: 64 });
        const prompt = runtime.encode('Once upon a time', true);
        const attempt = async (options: Record<string, unknown>): Promise<Outcome> => {
          const tokens: number[] = [];
          try {
            for await (const token of runtime.generate(prompt, options)) if (token.id >= 0) tokens.push(token.id);
            return { tokens };
          } catch (e) {
            const { code, message, details } = e as { code: string; message: string; details?: Record<string, unknown> };
            return { code, message, details, tokens };
          }
        };
        const greedy = await attempt({ maxTokens: 8, temperature: 0 });
        const topK = await attempt({ maxTokens: 8, temperature: 0.8, topK: 20, seed: 1 });
        // A repetition penalty needs the whole vocabulary on the host: the full-logits readback.
        const fullLogits = await attempt({ maxTokens: 8, temperature: 0.8, repetitionPenalty: 1.3, seed: 1 });
        const logits = await runtime.logits(prompt).then(() => ({ tokens: [] }), (e: { code: string; details?: Record<string, unknown> }) => ({ code: e.code, details: e.details, tokens: [] }));
        // The runtime stays usable: after the fault a request fails the same way, it does not hang.
        const again = await attempt({ maxTokens: 2, temperature: 0 });
        runtime.dispose();
        return { greedy, topK, fullLogits, logits, again, vocab: runtime.info.vocabSize };
      },
      [tensor, element, value] as const,
    );
  }

  function expectNumeric(o: Outcome, what: string): void {
    expect(o.code, what).toBe('NUMERIC_ERROR');
    expect(o.tokens, `${what}: no token came out`).toEqual([]);
    expect(o.details, what).toMatchObject({ step: 'prefill' });
    expect(Number(o.details?.nonFinite), what).toBeGreaterThan(0);
    expect(o.message, what).toMatch(/prefill of the prompt/);
    expect(o.message, what).toMatch(/damaged/);
    expect(o.message, what).toMatch(/int8Activations: false|another quantization/);
  }

  it('NaN in a weight deep inside the model (blk.1.ffn_down): greedy, top-k and full logits', async () => {
    const r = await runDamaged('blk.1.ffn_down.weight', 0, 'nan');
    for (const path of ['greedy', 'topK', 'fullLogits', 'again'] as const) expectNumeric(r[path], path);
    expect(r.logits).toMatchObject({ code: 'NUMERIC_ERROR', details: { step: 'prefill' } });
    // One NaN in the residual stream reaches every logit.
    expect(r.greedy.details?.nonFinite).toBe(r.vocab);
  });

  it('+Inf in the final norm: the same three paths', async () => {
    const r = await runDamaged('output_norm.weight', 3, 'inf');
    for (const path of ['greedy', 'topK', 'fullLogits', 'again'] as const) expectNumeric(r[path], path);
    expect(r.logits).toMatchObject({ code: 'NUMERIC_ERROR' });
  });

  it('a fault that appears during decode names the token, and arrives through a worker with its code', async () => {
    const r = await gpu.evaluate(async () => {
      const { readGGUF } = await window.lanternImport('/src/model/gguf.ts');
      const { bytesSource } = await window.lanternImport('/src/storage/source.ts');
      const { tokenizerFromGGUF } = await window.lanternImport('/src/model/tokenizer/index.ts');
      const { createEngine, LanternError } = await window.lanternImport('/src/index.ts');
      const bytes = new Uint8Array(await (await fetch('/__lantern/model.gguf')).arrayBuffer());
      const file = await readGGUF(bytesSource(bytes));
      // NaN in the embedding row of the first greedy token after the prompt (its output row is a
      // separate tensor here): the prefill picks it cleanly, and the decode that reads it in fails.
      const tokenizer = tokenizerFromGGUF(file);
      const prompt: number[] = tokenizer.encode('Once upon a time', { addSpecial: true, parseSpecial: false });
      const longer: number[] = tokenizer.encode('Once upon a time, there', { addSpecial: true, parseSpecial: false });
      const first = longer[prompt.length];
      const embd = file.tensors.find((t: { name: string }) => t.name === 'token_embd.weight');
      new DataView(bytes.buffer).setFloat32(embd.offset + 4 * embd.dims[0] * first, NaN, true);
      const engine = createEngine({ worker: 'dedicated' });
      await engine.load(bytes, { contextLength: 64 });
      const tokens: number[] = [];
      let error: { code: string; message: string; details?: Record<string, unknown>; isLanternError: boolean } | undefined;
      try {
        for await (const chunk of engine.generate('Once upon a time', { maxTokens: 6, temperature: 0 })) tokens.push(...chunk.tokens);
      } catch (e) {
        const { code, details, message } = e as { code: string; message: string; details?: Record<string, unknown> };
        error = { code, details, message, isLanternError: e instanceof LanternError };
      }
      engine.terminate();
      return { tokens, error, first };
    }, undefined);
    expect(r.error).toMatchObject({ code: 'NUMERIC_ERROR', isLanternError: true, details: { step: 'decode', token: 2 } });
    expect(r.error!.message).toMatch(/decode of token 2/);
    expect(r.tokens).toEqual([r.first]);
  });
});
