import { mergeSymbols } from './merge.ts';
import { preTokenizer, type PreTokenizer } from './pretokenize.ts';
import { MERGE_SEP, type Vocab } from './vocab.ts';

/**
 * Byte-level BPE as llama.cpp's llm_tokenizer_bpe does it: the pre-tokenizer splits the text into
 * words, each word's UTF-8 bytes are spelled in GPT-2's printable byte alphabet, and adjacent
 * symbols merge by rank, lowest first.
 */

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest map to U+0100 on. */
export const BYTE_TO_CHAR: string[] = (() => {
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
})();

export const CHAR_TO_BYTE: Map<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

export interface BpeEncoder {
  readonly preTokenizer: PreTokenizer;
  /** Encodes one run of plain text (no special tokens in it). */
  encode(text: string, out: number[]): void;
}

export function bpeEncoder(vocab: Vocab): BpeEncoder {
  const pre = preTokenizer(vocab.pre);
  const rank = (left: string, right: string) => {
    const r = vocab.mergeRank.get(left + MERGE_SEP + right);
    return r === undefined ? undefined : -r;
  };
  // Words repeat a lot in real text; their tokens do not change.
  const cache = new Map<string, number[]>();

  const encodeWord = (word: string): number[] => {
    const whole = vocab.ignoreMerges ? vocab.idOf.get(word) : undefined;
    if (whole !== undefined) return [whole];
    const ids: number[] = [];
    for (const symbol of mergeSymbols(word, rank)) {
      const id = vocab.idOf.get(symbol);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // As llama.cpp: fall back to single-byte tokens, which only ASCII symbols can hit.
      for (const ch of symbol) {
        const single = ch.charCodeAt(0) < 0x80 ? vocab.idOf.get(ch) : undefined;
        if (single !== undefined) ids.push(single);
      }
    }
    return ids;
  };

  return {
    preTokenizer: pre,
    encode(text, out) {
      for (const piece of pre.split(text)) {
        let word = '';
        for (const byte of utf8.encode(piece)) word += BYTE_TO_CHAR[byte];
        let ids = cache.get(word);
        if (ids === undefined) {
          ids = encodeWord(word);
          if (cache.size < 65536) cache.set(word, ids);
        }
        for (const id of ids) out.push(id);
      }
    },
  };
}
