import { LanternError } from '../errors.ts';

/**
 * Perplexity of a text, windowed as llama.cpp's llama-perplexity does it (tools/perplexity,
 * perplexity()): the text is tokenized once, BOS first where the model adds one; it is cut into
 * ⌊tokens / nCtx⌋ chunks of nCtx tokens (the tail is dropped), and each chunk is evaluated from an
 * empty context, its first token replaced by BOS where the model adds one. Only the second half of
 * a chunk is scored, so that every prediction has at least nCtx/2 tokens of context: the logits at
 * positions first = ⌊nCtx/2⌋ .. nCtx − 2 each predict the chunk's next token, nCtx − 1 − first
 * tokens per chunk. The negative log-likelihoods are summed in double; ppl = exp(mean nll), with a
 * running estimate after every chunk.
 */

export interface PerplexityOptions {
  /** Tokens per chunk (llama-perplexity's -c, 512 by default there). */
  nCtx: number;
  /** The BOS id each chunk starts with, where the model adds BOS (Tokenizer.addBos); else undefined. */
  bos?: number;
}

/**
 * Log-probabilities of each next token of `ids` from position `from` on: entry i is
 * log p(ids[from + i + 1] | ids[0 .. from + i]) (Runtime.tokenLogProbs, through a session).
 */
export type TokenScorer = (ids: number[], from: number) => Promise<ArrayLike<number>>;

export interface PerplexityResult {
  /** exp(mean nll) over every scored token. */
  ppl: number;
  /**
   * ppl times the standard error of the mean nll, llama.cpp's "±" (NaN with one scored token).
   * Not named "error": a --json reader takes that key for a failure.
   */
  margin: number;
  /** The estimate after chunks 1..k, as llama-perplexity prints them ("[1]12.3456,[2]..."). */
  estimates: number[];
  nCtx: number;
  /** Tokens of the whole text, and how many of them were scored. */
  tokens: number;
  scored: number;
}

/** log softmax(row `row` of [n, vocab] logits)[token], as llama.cpp's log_softmax: the max in f32, Σ exp and the log in double. */
export function logSoftmaxAt(logits: Float32Array, row: number, vocab: number, token: number): number {
  const base = row * vocab;
  let max = logits[base];
  for (let i = 1; i < vocab; i++) max = Math.max(max, logits[base + i]);
  let sumExp = 0;
  for (let i = 0; i < vocab; i++) sumExp += Math.exp(logits[base + i] - max);
  return logits[base + token] - max - Math.log(sumExp);
}

/** The chunks llama-perplexity evaluates: nCtx ids each, the first replaced by `bos` where given. */
export function perplexityChunks(tokens: readonly number[], options: PerplexityOptions): number[][] {
  const { nCtx, bos } = options;
  if (!Number.isInteger(nCtx) || nCtx < 3) {
    throw new LanternError('BAD_ARGUMENT', `Perplexity needs a context of at least 3 tokens (half of each chunk is context, the rest is scored), not ${nCtx}.`);
  }
  if (tokens.length < 2 * nCtx) {
    throw new LanternError(
      'BAD_ARGUMENT',
      `The text tokenizes to only ${tokens.length} tokens, but perplexity with a context of ${nCtx} needs at least ${2 * nCtx} (two chunks, as llama.cpp's llama-perplexity requires); give a longer text or a smaller context.`,
      { tokens: tokens.length, nCtx },
    );
  }
  const chunks: number[][] = [];
  for (let start = 0; start + nCtx <= tokens.length; start += nCtx) {
    const chunk = tokens.slice(start, start + nCtx);
    if (bos !== undefined) chunk[0] = bos;
    chunks.push(chunk);
  }
  return chunks;
}

/** Perplexity of `tokens` (the whole text, tokenized with BOS as the model adds it), `onChunk` called with each running estimate. */
export async function perplexity(
  tokens: readonly number[], options: PerplexityOptions, score: TokenScorer, onChunk?: (chunk: number, estimate: number) => void,
): Promise<PerplexityResult> {
  const chunks = perplexityChunks(tokens, options);
  const first = Math.floor(options.nCtx / 2);
  const perChunk = options.nCtx - 1 - first;
  let nll = 0;
  let nll2 = 0;
  let count = 0;
  const estimates: number[] = [];
  for (const [i, chunk] of chunks.entries()) {
    const logProbs = await score(chunk, first);
    if (logProbs.length !== perChunk) throw new Error(`the scorer gave ${logProbs.length} log-probabilities for chunk ${i + 1}, not ${perChunk}`);
    for (let j = 0; j < perChunk; j++) {
      nll -= logProbs[j];
      nll2 += logProbs[j] * logProbs[j];
    }
    count += perChunk;
    estimates.push(Math.exp(nll / count));
    onChunk?.(i + 1, estimates[i]);
  }
  const mean = nll / count;
  const variance = nll2 / count - mean * mean;
  const ppl = Math.exp(mean);
  return {
    ppl,
    margin: variance > 0 && count > 1 ? Math.sqrt(variance / (count - 1)) * ppl : NaN,
    estimates,
    nCtx: options.nCtx,
    tokens: tokens.length,
    scored: count,
  };
}
