#!/usr/bin/env node
// The `lantern` command. It runs src/cli/main.ts through Vite's SSR module loader, so the
// TypeScript sources and their `?raw` WGSL imports load as they are, with no build step.
// Vite, Playwright and Dawn (the `webgpu` package) are optional peer dependencies of the package,
// so that a web app that installs Lantern gets none of them; the command line asks for them.
import { fileURLToPath } from 'node:url';

const CLI_PACKAGES = 'vite playwright-core webgpu';
const { createServer } = await import('vite').catch(() => {
  process.stderr.write(
    `lantern: the command line needs Vite to load its sources; install its optional dependencies beside lantern:\n` +
      `  npm install --save-dev ${CLI_PACKAGES}\n` +
      `(playwright-core drives a Chromium you already have; webgpu is Dawn, for machines with a GPU.)\n`,
  );
  process.exit(1);
});

const root = fileURLToPath(new URL('..', import.meta.url));
const vite = await createServer({
  root,
  logLevel: 'silent', // a failure to load is reported below, once
  clearScreen: false,
  appType: 'custom',
  // Only a module loader: no HTTP, no HMR socket, no file watcher, no dependency scan.
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});

// `lantern generate ... | head` closes stdout early: that ends the run, quietly.
process.stdout.on('error', (e) => process.exit(e.code === 'EPIPE' ? 0 : 1));

let code = 1;
try {
  const { main } = await vite.ssrLoadModule('/src/cli/main.ts');
  code = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`lantern: could not start: ${e?.stack ?? e}\n`);
} finally {
  await vite.close();
}
// Dawn and Playwright may leave handles open; the work is done.
process.exit(code);
