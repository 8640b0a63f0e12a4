import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createLogger, createServer, type Plugin, type ViteDevServer } from 'vite';
import { LanternError } from '../errors.ts';
import type { GeneratedToken, ModelInfo } from '../runtime/types.ts';
import type { RunnerApi, Settled } from './runner.ts';
import type { ModelSession, SessionOptions } from './session.ts';

/**
 * Runs Lantern's WebGPU code in a headless Chromium: a Vite dev server on 127.0.0.1 serves the
 * TypeScript sources (and the model file, by byte range), Playwright drives the page.
 * openGpuPage() is the bare page, for GPU tests; openChromiumSession() is a model behind it.
 */

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MODEL_URL_PATH = '/__lantern/model.gguf';
const BLANK_URL_PATH = '/__lantern/blank.html';
const RUNNER_URL_PATH = '/src/cli/runner.html';
const RUNNER_SCRIPT = './src/cli/runner.ts';

// No favicon request: a 404 would show up as a console error, which fails the page.
const BLANK_PAGE = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script>window.lanternImport = (path) => import(path);</script></head><body></body></html>`;

declare global {
  interface Window {
    /** On the blank page: import() of a module served by Vite, e.g. '/src/kernels/matvec.ts'. */
    lanternImport(path: string): Promise<any>;
  }
}

const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome-stable', '/usr/bin/google-chrome'];

/** Flags for headless Chromium with WebGPU on SwiftShader; the tests' own browsers use them too. */
export const CHROMIUM_ARGS = [
  // WebGPU on SwiftShader's Vulkan: works on any machine, GPU or not.
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  // The machine may have no network: nothing should try to reach out.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const PAGE_READY_TIMEOUT_MS = 120_000;

/**
 * A WebGPU page served by Lantern's Vite server. Code run with `evaluate` loads project modules
 * with `lanternImport('/src/...')`: vitest rewrites a plain `import()` in a test file into a
 * helper that does not exist in the page.
 */
export interface GpuPage {
  page: Page;
  /** Origin of the Vite server, e.g. http://127.0.0.1:41234 */
  url: string;
  /** page.evaluate, failing as soon as the page throws, logs an error or crashes, rather than hanging. */
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  /** Waits for `work` the same way: a page failure rejects it. */
  guard<T>(work: Promise<T>): Promise<T>;
  /** Closes the browser and the server; every call waits for the same closing. */
  close(): Promise<void>;
}

export interface GpuPageOptions {
  /** A file to serve at /__lantern/model.gguf, with HEAD and Range support. */
  modelFile?: string;
  /** Page to open; a blank page by default. */
  path?: string;
  /** Modules to transform while Chromium starts, e.g. the page's entry: Vite follows their imports. */
  warmup?: string[];
  /** Called before the page is opened, e.g. to expose functions to it. */
  beforeOpen?(page: Page): Promise<unknown>;
  /**
   * A page of the browser and server this process shares (sharedHost): opening it skips
   * Chromium's start and Vite's transforms after the first; closing it closes only the page. The
   * model is served at `modelPath`. For test suites that open many sessions (LANTERN_SHARED_BROWSER=1).
   */
  shared?: boolean;
}

/** Where a page's model file is served. */
export interface ModelPage extends GpuPage {
  modelPath: string;
}

export async function openGpuPage(options: GpuPageOptions = {}): Promise<ModelPage> {
  if (options.shared) return openSharedPage(options);
  const executablePath = findChromium();
  const failure = failureLatch();
  // Chromium starts while Vite does; whichever fails, the other is stopped.
  const [launched, started] = await Promise.allSettled([
    chromium.launch({
      executablePath,
      args: CHROMIUM_ARGS,
      headless: true,
      // The CLI closes the browser itself on Ctrl-C, after telling the user.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    }),
    startServer(options.modelFile, options.warmup ?? [], failure.fail),
  ]);
  const browser = launched.status === 'fulfilled' ? launched.value : undefined;
  const server = started.status === 'fulfilled' ? started.value : undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      failure.fail(new Error('The GPU page was closed.'));
      await browser?.close().catch(() => {});
      await server?.close().catch(() => {});
    })());
  try {
    if (!browser) throw launchError((launched as PromiseRejectedResult).reason, executablePath);
    if (!server) throw (started as PromiseRejectedResult).reason;
    browser.on('disconnected', () => failure.fail(new LanternError('GPU_ERROR', 'Chromium exited unexpectedly; run again, and report it if it keeps happening.')));
    return await openPage(await browser.newPage(), serverOrigin(server), MODEL_URL_PATH, failure, options, close);
  } catch (e) {
    await close();
    throw e;
  }
}

/** Watches `page`, opens options.path (a blank page by default) on `url`, and wraps it as a ModelPage. */
async function openPage(page: Page, url: string, modelPath: string, failure: ReturnType<typeof failureLatch>, options: GpuPageOptions, close: () => Promise<void>): Promise<ModelPage> {
  watchPage(page, failure.fail);
  await options.beforeOpen?.(page);
  await failure.guard(page.goto(url + (options.path ?? BLANK_URL_PATH)));
  return {
    page,
    url,
    modelPath,
    // Plain data only crosses, so the argument arrives as it was sent (Playwright's Unboxed<A> is A).
    evaluate: (fn, arg) => failure.guard(page.evaluate(fn as (arg: unknown) => never, arg)),
    guard: failure.guard,
    close,
  };
}

/** One browser and one Vite server for every shared page of this process, and the models they serve. */
interface SharedHost {
  browser: Browser;
  server: ViteDevServer;
  url: string;
  /** Path → model file, one per open page. */
  models: Map<string, string>;
  /** Every open page's failure: a failing server or browser fails them all. */
  failures: Set<(error: Error) => void>;
  /** Runner pages whose session closed, oldest first, each with the GPU device its models compiled pipelines on. */
  idleRunners: RunnerPage[];
}

let sharedHost: Promise<SharedHost> | undefined;
let nextModel = 0;

function startSharedHost(): Promise<SharedHost> {
  const models = new Map<string, string>();
  const failures = new Set<(error: Error) => void>();
  const failAll = (error: Error) => {
    for (const fail of failures) fail(error);
  };
  const starting = (async () => {
    const executablePath = findChromium();
    const [launched, started] = await Promise.allSettled([
      chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true }),
      startServer(models, [RUNNER_SCRIPT], failAll),
    ]);
    const browser = launched.status === 'fulfilled' ? launched.value : undefined;
    const server = started.status === 'fulfilled' ? started.value : undefined;
    if (!browser || !server) {
      await browser?.close().catch(() => {});
      await server?.close().catch(() => {});
      throw !browser ? launchError((launched as PromiseRejectedResult).reason, executablePath) : (started as PromiseRejectedResult).reason;
    }
    browser.on('disconnected', () => {
      sharedHost = undefined;
      failAll(new LanternError('GPU_ERROR', 'Chromium exited unexpectedly; run again, and report it if it keeps happening.'));
    });
    // The process's end closes them; a test file's worker ends with its file.
    process.once('exit', () => void browser.close().catch(() => {}));
    return { browser, server, url: serverOrigin(server), models, failures, idleRunners: [] };
  })();
  starting.catch(() => (sharedHost = undefined));
  return starting;
}

async function openSharedPage(options: GpuPageOptions): Promise<ModelPage> {
  const host = await (sharedHost ??= startSharedHost());
  const failure = failureLatch();
  host.failures.add(failure.fail);
  const modelPath = `/__lantern/model-${nextModel++}.gguf`;
  if (options.modelFile) host.models.set(modelPath, options.modelFile);
  const context = await host.browser.newContext();
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      failure.fail(new Error('The GPU page was closed.'));
      host.failures.delete(failure.fail);
      host.models.delete(modelPath);
      await context.close().catch(() => {});
    })());
  try {
    return await openPage(await context.newPage(), host.url, modelPath, failure, options, close);
  } catch (e) {
    await close();
    throw e;
  }
}

/** A page of src/cli/runner.html, and where its token binding delivers: the session that holds the page now. */
interface RunnerPage {
  gpuPage: ModelPage;
  /** Where the holder's model is served (a reused shared page serves each session's at a new path). */
  modelPath: string;
  deliver: ((index: number, token: GeneratedToken) => void) | undefined;
}

/** Idle shared runner pages kept for the next session; more are closed. */
const MAX_IDLE_RUNNERS = 4;

async function openRunnerPage(modelFile: string, shared: boolean): Promise<RunnerPage> {
  const runner: Partial<RunnerPage> = {};
  const gpuPage = await openGpuPage({
    modelFile,
    path: RUNNER_URL_PATH,
    warmup: [RUNNER_SCRIPT],
    shared,
    beforeOpen: (page) => page.exposeFunction('lanternToken', (index: number, token: GeneratedToken) => runner.deliver?.(index, token)),
  });
  try {
    // The runner's module script may still be loading when goto() returns.
    await gpuPage.guard(gpuPage.page.waitForFunction(() => window.lanternRunner !== undefined, undefined, { timeout: PAGE_READY_TIMEOUT_MS }));
  } catch (e) {
    await gpuPage.close();
    throw e;
  }
  return Object.assign(runner, { gpuPage, modelPath: gpuPage.modelPath, deliver: undefined });
}

/**
 * A runner page of the shared browser for `modelFile`: one a closed session left, when there is
 * one. Its GPU device comes with it (runner.ts keeps one per page), and with the device the
 * pipelines the page's earlier models compiled, which SwiftShader takes seconds over each: a test
 * file opening sessions one after another compiles each kernel variant once per page, not per session.
 */
async function takeSharedRunner(modelFile: string): Promise<RunnerPage> {
  const host = await (sharedHost ??= startSharedHost());
  const idle = host.idleRunners.shift();
  if (!idle) return openRunnerPage(modelFile, true);
  idle.modelPath = `/__lantern/model-${nextModel++}.gguf`;
  host.models.set(idle.modelPath, modelFile);
  return idle;
}

/** Frees the session's model; a shared page that did so cleanly waits for the next session, any other closes. */
async function releaseRunner(runner: RunnerPage, shared: boolean, unloaded: Promise<unknown>): Promise<void> {
  runner.deliver = undefined;
  const host = shared ? await sharedHost?.catch(() => undefined) : undefined;
  host?.models.delete(runner.modelPath);
  const reusable = await unloaded.then((settled) => settled !== null && typeof settled === 'object' && !('error' in settled), () => false);
  if (host && reusable && host.idleRunners.length < MAX_IDLE_RUNNERS && !runner.gpuPage.page.isClosed()) host.idleRunners.push(runner);
  else await runner.gpuPage.close();
}

/** Loads `modelFile` in a Chromium page and drives the runtime there. */
export async function openChromiumSession(modelFile: string, options: SessionOptions): Promise<ModelSession> {
  // Tokens arrive through a binding, each with its index; they are handed on in order.
  let onToken: ((token: GeneratedToken) => void) | undefined;
  let pending = new Map<number, GeneratedToken>();
  let delivered = 0;
  let allDelivered: (() => void) | undefined;
  let expected = -1;
  const flush = () => {
    for (let token = pending.get(delivered); token; token = pending.get(delivered)) {
      pending.delete(delivered++);
      onToken?.(token);
    }
    if (delivered === expected) allDelivered?.();
  };

  const shared = process.env.LANTERN_SHARED_BROWSER === '1';
  const runner = shared ? await takeSharedRunner(modelFile) : await openRunnerPage(modelFile, false);
  const { gpuPage } = runner;
  runner.deliver = (index, token) => {
    pending.set(index, token);
    flush();
  };
  let closing: Promise<void> | undefined;
  const call = async <K extends keyof RunnerApi>(name: K, ...args: Parameters<RunnerApi[K]>) => {
    type Value = Awaited<ReturnType<RunnerApi[K]>> extends Settled<infer T> ? T : never;
    // A shared page outlives its session: a closed session must not reach the next one's model.
    if (closing) throw new LanternError('NOT_LOADED', 'This model session is closed; open a new one.');
    const settled = await gpuPage.evaluate(
      ([name, args]) => {
        const runner = window.lanternRunner!;
        return (runner[name] as (...a: unknown[]) => Promise<Settled<unknown>>)(...args);
      },
      [name, args] as const,
    );
    if ('error' in settled) throw rebuildError(settled.error);
    return settled.value as Value;
  };
  const close = () =>
    (closing ??= releaseRunner(runner, shared, shared ? gpuPage.evaluate(() => window.lanternRunner!.dispose(), undefined) : Promise.resolve(null)));

  try {
    const info: ModelInfo = await call('load', gpuPage.url + runner.modelPath, { contextLength: options.contextLength, int8Activations: options.int8Activations, kvCache: options.kvCache, maxGpuBytes: options.maxGpuBytes });
    return {
      backend: 'chromium',
      info,
      encode: (text, addSpecial) => call('encode', text, addSpecial),
      async generate(promptIds, generateOptions, callback) {
        onToken = callback;
        pending = new Map();
        delivered = 0;
        expected = -1;
        const done = new Promise<void>((resolve) => (allDelivered = resolve));
        try {
          const { count, stats } = await call('generate', promptIds, generateOptions);
          expected = count;
          flush();
          await gpuPage.guard(done);
          return stats;
        } finally {
          onToken = undefined;
          allDelivered = undefined;
        }
      },
      logits: async (promptIds) => new Float32Array(await call('logits', promptIds)),
      tokenLogProbs: async (ids, from) => new Float64Array(await call('tokenLogProbs', ids, from)),
      embed: async (ids) => new Float32Array(await call('embed', ids)),
      bench: (benchOptions) => call('bench', benchOptions),
      close,
    };
  } catch (e) {
    // A page whose load failed is not handed on.
    closing ??= releaseRunner(runner, shared, Promise.resolve(null));
    await closing;
    throw e;
  }
}

/** The Chromium to drive: CHROMIUM_PATH, else the usual install paths; NO_WEBGPU if there is none. */
export function findChromium(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new LanternError('NO_WEBGPU', `CHROMIUM_PATH points to ${fromEnv}, which does not exist; fix or unset it.`);
    return fromEnv;
  }
  const found = CHROMIUM_CANDIDATES.find((path) => existsSync(path));
  if (!found) {
    throw new LanternError(
      'NO_WEBGPU',
      'No WebGPU found: there is no Chromium to run the model in. Install one (Debian: apt-get install chromium) or set CHROMIUM_PATH; with a GPU driver installed, Dawn runs it without a browser.',
    );
  }
  return found;
}

function launchError(reason: unknown, executablePath: string): LanternError {
  return new LanternError(
    'NO_WEBGPU',
    `Chromium at ${executablePath} did not start (${(reason as Error).message.split('\n')[0]}); reinstall it (Debian: apt-get install chromium) or point CHROMIUM_PATH at a working one.`,
  );
}

/** The first fatal event in the page (or the server); every guarded call fails with it. */
function failureLatch() {
  let fail!: (error: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {}); // Nobody may be waiting when it happens.
  return {
    fail: (error: Error) => fail(error),
    guard: <T>(work: Promise<T>): Promise<T> => Promise.race([work, failed]),
  };
}

function watchPage(page: Page, fail: (error: Error) => void): void {
  page.on('pageerror', (error) => fail(new Error(`The Chromium page threw: ${error.stack ?? error.message}`)));
  page.on('console', (message) => {
    if (message.type() === 'error') fail(new Error(`The Chromium page logged an error: ${message.text()}`));
  });
  page.on('crash', () => fail(new LanternError('GPU_ERROR', 'The Chromium page crashed (out of memory, or a GPU process failure); try a smaller --context or model.')));
}

function rebuildError(error: { code?: string; message: string; details?: Record<string, unknown>; stack?: string }): Error {
  if (error.code) return LanternError.fromJSON(error as Parameters<typeof LanternError.fromJSON>[0]);
  const rebuilt = new Error(`In the Chromium page: ${error.message}`);
  if (error.stack) rebuilt.stack = `${rebuilt.message}\n${error.stack}`;
  return rebuilt;
}

async function startServer(modelFile: string | undefined | ReadonlyMap<string, string>, warmup: string[], fail: (error: Error) => void): Promise<ViteDevServer> {
  // Vite's own messages stay quiet; its errors (a module that fails to transform) fail the page.
  const logger = createLogger('error', { allowClearScreen: false });
  logger.error = (message) => fail(new Error(`Vite could not serve the page: ${message}`));
  const server = await createServer({
    root: REPO_ROOT,
    customLogger: logger,
    clearScreen: false,
    appType: 'mpa',
    server: { host: '127.0.0.1', port: 0, strictPort: true, hmr: false, watch: null, warmup: { clientFiles: warmup } },
    // The page imports only project sources; scanning for dependencies would only cost start-up.
    optimizeDeps: { noDiscovery: true, include: [] },
    plugins: [lanternRoutes(modelFile)],
  });
  await server.listen();
  return server;
}

function serverOrigin(server: ViteDevServer): string {
  const { port } = server.httpServer!.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** The blank page, and the model file (or, shared, each page's) streamed from disk with HEAD and Range support. */
function lanternRoutes(modelFile: string | undefined | ReadonlyMap<string, string>): Plugin {
  return {
    name: 'lantern-cli-routes',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const path = req.url?.split('?')[0];
        if (path === BLANK_URL_PATH) {
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end(BLANK_PAGE);
        } else if (typeof modelFile === 'object' && path !== undefined && modelFile.has(path)) {
          serveFile(modelFile.get(path)!, req, res).catch(next);
        } else if (path === MODEL_URL_PATH && typeof modelFile === 'string') {
          serveFile(modelFile, req, res).catch(next);
        } else {
          next();
        }
      });
    },
  };
}

async function serveFile(file: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.statusCode = 405;
    res.end();
    return;
  }
  const { size } = await stat(file);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Cache-Control', 'no-store');
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  if (range) {
    const match = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (match && (match[1] || match[2])) {
      if (match[1]) {
        start = Number(match[1]);
        if (match[2]) end = Math.min(Number(match[2]), size - 1);
      } else {
        start = Math.max(0, size - Number(match[2])); // bytes=-N: the last N bytes
      }
    }
    if (!match || start > end) {
      res.statusCode = 416;
      res.setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  }
  res.setHeader('Content-Length', String(end - start + 1));
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(file, { start, end });
  stream.on('error', (e) => res.destroy(e));
  stream.pipe(res);
}
