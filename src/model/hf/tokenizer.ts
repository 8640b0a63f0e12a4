import { LanternError } from '../../errors.ts';
import type { MetaValue } from '../gguf-writer.ts';
import { preTokenizerRegexes } from '../tokenizer/pretokenize.ts';
import { EOG_TEXTS } from '../tokenizer/vocab.ts';

/**
 * Hugging Face tokenizer files → the tokenizer metadata of a GGUF file, as llama.cpp's
 * convert_hf_to_gguf.py writes it (get_vocab_base, LlamaHfVocab and gguf-py's SpecialVocab), so
 * that the tokenizer Lantern runs for GGUF files (src/model/tokenizer) runs HF repositories as they are.
 *
 * Two kinds of BPE are converted:
 * - byte-level (a ByteLevel pre-tokenizer or decoder: GPT-2, GPT-NeoX, Qwen, Llama 3, SmolLM), or
 *   vocab.json + merges.txt: `tokenizer.ggml.model = gpt2`, the merges, and the `tokenizer.ggml.pre`
 *   whose regex list equals the one the file's pre-tokenizer applies;
 * - SentencePiece-style (spaces written "▁", byte fallback: Llama 2, Mistral, Gemma): `llama`, with
 *   scores that make llama.cpp's SentencePiece merge loop (highest score first) follow HF's merge
 *   order: a token made by merge number r scores -r.
 *
 * Besides the tokenizer.ggml.* keys and tokenizer.chat_template, generation_config.json gives:
 * - general.sampling.temp / top_k / top_p / min_p / penalty_repeat (llama.cpp's keys, filled as
 *   gguf-py's Metadata.load fills them: temperature, top_k, top_p, min_p, repetition_penalty);
 * - eos_token_id, one id or a list: all of them end generation. The first is eos when
 *   tokenizer_config.json names none (where it does, its eos stays eos, as convert_hf_to_gguf.py
 *   writes it: Llama 3.1 Instruct's <|eot_id|>). Ids whose text llama.cpp already treats as end of
 *   generation need nothing more; the others go into eot_token_id and eom_token_id, and any beyond
 *   those two into `tokenizer.lantern.eog_token_ids` (no llama.cpp key carries a list).
 */

export interface HfTokenizerFiles {
  /** Parsed tokenizer.json. */
  tokenizerJson?: unknown;
  /** Parsed vocab.json (GPT-2 / GPT-Neo repositories without tokenizer.json). */
  vocabJson?: unknown;
  /** merges.txt as text. */
  mergesTxt?: string;
  /** Parsed tokenizer_config.json: bos/eos/unk/pad, add_bos_token, add_eos_token, chat_template, added_tokens_decoder. */
  tokenizerConfig?: unknown;
  /** Parsed special_tokens_map.json: bos/eos/unk/pad where tokenizer_config.json names none. */
  specialTokensMap?: unknown;
  /** Parsed generation_config.json: eos_token_id and sampling defaults. */
  generationConfig?: unknown;
}

export interface HfTokenizerOptions {
  /**
   * The model's vocabulary size (config.json vocab_size, the rows of its embedding). Ids past the
   * tokenizer's last one become unused "[PAD<id>]" tokens, as convert_hf_to_gguf.py pads them.
   */
  vocabSize?: number;
}

/** gguf-py TokenType. */
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

