import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hfTokenizerMetadata, type HfTokenizerFiles } from '../src/model/hf/tokenizer.ts';
import { readGGUF, type GGUFFile } from '../src/model/gguf.ts';
import { writeGGUF, type MetaValue } from '../src/model/gguf-writer.ts';
import { tokenizerFromGGUF, type Tokenizer } from '../src/model/tokenizer/index.ts';
import { bytesSource } from '../src/storage/source.ts';
import { LLAMACPP_VOCAB_DIR, SHARED_MODELS_DIR, SMOLLM2_TOKENIZER_DIR, STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppVocabDetokenize, llamaCppVocabTokenize } from './oracle/llamacpp.ts';

/**
 * Hugging Face tokenizer files → GGUF tokenizer metadata (src/model/hf/tokenizer.ts), checked by
 * running what it writes: through Lantern's GGUF tokenizer against llama.cpp's GPT-2 test vectors,
 * through llama.cpp itself (a vocabulary-only GGUF, node-llama-cpp) for SmolLM2's tokenizer.json,
 * and back to the ids of the GGUF vocabulary a SentencePiece-style tokenizer.json was built from.
 */

const GPTNEO_DIR = resolve(SHARED_MODELS_DIR, 'tinystories-gptneo');
const GPT2_VOCAB = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-2.gguf`;
const LLAMA_SPM_VOCAB = `${LLAMACPP_VOCAB_DIR}/ggml-vocab-llama-spm.gguf`;

const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

function metadataToGGUF(meta: Record<string, MetaValue>): Uint8Array {
  // The hyperparameters llama.cpp reads even for a vocabulary-only load (llama_model::load_hparams).
  return writeGGUF({
    metadata: {
      'general.architecture': { type: 'string', value: 'llama' },
      'llama.block_count': { type: 'u32', value: 1 },
      'llama.context_length': { type: 'u32', value: 2048 },
      'llama.embedding_length': { type: 'u32', value: 64 },
      'llama.feed_forward_length': { type: 'u32', value: 128 },
      'llama.attention.head_count': { type: 'u32', value: 1 },
      'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
      ...meta,
    },
    tensors: [],
  });
}

/** What the metadata gives once written into a vocabulary-only GGUF and read back. */
async function ggufOf(meta: Record<string, MetaValue>): Promise<GGUFFile> {
  return readGGUF(bytesSource(metadataToGGUF(meta)));
}

async function tokenizerOfPath(path: string): Promise<Tokenizer> {
  return tokenizerFromGGUF(await readGGUF(bytesSource(new Uint8Array(readFileSync(path)))));
}

interface Vector { text: string; ids: number[] }

/** The texts of an .inp file; the separator after the last one starts no further text. */
function readTexts(path: string): string[] {
  const texts = readFileSync(path, 'utf8').split('\n__ggml_vocab_test__\n');
  if (texts.at(-1) === '') texts.pop();
  return texts;
}

/** llama.cpp's test vectors: texts separated by "\n__ggml_vocab_test__\n" in .inp, ids one line per text in .out. */
function readVectors(gguf: string): Vector[] {
  const texts = readTexts(`${gguf}.inp`);
  const lines = readFileSync(`${gguf}.out`, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  expect(lines.length, `${gguf}: .inp and .out hold different numbers of tests`).toBe(texts.length);
  return texts.map((text, i) => ({ text, ids: lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number) }));
}

/** Every text of every llama.cpp vocabulary test file, once each. */
function allVectorTexts(): string[] {
  const inputs = readdirSync(LLAMACPP_VOCAB_DIR).filter((f) => f.endsWith('.gguf.inp'));
  expect(inputs.length).toBeGreaterThan(5);
  const texts = new Set<string>();
  for (const f of inputs) for (const text of readTexts(`${LLAMACPP_VOCAB_DIR}/${f}`)) texts.add(text);
  return [...texts];
}

function mismatches(tok: Tokenizer, vectors: Vector[]): string[] {
  const show = (ids: number[]) => ids.map((id) => `${id} ${JSON.stringify(tok.tokenText(id))}`).join(', ');
  return vectors.flatMap(({ text, ids }) => {
    const got = tok.encode(text);
    return got.join() === ids.join() ? [] : [`${JSON.stringify(text)}\n  expected [${show(ids)}]\n  got      [${show(got)}]`];
  });
}

const expectRefusal = (files: HfTokenizerFiles, message: RegExp, code = 'BAD_TOKENIZER') =>
  expect(() => hfTokenizerMetadata(files)).toThrow(expect.objectContaining({ name: 'LanternError', code, message: expect.stringMatching(message) }));

let tmp: string | undefined;
function writeTemp(name: string, bytes: Uint8Array): string {
  tmp ??= mkdtempSync(join(tmpdir(), 'lantern-hftok-'));
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return path;
}

afterAll(async () => {
  await disposeLlamaCpp();
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

describe('GPT-2 byte-level BPE (tinystories-gptneo) against llama.cpp\'s GPT-2 test vectors', () => {
  const vectors = () => readVectors(GPT2_VOCAB);
  const config = () => readJson(`${GPTNEO_DIR}/tokenizer_config.json`);
  // Each layout converted once, for the tests below.
  let fromJson: Record<string, MetaValue>;
  let fromTxt: Record<string, MetaValue>;
  beforeAll(() => {
    fromJson = hfTokenizerMetadata({ tokenizerJson: readJson(`${GPTNEO_DIR}/tokenizer.json`), tokenizerConfig: config() });
    fromTxt = hfTokenizerMetadata({
      vocabJson: readJson(`${GPTNEO_DIR}/vocab.json`),
      mergesTxt: readFileSync(`${GPTNEO_DIR}/merges.txt`, 'utf8'),
      tokenizerConfig: config(),
      specialTokensMap: readJson(`${GPTNEO_DIR}/special_tokens_map.json`),
      generationConfig: readJson(`${GPTNEO_DIR}/generation_config.json`),
    });
  });

  test('tokenizer.json: every text gives exactly llama.cpp\'s ids', async () => {
    expect(fromJson['tokenizer.ggml.model']).toEqual({ type: 'string', value: 'gpt2' });
    expect(fromJson['tokenizer.ggml.pre']).toEqual({ type: 'string', value: 'gpt-2' });
    const tok = tokenizerFromGGUF(await ggufOf(fromJson));
    expect(tok.vocabSize).toBe(50257);
    expect([tok.bos, tok.eos]).toEqual([50256, 50256]);
    const failures = mismatches(tok, vectors());
    expect(failures, failures.join('\n')).toEqual([]);
  });

  test('vocab.json + merges.txt: every text gives exactly llama.cpp\'s ids', async () => {
    const tok = tokenizerFromGGUF(await ggufOf(fromTxt));
    const failures = mismatches(tok, vectors());
    expect(failures, failures.join('\n')).toEqual([]);
  });

  test('both layouts give the same metadata, and the vocabulary llama.cpp\'s GPT-2 file holds', async () => {
    expect(fromTxt).toEqual(fromJson);
    const llama = await readGGUF(bytesSource(new Uint8Array(readFileSync(GPT2_VOCAB))));
    const tokens = fromJson['tokenizer.ggml.tokens'];
    expect(tokens.type === 'array' && tokens.value).toEqual(llama.metadata.get('tokenizer.ggml.tokens'));
    const merges = fromJson['tokenizer.ggml.merges'];
    expect(merges.type === 'array' && merges.value).toEqual(llama.metadata.get('tokenizer.ggml.merges'));
    const types = fromJson['tokenizer.ggml.token_type'];
    expect(types.type === 'array' && types.value[50256]).toBe(3); // <|endoftext|>: control
    expect(fromJson['tokenizer.ggml.add_bos_token']).toEqual({ type: 'bool', value: false });
  });
});

describe('SmolLM2-135M tokenizer.json in llama.cpp', () => {
  // tokenizer.json is the model's own; this tokenizer_config.json is written here after the
  // model's (its special tokens and chat template), since ../shared holds only tokenizer.json.
  const files = (): HfTokenizerFiles => ({
    tokenizerJson: readJson(`${SMOLLM2_TOKENIZER_DIR}/tokenizer.json`),
    tokenizerConfig: {
      add_prefix_space: false,
      bos_token: '<|im_start|>',
      eos_token: '<|im_end|>',
      pad_token: '<|im_end|>',
      unk_token: '<|endoftext|>',
      clean_up_tokenization_spaces: false,
      chat_template: readFileSync(`${SMOLLM2_TOKENIZER_DIR}/chat_template.jinja`, 'utf8'),
    },
  });
  let meta: Record<string, MetaValue>;
  let path: string;
  let tok: Tokenizer;
  beforeAll(async () => {
    meta = hfTokenizerMetadata(files());
    path = writeTemp('smollm2-vocab.gguf', metadataToGGUF(meta));
    tok = await tokenizerOfPath(path);
  });

  const OWN_TEXTS = [
    'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55',
    'Digits: 0 7 42 314159 2024-12-02 3.14e-10 ١٢٣ ½',
    'Unicode: naïve café Ωμέγα Привет 你好世界 こんにちは 한국어 🦙🚀👩‍👩‍👧 ﷽',
    '   spaces   and\ttabs\r\nand\n\n\nnewlines   ',
    'It\'s I\'ve WE\'RE they\'ll DON\'T',
  ];
  const SPECIAL_TEXTS = [
    '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n',
    '<|endoftext|><repo_name>lantern<file_sep>src/a.ts<|im_end|>',
  ];

  test('the pre-tokenizer (Digits then ByteLevel) maps onto llama.cpp\'s smollm', () => {
    expect(meta['tokenizer.ggml.pre']).toEqual({ type: 'string', value: 'smollm' });
    expect(meta['tokenizer.ggml.bos_token_id']).toEqual({ type: 'u32', value: 1 });
    expect(meta['tokenizer.ggml.eos_token_id']).toEqual({ type: 'u32', value: 2 });
    expect(meta['tokenizer.chat_template']?.type).toBe('string');
  });

  test('every llama.cpp test text and a few more: the ids and the decoded text llama.cpp gives', async () => {
    const texts = [...allVectorTexts(), ...OWN_TEXTS];
    const failures: string[] = [];
    for (const text of texts) {
      const want = await llamaCppVocabTokenize(path, text);
      const got = tok.encode(text);
      if (got.join() !== want.join()) failures.push(`${JSON.stringify(text)}: llama.cpp [${want}], Lantern [${got}]`);
      const wantText = await llamaCppVocabDetokenize(path, want);
      if (tok.decode(got) !== wantText) failures.push(`${JSON.stringify(text)} decodes to ${JSON.stringify(tok.decode(got))}, llama.cpp ${JSON.stringify(wantText)}`);
      // smollm keeps spaces as they are, so decoding gives the text back.
      if (tok.decode(got) !== text) failures.push(`${JSON.stringify(text)} round-trips to ${JSON.stringify(tok.decode(got))}`);
    }
    expect(texts.length).toBeGreaterThan(40);
    expect(failures, failures.join('\n')).toEqual([]);
  });

  test('special tokens such as <|im_start|>: parsed as llama.cpp parses them, kept in decode when asked', async () => {
    for (const text of SPECIAL_TEXTS) {
      const want = await llamaCppVocabTokenize(path, text, true);
      const got = tok.encode(text, { parseSpecial: true });
      expect(got, text).toEqual(want);
      expect(got).toContain(2);
      expect(tok.decode(got, { special: true })).toBe(await llamaCppVocabDetokenize(path, want, true));
      expect(tok.decode(got, { special: true })).toBe(text);
      // Unparsed, the same text is plain text to both.
      expect(tok.encode(text)).toEqual(await llamaCppVocabTokenize(path, text, false));
    }
    expect(tok.isEndOfGeneration(2)).toBe(true); // <|im_end|>
    expect(tok.isEndOfGeneration(1)).toBe(false);
  });
});

/**
 * GPT-NeoX-20B's tokenizer.json layout (Pythia's too): byte-level BPE behind an NFC normalizer, with
 * <|endoftext|> and <|padding|> as special added tokens and runs of 2 to 24 spaces as plain added
 * tokens. CONSTRUCTED here from llama.cpp's gpt-neox vocabulary, the tokenizer's own tokens and merges.
 */
describe('GPT-NeoX layout (constructed from llama.cpp\'s gpt-neox vocabulary)', () => {
  const NEOX_TOKENS = 50277;
  let neox: GGUFFile;
  let tokenizerJson: unknown;
  beforeAll(async () => {
    neox = await readGGUF(bytesSource(new Uint8Array(readFileSync(`${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-neox.gguf`))));
    const tokens = (neox.metadata.get('tokenizer.ggml.tokens') as string[]).slice(0, NEOX_TOKENS);
    const added = (id: number) => ({ id, content: tokens[id], single_word: false, lstrip: false, rstrip: false, normalized: id > 1, special: id <= 1 });
    tokenizerJson = {
      added_tokens: [0, 1, ...tokens.map((_, id) => id).filter((id) => id >= 50254)].map(added),
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
        vocab: Object.fromEntries(tokens.map((t, id) => [t, id])),
        merges: neox.metadata.get('tokenizer.ggml.merges'),
      },
    };
  });

  test('tokens, merges and types as llama.cpp\'s file has them; the model\'s 50432 rows padded with unused tokens', () => {
    const meta = hfTokenizerMetadata({
      tokenizerJson,
      tokenizerConfig: { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', add_bos_token: false },
    }, { vocabSize: 50432 });
    const tokens = meta['tokenizer.ggml.tokens'];
    const types = meta['tokenizer.ggml.token_type'];
    const merges = meta['tokenizer.ggml.merges'];
    expect(tokens.type === 'array' && tokens.value.slice(0, NEOX_TOKENS)).toEqual((neox.metadata.get('tokenizer.ggml.tokens') as string[]).slice(0, NEOX_TOKENS));
    expect(tokens.type === 'array' && tokens.value.length).toBe(50432);
    expect(merges.type === 'array' && merges.value).toEqual(neox.metadata.get('tokenizer.ggml.merges'));
    // llama.cpp's file is from an older converter that typed padding as user-defined (4); unused (5) now.
    const want = [...(neox.metadata.get('tokenizer.ggml.token_type') as Int32Array)].map((t, id) => (id >= NEOX_TOKENS ? 5 : t));
    expect(types.type === 'array' && types.value).toEqual(want);
    expect(meta['tokenizer.ggml.pre']).toEqual({ type: 'string', value: 'gpt-2' });
  });

  test('in llama.cpp and Lantern alike, runs of spaces become the added space tokens', async () => {
    const path = writeTemp('neox-from-hf.gguf', metadataToGGUF(hfTokenizerMetadata({ tokenizerJson })));
    const tok = await tokenizerOfPath(path);
    for (const text of ['def f(x):\n        return x', 'a' + ' '.repeat(30) + 'b', 'Hello <|endoftext|> world', '  two\tthree   ']) {
      const want = await llamaCppVocabTokenize(path, text);
      expect(tok.encode(text), JSON.stringify(text)).toEqual(want);
      expect(tok.decode(want)).toBe(await llamaCppVocabDetokenize(path, want));
    }
    expect(tok.encode('x        y')).toContain(50270); // eight spaces
  });
});

/**
 * Hugging Face's LlamaConverter (transformers convert_slow_tokenizer.py) as it lays out a Llama 2
 * tokenizer.json from a SentencePiece model: the pieces by id as a BPE vocabulary, merges generated
 * from every split of every piece into two pieces, ordered by the joined piece's score
 * (generate_merges), byte fallback, a Prepend "▁" + Replace " " → "▁" normalizer, and a template
 * that puts <s> first. This file is CONSTRUCTED here from stories260K's GGUF vocabulary: no real
 * Llama 2 tokenizer.json is available offline.
 */
function llamaTokenizerJson(pieces: string[], scores: Float32Array): unknown {
  const vocab = new Map(pieces.map((p, i) => [p, i]));
  // LlamaConverter.vocab(): <unk>, <s>, </s> score 0, the rest keep their SentencePiece scores.
  const vocabScores = pieces.map((p, i): [string, number] => [p, i < 3 ? 0 : scores[i]]);
  const merges: [string, string, number][] = [];
  for (const [piece, score] of vocabScores) {
    const chars = [...piece];
    const local: [string, string, number][] = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join('');
      const right = chars.slice(i).join('');
      if (vocab.has(left) && vocab.has(right)) local.push([left, right, score]);
    }
    local.sort((x, y) => vocab.get(x[0])! - vocab.get(y[0])! || vocab.get(x[1])! - vocab.get(y[1])!);
    merges.push(...local);
  }
  // sorted(key=(score, len(left), len(right)), reverse=True): a stable sort, highest first.
  const len = (s: string) => [...s].length;
  merges.sort((x, y) => y[2] - x[2] || len(y[0]) - len(x[0]) || len(y[1]) - len(x[1]));
  const special = (id: number) => ({ id, content: pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0), special(1), special(2)],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

describe('SentencePiece-style BPE (a Llama 2-layout tokenizer.json built from stories260K)', () => {
  let original: GGUFFile;
  let tokenizerJson: unknown;
  beforeAll(async () => {
    original = await readGGUF(bytesSource(new Uint8Array(readFileSync(STORIES_GGUF))));
    tokenizerJson = llamaTokenizerJson(original.metadata.get('tokenizer.ggml.tokens') as string[], original.metadata.get('tokenizer.ggml.scores') as Float32Array);
  });
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { __type: 'AddedToken', content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    unk_token: { __type: 'AddedToken', content: '<unk>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    legacy: true,
  };

  test('the vocabulary and token types come back as the GGUF has them, with "llama" settings', () => {
    const meta = hfTokenizerMetadata({ tokenizerJson, tokenizerConfig: config });
    const tokens = meta['tokenizer.ggml.tokens'];
    const types = meta['tokenizer.ggml.token_type'];
    expect(tokens.type === 'array' && tokens.value).toEqual(original.metadata.get('tokenizer.ggml.tokens'));
    expect(types.type === 'array' && types.value).toEqual([...(original.metadata.get('tokenizer.ggml.token_type') as Int32Array)]);
    expect(types.type === 'array' && types.value.filter((t) => t === 6).length).toBe(256); // <0x00>..<0xFF>
    expect(meta['tokenizer.ggml.model']).toEqual({ type: 'string', value: 'llama' });
    expect(meta['tokenizer.ggml.pre']).toEqual({ type: 'string', value: 'default' });
    expect(meta['tokenizer.ggml.add_space_prefix']).toEqual({ type: 'bool', value: true });
    expect(meta['tokenizer.ggml.merges']).toBeUndefined();
    for (const [key, id] of [['bos', 1], ['eos', 2], ['unknown', 0]] as const) expect(meta[`tokenizer.ggml.${key}_token_id`]).toEqual({ type: 'u32', value: id });
    expect(meta['tokenizer.ggml.add_bos_token']).toEqual({ type: 'bool', value: true });
  });

  test('the llama-spm test texts give the ids and text of the GGUF vocabulary itself, in Lantern and in llama.cpp', async () => {
    const meta = hfTokenizerMetadata({ tokenizerJson, tokenizerConfig: config });
    const path = writeTemp('stories260K-from-hf.gguf', metadataToGGUF(meta));
    const converted = await tokenizerOfPath(path);
    const reference = tokenizerFromGGUF(original);
    const texts = [...readVectors(LLAMA_SPM_VOCAB).map((v) => v.text), 'Once upon a time, there was a little girl named Lily.'];
    const failures: string[] = [];
    let merged = 0;
    for (const text of texts) {
      const want = reference.encode(text, { addSpecial: true });
      const got = converted.encode(text, { addSpecial: true });
      if (got.join() !== want.join()) failures.push(`${JSON.stringify(text)}: GGUF [${want}], from tokenizer.json [${got}]`);
      if (converted.decode(got) !== reference.decode(want)) failures.push(`${JSON.stringify(text)} decodes differently`);
      const inLlamaCpp = await llamaCppVocabTokenize(path, text);
      if (inLlamaCpp.join() !== want.slice(1).join()) failures.push(`${JSON.stringify(text)}: llama.cpp gives [${inLlamaCpp}] for the converted file, the GGUF [${want.slice(1)}]`);
      merged += got.filter((id) => id > 258).length;
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect(merged, 'the texts exercise merged pieces, not only single characters').toBeGreaterThan(200);
  });

  test('Gemma\'s layout (Replace " " → "▁", a no-op Split at spaces, no Prepend): no space prefix, the same ids otherwise', async () => {
    const gemma = {
      ...(tokenizerJson as Record<string, unknown>),
      normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      pre_tokenizer: { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
    };
    const meta = hfTokenizerMetadata({ tokenizerJson: gemma, tokenizerConfig: config });
    expect(meta['tokenizer.ggml.add_space_prefix']).toEqual({ type: 'bool', value: false });
    const converted = tokenizerFromGGUF(await ggufOf(meta));
    const withoutPrefix = await readGGUF(bytesSource(new Uint8Array(readFileSync(STORIES_GGUF))));
    withoutPrefix.metadata.set('tokenizer.ggml.add_space_prefix', false);
    const reference = tokenizerFromGGUF(withoutPrefix);
    for (const text of ['Once upon a time', ' leading space', 'Lily saw a big dog.']) {
      expect(converted.encode(text), text).toEqual(reference.encode(text));
    }
    expect(converted.encode('Once')).not.toEqual(tokenizerFromGGUF(original).encode('Once'));
  });
});

// ---------------------------------------------------------------------------------------------
// Small byte-level tokenizers for the settings and the refusals. In GPT-2's byte alphabet "Ġ" is a space.

function tiny(edit: { model?: Record<string, unknown>; top?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    added_tokens: [{ id: 6, content: '<|end|>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel' },
    ...edit.top,
    model: {
      type: 'BPE', byte_fallback: false, ignore_merges: false,
      vocab: { a: 0, b: 1, ab: 2, 'Ġ': 3, 'Ġab': 4, c: 5, '<|end|>': 6 },
      merges: ['a b', 'Ġ ab'],
      ...edit.model,
    },
  };
}

const LLAMA3_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const byteLevelNoRegex = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
const pre = (files: HfTokenizerFiles) => hfTokenizerMetadata(files)['tokenizer.ggml.pre'];

describe('tokenizer.ggml.pre from the pre-tokenizer', () => {
  test('Llama 3\'s Split regex + ByteLevel: llama-bpe with ignore_merges, smaug-bpe (same regex, merges always) without', () => {
    const top = { pre_tokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_REGEX), byteLevelNoRegex] } };
    expect(pre({ tokenizerJson: tiny({ top, model: { ignore_merges: true } }) })).toEqual({ type: 'string', value: 'llama-bpe' });
    expect(pre({ tokenizerJson: tiny({ top }) })).toEqual({ type: 'string', value: 'smaug-bpe' });
  });

  test('Qwen2\'s regex → qwen2; GPT-2\'s written out as a Split → gpt-2; Digits + ByteLevel → smollm, or starcoder when decode cleans spaces', () => {
    const seq = (...steps: unknown[]) => ({ pre_tokenizer: { type: 'Sequence', pretokenizers: steps } });
    expect(pre({ tokenizerJson: tiny({ top: seq(split(QWEN2_REGEX), byteLevelNoRegex) }) })).toEqual({ type: 'string', value: 'qwen2' });
    const gpt2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
    expect(pre({ tokenizerJson: tiny({ top: seq(split(gpt2), byteLevelNoRegex) }) })).toEqual({ type: 'string', value: 'gpt-2' });
    const digits = seq({ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', use_regex: true });
    expect(pre({ tokenizerJson: tiny({ top: digits }) })).toEqual({ type: 'string', value: 'smollm' });
    expect(pre({ tokenizerJson: tiny({ top: digits }), tokenizerConfig: { clean_up_tokenization_spaces: true } })).toEqual({ type: 'string', value: 'starcoder' });
  });

  test('an unknown regex is refused, naming it', () => {
    const top = { pre_tokenizer: { type: 'Sequence', pretokenizers: [split(String.raw`\p{L}+|[0-9]{4}`), byteLevelNoRegex] } };
    expectRefusal({ tokenizerJson: tiny({ top }) }, /\/\\p\{L\}\+\|\[0-9\]\{4\}\/.*convert_hf_to_gguf/);
  });

  test('pre-tokenizer steps llama.cpp has no counterpart for are refused', () => {
    const seq = (...steps: unknown[]) => ({ pre_tokenizer: { type: 'Sequence', pretokenizers: steps } });
    expectRefusal({ tokenizerJson: tiny({ top: seq({ ...split(LLAMA3_REGEX), behavior: 'Removed' }, byteLevelNoRegex) }) }, /Isolated/);
    expectRefusal({ tokenizerJson: tiny({ top: seq({ type: 'Whitespace' }, byteLevelNoRegex) }) }, /"Whitespace" is not one/);
    expectRefusal({ tokenizerJson: tiny({ top: { pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true } } }) }, /add_prefix_space/);
    expectRefusal({ tokenizerJson: tiny({ top: { normalizer: { type: 'NFKC' } } }) }, /normalizer/);
    // A BPE without ByteLevel and without "▁" for spaces is neither kind.
    expectRefusal({ tokenizerJson: tiny({ top: { pre_tokenizer: null, decoder: null } }) }, /neither byte-level nor SentencePiece-style/);
  });
});

describe('the vocabulary', () => {
  test('merges as [a, b] pairs (transformers 4.45+) give what "a b" strings give', () => {
    expect(hfTokenizerMetadata({ tokenizerJson: tiny({ model: { merges: [['a', 'b'], ['Ġ', 'ab']] } }) }))
      .toEqual(hfTokenizerMetadata({ tokenizerJson: tiny() }));
  });

  test('added tokens: special ones and <|...|> are control, others user-defined with "▁" as a space', async () => {
    const json = tiny({ top: { added_tokens: [{ id: 6, content: '<|end|>', special: false }, { id: 7, content: '▁mark', special: false }] } });
    const meta = hfTokenizerMetadata({ tokenizerJson: json });
    expect(meta['tokenizer.ggml.token_type']).toEqual({ type: 'array', itemType: 'i32', value: [1, 1, 1, 1, 1, 1, 3, 4] });
    const tokens = meta['tokenizer.ggml.tokens'];
    expect(tokens.type === 'array' && tokens.value.slice(6)).toEqual(['<|end|>', ' mark']);
    const tok = tokenizerFromGGUF(await ggufOf(meta));
    // A user-defined token is cut out of plain text; a control token only when special text is parsed.
    expect(tok.encode('ab mark')).toEqual([2, 7]);
    expect(tok.encode('<|end|>', { parseSpecial: true })).toEqual([6]);
  });

  test('merges name the model\'s own tokens, also where an added token respells one (Gemma\'s "▁▁")', () => {
    const json = tiny({
      model: { vocab: { a: 0, b: 1, ab: 2, 'Ġ': 3, 'Ġab': 4, c: 5, '<|end|>': 6, '▁': 7, '▁▁': 8 }, merges: ['a b', 'Ġ ab', '▁ ▁'] },
      top: { added_tokens: [{ id: 6, content: '<|end|>', special: true }, { id: 8, content: '▁▁', special: false }] },
    });
    const tokens = hfTokenizerMetadata({ tokenizerJson: json })['tokenizer.ggml.tokens'];
    expect(tokens.type === 'array' && tokens.value.slice(7)).toEqual(['▁', '  ']);
  });

  test('vocabSize pads with unused [PAD<id>] tokens, and a smaller one is refused', () => {
    const meta = hfTokenizerMetadata({ tokenizerJson: tiny() }, { vocabSize: 9 });
    const tokens = meta['tokenizer.ggml.tokens'];
    const types = meta['tokenizer.ggml.token_type'];
    expect(tokens.type === 'array' && tokens.value.slice(7)).toEqual(['[PAD7]', '[PAD8]']);
    expect(types.type === 'array' && types.value.slice(7)).toEqual([5, 5]);
    expect(() => hfTokenizerMetadata({ tokenizerJson: tiny() }, { vocabSize: 6 })).toThrow(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringMatching(/vocabulary size is 6.*7 tokens/) }));
  });

  test('ids: whole numbers, one text each, dense from 0', () => {
    const vocab = (v: Record<string, unknown>) => ({ tokenizerJson: tiny({ model: { vocab: v, merges: [] }, top: { added_tokens: [] } }) });
    expectRefusal(vocab({ a: 0, b: -1 }), /\["b"\] has id -1, not a whole number/);
    expectRefusal(vocab({ a: 0, b: 1.5 }), /has id 1.5/);
    expectRefusal(vocab({ a: 0, b: '1' }), /has id "1"/);
    expectRefusal(vocab({ a: 0, b: 1, c: 1 }), /gives id 1 to both "b" and "c"/);
    expectRefusal(vocab({ a: 0, b: 2, c: 3 }), /uses id 3, but the tokenizer has 3 tokens/);
    // An added token restating a vocabulary id leaves room for a gap below the largest id.
    expectRefusal({ tokenizerJson: tiny({ model: { vocab: { a: 0, b: 2 }, merges: [] }, top: { added_tokens: [{ id: 0, content: 'a' }] } }) }, /no token with id 1, though ids run to 2/);
    expectRefusal(vocab({ a: 0, b: 1e9 }), /uses id 1000000000, but the tokenizer has 2 tokens/);
    expectRefusal({ tokenizerJson: tiny({ top: { added_tokens: [{ id: 6, content: '<x>' }, { id: 6, content: '<y>' }] } }) }, /Two added tokens have id 6/);
    expectRefusal({ tokenizerJson: tiny({ top: { added_tokens: [{ id: 7, content: 7 }] } }) }, /added_tokens\[0\] has no "content"/);
  });

  test('merges must name tokens that exist and make one', () => {
    expectRefusal({ tokenizerJson: tiny({ model: { merges: ['a b', 'a z'] } }) }, /merges\[1\] merges "a" and "z", but "z" is not a token/);
    expectRefusal({ tokenizerJson: tiny({ model: { merges: ['a c'] } }) }, /"ac" is not a token/);
    expectRefusal({ tokenizerJson: tiny({ model: { merges: ['a b', 'ab'] } }) }, /merges\[1\] \("ab"\) is not two tokens/);
    expectRefusal({ tokenizerJson: tiny({ model: { merges: [['a', 'b', 'c']] } }) }, /is not two tokens/);
    expectRefusal({ tokenizerJson: tiny({ model: { merges: 'a b' } }) }, /merges is not a list/);
  });

  test('only BPE models are converted', () => {
    expectRefusal({ tokenizerJson: tiny({ model: { type: 'Unigram' } }) }, /"Unigram" model.*convert_hf_to_gguf/);
    expectRefusal({ tokenizerJson: tiny({ model: { type: 'WordPiece' } }) }, /"WordPiece"/);
    expectRefusal({ tokenizerJson: tiny({ model: { continuing_subword_prefix: '##' } }) }, /continuing_subword_prefix/);
    expectRefusal({ tokenizerJson: [] }, /not a JSON object/);
    expectRefusal({}, /no tokenizer.json, nor vocab.json with merges.txt/);
  });

  test('the shape of tokenizer.json is checked before anything is read from it', () => {
    const { model, ...noModel } = tiny();
    expect(model).toBeDefined();
    expectRefusal({ tokenizerJson: noModel }, /no "model" object/);
    expectRefusal({ tokenizerJson: tiny({ model: { vocab: ['a', 'b'] } }) }, /no "vocab" object/);
    expectRefusal({ tokenizerJson: tiny({ model: { vocab: {}, merges: [] }, top: { added_tokens: [] } }) }, /holds no tokens/);
    expectRefusal({ tokenizerJson: tiny({ top: { added_tokens: { id: 6 } } }) }, /"added_tokens" is not a list/);
    expectRefusal({ tokenizerJson: tiny({ model: { unk_token: 3 } }) }, /unk_token is not a text/);
    expectRefusal({ tokenizerJson: tiny({ model: { unk_token: '<unk>' } }) }, /model.unk_token names "<unk>", which is not a token/);
    expectRefusal({ tokenizerJson: tiny({ model: { end_of_word_suffix: '</w>' } }) }, /end_of_word_suffix/);
    expectRefusal({ tokenizerJson: tiny({ top: { pre_tokenizer: 'ByteLevel' } }) }, /pipeline step that is not an object/);
    expectRefusal({ tokenizerJson: tiny({ top: { pre_tokenizer: { type: 'Sequence' } } }) }, /Sequence without its list/);
    // Byte-level tokens never hold a raw space; one that does cannot be written as a GGUF merge.
    expectRefusal({ tokenizerJson: tiny({ model: { vocab: { a: 0, ' b': 1, 'a b': 2 }, merges: [['a', ' b']] }, top: { added_tokens: [] } }) }, /raw space/);
    expect(() => hfTokenizerMetadata({ tokenizerJson: tiny() }, { vocabSize: 7.5 })).toThrow(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringMatching(/vocabulary size is 7.5/) }));
    // SentencePiece-style pre-tokenizers: Metaspace with "▁" only.
    const spm = (preTokenizer: unknown) => tiny({ top: { pre_tokenizer: preTokenizer, decoder: null }, model: { byte_fallback: true } });
    expectRefusal({ tokenizerJson: spm({ type: 'Metaspace', replacement: '_' }) }, /Metaspace with "▁"/);
    expectRefusal({ tokenizerJson: spm({ type: 'Punctuation' }) }, /Metaspace with "▁"/);
  });

  test('SentencePiece-style: the 256 byte tokens must be there for byte fallback', () => {
    const json = tiny({
      top: { pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, decoder: null },
      model: { byte_fallback: true, vocab: { '<unk>': 0, '<0x00>': 1, a: 2 }, merges: [] },
    });
    (json as { added_tokens: unknown[] }).added_tokens = [];
    expectRefusal({ tokenizerJson: json }, /no byte token <0x01>/);
  });

  test('vocab.json + merges.txt: malformed lines and a missing half are refused', () => {
    const vocabJson = { a: 0, b: 1, ab: 2 };
    expectRefusal({ vocabJson, mergesTxt: '#version: 0.2\na b\na b c\n' }, /merges.txt line 3/);
    expectRefusal({ vocabJson, mergesTxt: 'a x\n' }, /"x" is not a token/);
    expectRefusal({ vocabJson }, /no tokenizer.json, nor vocab.json with merges.txt/);
    expectRefusal({ vocabJson, mergesTxt: '', tokenizerConfig: { added_tokens_decoder: { x: { content: '<s>' } } } }, /"x" is not a token id/);
    expect(hfTokenizerMetadata({ vocabJson, mergesTxt: '#version: 0.2\na b\n\n' })['tokenizer.ggml.merges'])
      .toEqual({ type: 'array', itemType: 'string', value: ['a b'] });
  });
});

describe('tokenizer_config.json and generation_config.json', () => {
  test('special tokens as text or {content}; add_bos / add_eos; a list of chat templates', () => {
    const meta = hfTokenizerMetadata({
      tokenizerJson: tiny(),
      tokenizerConfig: {
        bos_token: 'a', eos_token: { content: '<|end|>' }, unk_token: null, pad_token: '<missing>',
        add_bos_token: true, add_eos_token: false,
        chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }],
      },
    });
    expect(meta['tokenizer.ggml.bos_token_id']).toEqual({ type: 'u32', value: 0 });
    expect(meta['tokenizer.ggml.eos_token_id']).toEqual({ type: 'u32', value: 6 });
    expect(meta['tokenizer.ggml.unknown_token_id']).toBeUndefined();
    expect(meta['tokenizer.ggml.padding_token_id']).toBeUndefined(); // as llama.cpp: a padding token not in the vocabulary is ignored
    expect(meta['tokenizer.ggml.add_bos_token']).toEqual({ type: 'bool', value: true });
    expect(meta['tokenizer.ggml.add_eos_token']).toEqual({ type: 'bool', value: false });
    expect(meta['tokenizer.chat_template']).toEqual({ type: 'string', value: 'D' });
    expect(meta['tokenizer.chat_template.tool_use']).toEqual({ type: 'string', value: 'T' });
  });

  test('special_tokens_map.json names what tokenizer_config.json leaves out; keys are own keys only', () => {
    const meta = hfTokenizerMetadata({ tokenizerJson: tiny(), tokenizerConfig: JSON.parse('{"__proto__": {"bos_token": "b"}}'), specialTokensMap: { bos_token: 'ab' } });
    expect(meta['tokenizer.ggml.bos_token_id']).toEqual({ type: 'u32', value: 2 });
  });

  test('generation_config.json: sampling defaults into general.sampling.*, every eos id ends generation', async () => {
    const json = tiny({ top: { added_tokens: [{ id: 6, content: '<|end|>', special: true }, { id: 7, content: '<stop>', special: true }, { id: 8, content: '<halt>', special: true }, { id: 9, content: '<quit>', special: true }] } });
    const meta = hfTokenizerMetadata({
      tokenizerJson: json,
      generationConfig: { do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95, min_p: 0, repetition_penalty: 1.1, eos_token_id: [7, 6, 8, 9] },
    });
    expect(meta['general.sampling.temp']).toEqual({ type: 'f32', value: 0.6 });
    expect(meta['general.sampling.top_k']).toEqual({ type: 'i32', value: 20 });
    expect(meta['general.sampling.top_p']).toEqual({ type: 'f32', value: 0.95 });
    expect(meta['general.sampling.min_p']).toEqual({ type: 'f32', value: 0 });
    expect(meta['general.sampling.penalty_repeat']).toEqual({ type: 'f32', value: 1.1 });
    // The first id is eos; <|end|> is end-of-generation by its text already; the others take the eot and eom keys.
    expect(meta['tokenizer.ggml.eos_token_id']).toEqual({ type: 'u32', value: 7 });
    expect(meta['tokenizer.ggml.eot_token_id']).toEqual({ type: 'u32', value: 8 });
    expect(meta['tokenizer.ggml.eom_token_id']).toEqual({ type: 'u32', value: 9 });
    const tok = tokenizerFromGGUF(await ggufOf(meta));
    for (const id of [6, 7, 8, 9]) expect(tok.isEndOfGeneration(id), `id ${id}`).toBe(true);
    expect(tok.isEndOfGeneration(2)).toBe(false);
    // A third id without a llama.cpp key of its own goes into Lantern's list.
    const more = hfTokenizerMetadata({ tokenizerJson: json, generationConfig: { eos_token_id: [7, 8, 9, 5, 8] } });
    expect(more['tokenizer.lantern.eog_token_ids']).toEqual({ type: 'array', itemType: 'u32', value: [5] });
  });

  test('tokenizer_config.json\'s eos stays eos; generation_config.json\'s one id is eos when the config names none', () => {
    const json = tiny({ top: { added_tokens: [{ id: 6, content: '<|end|>', special: true }] } });
    const both = hfTokenizerMetadata({ tokenizerJson: json, tokenizerConfig: { eos_token: '<|end|>' }, generationConfig: { eos_token_id: [5, 6] } });
    expect(both['tokenizer.ggml.eos_token_id']).toEqual({ type: 'u32', value: 6 });
    expect(both['tokenizer.ggml.eot_token_id']).toEqual({ type: 'u32', value: 5 });
    const genOnly = hfTokenizerMetadata({ tokenizerJson: json, generationConfig: { eos_token_id: 5 } });
    expect(genOnly['tokenizer.ggml.eos_token_id']).toEqual({ type: 'u32', value: 5 });
    expect(genOnly['tokenizer.ggml.eot_token_id']).toBeUndefined();
  });

  test('bad values are refused with the file and key named', () => {
    const tokenizerJson = tiny();
    expectRefusal({ tokenizerJson, tokenizerConfig: { bos_token: '<s>' } }, /^tokenizer_config.json names bos_token "<s>", which is not a token/);
    expectRefusal({ tokenizerJson, specialTokensMap: { unk_token: { content: '<unk>' } } }, /^special_tokens_map.json names unk_token "<unk>"/);
    expectRefusal({ tokenizerJson, tokenizerConfig: { eos_token: 7 } }, /eos_token is 7, neither a token text/);
    expectRefusal({ tokenizerJson, tokenizerConfig: { add_bos_token: 'yes' } }, /add_bos_token is "yes", not true or false/);
    expectRefusal({ tokenizerJson, tokenizerConfig: { chat_template: [{ name: 'tool_use', template: 'T' }] } }, /chat_template.*"default"/);
    expectRefusal({ tokenizerJson, tokenizerConfig: { chat_template: 42 } }, /chat_template is neither/);
    expectRefusal({ tokenizerJson, tokenizerConfig: 'x' }, /tokenizer_config.json is not a JSON object/);
    expectRefusal({ tokenizerJson, generationConfig: { eos_token_id: [6, 7] } }, /eos_token_id holds 7, but the tokenizer's ids run from 0 to 6/);
    expectRefusal({ tokenizerJson, generationConfig: { eos_token_id: '6' } }, /eos_token_id holds "6"/);
    expectRefusal({ tokenizerJson, generationConfig: { top_p: 1.5 } }, /top_p is 1.5, not a number from 0 to 1/, 'BAD_MODEL_FILE');
    expectRefusal({ tokenizerJson, generationConfig: { top_k: 2.5 } }, /top_k is 2.5/, 'BAD_MODEL_FILE');
    expectRefusal({ tokenizerJson, generationConfig: { temperature: '0.7' } }, /temperature is "0.7"/, 'BAD_MODEL_FILE');
    expectRefusal({ tokenizerJson: tiny({ top: { post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>' } }, { Sequence: { id: 'A' } }] } } }) }, /post_processor names "<s>"/);
  });
});
