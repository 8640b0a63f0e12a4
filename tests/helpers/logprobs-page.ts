/**
 * Page-side helpers for tests/logprobs.test.ts, loaded with lanternImport: one engine on this thread
 * and the Runtime it loaded (caught as Runtime.load returns it: the engine's runtime module and this
 * one are the same module of the page), whose forward steps are watched for what they read back.
 */
import { createEngine, LanternError, Runtime, type Engine } from '../../src/index.ts';

export const MODEL_URL = '/__lantern/model.gguf';

/** A plain template for stories260K, which ships none. */
export const SIMPLE_TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

let engine: Engine | undefined;
let runtime: Runtime | undefined;
/** The read mode of every Forward.step since the last takeReads(): 'argmax', 'topk', 'logits' or 'none'. */
let reads: string[] = [];

export async function start(): Promise<void> {
  const load = Runtime.load;
  let loaded: Runtime | undefined;
  Runtime.load = async (...args: Parameters<typeof Runtime.load>) => (loaded = await load.apply(Runtime, args));
  try {
    engine = createEngine({ worker: 'none' });
    await engine.load(MODEL_URL, { kvCache: 'f32' }); // like llama.cpp's f32 cache in the embedding tests
  } finally {
    Runtime.load = load;
  }
  runtime = loaded!;
  const forward = (runtime as unknown as { forward: { step: (...args: unknown[]) => Promise<unknown> } }).forward;
  const step = forward.step.bind(forward);
  forward.step = (...args: unknown[]) => {
    reads.push(String(args[2]));
    return step(...args);
  };
}

export function theEngine(): Engine {
  return engine!;
}

export function theRuntime(): Runtime {
  return runtime!;
}

export function takeReads(): string[] {
  const taken = reads;
  reads = [];
  return taken;
}

/** The error a call throws, as plain data; undefined when it succeeds. */
export async function failure(work: () => unknown): Promise<{ isLanternError: boolean; code?: string; message: string } | undefined> {
  try {
    await work();
    return undefined;
  } catch (e) {
    const error = e as LanternError;
    return { isLanternError: e instanceof LanternError, code: error.code, message: error.message };
  }
}
