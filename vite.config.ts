import { defineConfig } from 'vite';

// The demo app (index.html) and the Web Worker are plain Vite entries; WGSL is imported with `?raw`.
export default defineConfig({
  server: { host: '127.0.0.1' },
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
