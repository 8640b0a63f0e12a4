/**
 * Context shift (issue 18, section 3): with contextOverflow 'shift', generation goes on past a full
 * 64-token context. RoPE models move the newer half of the cache down with K re-rotated by −Δ
 * (kv_shift.wgsl; its CPU twin is in tests/kv-cache.test.ts); learned-position models (GPT-2)
 * prefill the kept tokens again.
 *
 * What "after a shift" must equal: the kept tokens' keys and values were computed while the dropped
 * tokens were still there, so in a model of several layers they are not what a fresh prefill of the
 * kept tokens computes (llama.cpp's context shift has the same property). The shift itself is exact
 * up to rounding, and that is what is checked: in a one-layer model (whose K and V depend only on
 * the token and its position) the logits after a shift equal a fresh prefill's; in stories260K they
 * equal llama.cpp's after its own context shift (eraseContextTokenRanges: seq_rm, then seq_add's K-shift).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import type { GenerateOptions, GenerationStats } from '../src/runtime/types.ts';
import { GGMLType, readGGUF } from '../src/model/gguf.ts';
import { bytesSource } from '../src/storage/source.ts';
import { vocabularyOf, writeRandomModel } from '../scripts/lib/model-writer.ts';
import { STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppShiftedLogits } from './oracle/llamacpp.ts';

const CONTEXT = 64;

let dir: string;
const files = new Map<string, { path: string; kvCache: 'f32' | 'f16' }>();
const sessions = new Map<string, Promise<ModelSession>>();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lantern-shift-'));
  const vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(STORIES_GGUF))));
  const llama1 = join(dir, 'llama-1-layer.gguf');
  writeFileSync(llama1, writeRandomModel({ architecture: 'llama', nLayers: 1, nEmbd: 64, nFF: 96, nHeads: 2, nKvHeads: 2, contextLength: CONTEXT }, vocab, GGMLType.F32, 23));
  const gpt2 = join(dir, 'gpt2.gguf');
  writeFileSync(gpt2, writeRandomModel({ architecture: 'gpt2', nLayers: 2, nEmbd: 64, nFF: 128, nHeads: 2, nKvHeads: 2, contextLength: CONTEXT }, vocab, GGMLType.F32, 29));
  files.set('stories:f32', { path: STORIES_GGUF, kvCache: 'f32' });
  files.set('stories:f16', { path: STORIES_GGUF, kvCache: 'f16' });
  files.set('llama1:f32', { path: llama1, kvCache: 'f32' });
  files.set('gpt2:f32', { path: gpt2, kvCache: 'f32' });
});
afterAll(async () => {
  for (const session of sessions.values()) await (await session.catch(() => undefined))?.close();
  await disposeLlamaCpp();
  rmSync(dir, { recursive: true, force: true });
});

/** One session per model and cache form, opened by the first test that needs it, at a 64-token context. */
function session(name: string): Promise<ModelSession> {
  let opened = sessions.get(name);
  if (!opened) {
    const { path, kvCache } = files.get(name)!;
    sessions.set(name, (opened = openSession(path, { contextLength: CONTEXT, kvCache })));
  }
  return opened;
}

/** Generous: a session opens in seconds, but these machines are shared. */
const TIMEOUT = 600_000;

async function generate(session: ModelSession, promptIds: number[], options: GenerateOptions): Promise<{ ids: number[]; stats: GenerationStats }> {
  const ids: number[] = [];
  const stats = await session.generate(promptIds, { temperature: 0, ...options }, (t) => {
    if (t.id >= 0) ids.push(t.id);
  });
  return { ids, stats: stats! };
}

/** What the KV cache holds after generating `generated` from `prompt` with shifts (Runtime.shiftContext): every token but the last was run. */
function cachedAfter(prompt: number[], generated: number[], keep: number): { cached: number[]; shifts: number } {
  let cached = prompt.slice();
  let shifts = 0;
  for (const id of generated.slice(0, -1)) {
    if (cached.length === CONTEXT) {
      const delta = Math.ceil((CONTEXT - keep) / 2);
      cached = [...cached.slice(0, keep), ...cached.slice(keep + delta)];
      shifts++;
    }
    cached.push(id);
  }
  return { cached, shifts };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b[i])), 0);
const maxAbs = (a: Float32Array) => a.reduce((worst, v) => Math.max(worst, Math.abs(v)), 0);
/** 12 ids, BOS first: the default keep is 1, so a shift at 64 drops positions 1..32 (Δ = 32) and moves 31 rows down. */
const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 300, 411, 290];
const KEEP = 1, DELTA = Math.ceil((CONTEXT - KEEP) / 2);
/** Tokens that end a generation with the first token run after its shift. */
const TO_FIRST_SHIFT = CONTEXT - PROMPT.length + 2;

/**
 * Largest |Δlogit| against llama.cpp after the same shift, relative to the largest |logit|. f32:
 * the re-rotation and the kernels' rounding (measured 4.4e-7); f16: as tests/kv-cache-model.test.ts
 * holds an f16 cache to llama.cpp's, whose K-shift also rounds the rotated K to f16 (measured 5.6e-4).
 */
const ORACLE_TOLERANCE = { f32: 1e-4, f16: 2e-3 };