/** The tokenizer.ggml.* / tokenizer.chat_template keys llama.cpp's convert_hf_to_gguf.py would write, plus sampling defaults. */
export function hfTokenizerMetadata(files: HfTokenizerFiles, options: HfTokenizerOptions = {}): Record<string, MetaValue> {
  const config = optionalRecord(files.tokenizerConfig, 'tokenizer_config.json');
  const specialMap = optionalRecord(files.specialTokensMap, 'special_tokens_map.json');
  const vocab = files.tokenizerJson !== undefined ? fromTokenizerJson(files.tokenizerJson, config) : fromVocabJson(files, config);
  const { tokens, types } = vocab;

  // bos / eos / unk / pad as tokenizer_config.json (or special_tokens_map.json) names them.
  const special = (key: string): number | undefined => {
    const named = specialText(config, specialMap, key);
    if (named === undefined) return undefined;
    const { file, text } = named;
    const id = vocab.addedIds.get(text) ?? vocab.idOf.get(text);
    // As llama.cpp with an out-of-range padding id: a missing pad token is ignored, not fatal.
    if (id === undefined && key !== 'pad_token') {
      fail(`${file} names ${key} "${text}", which is not a token of the vocabulary; fix the file's ${key} or the tokenizer files.`, { key, text });
    }
    return id;
  };
  let bos = special('bos_token');
  let eos = special('eos_token');
  const unk = special('unk_token') ?? vocab.unk;
  const pad = special('pad_token');
  // A vocab.json tokenizer marks the tokens the config names as special (HF adds them as special tokens).
  if (vocab.fromVocabJson) for (const id of [bos, eos, unk, pad]) if (id !== undefined) types[id] = CONTROL;

  // The post-processor's template says whether BOS/EOS are added; tokenizer_config.json's flags win.
  let addBos: boolean | undefined;
  let addEos: boolean | undefined;
  if (vocab.template.first !== undefined) {
    const id = lookup(vocab, vocab.template.first, 'post_processor');
    bos ??= id;
    addBos = id === bos;
  }
  if (vocab.template.last !== undefined) {
    const id = lookup(vocab, vocab.template.last, 'post_processor');
    eos ??= id;
    addEos = id === eos;
  }
  addBos = configBool(config, 'add_bos_token') ?? addBos;
  addEos = configBool(config, 'add_eos_token') ?? addEos;

  const generation = optionalRecord(files.generationConfig, 'generation_config.json');
  const eogIds = generationEos(generation, tokens.length);
  eos ??= eogIds[0];
  const extraEog = [...new Set(eogIds)].filter((id) => id !== eos && !EOG_TEXTS.has(tokens[id]));

  // Pad to the model's vocabulary size, as convert_hf_to_gguf.py does.
  if (options.vocabSize !== undefined) {
    const size = options.vocabSize;
    if (!Number.isSafeInteger(size) || size < tokens.length) {
      fail(`The model's vocabulary size is ${size}, but its tokenizer has ${tokens.length} tokens; the config.json vocab_size and the tokenizer files do not belong together.`, { vocabSize: size, nTokens: tokens.length });
    }
    for (let id = tokens.length; id < size; id++) {
      tokens.push(`[PAD${id}]`);
      types.push(UNUSED);
    }
  }

  const meta: Record<string, MetaValue> = {
    'tokenizer.ggml.model': { type: 'string', value: vocab.kind === 'bpe' ? 'gpt2' : 'llama' },
    'tokenizer.ggml.pre': { type: 'string', value: vocab.pre },
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: tokens },
    'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: types },
  };
  if (vocab.kind === 'spm') {
    meta['tokenizer.ggml.scores'] = { type: 'array', itemType: 'f32', value: spmScores(vocab, tokens.length) };
    meta['tokenizer.ggml.add_space_prefix'] = { type: 'bool', value: configBool(config, 'add_prefix_space') ?? vocab.addSpacePrefix };
  } else {
    meta['tokenizer.ggml.merges'] = { type: 'array', itemType: 'string', value: vocab.merges.map(([a, b]) => `${a} ${b}`) };
  }
  const ids: [string, number | undefined][] = [
    ['tokenizer.ggml.bos_token_id', bos], ['tokenizer.ggml.eos_token_id', eos], ['tokenizer.ggml.unknown_token_id', unk],
    ['tokenizer.ggml.padding_token_id', pad], ['tokenizer.ggml.eot_token_id', extraEog[0]], ['tokenizer.ggml.eom_token_id', extraEog[1]],
  ];
  for (const [key, id] of ids) if (id !== undefined) meta[key] = { type: 'u32', value: id };
  if (extraEog.length > 2) meta['tokenizer.lantern.eog_token_ids'] = { type: 'array', itemType: 'u32', value: extraEog.slice(2) };
  if (addBos !== undefined) meta['tokenizer.ggml.add_bos_token'] = { type: 'bool', value: addBos };
  if (addEos !== undefined) meta['tokenizer.ggml.add_eos_token'] = { type: 'bool', value: addEos };
  Object.assign(meta, chatTemplates(config), samplingDefaults(generation));
  return meta;
}

// ---------------------------------------------------------------------------------------------
// The vocabulary: tokens by id, their types, merges, and the pre-tokenizer.

interface Vocabulary {
  kind: 'bpe' | 'spm';
  /** Token texts by id, dense from 0. */
  tokens: string[];
  /** gguf-py TokenType by id. */
  types: number[];
  /** Text → the first id with that text. */
  idOf: Map<string, number>;
  /** The BPE model's own vocabulary, text → id: what merges name (added tokens may be respelled). */
  modelIds: Map<string, number>;
  /** Added-token content → id: special tokens named by text are looked up here first, as SpecialVocab does. */
  addedIds: Map<string, number>;
  /** Merges in rank order, each naming two tokens whose concatenation is a token. */
  merges: [string, string][];
  /** tokenizer.ggml.pre ("default" for SentencePiece-style, as convert_hf_to_gguf.py writes). */
  pre: string;
  addSpacePrefix: boolean;
  /** The BPE model's unk_token, as an id. */
  unk: number | undefined;
  /** Special tokens the post-processor puts before / after a single sequence. */
  template: { first?: string; last?: string };
  fromVocabJson: boolean;
}

