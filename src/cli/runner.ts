/**
 * The page side of the Chromium host (chromium-host.ts): loads the model from the host's URL and
 * exposes the runtime on `window.lanternRunner`. Every call settles to plain data, so that a
 * LanternError crosses to Node intact instead of as a bare message.
 */
import { LanternError } from '../errors.ts';
import { acquireGpu, type GpuContext } from '../gpu/device.ts';
import { urlSource } from '../storage/source.ts';
import { type BenchOptions, type BenchResult, benchRuntime } from '../runtime/bench.ts';
import { type LoadOptions, Runtime } from '../runtime/runtime.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';

export type Settled<T> = { value: T } | { error: { code?: string; message: string; details?: Record<string, unknown>; stack?: string } };

export interface RunnerApi {
  load(url: string, options: LoadOptions): Promise<Settled<ModelInfo>>;
  encode(text: string, addSpecial: boolean): Promise<Settled<number[]>>;
  /** Streams each token to `window.lanternToken(index, token)`; resolves with how many were sent. */
  generate(promptIds: number[], options: GenerateOptions): Promise<Settled<{ count: number; stats?: GenerationStats }>>;
  /** [n_vocab] logits as a plain array (a Float32Array would not survive the trip). */
  logits(promptIds: number[]): Promise<Settled<number[]>>;
  /** Runtime.tokenLogProbs as a plain array. */
  tokenLogProbs(ids: number[], from: number): Promise<Settled<number[]>>;
  /** Runtime.embed as a plain array. */
  embed(ids: number[]): Promise<Settled<number[]>>;
  bench(options: BenchOptions): Promise<Settled<BenchResult>>;
  dispose(): Promise<Settled<void>>;
}

declare global {
  interface Window {
    lanternRunner?: RunnerApi;
    /** Exposed by the host before the page loads. */
    lanternToken?: (index: number, token: GeneratedToken) => Promise<void>;
  }
}

let runtime: Runtime | undefined;
/**
 * One device for every model this page loads (a test file's shared browser hands its pages from one
 * session to the next): each model reuses the pipelines the ones before it compiled, which
 * SwiftShader takes seconds over each. A device that was lost or reported an error, or on which a
 * load failed, is replaced.
 */
let gpu: { context: GpuContext; healthy: boolean } | undefined;

async function keptGpu(): Promise<GpuContext> {
  if (!gpu?.healthy) {
    gpu?.context.device.destroy();
    const kept = { context: await acquireGpu(navigator.gpu), healthy: true };
    void kept.context.lost.then(() => (kept.healthy = false));
    gpu = kept;
  }
  return gpu.context;
}

/** Frees the loaded model; an error its device reported unseen rules the device out for the next model. */
function unload(): void {
  runtime?.dispose();
  runtime = undefined;
  if (gpu?.context.takeError()) gpu.healthy = false;
}

function loaded(): Runtime {
  if (!runtime) throw new LanternError('NOT_LOADED', 'No model is loaded in the runner page; call load() first.');
  return runtime;
}

function settle<A extends unknown[], T>(fn: (...args: A) => Promise<T> | T): (...args: A) => Promise<Settled<T>> {
  return async (...args) => {
    try {
      return { value: await fn(...args) };
    } catch (e) {
      if (gpu && e instanceof LanternError && (e.code === 'GPU_ERROR' || e.code === 'DEVICE_LOST')) gpu.healthy = false;
      if (e instanceof LanternError) return { error: e.toJSON() };
      const error = e instanceof Error ? e : new Error(String(e));
      return { error: { message: error.message, stack: error.stack } };
    }
  };
}

window.lanternRunner = {
  load: settle(async (url: string, options: LoadOptions) => {
    if (!navigator.gpu) {
      throw new LanternError('NO_WEBGPU', 'This Chromium has no navigator.gpu; run it with --enable-unsafe-webgpu, or use a build with WebGPU.');
    }
    unload();
    const source = await urlSource(url);
    const context = await keptGpu();
    try {
      runtime = await Runtime.load(context, source, options);
    } catch (e) {
      gpu!.healthy = false; // whatever went wrong, the next model starts on a new device
      throw e;
    }
    return runtime.info;
  }),
  encode: settle((text: string, addSpecial: boolean) => loaded().encode(text, addSpecial)),
  generate: settle(async (promptIds: number[], options: GenerateOptions) => {
    const rt = loaded();
    let count = 0;
    // Not awaited: a round trip to Node per token would be counted in the decode speed.
    // The host puts tokens back in order by index.
    for await (const token of rt.generate(promptIds, options)) window.lanternToken!(count++, token).catch(() => {});
    return { count, stats: rt.lastStats };
  }),
  logits: settle(async (promptIds: number[]) => Array.from(await loaded().logits(promptIds))),
  tokenLogProbs: settle(async (ids: number[], from: number) => Array.from(await loaded().tokenLogProbs(ids, from))),
  embed: settle(async (ids: number[]) => Array.from(await loaded().embed(ids))),
  bench: settle((options: BenchOptions) => benchRuntime(loaded(), options)),
  dispose: settle(unload),
};
