/**
 * Tools in the prompt: checking a request's tools and tool_choice, the messages and tools a chat
 * template is given (per tool-call format, see tools.ts), and the GBNF grammar that forces a call
 * whose arguments follow the function's `parameters` (json-schema.ts) for `required` or a named
 * function.
 */
import { LanternError } from '../errors.ts';
import { alt, lit, prefixRules, printGbnf, ref, rep, seq, type GrammarExpr } from './grammar/gbnf.ts';
import { grammarFromJsonSchema } from './grammar/json-schema.ts';
import { toolCallFormatOf, type ChatTool, type ToolCallFormat, type ToolChoice } from './tool-format.ts';

export interface ToolRequest {
  tools?: ChatTool[];
  toolChoice?: ToolChoice;
  parallelToolCalls?: boolean;
}

/** What a request's tools change: the tools the template is shown, and (required or named) the GBNF grammar of the calls. */
export interface ToolPlan {
  tools?: ChatTool[];
  format?: ToolCallFormat;
  grammar?: string;
}

/**
 * Checks `tools` and `toolChoice` and plans the request. `tool_choice: 'none'` shows the template no
 * tools (so a template without tool support takes it); any other choice with tools needs a
 * template of a known format (NO_TOOL_SUPPORT otherwise).
 */
export function planTools(template: string | undefined, request: ToolRequest): ToolPlan {
  const { tools, toolChoice = 'auto', parallelToolCalls = true } = request;
  if (tools !== undefined) checkTools(tools);
  if (toolChoice !== 'auto' && toolChoice !== 'none' && toolChoice !== 'required') {
    const name = (toolChoice as { function?: { name?: unknown } } | null)?.function?.name;
    if (toolChoice?.type !== 'function' || typeof name !== 'string') {
      throw new LanternError('BAD_ARGUMENT', "tool_choice must be 'auto', 'none', 'required' or { type: 'function', function: { name } }.");
    }
    if (!tools?.some((t) => t.function.name === name)) {
      throw new LanternError('BAD_ARGUMENT', `tool_choice names the function "${name}", which is not in tools; add it to tools or choose another.`, { name });
    }
  }
  if (toolChoice === 'required' && !tools?.length) throw new LanternError('BAD_ARGUMENT', "tool_choice 'required' needs at least one tool in tools.");
  if (!tools?.length || toolChoice === 'none' || template === undefined) return {};
  const format = toolCallFormatOf(template);
  if (format === undefined) {
    throw new LanternError('NO_TOOL_SUPPORT', "This model's chat template takes no tools; drop tools (or set tool_choice 'none'), or pass a chat_template that has tool calls (Qwen2.5, Qwen3, Llama 3.2, Mistral, Phi-4-mini).");
  }
  if (toolChoice === 'auto') return { tools, format };
  const chosen = toolChoice === 'required' ? tools : tools.filter((t) => t.function.name === toolChoice.function.name);
  return { tools, format, grammar: toolCallGrammar(format, chosen, parallelToolCalls) };
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function checkTools(tools: unknown): asserts tools is ChatTool[] {
  if (!Array.isArray(tools)) throw new LanternError('BAD_ARGUMENT', "tools must be an array of { type: 'function', function: { name, description, parameters } }.");
  const names = new Set<string>();
  for (const [i, tool] of tools.entries()) {
    const fn = (tool as ChatTool | null)?.function;
    if ((tool as ChatTool | null)?.type !== 'function' || typeof fn !== 'object' || fn === null) {
      throw new LanternError('BAD_ARGUMENT', `tools[${i}] must be { type: 'function', function: { name, description, parameters } }.`, { index: i });
    }
    if (typeof fn.name !== 'string' || !NAME.test(fn.name)) {
      throw new LanternError('BAD_ARGUMENT', `tools[${i}].function.name must be 1 to 64 letters, digits, '_', '.' or '-', not ${JSON.stringify(fn.name)}.`, { index: i });
    }
    if (names.has(fn.name)) throw new LanternError('BAD_ARGUMENT', `Two tools are named "${fn.name}"; give each function its own name.`, { index: i });
    names.add(fn.name);
    const p = fn.parameters;
    if (p !== undefined && (typeof p !== 'object' || p === null || Array.isArray(p) || ('type' in p && p.type !== 'object'))) {
      throw new LanternError('BAD_ARGUMENT', `tools[${i}].function.parameters must be a JSON schema of an object ({ type: 'object', properties, required }).`, { index: i });
    }
  }
}

/**
 * GBNF of one call to one of `tools` (or several, with `parallel`) in `format`, the arguments
 * following each function's `parameters` (json-schema.ts). Written as the templates write a call
 * in the history; formats whose marker is a control token start with the bare JSON, which the
 * parser reads as a call at the start of a reply.
 */
export function toolCallGrammar(format: ToolCallFormat, tools: readonly ChatTool[], parallel: boolean): string {
  const rules = new Map<string, GrammarExpr>();
  const calls = tools.map((tool, i) => {
    const args = prefixRules(grammarFromJsonSchema(tool.function.parameters ?? { type: 'object' }), `f${i}-`);
    for (const [name, expr] of args.rules) rules.set(name, expr);
    const key = format === 'llama3' ? 'parameters' : 'arguments';
    return seq(lit(`{"name": ${JSON.stringify(tool.function.name)}, "${key}": `), ref(args.root), lit('}'));
  });
  let root: GrammarExpr;
  const many = (one: GrammarExpr, separator: string) => (parallel ? seq(one, rep(seq(lit(separator), one), 0, Infinity)) : one);
  switch (format) {
    case 'hermes':
      root = many(seq(lit('<tool_call>\n'), ref('call'), lit('\n</tool_call>')), '\n');
      break;
    case 'llama3':
      root = ref('call');
      break;
    case 'mistral':
    case 'phi4':
      root = seq(lit('['), many(ref('call'), ', '), lit(']'));
      break;
  }
  return printGbnf({ rules: new Map([['root', root], ['call', alt(...calls)], ...rules]), root: 'root' });
}

// ---- the messages as the templates expect them ---------------------------------------------------

/** A message as it may come in (ChatMessage in chat.ts, checked there). */
interface InMessage {
  role: string;
  content: string | null;
  tool_calls?: { id?: string; type?: string; function: { name: string; arguments: string | Record<string, unknown> } }[];
  tool_call_id?: string;
}

/**
 * The `messages` and `tools` a template is rendered with, as transformers' apply_chat_template
 * users pass them: a call's arguments as an object (Qwen2.5 and Llama write them with tojson),
 * content '' rather than null (Qwen3 looks inside it). Phi-4-mini's template reads neither
 * tool_calls nor `tools`: its tools are a JSON string (Python's json.dumps) in the system message,
 * and a call in the history is written into the content as the model writes it.
 */
export function templateMessages(format: ToolCallFormat | undefined, messages: readonly InMessage[], tools: readonly ChatTool[] | undefined): { messages: Record<string, unknown>[]; tools: unknown[] | null } {
  const out = messages.map((m, i) => {
    const message: Record<string, unknown> = { role: m.role, content: m.content ?? '' };
    if (m.tool_calls !== undefined) {
      const calls = m.tool_calls.map((call, k) => ({ ...(call.id === undefined ? {} : { id: call.id }), type: 'function', function: { name: call.function.name, arguments: argumentsObject(call.function.arguments, i, k) } }));
      if (format === 'phi4') {
        message.content = `${message.content}<|tool_call|>${pythonJson(calls.map((c) => c.function))}<|/tool_call|>`;
      } else {
        message.tool_calls = calls;
      }
    }
    if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
    return message;
  });
  if (!tools?.length) return { messages: out, tools: null };
  const plain = JSON.parse(JSON.stringify(tools)) as ChatTool[]; // drops undefined fields, which tojson cannot write
  if (format !== 'phi4') return { messages: out, tools: plain };
  // Microsoft's example: a system message whose `tools` is json.dumps of the functions.
  const functions = pythonJson(plain.map((t) => t.function));
  if (out[0]?.role === 'system') out[0] = { ...out[0], tools: functions };
  else out.unshift({ role: 'system', content: 'You are a helpful assistant with some tools.', tools: functions });
  return { messages: out, tools: null };
}

function argumentsObject(args: string | Record<string, unknown>, message: number, call: number): unknown {
  if (typeof args !== 'string') return args;
  try {
    return JSON.parse(args);
  } catch {
    throw new LanternError('BAD_ARGUMENT', `messages[${message}].tool_calls[${call}].function.arguments is not JSON; pass the arguments string the reply gave.`, { index: message });
  }
}

/** Python's json.dumps with its defaults: ", " and ": " between items, non-ASCII as \u escapes. */
export function pythonJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => `${asciiJson(k)}: ${pythonJson(v)}`).join(', ')}}`;
  }
  return typeof value === 'string' ? asciiJson(value) : JSON.stringify(value);
}

const asciiJson = (s: string) => JSON.stringify(s).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
