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
    execFile(process.execPath, [join(ROOT, 'bin/lantern.mjs'), ...args], { cwd: ROOT, timeout: 240_000 }, (error, stdout, stderr) => {
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

describe('constraint flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lantern-constraint-'));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const schemaFile = file('mood.json', JSON.stringify({ type: 'object', properties: { mood: { enum: ['happy', 'sad'] }, age: { type: 'integer', minimum: 1, maximum: 12 } }, required: ['mood', 'age'], additionalProperties: false }));
  const grammarFile = file('yes-no.gbnf', 'root ::= ("yes" | "no") "!"\n');
  const template = file('template.jinja', '{% for m in messages %}{{ m.content }}{% endfor %}');

  it('bad constraint files and combinations are errors before any GPU work', async () => {
    const [both, notJson, missing] = await Promise.all([
      lantern('generate', '--model', STORIES_GGUF, '--prompt', 'x', '--json-object', '--grammar', grammarFile, '--json'),
      lantern('generate', '--model', STORIES_GGUF, '--prompt', 'x', '--json-schema', grammarFile, '--json'), // GBNF, not JSON
      lantern('chat', '--model', STORIES_GGUF, '--chat-template', template, '--message', 'x', '--grammar', join(dir, 'no-such.gbnf'), '--json'),
    ]);
    expect(both.code).toBe(2);
    expect(JSON.parse(both.stdout).error.message).toMatch(/cannot be combined/);
    for (const run of [notJson, missing]) {
      expect(run.code, run.stderr).toBe(1);
      expect(JSON.parse(run.stdout).error.code).toBe('BAD_ARGUMENT');
    }
  });

  // The three flags end to end, each in its own CLI process (started together: most of a run is
  // the process's browser and server starting).
  it('generate --json-schema, chat --json-object and generate --grammar: replies that stop follow the constraint', async () => {
    const [schemaRun, objectRun, grammarRun] = await Promise.all([
      lantern('generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--json-schema', schemaFile, '--max-tokens', '40', '--json'),
      lantern('chat', '--model', STORIES_GGUF, '--chat-template', template, '--message', 'Once upon a time', '--json-object', '--max-tokens', '40', '--json'),
      lantern('generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--grammar', grammarFile, '--temperature', '1', '--seed', '3', '--json'),
    ]);

    expect(schemaRun.code, schemaRun.stdout + schemaRun.stderr).toBe(0);
    const generated = JSON.parse(schemaRun.stdout);
    if (generated.finishReason !== 'stop') expect(generated.text.startsWith('{'), generated.text).toBe(true);
    else {
      const value = JSON.parse(generated.text);
      expect(Object.keys(value).sort()).toEqual(['age', 'mood']);
      expect(['happy', 'sad']).toContain(value.mood);
      expect(Number.isInteger(value.age) && value.age >= 1 && value.age <= 12, generated.text).toBe(true);
    }

    expect(objectRun.code, objectRun.stdout + objectRun.stderr).toBe(0);
    const { message, finishReason } = JSON.parse(objectRun.stdout);
    if (finishReason !== 'stop') expect(message.content.startsWith('{'), message.content).toBe(true);
    else {
      const value = JSON.parse(message.content);
      expect(typeof value === 'object' && value !== null && !Array.isArray(value), message.content).toBe(true);
    }

    expect(grammarRun.code, grammarRun.stdout + grammarRun.stderr).toBe(0);
    const sentence = JSON.parse(grammarRun.stdout);
    expect(['yes!', 'no!']).toContain(sentence.text);
    expect(sentence.finishReason).toBe('stop');
  }, 300_000);
});
