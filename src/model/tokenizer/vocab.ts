import { LanternError } from '../../errors.ts';
import { describeValue, type GGUFFile, type GGUFValue } from '../gguf.ts';

/**
 * The vocabulary as llama.cpp's llama_vocab::load() reads it from GGUF metadata: token texts,
 * scores and attributes, the special ids, and the flags each tokenizer model and pre-tokenizer
 * implies. Everything model-specific that encode and decode need is decided here, once.
 */

/** Token attributes, as llama.cpp's llama_token_attr bit flags. */
export const Attr = {
  Undefined: 0,
  Unknown: 1 << 0,
  Unused: 1 << 1,
  Normal: 1 << 2,
  Control: 1 << 3,
  UserDefined: 1 << 4,
  Byte: 1 << 5,
  Normalized: 1 << 6,
  Lstrip: 1 << 7,
  Rstrip: 1 << 8,
} as const;

/** tokenizer.ggml.token_type values (gguf-py TokenType) → attributes. Lookups keyed by file contents use Maps. */
const ATTR_OF_TOKEN_TYPE = new Map<number, number>([
  [1, Attr.Normal], [2, Attr.Unknown], [3, Attr.Control], [4, Attr.UserDefined], [5, Attr.Unused], [6, Attr.Byte],
]);

export type VocabKind = 'spm' | 'bpe';

export interface Vocab {
  kind: VocabKind;
  /** tokenizer.ggml.pre as written in the file ('' when absent). */
  pre: string;
  texts: string[];
  scores: Float32Array;
  attrs: Uint16Array;
  /** Text → id; the first id wins when a text repeats. */
  idOf: Map<string, number>;
  /** BPE merge ranks keyed by `left + MERGE_SEP + right`. */
  mergeRank: Map<string, number>;
  bos: number | undefined;
  eos: number | undefined;
  unk: number | undefined;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  /** BPE: a word that is already a token skips the merges (llama3, tekken). */
  ignoreMerges: boolean;
  /** clean_up_tokenization_spaces, applied by decode. */
  cleanSpaces: boolean;
  /** Tokens that end generation: eos, eot, eom and the end-of-turn texts llama.cpp knows. */
  eog: Set<number>;
  /** Control, user-defined and unknown tokens, longest text first: matched before tokenizing. */
  specials: number[];
}

export const MERGE_SEP = '\u0000';

const utf8 = new TextEncoder();

/** Flags a pre-tokenizer name implies beyond its regexes (llama_vocab::impl::load). */
interface PreFlags { ignoreMerges?: boolean; addBos?: boolean; cleanSpaces?: boolean; noBos?: boolean }
const PRE_FLAGS = new Map<string, PreFlags>(Object.entries({
  'llama3': { ignoreMerges: true, addBos: true }, 'llama-v3': { ignoreMerges: true, addBos: true },
  'llama-bpe': { ignoreMerges: true, addBos: true }, 'falcon3': { ignoreMerges: true, addBos: true },
  'falcon-h1': { ignoreMerges: true, addBos: true }, 'pixtral': { ignoreMerges: true, addBos: true },
  'midm-2.0': { ignoreMerges: true, addBos: true }, 'lfm2': { ignoreMerges: true, addBos: true },
  'tekken': { ignoreMerges: true, addBos: true, cleanSpaces: false },
  'chameleon': { addBos: true, cleanSpaces: false },
  'minicpm5': { ignoreMerges: true },
  'youtu': { ignoreMerges: true, cleanSpaces: false },
  'granite-embed-multi-97m': { ignoreMerges: true, cleanSpaces: false },
  'glm4': { noBos: true }, 'chatglm-bpe': { noBos: true },
} satisfies Record<string, PreFlags>));
/** Pre-tokenizers after which llama.cpp does not clean up spaces when decoding. */
const PRE_KEEP_SPACES = new Set([
  'deepseek-llm', 'deepseek-coder', 'deepseek-v3', 'spark2_5', 'command-r', 'qwen2', 'deepseek-r1-qwen',
  'kormo', 'f2llmv2', 'qwen35', 'poro-chat', 'viking', 'smollm', 'gpt-4o', 'llama4', 'kanana2', 'talkie',
  'tiny_aya', 'cohere2moe', 'superbpe', 'trillion', 'granite-docling', 'bailingmoe', 'bailingmoe2',
  'llada-moe', 'seed-coder', 'hunyuan', 'hunyuan-dense', 'hy_v4', 'joyai-llm', 'kimi-k2', 'ufakzeka',
  'grok-2', 'afmoe', 'laguna', 'minimax-m2', 'solar-open',
]);

