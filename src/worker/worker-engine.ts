import { LanternError } from '../errors.ts';
import type { GpuBytes } from '../gpu/memory.ts';
import { type CheckpointLoadOptions, checkpointModel } from '../model/hf/convert.ts';
import { isFileSetInput } from '../storage/files.ts';
import { openModel, type LoadProgress, type ModelInput } from '../storage/open.ts';
import { type ChatMessage, systemPromptLength } from '../runtime/chat.ts';
import { Runtime, type LoadOptions } from '../runtime/runtime.ts';
import { Scheduler } from '../runtime/scheduler.ts';
import { planTools } from '../runtime/tool-prompt.ts';
import type { ChatTool, ToolChoice } from '../runtime/tool-format.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from '../runtime/types.ts';

export interface WorkerLoadOptions extends LoadOptions, CheckpointLoadOptions {
  /** The file's SHA-256 in hex; a download that does not match fails with CHECKSUM_MISMATCH. */
  expectedSha256?: string;
}

/** Called in the page for each generated token; the worker waits for it before the next one. */
export type TokenCallback = (token: GeneratedToken) => void | Promise<void>;

export type { LoadProgress, ModelInput };

export type ProgressCallback = (progress: LoadProgress) => void | Promise<void>;

/** One generation request as it crosses the worker boundary: plain data. */
export interface EngineRequest {
  /** Unique across every caller of this engine (a SharedWorker serves several tabs). */
  id: string;
  /** Who asked: callers take turns in the queue. */
  caller: string;
  /** Plain text, tokenized with the model's BOS rules... */
  prompt?: string;
  /** ...or a conversation, rendered with the model's chat template (or `chatTemplate`). */
  messages?: ChatMessage[];
  chatTemplate?: string;
  /** Tools offered to the conversation (OpenAI's tools, tool_choice, parallel_tool_calls). */
  tools?: ChatTool[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
  options: GenerateOptions;
}

/** One embeddings request as it crosses the worker boundary: plain data. */
export interface EmbedRequest {
  /** Unique across every caller of this engine, as EngineRequest.id. */
  id: string;
  caller: string;
  /** Texts, each tokenized with the model's BOS/EOS rules and embedded alone. */
  input: string[];
}

/** The embeddings of an EmbedRequest's inputs, in order ([n_embd] each, L2 norm 1), and the tokens they took. */
export interface EmbedResult {
  embeddings: Float32Array[];
  promptTokens: number;
}

/** What WebGPU this worker sees: SharedWorkers have no navigator.gpu in some browsers. */
export interface Probe {
  webgpu: boolean;
  adapter?: string;
}

/**
 * A page that went away (a closed tab of a SharedWorker) never answers a token callback; after this
 * long its request is cancelled, so that it does not hold the model for the other callers. The
 * page side only queues tokens, so a live page answers at once.
 */
const CALLBACK_TIMEOUT_MS = 15_000;

/**
 * Everything that lives in the worker: the GPU device (inside the Runtime), one loaded model and
 * the scheduler that queues requests for it. comlink exposes an instance of this class as-is
 * (to one page, or to every tab of a SharedWorker), so every method takes and returns plain data,
 * except callbacks, which pages pass as comlink proxies.
 */
export class WorkerEngine {
  private runtime: Runtime | undefined;
  private loaded: { input: ModelInput; options: WorkerLoadOptions } | undefined;
  private lostError: LanternError | undefined;
  /** The load in progress, which a second caller asking for the same model waits for. */
  private loading: { input: ModelInput; options: WorkerLoadOptions; info: Promise<ModelInfo> } | undefined;
  private readonly scheduler = new Scheduler();
  private nextLegacyId = 0;

  /** Whether this worker can reach a GPU adapter. */
  async probe(): Promise<Probe> {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) return { webgpu: false };
    const adapter = await gpu.requestAdapter().catch(() => null);
    if (!adapter) return { webgpu: false };
    return { webgpu: true, adapter: [adapter.info.vendor, adapter.info.architecture].filter(Boolean).join(' ') };
  }

