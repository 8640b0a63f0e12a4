import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Chromium with SwiftShader is CPU-heavy; files that launch it run one at a time.
    fileParallelism: false,
    // CLI sessions opened by a test file share one Chromium and one Vite server (a page each):
    // a file that opens dozens of sessions pays for the browser's start and Vite's transforms once.
    env: { LANTERN_SHARED_BROWSER: '1' },
  },
});
