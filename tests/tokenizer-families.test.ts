import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readGGUF } from '../src/model/gguf.ts';
import { tokenizerFromGGUF, type Tokenizer } from '../src/model/tokenizer/index.ts';
import { bytesSource } from '../src/storage/source.ts';
import { LLAMACPP_VOCAB_DIR } from './helpers/paths.ts';
import { removeVocabFiles, writeVocabGGUF } from './helpers/vocab-gguf.ts';
import { disposeLlamaCpp, llamaCppVocabDetokenize, llamaCppVocabEog, llamaCppVocabTokenize } from './oracle/llamacpp.ts';

/**
 * The tokenizers of the model families Lantern runs (GPT-2, GPT-NeoX/Pythia, Phi-3/3.5/4-mini,
 * Gemma 2/3, Qwen3, OLMo 2, SmolLM3), against llama.cpp itself (node-llama-cpp, vocab-only loads)
 * on texts chosen to tell the pre-tokenizers apart: digit runs, contractions, CJK, whitespace runs,
 * newlines, emoji. No vocabulary of these families fits here, so each test writes one: GPT-2's
 * vocabulary under each `tokenizer.ggml.pre` the families' GGUFs carry (the regex is what differs),
 * and llama.cpp's SentencePiece vocabulary with Gemma's settings and turn tokens.
 */

const GPT2 = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-2.gguf`;
const GPT_NEOX = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-neox.gguf`;
const LLAMA_SPM = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-llama-spm.gguf`;
const PHI3 = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-phi-3.gguf`;

const TEXTS = [
  'Hello world! It\'s 2024, isn\'t it? I\'d\'ve said so.',
  'DON\'T YOU\'LL WE\'RE I\'M THEY\'VE',
  '3.14159 and 1,000,000 or 12345678901234567890 x2 2x',
  '你好，世界！日本語のテキスト、カタカナ 한국어 문장',
  'a  b   c\t\td \u00a0e\u3000f    ',
  'line1\nline2\n\n\nline3\r\n  indented\n\n',
  '🦙 llamas 👩‍👩‍👧 ❤️ 🇫🇷 ✨done',
  'def f(x):\n    return x**2  # comment\n\tpass',
  '   leading and trailing   ',
  'ÀÉÎõü ß Ωmega ½ ...!!! ??? ---> <= => $100 @user #tag',
  'visit example.com or www.github.io, (hello) [world] {x} "quoted" $HOME',
  'camelCaseWord HTTPServer getX IT\'S iPhone McDonald\'s',
];

const loaded = new Map<string, Promise<Tokenizer>>();
function lantern(path: string): Promise<Tokenizer> {
  let tok = loaded.get(path);
  if (!tok) {
    tok = readGGUF(bytesSource(new Uint8Array(readFileSync(path)))).then(tokenizerFromGGUF);
    loaded.set(path, tok);
  }
  return tok;
}

/** The ids that end generation: Lantern's set is llama.cpp's. */
async function expectSameEog(path: string): Promise<void> {
  const tok = await lantern(path);
  const mine: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) if (tok.isEndOfGeneration(id)) mine.push(id);
  expect(mine).toEqual(await llamaCppVocabEog(path));
  expect(mine.length).toBeGreaterThan(0);
}

/** Every text: Lantern's ids equal llama.cpp's, and Lantern's decode of them equals llama.cpp's. */
async function expectSameAsLlamaCpp(path: string, texts: string[], parseSpecial = false): Promise<void> {
  const tok = await lantern(path);
  const failures: string[] = [];
  for (const text of texts) {
    const want = await llamaCppVocabTokenize(path, text, parseSpecial);
    const got = tok.encode(text, { addSpecial: false, parseSpecial });
    if (got.join() !== want.join()) {
      let at = 0;
      while (want[at] === got[at]) at++;
      const show = (ids: number[]) => ids.slice(at, at + 6).map((id) => `${id} ${JSON.stringify(tok.tokenText(id))}`).join(', ');
      failures.push(`${JSON.stringify(text)}: first difference at ${at}\n  llama.cpp: ${show(want)}\n  Lantern:   ${show(got)}`);
      continue;
    }
    const wantText = await llamaCppVocabDetokenize(path, want, parseSpecial);
    const gotText = tok.decode(got, { special: parseSpecial });
    if (gotText !== wantText) failures.push(`${JSON.stringify(text)} decodes to ${JSON.stringify(gotText)}, llama.cpp ${JSON.stringify(wantText)}`);
  }
  expect(failures, failures.join('\n')).toEqual([]);
}

