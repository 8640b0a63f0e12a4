import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { readGGUF } from '../src/model/gguf.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import { chatPromptIds, renderChatTemplate, type ChatMessage, type ChatTemplateContext } from '../src/runtime/chat.ts';
import { bytesSource } from '../src/storage/source.ts';
import { LLAMACPP_VOCAB_DIR, SHARED_MODELS_DIR } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppVocabDetokenize, llamaCppVocabTokenize } from './oracle/llamacpp.ts';

/**
 * The real chat templates of the families Lantern runs (../shared/models/chat-templates), rendered
 * through renderChatTemplate (@huggingface/jinja) with each model's bos/eos and a generation prompt.
 * Every expected string was derived from the template by hand and checked against Python's Jinja2
 * 3.1.6 set up as transformers' apply_chat_template sets it up (sandboxed, trim_blocks, lstrip_blocks,
 * loopcontrols, raise_exception, strftime_now, tools=None, documents=None) with the same fixed date.
 */

const DIR = `${SHARED_MODELS_DIR}/chat-templates`;
const template = (name: string) => readFileSync(`${DIR}/${name}.jinja`, 'utf8');

/** 5 March 2026, 14:07 local time, as Python's datetime.now() would give it. */
const NOW = new Date(2026, 2, 5, 14, 7);

const WITH_SYSTEM: ChatMessage[] = [
  { role: 'system', content: 'You are a terse assistant.' },
  // Leading spaces and a trailing newline: Gemma and Llama 3 trim them, the others keep them.
  { role: 'user', content: '  What is 2+2?\n' },
  { role: 'assistant', content: '4.' },
  { role: 'user', content: 'And 3+3?' },
];
const WITHOUT_SYSTEM = WITH_SYSTEM.slice(1);

const SMOLLM3_THINKING_PROMPT = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.';

interface Case { file: string; bos: string; eos: string; withSystem: string; withoutSystem: string }

const CASES: Case[] = [
  {
    file: 'qwen2.5-instruct', bos: '', eos: '<|im_end|>',
    withSystem: '<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
    // Qwen2.5 supplies its own system prompt when there is none.
    withoutSystem: '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    file: 'qwen3', bos: '', eos: '<|im_end|>',
    withSystem: '<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
    withoutSystem: '<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    file: 'llama-3.2-instruct', bos: '<|begin_of_text|>', eos: '<|eot_id|>',
    withSystem: '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2026\n\nYou are a terse assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    withoutSystem: '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 05 Mar 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  },
  {
    // The system prompt goes in front of the first user turn; the template writes <bos> itself.
    file: 'gemma-3-it', bos: '<bos>', eos: '<eos>',
    withSystem: '<bos><start_of_turn>user\nYou are a terse assistant.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4.<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n',
    withoutSystem: '<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4.<end_of_turn>\n<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n',
  },
  {
    file: 'phi-3.5-mini-instruct', bos: '<s>', eos: '<|endoftext|>',
    withSystem: '<|system|>\nYou are a terse assistant.<|end|>\n<|user|>\n  What is 2+2?\n<|end|>\n<|assistant|>\n4.<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n',
    withoutSystem: '<|user|>\n  What is 2+2?\n<|end|>\n<|assistant|>\n4.<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|assistant|>\n',
  },
  {
    file: 'phi-4-mini-instruct', bos: '<|endoftext|>', eos: '<|endoftext|>',
    withSystem: '<|system|>You are a terse assistant.<|end|><|user|>  What is 2+2?\n<|end|><|assistant|>4.<|end|><|user|>And 3+3?<|end|><|assistant|>',
    withoutSystem: '<|user|>  What is 2+2?\n<|end|><|assistant|>4.<|end|><|user|>And 3+3?<|end|><|assistant|>',
  },
  {
    // Thinks unless told otherwise; with no system message, a long thinking prompt of its own.
    file: 'smollm3-3b.llamacpp-unsloth', bos: '', eos: '<|im_end|>',
    withSystem: '<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n## Custom Instructions\n\nYou are a terse assistant.\n\n<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
    withoutSystem: '<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /think\n\n## Custom Instructions\n\n' + SMOLLM3_THINKING_PROMPT + '\n\n<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    // Zephyr's template: eos after every turn.
    file: 'tinyllama-1.1b-chat-v1.0', bos: '<s>', eos: '</s>',
    withSystem: '<|system|>\nYou are a terse assistant.</s>\n<|user|>\n  What is 2+2?\n</s>\n<|assistant|>\n4.</s>\n<|user|>\nAnd 3+3?</s>\n<|assistant|>\n',
    withoutSystem: '<|user|>\n  What is 2+2?\n</s>\n<|assistant|>\n4.</s>\n<|user|>\nAnd 3+3?</s>\n<|assistant|>\n',
  },
];

function render(file: string, messages: ChatMessage[], context: ChatTemplateContext): string {
  return renderChatTemplate(template(file), messages, { now: NOW, ...context });
}