interface AddedToken { id: number; content: string; special: boolean }

function fromTokenizerJson(json: unknown, config: Record<string, unknown> | undefined): Vocabulary {
  if (!isRecord(json)) fail('tokenizer.json is not a JSON object; download the file again.');
  const model = own(json, 'model');
  if (!isRecord(model)) fail('tokenizer.json has no "model" object; download the file again.');
  const type = own(model, 'type');
  if (type !== 'BPE') {
    fail(`tokenizer.json holds a ${JSON.stringify(type)} model, and Lantern converts BPE tokenizers only (byte-level like GPT-2 or Llama 3, SentencePiece-style like Llama 2); convert the model with llama.cpp's convert_hf_to_gguf.py and load the GGUF file.`, { type: String(type) });
  }
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix']) {
    const affix = own(model, key);
    if (typeof affix === 'string' && affix !== '') {
      fail(`tokenizer.json's BPE model has a ${key} ("${affix}"), which llama.cpp's BPE has no place for; convert the model with llama.cpp's convert_hf_to_gguf.py if it supports it.`, { key });
    }
  }
  const vocabJson = own(model, 'vocab');
  if (!isRecord(vocabJson)) fail('tokenizer.json\'s model has no "vocab" object of token → id; download the file again.');
  const addedJson = own(json, 'added_tokens') ?? [];
  if (!Array.isArray(addedJson)) fail('tokenizer.json\'s "added_tokens" is not a list; download the file again.');
  const added = addedJson.map((entry, i): AddedToken => {
    const where = `tokenizer.json added_tokens[${i}]`;
    if (!isRecord(entry) || typeof own(entry, 'content') !== 'string') fail(`${where} has no "content" text; download the file again.`);
    return { id: checkId(own(entry, 'id'), where), content: own(entry, 'content') as string, special: own(entry, 'special') === true };
  });

  const preTokenizer = own(json, 'pre_tokenizer') ?? null;
  const normalizer = own(json, 'normalizer') ?? null;
  const byteLevel = hasType(preTokenizer, 'ByteLevel') || hasType(own(json, 'decoder') ?? null, 'ByteLevel');
  const kind = byteLevel ? 'bpe' : 'spm';
  const spaces = kind === 'spm' ? spmSpaces(normalizer, preTokenizer) : undefined;
  if (kind === 'bpe') checkNormalizer(normalizer, 'bpe');

  const vocab = vocabulary(kind, Object.entries(vocabJson), added, 'tokenizer.json model.vocab');
  const unkText = own(model, 'unk_token');
  if (unkText !== undefined && unkText !== null) {
    if (typeof unkText !== 'string') fail('tokenizer.json\'s model unk_token is not a text; download the file again.');
    vocab.unk = lookup(vocab, unkText, 'tokenizer.json model.unk_token');
    if (kind === 'spm') vocab.types[vocab.unk] = UNKNOWN;
  }
  vocab.merges = readMerges(own(model, 'merges'), vocab, kind);
  if (kind === 'bpe') {
    const ignoreMerges = own(model, 'ignore_merges') === true;
    const cleanSpaces = config === undefined ? undefined : own(config, 'clean_up_tokenization_spaces');
    vocab.pre = preName(preTokenizer, ignoreMerges, typeof cleanSpaces === 'boolean' ? cleanSpaces : undefined);
  } else {
    vocab.addSpacePrefix = spaces!.prepend;
  }
  vocab.template = templateEnds(own(json, 'post_processor') ?? null);
  return vocab;
}