afterAll(async () => {
  await disposeLlamaCpp();
  removeVocabFiles();
});

/**
 * tokenizer.ggml.pre values the families' GGUFs carry (convert_hf_to_gguf.py picks them by hashing
 * the tokenizer): gpt-2 (GPT-2), olmo (OLMo 1, on GPT-NeoX-20B's tokenizer; Pythia files converted
 * without a pre get default, as llama.cpp's gpt-neox vocabulary below), dbrx (cl100k-style: OLMo 2's
 * dolma2 tokenizer, as far as could be told offline), qwen2 (Qwen2.5, Qwen3), smollm (SmolLM 1/2),
 * smaug-bpe and llama-bpe (Llama 3's tokenizer; SmolLM3's GGUFs carry smaug-bpe), gpt-4o (o200k,
 * Phi-4-mini), and default.
 */
const PRES = ['gpt-2', 'olmo', 'dbrx', 'qwen2', 'smollm', 'smaug-bpe', 'llama-bpe', 'gpt-4o', 'default'];

/**
 * GPT-2's merges were learned under GPT-2's regex, so they never join a newline to a space, or
 * punctuation to a letter: pieces cut differently would often still give the same ids. These merges
 * (appended, lowest rank) make such a difference show in the ids. In GPT-2's alphabet Ċ is "\n",
 * Ġ a space, ĉ a tab.
 */
const BOUNDARY_MERGES = ['( x', '. com', '\' S', '): Ċ', 'Ċ Ġ', 'ĉ pass', '! Ċ'];

describe('BPE: GPT-2\'s vocabulary under each family\'s pre-tokenizer, against llama.cpp', () => {
  const paths = new Map<string, string>();
  beforeAll(async () => {
    for (const pre of PRES) {
      paths.set(pre, await writeVocabGGUF(GPT2, `gpt2-pre-${pre}`, {
        metadata: { 'tokenizer.ggml.pre': { type: 'string', value: pre } },
        extraMerges: BOUNDARY_MERGES,
      }));
    }
  });

  test.each(PRES)('%s', async (pre) => {
    await expectSameAsLlamaCpp(paths.get(pre)!, TEXTS);
  });

  test('only names with the same regex give the same ids on these texts, so the comparisons above tell them apart', async () => {
    const splits = new Map<string, string[]>();
    for (const pre of PRES) {
      const tok = await lantern(paths.get(pre)!);
      const key = TEXTS.map((t) => tok.encode(t).join()).join('|');
      splits.set(key, [...(splits.get(key) ?? []), pre]);
    }
    // Names that share a regex in llama.cpp share ids; llama-bpe's ignore_merges cannot show with
    // GPT-2's merges, which build every whole-word token anyway.
    expect([...splits.values()]).toEqual([
      ['gpt-2', 'olmo'], ['dbrx', 'smaug-bpe', 'llama-bpe'], ['qwen2'], ['smollm'], ['gpt-4o'], ['default'],
    ]);
  });

  test('special tokens: <|endoftext|> parsed when asked, and ends generation', async () => {
    const path = paths.get('qwen2')!;
    await expectSameAsLlamaCpp(path, ['Hi<|endoftext|> there<|endoftext|>\n'], true);
    await expectSameEog(path);
  });

  // Qwen3 and SmolLM3 chat in ChatML: <|im_start|>/<|im_end|> are control tokens and <|im_end|> is
  // eos; Qwen3's <think>/</think> are user-defined, so they are cut out of any text.
  test.each([['Qwen3', 'qwen2'], ['SmolLM3', 'smaug-bpe']])('%s-style ChatML vocabulary (pre %s)', async (family, pre) => {
    const path = await writeVocabGGUF(GPT2, `chatml-${pre}`, {
      metadata: {
        'tokenizer.ggml.pre': { type: 'string', value: pre },
        'tokenizer.ggml.eos_token_id': { type: 'u32', value: 50258 },
      },
      extraTokens: [
        { text: '<|im_start|>', type: 3 }, { text: '<|im_end|>', type: 3 },
        { text: '<think>', type: 4 }, { text: '</think>', type: 4 },
      ],
      extraMerges: BOUNDARY_MERGES,
    });
    const prompt = '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n  What is 2+2?\n<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
    await expectSameAsLlamaCpp(path, [prompt], true);
    await expectSameAsLlamaCpp(path, [prompt, 'x<think>y</think>z'], false);
    await expectSameEog(path);
    const tok = await lantern(path);
    expect(tok.isEndOfGeneration(50258), family).toBe(true); // <|im_end|>
    expect(tok.isEndOfGeneration(50257), family).toBe(false); // <|im_start|>
  });
});

