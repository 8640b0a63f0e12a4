// @vitest-environment node
import { mkdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitGGUF } from '../../scripts/lib/gguf-writer.ts';
import { expandModel } from '../../scripts/lib/model-writer.ts';
import { describeError } from '../../src/app/error-screen.ts';
import { TransferMeter, formatBytes, formatDuration } from '../../src/app/format.ts';
import { LanternError } from '../../src/errors.ts';
import { readGGUF } from '../../src/model/gguf.ts';
import { bytesSource } from '../../src/storage/source.ts';
import { startModelServer, type ModelServer } from '../helpers/model-server.ts';
import { REPO_ROOT, SHARED_MODELS_DIR } from '../helpers/paths.ts';
import { launchWebGpuChromium } from '../helpers/webgpu-browser.ts';

/**
 * The demo page end to end: a Vite dev server, headless Chromium with WebGPU on SwiftShader, the
 * bundled stories260K model loaded in the worker, and replies streamed into the chat. A second
 * local server plays a model host that first answers 404 and then serves the file.
 */

/**
 * The 96 tokens stories260K generates greedily after BOS + "Once upon a time", as llama.cpp gives
 * them (node-llama-cpp 3.22 on the CPU, temperature 0), detokenized.
 */
const GREEDY_CONTINUATION =
  ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. '
  + "She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know w";

/** A plain "role: content" template, so that stories260K can stand in for a chat model. */
const CHAT_TEMPLATE = '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';

const RESULTS = `${REPO_ROOT}/test-results`;

let server: ViteDevServer;
let browser: Browser;
let baseUrl: string;
/**
 * The model host (tests/helpers/model-server.ts: Range support and CORS): `/models/elsewhere.gguf`
 * answers 404 until the test serves stories260K there; `/models/chat.gguf` is stories260K with a
 * chat template.
 */
let modelHost: ModelServer;
let stories: Uint8Array;
let modelHostUrl: string;
let chatModelUrl: string;

