#!/usr/bin/env node
// The `lantern` command. It runs src/cli/main.ts through Vite's SSR module loader, so the
// TypeScript sources and their `?raw` WGSL imports load as they are, with no build step.
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

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
