import { proxy, wrap, type Remote } from 'comlink';
import { LanternError } from '../errors.ts';
import type { ChatMessage } from '../runtime/chat.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';
import { registerLanternErrorTransfer } from '../worker/transfer.ts';
import type { EngineRequest, WorkerEngine } from '../worker/worker-engine.ts';

/** One turn for the model: text to continue, or a conversation for its chat template (or `chatTemplate`). */
export type EmbedTurn = { prompt: string } | { messages: ChatMessage[]; chatTemplate?: string };

/**
 * The one place the widget meets the engine. Everything else in src/embed sees only EmbedEngine,
 * so moving to the public engine API is a change to this file alone.
 *
 * It talks to src/worker/engine-worker.ts itself rather than through createEngine(), because
 * client.ts constructs its worker with `new Worker(new URL('./engine-worker.ts', import.meta.url))`,
 * which a browser refuses when the page is on another origin than the script, and imports
 * WorkerEngine as a value, which would pull the whole runtime into the loader.
 */
export interface EmbedEngine {
  load(modelUrl: string): Promise<ModelInfo>;
  /** Yields tokens as the worker samples them; leaving the loop early stops the worker. */
  generate(turn: EmbedTurn, options: GenerateOptions): AsyncIterable<GeneratedToken>;
  /** Figures of the last generation, set when its iterator ends. */
  readonly stats: GenerationStats | undefined;
  /** Stops the running generation after its current token; its iterator then ends normally. */
  abort(): Promise<void>;
  dispose(): void;
}

/** Starts the engine worker served at `workerUrl` (an ES module, usually beside lantern-embed.js). */
export function createEmbedEngine(workerUrl: URL): EmbedEngine {
  registerLanternErrorTransfer();
  const { worker, started } = startModuleWorker(workerUrl);
  // comlink never settles a call to a worker whose script failed to load; this does.
  let booted = false;
  const failed = new Promise<never>((_, reject) => {
    worker.addEventListener('error', (event) => {
      if (booted) return; // an error inside a running worker: comlink reports it to its caller
      event.preventDefault();
      reject(new LanternError('FETCH_FAILED', `Lantern's worker at ${workerUrl.href} did not start; serve lantern-worker.js beside lantern-embed.js, with CORS headers when the page is on another origin.`));
    });
  });
  failed.catch(() => {});
  const engine = wrap<WorkerEngine>(worker);
  const caller = `embed-${Math.random().toString(36).slice(2)}`;
  let nextId = 0;
  let running: string | undefined;
  let stats: GenerationStats | undefined;

  return {
    async load(modelUrl) {
      try {
        const info = await Promise.race([engine.load(modelUrl), failed]);
        booted = true;
        return info;
      } finally {
        started();
      }
    },
    generate(turn, options) {
      const request: EngineRequest = { id: `${caller}-${nextId++}`, caller, ...turn, options };
      running = request.id;
      return streamTokens(engine, request, (s) => (stats = s));
    },
    get stats() {
      return stats;
    },
    async abort() {
      if (running !== undefined) await engine.cancel(running);
    },
    dispose: () => worker.terminate(),
  };
}

/**
 * `new Worker(url)` must be same-origin with the page. On another origin, a one-line module from a
 * blob: URL (which has the page's origin) imports the worker script instead; module imports may
 * cross origins when the script's server sends CORS headers.
 */
function startModuleWorker(url: URL): { worker: Worker; started: () => void } {
  const options: WorkerOptions = { type: 'module', name: 'lantern-engine' };
  if (url.origin === location.origin) return { worker: new Worker(url, options), started: () => {} };
  const bootstrap = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
  const bootstrapUrl = URL.createObjectURL(bootstrap);
  // The blob is fetched asynchronously by the worker: keep it until the worker has answered once.
  return { worker: new Worker(bootstrapUrl, options), started: () => URL.revokeObjectURL(bootstrapUrl) };
}

/** Turns the worker's per-token callbacks back into an async iterator. */
async function* streamTokens(
  engine: Remote<WorkerEngine>,
  request: EngineRequest,
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
  const run = engine
    .request(request, onToken)
    .then(onStats, (error: unknown) => {
      failure = { error };
    })
    .finally(() => {
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
    if (!finished) {
      await engine.cancel(request.id);
      await run;
    }
  }
}
