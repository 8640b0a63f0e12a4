/**
 * `lantern perplexity` and Runtime.tokenLogProbs: llama-perplexity's windowing over stories260K,
 * against the same windowing written out here over llama.cpp's logits (node-llama-cpp, CPU).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { perplexity, perplexityChunks } from '../src/runtime/perplexity.ts';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { REPO_ROOT, STORIES_GGUF } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppLogitsFrom, llamaCppTokenize } from './oracle/llamacpp.ts';

/** A TinyStories-like text of ~2,300 stories260K tokens, written for these tests. */
const STORY_FILE = join(REPO_ROOT, 'tests/data/story.txt');
const STORY = readFileSync(STORY_FILE, 'utf8');
const BOS = 1; // stories260K adds BOS (tokenizer.ggml.bos_token_id 1)
/** Largest |Δ log p| per scored token against llama.cpp: f32 logits on both sides, different summation orders. */
const LOGPROB_TOLERANCE = 1e-3;

/**
 * llama-perplexity's perplexity() (tools/perplexity/perplexity.cpp), written out apart from
 * src/runtime/perplexity.ts: ⌊n / nCtx⌋ chunks, BOS first in each, the logits at positions
 * nCtx/2 .. nCtx − 2 scoring the next token, log-softmax in double; the running estimates.
 */
async function llamaCppPerplexity(tokens: number[], nCtx: number): Promise<{ estimates: number[]; logProbs: number[][] }> {
  const first = Math.floor(nCtx / 2);
  const estimates: number[] = [];
  const logProbs: number[][] = [];
  let nll = 0;
  let count = 0;
  for (let start = 0; start + nCtx <= tokens.length; start += nCtx) {
    const chunk = tokens.slice(start, start + nCtx);
    chunk[0] = BOS;
    const rows = await llamaCppLogitsFrom(STORIES_GGUF, chunk, first); // positions first .. nCtx − 1
    const chunkLogProbs: number[] = [];
    for (let pos = first; pos < nCtx - 1; pos++) {
      const logits = rows[pos - first];
      let max = -Infinity;
      for (const l of logits) max = Math.max(max, l);
      let sum = 0;
      for (const l of logits) sum += Math.exp(l - max);
      const logProb = logits[chunk[pos + 1]] - max - Math.log(sum);
      chunkLogProbs.push(logProb);
      nll -= logProb;
      count++;
    }
    logProbs.push(chunkLogProbs);
    estimates.push(Math.exp(nll / count));
  }
  return { estimates, logProbs };
}

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe('perplexity windowing', () => {
  it('cuts the text as llama-perplexity does: whole chunks, BOS first, the second half scored', async () => {
    const tokens = Array.from({ length: 50 }, (_, i) => 100 + i);
    const calls: { ids: number[]; from: number }[] = [];
    // Every scored token gets log p = −ln 3 in chunk 1 and −ln 5 in chunk 2: ppl 3, then √15.
    const result = await perplexity(tokens, { nCtx: 20, bos: 7 }, async (ids, from) => {
      calls.push({ ids, from });
      return new Array(ids.length - 1 - from).fill(-Math.log(calls.length === 1 ? 3 : 5));
    });
    expect(calls.map((c) => c.from)).toEqual([10, 10]);
    expect(calls[0].ids).toEqual([7, ...tokens.slice(1, 20)]);
    expect(calls[1].ids).toEqual([7, ...tokens.slice(21, 40)]); // tokens 40..49 are the dropped tail
    expect(result.scored).toBe(2 * 9);
    expect(result.estimates[0]).toBeCloseTo(3, 12);
    expect(result.ppl).toBeCloseTo(Math.sqrt(15), 12);
    // llama.cpp's ±: ppl · sqrt(variance of the nll / (count − 1)); here the nll are ln 3 and ln 5, 9 of each.
    expect(result.margin).toBeCloseTo((Math.sqrt(15) * (Math.log(5) - Math.log(3))) / 2 / Math.sqrt(17), 10);
    // A model that adds no BOS keeps each chunk's own first token.
    expect(perplexityChunks(tokens, { nCtx: 25 })).toEqual([tokens.slice(0, 25), tokens.slice(25, 50)]);
  });

  it('refuses a text of fewer than 2 × nCtx tokens, and a context under 3', () => {
    const short = () => perplexityChunks(new Array(39).fill(5), { nCtx: 20, bos: 1 });
    expect(short).toThrow(LanternError);
    expect(short).toThrow(/only 39 tokens.*at least 40/);
    expect(() => perplexityChunks(new Array(10).fill(5), { nCtx: 2 })).toThrow(/at least 3 tokens/);
  });
});