/** Texts llama.cpp treats as end of generation, whatever the file says (load(), special_eog_ids). */
export const EOG_TEXTS: ReadonlySet<string> = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>', '<end_of_utterance>',
  '</s>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
]);
const EOT_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>',
  '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
]);
/** Fill-in-the-middle texts: llama.cpp forces these to control tokens. */
const FIM_TEXTS = new Set([
  '<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>',
  '<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>',
  '<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>',
  '<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<|fim_repo|>', '<fim-repo>', '<fim_repo>', '<|repo_name|>',
  '<|fim_sep|>', '<|file_sep|>', '<fim-sep>', '<fim_sep>',
]);

export function vocabFromGGUF(file: GGUFFile): Vocab {
  const meta = file.metadata;
  const model = meta.get('tokenizer.ggml.model');
  if (model !== 'llama' && model !== 'gpt2') {
    throw new LanternError('BAD_TOKENIZER', `The model's tokenizer is ${model === undefined ? 'not named' : describeValue(model)}, which Lantern cannot run yet; use a model with a SentencePiece (llama) or byte-level BPE (gpt2) vocabulary.`, { model: typeof model === 'string' ? model : undefined });
  }
  const kind: VocabKind = model === 'llama' ? 'spm' : 'bpe';
  const preValue = meta.get('tokenizer.ggml.pre');
  if (preValue !== undefined && typeof preValue !== 'string') throw wrongType('tokenizer.ggml.pre', preValue, 'a string');
  const pre = preValue ?? '';

  const rawTexts = meta.get('tokenizer.ggml.tokens');
  if (rawTexts === undefined) {
    throw new LanternError('BAD_TOKENIZER', 'The model file has no tokenizer.ggml.tokens list; re-convert it with a recent llama.cpp convert_hf_to_gguf.py.');
  }
  if (!isStringArray(rawTexts) || rawTexts.length === 0) throw wrongType('tokenizer.ggml.tokens', rawTexts, 'a list of strings');
  const n = rawTexts.length;
  const texts = rawTexts.map((t, i) => (t === '' ? `[EMPTY_${i}]` : t));

  // llama.cpp reads scores as f32 or i32 and token types as i32; any float or integer array will do here.
  const scores = new Float32Array(n);
  const rawScores = meta.get('tokenizer.ggml.scores');
  if (rawScores !== undefined) scores.set(perToken(rawScores, n, 'tokenizer.ggml.scores', false));

  const attrs = new Uint16Array(n).fill(Attr.Normal);
  const rawTypes = meta.get('tokenizer.ggml.token_type');
  if (rawTypes !== undefined) {
    const types = perToken(rawTypes, n, 'tokenizer.ggml.token_type', true);
    for (let i = 0; i < n; i++) attrs[i] = ATTR_OF_TOKEN_TYPE.get(types[i]) ?? Attr.Undefined;
  }

  const idOf = new Map<string, number>();
  for (let i = 0; i < n; i++) if (!idOf.has(texts[i])) idOf.set(texts[i], i);

  const mergeRank = new Map<string, number>();
  if (kind === 'bpe') {
    const merges = meta.get('tokenizer.ggml.merges');
    if (merges === undefined) {
      throw new LanternError('BAD_TOKENIZER', 'The BPE vocabulary has no tokenizer.ggml.merges; re-convert the model with a recent llama.cpp convert_hf_to_gguf.py.');
    }
    if (!isStringArray(merges)) throw wrongType('tokenizer.ggml.merges', merges, 'a list of strings');
    merges.forEach((merge, rank) => {
      // Split at the first space after the first character, so that a merge of a space keeps it.
      const at = merge.indexOf(' ', 1);
      const key = at < 0 ? MERGE_SEP : merge.slice(0, at) + MERGE_SEP + merge.slice(at + 1);
      if (!mergeRank.has(key)) mergeRank.set(key, rank);
    });
  }

  const flags = (kind === 'bpe' ? PRE_FLAGS.get(pre) : undefined) ?? {};
  for (const key of IGNORED_IF_OUT_OF_RANGE) specialId(meta, key, n, undefined);
  const bos = specialId(meta, 'tokenizer.ggml.bos_token_id', n, flags.noBos ? undefined : kind === 'spm' ? 1 : 11);
  const eos = specialId(meta, 'tokenizer.ggml.eos_token_id', n, kind === 'spm' ? 2 : 11);
  const unk = specialId(meta, 'tokenizer.ggml.unknown_token_id', n, kind === 'spm' ? 0 : undefined);
  let eot = specialId(meta, 'tokenizer.ggml.eot_token_id', n, undefined);
  let eom = specialId(meta, 'tokenizer.ggml.eom_token_id', n, undefined);

  let addBos = metaBool(meta.get('tokenizer.ggml.add_bos_token')) ?? (kind === 'spm' || flags.addBos === true);
  let addEos = metaBool(meta.get('tokenizer.ggml.add_eos_token')) ?? false;
  if (bos === undefined) addBos = false;
  if (eos === undefined) addEos = false;
  const addSpacePrefix = metaBool(meta.get('tokenizer.ggml.add_space_prefix')) ?? kind === 'spm';
  const cleanSpaces = kind === 'bpe' && (flags.cleanSpaces ?? !PRE_KEEP_SPACES.has(pre));

  // llama.cpp recognises end-of-turn and fill-in-the-middle tokens by their text and makes them
  // control tokens, so that they are not split out of plain text (see llama_vocab::impl::load).
  const eog = new Set<number>();
  for (const key of ['tokenizer.ggml.fim_pad_token_id', 'tokenizer.ggml.fim_rep_token_id', 'tokenizer.ggml.fim_sep_token_id']) {
    const id = specialId(meta, key, n, undefined);
    if (id !== undefined) eog.add(id);
  }
  for (let id = 0; id < n; id++) {
    const text = texts[id];
    if (eot === undefined && EOT_TEXTS.has(text)) { eot = id; attrs[id] |= Attr.Control; }
    if (eom === undefined && text === '<|eom_id|>') { eom = id; attrs[id] |= Attr.Control; }
    if (FIM_TEXTS.has(text)) attrs[id] |= Attr.Control;
    if (EOG_TEXTS.has(text)) { eog.add(id); attrs[id] |= Attr.Control; }
    if (text === '<|channel|>' || text === '<|message|>' || text === '<|start|>' || text === '<|constrain|>') {
      attrs[id] = Attr.UserDefined;
    }
  }
  for (const id of [eos, eot, eom]) if (id !== undefined) eog.add(id);
  // o200k_harmony and solar-open: "<|end|>" ends a message, not the generation.
  const eogHas = (t: string) => [...eog].some((id) => texts[id] === t);
  if ((eogHas('<|return|>') && eogHas('<|call|>')) || (eogHas('<|calls|>') && eogHas('<|flush|>'))) {
    const end = idOf.get('<|end|>');
    if (end !== undefined && eog.delete(end)) attrs[end] = Attr.UserDefined;
  }
  if (eogHas('<|tool_response>')) {
    const s = idOf.get('</s>');
    if (s !== undefined && eog.delete(s)) attrs[s] = Attr.Normal;
  }

  const specials: number[] = [];
  for (let id = 0; id < n; id++) {
    if (attrs[id] & (Attr.Control | Attr.UserDefined | Attr.Unknown)) specials.push(id);
  }
  // Longest first, by UTF-8 length as llama.cpp measures it, so "<|end|>" cannot split "<|endoftext|>".
  const utf8Length = new Map(specials.map((id) => [id, utf8.encode(texts[id]).length]));
  specials.sort((a, b) => utf8Length.get(b)! - utf8Length.get(a)! || a - b);

  // Phi-3 strips the whitespace after its special tokens (llama.cpp keys this on general.name).
  const nameValue = meta.get('general.name');
  const name = typeof nameValue === 'string' ? nameValue.toLowerCase() : '';
  if (name.includes('phi-3') || name.includes('phi3')) {
    for (const id of specials) attrs[id] |= Attr.Rstrip;
    const eosText = idOf.get('</s>');
    if (eosText !== undefined) attrs[eosText] |= Attr.Rstrip;
    for (const t of ['<unk>', '<s>', '<|endoftext|>']) {
      const id = idOf.get(t);
      if (id !== undefined) attrs[id] &= ~Attr.Rstrip;
    }
  }

  return {
    kind, pre, texts, scores, attrs, idOf, mergeRank, bos, eos, unk, addBos, addEos, addSpacePrefix,
    ignoreMerges: flags.ignoreMerges === true, cleanSpaces, eog, specials,
  };
}

