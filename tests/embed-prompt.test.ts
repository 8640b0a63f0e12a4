import { describe, expect, it } from 'vitest';
import { buildTurn } from '../src/embed/prompt.ts';

describe('embed widget prompt', () => {
  const history = [
    { role: 'user' as const, content: 'Hi' },
    { role: 'assistant' as const, content: 'Hello!' },
    { role: 'user' as const, content: 'Once upon a time' },
  ];

  it('continues the latest message when the model has no chat template', () => {
    expect(buildTurn(history, '', null, false)).toEqual({ prompt: 'Once upon a time' });
    expect(buildTurn(history, 'A story for children.', null, false)).toEqual({ prompt: 'A story for children.\n\nOnce upon a time' });
  });

  it('sends the conversation, system prompt first, to a model with a chat template', () => {
    expect(buildTurn(history, 'Be brief.', null, true)).toEqual({ messages: [{ role: 'system', content: 'Be brief.' }, ...history] });
    expect(buildTurn(history, '', null, true)).toEqual({ messages: history });
  });

  it('uses the template attribute as the chat template, and "none" for plain continuation', () => {
    const template = '{% for m in messages %}{{ m.content }}\n{% endfor %}';
    expect(buildTurn(history, '', template, false)).toEqual({ messages: history, chatTemplate: template });
    expect(buildTurn(history, '', 'none', true)).toEqual({ prompt: 'Once upon a time' });
  });
});
