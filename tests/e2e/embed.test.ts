// @vitest-environment node
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/paths.ts';
import { startStaticServer, type StaticServer } from '../helpers/static-server.ts';
import { launchWebGpuChromium, watchPageErrors } from '../helpers/webgpu-browser.ts';

/**
 * The embeddable script tag, built as it ships (vite.embed.config.ts), served from one origin (a
 * "CDN" with CORS), and included by a page on another origin with nothing but a <script> tag.
 */

const EMBED_BUDGET_GZIP_BYTES = 30 * 1024;

/** What stories260K continues greedily after BOS + "Once upon a time" (llama.cpp, see demo.test.ts). */
const GREEDY_CONTINUATION = ', there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.';

let outDir: string;
let cdn: StaticServer;
let host: StaticServer;
let browser: Browser;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'lantern-embed-'));
  await build({ configFile: join(REPO_ROOT, 'vite.embed.config.ts'), logLevel: 'warn', build: { outDir } });
  cdn = await startStaticServer(outDir, { cors: true });
  // The third-party page: its own origin, loud styles, and the script tag from the CDN's origin.
  host = await startStaticServer(join(outDir, 'no-files-here'));
  host.override('/', hostPage(cdn.origin));
  browser = await launchWebGpuChromium();
});

afterAll(async () => {
  await browser?.close();
  await cdn?.close();
  await host?.close();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('lantern-embed.js', () => {
  it(`stays within its budget of ${EMBED_BUDGET_GZIP_BYTES} bytes gzipped, with the engine in lantern-worker.js`, async () => {
    const loader = await readFile(join(outDir, 'lantern-embed.js'));
    const gzipped = gzipSync(loader, { level: 9 }).byteLength;
    console.log(`lantern-embed.js: ${loader.byteLength} bytes, ${gzipped} gzipped`);
    expect(gzipped).toBeLessThanOrEqual(EMBED_BUDGET_GZIP_BYTES);
    // The loader is a classic script: no module syntax, no WGSL; the worker carries the shaders.
    expect(loader.toString()).not.toMatch(/^\s*(import|export)\s/m);
    expect(loader.toString()).not.toContain('@compute');
    expect((await readFile(join(outDir, 'lantern-worker.js'), 'utf8'))).toContain('@compute');
    expect(await readFile(join(outDir, 'embed-example.html'), 'utf8')).toMatch(/<script src="lantern-embed\.js"[^>]* defer><\/script>/);
  });

  it('adds a widget in a shadow root to a page on another origin and streams a reply', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const errors = watchPageErrors(page);
    const events = await recordWidgetEvents(page);
    await page.goto(`${host.origin}/`);

    const widget = page.locator('lantern-chat[position=bottom-right]');
    await widget.getByTestId('launcher').waitFor();
    expect(await widget.evaluate((el) => el.shadowRoot !== null && el.parentElement === document.body)).toBe(true);
    // Nothing heavy is fetched until the widget is used.
    expect(cdn.requests.filter((path) => path.endsWith('lantern-worker.js') || path.endsWith('.gguf'))).toEqual([]);

    await widget.getByTestId('launcher').click();
    await expect.poll(() => widget.getByTestId('status').getAttribute('data-state'), { timeout: 90_000 }).toBe('ready');
    expect(cdn.requests).toContain('/lantern-worker.js');
    expect(cdn.requests).toContain('/models/stories260K.gguf');

    await widget.getByTestId('prompt').fill('Once upon a time');
    await widget.getByTestId('send').click();
    await expect.poll(() => events(page).then((e) => e.some((x) => x.type === 'done' || x.type === 'error')), { timeout: 90_000 }).toBe(true);

    const seen = await events(page);
    expect(seen.filter((e) => e.type === 'error')).toEqual([]);
    const tokens = seen.filter((e) => e.type === 'token').map((e) => e.detail as { id: number; text: string });
    const done = seen.find((e) => e.type === 'done')!.detail as { text: string; generatedTokens: number };
    const reply = (await widget.getByTestId('reply').textContent()) ?? '';
    // max-tokens 32 at temperature 0: the first 32 greedy tokens, one `token` event each.
    expect(tokens.length).toBe(32);
    expect(done.generatedTokens).toBe(32);
    expect(tokens.map((t) => t.text).join('')).toBe(reply);
    expect(done.text).toBe(reply);
    expect(reply.length).toBeGreaterThan(40);
    expect(GREEDY_CONTINUATION.startsWith(reply), `reply: ${JSON.stringify(reply)}`).toBe(true);

    // No CSS crosses the shadow boundary: the page's `button { color: magenta !important }` does
    // not reach the widget's buttons, and the widget's `.launcher` rule does not reach the page's.
    const colors = await page.evaluate(() => {
      const inner = document.querySelector('lantern-chat')!.shadowRoot!.querySelector('[data-testid=send]')!;
      const outer = document.getElementById('host-launcher')!;
      return { inner: getComputedStyle(inner).color, outerBackground: getComputedStyle(outer).backgroundColor, outerRadius: getComputedStyle(outer).borderRadius };
    });
    expect(colors.inner).not.toBe('rgb(255, 0, 255)');
    expect(colors.outerBackground).toBe('rgb(200, 200, 200)');
    expect(colors.outerRadius).toBe('0px');
    expect(errors).toEqual([]);

    await mkdir(join(REPO_ROOT, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, 'test-results/embed.png') });

    // Stop ends a long reply early; `done` says it was aborted.
    await widget.evaluate((el) => el.setAttribute('max-tokens', '1000'));
    await widget.getByTestId('prompt').fill('Once upon a time');
    await widget.getByTestId('send').click();
    await expect.poll(() => events(page).then((e) => e.filter((x) => x.type === 'token').length)).toBeGreaterThan(tokens.length + 2);
    await widget.getByTestId('stop').click();
    await expect.poll(() => events(page).then((e) => e.filter((x) => x.type === 'done').length), { timeout: 30_000 }).toBe(2);
    const stopped = (await events(page)).filter((e) => e.type === 'done')[1].detail as { finishReason: string; generatedTokens: number; text: string };
    expect(stopped.finishReason).toBe('abort');
    expect(stopped.generatedTokens).toBeLessThan(1000);
    expect(GREEDY_CONTINUATION.startsWith(stopped.text.slice(0, GREEDY_CONTINUATION.length))).toBe(true);
    expect(await widget.getByTestId('status').textContent()).toMatch(/^Stopped: \d+ tokens/);
    expect(await widget.getByTestId('send').isDisabled()).toBe(false);
    await page.close();
  });

  it('places <lantern-chat> inline with the theme asked for, and reports a model it cannot fetch as an error event', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const events = await recordWidgetEvents(page);
    await page.goto(`${host.origin}/`);
    const inline = page.locator('lantern-chat#inline');
    await inline.getByTestId('prompt').waitFor();
    const look = await inline.evaluate((el) => {
      const panel = el.shadowRoot!.querySelector('.panel')!;
      const launcher = el.shadowRoot!.querySelector('.launcher')!;
      return { background: getComputedStyle(panel).backgroundColor, launcher: getComputedStyle(launcher).display, position: getComputedStyle(el).position };
    });
    expect(look).toEqual({ background: 'rgb(23, 25, 28)', launcher: 'none', position: 'static' });

    // Through the element's send(), so that no focus starts a load attempt of its own first.
    await inline.evaluate((el) => void (el as HTMLElement & { send(text: string): Promise<void> }).send('Hello'));
    await expect.poll(() => inline.getByTestId('status').getAttribute('data-state'), { timeout: 60_000 }).toBe('error');
    expect(await inline.getByTestId('status').getAttribute('data-code')).toBe('FETCH_FAILED');
    expect(await inline.getByTestId('status').textContent()).toMatch(/missing\.gguf.*404/);
    const errorEvents = (await events(page)).filter((e) => e.type === 'error');
    expect(errorEvents).toHaveLength(1);
    expect(errorEvents[0].detail).toMatchObject({ code: 'FETCH_FAILED' });
    expect(errorEvents[0].target).toBe('inline');
    await page.close();
  });
});

