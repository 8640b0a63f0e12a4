import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionChunk as OpenAIChunk,
  ChatCompletionFunctionTool,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionNamedToolChoice,
  ChatCompletionToolMessageParam,
} from 'openai/resources/chat/completions';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingRequest, Engine, GenerateChunk, GenerationStats, ToolCall } from '../src/index.ts';

/**
 * The engine's OpenAI shapes, checked by the compiler (npm test runs tsc over tests/): code written
 * against OpenAI's chat completions reads the same fields here.
 */

async function usesEngine(engine: Engine): Promise<void> {
  const messages: ChatCompletionRequest['messages'] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];

  const completion = await engine.chat.completions.create({ messages, max_tokens: 8, temperature: 0.7, top_p: 0.9, seed: 1 });
  expectTypeOf(completion).toEqualTypeOf<ChatCompletion>();
  expectTypeOf(completion.object).toEqualTypeOf<'chat.completion'>();
  expectTypeOf(completion.choices[0].message.content).toEqualTypeOf<string | null>();
  expectTypeOf(completion.choices[0].finish_reason).toEqualTypeOf<'stop' | 'length' | 'tool_calls' | 'abort'>();
  expectTypeOf(completion.usage.total_tokens).toEqualTypeOf<number>();

  const stream = await engine.chat.completions.create({ messages, stream: true, stop: ['\n'], logit_bias: { '42': -100 } });
  expectTypeOf(stream).toEqualTypeOf<AsyncIterable<ChatCompletionChunk>>();
  for await (const chunk of stream) {
    expectTypeOf(chunk.object).toEqualTypeOf<'chat.completion.chunk'>();
    expectTypeOf(chunk.choices[0].delta.content).toEqualTypeOf<string | undefined>();
    expectTypeOf(chunk.choices[0].finish_reason).toEqualTypeOf<'stop' | 'length' | 'tool_calls' | 'abort' | null>();
  }

  const generation = engine.generate('Once', { maxTokens: 4, topK: 40, minP: 0.05, signal: new AbortController().signal });
  for await (const chunk of generation) expectTypeOf(chunk).toEqualTypeOf<GenerateChunk>();
  expectTypeOf(generation.result).toEqualTypeOf<Promise<GenerationStats>>();

  // @ts-expect-error a tool message answers a call: it needs the call's tool_call_id
  await engine.chat.completions.create({ messages: [{ role: 'tool', content: 'x' }] });
}

/**
 * Tool calls against the official SDK's types: a tool and a named tool_choice typed by `openai` go
 * into Lantern's request as they are; Lantern's calls, streamed call deltas and reply message are
 * what OpenAI's types describe; the reply and a tool result go back into the next request.
 */
async function usesTools(engine: Engine, tool: ChatCompletionFunctionTool, named: ChatCompletionNamedToolChoice): Promise<void> {
  const messages: ChatCompletionRequest['messages'] = [{ role: 'user', content: 'Weather in Paris?' }];
  const completion = await engine.chat.completions.create({ messages, tools: [tool], tool_choice: named, parallel_tool_calls: false });
  const message = completion.choices[0].message;
  expectTypeOf(message.tool_calls).toEqualTypeOf<ToolCall[] | undefined>();
  expectTypeOf<ToolCall>().toExtend<ChatCompletionMessageFunctionToolCall>();
  expectTypeOf(message).toExtend<ChatCompletionAssistantMessageParam>();
  const result = { role: 'tool', tool_call_id: message.tool_calls![0].id, content: '{"temperature": 22}' } as const;
  expectTypeOf(result).toExtend<ChatCompletionToolMessageParam>();
  await engine.chat.completions.create({ messages: [...messages, message, result], tools: [tool], tool_choice: 'none' });
  await engine.chat.completions.create({ messages, tools: [tool], tool_choice: 'required' });

  const stream = await engine.chat.completions.create({ messages, tools: [tool], stream: true });
  for await (const chunk of stream) {
    expectTypeOf(chunk.choices[0].delta).toExtend<OpenAIChunk.Choice.Delta>();
    expectTypeOf(chunk.choices[0].delta.tool_calls).toExtend<OpenAIChunk.Choice.Delta.ToolCall[] | undefined>();
  }
}

describe('OpenAI shapes', () => {
  it('type-check (the compiler is the test; this only keeps the function referenced)', () => {
    expect(typeof usesEngine).toBe('function');
    expect(typeof usesTools).toBe('function');
  });
});

/**
 * Log-probabilities and embeddings against the official SDK's types (the `openai` package): what
 * the engine returns is assignable to what OpenAI's clients read.
 */
async function usesLogprobsAndEmbeddings(engine: Engine): Promise<void> {
  const messages: ChatCompletionRequest['messages'] = [{ role: 'user', content: 'Hi' }];
  const completion = await engine.chat.completions.create({ messages, logprobs: true, top_logprobs: 5 });
  const logprobs: OpenAI.Chat.Completions.ChatCompletion.Choice['logprobs'] = completion.choices[0].logprobs;
  const entry: OpenAI.Chat.Completions.ChatCompletionTokenLogprob | undefined = logprobs?.content?.[0];
  expectTypeOf(entry?.top_logprobs[0].bytes).toEqualTypeOf<number[] | null | undefined>();

  for await (const chunk of await engine.chat.completions.create({ messages, stream: true, logprobs: true })) {
    const streamed: OpenAI.Chat.Completions.ChatCompletionChunk.Choice['logprobs'] = chunk.choices[0].logprobs;
    void streamed;
  }

  const request: EmbeddingRequest = { input: ['one', 'two'], model: 'any', encoding_format: 'float' };
  const embeddings: OpenAI.Embeddings.CreateEmbeddingResponse = await engine.embeddings.create(request);
  const embedding: OpenAI.Embeddings.Embedding = embeddings.data[0];
  expectTypeOf(embedding.embedding).toEqualTypeOf<number[]>();
  // An OpenAI request body with a string input works as it is.
  const body = { input: 'one', model: 'text-embedding-3-small' } satisfies OpenAI.Embeddings.EmbeddingCreateParams;
  await engine.embeddings.create(body);

  // @ts-expect-error Lantern returns float arrays only
  await engine.embeddings.create({ input: 'one', encoding_format: 'base64' });
}

describe('OpenAI log-probability and embedding shapes', () => {
  it('type-check against the openai package (the compiler is the test)', () => {
    expect(typeof usesLogprobsAndEmbeddings).toBe('function');
  });
});
