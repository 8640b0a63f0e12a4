import { copyFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, defineConfig, type Plugin } from 'vite';

/**
 * The embeddable script tag, built after the app (`npm run build`) into the same folder:
 *
 *   lantern-embed.js    classic script (IIFE): <lantern-chat> and the script-tag loader; no engine code
 *   lantern-worker.js   ES module: the engine worker with its WGSL shaders, loaded on first use
 *   embed-example.html  a third-party-style page that uses only the script tag
 *
 * Two builds, because a classic script cannot share chunks with a module: the loader cannot be
 * code-split, and the worker must stay out of it to keep it within its size budget.
 */
const ROOT = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: ROOT,
  build: {
    target: 'es2022',
    emptyOutDir: false,
    lib: {
      entry: resolve(ROOT, 'src/embed/index.ts'),
      formats: ['iife'],
      name: 'LanternEmbed',
      fileName: () => 'lantern-embed.js',
    },
  },
  plugins: [embedWorker()],
});

/** Builds lantern-worker.js and copies embed-example.html once the loader is written. */
function embedWorker(): Plugin {
  let outDir = '';
  return {
    name: 'lantern-embed-worker',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    async closeBundle() {
      await build({
        configFile: false,
        root: ROOT,
        publicDir: false,
        logLevel: 'warn',
        build: {
          target: 'es2022',
          outDir,
          emptyOutDir: false,
          lib: { entry: resolve(ROOT, 'src/worker/engine-worker.ts'), formats: ['es'], fileName: () => 'lantern-worker.js' },
        },
      });
      await copyFile(resolve(ROOT, 'src/embed/embed-example.html'), resolve(outDir, 'embed-example.html'));
    },
  };
}
