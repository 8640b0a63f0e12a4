// @vitest-environment node
import { Template } from '@huggingface/jinja';
import Ajv2020 from 'ajv/dist/2020.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '../scripts/lib/model-writer.ts';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import type { MetaValue } from '../src/model/gguf-writer.ts';
import { GGMLType } from '../src/model/gguf.ts';
import { BYTE_TO_CHAR } from '../src/model/tokenizer/bpe.ts';
import { renderChatTemplate, type ChatMessage } from '../src/runtime/chat.ts';
import { parseGbnf } from '../src/runtime/grammar/gbnf.ts';
import { compileGrammar, GrammarAutomaton } from '../src/runtime/grammar/matcher.ts';
import { planTools, toolCallGrammar } from '../src/runtime/tool-prompt.ts';
import { parseToolCalls, toolCallFormatOf, ToolCallStream, type ChatTool, type ToolCallFormat } from '../src/runtime/tools.ts';
import { SHARED_MODELS_DIR } from './helpers/paths.ts';

/**
 * Tool calls (issue 16, section 2): tools and tool turns rendered through the real templates of
 * ../shared/models/chat-templates exactly as the template itself writes them (given the messages
 * transformers' users give it), each format's replies parsed into OpenAI's tool_calls (malformed
 * ones left as content), the streaming reader adding up to the same calls, and the grammar of a
 * forced call; end to end, a forced call from a written model in Chromium through the engine's
 * chat.completions, streamed and not.
 */

const template = (name: string) => readFileSync(`${SHARED_MODELS_DIR}/chat-templates/${name}.jinja`, 'utf8');
/** 5 March 2026, as in chat-templates.test.ts. */
const NOW = new Date(2026, 2, 5, 14, 7);

const WEATHER: ChatTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'] },
  },
};
/** The tool as Python's json.dumps writes it (the templates' tojson). */
const WEATHER_JSON = '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}}}';

const ASK: ChatMessage[] = [{ role: 'user', content: 'Weather in Paris?' }];
/** The second turn: the call the model made (content null, OpenAI's shape) and its result. */
const SECOND: ChatMessage[] = [
  ...ASK,
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris", "unit": "c"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 22}' },
];

const QWEN_TOOLS_SYSTEM = (system: string) =>
  `<|im_start|>system\n${system}# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n${WEATHER_JSON}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n`;
const QWEN_SECOND_TURN = '<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{"temperature": 22}\n</tool_response><|im_end|>\n<|im_start|>assistant\n';

const LLAMA_HEAD = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.\n\n' + JSON.stringify(WEATHER, null, 4) + '\n\nWeather in Paris?<|eot_id|>';

/** The template rendered by @huggingface/jinja directly, with the messages as transformers' users pass them (arguments as an object, content ''). */
function direct(name: string, messages: unknown[], extra: Record<string, unknown> = {}): string {
  return new Template(template(name)).render({ messages, add_generation_prompt: true, bos_token: name.startsWith('llama') ? '<|begin_of_text|>' : '', eos_token: '', tools: null, ...extra });
}
const HF_SECOND = [
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris', unit: 'c' } } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 22}' },
];

