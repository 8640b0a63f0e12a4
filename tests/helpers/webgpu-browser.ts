/** Headless Chromium with WebGPU on SwiftShader, for the end-to-end tests of built pages. */
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, findChromium } from '../../src/cli/chromium-host.ts';

export function launchWebGpuChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: findChromium(), args: CHROMIUM_ARGS });
}

/** Page errors and console errors, printed to the test's output and kept for assertions. */
export function watchPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => {
    errors.push(error.message);
    console.error(`[page] ${error.message}`);
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    errors.push(message.text());
    console.error(`[console] ${message.text()}`);
  });
  return errors;
}
