import { proxy, wrap, type Remote } from 'comlink';
import { LanternError } from '../errors.ts';
import type { GpuBytes } from '../gpu/memory.ts';
import type { ChatMessage } from '../runtime/chat.ts';
import type { ToolCallFormat, ToolCallStream } from '../runtime/tools.ts';
import type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo, TokenLogprob } from '../runtime/types.ts';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionChunkToolCall, ChatCompletionRequest, ChatCompletionTokenLogprob, ChatFinishReason, CompletionUsage, EmbeddingRequest, EmbeddingResponse } from './openai.ts';
import { registerLanternErrorTransfer } from './transfer.ts';
import type { EmbedRequest, EmbedResult, EngineRequest, LoadProgress, ModelInput, Probe, WorkerEngine, WorkerLoadOptions } from './worker-engine.ts';

/** Where the model runs: a dedicated Web Worker, a SharedWorker for every tab of the origin, or this thread. */
export type EngineWorker = 'dedicated' | 'shared' | 'none';

export interface EngineOptions {
  /**
   * 'dedicated' (default): a Web Worker of this page. 'shared': one SharedWorker, and one loaded
   * model, for every tab of this origin; where SharedWorkers have no WebGPU it falls back to
   * 'dedicated'. 'none': this thread (Node over Dawn, tests, or a worker of your own).
   */
  worker?: EngineWorker;
}

export interface EngineLoadOptions extends WorkerLoadOptions {
  /** Download, verify, cache and upload progress, each phase rising from 0 to totalBytes (undefined until a server that will not say the size has sent it all). */
  onProgress?: (progress: LoadProgress) => void;
}

export interface GenerateRequestOptions extends GenerateOptions {
  /** Cancels the request, queued or running; the stream then ends with finishReason "abort". */
  signal?: AbortSignal;
  /** Your own request id, for engine.abort(id); one is made up when left out. */
  id?: string;
}

/** Text a step of generation made visible, and the token ids behind it. */
export interface GenerateChunk {
  text: string;
  tokens: number[];
  /** With GenerateOptions.logprobs: one entry per id of `tokens`, its log-probability and the step's most likely tokens. */
  logprobs?: GeneratedLogprob[];
}

/** A generated token's log-probability, bytes and the most likely tokens at its step (GeneratedToken's fields). */
export interface GeneratedLogprob extends TokenLogprob {
  topLogprobs: TokenLogprob[];
}

/** A running request: iterate it for chunks; `result` resolves with its figures when it ends. */
export interface GenerationStream extends AsyncIterable<GenerateChunk> {
  readonly id: string;
  /** Token counts, speeds and finishReason ("stop", "length" or "abort"); rejects with the request's LanternError. */
  readonly result: Promise<GenerationStats>;
}