describe('context shift', () => {
  it('a full context ends the generation by default (finishReason "length"); with shift it goes on past it', async () => {
    const s = await session('stories:f32');
    const stopped = await generate(s, PROMPT, { maxTokens: 200 });
    expect(stopped.ids.length).toBe(CONTEXT - PROMPT.length + 1); // the last one is sampled, never run
    expect(stopped.stats.finishReason).toBe('length');
    expect(stopped.stats.contextShifts).toBeUndefined();

    const { ids, stats } = await generate(s, PROMPT, { maxTokens: 150, contextOverflow: 'shift' });
    expect(ids.length).toBe(150);
    expect(stats.finishReason).toBe('length');
    const { shifts } = cachedAfter(PROMPT, ids, KEEP);
    expect(shifts).toBeGreaterThanOrEqual(3);
    expect(stats.contextShifts).toBe(shifts);
    // Up to the first shift the tokens are the unshifted run's.
    expect(ids.slice(0, stopped.ids.length)).toEqual(stopped.ids);
  }, TIMEOUT);

  for (const kvCache of ['f32', 'f16'] as const) {
    it(`stories260K, ${kvCache} cache: the logits after a shift are llama.cpp's after its own context shift`, async () => {
      const s = await session(`stories:${kvCache}`);
      const { ids, stats } = await generate(s, PROMPT, { maxTokens: TO_FIRST_SHIFT, contextOverflow: 'shift' });
      const { cached, shifts } = cachedAfter(PROMPT, ids, KEEP);
      expect([stats.contextShifts, shifts]).toEqual([1, 1]);
      // Lantern: the shifted cache (all of it reused), then the last token run on it.
      const shifted = await s.logits([...cached, ids.at(-1)!]);
      // llama.cpp: the full context, positions KEEP..KEEP+DELTA-1 erased, then the same two tokens.
      const full = [...PROMPT, ...ids].slice(0, CONTEXT);
      const want = await llamaCppShiftedLogits(STORIES_GGUF, full, { start: KEEP, end: KEEP + DELTA }, ids.slice(-2), kvCache === 'f32' ? 'F32' : 'F16');
      const diff = maxDiff(shifted, want) / maxAbs(want);
      expect(diff).toBeLessThan(ORACLE_TOLERANCE[kvCache]);
      // Not what a fresh prefill of the kept tokens gives: in 5 layers their K and V still carry the dropped tokens.
      await s.logits([2]);
      const fresh = await s.logits([...cached, ids.at(-1)!]);
      expect(maxDiff(fresh, want) / maxAbs(want)).toBeGreaterThan(10 * ORACLE_TOLERANCE[kvCache]);
    }, TIMEOUT);
  }

  it('one layer of RoPE: the logits after a shift equal a fresh prefill of the kept tokens (K and V depend only on token and position)', async () => {
    const s = await session('llama1:f32');
    const { ids, stats } = await generate(s, PROMPT, { maxTokens: TO_FIRST_SHIFT, contextOverflow: 'shift' });
    const { cached } = cachedAfter(PROMPT, ids, KEEP);
    expect(stats.contextShifts).toBe(1);
    const shifted = await s.logits([...cached, ids.at(-1)!]);
    await s.logits([2]);
    const fresh = await s.logits([...cached, ids.at(-1)!]);
    expect(maxDiff(shifted, fresh)).toBeLessThan(1e-4);
    // Had K not been re-rotated, its relative positions would be off by Δ: the keep token's logits show it.
    expect(maxAbs(fresh)).toBeGreaterThan(0.5);
  }, TIMEOUT);

  it('GPT-2 (learned positions) prefills the kept tokens again: its logits equal a fresh prefill', async () => {
    const s = await session('gpt2:f32');
    const { ids, stats } = await generate(s, PROMPT, { maxTokens: TO_FIRST_SHIFT + 20, contextOverflow: 'shift', keep: 3 });
    expect(ids.length).toBe(TO_FIRST_SHIFT + 20);
    const { cached, shifts } = cachedAfter(PROMPT, ids, 3);
    expect([stats.contextShifts, shifts]).toEqual([1, 1]);
    const shifted = await s.logits([...cached, ids.at(-1)!]);
    await s.logits([2]);
    const fresh = await s.logits([...cached, ids.at(-1)!]);
    expect(maxDiff(shifted, fresh)).toBeLessThan(1e-4);
  }, TIMEOUT);

  it('with shift, a prompt longer than the context keeps its first `keep` ids and its last (context - keep) / 2; without, CONTEXT_OVERFLOW', async () => {
    const s = await session('gpt2:f32');
    const long = Array.from({ length: 100 }, (_, i) => 3 + ((i * 37) % 500));
    await expect(generate(s, long, { maxTokens: 2 })).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW' });
    const { ids, stats } = await generate(s, long, { maxTokens: 4, contextOverflow: 'shift', keep: 4 });
    expect(stats.promptTokens).toBe(4 + (CONTEXT - 4) / 2);
    // The same run as the cut prompt given as it is, from an empty cache.
    const cut = [...long.slice(0, 4), ...long.slice(-(CONTEXT - 4) / 2)];
    await s.logits([2]);
    const given = await generate(s, cut, { maxTokens: 4 });
    expect(given.stats.cachedTokens).toBe(0);
    expect(ids).toEqual(given.ids);
    await expect(generate(s, PROMPT, { contextOverflow: 'wrap' as 'shift' })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(generate(s, PROMPT, { contextOverflow: 'shift', keep: -1 })).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
  }, TIMEOUT);
});
