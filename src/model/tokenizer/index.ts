import type { GGUFFile } from '../gguf.ts';
import { bpeEncoder } from './bpe.ts';
import { cleanSpaces, pieceTable, streamDecoder } from './decoder.ts';
import { splitSpecial } from './special.ts';
import { encodeSpm } from './spm.ts';
import { Attr, vocabFromGGUF } from './vocab.ts';

/**
 * The tokenizer of a GGUF model, giving the ids llama.cpp gives: SentencePiece-style vocabularies
 * (`tokenizer.ggml.model = llama`) and byte-level BPE (`gpt2`) with the pre-tokenizer that
 * `tokenizer.ggml.pre` names. Pure TypeScript; runs in Node and in a browser.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | undefined;
  readonly eos: number | undefined;
  /** Whether the model wants BOS first / EOS last (tokenizer.ggml.add_bos_token, llama.cpp's defaults otherwise). */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /**
   * Text → token ids. `addSpecial` adds BOS/EOS as the model says; `parseSpecial` turns control-token
   * text such as "<s>" into its id (user-defined tokens are always recognised, as in llama.cpp).
   */
  encode(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): number[];
  /**
   * Token ids → text. Control and unknown tokens vanish unless `special` is set; the space a
   * SentencePiece vocabulary puts before the first word is dropped, and BPE vocabularies that ask
   * for it get llama.cpp's clean-up of spaces before punctuation.
   */
  decode(ids: number[], options?: { special?: boolean }): string;
  /**
   * Streaming decoder for generated tokens: `push(id)` returns the text completed by that token;
   * bytes of an unfinished UTF-8 character are held until it completes. Pieces come out as they are,
   * with no space dropped or cleaned, since generated text continues a prompt.
   */
  decoder(options?: { special?: boolean }): { push(id: number): string; flush(): string };
  /** Whether generation should stop at this token: eos, eot, eom and the end-of-turn tokens llama.cpp knows. */
  isEndOfGeneration(id: number): boolean;
  /** The token's text as the vocabulary spells it ("▁the", "Ġthe", "<0x0A>"). */
  tokenText(id: number): string;
  /** The bytes the token stands for in text; undefined for control, unknown and unused tokens (never plain text). */
  tokenBytes(id: number): Uint8Array | undefined;
}

export function tokenizerFromGGUF(file: GGUFFile): Tokenizer {
  const vocab = vocabFromGGUF(file);
  const piece = pieceTable(vocab);
  const bpe = vocab.kind === 'bpe' ? bpeEncoder(vocab) : undefined;

  const encode: Tokenizer['encode'] = (text, options = {}) => {
    const addSpecial = options.addSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && vocab.addBos && vocab.bos !== undefined) out.push(vocab.bos);
    // SPM puts a space before text that starts the input or follows a special token.
    let afterSpecial = true;
    for (const fragment of splitSpecial(vocab, text, options.parseSpecial ?? false)) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        afterSpecial = true;
      } else if (bpe) {
        bpe.encode(fragment, out);
      } else {
        encodeSpm(vocab, vocab.addSpacePrefix && afterSpecial ? ' ' + fragment : fragment, out);
        afterSpecial = false;
      }
    }
    if (addSpecial && vocab.addEos && vocab.eos !== undefined) out.push(vocab.eos);
    return out;
  };

  const decode: Tokenizer['decode'] = (ids, options) => {
    const reader = new TextDecoder('utf-8', { ignoreBOM: true });
    let text = '';
    let first = true;
    for (const id of ids) {
      let bytes = piece(id, options);
      if (bytes.length === 0) continue;
      if (first && vocab.addSpacePrefix && bytes[0] === 0x20) bytes = bytes.subarray(1);
      first = false;
      text += reader.decode(bytes, { stream: true });
    }
    text += reader.decode();
    return vocab.cleanSpaces ? cleanSpaces(text) : text;
  };

  return {
    vocabSize: vocab.texts.length,
    bos: vocab.bos,
    eos: vocab.eos,
    addBos: vocab.addBos,
    addEos: vocab.addEos,
    encode,
    decode,
    decoder: (options) => streamDecoder((id) => piece(id, options)),
    isEndOfGeneration: (id) => vocab.eog.has(id),
    tokenText: (id) => vocab.texts[id] ?? '',
    tokenBytes: (id) => {
      const bytes = piece(id);
      return bytes.length > 0 && !(vocab.attrs[id] & (Attr.Control | Attr.Unknown | Attr.Unused)) ? bytes : undefined;
    },
  };
}
