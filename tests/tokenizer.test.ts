import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { tokenizerFromGGUF, type Tokenizer } from '../src/model/tokenizer/index.ts';
import { cleanSpaces } from '../src/model/tokenizer/decoder.ts';

/**
 * The tokenizer against llama.cpp's own test vectors (models/ggml-vocab-*.gguf with .inp/.out, as
 * tests/test-tokenizer-0.cpp reads them: texts split on "\n__ggml_vocab_test__\n", tokenized with
 * add_special = false and parse_special = false), plus round trips and streaming decode.
 */

const VOCAB_DIR = '../shared/models/llamacpp-vocab';
const STORIES = '../shared/models/stories260K/stories260K.gguf';

const loaded = new Map<string, Promise<Tokenizer>>();
function load(path: string): Promise<Tokenizer> {
  let tok = loaded.get(path);
  if (!tok) {
    tok = readGGUF(bytesSource(new Uint8Array(readFileSync(path)))).then(tokenizerFromGGUF);
    loaded.set(path, tok);
  }
  return tok;
}

interface Vector { text: string; ids: number[] }

function readVectors(gguf: string): Vector[] {
  const raw = readFileSync(`${gguf}.inp`, 'utf8');
  const texts: string[] = [];
  const sep = '\n__ggml_vocab_test__\n';
  for (let at = 0; at < raw.length;) {
    const next = raw.indexOf(sep, at);
    if (next < 0) {
      texts.push(raw.slice(at));
      break;
    }
    texts.push(raw.slice(at, next));
    at = next + sep.length;
  }
  const lines = readFileSync(`${gguf}.out`, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  expect(lines.length, `${gguf}: .inp and .out hold different numbers of tests`).toBe(texts.length);
  return texts.map((text, i) => ({
    text,
    ids: lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number),
  }));
}

/** A readable account of one mismatch: the text, both id lists with each token's text, and where they part. */
function describeMismatch(tok: Tokenizer, v: Vector, got: number[]): string {
  const show = (ids: number[]) => ids.map((id) => `${id} ${JSON.stringify(tok.tokenText(id))}`).join(', ');
  let at = 0;
  while (at < v.ids.length && at < got.length && v.ids[at] === got[at]) at++;
  return [
    `text:     ${JSON.stringify(v.text)}`,
    `expected: [${show(v.ids)}]`,
    `got:      [${show(got)}]`,
    `first difference at index ${at}`,
  ].join('\n');
}

const vocabFiles = existsSync(VOCAB_DIR)
  ? readdirSync(VOCAB_DIR)
    .filter((f) => f.endsWith('.gguf') && existsSync(`${VOCAB_DIR}/${f}.inp`) && existsSync(`${VOCAB_DIR}/${f}.out`))
    .filter((f) => !f.includes('bert-bge')) // WordPiece: not a tokenizer Lantern runs
  : [];

