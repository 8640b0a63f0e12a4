import { proxy, wrap, type Remote } from 'comlink';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';
import { registerLanternErrorTransfer } from './transfer.ts';
import type { WorkerEngine } from './worker-engine.ts';

/** A model running in a Web Worker, seen from the page. Errors are thrown as LanternError. */
export interface WorkerClient {
  /** Loads the GGUF model at `url` (Range requests), replacing the one loaded before. */
  load(url: string, options?: { contextLength?: number }): Promise<ModelInfo>;
  info(): Promise<ModelInfo>;
  /**
   * Tokenizes `prompt` with BOS and yields tokens as the worker samples them. Breaking out of the
   * loop stops the worker's generation too.
   */
  generate(prompt: string, options?: GenerateOptions): AsyncIterable<GeneratedToken>;
  /** Speeds of the last generation, set when its iterator ends. */
  readonly stats: GenerationStats | undefined;
  /** Stops the running generation after the current token; its iterator then ends normally. */
  abort(): Promise<void>;
  /** Ends the worker and frees its GPU device; the client is unusable afterwards. */
  terminate(): void;
}

/** Starts a worker with its own GPU device; call load() before generate(). */
export function createWorkerClient(): WorkerClient {
  registerLanternErrorTransfer();
  const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'lantern-engine' });
  const engine = wrap<WorkerEngine>(worker);
  let stats: GenerationStats | undefined;

  return {
    load: (url, options) => engine.load(url, options),
    info: () => engine.info(),
    generate(prompt, options = {}) {
      return streamTokens(engine, prompt, options, (s) => (stats = s));
    },
    get stats() {
      return stats;
    },
    abort: () => engine.abort(),
    terminate: () => worker.terminate(),
  };
}

/** Turns the worker's per-token callbacks back into an async iterator. */
async function* streamTokens(
  engine: Remote<WorkerEngine>,
  prompt: string,
  options: GenerateOptions,
  onStats: (stats: GenerationStats | undefined) => void,
): AsyncGenerator<GeneratedToken> {
  onStats(undefined);
  const queue: GeneratedToken[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: { error: unknown } | undefined;

  const onToken = proxy((token: GeneratedToken) => {
    queue.push(token);
    wake?.();
  });
  const run = engine.generate(prompt, options, onToken).then(
    (stats) => onStats(stats),
    (error: unknown) => {
      failure = { error };
    },
  ).finally(() => {
    finished = true;
    wake?.();
  });

  try {
    for (;;) {
      while (queue.length > 0) yield queue.shift()!;
      if (finished) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    if (failure) throw failure.error;
  } finally {
    // The consumer left the loop early: stop the worker, and wait so the next generate() finds it idle.
    if (!finished) {
      await engine.abort();
      await run;
    }
  }
}
