/**
 * Page-side helpers for tests/e2e/drills.test.ts, loaded with lanternImport. installDrillWorker()
 * makes createEngine({ worker: 'shared' }) start tests/helpers/drill-worker.ts (the real
 * WorkerEngine with a buffer census and a device-loss trigger) in place of the product's
 * SharedWorker, and returns a second connection to it for the drill calls.
 */
import { wrap, type Remote } from 'comlink';
import { LanternError, type GenerateRequestOptions, type GenerationStats } from '../../src/index.ts';
import type { DrillEngine } from './drill-worker.ts';
import { engine, SIMPLE_TEMPLATE } from './engine-page.ts';
import { seededRandom } from '../../src/runtime/sampler.ts';

export * from './engine-page.ts';

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

/** A long request started in the background, and a second queued behind it, so that the test can break something while they wait. */
let background: { ending: Promise<Ending>; queued: Promise<Ending>; chunks: number } | undefined;

export function startBackground(name: string, prompt: string, options: GenerateRequestOptions): void {
  const state = { ending: Promise.resolve<Ending>({ tokens: [] }), queued: Promise.resolve<Ending>({ tokens: [] }), chunks: 0 };
  state.ending = settle(name, prompt, options, (n) => (state.chunks = n));
  state.queued = settle(name, prompt, { ...options, maxTokens: 4 });
  background = state;
}

/** Resolves once the background request has streamed `n` chunks (or ended). */
export async function backgroundChunks(n: number): Promise<number> {
  let ended = false;
  void background!.ending.then(() => (ended = true));
  while (background!.chunks < n && !ended) await new Promise((resolve) => setTimeout(resolve, 5));
  return background!.chunks;
}

/** How the background request and the one queued behind it ended. */
export async function backgroundEnding(): Promise<{ running: Ending; queued: Ending }> {
  return { running: await background!.ending, queued: await background!.queued };
}

/** When a storm request's signal is aborted. */
export type AbortMoment = 'before' | 'delay' | 'prefill' | 'chunks' | 'after';

export interface StormOutcome {
  moment: AbortMoment;
  /** How the promise settled: fulfilled with figures, rejected with an error, or not within a minute. */
  settled: 'fulfilled' | 'rejected' | 'hung';
  finishReason?: string;
  promptTokens?: number;
  generatedTokens?: number;
  error?: string;
}

/** About 70 tokens: two prefill chunks, the first of 64 (seconds on SwiftShader). */
const LONG_PROMPT = 'Once upon a time, the dog ran to the park. He saw a big red ball and a little girl named Lily. '.repeat(3);

/**
 * `count` requests on engine `name`, `concurrency` at a time, each aborted at a seeded moment:
 * before it is sent ("before"), after 0-200 ms (queued or running by then: "delay"), after 1-3
 * chunks ("chunks"), or after it finished ("after"); one in ten has a prompt of two prefill chunks
 * and is aborted after 0-1 s, mostly while its first chunk runs ("prefill").
 */
export async function storm(name: string, seed: number, count: number, concurrency: number): Promise<StormOutcome[]> {
  const random = seededRandom(seed);
  const plans = Array.from({ length: count }, () => {
    const r = random();
    const moment: AbortMoment = r < 0.1 ? 'prefill' : (['before', 'delay', 'chunks', 'after'] as const)[Math.floor(((r - 0.1) / 0.9) * 4)];
    return {
      moment,
      maxTokens: 2 + Math.floor(random() * 14),
      delayMs: Math.floor(random() * (moment === 'prefill' ? 1000 : 200)),
      chunks: 1 + Math.floor(random() * 3),
    };
  });
  const outcomes: StormOutcome[] = [];
  let next = 0;
  const one = async (plan: (typeof plans)[number]): Promise<StormOutcome> => {
    const controller = new AbortController();
    const prompt = plan.moment === 'prefill' ? LONG_PROMPT : 'Once upon a time';
    const stream = engine(name).generate(prompt, { maxTokens: plan.maxTokens, temperature: 0, signal: controller.signal });
    if (plan.moment === 'before') controller.abort();
    if (plan.moment === 'delay' || plan.moment === 'prefill') setTimeout(() => controller.abort(), plan.delayMs);
    let chunks = 0;
    const drained = (async () => {
      for await (const _ of stream) if (++chunks === plan.chunks && plan.moment === 'chunks') controller.abort();
      return stream.result;
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(resolve, 60_000, 'hung')));
    try {
      const stats = await Promise.race([drained, hung]);
      if (stats === 'hung') return { moment: plan.moment, settled: 'hung' };
      if (plan.moment === 'after') controller.abort(); // a no-op once the request is done
      return { moment: plan.moment, settled: 'fulfilled', finishReason: stats.finishReason, promptTokens: stats.promptTokens, generatedTokens: stats.generatedTokens };
    } catch (e) {
      return { moment: plan.moment, settled: 'rejected', error: `${(e as LanternError).code}: ${(e as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < plans.length) {
        const i = next++;
        outcomes[i] = await one(plans[i]);
      }
    }),
  );
  return outcomes;
}

/**
 * `count` short chat completions on engine `name`, one after another, streamed or not in turn,
 * `maxTokens` each, all of one conversation: after the first, the KV cache holds the prompt but its
 * last token, so that each costs a few steps (a thousand run in about two minutes on SwiftShader).
 * Returns how many ended with "length" or "stop" and the time taken.
 */
export async function soak(name: string, from: number, count: number, maxTokens: number): Promise<{ completed: number; ms: number }> {
  const chat = engine(name).chat.completions;
  const t0 = performance.now();
  let completed = 0;
  for (let i = from; i < from + count; i++) {
    const request = { messages: [{ role: 'user' as const, content: 'Tell me a story.' }], chat_template: SIMPLE_TEMPLATE, temperature: 0, max_tokens: maxTokens };
    let finish: string | null = null;
    if (i % 2 === 0) {
      finish = (await chat.create({ ...request, stream: false })).choices[0].finish_reason;
    } else {
      for await (const chunk of await chat.create({ ...request, stream: true })) finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (finish === 'length' || finish === 'stop') completed++;
  }
  return { completed, ms: performance.now() - t0 };
}