export interface ChatCompletions {
  /** OpenAI's call: streams ChatCompletionChunks with `stream: true`, else resolves to one ChatCompletion. */
  create(request: ChatCompletionRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
  create(request: ChatCompletionRequest): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

/** A language model engine. Every method may throw a LanternError; its `code` says what went wrong. */
export interface Engine {
  /** Where the engine ended up running, once it has started (after a SharedWorker fallback, 'dedicated'). */
  readonly worker: Promise<EngineWorker>;
  /**
   * Loads a GGUF model, replacing the one loaded before: a URL (any CORS host; cached in IndexedDB,
   * so the next visit needs no network), a File/Blob, or bytes.
   */
  load(source: ModelInput, options?: EngineLoadOptions): Promise<ModelInfo>;
  /** Frees the model and its GPU memory (in a SharedWorker, for every tab); requests in flight end with finishReason "abort". */
  unload(): Promise<void>;
  info(): Promise<ModelInfo>;
  /** The GPU memory the loaded model holds, by category: weights, kvCache, activations, staging, and the total. */
  memory(): Promise<GpuBytes>;
  /** Continues `prompt` (tokenized with the model's BOS rules). Requests queue; callers take turns. */
  generate(prompt: string, options?: GenerateRequestOptions): GenerationStream;
  readonly chat: { readonly completions: ChatCompletions };
  /**
   * OpenAI's embeddings call: each input's final hidden states pooled as the model declares (the
   * mean where it declares none, as chat models do; they embed too, as well as they happen to) and
   * L2-normalized. Inputs are embedded one after another, queued with generation requests.
   */
  readonly embeddings: { create(request: EmbeddingRequest): Promise<EmbeddingResponse> };
  /** Cancels request `id` (queued or running) in the worker; false when no request has that id. */
  abort(id: string): Promise<boolean>;
  /** Stops this page's use of the engine: its requests are cancelled and a dedicated worker ends. */
  terminate(): void;
}

/**
 * Starts an engine; call load() before generating.
 *
 * @example
 * ```ts
 * import { createEngine } from 'lantern';
 *
 * const engine = createEngine(); // a Web Worker; { worker: 'shared' } shares one model across tabs
 * await engine.load('/models/model.gguf', { onProgress: (p) => console.log(p.phase, p.loadedBytes, p.totalBytes) });
 * const chunks = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hello!' }], stream: true });
 * for await (const chunk of chunks) output.textContent += chunk.choices[0].delta.content ?? '';
 * ```
 */
export function createEngine(options: EngineOptions = {}): Engine {
  const caller = randomId();
  const connection = connect(options.worker ?? 'dedicated');
  connection.catch(() => {}); // reported by the first call that needs it
  let nextId = 0;
  const worker = connection.then((c) => c.kind);
  worker.catch(() => {}); // the same failure reaches every call; unread, it is no unhandled rejection

  const start = (request: Omit<EngineRequest, 'caller' | 'id'>, id: string | undefined, signal: AbortSignal | undefined) =>
    startRequest(connection, { ...request, id: id ?? `${caller}-${nextId++}`, caller }, signal);

  const engine: Engine = {
    worker,
    async load(source, { onProgress, ...loadOptions } = {}) {
      requestPersistentStorage();
      return (await connection).calls.load(source, loadOptions, onProgress);
    },
    async unload() {
      return (await connection).calls.unload();
    },
    async info() {
      return (await connection).calls.info();
    },
    async memory() {
      return (await connection).calls.memory();
    },
    generate(prompt, { signal, id, ...generateOptions } = {}) {
      return start({ prompt, options: generateOptions }, id, signal);
    },
    chat: {
      completions: {
        create: ((request: ChatCompletionRequest) => createChatCompletion(connection, request, start)) as ChatCompletions['create'],
      },
    },
    embeddings: {
      create: (request) => createEmbeddings(connection, request, request.request_id ?? `${caller}-${nextId++}`, caller),
    },
    async abort(id) {
      return (await connection).calls.cancel(id);
    },
    terminate() {
      void connection.then((c) => c.close(caller), () => {});
    },
  };
  return engine;
}

/** The engine's calls, the same whether the engine is across a worker boundary or on this thread. */
interface EngineCalls {
  probe(): Promise<Probe>;
  load(input: ModelInput, options: WorkerLoadOptions, onProgress?: (progress: LoadProgress) => void): Promise<ModelInfo>;
  unload(): Promise<void>;
  info(): Promise<ModelInfo>;
  memory(): Promise<GpuBytes>;
  request(request: EngineRequest, onToken: (token: GeneratedToken) => void): Promise<GenerationStats>;
  embed(request: EmbedRequest): Promise<EmbedResult>;
  cancel(id: string): Promise<boolean>;
  cancelCaller(caller: string): Promise<void>;
}

interface Connection {
  kind: EngineWorker;
  calls: EngineCalls;
  close(caller: string): void;
}

async function connect(kind: EngineWorker): Promise<Connection> {
  if (kind === 'none') {
    // Imported only here, so that a page whose engine runs in a worker does not load the runtime itself.
    const { WorkerEngine } = await import('./worker-engine.ts');
    const engine = new WorkerEngine();
    return { kind, calls: directCalls(engine), close: (caller) => engine.cancelCaller(caller) };
  }
  registerLanternErrorTransfer();
  if (kind === 'shared') {
    if (typeof SharedWorker === 'undefined') return connect('dedicated'); // e.g. Chrome on Android
    const shared = new SharedWorker(new URL('./engine-shared-worker.ts', import.meta.url), { type: 'module', name: 'lantern-engine' });
    shared.port.start();
    const calls = remoteCalls(wrap<WorkerEngine>(shared.port));
    const close = (caller: string) => {
      void calls.cancelCaller(caller).finally(() => shared.port.close());
    };
    // Some browsers give SharedWorkers no navigator.gpu (or no adapter): ask the worker itself.
    const failed = new Promise<Probe>((resolve) => shared.addEventListener('error', () => resolve({ webgpu: false })));
    const timeout = new Promise<Probe>((resolve) => setTimeout(resolve, 10_000, { webgpu: false }));
    const probe = await Promise.race([calls.probe(), failed, timeout]);
    if (probe.webgpu) return { kind, calls, close };
    shared.port.close();
    return connect('dedicated');
  }
  const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'lantern-engine' });
  return { kind: 'dedicated', calls: remoteCalls(wrap<WorkerEngine>(worker)), close: () => worker.terminate() };
}

