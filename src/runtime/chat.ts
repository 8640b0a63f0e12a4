/**
 * Chat templates: the Jinja template a model ships in `tokenizer.chat_template` turns a list of
 * messages into the prompt text the model was trained on. Rendered with @huggingface/jinja, the
 * implementation transformers.js uses, so templates behave as they do in Python's transformers.
 */
import { Template } from '@huggingface/jinja';
import { LanternError } from '../errors.ts';
import type { GGUFFile } from '../model/gguf.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';

/** One turn of a conversation, as in OpenAI's chat completions. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatTemplateContext {
  /** Ends the prompt with the header of an assistant turn, so the model answers. Default true. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
}

/** The template stored in the GGUF file, if the model has one. */
export function chatTemplateOf(file: GGUFFile): string | undefined {
  const value = file.metadata.get('tokenizer.chat_template');
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** Renders `messages` with `template` (Jinja); throws BAD_CHAT_TEMPLATE when it does not parse or render. */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], context: ChatTemplateContext = {}): string {
  checkMessages(messages);
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new LanternError('BAD_CHAT_TEMPLATE', `The chat template does not parse (${(e as Error).message}); fix it or pass another chatTemplate.`);
  }
  try {
    return compiled.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: context.addGenerationPrompt ?? true,
      bos_token: context.bosToken ?? '',
      eos_token: context.eosToken ?? '',
    });
  } catch (e) {
    throw new LanternError('BAD_CHAT_TEMPLATE', `The chat template failed on these messages (${(e as Error).message}); check the roles and order of the messages, or pass another chatTemplate.`);
  }
}

/**
 * The prompt ids for a conversation: the model's template (or `template` when given), rendered and
 * tokenized with special tokens parsed. BOS is added only when the model wants it and the template
 * did not write it already.
 */
export function chatPromptIds(tokenizer: Tokenizer, modelTemplate: string | undefined, messages: readonly ChatMessage[], template?: string): number[] {
  const chosen = template ?? modelTemplate;
  if (chosen === undefined) {
    throw new LanternError('NO_CHAT_TEMPLATE', 'This model has no chat template (tokenizer.chat_template); pass one as the chatTemplate option, or use generate() with a plain prompt.');
  }
  const bosToken = tokenizer.bos === undefined ? '' : tokenizer.decode([tokenizer.bos], { special: true });
  const eosToken = tokenizer.eos === undefined ? '' : tokenizer.decode([tokenizer.eos], { special: true });
  const text = renderChatTemplate(chosen, messages, { bosToken, eosToken });
  const ids = tokenizer.encode(text, { addSpecial: false, parseSpecial: true });
  if (tokenizer.addBos && tokenizer.bos !== undefined && ids[0] !== tokenizer.bos) ids.unshift(tokenizer.bos);
  return ids;
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new LanternError('BAD_ARGUMENT', 'messages is empty; give at least one { role, content } message.');
  }
  for (const [i, m] of messages.entries()) {
    if (!m || !['system', 'user', 'assistant'].includes(m.role) || typeof m.content !== 'string') {
      throw new LanternError('BAD_ARGUMENT', `messages[${i}] must be { role: 'system' | 'user' | 'assistant', content: string }.`, { index: i });
    }
  }
}
