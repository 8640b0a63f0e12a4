/**
 * Choosing the next token from the logits. Greedy decoding with nothing to adjust never reads
 * logits back (the argmax runs on the GPU); everything else reads the [n_vocab] f32 logits and
 * runs here, on the CPU, in float64.
 *
 * Order of the chain, as Hugging Face's logits processors apply it:
 *   logit bias → repetition / presence / frequency penalties → temperature → top-k → top-p → min-p
 *   → draw with a seeded PRNG.
 */
import { LanternError } from '../errors.ts';
import { applyMask, noTokenAllowed } from './grammar/mask.ts';

export interface SamplingOptions {
  /** 0 (default) is greedy; higher flattens the distribution. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 (default) keeps all. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 (default) keeps all. */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely one's probability; 0 (default) keeps all. */
  minP?: number;
  /**
   * llama.cpp's repeat penalty on tokens seen in the last `penaltyLastN`: a positive logit is
   * divided by it, a negative one multiplied. 1 (default) is off.
   */
  repetitionPenalty?: number;
  /** OpenAI's presence penalty: subtracted once from the logit of every token already seen. */
  presencePenalty?: number;
  /** OpenAI's frequency penalty: subtracted once per earlier occurrence of the token. */
  frequencyPenalty?: number;
  /** How many recent tokens (prompt included) the penalties look at; default 64, -1 for all. */
  penaltyLastN?: number;
  /** Added to the logits of the given token ids before anything else (-Infinity bans a token). */
  logitBias?: Record<number, number>;
  /** Makes a run exactly reproducible on the same model and device. */
  seed?: number;
}

/** The tokens still in play after the chain and their probabilities (summing to 1). */
export interface Candidates {
  ids: number[];
  probs: number[];
}

const DEFAULT_PENALTY_LAST_N = 64;

/** Checks the options once per request, so that bad values fail before any GPU work. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (name: string, value: unknown, want: string) => {
    throw new LanternError('BAD_ARGUMENT', `${name} must be ${want}, not ${String(value)}.`, { [name]: value });
  };
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) bad('temperature', o.temperature, 'a number >= 0');
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', o.topK, 'a whole number >= 0');
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad('topP', o.topP, 'in (0, 1]');
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) bad('minP', o.minP, 'in [0, 1]');
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty))) bad('repetitionPenalty', o.repetitionPenalty, 'a number > 0');
  for (const name of ['presencePenalty', 'frequencyPenalty'] as const) {
    if (o[name] !== undefined && !Number.isFinite(o[name])) bad(name, o[name], 'a finite number');
  }
  if (o.penaltyLastN !== undefined && !(Number.isInteger(o.penaltyLastN) && o.penaltyLastN >= -1)) bad('penaltyLastN', o.penaltyLastN, 'a whole number >= -1');
  if (o.seed !== undefined && !Number.isFinite(o.seed)) bad('seed', o.seed, 'a number');
}

/** Whether the options change anything before an argmax, i.e. whether greedy needs the logits on the CPU. */
function adjustsLogits(o: SamplingOptions): boolean {
  return (o.logitBias !== undefined && Object.keys(o.logitBias).length > 0)
    || (o.repetitionPenalty ?? 1) !== 1 || (o.presencePenalty ?? 0) !== 0 || (o.frequencyPenalty ?? 0) !== 0;
}

/** One request's sampler: its options and its own seeded random stream. */
export class Sampler {
  private readonly random: () => number;

  constructor(private readonly options: SamplingOptions) {
    checkSamplingOptions(options);
    this.random = seededRandom(options.seed ?? (Math.random() * 2 ** 32));
  }

  /** Greedy with no bias or penalty: the GPU's argmax gives the same token without a logits readback. */
  get gpuGreedy(): boolean {
    return (this.options.temperature ?? 0) === 0 && !adjustsLogits(this.options);
  }

  /**
   * k when only the k most likely tokens matter (top-k, no bias or penalty, temperature > 0): the
   * GPU can then select them and read back k logits instead of all of them.
   */
  get topKOnly(): number | undefined {
    const k = this.options.topK ?? 0;
    return (this.options.temperature ?? 0) > 0 && k > 0 && !adjustsLogits(this.options) ? k : undefined;
  }

  /**
   * Picks the next id from [n_vocab] logits; `history` is the prompt and the tokens generated so far.
   * `mask` (a grammar's allowed tokens, bit id & 31 of word id >> 5) bans every other token first.
   */
  sample(logits: Float32Array, history: readonly number[], mask?: Uint32Array): number {
    if (mask) {
      logits = Float32Array.from(logits);
      applyMask(logits, mask);
      if (!logits.some((x) => x > -Infinity)) throw noTokenAllowed();
    }
    if ((this.options.temperature ?? 0) === 0) return argmax(adjustedLogits(logits, this.options, history));
    return this.draw(candidates(logits, this.options, history));
  }

  /** Picks the next id from the GPU's top-k (ids best first, with their logits); see topKOnly. */
  sampleTopK(ids: readonly number[], logits: readonly number[]): number {
    return this.draw(candidatesFromTopK(ids, logits, this.options));
  }