beforeAll(async () => {
  server = await createServer({
    root: REPO_ROOT,
    configFile: `${REPO_ROOT}/vite.config.ts`,
    logLevel: 'warn',
    // No watcher and no HMR: files edited during the run must not reload the page under test.
    server: { host: '127.0.0.1', port: 0, strictPort: true, hmr: false, watch: null },
  });
  await server.listen();
  const { port } = server.httpServer!.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}/`;

  stories = await readFile(`${REPO_ROOT}/public/models/stories260K.gguf`);
  const withTemplate = await readGGUF(bytesSource(stories));
  withTemplate.metadata.set('tokenizer.chat_template', CHAT_TEMPLATE);
  const chatModel = expandModel(withTemplate, stories); // stories260K is all F32: the same weights
  modelHost = await startModelServer();
  modelHostUrl = `${modelHost.origin}/models/elsewhere.gguf`;
  chatModelUrl = modelHost.serve('/models/chat.gguf', chatModel);

  browser = await launchWebGpuChromium();
  await mkdir(RESULTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await modelHost?.close();
});

describe('demo page', () => {
  /** One page for the chat tests, which run in order: loading the model once keeps the file short. */
  let page: Page;
  /** The context the engine allocated for stories260K, as engine.info() reports it. */
  let contextLength: number;

  it('loads stories260K in the worker and streams a greedy completion token by token', async () => {
    page = await openDemo();
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('model-select').inputValue()).toBe('bundled');
    contextLength = Number(/ of (\d+) tokens$/.exec((await page.getByTestId('stat-context').textContent()) ?? '')?.[1]);
    expect(contextLength).toBeGreaterThan(96);
    expect(await page.getByTestId('mode-note').textContent()).toMatch(/no chat template.*plain text/);
    expect(await page.getByTestId('stat-adapter').textContent()).toMatch(/\S/);
    expect(await page.getByTestId('stat-f16').textContent()).toMatch(/^(available|not available)/);

    await page.getByTestId('prompt').fill('Once upon a time');
    await setSettings(page, { 'Max tokens': '96', Temperature: '0' });
    await page.getByTestId('send').click();

    // Sample the output while the worker generates; a page that only shows the text at the end
    // would be seen with at most one non-empty length.
    const lengths = new Set<number>();
    for (;;) {
      const { state, text } = await page.evaluate(() => ({
        state: document.querySelector<HTMLElement>('[data-testid=status]')!.dataset.state,
        text: document.querySelector('[data-testid=output]')?.textContent ?? '',
      }));
      if (state !== 'generating') break;
      if (text.length > 0) lengths.add(text.length);
    }

    const status = page.getByTestId('status');
    const statusText = (await status.textContent()) ?? '';
    expect(await status.getAttribute('data-state'), statusText).toBe('ready');
    expect(statusText).toMatch(/^Done: \d+ prompt tokens at [\d.]+ tok\/s/);
    expect(statusText).toMatch(/96 new tokens at [\d.]+ tok\/s/);
    expect(await output(page)).toBe(GREEDY_CONTINUATION);
    expect(lengths.size, `distinct output lengths seen while generating: ${[...lengths].join(', ')}`).toBeGreaterThanOrEqual(3);

    // Live stats: both speeds, and the context the prompt and reply take up.
    expect(await page.getByTestId('stat-prefill').textContent()).toMatch(/^[\d.]+ tok\/s$/);
    expect(await page.getByTestId('stat-decode').textContent()).toMatch(/^[\d.]+ tok\/s$/);
    const promptTokens = Number(/^Done: (\d+)/.exec(statusText)![1]);
    const context = /^(\d+) of (\d+) tokens$/.exec((await page.getByTestId('stat-context').textContent()) ?? '');
    expect(context?.slice(1).map(Number)).toEqual([promptTokens + 96, contextLength]);

    await page.screenshot({ path: `${RESULTS}/demo.png`, fullPage: true });
    await page.setViewportSize({ width: 375, height: 812 });
    await page.screenshot({ path: `${RESULTS}/demo-375.png`, fullPage: true });
    // Nothing may stick out sideways at phone width, the open settings included.
    await setSettings(page, {});
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.setViewportSize({ width: 1280, height: 720 });
  });

  it('repeats exactly at temperature 0 and samples other text at temperature 1.5', async () => {
    // Short replies keep this quick; each greedy one must still be the start of llama.cpp's text.
    await setSettings(page, { 'Max tokens': '24', Temperature: '0' });
    // Regenerate replaces the last reply with a new one for the same message.
    await page.getByTestId('regenerate').click();
    await waitForReply(page);
    const greedy = await output(page);
    expect(greedy.length).toBeGreaterThan(20);
    expect(GREEDY_CONTINUATION.startsWith(greedy), `output: ${JSON.stringify(greedy)}`).toBe(true);
    expect(await page.locator('.message.assistant').count()).toBe(1);

    // Enter in the message box sends, as the hint says.
    await page.getByTestId('prompt').fill('Once upon a time');
    await page.getByTestId('prompt').press('Enter');
    await waitForReply(page);
    expect(await output(page)).toBe(greedy);
    expect(await page.locator('.message.assistant').count()).toBe(2);

    await setSettings(page, { Temperature: '1.5', Seed: '7' });
    await page.getByTestId('regenerate').click();
    await waitForReply(page);
    const seeded = await output(page);
    await page.getByTestId('regenerate').click();
    await waitForReply(page);
    expect(await output(page), 'the same seed draws the same text').toBe(seeded);
    expect(seeded.length).toBeGreaterThan(0);
    expect(seeded).not.toBe(greedy);

    await setSettings(page, { Seed: '' });
    await page.getByTestId('regenerate').click();
    await waitForReply(page);
    expect(await output(page)).not.toBe(greedy);
  });

  it('stops generating when Stop is pressed, and Clear empties the conversation', async () => {
    await setSettings(page, { 'Max tokens': '400', Temperature: '0' });
    await page.getByTestId('prompt').fill('Once upon a time');
    await page.getByTestId('send').click();
    await page.locator('[data-testid=output]:not(:empty)').waitFor();
    await page.getByTestId('stop').click();

    await page.locator('[data-testid=status]:not([data-state=generating])').waitFor();
    expect(await page.getByTestId('status').textContent()).toMatch(/^Stopped: \d+ prompt tokens/);
    const stopped = await output(page);
    expect(GREEDY_CONTINUATION.startsWith(stopped) && stopped.length < GREEDY_CONTINUATION.length, `output: ${JSON.stringify(stopped)}`).toBe(true);
    expect(await page.getByTestId('send').isDisabled()).toBe(false);
    expect(await page.getByTestId('stop').isDisabled()).toBe(true);

    await page.getByTestId('clear').click();
    expect(await page.locator('.message').count()).toBe(0);
    expect(await page.getByTestId('output').count()).toBe(0);
    expect(await page.getByTestId('stat-context').textContent()).toBe(`0 of ${contextLength} tokens`);

    // Clear while a reply streams: it stops, and nothing of it comes back afterwards.
    await page.getByTestId('send').click();
    await page.locator('[data-testid=output]:not(:empty)').waitFor();
    await page.getByTestId('clear').click();
    expect(await page.getByTestId('status').getAttribute('data-state')).toBe('ready');
    await page.getByTestId('prompt').fill('Once upon a time');
    await setSettings(page, { 'Max tokens': '4' });
    await page.getByTestId('send').click();
    await waitForReply(page);
    expect(await page.locator('.message').count()).toBe(2);
  });

  it('lists stories260K among the cached models, and Delete removes it', async () => {
    const item = page.getByTestId('cache-item').filter({ hasText: 'stories260K.gguf' });
    expect(await item.count()).toBe(1);
    expect(await item.textContent()).toMatch(/1\.2 MB/);
    await item.getByRole('button', { name: /^Delete stories260K\.gguf/ }).click();
    await item.waitFor({ state: 'detached' });
    // Focus does not fall off the page with the button: it moves to the list's heading.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('cache-heading');
    // Gone from IndexedDB too, not only from the list. (A string: vitest would rewrite an import() in a function.)
    const ids = await page.evaluate<string[]>(`import('/src/storage/cache.ts').then((m) => m.listCachedModels()).then((l) => l.map((c) => c.id))`);
    expect(ids.filter((id) => id.includes('stories260K'))).toEqual([]);
    await page.close();
  });

  it('shows the failed download with FETCH_FAILED and a Retry that loads the model once the host answers', async () => {
    const page = await openDemo();
    await waitForSettledStatus(page, 'ready');
    await page.getByTestId('model-select').selectOption('custom-url');
    await page.getByLabel('GGUF URL').fill(modelHostUrl);
    await page.getByTestId('load').click();
    await waitForSettledStatus(page, 'error');

    const screen = page.getByTestId('error-screen');
    expect(await screen.isVisible()).toBe(true);
    expect(await screen.getAttribute('data-code')).toBe('FETCH_FAILED');
    expect(await screen.textContent()).toMatch(/download failed.*HTTP 404/s);
    expect(await page.getByTestId('status').getAttribute('data-code')).toBe('FETCH_FAILED');
    expect(await page.getByTestId('send').isDisabled()).toBe(true);
    // Focus moves to the explanation, for keyboard and screen-reader users.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('error-title');
    const retry = page.getByTestId('retry');
    expect(await retry.isVisible()).toBe(true);
    await page.screenshot({ path: `${RESULTS}/demo-error.png`, fullPage: true });

    // Every text the progress line shows from here on, to check its bytes, speed and time left.
    await page.evaluate(() => {
      const texts: string[] = [];
      (window as unknown as { progressTexts: string[] }).progressTexts = texts;
      const line = document.getElementById('progress-text')!;
      new MutationObserver(() => texts.push(`${document.getElementById('progress-label')!.textContent}: ${line.textContent}`))
        .observe(line, { childList: true, characterData: true, subtree: true });
    });
    modelHost.serve('/models/elsewhere.gguf', stories);
    await retry.click();
    await waitForSettledStatus(page, 'ready');
    expect(await screen.isHidden()).toBe(true);
    expect(await page.getByTestId('cache-item').filter({ hasText: 'elsewhere.gguf' }).count()).toBe(1);
    const progress = await page.evaluate(() => (window as unknown as { progressTexts: string[] }).progressTexts);
    expect(progress.some((t) => /^Downloading: [\d.]+ (B|KB|MB) of 1\.2 MB · [\d.]+ (KB|MB|GB)\/s · \d.* left$/.test(t)), progress.join('\n')).toBe(true);
    expect(progress.some((t) => /^Uploading to the GPU: 1\.2 MB of 1\.2 MB$/.test(t)), progress.join('\n')).toBe(true);

    // A local file, by the picker and by drag and drop.
    await page.getByTestId('model-select').selectOption('local-file');
    await page.getByLabel('Model files').setInputFiles({ name: 'picked.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from(stories) });
    await page.getByTestId('load').click();
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: picked\.gguf on /);
    await page.evaluate(async () => {
      const bytes = await (await fetch('/models/stories260K.gguf')).arrayBuffer();
      const files = new DataTransfer();
      files.items.add(new File([bytes], 'dropped.gguf'));
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
    });
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: dropped\.gguf on /);
    // The parts of a split GGUF, picked together (in any order), load as one model.
    const parts = await splitGGUF(new Uint8Array(stories), 2);
    await page.getByLabel('Model files').setInputFiles(parts.reverse().map((part, i) => ({
      name: `stories-0000${2 - i}-of-00002.gguf`, mimeType: 'application/octet-stream', buffer: Buffer.from(part),
    })));
    await page.getByTestId('load').click();
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: stories-00001-of-00002\.gguf and 1 more part on /);
    await setSettings(page, { 'Max tokens': '8' });
    await page.getByTestId('send').click();
    await waitForReply(page);
    expect((await output(page)).length).toBeGreaterThan(0);
    await page.close();
  });

  it('chats through the chat template of a model that has one, with the system prompt', async () => {
    // ?model= opens the page on that model instead of the bundled one.
    const page = await openDemo(`?model=${encodeURIComponent(chatModelUrl)}`);
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: chat\.gguf on /);
    expect(await page.getByTestId('model-select').inputValue()).toBe('custom-url');
    expect(await page.getByTestId('mode-note').isHidden()).toBe(true);

    await setSettings(page, { 'System prompt': 'Tell stories.', Temperature: '0', 'Max tokens': '12' });
    await page.getByTestId('prompt').fill('Once upon a time');
    await page.getByTestId('send').click();
    await waitForReply(page);
    const first = await output(page);
    expect(first.length).toBeGreaterThan(0);
    const status = (await page.getByTestId('status').textContent()) ?? '';
    expect(status).toMatch(/^Done: \d+ prompt tokens at [\d.]+ tok\/s, 12 new tokens at [\d.]+ tok\/s/);
    const promptTokens = Number(/^Done: (\d+)/.exec(status)![1]);
    expect(await page.getByTestId('stat-context').textContent()).toMatch(new RegExp(`^${promptTokens + 12} of \\d+ tokens$`));

    // The system prompt is part of what the model reads: another one, another greedy reply.
    await setSettings(page, { 'System prompt': 'You are a cat who only meows.' });
    await page.getByTestId('regenerate').click();
    await waitForReply(page);
    const promptTokensNow = Number(/^Done: (\d+)/.exec((await page.getByTestId('status').textContent()) ?? '')![1]);
    expect(promptTokensNow).toBeGreaterThan(promptTokens);
    expect(await output(page)).not.toBe(first);

    // A second turn carries the first: its prompt holds both messages and the reply.
    await page.getByTestId('prompt').fill('And then?');
    await page.getByTestId('send').click();
    await waitForReply(page);
    const secondTurn = Number(/^Done: (\d+)/.exec((await page.getByTestId('status').textContent()) ?? '')![1]);
    expect(secondTurn).toBeGreaterThan(promptTokensNow + 12);
    expect(await page.locator('.message.assistant').count()).toBe(2);
    await page.close();
  });

  it('opens a Hugging Face model folder by URL, compressed as chosen, and streams the reference continuation', async () => {
    // tinystories-gptneo as the hub lays it out, in a folder on the model host.
    for (const name of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json']) {
      modelHost.serve(`/neo/${name}`, await readFile(`${SHARED_MODELS_DIR}/tinystories-gptneo/${name}`));
    }
    const reference = JSON.parse(await readFile(`${SHARED_MODELS_DIR}/tinystories-gptneo/reference.json`, 'utf8')).prompts[0];
    const page = await openDemo();
    await waitForSettledStatus(page, 'ready');
    await page.getByTestId('model-select').selectOption('hf-repo');
    expect(await page.getByTestId('quantize').isVisible()).toBe(true);
    expect(await page.getByTestId('quantize').inputValue()).toBe('auto');
    await page.getByLabel('Hugging Face model').fill(`${modelHost.origin}/neo/`);
    await page.getByTestId('quantize').selectOption('none');
    await page.getByTestId('load').click();
    await waitForSettledStatus(page, 'ready');
    expect(await page.getByTestId('status').textContent()).toMatch(/^Ready: /);
    await page.getByTestId('prompt').fill(reference.prompt_text);
    await setSettings(page, { 'Max tokens': '16', Temperature: '0' });
    await page.getByTestId('send').click();
    await waitForReply(page);
    const text = await output(page);
    expect(text.length).toBeGreaterThan(20);
    expect(reference.greedy_text.startsWith(text), `output: ${JSON.stringify(text)}`).toBe(true);
    // The converted form is what the browser keeps, under the folder and the choice.
    const ids = await page.evaluate<string[]>(`import('/src/storage/cache.ts').then((m) => m.listCachedModels()).then((l) => l.map((c) => c.id))`);
    expect(ids).toContain(`${modelHost.origin}/neo/#quantize=none`);
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
    const screen = page.getByTestId('error-screen');
    expect(await screen.isVisible()).toBe(true);
    expect(await screen.getByRole('heading').textContent()).toBe('This browser has no WebGPU');
    expect(await page.getByTestId('retry').isHidden()).toBe(true);
    expect(await page.getByTestId('send').isDisabled()).toBe(true);
    expect(await page.getByTestId('load').isDisabled()).toBe(true);
    await page.screenshot({ path: `${RESULTS}/demo-no-webgpu.png`, fullPage: true });
    await page.close();
  });
});

