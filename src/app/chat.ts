import type { ChatMessage } from '../runtime/chat.ts';
import type { FinishReason, ModelInfo } from '../runtime/types.ts';
import type { Engine } from '../worker/client.ts';

/** One reply: the conversation goes to the model, text comes back a chunk at a time. */

export interface ReplySettings {
  systemPrompt: string;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  /** Undefined: a new random draw per reply. */
  seed: number | undefined;
}

export interface ReplyStats {
  promptTokens: number;
  generatedTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  finishReason: FinishReason;
}

export interface ReplyCallbacks {
  /** Visible text and how many tokens produced it so far. */
  onText(text: string, generatedTokens: number): void;
}

/**
 * A model without a chat template (stories260K) cannot follow a conversation: it continues the
 * last user message as plain text, and the system prompt and earlier turns are not sent.
 */
export function usesPlainContinuation(info: ModelInfo): boolean {
  return !info.hasChatTemplate;
}

export async function streamReply(
  engine: Engine,
  info: ModelInfo,
  conversation: readonly ChatMessage[],
  settings: ReplySettings,
  signal: AbortSignal,
  callbacks: ReplyCallbacks,
): Promise<ReplyStats> {
  const sampling = { temperature: settings.temperature, topP: settings.topP, topK: settings.topK, seed: settings.seed };
  if (usesPlainContinuation(info)) {
    const lastUser = [...conversation].reverse().find((m) => m.role === 'user');
    const stream = engine.generate(lastUser?.content ?? '', { ...sampling, maxTokens: settings.maxTokens, signal });
    let generated = 0;
    for await (const chunk of stream) {
      generated += chunk.tokens.length;
      callbacks.onText(chunk.text, generated);
    }
    return stream.result;
  }

  const messages: ChatMessage[] = settings.systemPrompt.trim()
    ? [{ role: 'system', content: settings.systemPrompt }, ...conversation]
    : [...conversation];
  // The chat API reports token counts but not speeds; they are measured here, from the first
  // streamed text (prefill done) to the last (decode done).
  const started = performance.now();
  let firstTextAt: number | undefined;
  let lastTextAt = started;
  let chunks = 0;
  const stream = await engine.chat.completions.create({
    messages,
    stream: true,
    temperature: sampling.temperature,
    top_p: sampling.topP,
    top_k: sampling.topK,
    seed: sampling.seed,
    max_tokens: settings.maxTokens,
    signal,
  });
  let promptTokens = 0;
  let generatedTokens = 0;
  let finishReason: FinishReason = 'stop';
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    const text = choice?.delta.content;
    if (text) {
      const now = performance.now();
      firstTextAt ??= now;
      lastTextAt = now;
      chunks++;
      callbacks.onText(text, chunks);
    }
    if (choice?.finish_reason && choice.finish_reason !== 'tool_calls') finishReason = choice.finish_reason; // the app offers no tools
    if (chunk.usage) {
      promptTokens = chunk.usage.prompt_tokens;
      generatedTokens = chunk.usage.completion_tokens;
    }
  }
  const prefillSeconds = ((firstTextAt ?? lastTextAt) - started) / 1000;
  const decodeSeconds = (lastTextAt - (firstTextAt ?? lastTextAt)) / 1000;
  return {
    promptTokens,
    generatedTokens,
    prefillTokensPerSecond: prefillSeconds > 0 ? promptTokens / prefillSeconds : 0,
    decodeTokensPerSecond: decodeSeconds > 0 ? Math.max(0, generatedTokens - 1) / decodeSeconds : 0,
    finishReason,
  };
}
