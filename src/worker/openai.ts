/**
 * OpenAI's chat completion shapes (the subset Lantern fills), so that code written against
 * OpenAI's SDK or WebLLM reads the same here.
 */
import type { ChatMessage } from '../runtime/chat.ts';
import type { ResponseFormat } from '../runtime/types.ts';

/** Why a choice ended. OpenAI's "stop" and "length", plus "abort" for a cancelled request. */
export type ChatFinishReason = 'stop' | 'length' | 'abort';

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

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  /** Unix time in seconds. */
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string };
    finish_reason: ChatFinishReason;
    logprobs: null;
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
    delta: { role?: 'assistant'; content?: string };
    finish_reason: ChatFinishReason | null;
    logprobs: null;
  }[];
  /** On the last chunk only. */
  usage?: CompletionUsage;
}
