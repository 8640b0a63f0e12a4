/**
 * Chat templates: the Jinja template a model ships in `tokenizer.chat_template` turns a list of
 * messages into the prompt text the model was trained on. Rendered with @huggingface/jinja, the
 * implementation transformers.js uses, so templates behave as they do in Python's transformers.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { LanternError } from '../errors.ts';
import type { GGUFFile } from '../model/gguf.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import { templateMessages } from './tool-prompt.ts';
import { toolCallFormatOf, type ChatTool, type ToolCall } from './tool-format.ts';

/**
 * One turn of a conversation, as in OpenAI's chat completions: an assistant turn may hold the
 * tool calls it made (content null or text), and a `tool` turn the result of one of them.
 */
export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

export interface ChatTemplateContext {
  /** Ends the prompt with the header of an assistant turn, so the model answers. Default true. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /**
   * `enable_thinking` for templates with a thinking switch (Qwen3, SmolLM3). Left undefined, as
   * transformers leaves it, each template picks its own default (both think).
   */
  enableThinking?: boolean;
  /** The moment `strftime_now` reads (Llama 3's "Today Date"). Default: now. */
  now?: Date;
  /**
   * Tools to offer, as the template takes them (a `tools` variable; Phi-4-mini's in the system
   * message). A template without tool calls throws NO_TOOL_SUPPORT, as do tool messages for it.
   */
  tools?: readonly ChatTool[];
}

/** The template stored in the GGUF file, if the model has one. */
export function chatTemplateOf(file: GGUFFile): string | undefined {
  const value = file.metadata.get('tokenizer.chat_template');
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/**
 * Renders `messages` with `template` (Jinja); throws BAD_CHAT_TEMPLATE when it does not parse or render.
 *
 * @example
 * ```ts
 * import { renderChatTemplate } from 'lantern';
 *
 * const template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>";
 * renderChatTemplate(template, [{ role: 'user', content: 'Hi' }]); // '<|user|>Hi\n<|assistant|>'
 * ```
 */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], context: ChatTemplateContext = {}): string {
  checkMessages(messages);
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new LanternError('BAD_CHAT_TEMPLATE', `The chat template does not parse (${(e as Error).message}); fix it or pass another chatTemplate.`);
  }
  const now = context.now ?? new Date();
  const withTools = (context.tools?.length ?? 0) > 0 || messages.some((m) => m.role === 'tool' || (m.role === 'assistant' && m.tool_calls !== undefined));
  const format = withTools ? toolCallFormatOf(template) : undefined;
  if (withTools && format === undefined) {
    throw new LanternError('NO_TOOL_SUPPORT', 'This chat template takes no tools or tool calls; drop tools and tool messages, or pass a chat_template that has them (Qwen2.5, Qwen3, Llama 3.2, Mistral, Phi-4-mini).');
  }
  const input = withTools ? templateMessages(format, messages, context.tools) : { messages: messages.map((m) => ({ role: m.role, content: m.content })), tools: null };
  // The variables and functions transformers' apply_chat_template gives a template. Rendered on an
  // Environment of our own, since Template.render's globals cannot be replaced: its strftime_now
  // names months in the browser's language, and its raise_exception message looks like any error.
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true, false: false, none: null, True: true, False: false, None: null,
    range: pythonRange,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
    strftime_now: (format: string) => strftime(now, format),
    messages: input.messages,
    add_generation_prompt: context.addGenerationPrompt ?? true,
    bos_token: context.bosToken ?? '',
    eos_token: context.eosToken ?? '',
    // transformers passes these as None when there are none, so `tools is defined` holds.
    tools: input.tools,
    documents: null,
    ...(context.enableThinking === undefined ? {} : { enable_thinking: context.enableThinking }),
  };
  for (const [name, value] of Object.entries(globals)) env.set(name, value);
  try {
    return String(new Interpreter(env).run(compiled.parsed).value);
  } catch (e) {
    if (e instanceof TemplateRaised) {
      throw new LanternError('BAD_CHAT_TEMPLATE', `The chat template refused these messages: "${e.message}"; change the messages as it asks, or pass another chatTemplate.`);
    }
    throw new LanternError('BAD_CHAT_TEMPLATE', `The chat template failed on these messages (${(e as Error).message}); check the roles and order of the messages, or pass another chatTemplate.`);
  }
}

/** Python's range(stop) and range(start, stop[, step]). */
function pythonRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** What a template's raise_exception(message) throws. */
class TemplateRaised extends Error {}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/**
 * Python's datetime.strftime in the C locale, for the codes chat templates use. The library's own
 * strftime_now names months in the browser's language ("déc."), where Python writes "Dec".
 */
