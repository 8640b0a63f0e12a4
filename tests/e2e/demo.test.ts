// @vitest-environment node
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The demo page end to end: a Vite dev server, headless Chromium with WebGPU on SwiftShader, the
 * bundled stories260K model loaded in the worker, and a greedy completion streamed into the page.
 */

/**
 * The 96 tokens stories260K generates greedily after BOS + "Once upon a time", as llama.cpp gives
 * them (node-llama-cpp 3.22 on the CPU, temperature 0), detokenized.
 */
const GREEDY_CONTINUATION =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. '
  + "She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know w";

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WEBGPU_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let server: ViteDevServer;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  server = await createServer({
    root: ROOT,
    configFile: `${ROOT}/vite.config.ts`,
    logLevel: 'warn',
    // No watcher and no HMR: files edited during the run must not reload the page under test.
    server: { host: '127.0.0.1', port: 0, strictPort: true, hmr: false, watch: null },
  });
  await server.listen();
  const { port } = server.httpServer!.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGPU_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('demo page', () => {
  it('loads stories260K in the worker and streams a greedy completion token by token', async () => {
    const page = await openDemo();
    await waitForSettledStatus(page, 'ready');

    await page.getByTestId('prompt').fill('Once upon a time');
    await page.getByLabel('Max tokens').fill('96');
    await page.getByLabel('Temperature').fill('0');
    await page.getByTestId('send').click();

    // Sample the output while the worker generates; a page that only shows the text at the end
    // would be seen with at most one non-empty length.
    const lengths = new Set<number>();
    for (;;) {
      const { state, text } = await page.evaluate(() => ({
        state: document.querySelector<HTMLElement>('[data-testid=status]')!.dataset.state,
        text: document.querySelector('[data-testid=output]')!.textContent ?? '',
      }));
      if (state !== 'generating') break;
      if (text.length > 0) lengths.add(text.length);
    }

    const status = page.getByTestId('status');
    const statusText = (await status.textContent()) ?? '';
    expect(await status.getAttribute('data-state'), statusText).toBe('ready');
    expect(statusText).toMatch(/prompt tokens at [\d.]+ tok\/s/);
    expect(statusText).toMatch(/new tokens at [\d.]+ tok\/s/);
    const output = (await page.getByTestId('output').textContent()) ?? '';
    expect(output).toBe(GREEDY_CONTINUATION);
    expect(lengths.size, `distinct output lengths seen while generating: ${[...lengths].join(', ')}`).toBeGreaterThanOrEqual(3);

    await mkdir(`${ROOT}/test-results`, { recursive: true });
    await page.screenshot({ path: `${ROOT}/test-results/demo.png`, fullPage: true });
    await page.close();
  });

  it('stops generating when Stop is pressed', async () => {
    const page = await openDemo();
    await waitForSettledStatus(page, 'ready');
    await page.getByLabel('Max tokens').fill('400');
    await page.getByLabel('Temperature').fill('0');
    await page.getByTestId('send').click();
    await page.locator('[data-testid=output]:not(:empty)').waitFor();
    await page.getByTestId('stop').click();

    await page.locator('[data-testid=status]:not([data-state=generating])').waitFor();
    const status = page.getByTestId('status');
    expect(await status.textContent()).toMatch(/^Stopped: \d+ prompt tokens/);
    const output = (await page.getByTestId('output').textContent()) ?? '';
    expect(GREEDY_CONTINUATION.startsWith(output) && output.length < GREEDY_CONTINUATION.length, `output: ${JSON.stringify(output)}`).toBe(true);
    expect(await page.getByTestId('send').isDisabled()).toBe(false);
    await page.close();
  });

  it('tells the user what to do when the browser has no WebGPU', async () => {
    const page = await browser.newPage();
    // As in a browser without WebGPU, or a page served over plain http from another host.
    await page.addInitScript(() => {
      delete (Navigator.prototype as { gpu?: GPU }).gpu;
    });
    await page.goto(baseUrl);
    await waitForSettledStatus(page, 'error');

    const status = page.getByTestId('status');
    expect(await status.getAttribute('data-code')).toBe('NO_WEBGPU');
    expect(await status.textContent()).toMatch(/WebGPU.*Chrome/);
    expect(await page.getByTestId('send').isDisabled()).toBe(true);
    await page.close();
  });
});

async function openDemo(): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error(`[page] ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') console.error(`[console] ${message.text()}`);
  });
  await page.goto(baseUrl);
  return page;
}

/** Waits for the status to leave `loading`, then checks it reached `state`, showing its text if not. */
async function waitForSettledStatus(page: Page, state: 'ready' | 'error'): Promise<void> {
  const status = page.getByTestId('status');
  await page.locator('[data-testid=status]:not([data-state=loading])').waitFor({ timeout: 90_000 });
  expect(await status.getAttribute('data-state'), (await status.textContent()) ?? '').toBe(state);
}