function directCalls(engine: WorkerEngine): EngineCalls {
  return {
    probe: () => engine.probe(),
    load: (url, options, onProgress) => engine.load(url, options, onProgress),
    unload: () => engine.unload(),
    info: () => engine.info(),
    memory: () => engine.memory(),
    request: (request, onToken) => engine.request(request, onToken),
    embed: (request) => engine.embed(request),
    cancel: async (id) => engine.cancel(id),
    cancelCaller: async (caller) => engine.cancelCaller(caller),
  };
}

function remoteCalls(engine: Remote<WorkerEngine>): EngineCalls {
  return {
    probe: () => engine.probe(),
    load: (url, options, onProgress) => engine.load(url, options, onProgress && proxy(onProgress)),
    unload: () => engine.unload(),
    info: () => engine.info(),
    memory: () => engine.memory(),
    request: (request, onToken) => engine.request(request, proxy(onToken)),
    embed: (request) => engine.embed(request),
    cancel: (id) => engine.cancel(id),
    cancelCaller: (caller) => engine.cancelCaller(caller),
  };
}

/**
 * Sends one request and turns the engine's per-token callbacks back into an async iterator of
 * chunks: tokens that arrived while the consumer was busy come out together as one chunk.
 */
function startRequest(connection: Promise<Connection>, request: EngineRequest, signal: AbortSignal | undefined): GenerationStream {
  const queue: GeneratedToken[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  const onToken = (token: GeneratedToken) => {
    queue.push(token);
    wake?.();
  };
  const result = (async () => {
    const { calls } = await connection;
    if (signal?.aborted) return notStarted();
    const cancel = () => void calls.cancel(request.id);
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await calls.request(request, onToken);
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  })().finally(() => {
    finished = true;
    wake?.();
  });
  result.catch(() => {}); // the iterator rethrows it; an unread stream must not be an unhandled rejection

  let iterated = false;
  async function* chunks(): AsyncGenerator<GenerateChunk> {
    if (iterated) throw new LanternError('BAD_ARGUMENT', 'A generation stream can be iterated once; keep the chunks if you need them again.');
    iterated = true;
    try {
      for (;;) {
        if (queue.length > 0) {
          const tokens = queue.splice(0);
          const chunk: GenerateChunk = { text: tokens.map((t) => t.text).join(''), tokens: tokens.filter((t) => t.id >= 0).map((t) => t.id) };
          if (request.options.logprobs !== undefined) chunk.logprobs = tokens.filter((t) => t.id >= 0).map(generatedLogprob);
          yield chunk;
          continue;
        }
        if (finished) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      await result; // throws the request's error
    } finally {
      // The consumer left the loop early: stop the request, and wait so that the engine is free.
      if (!finished) {
        void (await connection).calls.cancel(request.id);
        await result.catch(() => {});
      }
    }
  }
  return { id: request.id, result, [Symbol.asyncIterator]: chunks };
}

type Start = (request: Omit<EngineRequest, 'caller' | 'id'>, id: string | undefined, signal: AbortSignal | undefined) => GenerationStream;

async function createChatCompletion(
  connection: Promise<Connection>,
  request: ChatCompletionRequest,
  start: Start,
): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
  const options: GenerateOptions = {
    maxTokens: request.max_completion_tokens ?? request.max_tokens,
    temperature: request.temperature ?? 1, // OpenAI's default
    topP: request.top_p,
    topK: request.top_k,
    minP: request.min_p,
    repetitionPenalty: request.repetition_penalty,
    presencePenalty: request.presence_penalty,
    frequencyPenalty: request.frequency_penalty,
    logitBias: request.logit_bias,
    seed: request.seed,
    stop: request.stop,
    grammar: request.grammar,
    responseFormat: request.response_format,
    logprobs: chatLogprobs(request),
    contextOverflow: request.context_overflow,
    keep: request.n_keep,
  };
  const messages: ChatMessage[] = request.messages;
  const tools = { tools: request.tools, toolChoice: request.tool_choice, parallelToolCalls: request.parallel_tool_calls };
  const stream = start({ messages, chatTemplate: request.chat_template, options, ...tools }, request.request_id, request.signal);
  const { calls } = await connection;
  const info = await calls.info();
  const model = info.name;
  const id = `chatcmpl-${stream.id}`;
  const created = Math.floor(Date.now() / 1000);
  // The reply is read for calls when tools were offered (the worker refused a template without
  // them). The reader is imported only then, so that a page that uses no tools does not load it.
  const offered = (request.tools?.length ?? 0) > 0 && request.tool_choice !== 'none';
  const reading = offered ? await import('../runtime/tools.ts') : undefined;
  const format: ToolCallFormat | undefined = !reading ? undefined : request.chat_template !== undefined ? reading.toolCallFormatOf(request.chat_template) : info.toolCallFormat;
  const finish = (reason: ChatFinishReason, called: boolean): ChatFinishReason => (called && reason === 'stop' ? 'tool_calls' : reason);

  // OpenAI's entries of the tokens of one chunk, or null when not asked for.
  const logprobs = (chunk: GenerateChunk) => (chunk.logprobs ? { content: chunk.logprobs.map(openAiLogprob), refusal: null } : null);
  if (!request.stream) {
    let text = '';
    const entries: ChatCompletionTokenLogprob[] = [];
    for await (const chunk of stream) {
      text += chunk.text;
      entries.push(...(logprobs(chunk)?.content ?? []));
    }
    const stats = await stream.result;
    const { content, toolCalls } = format && reading ? reading.parseToolCalls(text, format) : { content: text, toolCalls: [] };
    return {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{
        index: 0,
        message: { role: 'assistant', content, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) },
        finish_reason: finish(stats.finishReason, toolCalls.length > 0),
        logprobs: options.logprobs === undefined ? null : { content: entries, refusal: null },
      }],
      usage: usage(stats),
    };
  }
  return (async function* (): AsyncGenerator<ChatCompletionChunk> {
    const chunk = (
      delta: ChatCompletionChunk['choices'][0]['delta'], finish: ChatCompletionChunk['choices'][0]['finish_reason'], entries: ChatCompletionChunk['choices'][0]['logprobs'] = null,
    ): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: entries }],
    });
    yield chunk({ role: 'assistant', content: '' }, null);
    const reader = format && reading ? new reading.ToolCallStream(format) : undefined;
    // Text and calls as OpenAI streams them: a call's first delta has its id, type and name.
    const deltas = (events: ReturnType<ToolCallStream['push']>) => events.map((e): ChatCompletionChunk['choices'][0]['delta'] => {
      if (e.kind === 'content') return { content: e.text };
      const call: ChatCompletionChunkToolCall = e.kind === 'call'
        ? { index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: '' } }
        : { index: e.index, function: { arguments: e.text } };
      return { tool_calls: [call] };
    });
    for await (const generated of stream) {
      // A token whose text is held back (part of a character, of a possible stop string or of a
      // possible tool call) still has its entry: on the chunk its text goes out with, or on its own.
      const entries = logprobs(generated);
      const out = !reader ? (generated.text ? [{ content: generated.text }] : []) : generated.text ? deltas(reader.push(generated.text)) : [];
      if (out.length === 0 && entries?.content.length) yield chunk({}, null, entries);
      for (let i = 0; i < out.length; i++) yield chunk(out[i], null, i === 0 ? entries : null);
    }
    const stats = await stream.result;
    if (reader) for (const delta of deltas(reader.end())) yield chunk(delta, null);
    yield { ...chunk({}, finish(stats.finishReason, reader?.hasCalls ?? false)), usage: usage(stats) };
  })();
}

