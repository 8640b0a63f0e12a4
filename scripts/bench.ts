/**
 * Lantern beside llama.cpp on the same GGUF files in the same run: prefill and decode tokens/s,
 * Lantern ÷ llama.cpp, and Lantern's decode bandwidth against the adapter's streaming read.
 *
 *   npm run bench -- [FILE.gguf ...] [--prompt-tokens 128] [--gen-tokens 64] [--threads 1,2]
 *                    [--llama-gpu false|vulkan|cuda] [--op-costs] [--out FILE.json]
 *   npm run bench -- --table bench/results/FILE.json     # the table of an earlier run, again
 *
 * Without files it benchmarks the SmolLM2-135M-shaped models of scripts/write-bench-models.ts,
 * writing any that are missing. Lantern runs through openSession (Dawn on a real GPU, else
 * Chromium's WebGPU); llama.cpp through node-llama-cpp, on the CPU with each thread count of
 * --threads (the faster one is compared), or on its GPU build with --llama-gpu. Results go to
 * bench/results/<date>-<machine>.json, and a markdown table to stdout.
 *
 * --op-costs adds what each kind of WGSL operation costs on the adapter (measureOpCosts), measured
 * with the first model.
 *
 * Lantern ÷ llama.cpp compares wall-clock figures on both sides (llama.cpp has no GPU timestamps);
 * Lantern's GPU-timestamped figures are in the JSON beside them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getLlama, type Llama, LlamaLogLevel, type ControlledEvaluateInputItem, type Token } from 'node-llama-cpp';
import { openFileSource } from '../src/cli/file-source.ts';
import { openSession } from '../src/cli/session.ts';
import { ggmlTypeName, readGGUF } from '../src/model/gguf.ts';
import type { BenchResult } from '../src/runtime/bench.ts';
import { writeBenchModels } from './write-bench-models.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = join(ROOT, 'bench/results');

interface LlamaCppRun {
  threads: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

interface ModelResult {
  file: string;
  /** Bytes of tensor data by ggml type, e.g. {F16: 269e6, F32: 1.2e6}. */
  bytesByType: Record<string, number>;
  lantern?: BenchResult & { backend: string };
  lanternError?: string;
  llamaCpp: LlamaCppRun[];
  llamaCppError?: string;
  /** Lantern ÷ the faster llama.cpp run, wall clock on both sides. */
  ratios?: { prefill: number; decode: number };
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'prompt-tokens': { type: 'string' },
      'gen-tokens': { type: 'string' },
      threads: { type: 'string' },
      'llama-gpu': { type: 'string' },
      'op-costs': { type: 'boolean' },
      out: { type: 'string' },
      table: { type: 'string' },
    },
  });
  if (values.table) {
    // Prints the table of an earlier results file again, without measuring.
    const saved = JSON.parse(readFileSync(values.table, 'utf8')) as { machine: Parameters<typeof markdownTable>[0]; results: ModelResult[] };
    process.stdout.write(markdownTable(saved.machine, saved.results));
    return 0;
  }
  const promptTokens = Number(values['prompt-tokens'] ?? 128);
  const genTokens = Number(values['gen-tokens'] ?? 64);
  const threads = (values.threads ?? '1,2').split(',').map(Number);
  const llamaGpu = (values['llama-gpu'] ?? 'false') as 'false' | 'vulkan' | 'cuda';
  if (![promptTokens, genTokens, ...threads].every((n) => Number.isSafeInteger(n) && n >= 1)) {
    process.stderr.write('--prompt-tokens, --gen-tokens and --threads take whole numbers >= 1\n');
    return 2;
  }
  const files = positionals.length
    ? positionals.map((f) => resolve(f))
    : await writeBenchModels({ models: ['smollm2-135m'], types: ['F16', 'Q8_0', 'Q4_K', 'Q4_K_M'] });

  const llama = await getLlama({
    gpu: llamaGpu === 'false' ? false : llamaGpu,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: Math.max(...threads),
    logLevel: LlamaLogLevel.error,
  });
  const results: ModelResult[] = [];
  let adapter = '';
  let backend = '';
  try {
    for (const file of files) {
      process.stderr.write(`${basename(file)}: Lantern...\n`);
      const result: ModelResult = { file: basename(file), bytesByType: await bytesByType(file), llamaCpp: [] };
      try {
        const session = await openSession(file, { contextLength: promptTokens + genTokens + 16 });
        try {
          const opCosts = Boolean(values['op-costs']) && results.length === 0;
          result.lantern = { ...(await session.bench({ promptTokens, genTokens, opCosts })), backend: session.backend };
          adapter = result.lantern.adapter;
          backend = session.backend;
        } finally {
          await session.close();
        }
      } catch (e) {
        result.lanternError = (e as Error).message;
      }
      for (const n of llamaGpu === 'false' ? threads : [threads[0]]) {
        process.stderr.write(`${basename(file)}: llama.cpp, ${n} thread${n > 1 ? 's' : ''}...\n`);
        try {
          result.llamaCpp.push(await benchLlamaCpp(llama, file, promptTokens, genTokens, n));
        } catch (e) {
          result.llamaCppError = (e as Error).message;
        }
      }
      const best = fastest(result.llamaCpp);
      if (result.lantern && best) {
        result.ratios = {
          prefill: result.lantern.wallClock.prefillTokensPerSecond / best.prefillTokensPerSecond,
          decode: result.lantern.wallClock.decodeTokensPerSecond / best.decodeTokensPerSecond,
        };
      }
      results.push(result);
    }
  } finally {
    await llama.dispose();
  }

  const machine = {
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus().length,
    adapter,
    backend,
    browser: backend === 'chromium' ? chromiumVersion() : undefined,
    node: process.version,
    llamaCpp: `node-llama-cpp ${packageVersion('node-llama-cpp')}, ${llamaGpu === 'false' ? 'CPU' : llamaGpu}`,
  };
  const date = new Date().toISOString();
  const report = { date, machine, settings: { promptTokens, genTokens, threads, llamaGpu }, results };
  const out = values.out ? resolve(values.out) : freshPath(join(RESULTS_DIR, `${date.slice(0, 10)}-${slug(`${machine.cpu} ${machine.cores}c ${adapter || 'no-adapter'}`)}`));
  mkdirSync(resolve(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(markdownTable(report.machine, results) + `\nwritten to ${out}\n`);
  return results.some((r) => r.lanternError || r.llamaCppError) ? 1 : 0;
}

/**
 * llama.cpp's figures for the same work as Lantern's bench: after a warm-up, one prefill of
 * promptTokens ids (timed to the first sampled token) and genTokens greedy steps, each timed.
 */
async function benchLlamaCpp(llama: Llama, file: string, promptTokens: number, genTokens: number, threads: number): Promise<LlamaCppRun> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: llama.gpu ? 'max' : 0 });
  try {
    const context = await model.createContext({ contextSize: promptTokens + genTokens + 8, sequences: 1, threads, batchSize: promptTokens });
    try {
      const sequence = context.getSequence();
      const nVocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
      if (nVocab === 0) throw new Error(`${basename(file)} has no tokenizer.ggml.tokens`);
      // Prompts that differ from the first id on, as Lantern's do: nothing is reused between runs.
      const ids = (seed: number) => Array.from({ length: promptTokens }, (_, i) => (i * 7919 + seed * 104729) % nVocab) as Token[];
      const withNext = (id: Token): ControlledEvaluateInputItem => [id, { generateNext: { token: true, options: { temperature: 0 } } }];
      const run = async (prompt: Token[], steps: number) => {
        await sequence.clearHistory();
        const t0 = performance.now();
        const first = await sequence.controlledEvaluate([...prompt.slice(0, -1), withNext(prompt[prompt.length - 1])]);
        const prefillMs = performance.now() - t0;
        let token = first[prompt.length - 1]?.next.token;
        let decodeMs = 0;
        for (let i = 0; i < steps; i++) {
          if (token == null) throw new Error(`llama.cpp sampled no token at step ${i}`);
          const ts = performance.now();
          const out = await sequence.controlledEvaluate([withNext(token)]);
          decodeMs += performance.now() - ts;
          token = out[0]?.next.token;
        }
        return { prefillMs, decodeMs };
      };
      await run(ids(1), 2); // warm-up
      const { prefillMs, decodeMs } = await run(ids(2), genTokens);
      return { threads, prefillTokensPerSecond: promptTokens / (prefillMs / 1000), decodeTokensPerSecond: genTokens / (decodeMs / 1000) };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function fastest(runs: LlamaCppRun[]): LlamaCppRun | undefined {
  return [...runs].sort((a, b) => b.decodeTokensPerSecond - a.decodeTokensPerSecond)[0];
}

async function bytesByType(file: string): Promise<Record<string, number>> {
  const source = await openFileSource(file);
  try {
    const out: Record<string, number> = {};
    for (const t of (await readGGUF(source)).tensors) out[ggmlTypeName(t.type)] = (out[ggmlTypeName(t.type)] ?? 0) + t.nBytes;
    return out;
  } finally {
    await source.close();
  }
}

function markdownTable(machine: { cpu: string; cores: number; adapter: string; backend: string; browser?: string; llamaCpp: string }, results: ModelResult[]): string {
  // Three significant figures at most: SwiftShader's figures are fractions of a token per second.
  const f = (x: number | undefined) => (x === undefined ? '–' : x >= 100 ? x.toFixed(0) : String(Number(x.toPrecision(3))));
  const lines = [
    `Machine: ${machine.cpu}, ${machine.cores} cores; Lantern on ${machine.adapter} (${machine.backend}${machine.browser ? `, ${machine.browser}` : ''}); ${machine.llamaCpp}.`,
    '',
    '| model | Lantern prefill tok/s | llama.cpp prefill tok/s | ratio | Lantern decode tok/s | llama.cpp decode tok/s | ratio | weights MB/token | decode GB/s | stream-read GB/s | fraction |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const l = r.lantern;
    const best = fastest(r.llamaCpp);
    const threads = best ? ` (${best.threads}t)` : '';
    lines.push(
      `| ${r.file} | ${f(l?.wallClock.prefillTokensPerSecond)} | ${f(best?.prefillTokensPerSecond)}${threads} | ${f(r.ratios?.prefill)} | ` +
        `${f(l?.wallClock.decodeTokensPerSecond)} | ${f(best?.decodeTokensPerSecond)}${threads} | ${f(r.ratios?.decode)} | ` +
        `${f(l && l.weightBytesPerToken / 1e6)} | ${f(l?.decodeGBps)} | ${f(l?.streamReadGBps)} | ${f(l && l.decodeBandwidthFraction)} |`,
    );
    if (r.lanternError) lines.push(`|  | Lantern failed: ${r.lanternError.split('\n')[0]} |`);
    if (r.llamaCppError) lines.push(`|  | llama.cpp failed: ${r.llamaCppError.split('\n')[0]} |`);
  }
  const costs = results.find((r) => r.lantern?.opCosts)?.lantern?.opCosts;
  if (costs) {
    lines.push('', '| operation | 1e9/s, all invocations | cost in u32 adds |', '|---|---:|---:|');
    for (const c of costs) lines.push(`| ${c.op} | ${f(c.gOpsPerSecond)} | ${f(c.adds)} |`);
  }
  return lines.join('\n') + '\n';
}

function chromiumVersion(): string | undefined {
  try {
    return execFileSync(process.env.CHROMIUM_PATH || '/usr/bin/chromium', ['--version'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/\(r\)|\(tm\)|processor/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** base.json, or base-2.json, base-3.json, ... : a second run on the same day keeps the first's file. */
function freshPath(base: string): string {
  let path = `${base}.json`;
  for (let n = 2; existsSync(path); n++) path = `${base}-${n}.json`;
  return path;
}