describe('a script host without CORS', () => {
  it('says that the worker needs CORS headers, as an error event', async () => {
    const plain = await startStaticServer(outDir);
    try {
      host.override('/no-cors.html', hostPage(plain.origin));
      const page = await browser.newPage();
      const events = await recordWidgetEvents(page);
      await page.goto(`${host.origin}/no-cors.html`);
      const widget = page.locator('lantern-chat[position=bottom-right]');
      await widget.getByTestId('launcher').click();
      await expect.poll(() => widget.getByTestId('status').getAttribute('data-state'), { timeout: 30_000 }).toBe('error');
      expect(await widget.getByTestId('status').textContent()).toMatch(/lantern-worker\.js.*CORS/);
      expect((await events(page)).map((e) => [e.type, (e.detail as { code: string }).code])).toEqual([['error', 'FETCH_FAILED']]);
      await page.close();
    } finally {
      await plain.close();
    }
  });
});

describe('embed-example.html', () => {
  it('works from the same origin as the script, with a model path relative to the page', async () => {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const errors = watchPageErrors(page);
    await page.goto(`${cdn.origin}/embed-example.html`);
    const widget = page.locator('lantern-chat');
    await widget.getByTestId('launcher').click();
    await expect.poll(() => widget.getByTestId('status').getAttribute('data-state'), { timeout: 90_000 }).toBe('ready');
    await widget.evaluate((el) => el.setAttribute('max-tokens', '24'));
    await widget.getByTestId('prompt').fill('Once upon a time');
    await widget.getByTestId('prompt').press('Enter');
    await expect.poll(() => widget.getByTestId('status').textContent(), { timeout: 90_000 }).toMatch(/^Done: \d+ tokens/);
    const reply = (await widget.getByTestId('reply').textContent()) ?? '';
    // The example page's data-temperature is the default 0.8, so only the length is known.
    expect(reply.length).toBeGreaterThan(20);
    expect(errors).toEqual([]);
    await page.screenshot({ path: join(REPO_ROOT, 'test-results/embed-example.png') });
    await page.close();
  });
});

