import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STORIES_GGUF } from './helpers/paths.ts';

/** `lantern chat` and the sampling flags of `lantern generate`, run as a user runs them. */

const ROOT = new URL('..', import.meta.url).pathname;

function lantern(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin/lantern.mjs'), ...args], { cwd: ROOT, timeout: 110_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('lantern chat', () => {
  it('is NO_CHAT_TEMPLATE for a model without a template, before any GPU starts', async () => {
    const run = await lantern('chat', '--model', STORIES_GGUF, '--message', 'Hello', '--json');
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).error.code).toBe('NO_CHAT_TEMPLATE');
  });

  it('answers in the given template with the sampling flags and stop strings; bad flags are usage errors', async () => {
    const template = join(mkdtempSync(join(tmpdir(), 'lantern-chat-')), 'template.jinja');
    writeFileSync(template, '{% for m in messages %}{{ m.content }}{% endfor %}');
    // Greedy, so the reply is known: the template renders "Once upon a time", whose continuation
    // (see tests/e2e/demo.test.ts) is ", there was a little girl named Lily."; the stop string spans tokens.
    const run = await lantern('chat', '--model', STORIES_GGUF, '--chat-template', template, '--system', 'Once upon', '--message', ' a time',
      '--temperature', '0', '--top-k', '20', '--top-p', '0.9', '--min-p', '0.05', '--seed', '5', '--max-tokens', '30',
      '--stop', 'little girl', '--stop', 'zebra', '--json');
    expect(run.code, run.stderr).toBe(0);
    const reply = JSON.parse(run.stdout);
    expect(reply).toMatchObject({ message: { role: 'assistant', content: ', there was a ' }, finishReason: 'stop', promptTokens: 5 });

    const bad = await lantern('generate', '--model', STORIES_GGUF, '--prompt', 'x', '--top-p', '0', '--json');
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error.message).toMatch(/--top-p/);
    const badPenalty = await lantern('chat', '--model', STORIES_GGUF, '--message', 'x', '--repeat-penalty', '-1');
    expect(badPenalty.code).toBe(2);
  });
});
