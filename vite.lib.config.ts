import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, defineConfig, type Plugin } from 'vite';

/**
 * The library an app installs (`npm run build:lib`, part of `npm run build`), into dist/lib:
 *
 *   lantern.js                ES module, src/index.ts: createEngine and the rest; comlink, idb-keyval
 *                             and @huggingface/jinja stay bare imports for the app's bundler
 *   lantern-embed.js          ES module, src/embed/module.ts: registers <lantern-chat>
 *   lantern-worker.js         the engine's Web Worker, self-contained (its dependencies and the WGSL inlined)
 *   lantern-shared-worker.js  the same engine as a SharedWorker, for createEngine({ worker: 'shared' })
 *   chunks/*.js               storage, chat template, runtime (with its WGSL, for Runtime and worker: 'none')
 *   types/                    .d.ts for every export, with their doc comments (tsconfig.lib.json)
 *
 * The entries start their workers with `new Worker(new URL('./lantern-worker.js', import.meta.url),
 * { type: 'module' })`, the one form Vite, webpack 5, Rollup, Parcel and esbuild all follow, so the
 * app's bundler emits the worker; served as they are, the files work without a bundler too.
 * The entries are not minified (the app's bundler minifies them, and a reader can follow them); the
 * workers, which a page may load as they are, are.
 */
const ROOT = fileURLToPath(new URL('.', import.meta.url));
const OUT_DIR = resolve(ROOT, 'dist/lib');
const DEPENDENCIES = ['comlink', 'idb-keyval', '@huggingface/jinja'];

/** Source worker file → the file the library ships; client.ts and the embed module name these. */
const WORKERS: Record<string, { entry: string; file: string }> = {
  './engine-worker.ts': { entry: 'src/worker/engine-worker.ts', file: 'lantern-worker.js' },
  './engine-shared-worker.ts': { entry: 'src/worker/engine-shared-worker.ts', file: 'lantern-shared-worker.js' },
};

export default defineConfig({
  root: ROOT,
  publicDir: false,
  build: {
    target: 'es2022',
    outDir: OUT_DIR,
    emptyOutDir: true,
    minify: false,
    lib: {
      entry: { lantern: resolve(ROOT, 'src/index.ts'), 'lantern-embed': resolve(ROOT, 'src/embed/module.ts') },
      formats: ['es'],
    },
    rollupOptions: {
      external: (id) => DEPENDENCIES.some((name) => id === name || id.startsWith(`${name}/`)),
      output: {
        entryFileNames: '[name].js',
        chunkFileNames: 'chunks/[name]-[hash].js',
        // The runtime's modules build registries when they load (shaders, model families): code a
        // bundler must keep once the module is in. In chunks of their own, an app that imports only
        // the cache functions or the chat template never has them in its bundle (with sideEffects: false).
        codeSplitting: {
          groups: [
            { name: 'storage', test: /[\\/]src[\\/]storage[\\/]/ },
            { name: 'chat-template', test: /[\\/]src[\\/]runtime[\\/]chat\.ts$/ },
            // The reply's tool-call reader, which the page imports only for requests that offer tools.
            { name: 'tool-calls', test: /[\\/]src[\\/]runtime[\\/]tools\.ts$/ },
            { name: 'runtime', test: /[\\/](src[\\/](runtime|kernels|gpu|model)|shaders)[\\/]/ },
          ],
        },
      },
    },
  },
  plugins: [prebuiltWorkers(), declarations()],
});

/**
 * Vite would bundle `new Worker(new URL('./engine-worker.ts', import.meta.url))` into the library
 * (inlined as a data: URL in library mode). Instead the URL is hidden from it while modules are
 * transformed, put back as `new URL('./lantern-worker.js', import.meta.url)` in the output, and
 * the worker is built on its own beside the entries.
 */
function prebuiltWorkers(): Plugin {
  const placeholder = (file: string) => `__LANTERN_WORKER_URL_${file.replace(/\W/g, '_')}__`;
  return {
    name: 'lantern-prebuilt-workers',
    apply: 'build',
    enforce: 'pre',
    transform(code, id) {
      if (!/src\/(worker\/client|embed\/module)\.ts$/.test(id)) return null;
      let out = code;
      for (const [source, { file }] of Object.entries(WORKERS)) {
        for (const name of [source, `./${file}`]) {
          out = out.replaceAll(`new URL('${name}', import.meta.url)`, `new URL(${placeholder(file)}, import.meta.url)`);
        }
      }
      return out === code ? null : { code: out, map: null };
    },
    renderChunk(code, chunk) {
      let out = code;
      // Relative to the chunk that makes the URL: an entry beside the workers, or one in chunks/.
      const up = chunk.fileName.includes('/') ? '../' : './';
      for (const { file } of Object.values(WORKERS)) out = out.replaceAll(placeholder(file), JSON.stringify(`${up}${file}`));
      return out === code ? null : { code: out, map: null };
    },
    async closeBundle() {
      for (const { entry, file } of Object.values(WORKERS)) {
        await build({
          configFile: false,
          root: ROOT,
          publicDir: false,
          logLevel: 'warn',
          build: {
            target: 'es2022',
            outDir: OUT_DIR,
            emptyOutDir: false,
            minify: true,
            lib: { entry: resolve(ROOT, entry), formats: ['es'], fileName: () => file },
          },
        });
      }
    },
  };
}

/**
 * Writes dist/lib/types with the TypeScript compiler. The sources import each other as `./x.ts`;
 * the declarations name `./x.js`, which every TypeScript resolution mode finds. The entry refers to
 * @webgpu/types (a dependency of the package) because Runtime's signatures name GPU types.
 */
function declarations(): Plugin {
  return {
    name: 'lantern-declarations',
    apply: 'build',
    async closeBundle() {
      const { default: ts } = await import('typescript');
      const { config, error } = ts.readConfigFile(resolve(ROOT, 'tsconfig.lib.json'), ts.sys.readFile);
      if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
      const parsed = ts.parseJsonConfigFileContent(config, ts.sys, ROOT);
      const program = ts.createProgram(parsed.fileNames, parsed.options);
      const result = program.emit(undefined, (file, text) => {
        let out = text.replace(/((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
        if (file === resolve(OUT_DIR, 'types/index.d.ts')) out = `/// <reference types="@webgpu/types" />\n${out}`;
        ts.sys.writeFile(file, out);
      });
      // Type errors are tsc --noEmit's to report (npm test); these are the ones declarations cannot be written with.
      const errors = result.diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
      if (errors.length > 0) throw new Error(ts.formatDiagnostics(errors, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' }));
    },
  };
}
