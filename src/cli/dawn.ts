import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { benchRuntime } from '../runtime/bench.ts';
import { Runtime } from '../runtime/runtime.ts';
import { openFileSource } from './file-source.ts';
import type { ModelSession, SessionOptions } from './session.ts';

/** What Dawn's default adapter is, as far as telling a GPU from a software rasterizer goes. */
export interface DawnProbe {
  /** True when Dawn found an adapter that is a real GPU. */
  hardware: boolean;
  /** Why Dawn will not be used, in a few words; '' when it will. */
  reason: string;
  adapter?: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
}

const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|\bwarp\b|\bcpu\b/i;

const PROBE_TIMEOUT_MS = 15_000;

/**
 * Asks Dawn for its default adapter in a child process: Dawn may abort (not throw) when it only
 * finds SwiftShader, and that must not take the CLI down with it. Costs one Node start-up.
 */
export async function probeDawn(): Promise<DawnProbe> {
  let webgpuUrl: string;
  try {
    webgpuUrl = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch {
    return { hardware: false, reason: 'the webgpu package (Dawn for Node) is not installed' };
  }
  const script = `
    const { create } = await import(${JSON.stringify(webgpuUrl)});
    const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
    const info = adapter?.info;
    process.stdout.write(JSON.stringify(info ? {
      vendor: info.vendor, architecture: info.architecture, device: info.device,
      description: info.description, isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter,
    } : null));
    process.exit(0);`;
  const output = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.on('error', () => resolve({ code: null, stdout: '' }));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
  if (output.code !== 0) return { hardware: false, reason: `Dawn's adapter probe did not finish (exit ${output.code ?? 'signal'})` };
  const adapter = JSON.parse(output.stdout || 'null') as DawnProbe['adapter'] | null;
  if (!adapter) return { hardware: false, reason: 'Dawn found no adapter (install a GPU driver with Vulkan support)' };
  const name = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].join(' ');
  if (adapter.isFallbackAdapter || SOFTWARE_ADAPTER.test(name)) {
    return { hardware: false, reason: `Dawn found only a software adapter (${name.trim()})`, adapter };
  }
  return { hardware: true, reason: '', adapter };
}

/** Runs the model in this process on Dawn's default adapter. */
export async function openDawnSession(modelFile: string, options: SessionOptions): Promise<ModelSession> {
  const { create, globals } = await import('webgpu');
  // The runtime uses the WebGPU globals (GPUBufferUsage, GPUMapMode, ...) as a browser provides them.
  Object.assign(globalThis, globals);
  const source = await openFileSource(modelFile);
  let runtime: Runtime;
  try {
    runtime = await Runtime.load(create([]), source, { contextLength: options.contextLength, int8Activations: options.int8Activations, kvCache: options.kvCache, maxGpuBytes: options.maxGpuBytes });
  } catch (e) {
    await source.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    backend: 'dawn',
    info: runtime.info,
    async encode(text, addSpecial) {
      return runtime.encode(text, addSpecial);
    },
    async generate(promptIds, generateOptions, onToken) {
      for await (const token of runtime.generate(promptIds, generateOptions)) onToken(token);
      return runtime.lastStats;
    },
    logits: (promptIds) => runtime.logits(promptIds),
    tokenLogProbs: (ids, from) => runtime.tokenLogProbs(ids, from),
    embed: (ids) => runtime.embed(ids),
    bench: (benchOptions) => benchRuntime(runtime, benchOptions),
    close: () =>
      (closing ??= (async () => {
        runtime.dispose();
        await source.close();
      })()),
  };
}

