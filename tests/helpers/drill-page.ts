/**
 * Page-side helpers for tests/e2e/drills.test.ts, loaded with lanternImport. installDrillWorker()
 * makes createEngine({ worker: 'shared' }) start tests/helpers/drill-worker.ts (the real
 * WorkerEngine with a buffer census and a device-loss trigger) in place of the product's
 * SharedWorker, and returns a second connection to it for the drill calls.
 */
import { wrap, type Remote } from 'comlink';
import { LanternError, type GenerateRequestOptions, type GenerationStats } from '../../src/index.ts';
import type { DrillEngine } from './drill-worker.ts';
import { engine } from './engine-page.ts';

export * from './engine-page.ts';
export { seededRandom } from '../../src/runtime/sampler.ts';

const DRILL_WORKER = '/tests/helpers/drill-worker.ts';
const NAME = 'lantern-engine';

let drill: Remote<DrillEngine> | undefined;

export function installDrillWorker(): Remote<DrillEngine> {
  if (drill) return drill;
  const url = new URL(DRILL_WORKER, location.href).href;
  const Original = window.SharedWorker;
  window.SharedWorker = class extends Original {
    constructor(script: string | URL, options?: string | WorkerOptions) {
      super(String(script).includes('/src/worker/engine-shared-worker.ts') ? url : script, options);
    }
  };
  const worker = new Original(url, { type: 'module', name: NAME });
  worker.port.start();
  drill = wrap<DrillEngine>(worker.port);
  return drill;
}

/** How a request ended, as plain data: its figures, or its error. */
export interface Ending {
  tokens: number[];
  stats?: GenerationStats;
  error?: { isLanternError: boolean; code?: string; message: string };
}

/** Runs a request to its end, whatever the end is; `onChunk` sees the running count of chunks. */
export async function settle(name: string, prompt: string, options: GenerateRequestOptions, onChunk?: (chunks: number) => void): Promise<Ending> {
  const tokens: number[] = [];
  let chunks = 0;
  const stream = engine(name).generate(prompt, options);
  try {
    for await (const chunk of stream) {
      tokens.push(...chunk.tokens);
      onChunk?.(++chunks);
    }
    return { tokens, stats: await stream.result };
  } catch (e) {
    const error = e as LanternError;
    return { tokens, error: { isLanternError: e instanceof LanternError, code: error.code, message: error.message } };
  }
}

/** One long request started in the background, so that the test can break something while it runs. */
let background: { ending: Promise<Ending>; chunks: number } | undefined;

export function startBackground(name: string, prompt: string, options: GenerateRequestOptions): void {
  const state = { ending: Promise.resolve<Ending>({ tokens: [] }), chunks: 0 };
  state.ending = settle(name, prompt, options, (n) => (state.chunks = n));
  background = state;
}

/** Resolves once the background request has streamed `n` chunks (or ended). */
export async function backgroundChunks(n: number): Promise<number> {
  let ended = false;
  void background!.ending.then(() => (ended = true));
  while (background!.chunks < n && !ended) await new Promise((resolve) => setTimeout(resolve, 5));
  return background!.chunks;
}

export function backgroundEnding(): Promise<Ending> {
  return background!.ending;
}