/**
 * Special-token ids. A value that is not a whole number from 0 (negative, fractional, a string, an
 * array) is damage, refused with BAD_MODEL_FILE. 0xFFFFFFFF is how converters write "none"
 * (stories260K's padding and separator ids) and counts as absent: the default applies, as in
 * llama.cpp. An id past the vocabulary is refused for the ids Lantern acts on (bos, eos, unknown,
 * eot, eom: a wrong one would change every prompt or never end a generation, where llama.cpp only
 * warns and falls back to a default), and ignored, as llama.cpp does, for the ids below: fine-tunes
 * often declare a padding id one past the vocabulary, added to the HF tokenizer but not to the GGUF.
 */
const IGNORED_IF_OUT_OF_RANGE = new Set([
  'tokenizer.ggml.seperator_token_id', 'tokenizer.ggml.padding_token_id', 'tokenizer.ggml.cls_token_id',
  'tokenizer.ggml.mask_token_id', 'tokenizer.ggml.fim_pre_token_id', 'tokenizer.ggml.fim_suf_token_id',
  'tokenizer.ggml.fim_mid_token_id', 'tokenizer.ggml.fim_pad_token_id', 'tokenizer.ggml.fim_rep_token_id',
  'tokenizer.ggml.fim_sep_token_id', 'tokenizer.ggml.prefix_token_id', 'tokenizer.ggml.suffix_token_id',
  'tokenizer.ggml.middle_token_id',
]);
const NO_TOKEN = 0xffffffff;

