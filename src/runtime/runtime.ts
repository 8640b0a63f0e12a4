import { LanternError } from '../errors.ts';
import { acquireGpu, type GpuContext, shareGpu } from '../gpu/device.ts';
import { type GGUFFile, readGGUF } from '../model/gguf.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Family } from './models/family.ts';
import type { ByteSource } from '../storage/source.ts';
import { type Tokenizer, tokenizerFromGGUF } from '../model/tokenizer/index.ts';
import { chatPromptIds, chatTemplateOf, type ChatMessage } from './chat.ts';
import { toolCallFormatOf, type ChatTool } from './tool-format.ts';
import { weightBytesPerToken } from './bench.ts';
import { TOPK_MAX } from '../kernels/topk.ts';
import { kvCacheFits, type KvCacheType } from '../kernels/ops.ts';
import type { GpuBytes } from '../gpu/memory.ts';
import { Forward, forwardBytes, planForward } from './forward.ts';
import { modelConfig } from './models/index.ts';
import { numericErrorAt, type NumericStep } from './numeric.ts';
import { constraintFor, type TokenConstraint } from './grammar/index.ts';
import { logSoftmaxAt } from './perplexity.ts';
import { checkLogprobs, stepLogprobs } from './logprobs.ts';
import { checkPooling, declaredPooling, type EmbeddingPooling, type EmbedOptions, Pool } from './embeddings.ts';
import { Sampler } from './sampler.ts';
import { StopMatcher } from './stop.ts';
import type { FinishReason, GeneratedToken, GenerateOptions, GenerationStats, ModelInfo } from './types.ts';
import { WeightLoader } from './weights.ts';

export interface LoadOptions {
  /**
   * Tokens the KV cache holds; defaults to the model's context length, capped at 4096 and, with
   * maxGpuBytes, at what fits the budget (ModelInfo.loadSummary says which).
   */
  contextLength?: number;
  /**
   * How the KV cache stores keys and values: 'f16' (default; half of 'f32', as llama.cpp's default),
   * 'q8_0' (ggml's 8-bit blocks of 32: about a quarter of f32; rows must be whole blocks) or 'f32'.
   */
  kvCache?: KvCacheType;
  /**
   * Most bytes of GPU memory the model may take (weights, KV cache, activations, staging). A model
   * that will not fit fails before allocating anything, with OUT_OF_MEMORY.
   */
  maxGpuBytes?: number;
  /**
   * On CPU adapters (SwiftShader), linears of quantized weights quantize their input to int8 per
   * block of 32, as llama.cpp's CPU backend does, and decode ~1.5x faster. Default true; false reads
   * activations as f32 there too (GPUs always do).
   */
  int8Activations?: boolean;
}

/** Tokens one prefill step takes; longer prompts are prefilled in chunks of this size. */
const PREFILL_CHUNK = 64;

/** One kernel's share of a decode step: how many dispatches it makes and their GPU time, per token. */
export interface KernelProfile {
  kernel: string;
  dispatches: number;
  ms: number;
}

/**
 * A loaded model on a GPU device: tokenizer, weights, KV cache and the generation loop. The same
 * class runs in a Web Worker, on a page, and in Node over Dawn. One generation at a time: the
 * Scheduler (scheduler.ts) queues the rest.
 *
 * @example
 * ```ts
 * import { Runtime, urlSource } from 'lantern';
 *
 * // On this thread, below the engine: token ids in, tokens out.
 * const runtime = await Runtime.load(navigator.gpu, await urlSource('/models/model.gguf'));
 * for await (const token of runtime.generate(runtime.encode('Once upon a time'), { maxTokens: 16, temperature: 0 })) console.log(token.text);
 * ```
 */
