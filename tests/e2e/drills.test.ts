// @vitest-environment node
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CDPSession } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../../src/cli/chromium-host.ts';
import { seededRandom } from '../../src/runtime/sampler.ts';
import { startModelServer } from '../helpers/model-server.ts';
import { STORIES_GGUF } from '../helpers/paths.ts';

/**
 * Fault drills (issue 14, item 6) against the worker engine in Chromium (SwiftShader WebGPU), on
 * stories260K. The engine runs in tests/helpers/drill-worker.ts: the product's SharedWorker
 * (one WorkerEngine for every tab) plus a census of live GPU buffers and a device-loss trigger,
 * which the product does not export. The heap figures come from the DevTools protocol.
 */

type Drill = typeof import('../helpers/drill-page.ts');
const HELPERS = '/tests/helpers/drill-page.ts';
const PROMPT = 'Once upon a time';
/** Most the worker's and the page's JS heaps may grow over 800 soak requests once warm. */
const SOAK_HEAP_BOUND = 1e6;

let gpu: GpuPage;
let cdp: CDPSession;

beforeAll(async () => {
  gpu = await openGpuPage({ modelFile: STORIES_GGUF, warmup: ['./src/index.ts', './tests/helpers/drill-page.ts', './tests/helpers/drill-worker.ts'] });
  cdp = await gpu.page.context().browser()!.newBrowserCDPSession();
});

afterAll(async () => {
  await cdp?.detach().catch(() => {});
  await gpu?.close();
});

/** A DevTools call inside the drill SharedWorker (Playwright has no handle on SharedWorkers). */
let workerSession: string | undefined;
let nextMessage = 1;
async function inWorker<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
  if (!workerSession) {
    const { targetInfos } = await cdp.send('Target.getTargets');
    const target = targetInfos.find((t) => t.type === 'shared_worker' && t.url.includes('/tests/helpers/drill-worker.ts'));
    if (!target) throw new Error('the drill SharedWorker is not running');
    ({ sessionId: workerSession } = await cdp.send('Target.attachToTarget', { targetId: target.targetId, flatten: false }));
  }
  const id = nextMessage++;
  const reply = new Promise<T>((resolve, reject) => {
    const listener = (event: { sessionId?: string; message: string }) => {
      const message = JSON.parse(event.message) as { id?: number; result?: T; error?: { message: string } };
      if (event.sessionId !== workerSession || message.id !== id) return;
      cdp.off('Target.receivedMessageFromTarget', listener);
      if (message.error) reject(new Error(`${method} in the SharedWorker: ${message.error.message}`));
      else resolve(message.result as T);
    };
    cdp.on('Target.receivedMessageFromTarget', listener);
  });
  await cdp.send('Target.sendMessageToTarget', { sessionId: workerSession, message: JSON.stringify({ id, method, params }) });
  return reply;
}

/** The SharedWorker's JS heap in bytes after a full garbage collection. */
async function workerHeap(): Promise<number> {
  await inWorker('HeapProfiler.collectGarbage');
  return (await inWorker<{ usedSize: number }>('Runtime.getHeapUsage')).usedSize;
}

/** The page's JS heap in bytes after a full garbage collection. */
async function pageHeap(): Promise<number> {
  const session = await gpu.page.context().newCDPSession(gpu.page);
  try {
    await session.send('HeapProfiler.collectGarbage');
    return (await session.send('Runtime.getHeapUsage')).usedSize;
  } finally {
    await session.detach();
  }
}

