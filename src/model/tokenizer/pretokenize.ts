import { LanternError } from '../../errors.ts';

/**
 * BPE pre-tokenizers: the regexes that tokenizer.ggml.pre names, as llama.cpp's llm_tokenizer_bpe
 * lists them (llama-vocab.cpp), and the way unicode_regex_split applies them.
 *
 * llama.cpp applies the regexes of a list one after another: each regex splits every piece the
 * previous ones left into its matches and the unmatched text between them, and sees only that
 * piece, so `$` and `(?!\S)` stop at the piece's end. Inline case-insensitive groups `(?i:...)`,
 * which std::regex lacks, are spelled out as `[sS]`; JS RegExp with the `u` flag reads the rest
 * as written, `\p{L}` and `\p{N}` included.
 */

const CONTRACTIONS = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;

const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`;
const LLAMA3 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const PORO = ' ?[^(\\s|.,!?…。，、।۔،)]+';
const DEEPSEEK3 = [
  String.raw`\p{N}{1,3}`,
  '[一-龥぀-ゟ゠-ヿ]+',
  String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_${'`'}{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
];
/** Upper-then-lower word shapes of tekken and gpt-4o, in llama.cpp's lookahead spelling. */
const UPPER = String.raw`((?=[\p{L}])([^a-z]))`;
const LOWER = String.raw`((?=[\p{L}])([^A-Z]))`;

const DEFAULT = [
  String.raw`[\p{P}\$\+<=>\^~\|]+`,
  GPT2,
  String.raw`\p{N}+`,
  '[0-9][0-9][0-9]',
];