/** GenerateOptions.logprobs from OpenAI's logprobs and top_logprobs, checked as OpenAI checks them. */
function chatLogprobs(request: ChatCompletionRequest): number | undefined {
  const top = request.top_logprobs ?? undefined;
  if (top !== undefined && (!Number.isInteger(top) || top < 0 || top > 20)) {
    throw new LanternError('BAD_ARGUMENT', `top_logprobs must be a whole number from 0 to 20, not ${String(top)}.`);
  }
  if (!request.logprobs) {
    if (top !== undefined) throw new LanternError('BAD_ARGUMENT', 'top_logprobs needs logprobs: true; set it, or leave top_logprobs out.');
    return undefined;
  }
  return top ?? 0;
}

function generatedLogprob(token: GeneratedToken): GeneratedLogprob {
  return { id: token.id, logprob: token.logprob!, bytes: token.bytes!, topLogprobs: token.topLogprobs! };
}

const utf8 = new TextDecoder();

function openAiLogprob(entry: GeneratedLogprob): ChatCompletionTokenLogprob {
  const token = (t: TokenLogprob) => ({ token: utf8.decode(Uint8Array.from(t.bytes)), logprob: t.logprob, bytes: t.bytes });
  return { ...token(entry), top_logprobs: entry.topLogprobs.map(token) };
}

