// @vitest-environment node
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import type { GpuBytes } from '../src/gpu/memory.ts';
import { STORIES_GGUF } from './helpers/paths.ts';

/**
 * The GPU memory account (issue 18, item 2): with GPUDevice.createBuffer and GPUBuffer.destroy
 * wrapped in the page, Runtime.memory() equals the sizes of the buffers alive, by category where
 * the wrapper can tell (the KV cache); the plan made before allocating (forwardBytes) is never
 * below it; a budget too small fails with OUT_OF_MEMORY before the first buffer; and without a
 * contextLength the context is the longest whose plan fits the budget.
 */

let gpu: GpuPage;
beforeAll(async () => {
  gpu = await openGpuPage({ modelFile: STORIES_GGUF, warmup: ['./src/runtime/runtime.ts', './src/runtime/forward.ts'] });
});
afterAll(() => gpu?.close());

interface Outcome {
  memory?: GpuBytes;
  planned?: GpuBytes;
  info?: { contextLength: number; kvBytes: number; kvCache: string; loadSummary: string };
  /** Bytes of the buffers alive after the load, by the wrapper's count, and of those labelled as cache. */
  live: number;
  liveCache: number;
  created: number;
  error?: { code: string; message: string; details?: Record<string, unknown> };
  /** Bytes the plan gives for a context of `planAt` (to set a budget from). */
  planAtBytes?: number;
}

function load(options: Record<string, unknown>, planAt?: number): Promise<Outcome> {
  return gpu.evaluate(
    async ([options, planAt]) => {
      const { readGGUF } = await window.lanternImport('/src/model/gguf.ts');
      const { bytesSource } = await window.lanternImport('/src/storage/source.ts');
      const { Runtime } = await window.lanternImport('/src/runtime/runtime.ts');
      const { planForward, forwardBytes } = await window.lanternImport('/src/runtime/forward.ts');
      const { modelConfig } = await window.lanternImport('/src/runtime/models/index.ts');
      const bytes = new Uint8Array(await (await fetch('/__lantern/model.gguf')).arrayBuffer());

      // Every buffer created from here on, and whether it is still alive.
      const sizes = new Map<GPUBuffer, number>();
      let created = 0;
      const createBuffer = GPUDevice.prototype.createBuffer;
      const destroy = GPUBuffer.prototype.destroy;
      GPUDevice.prototype.createBuffer = function (this: GPUDevice, descriptor: GPUBufferDescriptor) {
        const buffer = createBuffer.call(this, descriptor);
        sizes.set(buffer, buffer.size);
        created++;
        return buffer;
      };
      GPUBuffer.prototype.destroy = function (this: GPUBuffer) {
        sizes.delete(this);
        destroy.call(this);
      };
      try {
        const file = await readGGUF(bytesSource(bytes));
        const { family, config } = modelConfig(file);
        const kvCache = (options.kvCache as string | undefined) ?? 'f16';
        let planAtBytes: number | undefined;
        if (planAt !== undefined) {
          const c = { ...config, contextLength: planAt };
          planAtBytes = forwardBytes(await planForward(family, c, file, Math.min(64, planAt), kvCache), c, Math.min(64, planAt), kvCache, true).total;
        }
        let runtime;
        try {
          runtime = await Runtime.load(navigator.gpu, bytesSource(bytes), options);
        } catch (e) {
          const { code, message, details } = e as { code: string; message: string; details?: Record<string, unknown> };
          return { error: { code, message, details }, live: 0, liveCache: 0, created, planAtBytes };
        }
        const c = { ...config, contextLength: runtime.info.contextLength };
        const batch = Math.min(64, c.contextLength);
        const planned = forwardBytes(await planForward(family, c, file, batch, runtime.info.kvCache), c, batch, runtime.info.kvCache, runtime.info.int8Activations);
        const memory = runtime.memory();
        const live = [...sizes.values()].reduce((a, b) => a + b, 0);
        const liveCache = [...sizes.entries()].filter(([b]) => /^[kv] cache \d+$/.test(b.label)).reduce((a, [, n]) => a + n, 0);
        const { contextLength, kvBytes, loadSummary } = runtime.info;
        runtime.dispose();
        return { memory, planned, info: { contextLength, kvBytes, kvCache: runtime.info.kvCache, loadSummary }, live, liveCache, created, planAtBytes };
      } finally {
        GPUDevice.prototype.createBuffer = createBuffer;
        GPUBuffer.prototype.destroy = destroy;
      }
    },
    [options, planAt] as const,
  );
}

describe('the GPU memory account', () => {
  for (const [kvCache, contextLength] of [['f32', 64], ['f16', 256]] as const) {
    it(`equals the buffers alive, and the plan bounds it: ${kvCache} KV cache, ${contextLength} tokens`, async () => {
      const r = await load({ kvCache, contextLength });
      expect(r.error).toBeUndefined();
      const m = r.memory!;
      expect(m.total).toBe(r.live);
      expect(m.total).toBe(m.weights + m.kvCache + m.activations + m.staging);
      expect(m.kvCache).toBe(r.liveCache);
      expect(m.kvCache).toBe(r.info!.kvBytes);
      expect(m.kvCache).toBe(r.planned!.kvCache);
      expect(m.staging).toBe(r.planned!.staging);
      // stories260K's weights are all F32 and the plan knows them exactly; scratch it bounds.
      expect(m.weights).toBe(r.planned!.weights);
      expect(m.activations).toBeLessThanOrEqual(r.planned!.activations);
      expect(r.planned!.total).toBeLessThanOrEqual(1.05 * m.total);
      expect(r.info!.loadSummary).toMatch(new RegExp(`^context ${contextLength} tokens \\(as asked\\); ${kvCache} KV cache`));
    });
  }

  it('a budget too small is OUT_OF_MEMORY before any buffer is created, saying what it needs and what to try', async () => {
    const r = await load({ contextLength: 64, maxGpuBytes: 100_000 });
    expect(r.error?.code).toBe('OUT_OF_MEMORY');
    expect(r.created).toBe(0);
    expect(r.error?.message).toMatch(/needs \d+ bytes .* budget is 100000 .*shorter context.*kvCache: 'q8_0'.*smaller quantization/);
    expect(r.error?.details?.needed).toBeGreaterThan(100_000);
  });

  it('without a contextLength, the context is the longest that fits maxGpuBytes, and the load says so', async () => {
    const probe = await load({ kvCache: 'f16' }, 300);
    const budget = probe.planAtBytes!;
    const r = await load({ kvCache: 'f16', maxGpuBytes: budget });
    expect(r.error).toBeUndefined();
    expect(r.info!.contextLength).toBe(300);
    expect(r.info!.loadSummary).toMatch(/capped at 300 so that the KV cache fits maxGpuBytes/);
    expect(r.memory!.total).toBeLessThanOrEqual(budget);
    // Unbudgeted, the same model takes its own context (512 here), capped at 4096.
    expect(probe.info!.contextLength).toBeGreaterThan(300);
  });
});
