import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { candidates, Sampler, type SamplingOptions } from '../src/runtime/sampler.ts';

/**
 * The sampler against a plain reference written from the definitions (float64, full sort), on
 * fixed logits with ties, negatives and a banned token.
 */

const LOGITS = Float32Array.from([2.5, -1, 0.5, 3, 3, -4, 1.25, 0, -0.5, 2, 1, -2, 0.75]);
const HISTORY = [3, 3, 9, 5, 0, 3];

/** id → probability, straight from the definitions. */
function reference(logits: Float32Array, o: SamplingOptions, history: number[]): Map<number, number> {
  const x = Array.from(logits, Number);
  for (const [id, b] of Object.entries(o.logitBias ?? {})) x[Number(id)] += b;
  const lastN = o.penaltyLastN ?? 64;
  const seen = lastN === -1 ? history : history.slice(-lastN);
  for (const id of new Set(seen)) {
    const count = seen.filter((t) => t === id).length;
    const r = o.repetitionPenalty ?? 1;
    x[id] = x[id] > 0 ? x[id] / r : x[id] * r;
    x[id] -= count * (o.frequencyPenalty ?? 0) + (o.presencePenalty ?? 0);
  }
  const t = o.temperature ?? 0;
  let order = x.map((v, id) => ({ id, v })).filter((e) => e.v > -Infinity).sort((a, b) => b.v - a.v || a.id - b.id);
  if (t === 0) return new Map([[order[0].id, 1]]);
  if (o.topK) order = order.slice(0, o.topK);
  const softmax = (es: { id: number; v: number }[]) => {
    const z = es.reduce((s, e) => s + Math.exp(e.v / t), 0);
    return es.map((e) => ({ id: e.id, v: e.v, p: Math.exp(e.v / t) / z }));
  };
  let probs = softmax(order);
  if (o.topP !== undefined && o.topP < 1) {
    const kept = [];
    let sum = 0;
    for (const e of probs) {
      if (sum >= o.topP) break;
      kept.push(e);
      sum += e.p;
    }
    probs = softmax(kept);
  }
  if (o.minP) {
    const floor = probs[0].p * o.minP;
    probs = softmax(probs.filter((e) => e.p >= floor));
  }
  return new Map(probs.map((e) => [e.id, e.p]));
}

function expectMatchesReference(o: SamplingOptions, history = HISTORY): Map<number, number> {
  const got = candidates(LOGITS, o, history);
  const want = reference(LOGITS, o, history);
  expect(new Set(got.ids), JSON.stringify(o)).toEqual(new Set(want.keys()));
  got.ids.forEach((id, i) => expect(got.probs[i], `p(${id}) with ${JSON.stringify(o)}`).toBeCloseTo(want.get(id)!, 12));
  return want;
}