/** embeddings.create: the inputs checked here, embedded in the engine, answered in OpenAI's shape. */
async function createEmbeddings(connection: Promise<Connection>, request: EmbeddingRequest, id: string, caller: string): Promise<EmbeddingResponse> {
  const input = typeof request.input === 'string' ? [request.input] : request.input;
  if (!Array.isArray(input) || input.length === 0 || input.some((text) => typeof text !== 'string' || text === '')) {
    throw new LanternError('BAD_ARGUMENT', 'input must be a non-empty string or a non-empty array of non-empty strings.');
  }
  if (request.encoding_format !== undefined && request.encoding_format !== 'float') {
    throw new LanternError('BAD_ARGUMENT', `encoding_format must be 'float' (or left out), not ${String(request.encoding_format)}; Lantern returns number arrays.`);
  }
  const { calls } = await connection;
  const { signal } = request;
  if (signal?.aborted) throw new LanternError('ABORTED', 'The embeddings request was aborted before it was sent; send it again for its result.');
  const cancel = () => void calls.cancel(id);
  signal?.addEventListener('abort', cancel, { once: true });
  let result: EmbedResult;
  try {
    result = await calls.embed({ id, caller, input });
  } finally {
    signal?.removeEventListener('abort', cancel);
  }
  const model = (await calls.info()).name;
  return {
    object: 'list',
    data: result.embeddings.map((vector, index) => ({ object: 'embedding', index, embedding: Array.from(vector) })),
    model,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}

function usage(stats: GenerationStats): CompletionUsage {
  return {
    prompt_tokens: stats.promptTokens,
    completion_tokens: stats.generatedTokens,
    total_tokens: stats.promptTokens + stats.generatedTokens,
    prompt_tokens_details: { cached_tokens: stats.cachedTokens },
  };
}

function notStarted(): GenerationStats {
  return { promptTokens: 0, cachedTokens: 0, prefilledTokens: 0, generatedTokens: 0, prefillTokensPerSecond: 0, decodeTokensPerSecond: 0, finishReason: 'abort' };
}

function randomId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * Asks the browser not to evict cached models under storage pressure. Only a page can ask:
 * navigator.storage.persist() does not exist inside workers. The answer is advisory.
 */
function requestPersistentStorage(): void {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (typeof document === 'undefined' || !storage?.persist) return;
  void storage.persist().catch(() => {});
}