const PATTERNS: Readonly<Record<string, string[]>> = {
  'default': DEFAULT,
  'llama3': [LLAMA3],
  'dbrx': [LLAMA3],
  'smaug': [LLAMA3],
  'chatglm4': [LLAMA3],
  'jais2': [String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}`],
  'deepseek-llm': [
    '[\r\n]',
    String.raw`\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+`,
    '\\s?[!-/:-~！-／：-～‘-‟　-。]+',
    '\\s+$',
    '[一-龥ࠀ-一가-퟿]+',
    '\\p{N}+',
  ],
  'deepseek-coder': ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[一-龥ࠀ-一가-퟿]+', '\\p{N}'],
  'deepseek-v3': DEEPSEEK3,
  'spark2_5': [
    String.raw`\p{N}{1,3}`,
    '[一-龥぀-ゟ゠-ヿ]+',
    String.raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_${'`'}{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+`,
    String.raw`\p{N}`,
  ],
  'falcon': [String.raw`[\p{P}\$\+<=>\^~\|${'`'}]+`, GPT2, '[0-9][0-9][0-9]'],
  'starcoder': [String.raw`\p{N}`, GPT2],
  'gpt2': [GPT2],
  'qwen2': [QWEN2],
  'qwen35': [String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'poro': [PORO],
  'viking': [PORO, String.raw`\p{N}`],
  'tekken': [String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'chameleon': [
    '<sentinel:[0-9]+>',
    '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z',
    '([\\t\\n]|    |  )',
    String.raw`\p{N}`,
    String.raw`[\p{P}!-/:-@\[-${'`'}{-~]`,
    GPT2,
  ],
  'gpt4o': [String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+${CONTRACTIONS}?|[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*${CONTRACTIONS}?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'superbpe': [String.raw`\p{N}+`, String.raw`(?=(\d{3})+(?!\d))`],
  'bailingmoe': [String.raw`'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`],
  'seed-coder': [String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'ufakzeka': [String.raw`[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'exaone-moe': [String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+`],
  'minicpm5': [String.raw`\p{N}{1,3}`, String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`],
  'laguna': ['[^\\n]+|[\\n]+', QWEN2],
};

/**
 * tokenizer.ggml.pre → which regex list above (llama_vocab::impl::load's name table). A Map, since
 * the key comes from the file: a pre of "__proto__" or "constructor" must not find anything.
 */
const PATTERN_OF_PRE = new Map<string, string>(Object.entries({
  'default': 'default',
  'llama3': 'llama3', 'llama-v3': 'llama3', 'llama-bpe': 'llama3', 'falcon3': 'llama3', 'falcon-h1': 'llama3',
  'pixtral': 'llama3', 'midm-2.0': 'llama3', 'lfm2': 'llama3', 'jina-v5-nano': 'llama3',
  'dbrx': 'dbrx', 'smaug-bpe': 'smaug', 'glm4': 'chatglm4', 'chatglm-bpe': 'chatglm4', 'jais-2': 'jais2',
  'deepseek-llm': 'deepseek-llm', 'deepseek-coder': 'deepseek-coder',
  'deepseek-v3': 'deepseek-v3', 'hunyuan-dense': 'deepseek-v3', 'hy_v4': 'deepseek-v3', 'joyai-llm': 'deepseek-v3',
  'spark2_5': 'spark2_5',
  'falcon': 'falcon',
  'starcoder': 'starcoder', 'refact': 'starcoder', 'command-r': 'starcoder', 'smollm': 'starcoder',
  'codeshell': 'starcoder', 'exaone': 'starcoder', 'minerva-7b': 'starcoder', 'mellum2': 'starcoder',
  'gpt-2': 'gpt2', 'phi-2': 'gpt2', 'jina-es': 'gpt2', 'jina-de': 'gpt2', 'gigachat': 'gpt2', 'jina-v2-es': 'gpt2',
  'jina-v2-de': 'gpt2', 'a.x-4.0': 'gpt2', 'mellum': 'gpt2', 'modern-bert': 'gpt2', 'jina-v1-en': 'gpt2',
  'jina-v2-code': 'gpt2', 'roberta-bpe': 'gpt2', 'mpt': 'gpt2', 'olmo': 'gpt2', 'jais': 'gpt2', 'trillion': 'gpt2',
  'granite-docling': 'gpt2', 'exaone4': 'gpt2',
  'qwen2': 'qwen2', 'deepseek-r1-qwen': 'qwen2', 'kormo': 'qwen2', 'f2llmv2': 'qwen2', 'stablelm2': 'qwen2',
  'megrez': 'qwen2', 'hunyuan': 'qwen2', 'solar-open': 'qwen2', 'grok-2': 'qwen2',
  'qwen35': 'qwen35',
  'poro-chat': 'poro', 'bloom': 'poro', 'gpt3-finnish': 'poro',
  'viking': 'viking',
  'tekken': 'tekken',
  'chameleon': 'chameleon',
  'gpt-4o': 'gpt4o', 'llama4': 'gpt4o', 'kanana2': 'gpt4o', 'talkie': 'gpt4o', 'minimax-m2': 'gpt4o',
  'superbpe': 'superbpe',
  'bailingmoe': 'bailingmoe', 'bailingmoe2': 'bailingmoe', 'llada-moe': 'bailingmoe',
  'seed-coder': 'seed-coder', 'ufakzeka': 'ufakzeka', 'exaone-moe': 'exaone-moe', 'minicpm5': 'minicpm5',
  'laguna': 'laguna',
}));

/** Names llama.cpp knows but Lantern does not run: custom splitters, or no byte-level alphabet. */
const PRE_NOT_RUN = new Set([
  'youtu', 'gemma4', 'sarvam-moe', 'whitespace', 'granite-embed-multi-97m', 'granite-embed-multi-311m',
  'tiny_aya', 'cohere2moe', 'kimi-k2', 'afmoe',
]);

/** The regex list a tokenizer.ggml.pre name stands for, in llama.cpp's spelling (undefined for a name Lantern does not run). */
export function preTokenizerRegexes(pre: string): readonly string[] | undefined {
  const name = PATTERN_OF_PRE.get(pre);
  return name === undefined ? undefined : PATTERNS[name];
}

export interface PreTokenizer {
  /** The regex list in use: the name's own, or 'default' when the file names none. */
  readonly name: string;
  split(text: string): string[];
}

/**
 * The pre-tokenizer `tokenizer.ggml.pre` names. As llama.cpp: a file without one gets 'default'
 * (llama.cpp warns that quality will suffer), and a name it does not know is refused.
 */
export function preTokenizer(pre: string): PreTokenizer {
  const name = pre === '' ? 'default' : PATTERN_OF_PRE.get(pre);
  if (name === undefined) {
    const message = PRE_NOT_RUN.has(pre)
      ? `The model's pre-tokenizer "${pre}" is one llama.cpp knows but Lantern does not run yet; use a model whose tokenizer.ggml.pre is one Lantern lists (gpt-2, llama-bpe, qwen2, ...).`
      : `The model's pre-tokenizer "${pre}" (tokenizer.ggml.pre) is unknown, and llama.cpp refuses it too; re-convert the model with a recent llama.cpp convert_hf_to_gguf.py.`;
    throw new LanternError('BAD_TOKENIZER', message, { pre });
  }
  const regexes = PATTERNS[name].map((source) => new RegExp(source, 'gu'));
  return { name, split: (text) => splitSequentially(text, regexes) };
}

/**
 * What the regexes see in place of the text. llama.cpp hands std::regex every non-ASCII whitespace
 * character as U+000B, so such a space never falls in a range like [ࠀ-一] and U+0085 counts as
 * space; U+FEFF, which JS calls space and llama.cpp does not, becomes a private-use character.
 * Every replacement is one UTF-16 unit, so offsets into the view are offsets into the text.
 */
const NON_ASCII_SPACE = /[\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;
function regexView(text: string): string {
  return text.replace(NON_ASCII_SPACE, '\v').replaceAll('\ufeff', '\ue000');
}

/** Splits `text` with each regex in turn, keeping both matches and the text between them. */
function splitSequentially(text: string, regexes: RegExp[]): string[] {
  const view = regexView(text);
  // Pieces as [start, end) offsets into text and view alike.
  let pieces: [number, number][] = [[0, text.length]];
  for (const regex of regexes) {
    const next: [number, number][] = [];
    for (const [start, end] of pieces) {
      let at = start;
      for (const m of view.slice(start, end).matchAll(regex)) {
        const from = start + m.index;
        if (from > at) next.push([at, from]);
        if (m[0].length > 0) next.push([from, from + m[0].length]);
        at = from + m[0].length;
      }
      if (at < end) next.push([at, end]);
    }
    pieces = next;
  }
  return pieces.map(([start, end]) => text.slice(start, end));
}