describe('demo page helpers', () => {
  it('sends a model too large for the GPU to its own screen, with a way to choose another', () => {
    // SwiftShader accepts buffers far larger than a test model, so the screen is checked here.
    const error = new LanternError('ADAPTER_LIMITS', 'Tensor token_embd.weight needs 3000000000 bytes in one buffer but this GPU allows 2147483648; choose a smaller model.');
    expect(describeError(error)).toEqual({ code: 'ADAPTER_LIMITS', title: 'This model is too large for this device', message: error.message, retry: false, chooseOther: true });
    expect(describeError(new LanternError('FETCH_FAILED', 'x')).retry).toBe(true);
    expect(describeError(new TypeError('boom')).code).toBe('UNKNOWN');
  });

  it('measures download speed over a sliding window and formats sizes and times', () => {
    const meter = new TransferMeter(3000);
    expect(meter.update(0, 0)).toBeUndefined();
    expect(meter.update(1_000_000, 1000)).toBe(1_000_000);
    // A stall of 4 s drops the first sample out of the window: the speed follows the network.
    expect(meter.update(1_000_000, 5000)).toBe(0);
    expect(meter.update(3_000_000, 6000)).toBe(2_000_000);
    expect([formatBytes(512), formatBytes(1_185_376), formatBytes(808_000_000), formatBytes(1_320_000_000)]).toEqual(['512 B', '1.2 MB', '808 MB', '1.3 GB']);
    expect([formatDuration(0.2), formatDuration(42.4), formatDuration(125), formatDuration(7260)]).toEqual(['1 s', '42 s', '2 min 5 s', '2 h 1 min']);
  });
});