function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const hours = date.getHours();
  const dayOfYear = Math.round((Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) - Date.UTC(date.getFullYear(), 0, 1)) / 86_400_000) + 1;
  return format.replace(/%([a-zA-Z%])/g, (code, letter: string) => {
    switch (letter) {
      case 'Y': return String(date.getFullYear());
      case 'y': return pad(date.getFullYear() % 100);
      case 'm': return pad(date.getMonth() + 1);
      case 'd': return pad(date.getDate());
      case 'B': return MONTHS[date.getMonth()];
      case 'b': return MONTHS[date.getMonth()].slice(0, 3);
      case 'A': return DAYS[date.getDay()];
      case 'a': return DAYS[date.getDay()].slice(0, 3);
      case 'H': return pad(hours);
      case 'I': return pad(hours % 12 === 0 ? 12 : hours % 12);
      case 'p': return hours < 12 ? 'AM' : 'PM';
      case 'M': return pad(date.getMinutes());
      case 'S': return pad(date.getSeconds());
      case 'j': return pad(dayOfYear, 3);
      case '%': return '%';
      default: return code;
    }
  });
}

/**
 * The prompt ids for a conversation: the model's template (or `template` when given), rendered and
 * tokenized with special tokens parsed. BOS is added only when the model wants it and the template
 * did not write it already.
 */
export function chatPromptIds(
  tokenizer: Tokenizer,
  modelTemplate: string | undefined,
  messages: readonly ChatMessage[],
  template?: string,
  options: Pick<ChatTemplateContext, 'enableThinking' | 'now' | 'tools'> = {},
): number[] {
  const chosen = template ?? modelTemplate;
  if (chosen === undefined) {
    throw new LanternError('NO_CHAT_TEMPLATE', 'This model has no chat template (tokenizer.chat_template); pass one as the chatTemplate option, or use generate() with a plain prompt.');
  }
  const bosToken = tokenizer.bos === undefined ? '' : tokenizer.decode([tokenizer.bos], { special: true });
  const eosToken = tokenizer.eos === undefined ? '' : tokenizer.decode([tokenizer.eos], { special: true });
  const text = renderChatTemplate(chosen, messages, { ...options, bosToken, eosToken });
  const ids = tokenizer.encode(text, { addSpecial: false, parseSpecial: true });
  if (tokenizer.addBos && tokenizer.bos !== undefined && ids[0] !== tokenizer.bos) ids.unshift(tokenizer.bos);
  return ids;
}

/**
 * How many of a conversation's prompt ids are its system prompt (a context shift's default `keep`):
 * the ids the conversation shares with the system message rendered alone. Undefined where the
 * first message is not a system one, or the template will not render a system message alone.
 */
export function systemPromptLength(
  tokenizer: Tokenizer, modelTemplate: string | undefined, messages: readonly ChatMessage[], promptIds: readonly number[], template?: string,
): number | undefined {
  if (messages[0]?.role !== 'system') return undefined;
  let alone: number[];
  try {
    alone = chatPromptIds(tokenizer, modelTemplate, messages.slice(0, 1), template);
  } catch {
    return undefined; // e.g. a template that raises without a user message
  }
  let n = 0;
  while (n < alone.length && n < promptIds.length && alone[n] === promptIds[n]) n++;
  return n;
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new LanternError('BAD_ARGUMENT', 'messages is empty; give at least one { role, content } message.');
  }
  for (const [i, m] of messages.entries()) {
    const role = (m as { role?: unknown } | null)?.role;
    const calls = (m as { tool_calls?: unknown } | null)?.tool_calls;
    if (role === 'assistant' && calls !== undefined) {
      const call = (c: ToolCall | null) => typeof c?.function?.name === 'string' && ['string', 'object'].includes(typeof c.function.arguments);
      if ((m.content !== null && typeof m.content !== 'string') || !Array.isArray(calls) || !calls.every(call)) {
        throw new LanternError('BAD_ARGUMENT', `messages[${i}] must be { role: 'assistant', content: string | null, tool_calls: [{ id, type: 'function', function: { name, arguments } }] }.`, { index: i });
      }
    } else if (role === 'tool') {
      if (typeof m.content !== 'string') throw new LanternError('BAD_ARGUMENT', `messages[${i}] must be { role: 'tool', tool_call_id, content: string }.`, { index: i });
    } else if (!m || !['system', 'user', 'assistant'].includes(role as string) || typeof m.content !== 'string') {
      throw new LanternError('BAD_ARGUMENT', `messages[${i}] must be { role: 'system' | 'user' | 'assistant' | 'tool', content: string }.`, { index: i });
    }
  }
}