function specialId(meta: Map<string, GGUFValue>, key: string, n: number, fallback: number | undefined): number | undefined {
  const v = meta.get(key);
  const id = typeof v === 'number' || typeof v === 'bigint' ? Number(v) : NaN;
  if (v !== undefined && !(Number.isSafeInteger(id) && id >= 0)) throw wrongType(key, v, 'a token id (a whole number from 0)');
  if (v === undefined || id === NO_TOKEN) return fallback !== undefined && fallback < n ? fallback : undefined;
  if (id < n) return id;
  if (IGNORED_IF_OUT_OF_RANGE.has(key)) return undefined;
  throw new LanternError('BAD_MODEL_FILE', `${key} is ${id}, but the vocabulary has ${n} tokens (ids 0 to ${n - 1}); the file is damaged.`, { key, id, nTokens: n });
}

function isStringArray(v: GGUFValue): v is string[] {
  return Array.isArray(v) && v.every((item) => typeof item === 'string');
}

type NumberArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;
const INTEGER_ARRAYS = [Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array];
const SCORE_ARRAYS = [Float32Array, Float64Array, Int32Array];

/** A float or integer array with one entry per token. */
function perToken(v: GGUFValue, n: number, key: string, integers: boolean): NumberArray {
  const kinds = integers ? INTEGER_ARRAYS : SCORE_ARRAYS;
  if (!kinds.some((kind) => v instanceof kind)) throw wrongType(key, v, integers ? 'an integer array' : 'a float array');
  const a = v as NumberArray;
  if (a.length !== n) {
    throw new LanternError('BAD_MODEL_FILE', `${key} has ${a.length} entries but tokenizer.ggml.tokens has ${n}; the file is damaged.`, { key, entries: a.length, nTokens: n });
  }
  return a;
}

function wrongType(key: string, v: GGUFValue, expected: string): LanternError {
  return new LanternError('BAD_MODEL_FILE', `${key} is ${describeValue(v)}, not ${expected}; the file is damaged.`, { key });
}

function metaBool(v: GGUFValue | undefined): boolean | undefined {
  return typeof v === 'boolean' ? v : undefined;
}
