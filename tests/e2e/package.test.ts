// @vitest-environment node
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, STORIES_GGUF } from '../helpers/paths.ts';
import { startStaticServer, type StaticServer } from '../helpers/static-server.ts';
import { launchWebGpuChromium, watchPageErrors } from '../helpers/webgpu-browser.ts';

/**
 * Lantern as an app installs it: `npm pack` of this repository, installed from the tarball into
 * fresh apps in a temporary folder (dependencies from the registry, as a user's install gets them),
 * then built with Vite and with webpack 5, and also served as plain files with an import map, each
 * streaming a chat from stories260K in Chromium. The same installs check the declarations
 * (tsc --strict), what a production install pulls in, the size budgets, tree-shaking, and the
 * `lantern` command from the installed package.
 */

/**
 * Gzipped bytes of dist/lib/lantern.js with the chunks it imports statically, Runtime included:
 * measured 98.5 KiB at 0.1.0, 156.9 KiB with the Hugging Face converter, the grammar engine and the
 * KV cache forms (the page runs the engine itself with worker: 'none'); +20%.
 */
const LIBRARY_BUDGET_GZIP_BYTES = 188 * 1024;
/** Gzipped bytes of dist/lib/lantern-worker.js, the engine with its WGSL: 89.4 KiB at 0.1.0, 128.7 KiB with the same additions; +20%. */
const WORKER_BUDGET_GZIP_BYTES = 155 * 1024;

/**
 * Gzipped bytes of the Vite app's entry chunk: createEngine and comlink, no runtime (measured 12.8
 * KiB, then 15.1 KiB once chat completions shaped tool calls, log-probabilities and embeddings;
 * +20%). The tool-call reader stays out of it (a chunk of its own, loaded for requests with tools):
 * when it shared a chunk with the chat template, the entry was 43.9 KiB.
 */
const APP_ENTRY_BUDGET_GZIP_BYTES = Math.round(18.1 * 1024);

/** stories260K's greedy continuation of BOS + "Once upon a time" (llama.cpp; see demo.test.ts). */
const GREEDY_START = ', there was a little girl named Lily. She loved to play outside in the park.';

/** What only the command line and the tests need (a bundler, a browser driver, Dawn, llama.cpp): never an app. */
const CLI_ONLY = ['vite', 'playwright', 'playwright-core', 'webgpu', 'node-llama-cpp'];

const exec = promisify(execFile);
const INSTALL_FLAGS = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
const REPO_PACKAGE = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
const VITE_VERSION = REPO_PACKAGE.devDependencies.vite.replace(/^\^/, '');
const PLAYWRIGHT_VERSION = REPO_PACKAGE.devDependencies['playwright-core'].replace(/^\^/, '');

/** The app every bundler builds: one import, load the model, stream a chat into the page. */
const APP_SOURCE = `import { createEngine } from 'lantern';

const out = document.getElementById('out');
async function run() {
  const engine = createEngine();
  await engine.load(new URL('models/stories260K.gguf', document.baseURI).href);
  // stories260K is a base model with no chat template: the template makes the message the prompt.
  const chunks = await engine.chat.completions.create({
    messages: [{ role: 'user', content: 'Once upon a time' }],
    chat_template: '{{ messages[0].content }}',
    stream: true,
    temperature: 0,
    max_tokens: 16,
  });
  let count = 0;
  for await (const chunk of chunks) {
    out.textContent += chunk.choices[0].delta.content ?? '';
    count += 1;
  }
  document.body.dataset.chunks = String(count);
  document.body.dataset.state = 'done';
}
run().catch((e) => {
  out.textContent = (e.code ?? '') + ': ' + e.message;
  document.body.dataset.state = 'error';
});
`;

const page = (script: string, head = '') => `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">${head}<title>app</title></head>
<body><pre id="out"></pre>${script}</body></html>
`;

let work: string;
let tarball: string;
let viteApp: string;
let webpackApp: string;
let browser: Browser;
const servers: StaticServer[] = [];
const timings: Record<string, number> = {};

async function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    timings[name] = Math.round((performance.now() - started) / 100) / 10;
  }
}

