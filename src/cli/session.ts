import { LanternError } from '../errors.ts';
import type { BenchOptions, BenchResult } from '../runtime/bench.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';
import type { KvCacheType } from '../kernels/ops.ts';

/**
 * A loaded model as the CLI sees it, whichever WebGPU runs it: Dawn inside this process, or a
 * headless Chromium driven over the DevTools protocol.
 */
export interface ModelSession {
  readonly backend: GpuBackend;
  readonly info: ModelInfo;
  /** Tokenizes with the model's own rules for BOS/EOS when `addSpecial` is set. */
  encode(text: string, addSpecial: boolean): Promise<number[]>;
  /** Streams tokens to `onToken` as they are sampled; resolves with the run's figures. */
  generate(promptIds: number[], options: GenerateOptions, onToken: (token: GeneratedToken) => void): Promise<GenerationStats | undefined>;
  /** Next-token logits after the last prompt id: [n_vocab] f32. */
  logits(promptIds: number[]): Promise<Float32Array>;
  /** log p(ids[i + 1] | ids[..i]) for positions i = from .. length − 2 (Runtime.tokenLogProbs). */
  tokenLogProbs(ids: number[], from: number): Promise<Float64Array>;
  /** The text's embedding with the model's declared pooling, L2-normalized: [n_embd] f32 (Runtime.embed). */
  embed(ids: number[]): Promise<Float32Array>;
  /** Prefill and decode speed and bandwidth figures (runtime/bench.ts benchRuntime). */
  bench(options: BenchOptions): Promise<BenchResult>;
  /** Frees the GPU and stops whatever was started for it (browser, server); safe to call again. */
  close(): Promise<void>;
}

export type GpuBackend = 'dawn' | 'chromium';

export interface SessionOptions {
  contextLength?: number;
  /** Runtime LoadOptions.int8Activations. */
  int8Activations?: boolean;
  /** Runtime LoadOptions.kvCache. */
  kvCache?: KvCacheType;
  /** Runtime LoadOptions.maxGpuBytes. */
  maxGpuBytes?: number;
}

/**
 * Opens `modelFile` on the best WebGPU this machine has. Dawn is used only when it finds a real
 * GPU: with SwiftShader it aborts the whole process now and then, so software rendering goes
 * through Chromium, where a crash takes down a tab instead. LANTERN_GPU=dawn|chromium forces one.
 */
export async function openSession(modelFile: string, options: SessionOptions = {}): Promise<ModelSession> {
  const forced = process.env.LANTERN_GPU;
  if (forced !== undefined && forced !== '' && forced !== 'dawn' && forced !== 'chromium') {
    throw new LanternError('BAD_ARGUMENT', `LANTERN_GPU is "${forced}"; set it to dawn or chromium, or unset it to choose automatically.`);
  }
  if (forced === 'dawn') return (await import('./dawn.ts')).openDawnSession(modelFile, options);
  if (forced === 'chromium') return (await importChromiumHost()).openChromiumSession(modelFile, options);

  const dawn = await import('./dawn.ts');
  const probing = dawn.probeDawn(); // a child process: loading the Chromium host meanwhile is free
  const chromium = await importChromiumHost().catch(async (e: unknown) => {
    if ((await probing).hardware) return undefined; // Dawn will do
    throw e;
  });
  const probe = await probing;
  if (probe.hardware || !chromium) return dawn.openDawnSession(modelFile, options);
  try {
    return await chromium.openChromiumSession(modelFile, options);
  } catch (e) {
    if (e instanceof LanternError && e.code === 'NO_WEBGPU') {
      throw new LanternError('NO_WEBGPU', `${e.message} Dawn was no help either: ${probe.reason}`, { ...e.details, dawn: probe.reason });
    }
    throw e;
  }
}

/**
 * The Chromium host needs playwright-core, an optional peer dependency of the installed package
 * (an app's install must not bring it): without it, say what to install.
 */
async function importChromiumHost(): Promise<typeof import('./chromium-host.ts')> {
  try {
    return await import('./chromium-host.ts');
  } catch (e) {
    if (!/playwright-core/.test(String((e as Error)?.message))) throw e;
    throw new LanternError('NO_WEBGPU', 'The command line drives Chromium with playwright-core, which is not installed; run `npm install --save-dev playwright-core` (and `webgpu`, for Dawn on a machine with a GPU).');
  }
}
