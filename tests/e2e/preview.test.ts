// @vitest-environment node
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startModelServer, type ModelServer } from '../helpers/model-server.ts';
import { REPO_ROOT, STORIES_GGUF } from '../helpers/paths.ts';
import { launchWebGpuChromium, watchPageErrors } from '../helpers/webgpu-browser.ts';

/**
 * The built app as the README tells a user to run it: `npm run build`, then `npm run preview`
 * (vite preview, spawned as a child process on a free port). Vite's preview server compresses the
 * model file with gzip and sends no Content-Length; the bundled model must still download, cache
 * and generate. The build is the app's (vite.config.ts) into a temporary folder, as `npm run
 * build` makes it (that command also builds the embed, which the demo does not use), once for this file.
 */

/** The start of stories260K's greedy continuation of BOS + "Once upon a time" (llama.cpp; see demo.test.ts). */
const GREEDY_START = ', there was a little girl named Lily. She loved to play outside in the park.';

let outDir: string;
let preview: ChildProcess;
let origin: string;
let browser: Browser;
/** A model host that will not say the size before the body, for the indeterminate progress bar. */
let modelHost: ModelServer;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'lantern-preview-'));
  const started = performance.now();
  await build({ configFile: join(REPO_ROOT, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  console.log(`vite build: ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  // Its own process group, so that npm and the vite it starts are stopped together.
  preview = spawn('npm', ['run', 'preview', '--', '--outDir', outDir, '--port', String(port)], { cwd: REPO_ROOT, detached: true, stdio: 'pipe' });
  let output = '';
  preview.stdout!.on('data', (data: Buffer) => (output += data.toString()));
  preview.stderr!.on('data', (data: Buffer) => (output += data.toString()));
  await waitFor(async () => (await fetch(`${origin}/`).catch(() => undefined))?.ok === true, 60_000, () => `vite preview did not answer at ${origin}:\n${output}`);

  modelHost = await startModelServer();
  Object.assign(modelHost, { compress: 'gzip', hideHeaders: true, head: 405 });
  modelHost.serve('/models/unsized.gguf', new Uint8Array(readFileSync(STORIES_GGUF)));
  browser = await launchWebGpuChromium();
});

afterAll(async () => {
  await browser?.close();
  await modelHost?.close();
  if (preview?.pid !== undefined && preview.exitCode === null) {
    const exited = new Promise((resolve) => preview.once('exit', resolve));
    process.kill(-preview.pid, 'SIGTERM');
    await exited;
  }
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('the built app under vite preview', () => {
  it('vite preview sends the model gzip-compressed with no Content-Length, and the demo downloads it and generates', async () => {
    // What a browser gets for the model: the case the loader once refused.
    const response = await fetch(`${origin}/models/stories260K.gguf`, { headers: { 'Accept-Encoding': 'gzip, deflate, br, zstd' } });
    await response.body?.cancel();
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(response.headers.get('content-length')).toBeNull();

    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = watchPageErrors(page);
    await page.goto(`${origin}/`);
    await settled(page);
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: stories260K/);
    const item = page.getByTestId('cache-item').filter({ hasText: 'stories260K.gguf' });
    expect(await item.textContent()).toMatch(/1\.2 MB/);

    await page.getByTestId('prompt').fill('Once upon a time');
    const details = page.locator('details.settings');
    await details.locator('summary').click();
    await page.getByLabel('Max tokens', { exact: true }).fill('12');
    await page.getByLabel('Temperature', { exact: true }).fill('0');
    await page.getByTestId('send').click();
    await page.locator('[data-testid=status]:not([data-state=generating])').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('status').getAttribute('data-state')).toBe('ready');
    const output = (await page.getByTestId('output').textContent()) ?? '';
    expect(output.length).toBeGreaterThan(20);
    expect(GREEDY_START.startsWith(output), `output: ${JSON.stringify(output)}`).toBe(true);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('shows an indeterminate progress bar, bytes and speed for a model whose size the server will not say', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${origin}/?model=${encodeURIComponent(`${modelHost.origin}/models/unsized.gguf`)}`);
    // Every state of the progress line while the model loads.
    await page.evaluate(() => {
      const seen: { label: string; text: string; determinate: boolean }[] = [];
      (window as unknown as { progressSeen: typeof seen }).progressSeen = seen;
      const bar = document.getElementById('progress') as HTMLProgressElement;
      new MutationObserver(() =>
        seen.push({ label: document.getElementById('progress-label')!.textContent!, text: document.getElementById('progress-text')!.textContent!, determinate: bar.hasAttribute('value') }),
      ).observe(document.getElementById('progress-box')!, { childList: true, characterData: true, subtree: true, attributes: true });
    });
    await settled(page);
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: unsized\.gguf/);
    const seen = await page.evaluate(() => (window as unknown as { progressSeen: { label: string; text: string; determinate: boolean }[] }).progressSeen);
    const downloading = seen.filter((s) => s.label === 'Downloading');
    const report = JSON.stringify(seen, null, 1);
    // Bytes without a total while the size is unknown; the bar has no value then.
    expect(downloading.some((s) => !s.determinate && /^[\d.]+ (B|KB|MB)( · [\d.]+ (B|KB|MB|GB)\/s)?$/.test(s.text)), report).toBe(true);
    expect(downloading.every((s) => s.determinate === / of /.test(s.text)), report).toBe(true);
    expect(seen.some((s) => s.label === 'Uploading to the GPU' && s.determinate && s.text === '1.2 MB of 1.2 MB'), report).toBe(true);
    await context.close();
  });
});

/** Waits for the status to leave `loading`, then checks it is `ready`, showing its text if not. */
async function settled(page: Page): Promise<void> {
  await page.locator('[data-testid=status]:not([data-state=loading])').waitFor({ timeout: 90_000 });
  const status = page.getByTestId('status');
  expect(await status.getAttribute('data-state'), (await status.textContent()) ?? '').toBe('ready');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitFor(ready: () => Promise<boolean>, timeoutMs: number, failure: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(failure());
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