async function writeFiles(folder: string, files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(folder, name)), { recursive: true });
    await writeFile(join(folder, name), text);
  }
}

async function npm(cwd: string, args: string[]): Promise<string> {
  try {
    return (await exec('npm', args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false' } })).stdout;
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} in ${cwd} failed:\n${stderr ?? ''}\n${stdout ?? ''}`);
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lantern-package-'));
  // What prepack runs before `npm pack`, run here on its own so that pack's stdout is only its JSON.
  await timed('npm run build:lib', () => npm(REPO_ROOT, ['run', 'build:lib']));
  const packed = await timed('npm pack', () => npm(REPO_ROOT, ['pack', '--json', '--ignore-scripts', '--pack-destination', work]));
  tarball = join(work, (JSON.parse(packed) as { filename: string }[])[0].filename);

  viteApp = join(work, 'vite-app');
  webpackApp = join(work, 'webpack-app');
  await writeFiles(viteApp, {
    'package.json': JSON.stringify({ name: 'vite-app', private: true, type: 'module', dependencies: { lantern: `file:${tarball}` }, devDependencies: { vite: VITE_VERSION, 'playwright-core': PLAYWRIGHT_VERSION } }),
    'index.html': page('<script type="module" src="/src/main.js"></script>'),
    'src/main.js': APP_SOURCE,
    // A page that only lists the model cache, for the tree-shaking check.
    'cache.html': page('<script type="module" src="/src/cache.js"></script>'),
    'src/cache.js': `import { listCachedModels } from 'lantern';\nlistCachedModels().then((models) => (document.getElementById('out').textContent = String(models.length)));\n`,
    'vite.cache.config.js': `export default { build: { outDir: 'dist-cache', rollupOptions: { input: 'cache.html' } } };\n`,
  });
  await writeFiles(webpackApp, {
    'package.json': JSON.stringify({ name: 'webpack-app', private: true, type: 'module', dependencies: { lantern: `file:${tarball}` }, devDependencies: { webpack: '^5', 'webpack-cli': '^6' } }),
    'src/main.js': APP_SOURCE,
    'webpack.config.js': `import { fileURLToPath } from 'node:url';
export default {
  mode: 'production',
  entry: './src/main.js',
  output: { path: fileURLToPath(new URL('./dist', import.meta.url)), filename: 'main.js', publicPath: 'auto', clean: true },
  performance: { hints: false },
  // Terser would only add time here: what is checked is that webpack emits a worker that runs.
  optimization: { minimize: false },
};
`,
  });
  // Both installs at once: npm's cache is safe to share.
  await timed('npm install (both apps)', () => Promise.all([npm(viteApp, INSTALL_FLAGS), npm(webpackApp, INSTALL_FLAGS)]));

  await timed('vite build', () => exec('npx', ['vite', 'build', '--logLevel', 'warn'], { cwd: viteApp }));
  await timed('vite build (cache page)', () => exec('npx', ['vite', 'build', '-c', 'vite.cache.config.js', '--logLevel', 'warn'], { cwd: viteApp }));
  await timed('webpack build', () => exec('npx', ['webpack'], { cwd: webpackApp }));
  await writeFile(join(webpackApp, 'dist/index.html'), page('<script src="main.js"></script>'));
  for (const dist of [join(viteApp, 'dist'), join(webpackApp, 'dist')]) {
    await mkdir(join(dist, 'models'), { recursive: true });
    await cp(STORIES_GGUF, join(dist, 'models/stories260K.gguf'));
  }
  browser = await launchWebGpuChromium();
}, 600_000);

afterAll(async () => {
  console.log(`package.test.ts timings (s): ${JSON.stringify(timings)}`);
  await browser?.close();
  for (const server of servers) await server.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Opens `url`, waits for the app to finish streaming, and checks what it streamed; then `andThen` on the same page. */
async function expectStreams(url: string, andThen?: (tab: Page) => Promise<void>): Promise<void> {
  const context = await browser.newContext();
  const tab = await context.newPage();
  const errors = watchPageErrors(tab);
  await tab.goto(url);
  await tab.locator('body[data-state]').waitFor({ timeout: 120_000 });
  const text = (await tab.locator('#out').textContent()) ?? '';
  expect(await tab.locator('body').getAttribute('data-state'), text).toBe('done');
  expect(Number(await tab.locator('body').getAttribute('data-chunks'))).toBeGreaterThan(2);
  expect(text.length).toBeGreaterThan(20);
  expect(GREEDY_START.startsWith(text), `streamed: ${JSON.stringify(text)}`).toBe(true);
  await andThen?.(tab);
  expect(errors).toEqual([]);
  await context.close();
}

async function serve(folder: string): Promise<StaticServer> {
  const server = await startStaticServer(folder);
  servers.push(server);
  return server;
}

/** Every file a built app emitted, with its text. */
async function builtFiles(folder: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of await readdir(folder, { recursive: true })) {
    if (name.endsWith('.js') || name.endsWith('.html')) files.set(name, await readFile(join(folder, name), 'utf8'));
  }
  return files;
}

// Builds, tsc and Chromium on a shared 2-core machine: minutes, not the default two.
describe('the npm package, installed from its tarball', { timeout: 300_000 }, () => {
  it('a Vite app imports createEngine, builds with vite build, and streams a chat', async () => {
    const files = await builtFiles(join(viteApp, 'dist'));
    // The worker is its own file, emitted by Vite from the package's new URL('./lantern-worker.js', import.meta.url).
    const workers = [...files].filter(([, text]) => text.includes('@compute'));
    expect(workers.length, [...files.keys()].join(', ')).toBeGreaterThan(0);
    expect(workers.every(([name]) => /lantern-worker|lantern-shared-worker|worker-engine|runtime/.test(name)), workers.map(([n]) => n).join(', ')).toBe(true);
    // What the page itself loads first: the app's entry chunk, with createEngine and comlink but no runtime.
    const entry = /<script type="module"[^>]* src="\/([^"]+)"/.exec(files.get('index.html') ?? '')?.[1] ?? '';
    const entryGzip = gzipSync(files.get(entry) ?? '', { level: 9 }).byteLength;
    console.log(`Vite app entry chunk ${entry}: ${entryGzip} bytes gzipped`);
    expect(files.get(entry)).toContain('lantern-engine');
    expect(files.get(entry)).not.toContain('@compute');
    expect(entryGzip).toBeLessThanOrEqual(APP_ENTRY_BUDGET_GZIP_BYTES);
    await expectStreams(`${(await serve(join(viteApp, 'dist'))).origin}/`);
  });

  it('the same app built with webpack 5 streams a chat', async () => {
    await expectStreams(`${(await serve(join(webpackApp, 'dist'))).origin}/`);
  });

  it('without a bundler: the files served as they are, with an import map for the three dependencies', async () => {
    // The layout the README describes: the package's dist/lib at /lantern/, each dependency's ES module at /vendor/.
    const site = join(work, 'plain');
    const modules = join(viteApp, 'node_modules');
    await mkdir(join(site, 'vendor'), { recursive: true });
    await mkdir(join(site, 'models'), { recursive: true });
    await symlink(join(modules, 'lantern/dist/lib'), join(site, 'lantern'));
    await symlink(join(modules, 'comlink/dist/esm/comlink.mjs'), join(site, 'vendor/comlink.js'));
    await symlink(join(modules, 'idb-keyval/dist/index.js'), join(site, 'vendor/idb-keyval.js'));
    await symlink(join(modules, '@huggingface/jinja/dist/index.js'), join(site, 'vendor/jinja.js'));
    await symlink(STORIES_GGUF, join(site, 'models/stories260K.gguf'));
    const importMap = `<script type="importmap">${JSON.stringify({
      imports: { comlink: '/vendor/comlink.js', 'idb-keyval': '/vendor/idb-keyval.js', '@huggingface/jinja': '/vendor/jinja.js' },
    })}</script>`;
    const script = `<script type="module">\n${APP_SOURCE.replace("from 'lantern'", "from '/lantern/lantern.js'")}</script>`;
    await writeFile(join(site, 'index.html'), page(script, importMap));
    await expectStreams(`${(await serve(site)).origin}/`, async (tab) => {
      // The second entry, lantern/embed: importing it defines <lantern-chat>, whose worker is the package's.
      // A string, not a function: vitest would rewrite an import() written in this file.
      const widget = await tab.evaluate(`import('/lantern/lantern-embed.js').then(() => {
        const element = customElements.get('lantern-chat');
        return { defined: element !== undefined, workerUrl: element?.workerUrl?.pathname };
      })`);
      expect(widget).toEqual({ defined: true, workerUrl: '/lantern/lantern-worker.js' });
    });
  });

  it('its declarations type-check a consumer that uses every export with tsc --strict, and reject a wrong option name', async () => {
    const index = await readFile(join(REPO_ROOT, 'src/index.ts'), 'utf8');
    // Every name src/index.ts exports, so that a new export must be added to the consumer below.
    const exported = [...index.matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) => m[1].split(',').map((s) => s.trim().replace(/^type /, '')).filter(Boolean));
    const consumer = `import 'lantern/embed';
import { ${exported.map((name) => `type ${name} as _${name}`).join(', ')} } from 'lantern';
import { createEngine, listCachedModels, deleteCachedModel, deleteAllCachedModels, Runtime, renderChatTemplate, urlSource, blobSource, bytesSource, LanternError } from 'lantern';
import type { ChatCompletionChunk, GenerationStats, LanternErrorCode, ModelInfo, LoadProgress } from 'lantern';

export async function chat(): Promise<string> {
  const engine = createEngine({ worker: 'dedicated' });
  const info: ModelInfo = await engine.load('/models/model.gguf', { onProgress: (p: LoadProgress) => console.log(p.phase, p.loadedBytes) });
  const chunks: AsyncIterable<ChatCompletionChunk> = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], stream: true });
  let text = info.name;
  for await (const chunk of chunks) text += chunk.choices[0].delta.content ?? '';
  const stream = engine.generate('Once', { maxTokens: 4, temperature: 0, signal: new AbortController().signal });
  for await (const { text: piece, tokens } of stream) text += piece + tokens.length;
  const stats: GenerationStats = await stream.result;
  const models = await listCachedModels();
  await deleteCachedModel(models[0].id);
  await deleteAllCachedModels();
  const code: LanternErrorCode = new LanternError('BAD_ARGUMENT', 'x').code;
  const sources = [urlSource('/m.gguf'), blobSource(new Blob([])), bytesSource(new Uint8Array(8))];
  const runtime: typeof Runtime = Runtime;
  const widget: HTMLElement = document.createElement('lantern-chat');
  return text + stats.finishReason + code + sources.length + String(runtime) + widget.tagName + renderChatTemplate('{{ messages[0].content }}', [{ role: 'user', content: 'x' }]);
}
`;
    const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    // Both files in one run, in the two resolution modes apps use: the only error must be the misuse.
    const check = (resolution: string) =>
      exec(process.execPath, [tsc, '--strict', '--noEmit', '--target', 'es2022', '--lib', 'es2022,dom,dom.iterable', '--module', resolution === 'bundler' ? 'esnext' : resolution, '--moduleResolution', resolution, 'consumer.ts', 'misuse.ts'], { cwd: viteApp }).then(
        () => 'no errors',
        (e: { stdout: string }) => e.stdout.trim() || 'failed',
      );
    await writeFiles(viteApp, { 'consumer.ts': consumer, 'misuse.ts': `import { createEngine } from 'lantern';\ncreateEngine({ wroker: 'shared' });\n` });
    expect(exported.length).toBeGreaterThan(30);
    for (const resolution of ['bundler', 'nodenext']) {
      const output = await check(resolution);
      // TS2353, or TS2561 when TypeScript also suggests 'worker'.
      expect(output, resolution).toMatch(/^misuse\.ts\(2,\d+\): error TS(2353|2561): [^\n]*'wroker' does not exist in type 'EngineOptions'[^\n]*$/);
    }
  });

  it('a production install brings no vite, playwright, webgpu or node-llama-cpp, only the three browser dependencies', async () => {
    const tree = JSON.parse(await npm(webpackApp, ['ls', '--omit=dev', '--all', '--json'])) as { dependencies?: Record<string, Tree> };
    interface Tree {
      version?: string;
      dependencies?: Record<string, Tree>;
    }
    const installed = new Set<string>();
    const missing = new Set<string>();
    const walk = (deps: Record<string, Tree> | undefined) => {
      for (const [name, child] of Object.entries(deps ?? {})) {
        // npm ls also lists the optional peer dependencies it did not install, as {} without a version.
        (child.version ? installed : missing).add(name);
        walk(child.dependencies);
      }
    };
    walk(tree.dependencies);
    expect([...installed].filter((name) => CLI_ONLY.includes(name))).toEqual([]);
    for (const name of CLI_ONLY) expect(existsSync(join(webpackApp, 'node_modules', name)), name).toBe(false);
    expect([...missing].sort()).toEqual(['playwright-core', 'vite', 'webgpu']);
    const lantern = tree.dependencies?.lantern.dependencies ?? {};
    expect(Object.keys(lantern).filter((name) => lantern[name].version).sort(), JSON.stringify(lantern)).toEqual(['@huggingface/jinja', '@webgpu/types', 'comlink', 'idb-keyval']);
  });

  it(`keeps lantern.js under ${LIBRARY_BUDGET_GZIP_BYTES} and the worker under ${WORKER_BUDGET_GZIP_BYTES} bytes gzipped`, async () => {
    const lib = join(viteApp, 'node_modules/lantern/dist/lib');
    // lantern.js and every chunk it imports statically: what `import … from 'lantern'` loads unbundled.
    const loaded = new Set<string>();
    const visit = async (file: string) => {
      if (loaded.has(file)) return;
      loaded.add(file);
      const text = await readFile(join(lib, file), 'utf8');
      for (const [, spec] of text.matchAll(/^import [^;]*?from "(\.[^"]+)";$/gm)) await visit(join(dirname(file), spec));
    };
    await visit('lantern.js');
    let library = 0;
    for (const file of loaded) library += gzipSync(await readFile(join(lib, file)), { level: 9 }).byteLength;
    const worker = gzipSync(await readFile(join(lib, 'lantern-worker.js')), { level: 9 }).byteLength;
    console.log(`lantern.js with ${[...loaded].join(', ')}: ${library} bytes gzipped; lantern-worker.js: ${worker} bytes gzipped`);
    expect(library).toBeLessThanOrEqual(LIBRARY_BUDGET_GZIP_BYTES);
    expect(worker).toBeLessThanOrEqual(WORKER_BUDGET_GZIP_BYTES);
    // The worker carries its shaders and dependencies: it imports nothing.
    expect(await readFile(join(lib, 'lantern-worker.js'), 'utf8')).not.toMatch(/^import\s/m);
  });

  it('tree-shakes: an app that imports only listCachedModels bundles no engine, worker or shaders', async () => {
    const files = await builtFiles(join(viteApp, 'dist-cache'));
    const all = [...files.values()].join('\n');
    expect(all).toContain('lantern-models'); // listCachedModels' database is there
    expect(all).not.toContain('lantern-worker');
    expect(all).not.toContain('@compute');
    expect(all).not.toContain('chat.completion');
  });

  it('`npx lantern` runs from the installed package with its optional dependencies beside it, and says what to install without', async () => {
    // The Vite app has vite and playwright-core (no webgpu): the CLI generates in the system's Chromium.
    const { stdout } = await exec('npx', ['--no-install', 'lantern', 'generate', '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--max-tokens', '8', '--json'], { cwd: viteApp, env: { ...process.env, LANTERN_GPU: 'chromium' } });
    const generated = JSON.parse(stdout) as { promptTokens: number[]; text: string; tokens: number[] };
    expect(generated.promptTokens).toEqual([1, 403, 407, 261, 378]); // BOS + "Once upon a time"
    expect(generated.tokens).toHaveLength(8);
    expect(GREEDY_START.startsWith(generated.text), generated.text).toBe(true);
    const failed = await exec('npx', ['--no-install', 'lantern', 'help'], { cwd: webpackApp }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('npm install --save-dev vite playwright-core webgpu');
  });
});