/** GPT-2-style repositories: vocab.json, merges.txt, special tokens from tokenizer_config.json's added_tokens_decoder. */
function fromVocabJson(files: HfTokenizerFiles, config: Record<string, unknown> | undefined): Vocabulary {
  if (files.vocabJson === undefined || files.mergesTxt === undefined) {
    fail('The repository has no tokenizer.json, nor vocab.json with merges.txt; Lantern needs one of the two to build the tokenizer.');
  }
  if (!isRecord(files.vocabJson)) fail('vocab.json is not a JSON object of token → id; download the file again.');
  const added: AddedToken[] = [];
  const decoder = config === undefined ? undefined : own(config, 'added_tokens_decoder');
  if (decoder !== undefined) {
    if (!isRecord(decoder)) fail('tokenizer_config.json\'s added_tokens_decoder is not an object of id → token; fix the file.');
    for (const [key, entry] of Object.entries(decoder)) {
      const where = `tokenizer_config.json added_tokens_decoder["${key}"]`;
      if (!/^\d+$/.test(key)) fail(`${where}: "${key}" is not a token id; fix the file.`);
      if (!isRecord(entry) || typeof own(entry, 'content') !== 'string') fail(`${where} has no "content" text; fix the file.`);
      added.push({ id: checkId(Number(key), where), content: own(entry, 'content') as string, special: own(entry, 'special') === true });
    }
  }
  const vocab = vocabulary('bpe', Object.entries(files.vocabJson), added, 'vocab.json');
  vocab.fromVocabJson = true;
  const pairs: [string, string][] = [];
  files.mergesTxt.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || (i === 0 && line.startsWith('#'))) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2) fail(`merges.txt line ${i + 1} ("${line}") is not two tokens separated by a space; download the file again.`, { line: i + 1 });
    pairs.push([parts[0], parts[1]]);
  });
  vocab.merges = readMerges(pairs, vocab, 'bpe', 'merges.txt');
  vocab.pre = 'gpt-2';
  return vocab;
}

/**
 * Tokens by id from the model's vocabulary and the added tokens: every id a whole number, used once
 * in each list, and together dense from 0. An added token may restate a vocabulary id; its content
 * is the text then (HF decodes added tokens by their content).
 */