describe('tools through the real chat templates', () => {
  it('finds each template\'s tool-call format; the others have none', () => {
    expect(toolCallFormatOf(template('qwen2.5-instruct'))).toBe('hermes');
    expect(toolCallFormatOf(template('qwen3'))).toBe('hermes');
    expect(toolCallFormatOf(template('llama-3.2-instruct'))).toBe('llama3');
    expect(toolCallFormatOf(template('phi-4-mini-instruct'))).toBe('phi4');
    for (const name of ['gemma-3-it', 'phi-3.5-mini-instruct', 'tinyllama-1.1b-chat-v1.0', 'smollm3-3b.llamacpp-unsloth']) expect(toolCallFormatOf(template(name)), name).toBeUndefined();
  });

  it('Qwen2.5: the tools in its system prompt, then the call and the tool result of a second turn', () => {
    const first = renderChatTemplate(template('qwen2.5-instruct'), ASK, { tools: [WEATHER] });
    expect(first).toBe(QWEN_TOOLS_SYSTEM('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n') + '<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n');
    expect(first).toBe(direct('qwen2.5-instruct', ASK, { tools: [WEATHER] }));
    const second = renderChatTemplate(template('qwen2.5-instruct'), SECOND, { tools: [WEATHER] });
    expect(second).toBe(QWEN_TOOLS_SYSTEM('You are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n') + QWEN_SECOND_TURN);
    expect(second).toBe(direct('qwen2.5-instruct', HF_SECOND, { tools: [WEATHER] }));
  });

  it('Qwen3: the same, with content null on the call turn (its template needs a string there)', () => {
    const first = renderChatTemplate(template('qwen3'), [{ role: 'system', content: 'Be brief.' }, ...ASK], { tools: [WEATHER] });
    expect(first).toBe(QWEN_TOOLS_SYSTEM('Be brief.\n\n') + '<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n');
    const second = renderChatTemplate(template('qwen3'), SECOND, { tools: [WEATHER] });
    expect(second).toBe(QWEN_TOOLS_SYSTEM('') + QWEN_SECOND_TURN);
    expect(second).toBe(direct('qwen3', HF_SECOND, { tools: [WEATHER] }));
    // what the normalization is for: the template itself fails on null content
    expect(() => direct('qwen3', [HF_SECOND[0], { ...HF_SECOND[1], content: null }, HF_SECOND[2]], { tools: [WEATHER] })).toThrow();
  });

  it('Llama 3.2: the tools in the first user turn (indent 4), the call as its JSON, the result in an ipython turn', () => {
    const ctx = { tools: [WEATHER], bosToken: '<|begin_of_text|>', now: NOW };
    const first = renderChatTemplate(template('llama-3.2-instruct'), ASK, ctx);
    expect(first).toBe(LLAMA_HEAD + '<|start_header_id|>assistant<|end_header_id|>\n\n');
    expect(first).toBe(direct('llama-3.2-instruct', ASK, { tools: [WEATHER], date_string: '05 Mar 2026' }));
    const second = renderChatTemplate(template('llama-3.2-instruct'), SECOND, ctx);
    // The template JSON-encodes a string result (a string "is iterable"), as it does in Python.
    expect(second).toBe(LLAMA_HEAD + '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris", "unit": "c"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temperature\\": 22}"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
    expect(second).toBe(direct('llama-3.2-instruct', HF_SECOND, { tools: [WEATHER], date_string: '05 Mar 2026' }));
  });

  it('Phi-4-mini: the functions as json.dumps in the system message; a call in the history written as the model writes it', () => {
    const functions = '[{"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}}]';
    expect(renderChatTemplate(template('phi-4-mini-instruct'), [{ role: 'system', content: 'Be brief.' }, ...ASK], { tools: [WEATHER] }))
      .toBe(`<|system|>Be brief.<|tool|>${functions}<|/tool|><|end|><|user|>Weather in Paris?<|end|><|assistant|>`);
    expect(renderChatTemplate(template('phi-4-mini-instruct'), SECOND, { tools: [WEATHER] }))
      .toBe(`<|system|>You are a helpful assistant with some tools.<|tool|>${functions}<|/tool|><|end|><|user|>Weather in Paris?<|end|><|assistant|><|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}]<|/tool_call|><|end|><|tool|>{"temperature": 22}<|end|><|assistant|>`);
  });

  it('NO_TOOL_SUPPORT for a template without tools (tool_choice none shows none and passes); bad tools are BAD_ARGUMENT', () => {
    const phi35 = template('phi-3.5-mini-instruct');
    expect(() => renderChatTemplate(phi35, ASK, { tools: [WEATHER] })).toThrow(expect.objectContaining({ code: 'NO_TOOL_SUPPORT' }));
    expect(() => renderChatTemplate(phi35, SECOND)).toThrow(expect.objectContaining({ code: 'NO_TOOL_SUPPORT' }));
    expect(() => planTools(phi35, { tools: [WEATHER] })).toThrow(expect.objectContaining({ code: 'NO_TOOL_SUPPORT' }));
    expect(() => planTools(phi35, { tools: [WEATHER], toolChoice: 'required' })).toThrow(expect.objectContaining({ code: 'NO_TOOL_SUPPORT' }));
    expect(planTools(phi35, { tools: [WEATHER], toolChoice: 'none' })).toEqual({});
    const qwen = template('qwen2.5-instruct');
    expect(planTools(qwen, { tools: [WEATHER] })).toEqual({ tools: [WEATHER], format: 'hermes' });
    expect(() => planTools(qwen, { tools: [WEATHER], toolChoice: { type: 'function', function: { name: 'nope' } } })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => planTools(qwen, { tools: [{ type: 'function', function: { name: 'has space' } }] })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => planTools(qwen, { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => planTools(qwen, { toolChoice: 'required' })).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
    expect(() => renderChatTemplate(qwen, [...ASK, { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{oops' } }] }]))
      .toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

const CALL = { name: 'get_weather', arguments: '{"city": "Paris", "unit": "c"}' };
const CALL2 = { name: 'get_time', arguments: '{"zone": "CET", "nested": {"a": [1, 2.5e3, true, null, "x\\"y"]}}' };

/** Well-formed replies of each format: [format, reply, content, calls]. */
const REPLIES: [ToolCallFormat, string, string | null, { name: string; arguments: string; id?: string }[]][] = [
  ['hermes', `<tool_call>\n{"name": "get_weather", "arguments": ${CALL.arguments}}\n</tool_call>`, null, [CALL]],
  ['hermes', `Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": ${CALL.arguments}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": ${CALL2.arguments}}\n</tool_call>`, 'Let me check.', [CALL, CALL2]],
  ['hermes', `<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": ${CALL.arguments}}\n</tool_call>`, '<think>\nThe user wants weather.\n</think>', [CALL]],
  ['hermes', `<tool_call>{"arguments": ${CALL.arguments}, "name": "get_weather"}</tool_call> Done.`, 'Done.', [CALL]],
  ['hermes', 'No tools needed: 2 < 3 and <tool is not a tag.', 'No tools needed: 2 < 3 and <tool is not a tag.', []],
  ['llama3', `{"name": "get_weather", "parameters": ${CALL.arguments}}`, null, [CALL]],
  ['llama3', `<|python_tag|>{"type": "function", "name": "get_weather", "parameters": ${CALL.arguments}}`, null, [CALL]],
  ['llama3', 'It is sunny in {Paris}.', 'It is sunny in {Paris}.', []],
  ['mistral', `[TOOL_CALLS][{"name": "get_weather", "arguments": ${CALL.arguments}, "id": "a1b2c3d4e"}]`, null, [{ ...CALL, id: 'a1b2c3d4e' }]],
  ['mistral', `[{"name": "get_weather", "arguments": ${CALL.arguments}}, {"name": "get_time", "arguments": ${CALL2.arguments}}]`, null, [CALL, CALL2]],
  ['mistral', `Sure.[TOOL_CALLS]get_weather[ARGS]${CALL.arguments}`, 'Sure.', [CALL]],
  ['phi4', `<|tool_call|>[{"name": "get_weather", "arguments": ${CALL.arguments}}]<|/tool_call|>`, null, [CALL]],
  ['phi4', `[{"name": "get_weather", "arguments": ${CALL.arguments}}]`, null, [CALL]],
];

/** Malformed replies: no call, the whole text is content. */
const MALFORMED: [ToolCallFormat, string][] = [
  ['hermes', `<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>`],
  ['hermes', '<tool_call>not json</tool_call>'],
  ['hermes', '<tool_call>{"name": 3, "arguments": {}}</tool_call>'],
  ['hermes', '<tool_call>{"name": "f", "arguments": "{}"}</tool_call>'],
  ['hermes', '<tool_call>{"name": "f", "arguments": {}, "description": "echoed doc"}</tool_call>'],
  ['hermes', '<tool_call>\n{"name": "get_weather", "argu'],
  ['llama3', '{"answer": 42}'],
  ['llama3', '{"name": "f", "parameters": [1]}'],
  ['mistral', '[1, 2] are numbers'],
  ['mistral', '[TOOL_CALLS]oops'],
  ['phi4', '<|tool_call|>[{"name": "f", "arguments": {]}<|/tool_call|>'],
];

/** What a stream adds up to. */
function streamed(format: ToolCallFormat, pieces: string[]): { content: string; calls: { name: string; arguments: string; id: string }[] } {
  const reader = new ToolCallStream(format, () => 'call_x');
  let content = '';
  const calls: { name: string; arguments: string; id: string }[] = [];
  for (const e of [...pieces.flatMap((p) => reader.push(p)), ...reader.end()]) {
    if (e.kind === 'content') content += e.text;
    else if (e.kind === 'call') {
      expect(e.index).toBe(calls.length);
      calls.push({ name: e.name, arguments: '', id: e.id });
    } else calls[e.index].arguments += e.text;
  }
  return { content, calls };
}

function seeded(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('reading tool calls from a reply', () => {
  it.each(REPLIES.map((r, i) => [i, ...r] as const))('%i: %s', (_, format, reply, content, calls) => {
    const parsed = parseToolCalls(reply, format, () => 'call_x');
    expect(parsed.content).toBe(content);
    expect(parsed.toolCalls).toEqual(calls.map((c) => ({ id: c.id ?? 'call_x', type: 'function', function: { name: c.name, arguments: c.arguments } })));
    for (const c of parsed.toolCalls) expect(() => JSON.parse(c.function.arguments)).not.toThrow();
    // streamed a character at a time and in random pieces: the same content and calls
    const rand = seeded(reply.length);
    const random: string[] = [];
    for (let i = 0; i < reply.length;) {
      const n = 1 + Math.floor(rand() * 6);
      random.push(reply.slice(i, i + n));
      i += n;
    }
    for (const pieces of [[...reply], random, [reply]]) {
      const s = streamed(format, pieces);
      expect(s.content).toBe(content ?? '');
      // (an id the model writes after the arguments comes too late for a stream)
      expect(s.calls.map((c) => ({ name: c.name, arguments: c.arguments }))).toEqual(calls.map((c) => ({ name: c.name, arguments: c.arguments })));
    }
  });

  it.each(MALFORMED)('malformed %s reply %j stays content', (format, reply) => {
    expect(parseToolCalls(reply, format)).toEqual({ content: reply, toolCalls: [] });
    expect(() => streamed(format, [...reply])).not.toThrow();
  });

  it('fresh ids: OpenAI\'s form, and Mistral\'s 9 characters', () => {
    expect(parseToolCalls(REPLIES[0][1], 'hermes').toolCalls[0].id).toMatch(/^call_[A-Za-z0-9]{24}$/);
    expect(parseToolCalls(REPLIES[9][1], 'mistral').toolCalls[0].id).toMatch(/^[A-Za-z0-9]{9}$/);
  });

  it('a stream announces a call once its name is read, and holds back a possible marker', () => {
    const reader = new ToolCallStream('hermes', () => 'call_1');
    expect(reader.push('Hi <tool_')).toEqual([{ kind: 'content', text: 'Hi' }]);
    expect(reader.push('call>\n{"name": "get_wea')).toEqual([]);
    expect(reader.push('ther", "arguments": {"ci')).toEqual([{ kind: 'call', index: 0, id: 'call_1', name: 'get_weather' }, { kind: 'arguments', index: 0, text: '{"ci' }]);
    expect(reader.push('ty": "Paris"}}\n</tool_call>')).toEqual([{ kind: 'arguments', index: 0, text: 'ty": "Paris"}' }]);
    expect(reader.end()).toEqual([]);
    expect(reader.hasCalls).toBe(true);
  });
});

describe('the grammar of a forced call', () => {
  const accepts = (gbnf: string, text: string) => {
    const automaton = new GrammarAutomaton(compileGrammar(parseGbnf(gbnf)));
    let s = automaton.initial;
    for (const b of new TextEncoder().encode(text)) s = automaton.step(s, b);
    return s !== GrammarAutomaton.DEAD && automaton.isComplete(s);
  };
  const TIME: ChatTool = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] } } };

  it('hermes: one or more calls as Qwen writes them, arguments following parameters', () => {
    const g = toolCallGrammar('hermes', [WEATHER, TIME], true);
    const weather = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>';
    expect(accepts(g, weather)).toBe(true);
    expect(accepts(g, `${weather}\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>`)).toBe(true);
    expect(accepts(g, weather.replace('"c"', '"k"'))).toBe(false);
    expect(accepts(g, weather.replace('get_weather', 'get_wind'))).toBe(false);
    expect(accepts(g, '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET", "unit": "c"}}\n</tool_call>')).toBe(false);
    expect(accepts(toolCallGrammar('hermes', [WEATHER], false), `${weather}\n${weather}`)).toBe(false);
  });

  it('llama3, mistral and phi4: the bare JSON their parser reads at the start of a reply', () => {
    expect(accepts(toolCallGrammar('llama3', [WEATHER], true), '{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "f"}}')).toBe(true);
    const array = '[{"name": "get_time", "arguments": {"zone": "UTC"}}, {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}]';
    expect(accepts(toolCallGrammar('mistral', [WEATHER, TIME], true), array)).toBe(true);
    expect(accepts(toolCallGrammar('phi4', [WEATHER, TIME], false), array)).toBe(false);
    for (const format of ['llama3', 'mistral', 'phi4'] as const) {
      const text = format === 'llama3' ? '{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "f"}}' : '[{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}]';
      expect(parseToolCalls(text, format).toolCalls.map((c) => c.function.name)).toEqual(['get_weather']);
    }
  });

  it('planTools: required forces all tools, a named choice one, auto none', () => {
    const qwen = template('qwen2.5-instruct');
    expect(planTools(qwen, { tools: [WEATHER, TIME], toolChoice: 'required' }).grammar).toBe(toolCallGrammar('hermes', [WEATHER, TIME], true));
    expect(planTools(qwen, { tools: [WEATHER, TIME], toolChoice: { type: 'function', function: { name: 'get_time' } }, parallelToolCalls: false }).grammar).toBe(toolCallGrammar('hermes', [TIME], false));
    expect(planTools(qwen, { tools: [WEATHER, TIME], toolChoice: 'auto' }).grammar).toBeUndefined();
  });
});

type Helpers = typeof import('./helpers/engine-page.ts');
const HELPERS = '/tests/helpers/engine-page.ts';

/**
 * A random qwen2 model with a byte-level BPE vocabulary (the 256 byte symbols, a few merges,
 * Qwen's three control tokens; <|im_end|> ends a turn) and Qwen2.5's chat template: it has never
 * seen a tool, so only the grammar makes its reply a call.
 */
function writeToolModel(path: string): void {
  const merged = ['Ġt', 'he', 'Ġthe', 'in', 'Ġw', 'or', 'ld', 'Ġwor', 'Ġworld'];
  const merges = ['Ġ t', 'h e', 'Ġt he', 'i n', 'Ġ w', 'o r', 'l d', 'Ġw or', 'Ġwor ld'];
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const tokens = [...BYTE_TO_CHAR, ...merged, ...specials];
  const vocab: Record<string, MetaValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: 'qwen2' },
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: tokens },
    'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: tokens.map((t) => (specials.includes(t) ? 3 : 1)) },
    'tokenizer.ggml.merges': { type: 'array', itemType: 'string', value: merges },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: tokens.length - 3 },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: tokens.length - 1 },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
    'tokenizer.chat_template': { type: 'string', value: template('qwen2.5-instruct') },
  };
  writeFileSync(path, writeRandomModel({ architecture: 'qwen2', nLayers: 1, nEmbd: 64, nFF: 128, nHeads: 4, nKvHeads: 2, contextLength: 2048 }, vocab, GGMLType.F32, 7));
}

describe('a forced tool call end to end (written model, Qwen2.5 template, Chromium)', () => {
  let dir: string;
  let gpu: GpuPage;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lantern-tools-'));
    writeToolModel(join(dir, 'tools.gguf'));
    gpu = await openGpuPage({ modelFile: join(dir, 'tools.gguf'), warmup: ['./src/index.ts', './tests/helpers/engine-page.ts'] });
    await gpu.evaluate(async (path) => {
      const h: Helpers = await window.lanternImport(path);
      return h.start('tools', 'none');
    }, HELPERS);
  }, 120_000);
  afterAll(async () => {
    await gpu?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const PARAMETERS = {
    type: 'object',
    properties: { city: { enum: ['Paris', 'Oslo'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
    required: ['city', 'days'],
    additionalProperties: false,
  };
  const TIME_PARAMETERS = { type: 'object', properties: { zone: { type: 'string', pattern: '^[A-Z]{3}$' } }, required: ['zone'], additionalProperties: false };

  it('tool_calls parse and validate; streamed delta.tool_calls add up to the same call; NO_TOOL_SUPPORT without tools in the template', async () => {
    const r = await gpu.evaluate(async ({ path, parameters, timeParameters }) => {
      const h: Helpers = await window.lanternImport(path);
      const engine = h.engine('tools');
      const tools = [
        { type: 'function' as const, function: { name: 'get_weather', parameters } },
        { type: 'function' as const, function: { name: 'get_time', parameters: timeParameters } },
      ];
      const request = { messages: [{ role: 'user' as const, content: 'Weather in Paris?' }], tools, tool_choice: 'required' as const, parallel_tool_calls: false, temperature: 0, max_tokens: 200 };
      const whole = await engine.chat.completions.create(request);
      const stream = await engine.chat.completions.create({ ...request, stream: true });
      const calls: { id?: string; type?: string; name?: string; arguments: string; firsts: number }[] = [];
      let content = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        const delta = chunk.choices[0].delta;
        content += delta.content ?? '';
        for (const d of delta.tool_calls ?? []) {
          if (d.id === undefined) calls[d.index].arguments += d.function?.arguments ?? '';
          else if (calls[d.index]) calls[d.index].firsts++; // a second first chunk: wrong
          else calls[d.index] = { id: d.id, type: d.type, name: d.function?.name, arguments: d.function?.arguments ?? '', firsts: 1 };
        }
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      const noSupport = await h.failure(() => engine.chat.completions.create({ ...request, chat_template: h.SIMPLE_TEMPLATE }));
      const none = await engine.chat.completions.create({ ...request, tool_choice: 'none', chat_template: h.SIMPLE_TEMPLATE, max_tokens: 3 });
      return {
        whole: { message: whole.choices[0].message, finish: whole.choices[0].finish_reason },
        streamed: { content, calls, finish },
        noSupport,
        none: { finish: none.choices[0].finish_reason, calls: none.choices[0].message.tool_calls },
      };
    }, { path: HELPERS, parameters: PARAMETERS, timeParameters: TIME_PARAMETERS });

    const ajv = new Ajv2020({ strict: false });
    expect(r.whole.finish).toBe('tool_calls');
    expect(r.whole.message.content).toBeNull();
    expect(r.whole.message.tool_calls).toHaveLength(1);
    const call = r.whole.message.tool_calls![0];
    expect(call).toMatchObject({ type: 'function', id: expect.stringMatching(/^call_/) });
    expect(['get_weather', 'get_time']).toContain(call.function.name);
    const args = JSON.parse(call.function.arguments);
    expect(ajv.validate(call.function.name === 'get_weather' ? PARAMETERS : TIME_PARAMETERS, args), call.function.arguments).toBe(true);

    expect(r.streamed.finish).toBe('tool_calls');
    expect(r.streamed.content).toBe('');
    expect(r.streamed.calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', name: call.function.name, arguments: call.function.arguments, firsts: 1 }]);

    expect(r.noSupport).toMatchObject({ isLanternError: true, code: 'NO_TOOL_SUPPORT' });
    expect(r.none.calls).toBeUndefined();
    expect(r.none.finish).toBe('length');
  });
});
