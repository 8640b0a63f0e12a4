import { LanternError } from '../errors.ts';
import type { Tokenizer } from '../model/tokenizer/index.ts';
import type { TokenLogprob } from './types.ts';

/** Most alternatives a step reports (OpenAI's top_logprobs bound). */
export const TOP_LOGPROBS_MAX = 20;

/** GenerateOptions.logprobs: undefined (off) or a whole number of alternatives, 0..TOP_LOGPROBS_MAX. */
export function checkLogprobs(top: number | undefined): void {
  if (top === undefined) return;
  if (!Number.isInteger(top) || top < 0 || top > TOP_LOGPROBS_MAX) {
    throw new LanternError('BAD_ARGUMENT', `logprobs is how many of the most likely tokens to report at each step: a whole number from 0 to ${TOP_LOGPROBS_MAX}, not ${String(top)}.`);
  }
}

/**
 * The log-probability of `id` and of the `top` most likely tokens under [n_vocab] raw logits: the
 * log-softmax at temperature 1, in double (log Z = max + log Σ exp(l − max), as perplexity.ts
 * takes it). Alternatives come best first; equal logits, lower id first (the argmax's order).
 */
export function stepLogprobs(logits: Float32Array, id: number, top: number, tokenizer: Tokenizer): { logprob: number; bytes: number[]; topLogprobs: TokenLogprob[] } {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sumExp = 0;
  for (let i = 0; i < logits.length; i++) sumExp += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sumExp);
  const entry = (t: number): TokenLogprob => ({ id: t, logprob: logits[t] - logZ, bytes: tokenBytes(tokenizer, t) });
  return { logprob: logits[id] - logZ, bytes: tokenBytes(tokenizer, id), topLogprobs: largest(logits, top).map(entry) };
}

/** Ids of the n largest values, best first, equal values lower id first: one pass with a sorted list of n (n ≤ 20). */
function largest(values: Float32Array, n: number): number[] {
  const ids: number[] = [];
  if (n === 0) return ids;
  const before = (a: number, b: number) => values[a] > values[b] || (values[a] === values[b] && a < b);
  for (let i = 0; i < values.length; i++) {
    if (ids.length === n && !before(i, ids[n - 1])) continue;
    let at = Math.min(ids.length, n - 1);
    ids[at] = i;
    while (at > 0 && before(ids[at], ids[at - 1])) {
      [ids[at], ids[at - 1]] = [ids[at - 1], ids[at]];
      at--;
    }
  }
  return ids;
}

const utf8 = new TextEncoder();

/** The bytes a token stands for in text; a control or unknown token, which stands for none, by its spelling (as OpenAI gives "<|endoftext|>"). */
function tokenBytes(tokenizer: Tokenizer, id: number): number[] {
  return Array.from(tokenizer.tokenBytes(id) ?? utf8.encode(tokenizer.tokenText(id)));
}