describe('stories260K against llama.cpp', () => {
  const N_CTX = 128;
  let session: ModelSession;
  let tokens: number[];
  beforeAll(async () => {
    session = await openSession(STORIES_GGUF, { contextLength: N_CTX, kvCache: 'f32' }); // as the oracle's cache
    // 4 chunks of 128 and a tail of 88 that is dropped.
    tokens = (await session.encode(STORY, true)).slice(0, 4 * N_CTX + 88);
  });
  afterAll(async () => {
    await session?.close();
    await disposeLlamaCpp();
  });

  it(`gives llama.cpp's perplexity, chunk by chunk, at n_ctx ${N_CTX}`, async () => {
    expect(tokens).toEqual((await llamaCppTokenize(STORIES_GGUF, STORY)).slice(0, tokens.length));
    const ours: number[][] = [];
    const result = await perplexity(tokens, { nCtx: N_CTX, bos: BOS }, async (ids, from) => {
      const logProbs = await session.tokenLogProbs(ids, from);
      ours.push(Array.from(logProbs));
      return logProbs;
    });
    const theirs = await llamaCppPerplexity(tokens, N_CTX);
    expect(ours.map((c) => c.length)).toEqual([63, 63, 63, 63]);
    let worst = 0;
    ours.forEach((chunk, c) => chunk.forEach((lp, j) => (worst = Math.max(worst, Math.abs(lp - theirs.logProbs[c][j])))));
    expect(worst).toBeLessThan(LOGPROB_TOLERANCE);
    expect(result.estimates).toHaveLength(4);
    result.estimates.forEach((estimate, c) => expect(relative(estimate, theirs.estimates[c])).toBeLessThan(1e-3));
    expect(relative(result.ppl, theirs.estimates[3])).toBeLessThan(1e-3);
    expect(result.ppl).toBeGreaterThan(1);
  });

  it('scores the same with a cached prefix and from another start', async () => {
    const chunk = [BOS, ...tokens.slice(1, N_CTX)];
    const whole = await session.tokenLogProbs(chunk, 0); // positions 0..126
    const again = await session.tokenLogProbs(chunk, 64); // 0..63 reused from the cache
    expect(whole).toHaveLength(N_CTX - 1);
    expect(again).toHaveLength(N_CTX - 1 - 64);
    for (let j = 0; j < again.length; j++) expect(Math.abs(again[j] - whole[64 + j])).toBeLessThan(1e-5);
    expect(Math.max(...whole)).toBeLessThan(0);
  });

  it('refuses a start outside the ids and more ids than the context', async () => {
    await expect(session.tokenLogProbs([BOS], 0)).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(session.tokenLogProbs([BOS, 5, 6], 2)).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(session.tokenLogProbs(tokens.slice(0, N_CTX + 1), 64)).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW' });
  });
});

/** A run starts Vite and Chromium: ~50 s on a loaded 2-core machine, so room for twice that and more. */
const CLI_TIMEOUT_MS = 220_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function lantern(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin/lantern.mjs'), ...args], { cwd: REPO_ROOT, timeout: CLI_TIMEOUT_MS }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('lantern perplexity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lantern-perplexity-'));
  afterAll(() => disposeLlamaCpp());

  it('prints the running estimates and the final PPL, which match llama.cpp', async () => {
    const file = join(dir, 'story.txt');
    writeFileSync(file, STORY.slice(0, 1200));
    const run = await lantern('perplexity', '--model', STORIES_GGUF, '--text-file', file, '--context', '64', '--kv-cache', 'f32'); // as the oracle's cache
    expect(run.code, run.stderr).toBe(0);
    const final = /^Final estimate: PPL = (\d+\.\d{4}) \+\/- \d+\.\d{5}$/m.exec(run.stdout);
    expect(final, run.stdout).not.toBeNull();
    const tokens = await llamaCppTokenize(STORIES_GGUF, STORY.slice(0, 1200));
    const chunks = Math.floor(tokens.length / 64);
    expect(chunks).toBeGreaterThanOrEqual(2);
    const printed = [...run.stdout.matchAll(/\[(\d+)\](\d+\.\d{4}),/g)];
    expect(printed.map((m) => Number(m[1]))).toEqual(Array.from({ length: chunks }, (_, i) => i + 1));
    const theirs = await llamaCppPerplexity(tokens, 64);
    // Printed to 4 decimals, as llama-perplexity prints them.
    printed.forEach((m, c) => expect(relative(Number(m[2]), theirs.estimates[c])).toBeLessThan(1e-3));
    expect(relative(Number(final![1]), theirs.estimates.at(-1)!)).toBeLessThan(1e-3);
  }, CLI_TIMEOUT_MS + 20_000);

  it('refuses a text shorter than two chunks, and a context over the model\'s, before any browser starts', async () => {
    const file = join(dir, 'short.txt');
    writeFileSync(file, 'Once upon a time, there was a little girl named Lily.');
    const short = await lantern('perplexity', '--model', STORIES_GGUF, '--text-file', file, '--json');
    expect(short.code, short.stderr).toBe(1);
    const error = JSON.parse(short.stdout.trim()).error;
    expect(error.code).toBe('BAD_ARGUMENT');
    expect(error.message).toMatch(/needs at least 1024 \(two chunks/); // the default context: 512
    const wide = await lantern('perplexity', '--model', STORIES_GGUF, '--text-file', STORY_FILE, '--context', '4096');
    expect(wide.code).toBe(1);
    expect(wide.stderr).toMatch(/^error BAD_ARGUMENT: --context 4096 is more than this model's context of 2048 tokens/); // llama.context_length
    const missing = await lantern('perplexity', '--model', STORIES_GGUF);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/perplexity needs --text-file FILE/);
  });
});
