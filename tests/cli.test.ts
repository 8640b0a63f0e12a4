import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The `lantern` command, run as a user runs it: a child process of bin/lantern.mjs.
const ROOT = new URL('..', import.meta.url).pathname;
const MODEL_DIR = new URL('../../shared/models/stories260K/', import.meta.url).pathname;
const MODEL = join(MODEL_DIR, 'stories260K.gguf');
const BOS = 1; // tokenizer.ggml.bos_token_id of stories260K

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function lantern(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/lantern.mjs'), ...args], { cwd: ROOT, timeout: 110_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The one JSON object a --json run prints. */
function json(run: Run): Record<string, any> {
  const lines = run.stdout.trim().split('\n');
  expect(lines, `stdout: ${run.stdout}\nstderr: ${run.stderr}`).toHaveLength(1);
  return JSON.parse(lines[0]);
}

describe('lantern tokenize', () => {
  it('puts BOS first with --add-special, and not without', async () => {
    const plain = await lantern('tokenize', '--model', MODEL, '--text', 'Once upon a time', '--json');
    const special = await lantern('tokenize', '--model', MODEL, '--text', 'Once upon a time', '--add-special', '--json');
    expect(plain.code, plain.stderr).toBe(0);
    expect(special.code, special.stderr).toBe(0);
    const { tokens } = json(plain);
    expect(tokens.length).toBeGreaterThan(0);
    expect(tokens[0]).not.toBe(BOS);
    expect(json(special).tokens).toEqual([BOS, ...tokens]);
  });

  it('reads the text from --text-file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'lantern-cli-')), 'prompt.txt');
    writeFileSync(file, 'Once upon a time');
    const fromFile = await lantern('tokenize', '--model', MODEL, '--text-file', file, '--json');
    const fromArg = await lantern('tokenize', '--model', MODEL, '--text', 'Once upon a time', '--json');
    expect(json(fromFile)).toEqual(json(fromArg));
  });
});

describe('lantern errors', () => {
  it('exits 1 with BAD_MODEL_FILE for a file that is not GGUF', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'lantern-cli-')), 'not-a-model.gguf');
    writeFileSync(file, 'This is a text file, not a model.\n'.repeat(10));
    for (const args of [['tokenize', '--text', 'hi'], ['generate', '--prompt-ids', '1']]) {
      const run = await lantern(...args, '--model', file, '--json');
      expect(run.code, run.stderr).toBe(1);
      expect(json(run).error.code).toBe('BAD_MODEL_FILE');
    }
    const plain = await lantern('tokenize', '--model', file, '--text', 'hi');
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^error BAD_MODEL_FILE: /);
  });

  it('exits 2 on bad arguments', async () => {
    const cases = [
      ['tokenize', '--text', 'hi'], // no --model
      ['generate', '--model', MODEL], // no prompt
      ['generate', '--model', MODEL, '--prompt-ids', '1,x'],
      ['generate', '--model', MODEL, '--prompt-ids', '1', '--max-tokens', '0'],
      ['logits', '--model', MODEL, '--prompt-ids', '1', '--temperature', '1'], // not a logits option
      ['frobnicate'],
      ['tokenize', '--model', MODEL, '--text', 'hi', '--bogus'],
      ['generate', '--model', MODEL, '--prompt-ids', '1', '--kv-cache', 'q4_0'], // not a KV cache form
      ['bench', '--model', MODEL, '--context', '8'], // shorter than the run needs
      ['generate', '--model', MODEL, '--prompt-ids', '1', '--logprobs', '21'], // 0..20, and with --json only
      ['generate', '--model', MODEL, '--prompt-ids', '1', '--context-overflow', 'wrap'], // error or shift
      ['generate', '--model', MODEL, '--prompt-ids', '1', '--context-overflow', 'shift', '--keep', 'x'],
    ];
    const runs = await Promise.all(cases.map((args) => lantern(...args)));
    runs.forEach((run, i) => {
      expect(run.code, `${cases[i].join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toMatch(/^lantern: .*\nRun "lantern help" for usage/);
    });
    const asJSON = await lantern('tokenize', '--text', 'hi', '--json');
    expect(asJSON.code).toBe(2);
    expect(json(asJSON).error.code).toBe('BAD_ARGUMENT');
  });

  it('prints usage for help and for no arguments', async () => {
    for (const run of await Promise.all([lantern('help'), lantern()])) {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: lantern <command>/);
    }
  });
});

describe('lantern on the GPU', () => {
  it('generate --temperature 0 gives the reference greedy tokens', async () => {
    const reference = (await import(join(MODEL_DIR, 'reference_greedy_from_bos.json'), { with: { type: 'json' } })).default as { prompt_ids: number[]; generated_ids: number[] };
    expect(reference.prompt_ids).toEqual([BOS]);
    const run = await lantern('generate', '--model', MODEL, '--prompt-ids', '1', '--max-tokens', '8', '--temperature', '0', '--json');
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const result = json(run);
    expect(result.promptTokens).toEqual([BOS]);
    expect(result.tokens).toEqual(reference.generated_ids.slice(0, 8));
    expect(typeof result.text).toBe('string');
    expect(result.decodeTokensPerSecond).toBeGreaterThan(0);
    expect(result.adapter).toBeTruthy();
  });

  it('logits put the greedy token on top', async () => {
    const reference = (await import(join(MODEL_DIR, 'reference_greedy_from_bos.json'), { with: { type: 'json' } })).default as { generated_ids: number[] };
    const run = await lantern('logits', '--model', MODEL, '--prompt-ids', '1', '--json');
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const { logits } = json(run) as { logits: number[] };
    expect(logits).toHaveLength(512);
    expect(logits.indexOf(Math.max(...logits))).toBe(reference.generated_ids[0]);
  });
});
