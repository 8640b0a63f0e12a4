import { describe, expect, expectTypeOf, it } from 'vitest';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Engine, GenerateChunk, GenerationStats } from '../src/index.ts';

/**
 * The engine's OpenAI shapes, checked by the compiler (npm test runs tsc over tests/): code written
 * against OpenAI's chat completions reads the same fields here.
 */

async function usesEngine(engine: Engine): Promise<void> {
  const messages: ChatCompletionRequest['messages'] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];

  const completion = await engine.chat.completions.create({ messages, max_tokens: 8, temperature: 0.7, top_p: 0.9, seed: 1 });
  expectTypeOf(completion).toEqualTypeOf<ChatCompletion>();
  expectTypeOf(completion.object).toEqualTypeOf<'chat.completion'>();
  expectTypeOf(completion.choices[0].message.content).toEqualTypeOf<string>();
  expectTypeOf(completion.choices[0].finish_reason).toEqualTypeOf<'stop' | 'length' | 'abort'>();
  expectTypeOf(completion.usage.total_tokens).toEqualTypeOf<number>();

  const stream = await engine.chat.completions.create({ messages, stream: true, stop: ['\n'], logit_bias: { '42': -100 } });
  expectTypeOf(stream).toEqualTypeOf<AsyncIterable<ChatCompletionChunk>>();
  for await (const chunk of stream) {
    expectTypeOf(chunk.object).toEqualTypeOf<'chat.completion.chunk'>();
    expectTypeOf(chunk.choices[0].delta.content).toEqualTypeOf<string | undefined>();
    expectTypeOf(chunk.choices[0].finish_reason).toEqualTypeOf<'stop' | 'length' | 'abort' | null>();
  }

  const generation = engine.generate('Once', { maxTokens: 4, topK: 40, minP: 0.05, signal: new AbortController().signal });
  for await (const chunk of generation) expectTypeOf(chunk).toEqualTypeOf<GenerateChunk>();
  expectTypeOf(generation.result).toEqualTypeOf<Promise<GenerationStats>>();

  // @ts-expect-error OpenAI's roles for chat are system, user and assistant here; tools are not supported
  await engine.chat.completions.create({ messages: [{ role: 'tool', content: 'x' }] });
}

describe('OpenAI shapes', () => {
  it('type-check (the compiler is the test; this only keeps the function referenced)', () => {
    expect(typeof usesEngine).toBe('function');
  });
});
