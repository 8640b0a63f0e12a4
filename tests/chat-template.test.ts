import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { chatPromptIds, renderChatTemplate, systemPromptLength } from '../src/runtime/chat.ts';
import type { Tokenizer } from '../src/model/tokenizer/index.ts';
import { SHARED_MODELS_DIR } from './helpers/paths.ts';

const DIR = `${SHARED_MODELS_DIR}/smollm2-135m-tokenizer`;

describe('chat templates', () => {
  it('renders the SmolLM2 template exactly as transformers does', () => {
    const template = readFileSync(`${DIR}/chat_template.jinja`, 'utf8');
    const example = JSON.parse(readFileSync(`${DIR}/chat_template.example.json`, 'utf8'));
    const text = renderChatTemplate(template, example.messages, { addGenerationPrompt: example.add_generation_prompt });
    expect(text).toBe(example.expected);
    // Without the generation prompt the text ends after the last user turn.
    expect(renderChatTemplate(template, example.messages, { addGenerationPrompt: false })).toBe(example.expected.slice(0, -'<|im_start|>assistant\n'.length));
  });

  it('says what to do when there is no template, or a broken one', () => {
    const tokenizer = { bos: 1, eos: 2, addBos: true, decode: () => '<s>', encode: () => [5] } as unknown as Tokenizer;
    const messages = [{ role: 'user' as const, content: 'hi' }];
    const error = (() => {
      try {
        chatPromptIds(tokenizer, undefined, messages);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(LanternError);
    expect((error as LanternError).code).toBe('NO_CHAT_TEMPLATE');
    expect((error as LanternError).message).toMatch(/chatTemplate/);
    expect(() => renderChatTemplate('{% for %}', messages)).toThrow(expect.objectContaining({ code: 'BAD_CHAT_TEMPLATE' }));
    expect(() => renderChatTemplate('x', [])).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    // BOS is added when the model wants it and the template did not write it.
    expect(chatPromptIds(tokenizer, '{{ messages[0].content }}', messages)).toEqual([1, 5]);
  });

  it("counts a conversation's system prompt tokens (a context shift's default keep)", () => {
    // One id per character, BOS 1 added where the template does not write it.
    const tokenizer = { bos: 1, eos: 2, addBos: true, decode: () => '<s>', encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0)) } as unknown as Tokenizer;
    const template = '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}';
    const messages = [{ role: 'system' as const, content: 'be brief' }, { role: 'user' as const, content: 'hi' }];
    const ids = chatPromptIds(tokenizer, template, messages);
    expect(systemPromptLength(tokenizer, template, messages, ids)).toBe(1 + '<system>be brief'.length);
    expect(systemPromptLength(tokenizer, template, messages.slice(1), ids)).toBeUndefined(); // no system message
    const strict = "{% if messages|length < 2 %}{{ raise_exception('a user message is needed') }}{% endif %}" + template;
    expect(systemPromptLength(tokenizer, strict, messages, chatPromptIds(tokenizer, strict, messages))).toBeUndefined();
  });
});
