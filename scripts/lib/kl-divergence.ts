/**
 * How far a model's next-token distributions move from a base model's over the same text: the
 * statistics of llama.cpp's `llama-perplexity --kl-divergence` (tools/perplexity/perplexity.cpp,
 * kl_divergence() and its log_softmax()), for the page side of scripts/bench-quantize-cost.ts.
 *
 * At every scored position (llama-perplexity's windowing, src/runtime/perplexity.ts) the base
 * model's log-probabilities of the whole vocabulary are recorded; another model's logits at the same
 * position are then compared with them:
 * - KL divergence Σᵢ p_base(i) · (log p_base(i) − log p(i)), over the tokens with log p_base > −16
 *   as llama.cpp sums it (the rest add under 1e-7 × their count);
 * - "same top p": how often both models' most likely token is the same one;
 * - Δp = p(next token) − p_base(next token), the probability each gives the token the text has,
 *   and its RMS;
 * - ln(PPL / PPL_base) with its uncertainty (the two models' NLLs are correlated, so the ratio is
 *   known far better than either PPL).
 * Means come with llama.cpp's uncertainty, the standard error √(var / (n − 1)).
 *
 * llama.cpp keeps the base log-probabilities as 16-bit fixed point (a file between two runs);
 * here they stay in f32, in memory: [scored rows, vocab] per chunk, 50 MB for 255 rows of 49,152.
 */

/** Log-softmax of row `row` of [n, vocab] logits into `out` (f32): the max in f32, Σ exp in double, as llama.cpp's log_softmax. */
function logSoftmaxRow(logits: Float32Array, row: number, vocab: number, out: Float32Array, at: number): void {
  const base = row * vocab;
  let max = logits[base];
  for (let i = 1; i < vocab; i++) if (logits[base + i] > max) max = logits[base + i];
  let sumExp = 0;
  for (let i = 0; i < vocab; i++) sumExp += Math.exp(logits[base + i] - max);
  const logSum = max + Math.log(sumExp);
  for (let i = 0; i < vocab; i++) out[at + i] = logits[base + i] - logSum;
}

/** Mean and its standard error from a sum and a sum of squares (llama.cpp's mean_and_uncertainty). */
function meanAndError(sum: number, sum2: number, count: number): [number, number] {
  if (count < 1) return [0, 0];
  const mean = sum / count;
  const variance = sum2 / count - mean * mean;
  return [mean, variance > 0 && count > 10 ? Math.sqrt(variance / (count - 1)) : 0];
}

/** What one model's rows say on their own: how confident it is. */
export interface Confidence {
  /** Mean over scored positions of the largest next-token probability. */
  meanTop1: number;
  /** Mean over scored positions of the logits' standard deviation across the vocabulary. */
  meanLogitStd: number;
}

class ConfidenceSums {
  private top1 = 0;
  private std = 0;
  private count = 0;

  /** Adds one row of log-probabilities and the logits they came from. */
  add(logits: Float32Array, row: number, vocab: number, maxLogProb: number): void {
    let sum = 0;
    let sum2 = 0;
    for (let i = row * vocab; i < (row + 1) * vocab; i++) {
      sum += logits[i];
      sum2 += logits[i] * logits[i];
    }
    const mean = sum / vocab;
    this.std += Math.sqrt(Math.max(0, sum2 / vocab - mean * mean));
    this.top1 += Math.exp(maxLogProb);
    this.count++;
  }

  result(): Confidence {
    return { meanTop1: this.top1 / this.count, meanLogitStd: this.std / this.count };
  }
}

/**
 * The base model's log-probabilities at every scored position, per chunk: [rows, vocab] f32. It
 * also says how confident the base would be with its logits multiplied by each of `logitScales`
 * (for choosing a random-weight model's output scale).
 */
export class BaseDistributions {
  readonly chunks: Float32Array[] = [];
  private readonly confidence = new ConfidenceSums();
  private readonly scaledTop1: number[];
  private count = 0;

  constructor(readonly vocab: number, readonly rowsPerChunk: number, readonly logitScales: readonly number[] = []) {
    this.scaledTop1 = logitScales.map(() => 0);
  }

  /** Records `logits` ([n, vocab], Runtime.tokenLogProbs' onRows), the first of them scored row `row` of `chunk`. */
  record(chunk: number, logits: Float32Array, row: number): void {
    const { vocab } = this;
    const n = logits.length / vocab;
    const rows = (this.chunks[chunk] ??= new Float32Array(this.rowsPerChunk * vocab));
    for (let r = 0; r < n; r++) {
      const at = (row + r) * vocab;
      logSoftmaxRow(logits, r, vocab, rows, at);
      let max = rows[at];
      for (let i = 1; i < vocab; i++) if (rows[at + i] > max) max = rows[at + i];
      this.confidence.add(logits, r, vocab, max);
      for (const [k, scale] of this.logitScales.entries()) {
        // softmax(scale · logits) at its top: the top of the log-probabilities scaled, renormalised.
        let sumExp = 0;
        for (let i = at; i < at + vocab; i++) sumExp += Math.exp(scale * (rows[i] - max));
        this.scaledTop1[k] += 1 / sumExp;
      }
      this.count++;
    }
  }

  result(): Confidence & { top1AtScale: Record<string, number> } {
    const top1AtScale = Object.fromEntries(this.logitScales.map((scale, k) => [String(scale), this.scaledTop1[k] / this.count]));
    return { ...this.confidence.result(), top1AtScale };
  }
}