  /**
   * Loads a GGUF model (a URL, a File/Blob or bytes) through the IndexedDB cache, replacing the one
   * loaded before (requests in flight end with finishReason "abort"). When the same URL is already
   * loaded with the same options, as when a second tab joins a SharedWorker, it is shared rather
   * than loaded again.
   */
  async load(input: ModelInput, options: WorkerLoadOptions = {}, onProgress?: ProgressCallback): Promise<ModelInfo> {
    const same = (m: { input: ModelInput; options: WorkerLoadOptions } | undefined) =>
      typeof input === 'string' && m?.input === input && m.options.contextLength === options.contextLength &&
      (m.options.int8Activations ?? true) === (options.int8Activations ?? true) && m.options.quantize === options.quantize &&
      m.options.kvCache === options.kvCache && m.options.maxGpuBytes === options.maxGpuBytes;
    if (this.runtime && same(this.loaded)) return this.runtime.info;
    if (this.loading && same(this.loading)) return this.loading.info; // a second tab asking while the first loads
    this.scheduler.cancelAll();
    // Through the scheduler, so that it starts after the aborted request has let go of the runtime.
    const info = this.scheduler.submit(`load:${Date.now()}:${Math.random()}`, 'engine', async () => {
      this.dispose();
      // A Hugging Face model is converted on the way into the cache (src/model/hf/convert.ts).
      const model = isFileSetInput(input) ? checkpointModel(input as string | URL | readonly File[], options) : input;
      const source = await openModel(model, { onProgress, expectedSha256: options.expectedSha256 });
      const runtime = await Runtime.load((globalThis.navigator as Navigator | undefined)?.gpu, source, options);
      source.uploadDone();
      this.runtime = runtime;
      this.loaded = { input, options };
      this.lostError = undefined;
      void runtime.lost.then((error) => {
        if (this.runtime !== runtime) return; // unloaded on purpose
        this.runtime = undefined;
        this.loaded = undefined;
        this.lostError = error;
        this.scheduler.cancelAll();
      });
      return runtime.info;
    });
    const loading = { input, options, info };
    this.loading = loading;
    try {
      return await info;
    } finally {
      if (this.loading === loading) this.loading = undefined;
    }
  }

  /** Frees the model and its GPU device; requests in flight end with finishReason "abort". */
  async unload(): Promise<void> {
    this.scheduler.cancelAll();
    await this.scheduler.submit(`unload:${Date.now()}:${Math.random()}`, 'engine', async () => this.dispose());
  }

  /** The GPU memory the loaded model holds, by category (Runtime.memory). */
  async memory(): Promise<GpuBytes> {
    if (!this.runtime && this.loading) await this.loading.info.catch(() => {});
    return this.model().memory();
  }

  /** The loaded model; waits for a load in progress. */
  async info(): Promise<ModelInfo> {
    if (!this.runtime && this.loading) await this.loading.info.catch(() => {});
    return this.model().info;
  }

  /**
   * Queues a request and streams its tokens to `onToken` once it runs. Resolves with its figures,
   * finishReason included; a request cancelled before it started resolves with finishReason
   * "abort" and no tokens.
   */
  async request(request: EngineRequest, onToken: TokenCallback): Promise<GenerationStats> {
    try {
      return await this.scheduler.submit(request.id, request.caller, async (signal) => {
        const runtime = this.model();
        const { promptIds, options } = prompt(runtime, request);
        // A context shift keeps the system prompt unless told otherwise.
        const keep = options.keep ?? (request.messages && options.contextOverflow === 'shift'
          ? systemPromptLength(runtime.tokenizer, runtime.chatTemplate, request.messages, promptIds, request.chatTemplate) : undefined);
        for await (const token of runtime.generate(promptIds, { ...options, keep }, signal)) {
          if (!(await answered(onToken(token)))) this.scheduler.cancel(request.id);
        }
        // A loss between two steps (while a token went to the page) reaches the loop as the abort
        // of cancelAll, not as a failed GPU call: it is still the loss that ended the request.
        if (runtime.lastStats!.finishReason === 'abort' && this.lostError && this.runtime !== runtime) throw this.lostError;
        return runtime.lastStats!;
      });
    } catch (e) {
      // Queued requests are cancelled when the device is lost; they end with the loss too.
      if (e instanceof LanternError && e.code === 'ABORTED') {
        if (this.lostError) throw this.lostError;
        return notStarted();
      }
      throw e;
    }
  }

