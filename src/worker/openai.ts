/**
 * OpenAI's chat completion shapes (the subset Lantern fills), so that code written against
 * OpenAI's SDK or WebLLM reads the same here.
 */
import type { ChatMessage } from '../runtime/chat.ts';
import type { ChatTool, ToolCall, ToolChoice } from '../runtime/tool-format.ts';
import type { ResponseFormat } from '../runtime/types.ts';

export type { ChatTool, ToolCall, ToolChoice } from '../runtime/tool-format.ts';

/** Why a choice ended. OpenAI's "stop", "length" and "tool_calls", plus "abort" for a cancelled request. */
export type ChatFinishReason = 'stop' | 'length' | 'tool_calls' | 'abort';

/** One call's piece of a streamed reply: the first names the call (arguments ''), the next ones add arguments text. */
export interface ChatCompletionChunkToolCall {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

/** The body of `chat.completions.create`. Sampling fields beyond OpenAI's (top_k, min_p, repetition_penalty) are llama.cpp's. */
export interface ChatCompletionRequest {
  messages: ChatMessage[];
  /** true: resolve to an async iterable of ChatCompletionChunk; false (default): one ChatCompletion. */
  stream?: boolean;
  /** Ignored: the engine runs the model it loaded. Accepted so OpenAI request bodies work as they are. */
  model?: string;
  max_tokens?: number;
  /** OpenAI's newer name for max_tokens. */
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  /** Token id (as a string, as OpenAI sends it) → bias added to its logit. */
  logit_bias?: Record<string, number>;
  seed?: number;
  stop?: string | string[];
  /** A Jinja chat template to use instead of the model's own (needed when the model has none). */
  chat_template?: string;
  /** `{ type: 'json_object' }` or `{ type: 'json_schema', json_schema: { name, schema, strict } }`: the reply is JSON that parses (and validates). */
  response_format?: ResponseFormat;
  /** A GBNF grammar (llama.cpp's format, as llama.cpp's server takes it) the reply must follow. */
  grammar?: string;
  /**
   * true: each choice carries `logprobs.content`, a log-probability per generated token (and a
   * stream chunk the entries of its tokens), from the model's full distribution at temperature 1:
   * the log-softmax of the raw logits, before bias, penalties, temperature and any grammar. Reading
   * the logits back each step makes greedy decoding a little slower; false (default): `logprobs: null`.
   */
  logprobs?: boolean | null;
  /** 0..20: how many of the most likely tokens each entry lists in `top_logprobs` (needs `logprobs: true`). */
  top_logprobs?: number | null;
  /**
   * Functions the model may call, shown to it through its chat template; a template without tool
   * calls gives NO_TOOL_SUPPORT (unless tool_choice is 'none'). Calls come back in
   * `message.tool_calls` with finish_reason "tool_calls".
   */
  tools?: ChatTool[];
  /** 'auto' (default): the model decides; 'none': no tools are shown; 'required' or { type: 'function', function: { name } }: a call is forced, its arguments following `parameters`. */
  tool_choice?: ToolChoice;
  /** With a forced call, whether the reply may hold several (default true). */
  parallel_tool_calls?: boolean;
  /** Lantern's: 'shift' goes on past a full context, dropping old tokens (GenerateOptions.contextOverflow); default 'error' (finish_reason "length"). */
  context_overflow?: 'error' | 'shift';
  /** Tokens a context shift never drops (llama.cpp's server name); default: the system prompt. */
  n_keep?: number;
  /** Cancels the request; a stream then ends with finish_reason "abort". */
  signal?: AbortSignal;
  /** Your own request id, for engine.abort(id); one is made up when left out. */
  request_id?: string;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Lantern's addition: prompt tokens reused from the KV cache of the previous turn. */
  prompt_tokens_details?: { cached_tokens: number };
}

/** One generated token's log-probability (natural log) and the most likely tokens at its step, best first. */
export interface ChatCompletionTokenLogprob {
  /** The token's text: its bytes read as UTF-8 (a token holding part of a character shows U+FFFD; `bytes` is exact). */
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

/** A choice's log-probabilities: `content` per generated token (`refusal` is OpenAI's, always null here). */
export interface ChoiceLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  /** Unix time in seconds. */
  created: number;
  model: string;
  choices: {
    index: number;
    /** content is null when the reply is only tool calls. */
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] };
    finish_reason: ChatFinishReason;
    /** With `logprobs: true`; else null. */
    logprobs: ChoiceLogprobs | null;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string; tool_calls?: ChatCompletionChunkToolCall[] };
    finish_reason: ChatFinishReason | null;
    /** With `logprobs: true`: the entries of this chunk's tokens; else null. */
    logprobs: ChoiceLogprobs | null;
  }[];
  /** On the last chunk only. */
  usage?: CompletionUsage;
}

/** The body of `embeddings.create`: one text or several, each embedded alone (one after another). */
export interface EmbeddingRequest {
  input: string | string[];
  /** Ignored: the engine embeds with the model it loaded. Accepted so OpenAI request bodies work as they are. */
  model?: string;
  /** 'float' (default): number arrays. OpenAI's 'base64' is not offered. */
  encoding_format?: 'float';
  /** Cancels the request; it then rejects with ABORTED. */
  signal?: AbortSignal;
  /** Your own request id, for engine.abort(id); one is made up when left out. */
  request_id?: string;
}

/** One input's embedding: [n_embd], L2 norm 1. */
export interface Embedding {
  object: 'embedding';
  /** The input's position in `input`. */
  index: number;
  embedding: number[];
}

export interface EmbeddingResponse {
  object: 'list';
  data: Embedding[];
  model: string;
  /** Tokens of every input, BOS (and EOS, where the model adds it) included. */
  usage: { prompt_tokens: number; total_tokens: number };
}
