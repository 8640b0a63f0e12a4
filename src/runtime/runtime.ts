import { LanternError } from '../errors.ts';
import { acquireGpu, type GpuContext } from '../gpu/device.ts';
import { llamaConfig } from '../model/config.ts';
import { readGGUF } from '../model/gguf.ts';
import type { ByteSource } from '../storage/source.ts';
import { type Tokenizer, tokenizerFromGGUF } from '../model/tokenizer/index.ts';
import { LlamaForward } from './forward.ts';
import { sampleTemperature, seededRandom } from './sampler.ts';
import type { GeneratedToken, GenerateOptions, GenerationStats, ModelInfo } from './types.ts';
import { WeightLoader } from './weights.ts';

export interface LoadOptions {
  /** Tokens the KV cache holds; defaults to the model's context length, capped at 4096. */
  contextLength?: number;
}

/** Tokens one prefill step takes; longer prompts are prefilled in chunks of this size. */
const PREFILL_CHUNK = 64;

/**
 * A loaded model on a GPU device: tokenizer, weights, KV cache and the generation loop. The same
 * class runs in a Web Worker, on a page, and in Node over Dawn.
 */
export class Runtime {
  private _lastStats: GenerationStats | undefined;
  private busy = false;

  private constructor(
    private readonly gpu: GpuContext,
    private readonly forward: LlamaForward,
    readonly tokenizer: Tokenizer,
    readonly info: ModelInfo,
  ) {}

  static async load(gpu: GPU | undefined, source: ByteSource, options: LoadOptions = {}): Promise<Runtime> {
    const file = await readGGUF(source);
    const config = llamaConfig(file);
    const tokenizer = tokenizerFromGGUF(file);
    const context = await acquireGpu(gpu);
    const contextLength = Math.min(options.contextLength ?? Math.min(config.contextLength, 4096), config.contextLength);
    if (!(contextLength >= 1)) throw new LanternError('BAD_ARGUMENT', `contextLength must be at least 1, not ${options.contextLength}.`);
    const weights = new WeightLoader(context, source, file);
    let forward: LlamaForward;
    try {
      forward = await LlamaForward.create(context, config, weights, contextLength, Math.min(PREFILL_CHUNK, contextLength));
      await forward.finish();
    } catch (e) {
      context.device.destroy();
      throw e;
    }
    const info: ModelInfo = {
      architecture: config.architecture,
      name: config.name,
      contextLength,
      vocabSize: config.vocabSize,
      adapter: context.adapterName,
      shaderF16: context.shaderF16,
    };
    return new Runtime(context, forward, tokenizer, info);
  }

  /** Tokenizes text as the model's own settings say (BOS where the model adds it, when addSpecial). */
  encode(text: string, addSpecial = true): number[] {
    return this.tokenizer.encode(text, { addSpecial, parseSpecial: false });
  }

  get lastStats(): GenerationStats | undefined {
    return this._lastStats;
  }

  /**
   * Streams generated tokens after the prompt. Greedy (temperature 0) keeps the logits on the
   * GPU and reads back one id per token. Stops at an end-of-generation token (not yielded), at
   * maxTokens, or when the context is full.
   */
  async *generate(promptIds: number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    const maxTokens = options.maxTokens ?? 128;
    const temperature = options.temperature ?? 0;
    this.checkPrompt(promptIds);
    if (!(temperature >= 0)) throw new LanternError('BAD_ARGUMENT', `temperature must be 0 or more, not ${temperature}.`);
    const random = seededRandom(options.seed ?? Date.now());
    const next = async (tokens: number[], pos: number): Promise<number> => {
      if (temperature === 0) return this.prefill(tokens, pos, 'argmax');
      return sampleTemperature(await this.prefill(tokens, pos, 'logits'), temperature, random);
    };

    this.enter();
    let decodeMs = 0;
    let decodeSteps = 0;
    const stats: GenerationStats = { promptTokens: promptIds.length, generatedTokens: 0, prefillTokensPerSecond: 0, decodeTokensPerSecond: 0 };
    try {
      const decoder = this.tokenizer.decoder();
      const t0 = performance.now();
      let id = await next(promptIds, 0);
      const t1 = performance.now();
      stats.prefillTokensPerSecond = promptIds.length / ((t1 - t0) / 1000);
      let pos = promptIds.length;
      while (stats.generatedTokens < maxTokens && !this.tokenizer.isEndOfGeneration(id)) {
        stats.generatedTokens++;
        yield { id, text: decoder.push(id) };
        if (stats.generatedTokens >= maxTokens || pos >= this.info.contextLength) break;
        const ts = performance.now();
        id = await next([id], pos);
        decodeMs += performance.now() - ts;
        decodeSteps++;
        pos++;
      }
      const rest = decoder.flush();
      if (rest) yield { id: -1, text: rest };
    } finally {
      // Also when the caller stops early: a stopped run still reports its speed.
      stats.decodeTokensPerSecond = decodeMs > 0 ? decodeSteps / (decodeMs / 1000) : 0;
      this._lastStats = stats;
      this.busy = false;
    }
  }

  /** Next-token logits after the last prompt id. */
  async logits(promptIds: number[]): Promise<Float32Array> {
    this.checkPrompt(promptIds);
    this.enter();
    try {
      return await this.prefill(promptIds, 0, 'logits');
    } finally {
      this.busy = false;
    }
  }

  dispose(): void {
    this.forward.destroy();
    this.gpu.device.destroy();
  }

  /** Runs tokens from position pos0 in chunks; only the last chunk reads anything back. */
  private async prefill(tokens: number[], pos0: number, read: 'argmax'): Promise<number>;
  private async prefill(tokens: number[], pos0: number, read: 'logits'): Promise<Float32Array>;
  private async prefill(tokens: number[], pos0: number, read: 'argmax' | 'logits'): Promise<number | Float32Array> {
    const chunk = this.forward.maxBatch;
    let start = 0;
    for (; start + chunk < tokens.length; start += chunk) {
      await this.forward.step(tokens.slice(start, start + chunk), pos0 + start, 'none');
    }
    const rest = tokens.slice(start);
    return read === 'argmax' ? this.forward.step(rest, pos0 + start, 'argmax') : this.forward.step(rest, pos0 + start, 'logits');
  }

  private checkPrompt(promptIds: number[]): void {
    if (promptIds.length === 0) throw new LanternError('BAD_ARGUMENT', 'The prompt is empty; give at least one token (usually BOS).');
    const bad = promptIds.find((id) => !Number.isInteger(id) || id < 0 || id >= this.info.vocabSize);
    if (bad !== undefined) throw new LanternError('BAD_ARGUMENT', `Token id ${bad} is outside this model's vocabulary of ${this.info.vocabSize}.`);
    if (promptIds.length > this.info.contextLength) {
      throw new LanternError(
        'CONTEXT_OVERFLOW',
        `The prompt has ${promptIds.length} tokens but the context holds ${this.info.contextLength}; shorten the prompt or load with a larger contextLength.`,
        { promptTokens: promptIds.length, contextLength: this.info.contextLength },
      );
    }
  }

  private enter(): void {
    if (this.busy) throw new LanternError('BAD_ARGUMENT', 'This runtime is already generating; wait for it to finish or abort it first.');
    this.busy = true;
  }
}
