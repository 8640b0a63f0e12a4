import { defineConfig } from 'vite';

// The command line and the bench-model writer as plain Node ES modules, for a machine that has
// neither node_modules nor network (scripts/gpu-kit.sh): the sources and their `?raw` WGSL are
// bundled; Dawn (webgpu) travels beside them, and the Chromium and llama.cpp hosts stay out.
export default defineConfig({
  logLevel: 'warn',
  publicDir: false,
  build: {
    ssr: true,
    outDir: '.gpu/lantern',
    emptyOutDir: true,
    target: 'node20',
    minify: false,
    rollupOptions: {
      input: { cli: 'src/cli/main.ts', 'write-bench-models': 'scripts/write-bench-models.ts' },
      external: ['webgpu', 'playwright-core', 'node-llama-cpp'],
      output: { format: 'es', entryFileNames: '[name].mjs' },
    },
  },
  ssr: { noExternal: true, external: ['webgpu', 'playwright-core', 'node-llama-cpp'] },
});