function vocabulary(kind: 'bpe' | 'spm', entries: [string, unknown][], added: AddedToken[], where: string): Vocabulary {
  // Dense ids cannot reach past the number of entries; anything larger is refused before allocating.
  const limit = entries.length + added.length;
  const tokens: (string | undefined)[] = new Array(limit);
  const modelIds = new Map<string, number>();
  for (const [text, rawId] of entries) {
    const id = checkId(rawId, `${where}["${text}"]`);
    if (id >= limit) notDense(id, limit, where);
    if (tokens[id] !== undefined) fail(`${where} gives id ${id} to both "${tokens[id]}" and "${text}"; a tokenizer needs one text per id, so the file is damaged.`, { id });
    tokens[id] = text;
    modelIds.set(text, id);
  }
  const addedIds = new Map<string, number>();
  const addedSeen = new Set<number>();
  for (const token of added) {
    if (token.id >= limit) notDense(token.id, limit, 'the added tokens');
    if (addedSeen.has(token.id)) fail(`Two added tokens have id ${token.id}; a tokenizer needs one text per id, so the file is damaged.`, { id: token.id });
    addedSeen.add(token.id);
    tokens[token.id] = token.content;
    if (!addedIds.has(token.content)) addedIds.set(token.content, token.id);
  }
  let n = tokens.length;
  while (n > 0 && tokens[n - 1] === undefined) n--;
  const missing = tokens.slice(0, n).findIndex((t) => t === undefined);
  if (missing >= 0) {
    fail(`The tokenizer has no token with id ${missing}, though ids run to ${n - 1}; its ids must run from 0 with none missing, so the files are damaged or do not belong together.`, { id: missing });
  }
  if (n === 0) fail(`${where} holds no tokens; download the file again.`);
  const texts = tokens.slice(0, n) as string[];

  const types: number[] = texts.map((text) => (kind === 'spm' && BYTE_TOKEN.test(text) ? BYTE : NORMAL));
  for (const token of added) {
    if (types[token.id] === BYTE) continue;
    if (token.special || looksSpecial(token.content)) {
      types[token.id] = CONTROL;
    } else {
      types[token.id] = USER_DEFINED;
      // llama.cpp matches user-defined tokens in the raw text, so "▁" stands for a space (convert_hf_to_gguf.py).
      texts[token.id] = token.content.replaceAll('▁', ' ');
    }
  }
  const idOf = new Map<string, number>();
  texts.forEach((text, id) => { if (!idOf.has(text)) idOf.set(text, id); });

  if (kind === 'spm') {
    for (let b = 0; b < 256; b++) {
      const text = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      if (idOf.get(text) === undefined) {
        fail(`The SentencePiece-style tokenizer has no byte token ${text}; llama.cpp falls back to the 256 tokens <0x00>..<0xFF> for text outside the vocabulary, so Lantern cannot run it.`, { token: text });
      }
    }
  }
  return {
    kind, tokens: texts, types, idOf, modelIds, addedIds, merges: [], pre: 'default', addSpacePrefix: false, unk: undefined,
    template: {}, fromVocabJson: false,
  };
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/** convert_hf_to_gguf.py's does_token_look_special: added tokens some models forget to mark special. */
function looksSpecial(text: string): boolean {
  return text === '<pad>' || text === '<mask>' || text === '<2mass>' || text === '[@BOS@]'
    || (text.startsWith('<|') && text.endsWith('|>')) || (text.startsWith('<｜') && text.endsWith('｜>'))
    || (text.startsWith('<unused') && text.endsWith('>'));
}

/**
 * Merges as "a b" strings or [a, b] pairs (transformers 4.45+), each naming two tokens whose
 * concatenation is a token, as HF's BPE requires.
 */
function readMerges(raw: unknown, vocab: Vocabulary, kind: 'bpe' | 'spm', where = 'tokenizer.json model.merges'): [string, string][] {
  if (!Array.isArray(raw)) fail(`${where} is not a list; download the file again.`);
  return raw.map((merge, rank): [string, string] => {
    let pair: unknown[];
    if (typeof merge === 'string') {
      pair = merge.split(' ');
    } else if (Array.isArray(merge)) {
      pair = merge;
    } else {
      pair = [];
    }
    if (pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string' || pair[0] === '' || pair[1] === '') {
      fail(`${where}[${rank}] (${JSON.stringify(merge)}) is not two tokens, as "a b" or ["a", "b"]; download the file again.`, { rank });
    }
    const [a, b] = pair as [string, string];
    for (const part of [a, b, a + b]) {
      if (!vocab.modelIds.has(part)) {
        fail(`${where}[${rank}] merges "${a}" and "${b}", but "${part}" is not a token of the vocabulary; the tokenizer files are damaged or do not belong together.`, { rank, token: part });
      }
    }
    // GGUF stores a merge as one "a b" string: a part with a space in it could not be told apart.
    if (kind === 'bpe' && (a.includes(' ') || b.includes(' '))) {
      fail(`${where}[${rank}] merges "${a}" and "${b}", and a byte-level token with a raw space cannot be written as a GGUF merge; convert the model with llama.cpp's convert_hf_to_gguf.py.`, { rank });
    }
    return [a, b];
  });
}

/**
 * SentencePiece-style scores for llama.cpp's merge loop, which joins the adjacent pair whose joined
 * text has the highest score: -r for a token made by merge number r (its first), so pairs join in
 * HF's merge order. Tokens no merge makes (single characters, bytes, special tokens) score below
 * every merge: HF never builds them by merging, so llama.cpp should do so last.
 */
function spmScores(vocab: Vocabulary, n: number): number[] {
  const unmerged = -(vocab.merges.length + 1);
  const scores = new Array<number>(n).fill(unmerged);
  for (let rank = vocab.merges.length - 1; rank >= 0; rank--) {
    const [a, b] = vocab.merges[rank];
    scores[vocab.modelIds.get(a + b)!] = -rank;
  }
  return scores;
}

// ---------------------------------------------------------------------------------------------
// Normalizers and pre-tokenizers.

/** The node itself, or the members of a Sequence (pretokenizers, normalizers, decoders, processors). */
function members(node: unknown): Record<string, unknown>[] {
  if (node === null) return [];
  if (!isRecord(node)) fail(`tokenizer.json has a pipeline step that is not an object (${JSON.stringify(node)}); download the file again.`);
  if (own(node, 'type') !== 'Sequence') return [node];
  const list = own(node, 'pretokenizers') ?? own(node, 'normalizers') ?? own(node, 'decoders') ?? own(node, 'processors');
  if (!Array.isArray(list)) fail('tokenizer.json has a Sequence without its list of steps; download the file again.');
  return list.flatMap(members);
}

function hasType(node: unknown, type: string): boolean {
  return isRecord(node) && members(node).some((m) => own(m, 'type') === type);
}

/**
 * Normalizers llama.cpp's tokenizers can stand in for: NFC (which llama.cpp skips, as
 * convert_hf_to_gguf.py leaves it out: Qwen2), and for SentencePiece-style tokenizers the
 * Prepend "▁" / Replace " " → "▁" pair that llama.cpp's SPM tokenizer does itself.
 */
function checkNormalizer(normalizer: unknown, kind: 'bpe' | 'spm'): { prepend: boolean; replaceSpace: boolean } {
  let prepend = false;
  let replaceSpace = false;
  for (const step of members(normalizer)) {
    const type = own(step, 'type');
    const pattern = own(step, 'pattern');
    if (type === 'NFC') continue;
    if (kind === 'spm' && type === 'Prepend' && own(step, 'prepend') === '▁') {
      prepend = true;
    } else if (kind === 'spm' && type === 'Replace' && isRecord(pattern) && own(pattern, 'String') === ' ' && own(step, 'content') === '▁') {
      replaceSpace = true;
    } else {
      fail(`tokenizer.json's normalizer ${JSON.stringify(step)} is not one llama.cpp's tokenizers apply, so Lantern would tokenize differently from the model's training; convert the model with llama.cpp's convert_hf_to_gguf.py if it supports it.`, { type: String(type) });
    }
  }
  return { prepend, replaceSpace };
}

/** How a SentencePiece-style tokenizer writes spaces: as "▁", with one put before the text or not. */
function spmSpaces(normalizer: unknown, preTokenizer: unknown): { prepend: boolean } {
  let { prepend, replaceSpace } = checkNormalizer(normalizer, 'spm');
  for (const step of members(preTokenizer)) {
    // Gemma splits at spaces after its normalizer has replaced them all: nothing is left to split at.
    const pattern = own(step, 'pattern');
    if (replaceSpace && own(step, 'type') === 'Split' && isRecord(pattern) && own(pattern, 'String') === ' ' && own(step, 'invert') !== true) continue;
    if (own(step, 'type') !== 'Metaspace' || own(step, 'replacement') !== '▁') {
      fail(`tokenizer.json's pre-tokenizer ${JSON.stringify(step)} is not one a SentencePiece-style tokenizer in llama.cpp applies (Metaspace with "▁"); convert the model with llama.cpp's convert_hf_to_gguf.py if it supports it.`, { type: String(own(step, 'type')) });
    }
    replaceSpace = true;
    const scheme = own(step, 'prepend_scheme');
    prepend = scheme === undefined ? own(step, 'add_prefix_space') !== false : scheme === 'always' || scheme === 'first';
  }
  if (!replaceSpace) {
    fail('tokenizer.json\'s BPE has neither a ByteLevel pre-tokenizer nor spaces written as "▁" (a Metaspace pre-tokenizer or a Replace normalizer), so it is neither byte-level nor SentencePiece-style BPE, the two Lantern runs; convert the model with llama.cpp\'s convert_hf_to_gguf.py if it supports it.');
  }
  return { prepend };
}

const GPT2_REGEXES = preTokenizerRegexes('gpt-2')!;

/**
 * tokenizer.ggml.pre names, one per regex list. Names with the same list differ in what vocab.ts
 * derives from the name: llama-bpe skips the merges for a word that is a token (HF's
 * ignore_merges), starcoder cleans up spaces when decoding (clean_up_tokenization_spaces) where
 * smollm does not. The first that fits is taken.
 */
const PRE_CHOICES: { pre: string; ignoreMerges?: boolean; cleanSpaces?: boolean }[] = [
  { pre: 'gpt-2' },
  { pre: 'llama-bpe', ignoreMerges: true }, { pre: 'smaug-bpe', ignoreMerges: false },
  { pre: 'qwen2' }, { pre: 'qwen35' },
  { pre: 'smollm', cleanSpaces: false }, { pre: 'starcoder', cleanSpaces: true },
  { pre: 'deepseek-v3' }, { pre: 'deepseek-llm' }, { pre: 'deepseek-coder' }, { pre: 'falcon' },
  { pre: 'poro-chat' }, { pre: 'viking' }, { pre: 'tekken' }, { pre: 'gpt-4o' }, { pre: 'chameleon' },
  { pre: 'superbpe' }, { pre: 'bailingmoe' }, { pre: 'seed-coder' }, { pre: 'ufakzeka' }, { pre: 'exaone-moe' },
  { pre: 'minicpm5' }, { pre: 'laguna' }, { pre: 'jais-2' }, { pre: 'spark2_5' },
];

/** The tokenizer.ggml.pre whose regex list (llama-vocab.cpp) equals what the file's pre-tokenizer applies. */
function preName(preTokenizer: unknown, ignoreMerges: boolean, cleanSpaces: boolean | undefined): string {
  const regexes = members(preTokenizer).flatMap(stepRegexes).map(canonicalRegex);
  const same = (list: readonly string[]) => list.length === regexes.length && list.every((r, i) => canonicalRegex(r) === regexes[i]);
  const choice = PRE_CHOICES.find((c) => same(preTokenizerRegexes(c.pre)!)
    && (c.ignoreMerges === undefined || c.ignoreMerges === ignoreMerges)
    && (c.cleanSpaces === undefined || cleanSpaces === undefined || c.cleanSpaces === cleanSpaces));
  if (choice === undefined) {
    const shown = regexes.length === 0 ? 'no regex at all' : regexes.map((r) => `/${r}/`).join(' then ');
    fail(`tokenizer.json's pre-tokenizer splits text with ${shown}, which matches no pre-tokenizer llama.cpp names; convert the model with llama.cpp's convert_hf_to_gguf.py (it names new ones) and load the GGUF file.`, { regexes });
  }
  return choice.pre;
}

/** The regexes one pre-tokenizer step splits with, as llama.cpp applies a list: matches and the text between them. */
function stepRegexes(step: Record<string, unknown>): string[] {
  const type = own(step, 'type');
  if (type === 'ByteLevel') {
    if (own(step, 'add_prefix_space') === true) {
      fail('tokenizer.json\'s ByteLevel pre-tokenizer puts a space before the text (add_prefix_space), which llama.cpp\'s BPE does not do; convert the model with llama.cpp\'s convert_hf_to_gguf.py if it supports it.');
    }
    return own(step, 'use_regex') === false ? [] : [...GPT2_REGEXES];
  }
  if (type === 'Digits') return [own(step, 'individual_digits') === true ? String.raw`\p{N}` : String.raw`\p{N}+`];
  if (type === 'Split') {
    const pattern = own(step, 'pattern');
    const regex = isRecord(pattern) ? own(pattern, 'Regex') : undefined;
    if (typeof regex !== 'string' || own(step, 'behavior') !== 'Isolated' || own(step, 'invert') === true) {
      fail(`tokenizer.json's pre-tokenizer step ${JSON.stringify(step)} is not a Split on a regex that keeps matches apart (behavior Isolated), the only kind llama.cpp has; convert the model with llama.cpp's convert_hf_to_gguf.py if it supports it.`);
    }
    return [HF_SPELLINGS.get(regex) ?? regex];
  }
  fail(`tokenizer.json's pre-tokenizer step ${JSON.stringify(type)} is not one Lantern can map onto llama.cpp's pre-tokenizers (ByteLevel, Split on a regex, Digits); convert the model with llama.cpp's convert_hf_to_gguf.py if it supports it.`, { type: String(type) });
}

/** HF spellings that split text as a llama.cpp regex does, though written differently. */
const HF_SPELLINGS = new Map<string, string>([
  // GPT-2's regex as HF writes it out: the last "\s+" catches only whitespace llama.cpp keeps as a piece anyway.
  [GPT2_REGEXES[0] + String.raw`|\s+`, GPT2_REGEXES[0]],
]);

/**
 * One spelling for regexes that mean the same: an inline case-insensitive group `(?i:'s|'t)` as
 * llama.cpp writes it, `(?:'[sS]|'[tT])`, and control characters as escapes.
 */
function canonicalRegex(source: string): string {
  return source
    .replace(/\(\?i:([^()[\]\\]*)\)/g, (_, body: string) => `(?:${body.replace(/[A-Za-z]/g, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`)})`)
    .replaceAll('\r', '\\r').replaceAll('\n', '\\n').replaceAll('\t', '\\t');
}

/** The special tokens a TemplateProcessing post-processor puts around a single sequence. */
function templateEnds(postProcessor: unknown): { first?: string; last?: string } {
  const ends: { first?: string; last?: string } = {};
  for (const step of members(postProcessor)) {
    const single = own(step, 'single');
    if (own(step, 'type') !== 'TemplateProcessing' || !Array.isArray(single) || single.length < 2) continue;
    const specialOf = (item: unknown) => {
      const token = isRecord(item) ? own(item, 'SpecialToken') : undefined;
      const id = isRecord(token) ? own(token, 'id') : undefined;
      return typeof id === 'string' ? id : undefined;
    };
    ends.first = specialOf(single[0]);
    ends.last = specialOf(single[single.length - 1]);
  }
  return ends;
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json and generation_config.json.

/** A special token as the configs name it: a text, or an object with its `content`. */
function specialText(config: Record<string, unknown> | undefined, map: Record<string, unknown> | undefined, key: string): { file: string; text: string } | undefined {
  const [file, value] = config !== undefined && own(config, key) !== undefined ? ['tokenizer_config.json', own(config, key)] : ['special_tokens_map.json', map === undefined ? undefined : own(map, key)];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return { file, text: value };
  if (isRecord(value) && typeof own(value, 'content') === 'string') return { file, text: own(value, 'content') as string };
  fail(`${file}'s ${key} is ${JSON.stringify(value)}, neither a token text nor an object with its "content"; fix the file.`, { key });
}