export interface KlResult extends Confidence {
  /** Scored positions compared. */
  count: number;
  /** Mean KL divergence from the base, nats, ± its standard error. */
  kld: number;
  kldError: number;
  /** Median, 99th percentile and largest KL divergence of one position. */
  kldMedian: number;
  kld99: number;
  kldMax: number;
  /** Fraction of positions whose most likely token is the base's, ± its standard error. */
  sameTop: number;
  sameTopError: number;
  /** RMS of Δp (probability of the text's next token, minus the base's), ± its uncertainty. */
  rmsDp: number;
  rmsDpError: number;
  /** Mean Δp ± its standard error. */
  meanDp: number;
  meanDpError: number;
  /** ln(PPL / PPL_base) ± its uncertainty (the covariance of the two NLLs taken out). */
  lnPplRatio: number;
  lnPplRatioError: number;
}

/** Compares a model's rows with the base's, accumulating llama-perplexity's sums. */
export class KlDivergence {
  private sumNll = 0;
  private sumNll2 = 0;
  private sumNllBase = 0;
  private sumNllBase2 = 0;
  private sumNllNllBase = 0;
  private sumKld = 0;
  private sumKld2 = 0;
  private sumDp = 0;
  private sumDp2 = 0;
  private sumDp4 = 0;
  private sameTop = 0;
  private count = 0;
  private readonly klds: number[] = [];
  private readonly confidence = new ConfidenceSums();

  constructor(readonly base: BaseDistributions) {}

  /**
   * Compares `logits` ([n, vocab]), the first of them scored row `row` of `chunk`, with the base's
   * rows there; `next(r)` is the token the text has after scored row r.
   */
  add(chunk: number, logits: Float32Array, row: number, next: (r: number) => number): void {
    const { vocab } = this.base;
    const baseRows = this.base.chunks[chunk];
    if (!baseRows) throw new Error(`no base distributions for chunk ${chunk}`);
    const n = logits.length / vocab;
    for (let r = 0; r < n; r++) {
      const at = r * vocab;
      let max = logits[at];
      let top = 0;
      for (let i = 1; i < vocab; i++) {
        if (logits[at + i] > max) {
          max = logits[at + i];
          top = i;
        }
      }
      let sumExp = 0;
      for (let i = 0; i < vocab; i++) sumExp += Math.exp(logits[at + i] - max);
      const logSum = max + Math.log(sumExp);
      const b = (row + r) * vocab;
      const token = next(row + r);
      const nll = logSum - logits[at + token];
      const nllBase = -baseRows[b + token];
      let kld = 0;
      let baseTop = 0;
      for (let i = 0; i < vocab; i++) {
        const logPBase = baseRows[b + i];
        if (logPBase > baseRows[b + baseTop]) baseTop = i;
        if (logPBase > -16) kld += Math.exp(logPBase) * (logPBase - (logits[at + i] - logSum));
      }
      this.sumNll += nll;
      this.sumNll2 += nll * nll;
      this.sumNllBase += nllBase;
      this.sumNllBase2 += nllBase * nllBase;
      this.sumNllNllBase += nll * nllBase;
      this.sumKld += kld;
      this.sumKld2 += kld * kld;
      const dp = Math.exp(-nll) - Math.exp(-nllBase);
      this.sumDp += dp;
      this.sumDp2 += dp * dp;
      this.sumDp4 += dp * dp * dp * dp;
      if (top === baseTop) this.sameTop++;
      this.count++;
      this.klds.push(kld);
      this.confidence.add(logits, r, vocab, max - logSum);
    }
  }

  result(): KlResult {
    const n = this.count;
    const [kld, kldError] = meanAndError(this.sumKld, this.sumKld2, n);
    const [meanDp, meanDpError] = meanAndError(this.sumDp, this.sumDp2, n);
    const [mse, mseError] = meanAndError(this.sumDp2, this.sumDp4, n);
    const rmsDp = Math.sqrt(mse);
    const [lnPpl, lnPplError] = meanAndError(this.sumNll, this.sumNll2, n);
    const [lnPplBase, lnPplBaseError] = meanAndError(this.sumNllBase, this.sumNllBase2, n);
    const covariance = n < 10 ? 0 : (this.sumNllNllBase / n - (this.sumNll / n) * (this.sumNllBase / n)) / (n - 1);
    const sorted = [...this.klds].sort((a, b) => a - b);
    const percentile = (fraction: number) => {
      const p = fraction * (sorted.length - 1);
      const i = Math.floor(p);
      return (1 - (p - i)) * sorted[i] + (p - i) * sorted[Math.min(i + 1, sorted.length - 1)];
    };
    const sameTop = this.sameTop / n;
    return {
      ...this.confidence.result(),
      count: n,
      kld,
      kldError,
      kldMedian: percentile(0.5),
      kld99: percentile(0.99),
      kldMax: sorted[sorted.length - 1],
      sameTop,
      sameTopError: Math.sqrt((sameTop * (1 - sameTop)) / (n - 1)),
      rmsDp,
      rmsDpError: rmsDp > 0 ? (0.5 / rmsDp) * mseError : 0,
      meanDp,
      meanDpError,
      lnPplRatio: lnPpl - lnPplBase,
      lnPplRatioError: Math.sqrt(Math.max(0, lnPplError * lnPplError + lnPplBaseError * lnPplBaseError - 2 * covariance)),
    };
  }
}