function hostPage(cdnOrigin: string): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <title>A third-party page</title>
  <style>
    body { font: 20px/1.8 Georgia, serif; color: #064; background: #fdf6e3; margin: 2rem; }
    button, textarea, li, p { color: #f0f !important; font-family: monospace !important; }
    .launcher { background: rgb(200, 200, 200); border-radius: 0; }
  </style>
</head>
<body>
  <h1>A page on another origin</h1>
  <p>It includes Lantern with one script tag from ${cdnOrigin}.</p>
  <button id="host-launcher" class="launcher">The page's own button</button>
  <lantern-chat id="inline" theme="dark" model="${cdnOrigin}/models/missing.gguf"></lantern-chat>
  <script src="${cdnOrigin}/lantern-embed.js" data-model="${cdnOrigin}/models/stories260K.gguf"
    data-temperature="0" data-max-tokens="32" defer></script>
</body>
</html>`;
}

interface WidgetEvent {
  type: string;
  target: string;
  detail: unknown;
}

/** Collects the widgets' token/done/error events, which bubble out of the shadow root to document. */
async function recordWidgetEvents(page: Page): Promise<(page: Page) => Promise<WidgetEvent[]>> {
  await page.addInitScript(() => {
    const seen: { type: string; target: string; detail: unknown }[] = [];
    (window as unknown as { lanternEvents: typeof seen }).lanternEvents = seen;
    for (const type of ['token', 'done', 'error']) {
      document.addEventListener(type, (event) => {
        if (event instanceof CustomEvent) seen.push({ type, target: (event.target as Element).id, detail: event.detail });
      });
    }
  });
  return (p) => p.evaluate(() => (window as unknown as { lanternEvents: WidgetEvent[] }).lanternEvents);
}
