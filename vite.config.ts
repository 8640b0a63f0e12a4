import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';

// The demo app (index.html) and the Web Worker are plain Vite entries; WGSL is imported with `?raw`.
export default defineConfig({
  server: { host: '127.0.0.1' },
  worker: { format: 'es' },
  build: { target: 'es2022' },
  plugins: [
    // The installable, offline app (production builds only). The service worker precaches the app
    // shell and the engine worker, whose chunk carries the WGSL shaders. Model weights never enter
    // its caches: they are large, and the IndexedDB model cache owns them.
    VitePWA({
      registerType: 'prompt',
      // src/pwa/register.ts registers it and shows the reload prompt.
      injectRegister: false,
      manifest: {
        name: 'Lantern',
        short_name: 'Lantern',
        description: 'Open language models running in your browser, on your GPU, with WebGPU.',
        theme_color: '#b45309',
        background_color: '#ffffff',
        display: 'standalone',
        start_url: '.',
        scope: '.',
        icons: [
          { src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: 'icons/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: 'icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        // The manifest and its icons are added by the plugin itself.
        globPatterns: ['**/*.{html,js,css,svg}'],
        // Weights (public/models, *.gguf) stay out; so does the embed, which is not part of the app.
        globIgnores: ['models/**', '**/*.gguf', 'lantern-embed.js', 'lantern-worker.js', 'embed-example.html'],
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/\.gguf$/, /^\/models\//, /embed-example\.html$/],
      },
    }),
  ],
});
