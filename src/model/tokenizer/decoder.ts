import { CHAR_TO_BYTE } from './bpe.ts';
import { Attr, type Vocab } from './vocab.ts';

/**
 * Token ids back to text, as llama.cpp's token_to_piece and detokenize: every token becomes bytes
 * (SPM: "▁" is a space and `<0xNN>` one byte; BPE: each character stands for one byte), and the
 * bytes are read as UTF-8 only once a character is complete, so a character split across tokens
 * comes out whole.
 */

const utf8 = new TextEncoder();

export interface PieceOptions {
  /** Render control and unknown tokens as their text (llama.cpp's `special`); otherwise they vanish. */
  special?: boolean;
}

/** Returns `(id, options) => bytes of that token`, with the common case cached. */
export function pieceTable(vocab: Vocab): (id: number, options?: PieceOptions) => Uint8Array {
  const empty = new Uint8Array(0);
  const cache: (Uint8Array | undefined)[] = new Array(vocab.texts.length);

  const render = (id: number): Uint8Array => {
    const attr = vocab.attrs[id];
    const text = vocab.texts[id];
    if (attr & (Attr.Unknown | Attr.Control | Attr.UserDefined)) return utf8.encode(text);
    if (attr & Attr.Normal) {
      if (vocab.kind === 'spm') return utf8.encode(text.replaceAll('\u2581', ' '));
      const bytes: number[] = [];
      for (const ch of text) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b !== undefined) bytes.push(b);
        else bytes.push(...utf8.encode(ch)); // not in GPT-2's alphabet: keep the character itself
      }
      return new Uint8Array(bytes);
    }
    if (attr & Attr.Byte) return new Uint8Array([parseInt(text.slice(3, 5), 16)]);
    return empty; // unused and undefined tokens render as nothing, as in llama.cpp
  };

  return (id, options) => {
    if (!(id >= 0 && id < vocab.texts.length)) return empty;
    if (!options?.special && vocab.attrs[id] & (Attr.Unknown | Attr.Control)) return empty;
    return (cache[id] ??= render(id));
  };
}

/** llama.cpp's clean_up_tokenization_spaces: " ," → ",", " ' " → "'", " 's" → "'s" and the like. */
export function cleanSpaces(text: string): string {
  let out = text.replace(/ ([?!.,])/g, '$1');
  out = out.replace(/ ' /g, "'");
  out = out.replace(/ '(s|m|re|ve)/g, "'$1");
  return out;
}

/**
 * A streaming UTF-8 reader over token bytes: `push` returns the text that became complete,
 * holding back the bytes of a character still unfinished.
 */
export function streamDecoder(piece: (id: number) => Uint8Array): { push(id: number): string; flush(): string } {
  let reader = new TextDecoder('utf-8', { ignoreBOM: true });
  return {
    push: (id) => reader.decode(piece(id), { stream: true }),
    flush: () => {
      const rest = reader.decode();
      reader = new TextDecoder('utf-8', { ignoreBOM: true });
      return rest;
    },
  };
}
