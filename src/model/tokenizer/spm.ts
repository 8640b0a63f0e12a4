import { mergeSymbols } from './merge.ts';
import type { Vocab } from './vocab.ts';

/**
 * SentencePiece-style encoding as llama.cpp's llm_tokenizer_spm does it: spaces become "▁", then
 * adjacent symbols merge while their concatenation is a token, highest score first. A symbol left
 * that is no token is spelled as its UTF-8 bytes, `<0xNN>` byte tokens.
 */

const SPACE = '\u2581'; // ▁

/** Encodes one run of plain text (no special tokens in it); `text` already carries any prefix space. */
export function encodeSpm(vocab: Vocab, text: string, out: number[]): void {
  const escaped = text.replaceAll(' ', SPACE);
  const symbols = mergeSymbols(escaped, (left, right) => {
    const id = vocab.idOf.get(left + right);
    return id === undefined ? undefined : vocab.scores[id];
  });
  for (const symbol of symbols) {
    const id = vocab.idOf.get(symbol);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    for (const byte of utf8.encode(symbol)) out.push(byteToken(vocab, byte));
  }
}

const utf8 = new TextEncoder();

function byteToken(vocab: Vocab, byte: number): number {
  const hex = byte.toString(16).toUpperCase().padStart(2, '0');
  // llama.cpp falls back to a token spelled as the byte itself, then fails; Lantern uses <unk>.
  return vocab.idOf.get(`<0x${hex}>`) ?? vocab.idOf.get(String.fromCharCode(byte)) ?? vocab.unk ?? 0;
}