  /**
   * Queues an embeddings request like a generation: once it runs, every input is tokenized (so a
   * bad one fails before any GPU work) and embedded in turn, one after another (Runtime.embed).
   * Cancelling it rejects it with ABORTED.
   */
  async embed(request: EmbedRequest): Promise<EmbedResult> {
    try {
      return await this.scheduler.submit(request.id, request.caller, async (signal) => {
        const runtime = this.model();
        const ids = request.input.map((text) => runtime.encode(text, true));
        const embeddings: Float32Array[] = [];
        for (const one of ids) embeddings.push(await runtime.embed(one, {}, signal));
        return { embeddings, promptTokens: ids.reduce((n, one) => n + one.length, 0) };
      });
    } catch (e) {
      if (e instanceof LanternError && e.code === 'ABORTED' && this.lostError) throw this.lostError;
      throw e;
    }
  }

  /** Cancels a queued request, or aborts a running one after its current step; false for an unknown id. */
  cancel(id: string): boolean {
    return this.scheduler.cancel(id);
  }

  /** Cancels every request of one caller (a page that is going away). */
  cancelCaller(caller: string): void {
    this.scheduler.cancelCaller(caller);
  }

  /** The older single-caller call (src/embed uses it): a prompt, options and a token callback. */
  async generate(prompt: string, options: GenerateOptions, onToken: TokenCallback): Promise<GenerationStats> {
    return this.request({ id: `legacy-${this.nextLegacyId++}`, caller: 'legacy', prompt, options }, onToken);
  }

  /** The older single-caller abort: stops the running request of generate(). */
  abort(): void {
    this.scheduler.cancelCaller('legacy');
  }

  private model(): Runtime {
    if (this.runtime) return this.runtime;
    if (this.lostError) throw this.lostError;
    throw new LanternError('NOT_LOADED', 'No model is loaded yet; call load() with a model URL first.');
  }

  private dispose(): void {
    this.runtime?.dispose();
    this.runtime = undefined;
    this.loaded = undefined;
  }
}

/** The request's prompt ids, and its options with the grammar of a forced tool call. */
function prompt(runtime: Runtime, request: EngineRequest): { promptIds: number[]; options: GenerateOptions } {
  if (!request.messages) return { promptIds: runtime.encode(request.prompt ?? '', true), options: request.options };
  const plan = planTools(request.chatTemplate ?? runtime.chatTemplate, request);
  let options = request.options;
  if (plan.grammar !== undefined) {
    if (options.grammar !== undefined || (options.responseFormat !== undefined && options.responseFormat.type !== 'text')) {
      throw new LanternError('BAD_ARGUMENT', "tool_choice 'required' or a named function constrains the reply to tool calls; it cannot be combined with grammar or response_format: drop one of them.");
    }
    options = { ...options, grammar: plan.grammar };
  }
  return { promptIds: runtime.encodeChat(request.messages, request.chatTemplate, plan.tools), options };
}

/** Whether a callback settled in time (see CALLBACK_TIMEOUT_MS). */
async function answered(result: void | Promise<void>): Promise<boolean> {
  if (!(result instanceof Promise)) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(resolve, CALLBACK_TIMEOUT_MS, false)));
  try {
    return await Promise.race([result.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function notStarted(): GenerationStats {
  return { promptTokens: 0, cachedTokens: 0, prefilledTokens: 0, generatedTokens: 0, prefillTokensPerSecond: 0, decodeTokensPerSecond: 0, finishReason: 'abort' };
}