export class Runtime {
  private _lastStats: GenerationStats | undefined;
  private busy = false;
  /** The token ids whose keys and values the KV cache holds, at positions 0..length-1. */
  private cachedIds: number[] = [];
  /** The oldest position whose keys and values the sliding-window layers' rings still hold (Forward.kv.ring). */
  private ringFrom = 0;
  private lostError: LanternError | undefined;
  private _weightBytesPerToken = 0;
  /** The pooling the file declares ({arch}.pooling_type), checked when a text is embedded. */
  private declaredPooling: () => EmbeddingPooling = () => 'mean';
  /** Whether dispose() destroys the device: false on a device the caller keeps (Runtime.load on a GpuContext). */
  private ownsDevice = true;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly forward: Forward,
    readonly tokenizer: Tokenizer,
    readonly info: ModelInfo,
    /** The model's own tokenizer.chat_template, if it has one. */
    readonly chatTemplate: string | undefined,
  ) {
    void gpu.lost.then((error) => (this.lostError = error));
  }

  /**
   * Loads a model on a new device of `gpu`, or on `gpu`'s device when given a GpuContext that the
   * caller keeps across models (the CLI's runner page): that model reuses the pipelines earlier ones
   * compiled, and its dispose() frees its buffers but leaves the device.
   */
  static async load(gpu: GPU | GpuContext | undefined, source: ByteSource, options: LoadOptions = {}): Promise<Runtime> {
    const file = await readGGUF(source);
    const { family, config } = modelConfig(file);
    const tokenizer = tokenizerFromGGUF(file);
    // The default is f16; a model with heads of an odd size (none known) keeps f32.
    const kvCache = options.kvCache ?? (kvCacheFits('f16', config.headDim) ? 'f16' : 'f32');
    if (kvCache !== 'f32' && kvCache !== 'f16' && kvCache !== 'q8_0') {
      throw new LanternError('BAD_ARGUMENT', `kvCache must be 'f32', 'f16' or 'q8_0', not ${String(options.kvCache)}.`);
    }
    if (!kvCacheFits(kvCache, config.headDim)) {
      throw new LanternError('BAD_ARGUMENT', `This model's attention heads hold ${config.headDim} values, which a ${kvCache} KV cache cannot store (${kvCache === 'q8_0' ? 'Q8_0 needs whole blocks of 32 per head, as llama.cpp does' : 'f16 pairs need an even count'}); load it with kvCache 'f16' or 'f32'.`, { kvCache, headDim: config.headDim });
    }
    const { maxGpuBytes } = options;
    if (maxGpuBytes !== undefined && !(maxGpuBytes > 0)) throw new LanternError('BAD_ARGUMENT', `maxGpuBytes must be a number of bytes > 0, not ${maxGpuBytes}.`);
    if (options.contextLength !== undefined && !(options.contextLength >= 1)) throw new LanternError('BAD_ARGUMENT', `contextLength must be at least 1, not ${options.contextLength}.`);
    const kept = gpu !== undefined && 'device' in gpu;
    const context = kept ? shareGpu(gpu) : await acquireGpu(gpu);
    let forward: Forward;
    let loadSummary: string;
    try {
      const chosen = await chooseContext(family, config, file, options, kvCache, context.cpuAdapter);
      loadSummary = chosen.summary;
      const weights = new WeightLoader(context, source, file);
      forward = await Forward.create(context, family, config, file, weights, chosen.contextLength, Math.min(PREFILL_CHUNK, chosen.contextLength), {
        int8Activations: options.int8Activations, kvCache, maxGpuBytes,
      });
      await forward.finish();
    } catch (e) {
      if (kept) context.memory.destroyAll();
      else context.device.destroy();
      throw e;
    }
    const contextLength = forward.contextLength;
    const bytes = context.memory.bytes();
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    loadSummary += `; ${kvCache} KV cache ${mib(bytes.kvCache)}; GPU memory ${mib(bytes.total)} (weights ${mib(bytes.weights)}, activations ${mib(bytes.activations)}, staging ${mib(bytes.staging)})`;
    const chatTemplate = chatTemplateOf(file);
    const info: ModelInfo = {
      architecture: config.architecture,
      name: config.name,
      contextLength,
      vocabSize: config.vocabSize,
      adapter: context.adapterName,
      shaderF16: context.shaderF16,
      int8Activations: forward.int8Activations,
      kvCache,
      kvBytes: forward.kv.bytes,
      kvBytesPerToken: forward.kv.bytesPerToken,
      loadSummary,
      hasChatTemplate: chatTemplate !== undefined,
      toolCallFormat: chatTemplate === undefined ? undefined : toolCallFormatOf(chatTemplate),
    };
    const runtime = new Runtime(context, forward, tokenizer, info, chatTemplate);
    runtime._weightBytesPerToken = weightBytesPerToken(file.tensors);
    runtime.declaredPooling = declaredPooling(file);
    runtime.ownsDevice = !kept;
    return runtime;
  }

  /** Tokenizes text as the model's own settings say (BOS where the model adds it, when addSpecial). */
  encode(text: string, addSpecial = true): number[] {
    return this.tokenizer.encode(text, { addSpecial, parseSpecial: false });
  }

  /** Prompt ids for a conversation, with the model's chat template or `template` (NO_CHAT_TEMPLATE when neither), offering `tools`. */
  encodeChat(messages: readonly ChatMessage[], template?: string, tools?: readonly ChatTool[]): number[] {
    return chatPromptIds(this.tokenizer, this.chatTemplate, messages, template, { tools });
  }

  /** Figures of the last generation, set when its iterator ends (also when it was stopped early). */
  get lastStats(): GenerationStats | undefined {
    return this._lastStats;
  }

  /** Resolves with DEVICE_LOST when the GPU device goes away; the runtime is unusable afterwards. */
  get lost(): Promise<LanternError> {
    return this.gpu.lost;
  }

  /** The device this runtime runs on, read-only, for measurements (bench.ts). */
  get gpuContext(): GpuContext {
    return this.gpu;
  }

  /**
   * The GPU memory this model holds now, by category: weights, KV cache, activations (with the
   * kernels' scratch: uniforms, RoPE tables, int8 copies) and staging (buffers read back to the host).
   */
  memory(): GpuBytes {
    return this.gpu.memory.bytes();
  }

  /** Bytes of weights one decode step reads (bench.ts weightBytesPerToken). */
  get weightBytesPerToken(): number {
    return this._weightBytesPerToken;
  }

  /**
   * Streams generated tokens after the prompt. Keys and values of the longest prefix this prompt
   * shares with what the KV cache holds are reused; only the rest is prefilled, in chunks, and an
   * abort of `signal` lands between chunks and between tokens (finishReason "abort"). Greedy
   * sampling with no bias or penalty keeps the logits on the GPU and reads back one id per token.
   * Ends at an end-of-generation token (not yielded) or a stop string ("stop"), or at maxTokens or
   * a full context ("length"; with contextOverflow 'shift' the context is shifted instead and generation goes on).
   */
  async *generate(promptIds: number[], options: GenerateOptions = {}, signal?: AbortSignal): AsyncGenerator<GeneratedToken> {
    const shift = this.contextOverflow(promptIds, options);
    this.checkPrompt(promptIds, shift !== undefined);
    if (shift && promptIds.length > this.info.contextLength) promptIds = this.fitPrompt(promptIds, shift.keep);
    const sampler = new Sampler(options);
    const constraint = constraintFor(this.tokenizer, options); // before any token: schema and grammar errors come first
    const maxTokens = options.maxTokens ?? Infinity;
    if (!(maxTokens >= 1)) throw new LanternError('BAD_ARGUMENT', `maxTokens must be at least 1, not ${options.maxTokens}.`);
    const stops = (typeof options.stop === 'string' ? [options.stop] : options.stop ?? []).filter((s) => s !== '');
    checkLogprobs(options.logprobs);
    const logprobs = options.logprobs;

    this.enter();
    let finishReason: FinishReason = 'abort'; // unless the loop reaches a natural end
    let decodeMs = 0;
    let decodeSteps = 0;
    const reused = this.reusablePrefix(promptIds);
    const stats: GenerationStats = {
      promptTokens: promptIds.length,
      cachedTokens: reused,
      prefilledTokens: promptIds.length - reused,
      generatedTokens: 0,
      prefillTokensPerSecond: 0,
      decodeTokensPerSecond: 0,
      finishReason,
      ...(shift ? { contextShifts: 0 } : {}),
    };
    try {
      const history = promptIds.slice(); // what the penalties look at
      const t0 = performance.now();
      let next = await this.run(promptIds.slice(reused), reused, sampler, history, signal, { step: 'prefill' }, constraint, logprobs !== undefined);
      stats.prefillTokensPerSecond = stats.prefilledTokens / ((performance.now() - t0) / 1000);
      if (next === undefined) return;
      const decoder = this.tokenizer.decoder();
      const stop = new StopMatcher(stops);
      let pos = promptIds.length;
      for (;;) {
        const { id, logits } = next;
        if (this.tokenizer.isEndOfGeneration(id)) {
          finishReason = 'stop';
          break;
        }
        stats.generatedTokens++;
        history.push(id);
        const visible = stop.push(decoder.push(id));
        yield logits ? { id, text: visible.text, ...stepLogprobs(logits, id, logprobs!, this.tokenizer) } : { id, text: visible.text };
        if (visible.stopped) {
          finishReason = 'stop';
          return;
        }
        if (stats.generatedTokens >= maxTokens || (pos >= this.info.contextLength && !shift)) {
          finishReason = 'length';
          break;
        }
        if (signal?.aborted) return;
        const ts = performance.now();
        let tokens = [id];
        if (pos >= this.info.contextLength) {
          const room = await this.shiftContext(shift!.keep);
          tokens = [...room.refill, id];
          pos = room.from;
          stats.contextShifts!++;
        }
        const step = await this.run(tokens, pos, sampler, history, signal, { step: 'decode', token: stats.generatedTokens + 1 }, constraint, logprobs !== undefined);
        if (step === undefined) return;
        next = step;
        decodeMs += performance.now() - ts;
        decodeSteps++;
        pos += tokens.length;
      }
      const rest = stop.push(decoder.flush());
      const text = rest.text + stop.flush();
      if (text) yield { id: -1, text };
    } catch (e) {
      this.cachedIds = []; // what the cache holds is unknown now
      throw await this.explain(e);
    } finally {
      stats.finishReason = finishReason;
      stats.decodeTokensPerSecond = decodeMs > 0 ? decodeSteps / (decodeMs / 1000) : 0;
      if (constraint && constraint.msPerToken.length > 0) stats.maskMs = { median: quantile(constraint.msPerToken, 0.5), p99: quantile(constraint.msPerToken, 0.99) };
      this._lastStats = stats;
      this.busy = false;
    }
  }

  /** Next-token logits after the last prompt id ([n_vocab] f32), reusing a cached prefix as generate does. */
  async logits(promptIds: number[]): Promise<Float32Array> {
    this.checkPrompt(promptIds);
    this.enter();
    try {
      const reused = this.reusablePrefix(promptIds);
      const last = (await this.prefillAllButLast(promptIds.slice(reused), reused))!;
      const logits = await this.forward.step(last.chunk, reused + last.start, 'logits');
      this.wrote(last.chunk, reused + last.start);
      return logits;
    } catch (e) {
      this.cachedIds = [];
      throw await this.explain(numericErrorAt(e, { step: 'prefill' }));
    } finally {
      this.busy = false;
    }
  }

  /**
   * How likely the model finds each next token of `ids`: entry i is log p(ids[from + i + 1] |
   * ids[0 .. from + i]), for positions from .. length − 2 (what perplexity scores). Every position's
   * logits are read back ([chunk, vocab] per prefill chunk, Forward.stepRows) and the log-softmax is
   * taken here in double, as llama.cpp's perplexity does: exact, with no kernel to add, and only
   * length − 1 − from numbers leave the runtime. A cached prefix up to `from` is reused as generate
   * reuses one; the last id is only predicted, never run. `onRows`, where given, sees each chunk's
   * logits before they are dropped ([rows, vocab] f32, the first of them position from + `row`):
   * what needs whole distributions, such as the KL divergence from another model, reads them there.
   */
  async tokenLogProbs(ids: number[], from = 0, onRows?: (logits: Float32Array, row: number) => void): Promise<Float64Array> {
    this.checkPrompt(ids);
    if (!Number.isInteger(from) || from < 0 || from > ids.length - 2) {
      throw new LanternError('BAD_ARGUMENT', `tokenLogProbs scores the positions from "from" to the one before the last of ${ids.length} ids: give at least 2 ids and a whole number from 0 to ${ids.length - 2}, not ${from}.`);
    }
    this.enter();
    try {
      const reused = this.reusablePrefix(ids, from);
      this.cachedIds.length = reused;
      const run = ids.slice(0, -1); // [length − 1]: the last id is only predicted
      const size = this.forward.maxBatch;
      for (let start = reused; start < from; start += size) {
        const chunk = run.slice(start, Math.min(start + size, from));
        await this.forward.step(chunk, start, 'none');
        this.wrote(chunk, start);
      }
      const vocab = this.info.vocabSize;
      const logProbs = new Float64Array(run.length - from); // [length − 1 − from]
      for (let start = from; start < run.length; start += size) {
        const chunk = run.slice(start, start + size);
        const logits = await this.forward.stepRows(chunk, start); // [chunk, vocab]
        this.wrote(chunk, start);
        onRows?.(logits, start - from);
        for (let r = 0; r < chunk.length; r++) logProbs[start - from + r] = logSoftmaxAt(logits, r, vocab, ids[start + r + 1]);
      }
      return logProbs;
    } catch (e) {
      this.cachedIds = [];
      throw await this.explain(numericErrorAt(e, { step: 'prefill' }));
    } finally {
      this.busy = false;
    }
  }

  /**
   * The embedding of a text's token ids ([n_embd] f32, L2 norm 1): the final hidden states, after
   * the output norm and before the output projection, pooled as the model declares
   * ({arch}.pooling_type: the mean, the first token's or the last token's; the mean where it
   * declares none, as a chat model does: any model embeds, as well as it happens to), or as
   * `options.pooling` says. The ids are run through the KV cache like a prompt and stay there as
   * its cached prefix; 'last' reuses a cached prefix, the others run every token (they read each
   * one's state). An abort of `signal` lands between chunks, as ABORTED.
   */
  async embed(ids: number[], options: EmbedOptions = {}, signal?: AbortSignal): Promise<Float32Array> {
    this.checkPrompt(ids);
    checkPooling(options.pooling);
    const pooling = options.pooling ?? this.declaredPooling();
    this.enter();
    try {
      const from = pooling === 'last' ? this.reusablePrefix(ids) : 0;
      this.cachedIds.length = from; // positions from `from` on are overwritten
      const pool = new Pool(pooling, this.forward.config.nEmbd, ids.length);
      const size = this.forward.maxBatch;
      for (let start = from; start < ids.length; start += size) {
        if (signal?.aborted) throw new LanternError('ABORTED', 'The embedding was aborted before it was done; ask again for it.');
        const chunk = ids.slice(start, start + size);
        if (pool.needs(start, chunk.length)) pool.add(await this.forward.stepHidden(chunk, start), start);
        else await this.forward.step(chunk, start, 'none');
        this.wrote(chunk, start);
      }
      return pool.vector();
    } catch (e) {
      this.cachedIds = [];
      throw await this.explain(e);
    } finally {
      this.busy = false;
    }
  }

  dispose(): void {
    this.cachedIds = [];
    this.forward.destroy();
    if (this.ownsDevice) this.gpu.device.destroy();
    else this.gpu.memory.destroyAll();
  }

  /**
   * Runs `tokens` from position pos0 (prefill chunks, then the last chunk with a readback) and
   * picks the next id; undefined when `signal` aborted between chunks. `at` names the step in a
   * NUMERIC_ERROR. With `withLogits` the [n_vocab] logits are read back and returned with the id.
   */
  private async run(
    tokens: number[], pos0: number, sampler: Sampler, history: readonly number[], signal: AbortSignal | undefined, at: NumericStep, constraint: TokenConstraint | undefined, withLogits: boolean,
  ): Promise<{ id: number; logits?: Float32Array } | undefined> {
    try {
      return await this.runStep(tokens, pos0, sampler, history, signal, constraint, withLogits);
    } catch (e) {
      throw numericErrorAt(e, at);
    }
  }

  private async runStep(
    tokens: number[], pos0: number, sampler: Sampler, history: readonly number[], signal: AbortSignal | undefined, constraint: TokenConstraint | undefined, withLogits: boolean,
  ): Promise<{ id: number; logits?: Float32Array } | undefined> {
    const last = await this.prefillAllButLast(tokens, pos0, signal);
    if (last === undefined) return undefined;
    const pos = pos0 + last.start;
    let id: number;
    let logits: Float32Array | undefined;
    const k = sampler.topKOnly;
    // A grammar's mask is uploaded and applied on the GPU before argmax and top-k, so constrained
    // greedy still reads back one id; the full-logits path applies it here, on the CPU.
    const mask = constraint?.mask();
    if (withLogits) {
      // Log-probabilities need the whole distribution; the same logits are sampled from.
      logits = await this.forward.step(last.chunk, pos, 'logits');
      id = sampler.sample(logits, history, mask);
    } else if (sampler.gpuGreedy) id = await this.forward.step(last.chunk, pos, 'argmax', mask);
    else if (k !== undefined && k <= TOPK_MAX && k < this.info.vocabSize) {
      // Only k candidates come back from the GPU, not the [n_vocab] logits.
      const top = await this.forward.step(last.chunk, pos, 'topk', k, mask);
      id = sampler.sampleTopK(top.ids, top.logits);
    } else id = sampler.sample(await this.forward.step(last.chunk, pos, 'logits'), history, mask);
    constraint?.advance(id);
    this.wrote(last.chunk, pos);
    return { id, logits: withLogits ? logits : undefined };
  }

  /**
   * How much of the cached prefix this prompt shares can be kept: all of it but the last prompt
   * token (whose logits are needed), or at most `most` tokens, unless a sliding-window layer's ring has since overwritten
   * keys that the first new token's window still reaches; then none, and the prompt is prefilled again.
   */
  private reusablePrefix(promptIds: readonly number[], most = promptIds.length - 1): number {
    const reused = Math.min(commonPrefixLength(this.cachedIds, promptIds), most);
    const ring = this.forward.kv.ring;
    return ring && reused > 0 && Math.max(0, reused - ring.window + 1) < this.ringFrom ? 0 : reused;
  }

  /** Positions pos0.. now hold `tokens`; a ring keeps only its last rows, so older positions may be gone from it. */
  private wrote(tokens: readonly number[], pos0: number): void {
    this.cachedIds.push(...tokens);
    const ring = this.forward.kv.ring;
    if (ring) this.ringFrom = Math.max(pos0 === 0 ? 0 : this.ringFrom, pos0 + tokens.length - ring.rows);
  }

  /** Prefills all full chunks but the last; returns the last chunk, or undefined when aborted. */
  private async prefillAllButLast(tokens: number[], pos0: number, signal?: AbortSignal): Promise<{ chunk: number[]; start: number } | undefined> {
    this.cachedIds.length = pos0; // positions from pos0 on are overwritten
    const size = this.forward.maxBatch;
    let start = 0;
    for (; start + size < tokens.length; start += size) {
      if (signal?.aborted) return undefined;
      const chunk = tokens.slice(start, start + size);
      await this.forward.step(chunk, pos0 + start, 'none');
      // Waiting for each chunk lets an abort (a message event) be seen before the next one.
      await this.forward.finish();
      this.wrote(chunk, pos0 + start);
    }
    if (signal?.aborted) return undefined;
    return { chunk: tokens.slice(start), start };
  }

  /** With contextOverflow 'shift', the tokens a shift keeps (GenerateOptions.keep, checked and capped); undefined with 'error'. */
  private contextOverflow(promptIds: readonly number[], options: GenerateOptions): { keep: number } | undefined {
    const { contextOverflow = 'error', keep } = options;
    if (contextOverflow !== 'error' && contextOverflow !== 'shift') {
      throw new LanternError('BAD_ARGUMENT', `contextOverflow must be 'error' or 'shift', not ${String(contextOverflow)}.`);
    }
    if (keep !== undefined && !(Number.isInteger(keep) && keep >= 0)) {
      throw new LanternError('BAD_ARGUMENT', `keep must be a whole number of tokens >= 0, not ${keep}; give the system prompt's token count, or leave it out.`);
    }
    if (contextOverflow === 'error') return undefined;
    const first = keep ?? (promptIds[0] !== undefined && promptIds[0] === this.tokenizer.bos ? 1 : 0);
    return { keep: Math.max(0, Math.min(first, this.info.contextLength - 4)) };
  }

  /** A prompt longer than the context, as a shift would leave it: its first `keep` tokens and its last (context − keep) / 2. */
  private fitPrompt(promptIds: number[], keep: number): number[] {
    const tail = Math.max(1, Math.floor((this.info.contextLength - keep) / 2));
    return [...promptIds.slice(0, keep), ...promptIds.slice(-tail)];
  }

  /**
   * Makes room in a full KV cache (contextOverflow 'shift'): the first `keep` tokens stay, the older
   * half (rounded up, so that no row is read after it is written) of the rest is dropped, and the
   * newer half moves down with its keys re-rotated on the GPU (Forward.shift). Where keys cannot be
   * moved (learned positions, sliding-window rings: Forward.canShift), the kept tokens are prefilled
   * again instead, from the first one the cache no longer holds: `refill` is what the caller runs
   * from position `from`, before the pending token.
   */
  private async shiftContext(keep: number): Promise<{ refill: number[]; from: number }> {
    const ids = this.cachedIds;
    const delta = Math.ceil((ids.length - keep) / 2);
    const kept = [...ids.slice(0, keep), ...ids.slice(keep + delta)];
    if (this.forward.canShift) {
      await this.forward.shift(keep, delta, ids.length);
      this.cachedIds = kept;
      return { refill: [], from: kept.length };
    }
    const reused = this.reusablePrefix(kept, kept.length);
    this.cachedIds.length = reused;
    return { refill: kept.slice(reused), from: reused };
  }

  /** A failure after the device was lost is reported as DEVICE_LOST, whatever the failing call said. */
  private async explain(e: unknown): Promise<unknown> {
    if (this.lostError) return this.lostError;
    if (e instanceof LanternError && e.code !== 'GPU_ERROR') return e;
    // device.lost settles a moment after the failed mapAsync that noticed it.
    const lost = await Promise.race([this.gpu.lost, new Promise<undefined>((r) => setTimeout(r, 100, undefined))]);
    return lost ?? e;
  }

  private checkPrompt(promptIds: number[], longFits = false): void {
    if (this.lostError) throw this.lostError;
    if (promptIds.length === 0) throw new LanternError('BAD_ARGUMENT', 'The prompt is empty; give at least one token (usually BOS).');
    const bad = promptIds.find((id) => !Number.isInteger(id) || id < 0 || id >= this.info.vocabSize);
    if (bad !== undefined) throw new LanternError('BAD_ARGUMENT', `Token id ${bad} is outside this model's vocabulary of ${this.info.vocabSize}.`);
    if (promptIds.length > this.info.contextLength && !longFits) {
      throw new LanternError(
        'CONTEXT_OVERFLOW',
        `The prompt has ${promptIds.length} tokens but the context holds ${this.info.contextLength}; shorten the prompt, load with a larger contextLength, or generate with contextOverflow 'shift'.`,
        { promptTokens: promptIds.length, contextLength: this.info.contextLength },
      );
    }
  }

  /**
   * GPU time per decode step by kernel (Forward.profileStep), the mean of `steps` steps at the
   * first free KV-cache position; undefined where the device has no timestamp-query. The cached
   * tokens stay valid: the steps write only the row after them.
   */
  async profileDecode(steps = 4): Promise<KernelProfile[] | undefined> {
    this.enter();
    try {
      const pos = Math.min(this.cachedIds.length, this.info.contextLength - 1);
      this.cachedIds = this.cachedIds.slice(0, pos);
      // Row `pos` of a ring is written: the position a ring's rows back from it is gone.
      const ring = this.forward.kv.ring;
      if (ring) this.ringFrom = Math.max(this.ringFrom, pos + 1 - ring.rows);
      const byName = new Map<string, KernelProfile>();
      for (let s = 0; s < steps; s++) {
        const times = await this.forward.profileStep(this.cachedIds.at(-1) ?? 0, pos);
        if (!times) return undefined;
        for (const { name, ms } of times) {
          const entry = byName.get(name) ?? { kernel: name, dispatches: 0, ms: 0 };
          entry.dispatches += 1 / steps;
          entry.ms += ms / steps;
          byName.set(name, entry);
        }
      }
      return [...byName.values()].sort((a, b) => b.ms - a.ms);
    } catch (e) {
      throw await this.explain(e);
    } finally {
      this.busy = false;
    }
  }

  /**
   * `steps` greedy decode steps at positions pos.. (bench.ts benchPositions), each feeding back the
   * last step's argmax, over whatever the KV cache holds below pos: a step's work does not depend on
   * the values it reads. The cached tokens from pos on are forgotten. Returns the bytes of KV rows
   * attention read at each step (Forward.kvBytesRead).
   */
  async decodeAt(pos: number, steps: number): Promise<number[]> {
    if (!(Number.isSafeInteger(pos) && pos >= 0 && Number.isSafeInteger(steps) && steps >= 1 && pos + steps <= this.info.contextLength)) {
      throw new LanternError('BAD_ARGUMENT', `decodeAt needs positions ${pos}..${pos + steps - 1} inside the context of ${this.info.contextLength}; choose an earlier position, fewer steps or a longer context.`);
    }
    this.enter();
    try {
      this.cachedIds = this.cachedIds.slice(0, Math.min(pos, this.cachedIds.length));
      // The rings lose the rows these steps write.
      if (this.forward.kv.ring) this.ringFrom = Math.max(this.ringFrom, pos + steps - this.forward.kv.ring.rows);
      let id = this.cachedIds.at(-1) ?? 0;
      const read: number[] = [];
      for (let s = 0; s < steps; s++) {
        id = await this.forward.step([id], pos + s, 'argmax');
        read.push(this.forward.kvBytesRead(pos + s));
      }
      return read;
    } catch (e) {
      throw await this.explain(e);
    } finally {
      this.busy = false;
    }
  }

  private enter(): void {
    if (this.busy) throw new LanternError('BAD_ARGUMENT', 'This runtime is already generating; wait for it to finish or abort it first.');
    this.busy = true;
  }
}