describe.each(CASES)('$file', ({ file, bos, eos, withSystem, withoutSystem }) => {
  test('system, user, assistant, user', () => {
    expect(render(file, WITH_SYSTEM, { bosToken: bos, eosToken: eos })).toBe(withSystem);
  });

  test('user, assistant, user', () => {
    expect(render(file, WITHOUT_SYSTEM, { bosToken: bos, eosToken: eos })).toBe(withoutSystem);
  });
});

describe('template switches and checks', () => {
  test('Qwen3: enable_thinking=false closes an empty think block; reasoning in earlier turns is dropped', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nGreeting.\n</think>\n\nHello!' },
      { role: 'user', content: 'Bye' },
    ];
    const history = '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n';
    expect(render('qwen3', messages, { eosToken: '<|im_end|>', enableThinking: false })).toBe(history + '<think>\n\n</think>\n\n');
    expect(render('qwen3', messages, { eosToken: '<|im_end|>', enableThinking: true })).toBe(history);
  });

  test('SmolLM3: enable_thinking=false, or /no_think in the system message, turns thinking off', () => {
    const turns = '<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n';
    const header = '<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n## Custom Instructions\n\n';
    expect(render('smollm3-3b.llamacpp-unsloth', WITHOUT_SYSTEM, { enableThinking: false }))
      .toBe(header + 'You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n<|im_end|>\n' + turns);
    expect(render('smollm3-3b.llamacpp-unsloth', [{ role: 'system', content: 'Be brief. /no_think' }, ...WITHOUT_SYSTEM], {}))
      .toBe(header + 'Be brief.\n\n<|im_end|>\n' + turns);
  });

  test('Phi-3.5 without a generation prompt ends with eos', () => {
    expect(render('phi-3.5-mini-instruct', WITHOUT_SYSTEM, { addGenerationPrompt: false, eosToken: '<|endoftext|>' }))
      .toBe('<|user|>\n  What is 2+2?\n<|end|>\n<|assistant|>\n4.<|end|>\n<|user|>\nAnd 3+3?<|end|>\n<|endoftext|>');
  });

  test('Gemma 3: roles that do not alternate give the template\'s own message as a LanternError', () => {
    const messages: ChatMessage[] = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
    expect(() => render('gemma-3-it', messages, { bosToken: '<bos>' })).toThrow(expect.objectContaining({
      code: 'BAD_CHAT_TEMPLATE',
      message: expect.stringContaining('"Conversation roles must alternate user/assistant/user/assistant/..."'),
    }));
  });

  test('strftime_now writes as Python\'s strftime does in the C locale, whatever the runtime\'s language', () => {
    const text = renderChatTemplate('{{ strftime_now("%A %a %d %B %b %Y %y %m %H:%M:%S %I%p %j %%") }}', [{ role: 'user', content: 'x' }], { now: NOW });
    expect(text).toBe('Thursday Thu 05 March Mar 2026 26 03 14:07:00 02PM 064 %');
  });

  test('the globals a template may use beyond the messages: range, none, True/False', () => {
    const text = renderChatTemplate('{% for i in range(3) %}{{ i }}{% endfor %} {% for i in range(1, 7, 2) %}{{ i }}{% endfor %} {% for i in range(3, 0, -1) %}{{ i }}{% endfor %} {{ none is none }} {{ True and not False }}', [{ role: 'user', content: 'x' }]);
    expect(text).toBe('012 135 321 true true');
  });

  test('tools and documents are defined and none, as transformers passes them', () => {
    const text = renderChatTemplate('{{ tools is defined }} {{ tools is none }} {{ documents is none }} {{ enable_thinking is defined }}', [{ role: 'user', content: 'x' }]);
    expect(text).toBe('true true true false');
  });
});

describe('chatPromptIds with a real vocabulary (llama.cpp\'s phi-3)', () => {
  const PHI3 = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-phi-3.gguf`;
  const phi3 = readGGUF(bytesSource(new Uint8Array(readFileSync(PHI3)))).then(tokenizerFromGGUF);
  afterAll(disposeLlamaCpp);

  test('Phi-3.5\'s template: BOS added once, turn markers parsed as control tokens, ids as llama.cpp gives them', async () => {
    const tok = await phi3;
    const ids = chatPromptIds(tok, template('phi-3.5-mini-instruct'), WITH_SYSTEM);
    const text = render('phi-3.5-mini-instruct', WITH_SYSTEM, { bosToken: '<s>', eosToken: '<|endoftext|>' });
    expect(ids[0]).toBe(1);
    expect(ids[1]).toBe(tok.encode('<|system|>', { parseSpecial: true })[0]);
    expect(ids.slice(1)).toEqual(await llamaCppVocabTokenize(PHI3, text, true));
    // Phi-3's special tokens eat the newline after them, and SentencePiece puts a space after each.
    expect(tok.decode(ids, { special: true })).toBe(await llamaCppVocabDetokenize(PHI3, ids, true));
    expect(tok.decode(ids, { special: true })).toContain('<|end|><|user|> What is 2+2?\n<|end|>');
  });

  test('a template that writes BOS itself (Gemma\'s) does not get a second one', async () => {
    const tok = await phi3;
    const ids = chatPromptIds(tok, template('gemma-3-it'), WITHOUT_SYSTEM);
    expect(ids[0]).toBe(1);
    expect(ids[1]).not.toBe(1);
  });
});
