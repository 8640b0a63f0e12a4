/**
 * Lantern: open language models in the browser on WebGPU, from a GGUF file.
 *
 *   const engine = createWorkerClient();
 *   await engine.load('/models/stories260K.gguf');
 *   for await (const { text } of engine.generate('Once upon a time', { maxTokens: 64 })) show(text);
 */

/** A model in a dedicated Web Worker, driven from the page; tokens arrive as an async iterator. */
export { createWorkerClient, type WorkerClient } from './worker/client.ts';

/** A model on this thread's GPU device (Node over Dawn, tests, or a worker of your own). */
export { Runtime, type LoadOptions } from './runtime/runtime.ts';

/** Where model bytes come from: a URL (Range requests), a File/Blob, or bytes in memory. */
export { urlSource, blobSource, bytesSource, type ByteSource } from './storage/source.ts';

/** Every error Lantern throws: a `code` to branch on and a message that says what to do. */
export { LanternError, type LanternErrorCode } from './errors.ts';

export type { GenerateOptions, GeneratedToken, GenerationStats, ModelInfo } from './runtime/types.ts';