function configBool(config: Record<string, unknown> | undefined, key: string): boolean | undefined {
  const value = config === undefined ? undefined : own(config, key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') fail(`tokenizer_config.json's ${key} is ${JSON.stringify(value)}, not true or false; fix the file.`, { key });
  return value;
}

/** tokenizer_config.json's chat_template: a text, or a list of {name, template} ("default" is the chat template). */
function chatTemplates(config: Record<string, unknown> | undefined): Record<string, MetaValue> {
  const value = config === undefined ? undefined : own(config, 'chat_template');
  if (value === undefined || value === null) return {};
  if (typeof value === 'string') return { 'tokenizer.chat_template': { type: 'string', value } };
  const bad = () => fail('tokenizer_config.json\'s chat_template is neither a text nor a list of {"name", "template"} with one named "default"; fix the file or give the chat template separately.');
  if (!Array.isArray(value)) bad();
  const meta: Record<string, MetaValue> = {};
  const names: string[] = [];
  for (const entry of value as unknown[]) {
    const name = isRecord(entry) ? own(entry, 'name') : undefined;
    const template = isRecord(entry) ? own(entry, 'template') : undefined;
    if (typeof name !== 'string' || typeof template !== 'string') bad();
    if (name === 'default') {
      meta['tokenizer.chat_template'] = { type: 'string', value: template as string };
    } else {
      // gguf-py keeps letters and digits of a template's name, as the key carries it.
      const key = (name as string).replace(/[^A-Za-z0-9]/g, '_');
      meta[`tokenizer.chat_template.${key}`] = { type: 'string', value: template as string };
      names.push(key);
    }
  }
  if (meta['tokenizer.chat_template'] === undefined) bad();
  if (names.length > 0) meta['tokenizer.chat_templates'] = { type: 'array', itemType: 'string', value: names };
  return meta;
}

/** generation_config.json's eos_token_id: one id or a list of them, each a token of the vocabulary. */
function generationEos(generation: Record<string, unknown> | undefined, n: number): number[] {
  const value = generation === undefined ? undefined : own(generation, 'eos_token_id');
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((id) => {
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= n) {
      fail(`generation_config.json's eos_token_id holds ${JSON.stringify(id)}, but the tokenizer's ids run from 0 to ${n - 1}; the file does not belong to this tokenizer, so fix or remove its eos_token_id.`, { id: String(id) });
    }
    return id as number;
  });
}

/** generation_config.json key → llama.cpp's general.sampling.* key, and what a value must be. */
const SAMPLING: [string, string, 'f32' | 'i32', (v: number) => boolean, string][] = [
  ['temperature', 'general.sampling.temp', 'f32', (v) => v >= 0, 'a number from 0'],
  ['top_k', 'general.sampling.top_k', 'i32', (v) => Number.isInteger(v) && v >= 0 && v <= 0x7fffffff, 'a whole number from 0'],
  ['top_p', 'general.sampling.top_p', 'f32', (v) => v >= 0 && v <= 1, 'a number from 0 to 1'],
  ['min_p', 'general.sampling.min_p', 'f32', (v) => v >= 0 && v <= 1, 'a number from 0 to 1'],
  ['repetition_penalty', 'general.sampling.penalty_repeat', 'f32', (v) => v > 0, 'a number above 0'],
];

function samplingDefaults(generation: Record<string, unknown> | undefined): Record<string, MetaValue> {
  const meta: Record<string, MetaValue> = {};
  if (generation === undefined) return meta;
  for (const [hfKey, key, type, valid, expected] of SAMPLING) {
    const value = own(generation, hfKey);
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || !valid(value)) {
      throw new LanternError('BAD_MODEL_FILE', `generation_config.json's ${hfKey} is ${JSON.stringify(value)}, not ${expected}; fix the file or remove the key.`, { key: hfKey });
    }
    meta[key] = { type, value };
  }
  return meta;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function fail(message: string, details?: Record<string, unknown>): never {
  throw new LanternError('BAD_TOKENIZER', message, details);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A key of an object parsed from a file: its own keys only, so "__proto__" or "constructor" find nothing. */
function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function optionalRecord(v: unknown, file: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) fail(`${file} is not a JSON object; download the file again.`, { file });
  return v;
}

function checkId(id: unknown, where: string): number {
  if (!Number.isSafeInteger(id) || (id as number) < 0) fail(`${where} has id ${JSON.stringify(id)}, not a whole number from 0; the file is damaged.`);
  return id as number;
}

function notDense(id: number, limit: number, where: string): never {
  fail(`${where} uses id ${id}, but the tokenizer has ${limit} tokens in all, so its ids cannot run from 0 to ${id} with none missing; the files are damaged or do not belong together.`, { id, nTokens: limit });
}

function lookup(vocab: Vocabulary, text: string, where: string): number {
  const id = vocab.addedIds.get(text) ?? vocab.idOf.get(text);
  if (id === undefined) fail(`${where} names "${text}", which is not a token of the vocabulary; the tokenizer files are damaged or do not belong together.`, { text });
  return id;
}