  private draw({ ids, probs }: Candidates): number {
    let r = this.random();
    for (let i = 0; i < ids.length; i++) {
      r -= probs[i];
      if (r < 0) return ids[i];
    }
    return ids[ids.length - 1]; // r left over from rounding
  }
}

/** Logits after bias and penalties, as float64. */
export function adjustedLogits(logits: Float32Array, o: SamplingOptions, history: readonly number[]): Float64Array {
  const out = Float64Array.from(logits);
  for (const [id, bias] of Object.entries(o.logitBias ?? {})) {
    const i = Number(id);
    if (Number.isInteger(i) && i >= 0 && i < out.length) out[i] += bias;
  }
  const repeat = o.repetitionPenalty ?? 1;
  const presence = o.presencePenalty ?? 0;
  const frequency = o.frequencyPenalty ?? 0;
  if (repeat === 1 && presence === 0 && frequency === 0) return out;
  const lastN = o.penaltyLastN ?? DEFAULT_PENALTY_LAST_N;
  const window = lastN === -1 ? history : history.slice(Math.max(0, history.length - lastN));
  const counts = new Map<number, number>();
  for (const id of window) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, count] of counts) {
    if (id < 0 || id >= out.length) continue;
    out[id] = out[id] > 0 ? out[id] / repeat : out[id] * repeat;
    out[id] -= count * frequency + presence;
  }
  return out;
}

/** The full chain up to the draw: which ids remain, most likely first, and their probabilities. */
export function candidates(logits: Float32Array, o: SamplingOptions, history: readonly number[]): Candidates {
  const adjusted = adjustedLogits(logits, o, history);
  const temperature = o.temperature ?? 0;
  if (temperature === 0) return { ids: [argmax(adjusted)], probs: [1] };

  let ids: number[] = [];
  for (let i = 0; i < adjusted.length; i++) if (adjusted[i] > -Infinity) ids.push(i);
  if (ids.length === 0) throw new LanternError('BAD_ARGUMENT', 'Every token is banned by logitBias; leave at least one token a finite bias.');
  const topK = o.topK ?? 0;
  if (topK > 0 && topK < ids.length) ids = topKIds(adjusted, ids, topK);
  else ids.sort((a, b) => adjusted[b] - adjusted[a] || a - b);
  return finishChain(ids, ids.map((id) => adjusted[id]), o);
}

/** The chain after top-k, from candidates the GPU selected: ids best first, with their logits. */
export function candidatesFromTopK(topIds: readonly number[], topLogits: readonly number[], o: SamplingOptions): Candidates {
  const ids: number[] = [];
  const values: number[] = [];
  // Fewer finite logits than k leave slots at -Infinity (id 0xffffffff): they are not candidates.
  topIds.forEach((id, i) => {
    if (topLogits[i] > -Infinity && id !== 0xffffffff) {
      ids.push(id);
      values.push(topLogits[i]);
    }
  });
  if (ids.length === 0) throw new LanternError('GPU_ERROR', 'The GPU top-k found no finite logit; the model produced no usable scores. This is a bug in Lantern; please report it.');
  return finishChain(ids, values, o);
}

/** Temperature, top-p and min-p over candidates sorted best first (`values` their adjusted logits). */
function finishChain(sortedIds: number[], values: number[], o: SamplingOptions): Candidates {
  let ids = sortedIds;
  const temperature = o.temperature ?? 1;
  // Softmax of logit / temperature over what is left.
  const max = values[0];
  let probs = values.map((v) => Math.exp((v - max) / temperature));
  const normalize = () => {
    const total = probs.reduce((s, p) => s + p, 0);
    probs = probs.map((p) => p / total);
  };
  normalize();

  const topP = o.topP ?? 1;
  if (topP < 1) {
    let keep = 0;
    let cumulative = 0;
    while (keep < ids.length && cumulative < topP) cumulative += probs[keep++];
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    normalize();
  }
  const minP = o.minP ?? 0;
  if (minP > 0) {
    const floor = probs[0] * minP;
    const keep = probs.findIndex((p) => p < floor);
    if (keep > 0) {
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
      normalize();
    }
  }
  return { ids, probs };
}

/** The k largest by logit, most likely first (ties: lower id first), without sorting the whole vocabulary. */
function topKIds(logits: Float64Array, ids: number[], k: number): number[] {
  const better = (a: number, b: number) => logits[a] > logits[b] || (logits[a] === logits[b] && a < b);
  const top: number[] = []; // sorted, best first
  for (const id of ids) {
    if (top.length === k && !better(id, top[k - 1])) continue;
    let i = top.length === k ? k - 1 : top.length;
    if (top.length < k) top.push(id);
    while (i > 0 && better(id, top[i - 1])) {
      top[i] = top[i - 1];
      i--;
    }
    top[i] = id;
  }
  return top;
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** mulberry32: a small seeded PRNG, so a seed makes a run exactly reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