describe.each(vocabFiles)('llama.cpp vectors: %s', (name) => {
  const path = `${VOCAB_DIR}/${name}`;

  test('every text tokenizes to exactly the ids llama.cpp gives', async () => {
    const tok = await load(path);
    const vectors = readVectors(path);
    const failures = vectors
      .map((v) => ({ v, got: tok.encode(v.text, { addSpecial: false, parseSpecial: false }) }))
      .filter(({ v, got }) => got.length !== v.ids.length || got.some((id, i) => id !== v.ids[i]))
      .map(({ v, got }) => describeMismatch(tok, v, got));
    expect(failures, `${failures.length} of ${vectors.length} texts differ:\n\n${failures.join('\n\n')}`).toEqual([]);
  });

  test('decode(encode(text)) gives the text back', async () => {
    const tok = await load(path);
    const cleans = ['gpt-2', 'mpt', 'refact', 'gpt-neox'].some((n) => name.includes(n));
    const failures: string[] = [];
    for (const { text } of readVectors(path)) {
      // llama.cpp's detokenizer also tidies " ," and " 's" for vocabularies that ask for it.
      const expected = cleans ? cleanSpaces(text) : text;
      const got = tok.decode(tok.encode(text));
      if (got !== expected) failures.push(`${JSON.stringify(expected)}\n  → ${JSON.stringify(got)}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe('llama-spm vocabulary', () => {
  const path = `${VOCAB_DIR}/ggml-vocab-llama-spm.gguf`;

  test('a character split across byte-fallback tokens streams out whole', async () => {
    const tok = await load(path);
    for (const ch of ['🦙', '😁', '𠀋']) {
      const ids = tok.encode(ch);
      const bytes = ids.filter((id) => /^<0x[0-9A-F]{2}>$/.test(tok.tokenText(id)));
      expect(bytes.length, `${ch} should need byte fallback`).toBeGreaterThan(1);

      const stream = tok.decoder();
      const pieces = ids.map((id) => stream.push(id));
      // "▁" then the character's UTF-8 bytes: '' until the last byte arrives.
      expect(pieces).toEqual([' ', ...bytes.slice(1).map(() => ''), ch]);
      expect(stream.flush()).toBe('');
    }
  });

  test('streamed pieces of a mixed text add up to the text', async () => {
    const tok = await load(path);
    const text = 'Hello 世界 🚀 done';
    const stream = tok.decoder();
    const pieces = tok.encode(text).map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe(' ' + text);
    expect(pieces).toContain('');
  });

  test('control tokens: parsed only when asked, dropped from decode unless special', async () => {
    const tok = await load(path);
    expect(tok.encode('<s>Hi', { parseSpecial: true })).toEqual([1, ...tok.encode('Hi')]);
    expect(tok.encode('<s>Hi')).not.toContain(1);
    expect(tok.encode('Hi', { addSpecial: true })[0]).toBe(1);
    expect(tok.decode([1, ...tok.encode('Hi'), 2])).toBe('Hi');
    expect(tok.decode([1, ...tok.encode('Hi'), 2], { special: true })).toBe('<s> Hi</s>');
    expect(tok.isEndOfGeneration(2)).toBe(true);
    expect(tok.isEndOfGeneration(1)).toBe(false);
  });
});

describe('stories260K (SPM, 512 tokens, byte fallback)', () => {
  test('encode with BOS, decode back', async () => {
    const tok = await load(STORIES);
    expect(tok.vocabSize).toBe(512);
    expect(tok.bos).toBe(1);
    expect(tok.eos).toBe(2);
    expect(tok.addBos).toBe(true);
    const ids = tok.encode('Once upon a time', { addSpecial: true });
    expect(ids[0]).toBe(1);
    expect(ids.length).toBeGreaterThan(1);
    expect(tok.decode(ids)).toBe('Once upon a time');
    expect(tok.isEndOfGeneration(2)).toBe(true);
  });

  test('text outside the vocabulary falls back to bytes and decodes back', async () => {
    const tok = await load(STORIES);
    const text = 'Zoë saw 7 cats 🐈';
    const ids = tok.encode(text);
    expect(ids.some((id) => tok.tokenText(id).startsWith('<0x'))).toBe(true);
    expect(tok.decode(ids)).toBe(text);
  });
});

describe('BPE details', () => {
  test('as llama.cpp: an unknown tokenizer.ggml.pre is refused, a missing one means default', async () => {
    const file = await readGGUF(bytesSource(new Uint8Array(readFileSync(`${VOCAB_DIR}/ggml-vocab-gpt-2.gguf`))));
    // Names read from a file are looked up in a Map: "__proto__" and "constructor" find nothing.
    for (const pre of ['no-such-pre-tokenizer', '__proto__', 'constructor', 'toString']) {
      file.metadata.set('tokenizer.ggml.pre', pre);
      expect(() => tokenizerFromGGUF(file), pre).toThrow(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringMatching(/unknown.*re-convert/) }));
    }
    // llama.cpp knows this one but runs it with its own splitter, which Lantern does not have.
    file.metadata.set('tokenizer.ggml.pre', 'kimi-k2');
    expect(() => tokenizerFromGGUF(file)).toThrow(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringMatching(/does not run yet/) }));
    file.metadata.delete('tokenizer.ggml.pre');
    const tok = tokenizerFromGGUF(file);
    expect(tok.encode('x = [1,2]')).toEqual([87, 220, 28, 220, 58, 16, 11, 17, 60]);
  });

  test('gpt-2: add_bos defaults to false, <|endoftext|> ends generation', async () => {
    const tok = await load(`${VOCAB_DIR}/ggml-vocab-gpt-2.gguf`);
    expect(tok.addBos).toBe(false);
    expect(tok.encode('Hi', { addSpecial: true })).toEqual(tok.encode('Hi'));
    expect(tok.isEndOfGeneration(50256)).toBe(true);
    expect(tok.encode('<|endoftext|>', { parseSpecial: true })).toEqual([50256]);
  });
});

/**
 * The regex lists of other pre-tokenizers, checked on the gpt-2 vocabulary with tokenizer.ggml.pre
 * rewritten: the ids llama.cpp (through node-llama-cpp) gives for one mixed text under each name.
 */
const PRE_TEXT = "I'm 12345 ABCdef's  \n\n\tx = [1,2];\u2009Ωmega 世界ひらがな 한국 ½!! ...";
const PRE_IDS: Record<string, number[]> = {
  'llama-bpe': [40, 1101, 220, 10163, 2231, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'qwen2': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'deepseek-llm': [40, 6, 76, 220, 10163, 2231, 9738, 4299, 6, 82, 220, 220, 198, 198, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'deepseek-v3': [40, 1101, 220, 10163, 2231, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'falcon': [40, 6, 76, 220, 10163, 2231, 9738, 4299, 6, 82, 220, 220, 628, 197, 87, 220, 28, 220, 58, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 25208, 3228, 220, 986],
  'starcoder': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'poro-chat': [40, 1101, 17031, 2231, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 25208, 3228, 2644],
  'viking': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'tekken': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'gpt-4o': [40, 1101, 220, 10163, 2231, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'chameleon': [40, 6, 76, 220, 16, 17, 18, 19, 20, 9738, 4299, 6, 82, 220, 220, 198, 198, 197, 87, 220, 28, 220, 58, 16, 11, 17, 60, 26, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 0, 0, 220, 13, 13, 13],
  'superbpe': [40, 1101, 220, 1065, 27712, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'bailingmoe': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'seed-coder': [40, 1101, 220, 16, 17, 18, 19, 20, 9738, 4299, 338, 220, 220, 628, 197, 87, 796, 685, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 2644],
  'default': [40, 6, 76, 220, 10163, 2231, 9738, 4299, 6, 82, 220, 220, 628, 197, 87, 220, 28, 220, 58, 16, 11, 17, 11208, 447, 231, 138, 102, 13731, 220, 10310, 244, 45911, 234, 2515, 110, 36853, 35585, 26945, 220, 47991, 250, 166, 113, 255, 220, 23141, 3228, 220, 986],
};

describe('pre-tokenizers by name, on the gpt-2 vocabulary', () => {
  test.each(Object.keys(PRE_IDS))('%s', async (pre) => {
    const file = await readGGUF(bytesSource(new Uint8Array(readFileSync(`${VOCAB_DIR}/ggml-vocab-gpt-2.gguf`))));
    file.metadata.set('tokenizer.ggml.pre', pre);
    const tok = tokenizerFromGGUF(file);
    const got = tok.encode(PRE_TEXT);
    const v = { text: PRE_TEXT, ids: PRE_IDS[pre] };
    expect(got, describeMismatch(tok, v, got)).toEqual(v.ids);
  });
});

describe('llama.cpp quirks', () => {
  test('deepseek-coder: a non-ASCII space is U+000B to the regexes, so it stays with its word', async () => {
    const tok = await load(`${VOCAB_DIR}/ggml-vocab-deepseek-coder.gguf`);
    expect(tok.encode('ф\u2009szkw 1,234.5')).toEqual([1210, 350, 6950, 89, 14552, 207, 16, 11, 17, 18, 19, 13, 20]);
  });

  test('phi-3: "</s>" is a control token, and special tokens eat the whitespace after them', async () => {
    const tok = await load(`${VOCAB_DIR}/ggml-vocab-phi-3.gguf`);
    const text = '<s>Hello</s> world<|end|>\n<|assistant|>';
    expect(tok.encode(text)).toEqual([
      529, 29879, 29958, 10994, 829, 29879, 29958, 3186, 29966, 29989, 355, 29989, 29958, 13, 29966, 29989, 465, 22137, 29989, 29958,
    ]);
    expect(tok.encode(text, { parseSpecial: true })).toEqual([1, 15043, 2, 3186, 32007, 32001]);
    expect(tok.isEndOfGeneration(32007)).toBe(true); // <|end|>
    expect(tok.isEndOfGeneration(32000)).toBe(true); // <|endoftext|>, the eos
  });
});
