/**
 * Page-side helpers for tests/engine.test.ts, loaded with lanternImport: drive the public engine
 * and return plain data (Playwright carries nothing else back).
 */
import { createEngine, LanternError, type Engine, type EngineWorker, type GenerateRequestOptions, type GenerationStats } from '../../src/index.ts';

export const MODEL_URL = '/__lantern/model.gguf';

/** A plain template for stories260K, which ships none. */
export const SIMPLE_TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

const engines = new Map<string, Engine>();

export async function start(name: string, worker: EngineWorker, contextLength?: number): Promise<{ worker: EngineWorker; name: string }> {
  engines.get(name)?.terminate();
  const engine = createEngine({ worker });
  engines.set(name, engine);
  const info = await engine.load(MODEL_URL, { contextLength });
  return { worker: await engine.worker, name: info.name };
}

export function engine(name: string): Engine {
  return engines.get(name)!;
}

export interface Collected {
  text: string;
  tokens: number[];
  chunks: number;
  stats: GenerationStats;
}

/** Runs a generate request to the end; `abortAfter` aborts its signal after that many chunks. */
export async function collect(name: string, prompt: string, options: GenerateRequestOptions & { abortAfter?: number } = {}): Promise<Collected> {
  const { abortAfter, ...rest } = options;
  const controller = new AbortController();
  const stream = engine(name).generate(prompt, { ...rest, signal: controller.signal });
  let text = '';
  const tokens: number[] = [];
  let chunks = 0;
  for await (const chunk of stream) {
    text += chunk.text;
    tokens.push(...chunk.tokens);
    if (++chunks === abortAfter) controller.abort();
  }
  return { text, tokens, chunks, stats: await stream.result };
}

/** The error a call throws, as plain data; undefined when it succeeds. */
export async function failure(work: () => Promise<unknown>): Promise<{ isLanternError: boolean; code?: string; message: string; details?: unknown } | undefined> {
  try {
    await work();
    return undefined;
  } catch (e) {
    const error = e as LanternError;
    return { isLanternError: e instanceof LanternError, code: error.code, message: error.message, details: error.details };
  }
}
