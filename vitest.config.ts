import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Chromium with SwiftShader is CPU-heavy; files that launch it run one at a time.
    fileParallelism: false,
  },
});