async function openDemo(query = ''): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('pageerror', (error) => console.error(`[page] ${error.message}`));
  await page.goto(`${baseUrl}${query}`);
  return page;
}

/** The latest reply's text. */
async function output(page: Page): Promise<string> {
  return (await page.getByTestId('output').textContent()) ?? '';
}

/** Fills settings by their labels, opening the Settings disclosure first. */
async function setSettings(page: Page, values: Record<string, string>): Promise<void> {
  const details = page.locator('details.settings');
  if (!(await details.evaluate((d) => (d as HTMLDetailsElement).open))) await details.locator('summary').click();
  for (const [label, value] of Object.entries(values)) await page.getByLabel(label, { exact: true }).fill(value);
}

/** Waits for a reply that has started to finish. */
async function waitForReply(page: Page): Promise<void> {
  await page.locator('[data-testid=status]:not([data-state=generating])').waitFor();
  const status = page.getByTestId('status');
  expect(await status.getAttribute('data-state'), (await status.textContent()) ?? '').toBe('ready');
}

/** Waits for the status to leave `loading`, then checks it reached `state`, showing its text if not. */
async function waitForSettledStatus(page: Page, state: 'ready' | 'error'): Promise<void> {
  const status = page.getByTestId('status');
  await page.locator('[data-testid=status]:not([data-state=loading])').waitFor({ timeout: 90_000 });
  expect(await status.getAttribute('data-state'), (await status.textContent()) ?? '').toBe(state);
}

