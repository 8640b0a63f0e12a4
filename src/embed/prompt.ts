import type { ChatMessage } from '../runtime/chat.ts';
import type { EmbedTurn } from './engine-adapter.ts';

/**
 * What the widget sends to the model for one message.
 *
 * A model with a chat template (tokenizer.chat_template in its GGUF), or a widget with a `template`
 * attribute (a Jinja chat template, as in GGUF files), gets the conversation so far: the system
 * prompt, then every user and assistant turn. A model without one, such as the bundled base model
 * stories260K, or `template="none"`, continues the text: the prompt is the message, after the
 * system prompt and a blank line when there is one, and turns do not carry over.
 */
export function buildTurn(history: readonly ChatMessage[], systemPrompt: string, template: string | null, hasChatTemplate: boolean): EmbedTurn {
  const message = history[history.length - 1]?.content ?? '';
  if (template === 'none' || (!template && !hasChatTemplate)) {
    return { prompt: systemPrompt ? `${systemPrompt}\n\n${message}` : message };
  }
  const messages: ChatMessage[] = systemPrompt ? [{ role: 'system', content: systemPrompt }, ...history] : [...history];
  return template ? { messages, chatTemplate: template } : { messages };
}