/** The q-quantile of `values` (nearest rank). */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Contexts below this are not chosen to fit a budget (a smaller one must be asked for). */
const MIN_FITTED_CONTEXT = 256;

/**
 * The context the KV cache is allocated for, and a sentence saying why: as asked, or the model's
 * own capped at 4096 and, with maxGpuBytes, at the longest whose plan (forwardBytes) fits the budget.
 */
async function chooseContext(
  family: Family, config: ModelConfig, file: GGUFFile, options: LoadOptions, kvCache: KvCacheType, cpuAdapter: boolean,
): Promise<{ contextLength: number; summary: string }> {
  const own = config.contextLength;
  if (options.contextLength !== undefined) {
    const contextLength = Math.min(options.contextLength, own);
    return { contextLength, summary: `context ${contextLength} tokens (${contextLength < options.contextLength ? `the model's own; ${options.contextLength} asked` : 'as asked'})` };
  }
  const capped = Math.min(own, 4096);
  const why = capped < own ? `the model's own ${own}, capped at 4096` : "the model's own";
  const budget = options.maxGpuBytes;
  if (budget === undefined) return { contextLength: capped, summary: `context ${capped} tokens (${why})` };
  const int8 = cpuAdapter && options.int8Activations !== false;
  const plan = await planForward(family, { ...config, contextLength: capped }, file, Math.min(PREFILL_CHUNK, capped), kvCache);
  const fits = (n: number) => forwardBytes(plan, { ...config, contextLength: n }, Math.min(PREFILL_CHUNK, n), kvCache, int8).total <= budget;
  if (fits(capped)) return { contextLength: capped, summary: `context ${capped} tokens (${why}; fits maxGpuBytes)` };
  // The longest context that fits, down to MIN_FITTED_CONTEXT (below it Forward.create says OUT_OF_MEMORY).
  let lo = Math.min(MIN_FITTED_CONTEXT, capped), hi = capped;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return { contextLength: lo, summary: `context ${lo} tokens (${why}, and capped at ${lo} so that the KV cache fits maxGpuBytes ${budget})` };
}
