/**
 * Lantern: open language models in the browser on WebGPU, from a GGUF file.
 *
 *   const engine = createEngine();                       // a Web Worker; { worker: 'shared' } for all tabs
 *   await engine.load('/models/model.gguf', { onProgress: (p) => show(p.totalBytes ? p.loadedBytes / p.totalBytes : undefined) });
 *   const chunks = await engine.chat.completions.create({ messages, stream: true, temperature: 0.7 });
 *   for await (const chunk of chunks) show(chunk.choices[0].delta.content ?? '');
 *
 * @module lantern
 */

/** Starts an engine: a model in a Web Worker (default), a SharedWorker, or on this thread. */
export {
  createEngine,
  type Engine,
  type EngineOptions,
  type EngineWorker,
  type EngineLoadOptions,
  type GenerateRequestOptions,
  type GenerateChunk,
  type GenerationStream,
  type ChatCompletions,
  type GeneratedLogprob,
} from './worker/client.ts';

/** OpenAI's chat completion request and response shapes, as the engine fills them. */
export type { ChatCompletionRequest, ChatCompletion, ChatCompletionChunk, ChatFinishReason, CompletionUsage, ChatTool, ToolChoice, ToolCall, ChatCompletionChunkToolCall } from './worker/openai.ts';

/** OpenAI's log-probability entries (chat logprobs: true) and embeddings shapes (engine.embeddings.create). */
export type { ChatCompletionTokenLogprob, ChoiceLogprobs, EmbeddingRequest, EmbeddingResponse, Embedding } from './worker/openai.ts';

/** What load() takes (a URL, a File/Blob, bytes) and the progress it reports, phase by phase. */
export type { LoadProgress, LoadPhase, ModelInput } from './storage/open.ts';

/** The IndexedDB model cache: list what is stored (id, size, last used), delete one or all. */
export { listCachedModels, deleteCachedModel, deleteAllCachedModels, type CachedModel } from './storage/cache.ts';

/** A model on this thread's GPU device, below the engine: token ids in, token ids out (Node over Dawn, tools). */
export { Runtime, type LoadOptions } from './runtime/runtime.ts';
export type { EmbedOptions, EmbeddingPooling } from './runtime/embeddings.ts';

/** Renders a conversation with a Jinja chat template, as the engine does for chat.completions. */
export { renderChatTemplate, type ChatMessage, type ChatTemplateContext } from './runtime/chat.ts';

/** Where model bytes come from: a URL (Range requests), a File/Blob, or bytes in memory. */
export { urlSource, blobSource, bytesSource, type ByteSource } from './storage/source.ts';

/** GPU memory by category (Engine.memory, Runtime.memory), and the KV cache's storage forms (LoadOptions.kvCache). */
export type { GpuBytes } from './gpu/memory.ts';
export type { KvCacheType } from './kernels/ops.ts';

/** Every error Lantern throws: a `code` to branch on and a message that says what to do. */
export { LanternError, type LanternErrorCode } from './errors.ts';

/** Options and figures of a generation: sampling, stop strings, token counts, speeds, finish reason. */
export type { GenerateOptions, SamplingOptions, GeneratedToken, GenerationStats, FinishReason, ModelInfo, TokenLogprob } from './runtime/types.ts';
