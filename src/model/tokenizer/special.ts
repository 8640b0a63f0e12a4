import { Attr, type Vocab } from './vocab.ts';

/**
 * Splits text around special tokens before it is tokenized, as llama.cpp's tokenizer_st_partition:
 * each special token, longest text first, is cut out of every text fragment still left. User-defined
 * tokens are always cut out; control and unknown tokens only when `parseSpecial` is set.
 */

/** A run of plain text, or the id of a special token found in the text. */
export type Fragment = string | number;

export function splitSpecial(vocab: Vocab, text: string, parseSpecial: boolean): Fragment[] {
  let fragments: Fragment[] = text === '' ? [] : [text];
  for (const id of vocab.specials) {
    const attr = vocab.attrs[id];
    if (!parseSpecial && (attr & (Attr.Control | Attr.Unknown))) continue;
    const special = vocab.texts[id];
    if (!fragments.some((f) => typeof f === 'string' && f.includes(special))) continue;

    const next: Fragment[] = [];
    for (const fragment of fragments) {
      if (typeof fragment !== 'string') {
        next.push(fragment);
        continue;
      }
      let rest = fragment;
      for (let at = rest.indexOf(special); at >= 0; at = rest.indexOf(special)) {
        let left = rest.slice(0, at);
        if (attr & Attr.Lstrip) left = left.replace(/[ \t\n\v\f\r]+$/, '');
        if (left !== '') next.push(left);
        next.push(id);
        rest = rest.slice(at + special.length);
        if (attr & Attr.Rstrip) rest = rest.replace(/^[ \t\n\v\f\r]+/, '');
      }
      if (rest !== '') next.push(rest);
    }
    fragments = next;
  }
  return fragments;
}