describe('sampler against the reference', () => {
  it('temperature alone keeps every token and flattens with higher values', () => {
    const cold = expectMatchesReference({ temperature: 0.5 });
    const hot = expectMatchesReference({ temperature: 2 });
    expect(cold.size).toBe(LOGITS.length);
    expect(hot.get(3)!).toBeLessThan(cold.get(3)!);
    expect(hot.get(5)!).toBeGreaterThan(cold.get(5)!);
  });

  it('top-k keeps the k most likely, ties broken by lower id', () => {
    const p = expectMatchesReference({ temperature: 1, topK: 3 });
    expect([...p.keys()].sort()).toEqual([0, 3, 4]);
    expectMatchesReference({ temperature: 0.7, topK: 1 });
    expectMatchesReference({ temperature: 0.7, topK: 100 });
  });

  it('top-p keeps the smallest set reaching p', () => {
    const p = expectMatchesReference({ temperature: 1, topP: 0.6 });
    expect(p.size).toBeGreaterThan(1);
    expect(p.size).toBeLessThan(LOGITS.length);
    expectMatchesReference({ temperature: 1, topP: 0.999 });
  });

  it('min-p drops tokens below minP times the best', () => {
    const p = expectMatchesReference({ temperature: 1, minP: 0.2 });
    const all = reference(LOGITS, { temperature: 1 }, HISTORY);
    for (const [id, prob] of all) expect(p.has(id)).toBe(prob >= all.get(3)! * 0.2);
  });

  it('repetition, presence and frequency penalties lower the tokens seen', () => {
    const plain = reference(LOGITS, { temperature: 1 }, HISTORY);
    for (const o of [{ repetitionPenalty: 1.3 }, { presencePenalty: 0.8 }, { frequencyPenalty: 0.5 }] as SamplingOptions[]) {
      const p = expectMatchesReference({ temperature: 1, ...o });
      expect(p.get(3)!, JSON.stringify(o)).toBeLessThan(plain.get(3)!);
      expect(p.get(4)!, JSON.stringify(o)).toBeGreaterThan(plain.get(4)!); // 4 ties 3 but was never seen
    }
    // Frequency counts occurrences: token 3 (seen 3 times) loses more than token 9 (once).
    const f = expectMatchesReference({ temperature: 1, frequencyPenalty: 1 });
    expect(Math.log(plain.get(3)! / f.get(3)!)).toBeGreaterThan(Math.log(plain.get(9)! / f.get(9)!));
    // A negative logit is multiplied by the repeat penalty: seen token 5 goes further down.
    expectMatchesReference({ temperature: 1, repetitionPenalty: 2, penaltyLastN: 3 });
    expectMatchesReference({ temperature: 1, repetitionPenalty: 2, penaltyLastN: -1 });
  });

  it('logit bias shifts and bans tokens, and greedy follows it', () => {
    const p = expectMatchesReference({ temperature: 1, logitBias: { 5: 10, 3: -Infinity } });
    expect(p.has(3)).toBe(false);
    expect([...p.entries()].sort((a, b) => b[1] - a[1])[0][0]).toBe(5);
    expect(new Sampler({ temperature: 0, logitBias: { 5: 10 } }).sample(LOGITS, [])).toBe(5);
    expect(new Sampler({ temperature: 0 }).sample(LOGITS, [])).toBe(3);
    expect(new Sampler({ temperature: 0 }).gpuGreedy).toBe(true);
    expect(new Sampler({ temperature: 0, presencePenalty: 1 }).gpuGreedy).toBe(false);
  });

  it('all options together', () => {
    expectMatchesReference({ temperature: 0.8, topK: 6, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.2, frequencyPenalty: 0.1, logitBias: { 11: 3 } });
  });

  it('draws follow the distribution, repeat exactly with a seed and differ between seeds', () => {
    const o: SamplingOptions = { temperature: 1, topK: 5, seed: 42 };
    const want = reference(LOGITS, o, []);
    const draw = (seed: number, n: number) => {
      const s = new Sampler({ ...o, seed });
      return Array.from({ length: n }, () => s.sample(LOGITS, []));
    };
    const a = draw(42, 20000);
    expect(draw(42, 20000)).toEqual(a);
    expect(draw(43, 200)).not.toEqual(a.slice(0, 200));
    for (const [id, p] of want) {
      const freq = a.filter((t) => t === id).length / a.length;
      expect(Math.abs(freq - p), `frequency of ${id}`).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / a.length) + 1e-3);
    }
    expect(a.every((id) => want.has(id))).toBe(true);
  });

  it('rejects bad options with BAD_ARGUMENT', () => {
    for (const o of [{ temperature: -1 }, { topP: 0 }, { topK: 1.5 }, { minP: 2 }, { repetitionPenalty: 0 }] as SamplingOptions[]) {
      expect(() => new Sampler(o), JSON.stringify(o)).toThrow(LanternError);
    }
    expect(() => candidates(LOGITS, { temperature: 1, logitBias: Object.fromEntries([...LOGITS.keys()].map((i) => [i, -Infinity])) }, [])).toThrow(/banned/);
  });
});
