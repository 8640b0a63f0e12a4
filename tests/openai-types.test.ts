import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionChunk as OpenAIChunk,
  ChatCompletionFunctionTool,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionNamedToolChoice,
  ChatCompletionToolMessageParam,
} from 'openai/resources/chat/completions';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Engine, GenerateChunk, GenerationStats, ToolCall } from '../src/index.ts';


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
