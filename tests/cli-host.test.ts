import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';

// The Chromium host that the CLI and the GPU tests share: a WebGPU page on Lantern's Vite server.
const MODEL = new URL('../../shared/models/stories260K/stories260K.gguf', import.meta.url).pathname;

describe('openGpuPage', () => {
  let gpu: GpuPage;
  beforeAll(async () => {
    gpu = await openGpuPage({ modelFile: MODEL });
  });
  afterAll(() => gpu?.close());

  it('has a WebGPU adapter', async () => {
    const adapter = await gpu.evaluate(async () => {
      const adapter = await navigator.gpu.requestAdapter();
      return adapter && { vendor: adapter.info.vendor, architecture: adapter.info.architecture };
    }, undefined);
    expect(adapter).not.toBeNull();
  });

  it('imports project sources and reads the model by range', async () => {
    const header = await gpu.evaluate(async () => {
      const { urlSource } = await window.lanternImport('/src/storage/source.ts');
      const { readGGUF, metaString } = await window.lanternImport('/src/model/gguf.ts');
      const file = await readGGUF(await urlSource('/__lantern/model.gguf'));
      return { arch: metaString(file, 'general.architecture'), tensors: file.tensors.length, size: file.size };
    }, undefined);
    expect(header.arch).toBe('llama');
    expect(header.tensors).toBeGreaterThan(0);
  });

  it('serves the model with HEAD, Content-Length and Range', async () => {
    const url = gpu.url + '/__lantern/model.gguf';
    const head = await fetch(url, { method: 'HEAD' });
    const size = Number(head.headers.get('content-length'));
    expect(size).toBeGreaterThan(1000);
    const part = await fetch(url, { headers: { Range: 'bytes=0-3' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 0-3/${size}`);
    expect(new TextDecoder().decode(await part.arrayBuffer())).toBe('GGUF');
    const outside = await fetch(url, { headers: { Range: `bytes=${size}-` } });
    expect(outside.status).toBe(416);
  });

  // Last: after a page failure every later call on this page fails too.
  it('fails a call when the page throws, instead of hanging', async () => {
    const call = gpu.evaluate(() => new Promise<void>(() => setTimeout(() => { throw new Error('boom'); }, 10)), undefined);
    await expect(call).rejects.toThrow(/boom/);
  });
});
