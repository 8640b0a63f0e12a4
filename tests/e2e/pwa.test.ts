// @vitest-environment node
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/paths.ts';
import { startStaticServer, type StaticServer } from '../helpers/static-server.ts';
import { launchWebGpuChromium, watchPageErrors } from '../helpers/webgpu-browser.ts';

/**
 * The installable app: a production build (the service worker exists only there), served by a
 * plain static server, visited once online, then opened with the network off.
 */

let outDir: string;
let server: StaticServer;
let browser: Browser;

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'lantern-pwa-'));
  await build({ configFile: join(REPO_ROOT, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await startStaticServer(outDir);
  browser = await launchWebGpuChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe('offline app', () => {
  it('precaches the shell and the engine worker with its shaders, never the weights, and opens and generates offline', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await firstVisit(page);
    // The first visit loads the bundled model, which stores it in IndexedDB on the way.
    await page.locator('[data-testid=status][data-state=ready]').waitFor({ timeout: 60_000 });

    const manifest = await page.evaluate(async () => {
      const link = document.querySelector<HTMLLinkElement>('link[rel=manifest]');
      return link ? ((await (await fetch(link.href)).json()) as { name: string; icons: { sizes: string }[] }) : null;
    });
    expect(manifest?.name).toBe('Lantern');
    expect(manifest?.icons.map((icon) => icon.sizes)).toEqual(['192x192', '512x512', '512x512']);

    const cached = await cachedEntries(page);
    const paths = cached.map((entry) => entry.path);
    expect(paths).toContain('/index.html');
    expect(paths).toContain('/manifest.webmanifest');
    expect(paths).toContain('/icons/icon-192.png');
    const worker = cached.find((entry) => /^\/assets\/engine-worker-[\w-]+\.js$/.test(entry.path));
    expect(worker, `cached: ${paths.join(', ')}`).toBeDefined();
    expect(worker!.hasShaders).toBe(true);
    expect(paths.filter((path) => path.startsWith('/models/') || path.endsWith('.gguf'))).toEqual([]);

    // The next load is controlled by the service worker; then the network goes away.
    await page.reload();
    expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    await context.setOffline(true);
    const requestsBefore = server.requests.length;
    await page.reload();

    await expect.poll(() => page.getByRole('heading', { level: 1 }).textContent()).toBe('Lantern');
    expect(await page.getByTestId('prompt').isVisible()).toBe(true);
    expect(await page.getByTestId('status').isVisible()).toBe(true);
    const offline = await page.evaluate(async (workerPath) => {
      const ok = async (path: string) => fetch(path).then((r) => r.ok, () => false);
      return { worker: await ok(workerPath), weights: await ok('/models/stories260K.gguf') };
    }, worker!.path);
    // The worker comes from the service worker's cache; the weights are nowhere to be had from it.
    expect(offline).toEqual({ worker: true, weights: false });

    // ...but from IndexedDB: the model loads and generates with the network off.
    await page.locator('[data-testid=status][data-state=ready]').waitFor({ timeout: 60_000 });
    await page.getByTestId('prompt').fill('Once upon a time');
    await page.getByTestId('send').click();
    await expect.poll(async () => ((await page.getByTestId('output').textContent()) ?? '').length, { timeout: 60_000 }).toBeGreaterThan(20);
    // Nothing the app asks for reached the server. The browser's own update check of the service
    // worker (sw.js and the workbox script it imports) is not the app's request and is not subject
    // to the context's offline emulation; it comes or not depending on timing, so it is left out.
    const browserUpdateCheck = /^\/(sw|workbox-[\w-]+)\.js$/;
    expect(server.requests.slice(requestsBefore).filter((path) => !browserUpdateCheck.test(path))).toEqual([]);

    await mkdir(join(REPO_ROOT, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, 'test-results/pwa-offline.png'), fullPage: true });
    await context.close();
  });

  it('offers a new version with a reload prompt, and reloads into it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await firstVisit(page);
    await page.reload();
    expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    expect(await page.getByTestId('update').count()).toBe(0);

    // A new release: any byte of sw.js that changes makes the browser install it beside the old one.
    server.override('/sw.js', (original) => `${original}\n// next release\n`);
    try {
      await page.reload();
      const banner = page.getByTestId('update');
      await banner.waitFor({ timeout: 30_000 });
      expect(await banner.getAttribute('role')).toBe('alert');
      expect(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.waiting !== null)).toBe(true);

      await page.evaluate(() => ((window as unknown as { beforeUpdate: boolean }).beforeUpdate = true));
      await banner.getByRole('button', { name: 'Reload' }).click();
      // The waiting worker takes over and the page reloads itself.
      await page.waitForFunction(() => !(window as unknown as { beforeUpdate?: boolean }).beforeUpdate, null, { timeout: 30_000 });
      await page.waitForLoadState('load');
      const after = await page.evaluate(async () => {
        const registration = await navigator.serviceWorker.getRegistration();
        return { waiting: registration?.waiting ?? null, controlled: navigator.serviceWorker.controller !== null };
      });
      expect(after).toEqual({ waiting: null, controlled: true });
      expect(await page.getByTestId('update').count()).toBe(0);
    } finally {
      server.restore('/sw.js');
      await context.close();
    }
  });
});

/** Opens the app and waits until its service worker has precached the shell. */
async function firstVisit(page: Page): Promise<void> {
  watchPageErrors(page);
  await page.goto(`${server.origin}/`);
  await page.waitForFunction(() => document.documentElement.dataset.offlineReady !== undefined, null, { timeout: 60_000 });
}

/** Every entry in the page's Cache Storage, by path, and whether its body has WGSL in it. */
function cachedEntries(page: Page): Promise<{ path: string; hasShaders: boolean }[]> {
  return page.evaluate(async () => {
    const entries: { path: string; hasShaders: boolean }[] = [];
    for (const name of await caches.keys()) {
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        const body = (await (await cache.match(request))?.text()) ?? '';
        entries.push({ path: new URL(request.url).pathname, hasShaders: body.includes('@compute') });
      }
    }
    return entries;
  });
}
