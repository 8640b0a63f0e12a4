import { LanternError } from '../errors.ts';
import { urlSource } from '../storage/source.ts';
import { Runtime } from '../runtime/runtime.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';

/** Called in the page for each generated token; the worker waits for it before the next one. */
export type TokenCallback = (token: GeneratedToken) => void | Promise<void>;

/**
 * Everything that lives in the worker: the GPU device (inside the Runtime) and one loaded model.
 * comlink exposes an instance of this class as-is, so every method takes and returns plain data,
 * except `onToken`, which the page passes as a comlink proxy.
 */
export class WorkerEngine {
  private runtime: Runtime | undefined;
  private generating = false;
  private abortRequested = false;

  /** Loads the GGUF model at `url`, replacing the one loaded before. */
  async load(url: string, options: { contextLength?: number } = {}): Promise<ModelInfo> {
    if (this.generating) {
      throw new LanternError('BAD_ARGUMENT', 'A generation is still running; call abort() and wait for it to end before loading another model.');
    }
    this.runtime?.dispose();
    this.runtime = undefined;
    // Runtime.load answers NO_WEBGPU when this worker has no navigator.gpu or no adapter.
    this.runtime = await Runtime.load(navigator.gpu, await urlSource(url), options);
    return this.runtime.info;
  }

  info(): ModelInfo {
    return this.loaded().info;
  }

  /**
   * Tokenizes `prompt` (with the model's BOS token), generates, and hands each token to `onToken`
   * as it is sampled. Resolves with the run's speeds, also when it was stopped with abort().
   */
  async generate(prompt: string, options: GenerateOptions, onToken: TokenCallback): Promise<GenerationStats> {
    const runtime = this.loaded();
    if (this.generating) {
      throw new LanternError('BAD_ARGUMENT', 'A generation is already running; call abort() or wait for it to end before starting another.');
    }
    this.generating = true;
    this.abortRequested = false;
    try {
      const promptIds = runtime.encode(prompt, true);
      for await (const token of runtime.generate(promptIds, options)) {
        await onToken(token);
        // Leaving the loop returns the runtime's generator; its `finally` records the stats.
        if (this.abortRequested) break;
      }
      return runtime.lastStats!;
    } finally {
      this.generating = false;
    }
  }

  /** Stops the running generation after the token being computed now; does nothing when idle. */
  abort(): void {
    if (this.generating) this.abortRequested = true;
  }

  private loaded(): Runtime {
    if (!this.runtime) throw new LanternError('NOT_LOADED', 'No model is loaded yet; call load() with a model URL first.');
    return this.runtime;
  }
}