describe('fault drills', () => {
  let greedy: number[];

  it('the device lost mid-generation (destroy(), then a GPU process crash): DEVICE_LOST, the page lives, load() again gives the same tokens, IndexedDB keeps the model', async () => {
    const before = await gpu.evaluate(async ([path, prompt]) => {
      const h: Drill = await window.lanternImport(path);
      const drill = h.installDrillWorker();
      await h.start('lost', 'shared');
      const greedy = await h.collect('lost', prompt, { maxTokens: 24 });
      const { listCachedModels } = await window.lanternImport('/src/index.ts');
      return { greedy: greedy.tokens, cached: await listCachedModels(), census: await drill.liveBuffers() };
    }, [HELPERS, PROMPT] as const);
    greedy = before.greedy;
    expect(greedy).toHaveLength(24);
    expect(before.cached).toHaveLength(1);
    expect(before.census.devices).toBe(1);

    const losses: { kind: string; reason: string }[] = [];
    for (const kind of ['destroy', 'crash'] as const) {
      // A long request, and the loss once it has streamed a few chunks.
      const chunks = await gpu.evaluate(async ([path, prompt]) => {
        const h: Drill = await window.lanternImport(path);
        h.startBackground('lost', prompt, { maxTokens: 400 });
        return h.backgroundChunks(3);
      }, [HELPERS, PROMPT] as const);
      expect(chunks, kind).toBeGreaterThanOrEqual(3);
      if (kind === 'destroy') {
        await gpu.evaluate(async (path) => (await window.lanternImport(path) as Drill).installDrillWorker().destroyDevices(), HELPERS);
      } else {
        await cdp.send('Browser.crashGpuProcess' as never);
      }
      const after = await gpu.evaluate(async ([path, prompt]) => {
        const h: Drill = await window.lanternImport(path);
        const drill = h.installDrillWorker();
        const { running: ended, queued } = await h.backgroundEnding();
        const censusLost = await drill.liveBuffers();
        // The same engine object, the same page: load again and generate.
        const phases = new Set<string>();
        const t0 = performance.now();
        await h.engine('lost').load(h.MODEL_URL, { onProgress: (p) => phases.add(p.phase) });
        const reloadMs = performance.now() - t0;
        const again = await h.collect('lost', prompt, { maxTokens: 24 });
        const { listCachedModels } = await window.lanternImport('/src/index.ts');
        return { ended, queued, censusLost, phases: [...phases], reloadMs, again: again.tokens, cached: await listCachedModels(), census: await drill.liveBuffers() };
      }, [HELPERS, PROMPT] as const);
      console.log(`device loss by ${kind}: the request ended after ${after.ended.tokens.length} tokens with ${after.ended.error?.code}; reloaded in ${after.reloadMs.toFixed(0)} ms (${after.phases.join(', ')})`);
      losses.push({ kind, reason: after.ended.error?.message ?? '' });
      expect(after.ended.error, kind).toMatchObject({ isLanternError: true, code: 'DEVICE_LOST' });
      // The request queued behind it learns of the loss too, rather than of an abort it did not ask for.
      expect(after.queued, kind).toMatchObject({ tokens: [], error: { isLanternError: true, code: 'DEVICE_LOST' } });
      expect(after.ended.tokens.length, kind).toBeLessThan(400);
      expect(greedy.slice(0, Math.min(24, after.ended.tokens.length)), kind).toEqual(after.ended.tokens.slice(0, 24));
      expect(after.censusLost, `${kind}: no live device and no buffer after the loss`).toEqual({ devices: 0, buffers: 0, bytes: 0 });
      expect(after.again, kind).toEqual(greedy);
      // Loaded from IndexedDB: no download, and the cache lists the same model as before.
      expect(after.phases, kind).not.toContain('download');
      expect(after.cached.map((m: { id: string; size: number }) => [m.id, m.size]), kind).toEqual(before.cached.map((m: { id: string; size: number }) => [m.id, m.size]));
      expect(after.census, kind).toEqual(before.census);
    }
    // Two different losses: destroy() says "destroyed"; the crash does not.
    expect(losses[0].reason).toMatch(/destroyed/);
    expect(losses[1].reason).not.toMatch(/destroyed/);
  }, 300_000);

  it('a loss while a token is on its way to the page (between two GPU steps) still ends with DEVICE_LOST', async () => {
    const r = await gpu.evaluate(async ([path, prompt]) => {
      const h: Drill = await window.lanternImport(path);
      const { WorkerEngine } = await window.lanternImport('/src/worker/worker-engine.ts');
      const engine = new WorkerEngine();
      await engine.load(h.MODEL_URL);
      const device = (engine as unknown as { runtime: { gpuContext: { device: GPUDevice } } }).runtime.gpuContext.device;
      let tokens = 0;
      // The third token's callback loses the device and answers only once the loss is known:
      // the generation loop sees the abort of cancelAll before any GPU call can fail.
      const onToken = async () => {
        if (++tokens !== 3) return;
        device.destroy();
        await device.lost;
        await new Promise((resolve) => setTimeout(resolve, 0));
      };
      const lost = await h.failure(() => engine.request({ id: 'between', caller: 'drill', prompt, options: { maxTokens: 50 } }, onToken));
      await engine.unload();
      return { lost, tokens };
    }, [HELPERS, PROMPT] as const);
    expect(r.tokens).toBe(3);
    expect(r.lost).toMatchObject({ isLanternError: true, code: 'DEVICE_LOST' });
  });

  it('an abort storm: 100 requests from two tabs on one SharedWorker, each aborted at a seeded moment; all settle, no buffer leaks, greedy as a fresh engine', async () => {
    const [second] = await Promise.all([
      gpu.page.waitForEvent('popup'),
      gpu.evaluate((url) => void window.open(url, '_blank'), `${gpu.url}/__lantern/blank.html`),
    ]);
    try {
      await second.waitForLoadState();
      await second.waitForFunction(() => typeof window.lanternImport === 'function');
      const join = (page: typeof second) =>
        page.evaluate(async (path) => {
          const h: Drill = await window.lanternImport(path);
          h.installDrillWorker();
          return (await h.start('storm', 'shared')).worker;
        }, HELPERS);
      expect(await gpu.guard(Promise.all([join(gpu.page), join(second)]))).toEqual(['shared', 'shared']);
      const censusBefore = await gpu.evaluate(async (path) => (await window.lanternImport(path) as Drill).installDrillWorker().liveBuffers(), HELPERS);
      const heapBefore = await workerHeap();

      const t0 = Date.now();
      const run = (page: typeof second, seed: number) =>
        page.evaluate(async ([path, seed]) => (await window.lanternImport(path) as Drill).storm('storm', seed, 50, 1), [HELPERS, seed] as const);
      const [a, b] = await gpu.guard(Promise.all([run(gpu.page, 1), run(second, 2)]));
      const stormMs = Date.now() - t0;
      const outcomes = [...a, ...b];

      const after = await gpu.evaluate(async ([path, prompt]) => {
        const h: Drill = await window.lanternImport(path);
        const final = await h.collect('storm', prompt, { maxTokens: 24 });
        await h.start('fresh', 'none');
        const fresh = await h.collect('fresh', prompt, { maxTokens: 24 });
        h.engine('fresh').terminate();
        return { final: final.tokens, fresh: fresh.tokens, census: await h.installDrillWorker().liveBuffers() };
      }, [HELPERS, PROMPT] as const);
      const heapAfter = await workerHeap();

      const by = (f: (o: (typeof outcomes)[number]) => boolean) => outcomes.filter(f).length;
      const classes = {
        notStarted: by((o) => o.finishReason === 'abort' && o.promptTokens === 0),
        inPrefill: by((o) => o.finishReason === 'abort' && (o.promptTokens ?? 0) > 0 && o.generatedTokens === 0),
        inDecode: by((o) => o.finishReason === 'abort' && (o.generatedTokens ?? 0) > 0),
        finished: by((o) => o.finishReason === 'length' || o.finishReason === 'stop'),
      };
      console.log(`abort storm: ${outcomes.length} requests in ${(stormMs / 1000).toFixed(1)} s; ended ${JSON.stringify(classes)}; ` +
        `live GPU buffers ${censusBefore.buffers} (${censusBefore.bytes} B) before, ${after.census.buffers} (${after.census.bytes} B) after; ` +
        `worker heap ${(heapBefore / 1e6).toFixed(2)} MB before, ${(heapAfter / 1e6).toFixed(2)} MB after`);
      expect(outcomes).toHaveLength(100);
      expect(outcomes.filter((o) => o.settled !== 'fulfilled'), 'every promise settles, with figures').toEqual([]);
      expect(classes.notStarted + classes.inPrefill + classes.inDecode + classes.finished).toBe(100);
      for (const [name, n] of Object.entries(classes)) expect(n, `requests that ended ${name}`).toBeGreaterThan(0);
      expect(outcomes.filter((o) => o.moment === 'before').every((o) => o.finishReason === 'abort' && o.generatedTokens === 0)).toBe(true);
      expect(after.final).toEqual(after.fresh);
      expect(after.census, 'no GPU buffer leaked').toEqual(censusBefore);
      expect(heapAfter - heapBefore, 'the worker heap after the storm').toBeLessThan(2e6);
    } finally {
      await second.close();
    }
  }, 400_000);

  it('a download cut at 20 seeded points, each resumed: every resume asks for what is missing, the final bytes hash right', async () => {
    const stories = new Uint8Array(readFileSync(STORIES_GGUF));
    const sha256 = createHash('sha256').update(stories).digest('hex');
    const chunkSize = 16 << 10;
    const server = await startModelServer();
    // A page of its own: Chromium logs each cut connection as a console error, which the drill
    // expects and the guarded page would take for a failure.
    const context = await gpu.page.context().browser()!.newContext();
    const page = await context.newPage();
    const logged: string[] = [];
    page.on('console', (message) => void (message.type() === 'error' && logged.push(message.text())));
    page.on('pageerror', (error) => void logged.push(`uncaught: ${error.message}`));
    try {
      await page.goto(`${gpu.url}/__lantern/blank.html`);
      await page.waitForFunction(() => typeof window.lanternImport === 'function');
      const path = '/models/cut.gguf';
      const url = server.serve(path, stories);
      const random = seededRandom(14);
      /** Opens the model in the page with no retry of its own, reads it whole, and says what IndexedDB holds after. */
      const attempt = () =>
        page.evaluate(async ([url, chunkSize]) => {
          const { openModel } = await window.lanternImport('/src/storage/open.ts');
          const { Sha256 } = await window.lanternImport('/src/storage/sha256.ts');
          const cache = await window.lanternImport('/src/storage/cache.ts');
          let outcome: { sha256?: string; error?: string };
          try {
            const source = await openModel(url, { chunkSize, retries: 0 });
            const hasher = new Sha256();
            for (let at = 0; at < source.size; at += 1 << 20) hasher.update(await source.read(at, Math.min(1 << 20, source.size - at)));
            outcome = { sha256: hasher.hex() };
          } catch (e) {
            outcome = { error: (e as { code: string }).code };
          }
          return { ...outcome, stored: await cache.storedChunkIndices(await cache.openCacheStores(), url) as number[] };
        }, [url, chunkSize] as const);

      // 20 distinct points over the whole file, in order: each lies past what the cut before it let through.
      const points = new Set<number>();
      while (points.size < 20) points.add(1 + Math.floor(random() * (stories.byteLength - 1)));
      const cuts = [...points].sort((a, b) => a - b);
      let stored: number[] = [];
      let wasted = 0;
      for (let i = 0; i <= 20; i++) {
        const start = stored.length * chunkSize;
        const cut = i < 20 ? cuts[i] - start : undefined;
        if (cut !== undefined) server.dropNext(path, cut);
        const seen = server.requestsFor(path).length;
        const result = await attempt();
        const requests = server.requestsFor(path).slice(seen);
        // One request per attempt, for the bytes after the chunks stored so far (all of them, the first time).
        expect(requests.map((r) => [r.method, r.range]), `attempt ${i}`).toEqual([['GET', start > 0 ? `bytes=${start}-` : undefined]]);
        if (cut === undefined) {
          expect(result.error, 'the last attempt').toBeUndefined();
          expect(result.sha256).toBe(sha256);
          break;
        }
        expect(result.error, `attempt ${i}, cut at byte ${start + cut}`).toBe('FETCH_FAILED');
        // Stored chunks stay a prefix of the file, hold only bytes that arrived, and never shrink.
        expect(result.stored, `attempt ${i}`).toEqual(Array.from({ length: result.stored.length }, (_, k) => k));
        expect(result.stored.length).toBeGreaterThanOrEqual(stored.length);
        expect(result.stored.length * chunkSize).toBeLessThanOrEqual(start + cut);
        // Every whole chunk that arrived before the cut is kept: less than a chunk is fetched again.
        expect(start + cut - result.stored.length * chunkSize, `attempt ${i}: bytes received but not kept`).toBeLessThan(chunkSize);
        wasted += start + cut - result.stored.length * chunkSize;
        stored = result.stored;
      }
      const sent = server.requestsFor(path).length;
      console.log(`download cut at ${cuts.length} points (${cuts.join(', ')}), each resumed: ${sent} requests; ` +
        `${wasted} bytes (${(wasted / cuts.length / 1024).toFixed(1)} KiB a cut) were received but not kept, in ${chunkSize / 1024} KiB chunks`);
      expect(cuts).toHaveLength(20);
      expect(sent).toBe(21);
      expect(logged.filter((text) => !/^Failed to load resource: net::ERR_/.test(text)), 'nothing but the cut connections').toEqual([]);
    } finally {
      await context.close();
      await server.close();
    }
  }, 300_000);

  it('a soak: 1,000 short chat requests in one page; the heaps and the live GPU buffers stay within their bounds', async () => {
    const total = 1000;
    const batch = 250;
    const maxTokens = 2;
    await gpu.evaluate(async (path) => {
      const h: Drill = await window.lanternImport(path);
      h.installDrillWorker();
      await h.start('soak', 'shared');
    }, HELPERS);
    const samples: { done: number; workerHeap: number; pageHeap: number; buffers: number; bytes: number; ms: number }[] = [];
    const sample = async (done: number, ms: number) => {
      const census = await gpu.evaluate(async (path) => (await window.lanternImport(path) as Drill).installDrillWorker().liveBuffers(), HELPERS);
      samples.push({ done, workerHeap: await workerHeap(), pageHeap: await pageHeap(), buffers: census.buffers, bytes: census.bytes, ms });
    };
    await sample(0, 0);
    let completed = 0;
    for (let done = 0; done < total; done += batch) {
      const r = await gpu.evaluate(async ([path, from, count, maxTokens]) => (await window.lanternImport(path) as Drill).soak('soak', from, count, maxTokens), [HELPERS, done, batch, maxTokens] as const);
      completed += r.completed;
      await sample(done + batch, r.ms);
    }
    const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
    console.log(`soak: ${completed} of ${total} chat requests of ${maxTokens} tokens in ${(samples.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)} s; after ` +
      samples.map((s) => `${s.done}: worker heap ${mb(s.workerHeap)} MB, page heap ${mb(s.pageHeap)} MB, ${s.buffers} buffers`).join('; '));
    expect(completed).toBe(total);
    // Every sample holds the buffers of the loaded model and nothing more.
    expect(samples.every((s) => s.buffers === samples[0].buffers && s.bytes === samples[0].bytes)).toBe(true);
    // The heaps after the first batch (caches warm) grow by less than these bounds over the next 800 requests.
    const warm = samples[1];
    const last = samples.at(-1)!;
    expect(last.workerHeap - warm.workerHeap, 'worker heap growth').toBeLessThan(SOAK_HEAP_BOUND);
    expect(last.pageHeap - warm.pageHeap, 'page heap growth').toBeLessThan(SOAK_HEAP_BOUND);
  }, 600_000);
});