test('a tokenizer.ggml.pre llama.cpp does not know: llama.cpp refuses the file, Lantern says BAD_TOKENIZER', async () => {
  const path = await writeVocabGGUF(GPT2, 'gpt2-pre-unknown', { metadata: { 'tokenizer.ggml.pre': { type: 'string', value: 'no-such-pre' } } });
  // The same file under any name in PRES loads (above); llama.cpp logs "unknown pre-tokenizer type".
  await expect(llamaCppVocabTokenize(path, 'hello')).rejects.toThrow('Failed to load model');
  await expect(lantern(path)).rejects.toThrow(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringContaining('"no-such-pre"') }));
});

describe('GPT-NeoX / Pythia: llama.cpp\'s gpt-neox vocabulary (no tokenizer.ggml.pre: llama.cpp uses default)', () => {
  test('texts tokenize and decode as llama.cpp does', async () => {
    await expectSameAsLlamaCpp(GPT_NEOX, TEXTS);
    await expectSameEog(GPT_NEOX);
  });

  test('encode/decode round trip, with llama.cpp\'s clean-up of spaces', async () => {
    const tok = await lantern(GPT_NEOX);
    expect(tok.decode(tok.encode('Pythia says: hello , world . It \'s fine'))).toBe('Pythia says: hello, world. It\'s fine');
    expect(tok.decode(tok.encode('Hello\n\n  world\t123'))).toBe('Hello\n\n  world\t123');
  });
});

describe('SentencePiece families against llama.cpp', () => {
  test('Phi-3 (llama.cpp\'s phi-3 vocabulary): plain text and its chat markup', async () => {
    await expectSameAsLlamaCpp(PHI3, TEXTS);
    await expectSameAsLlamaCpp(PHI3, ['<|system|>\nBe brief.<|end|>\n<|user|>\n  Hi there<|end|>\n<|assistant|>\n'], true);
    await expectSameEog(PHI3);
  });

  test('Gemma: no space prefix, byte fallback, <start_of_turn>/<end_of_turn> as control tokens', async () => {
    const path = await writeVocabGGUF(LLAMA_SPM, 'gemma-style', {
      metadata: {
        'tokenizer.ggml.add_space_prefix': { type: 'bool', value: false },
        'tokenizer.ggml.add_bos_token': { type: 'bool', value: true },
      },
      extraTokens: [
        { text: '<start_of_turn>', type: 3 },
        { text: '<end_of_turn>', type: 3 },
        { text: '<start_of_image>', type: 3 },
        { text: '<h1>', type: 4 },
      ],
    });
    await expectSameAsLlamaCpp(path, TEXTS);
    await expectSameAsLlamaCpp(path, [
      '<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n',
      '<start_of_turn>user\n <h1>Title</h1>  🦙<end_of_turn>\n',
    ], true);

    await expectSameEog(path);
    const tok = await lantern(path);
    const startOfTurn = 32000, endOfTurn = 32001;
    // No "▁" in front of the first word, unlike llama-spm's own settings.
    expect(tok.tokenText(tok.encode('Hello')[0])).toBe('Hello');
    expect(tok.encode('<start_of_turn>user', { parseSpecial: true })[0]).toBe(startOfTurn);
    expect(tok.isEndOfGeneration(endOfTurn)).toBe(true);
    expect(tok.isEndOfGeneration(startOfTurn)).toBe(false);
    // A user-defined token is cut out of text even when special tokens are not parsed.
    expect(tok.encode('a<h1>b')).toContain(32003);
    expect(tok.encode('<start_of_turn>')).not.toContain(startOfTurn);
  });
});
