/** The runtime's surface, shared by the in-thread runtime, the Web Worker and the CLI. */
import type { ResponseFormat } from './grammar/index.ts';
import type { SamplingOptions } from './sampler.ts';
import type { ToolCallFormat } from './tool-format.ts';

export type { SamplingOptions } from './sampler.ts';
export type { ResponseFormat } from './grammar/index.ts';

export interface ModelInfo {
  architecture: string;
  name: string;
  /** Context length the KV cache was allocated for. */
  contextLength: number;
  vocabSize: number;
  /** Human-readable adapter description, e.g. "swiftshader (Google)". */
  adapter: string;
  shaderF16: boolean;
  /** Whether linears of quantized weights quantize their input to int8 here (CPU adapters, unless LoadOptions turned it off). */
  int8Activations: boolean;
  /** How the KV cache stores keys and values (LoadOptions.kvCache). */
  kvCache: 'f32' | 'f16' | 'q8_0';
  /** Bytes of the KV cache as allocated (sliding-window layers keep a ring of their window). */
  kvBytes: number;
  /** KV-cache bytes per token of context (the layers that keep the whole context). */
  kvBytesPerToken: number;
  /** The load in a line: the context and why it is that long, the KV cache's form and size, and the GPU memory by category. */
  loadSummary: string;
  /** Whether the GGUF file carries tokenizer.chat_template (chat needs one, or a chatTemplate option). */
  hasChatTemplate: boolean;
  /** The tool-call syntax of the model's chat template (src/runtime/tools.ts); undefined when it takes no tools. */
  toolCallFormat?: ToolCallFormat;
}

/** Plain data, so that it crosses the worker boundary as it is. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate; default: until the context is full. */
  maxTokens?: number;
  /** Generation ends before any of these strings; they may span tokens and are never returned. */
  stop?: string | string[];
  /**
   * A GBNF grammar (llama.cpp's format) the output must follow: only tokens that keep the text a
   * prefix of the grammar's language are sampled, and end of generation only once it is complete.
   */
  grammar?: string;
  /**
   * OpenAI's response_format: `json_object` (any JSON object) or `json_schema` (the subset in the
   * README; other keywords fail with UNSUPPORTED_SCHEMA before any token). A reply that ends with
   * finishReason "stop" parses and validates; "length" can still cut it short.
   */
  responseFormat?: ResponseFormat;
  /**
   * Log-probabilities: each generated token comes with its own (GeneratedToken.logprob) and those of
   * the `logprobs` most likely tokens at that step (0..20; topLogprobs). They are taken from the
   * model's full distribution at temperature 1, the log-softmax of the raw logits before bias,
   * penalties, temperature, top-k/p and any grammar mask (as OpenAI reports them), in double.
   * Asking for them reads the [n_vocab] logits back every step; left out, greedy reads back one id.
   */
  logprobs?: number;
  /**
   * What a full context does: 'error' (default) ends the generation with finishReason "length";
   * 'shift' makes room and goes on, as llama.cpp's context shift: the first `keep` tokens stay, the
   * older half (rounded up) of the rest is dropped, and the newer half moves down, its keys
   * re-rotated (RoPE models) or prefilled again (learned positions: GPT-2, GPT-Neo; sliding-window
   * rings: Gemma). With 'shift', a prompt longer than the context keeps its first `keep` tokens and
   * its last (context − keep) / 2, the state a shift leaves.
   */
  contextOverflow?: 'error' | 'shift';
  /**
   * Tokens at the start that a context shift never drops. Default: the system prompt's tokens in a
   * chat through the engine, otherwise 1 where the prompt starts with BOS (the BOS), else 0. At most
   * the context length − 4, as llama.cpp caps n_keep.
   */
  keep?: number;
}

/** A token and its log-probability (natural log), with the bytes it stands for in text. */
export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The token's bytes (UTF-8 pieces; a token may hold part of a character); a control token's are its spelling. */
  bytes: number[];
}

export interface GeneratedToken {
  /** The sampled token id, or -1 for text released at the end (a held-back partial stop string, or bytes of an unfinished character). */
  id: number;
  /** Text this token makes visible; '' while a UTF-8 character or a possible stop string is incomplete. */
  text: string;
  /** With GenerateOptions.logprobs: log p of this token (natural log, temperature 1; see there). */
  logprob?: number;
  /** With GenerateOptions.logprobs: the token's bytes, as in TokenLogprob. */
  bytes?: number[];
  /** With GenerateOptions.logprobs: the most likely tokens at this step, best first (ties: lower id first). */
  topLogprobs?: TokenLogprob[];
}

/** Why a generation ended: an end-of-generation token or stop string, the token or context limit, or an abort. */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  /** Prompt tokens, counting those that were already in the KV cache. */
  promptTokens: number;
  /** Prompt tokens whose keys and values were reused from the previous request (a shared prefix). */
  cachedTokens: number;
  /** Prompt tokens that were run through the model: promptTokens - cachedTokens. */
  prefilledTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  finishReason: FinishReason;
  /** With a grammar or JSON response format: the CPU time of each token's mask and grammar step, median and 99th percentile, in ms. */
  maskMs?: { median: number; p99: number };
  /** Context shifts during the generation (contextOverflow 'shift'); absent where none could happen. */
  contextShifts?: number;
}
