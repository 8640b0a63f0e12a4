#!/usr/bin/env node
// Runs a TypeScript script of this repository, `node scripts/run-ts.mjs scripts/NAME.ts [args]`, through
// Vite's SSR module loader as bin/lantern.mjs does: the sources and their `?raw` WGSL imports load as
// they are, with no build step. The script exports `main(argv): Promise<number>`, its exit code.
import { resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const [script, ...args] = process.argv.slice(2);
if (!script) {
  process.stderr.write('usage: node scripts/run-ts.mjs scripts/NAME.ts [args]\n');
  process.exit(2);
}
const vite = await createServer({
  root,
  logLevel: 'silent',
  clearScreen: false,
  appType: 'custom',
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});

let code = 1;
try {
  const { main } = await vite.ssrLoadModule('/' + relative(root, resolve(script)));
  code = await main(args);
} catch (e) {
  process.stderr.write(`${script}: ${e?.stack ?? e}\n`);
} finally {
  await vite.close();
}
// Playwright and llama.cpp may leave handles open; the work is done.
process.exit(code);
