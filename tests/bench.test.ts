/**
 * The benchmark: `lantern bench` on stories260K returns every documented figure, positive and
 * finite, with the weight traffic the GGUF header implies; the stream-read kernel's XOR matches
 * its CPU twin and the submit clock reads GPU time; the operation-cost kernels compute what their
 * CPU twins do. A benchmark is not a timed test: shapes and
 * sanity are asserted here, never speed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { openFileSource } from '../src/cli/file-source.ts';
import { type GGUFTensorInfo, GGMLType, readGGUF } from '../src/model/gguf.ts';
import { type OpCost, streamWord, weightBytesPerToken } from '../src/runtime/bench.ts';
import { REPO_ROOT, STORIES_GGUF } from './helpers/paths.ts';

const FIGURES = [
  'prefillTokensPerSecond', 'decodeTokensPerSecond', 'weightBytesPerToken', 'decodeGBps', 'streamReadGBps', 'decodeBandwidthFraction',
] as const;

function lantern(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(REPO_ROOT, 'bin/lantern.mjs'), ...args], { cwd: REPO_ROOT, timeout: 240_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Twin of weightBytesPerToken, written from the definition: each tensor a step reads, whole, but one row of token_embd unless it is also the output. */
async function expectedWeightBytes(file: string): Promise<number> {
  const source = await openFileSource(file);
  try {
    const { tensors } = await readGGUF(source);
    const embd = tensors.find((t) => t.name === 'token_embd.weight')!;
    const others = tensors.filter((t) => t !== embd).reduce((sum, t) => sum + t.nBytes, 0);
    const tied = !tensors.some((t) => t.name === 'output.weight');
    return others + embd.nBytes / embd.dims[1] + (tied ? embd.nBytes : 0);
  } finally {
    await source.close();
  }
}

describe('lantern bench', () => {
  // The three runs start together, each in its own CLI process: most of a run is its browser and
  // server starting, which overlap.
  type Run = ReturnType<typeof lantern>;
  let runs: { figures: Run; profile: Run; opCosts: Run };
  beforeAll(() => {
    const schema = join(mkdtempSync(join(tmpdir(), 'lantern-bench-')), 'schema.json');
    writeFileSync(schema, JSON.stringify({ type: 'array', items: { type: 'integer' } }));
    runs = {
      figures: lantern('bench', '--model', STORIES_GGUF, '--prompt-tokens', '9', '--gen-tokens', '7', '--positions', '3,20', '--json'),
      profile: lantern('bench', '--model', STORIES_GGUF, '--prompt-tokens', '5', '--gen-tokens', '3', '--profile', '--json-schema', schema, '--json'),
      opCosts: lantern('bench', '--model', STORIES_GGUF, '--prompt-tokens', '2', '--gen-tokens', '2', '--op-costs'),
    };
  });

  it('prints every documented figure, positive and finite, for stories260K', async () => {
    const run = await runs.figures;
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines, run.stdout).toHaveLength(1);
    const result = JSON.parse(lines[0]);
    expect(result).toMatchObject({ model: 'stories260K.gguf', backend: 'chromium', promptTokens: 9, genTokens: 7 });
    expect(['gpu-timestamps', 'wall-clock']).toContain(result.timing);
    expect(['grid', 'spans']).toContain(result.streamPattern);
    expect(typeof result.adapter).toBe('string');
    for (const key of FIGURES) {
      expect(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`).toBe(true);
    }
    for (const key of ['prefillTokensPerSecond', 'decodeTokensPerSecond', 'streamReadGBps'] as const) {
      expect(Number.isFinite(result.wallClock[key]) && result.wallClock[key] > 0, `wallClock.${key} = ${result.wallClock[key]}`).toBe(true);
    }
    expect(result.weightBytesPerToken).toBe(await expectedWeightBytes(STORIES_GGUF));
    // The GPU memory as loaded, by category; the cache f16 by default, for the run's context.
    expect(result).toMatchObject({ kvCache: 'f16', contextLength: 9 + 7 + 16 });
    const g = result.gpuBytes;
    expect(g.total).toBe(g.weights + g.kvCache + g.activations + g.staging);
    expect(g.kvCache).toBe(result.kvBytes.total);
    expect(result.kvBytes.perToken).toBe(5 * 2 * 32 * 2); // 5 layers, K and V, 32 values of 2 bytes
    expect(g.weights).toBeGreaterThan(0);
    // The figures are tied to each other as documented, whatever the speed.
    expect(result.decodeGBps).toBeCloseTo((result.weightBytesPerToken * result.decodeTokensPerSecond) / 1e9, 9);
    expect(result.decodeBandwidthFraction).toBeCloseTo(result.decodeGBps / result.streamReadGBps, 9);
    // --positions: 7 steps after a warm-up one from each position, the step at p reading the K and
    // V rows of positions 0..p in every layer (no windows): p + 1 + 4 rows on average from 3 and 20.
    const at = result.positions.at as { position: number; decodeTokensPerSecond: number; wallClockDecodeTokensPerSecond: number; bytesPerStep: number }[];
    expect(at.map((p) => p.position)).toEqual([3, 20]);
    for (const p of at) {
      expect(Number.isFinite(p.decodeTokensPerSecond) && p.decodeTokensPerSecond > 0 && p.wallClockDecodeTokensPerSecond > 0, JSON.stringify(p)).toBe(true);
      expect(p.bytesPerStep).toBeCloseTo(result.weightBytesPerToken + (p.position + 1 + 4) * result.kvBytes.perToken, 6);
    }
    expect(result.positions.ratios.decode).toBeCloseTo(at[1].decodeTokensPerSecond / at[0].decodeTokensPerSecond, 9);
    expect(result.positions.ratios.bytes).toBeCloseTo(at[0].bytesPerStep / at[1].bytesPerStep, 9);
  }, 300_000);

  it('--profile times every dispatch of a decode step, grouped by kernel; --json-schema times the grammar mask', async () => {
    const run = await runs.profile;
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    // A real constrained decode of up to 3 tokens (the reply is checked in grammar-engine.test).
    expect(result.grammar.tokens).toBeGreaterThan(0);
    expect(result.grammar.tokens).toBeLessThanOrEqual(3);
    expect(['stop', 'length']).toContain(result.grammar.finishReason);
    expect(result.grammar.maskMsMedian).toBeGreaterThan(0);
    expect(result.grammar.maskMsP99).toBeGreaterThanOrEqual(result.grammar.maskMsMedian);
    expect(result.grammar.decodeTokensPerSecond).toBeGreaterThan(0);
    if (result.timing !== 'gpu-timestamps') {
      expect(result.profile).toBeNull();
      return;
    }
    const profile = result.profile as { kernel: string; dispatches: number; ms: number }[];
    for (const p of profile) expect(Number.isFinite(p.ms) && p.ms > 0, `${p.kernel}: ${p.ms} ms`).toBe(true);
    expect(profile.map((p) => p.ms)).toEqual([...profile.map((p) => p.ms)].sort((a, b) => b - a));
    // stories260K has 5 layers: per layer two norms, q/k/v stacked in one linear, two ropes, K and
    // V into the (default f16) KV cache, attention, the output projection, two adds, gate/up
    // stacked, swiglu, down; then the embedding, and the head's norm, output linear and argmax.
    const count = (kernel: RegExp) => profile.filter((p) => kernel.test(p.kernel)).reduce((n, p) => n + p.dispatches, 0);
    expect(count(/./)).toBeCloseTo(1 + 5 * 14 + 3, 9);
    expect(count(/^copy_to_cache:kv_f16/)).toBeCloseTo(10, 9);
    expect(count(/^attention/)).toBeCloseTo(5, 9);
    expect(count(/^rmsnorm(?!.*last_row)/)).toBeCloseTo(10, 9);
    expect(count(/^linear:.* 64\+32\+32x64$/)).toBeCloseTo(5, 9);
    expect(count(/^linear:.* 172\+172x64$/)).toBeCloseTo(5, 9);
  }, 300_000);

  it('--op-costs prints each operation in u32 adds, the add itself as 1', async () => {
    const run = await runs.opCosts;
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    const start = lines.findIndex((line) => line.startsWith('op costs'));
    expect(start, run.stdout).toBeGreaterThan(0);
    const rows = lines.slice(start + 1).filter((line) => line.startsWith('  ')).map((line) => /^ {2}(.+?) +([\d.]+) G\/s +([\d.]+) adds$/.exec(line));
    expect(rows.every((m) => m !== null), run.stdout).toBe(true);
    expect(rows.map((m) => m![1])).toContain('dot4I8Packed');
    expect(rows[0]).toMatchObject({ 1: 'u32 +', 3: '1.00' });
    for (const m of rows) expect(Number(m![2]), m![1]).toBeGreaterThan(0);
  }, 300_000);

  it('refuses a token count of 0 as a usage error', async () => {
    const run = await lantern('bench', '--model', STORIES_GGUF, '--gen-tokens', '0', '--json');
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout).error.code).toBe('BAD_ARGUMENT');
  });
});

describe('weightBytesPerToken', () => {
  const tensor = (name: string, dims: number[], nBytes: number): GGUFTensorInfo => ({ name, type: GGMLType.F16, dims, nElements: nBytes / 2, nBytes, offset: 0 });
  const layer = [tensor('blk.0.attn_q.weight', [8, 8], 128), tensor('blk.0.attn_norm.weight', [8], 32)];

  it('counts one embedding row and the whole output matrix', () => {
    const tensors = [tensor('token_embd.weight', [8, 100], 1600), tensor('output.weight', [8, 100], 1600), ...layer];
    expect(weightBytesPerToken(tensors)).toBe(16 + 1600 + 128 + 32);
  });

  it('counts a tied embedding as the output matrix too', () => {
    const tensors = [tensor('token_embd.weight', [8, 100], 1600), ...layer];
    expect(weightBytesPerToken(tensors)).toBe(16 + 1600 + 128 + 32);
  });
});

/** dot4I8Packed: the dot product of the four signed bytes of x and of y. */
function dot4I8(x: number, y: number): number {
  let sum = 0;
  for (let i = 0; i < 4; i++) sum += ((x << (24 - 8 * i)) >> 24) * ((y << (24 - 8 * i)) >> 24);
  return sum >>> 0;
}

/**
 * Twin of shaders/op_cost.wgsl for the operations whose result WGSL pins down: the XOR over
 * `invocations` of what each computes in `rounds` rounds of 1024 (each vec4 component is a chain of its own).
 */
function opCostTwin(op: string, invocations: number, rounds: number): number {
  const step: Record<string, (a: number, b: number) => number> = {
    'u32 +': (a, b) => (a + b) >>> 0,
    'u32 *': (a, b) => Math.imul(a, b) >>> 0,
    'u32 ^': (a, b) => (a ^ b) >>> 0,
    'u32 >>': (a) => a >>> 1,
    dot4I8Packed: dot4I8,
    'storage load (u32, any index)': (a) => streamWord(a & 0xffff),
  };
  const f = step[op];
  const seeds = [0x9e3779b1, 0x85ebca6b, 0xc2b2ae35, 0x27d4eb2f];
  let xor = 0;
  for (let gid = 0; gid < invocations; gid++) {
    for (const seed of seeds) {
      let a = Math.imul(gid, seed) >>> 0;
      let b = (a ^ 0x3c6ef372) >>> 0;
      let c = (a + 0x7f4a7c15) >>> 0;
      let d = Math.imul(b, 5) >>> 0;
      for (let i = 0; i < 64 * rounds; i++) {
        a = f(a, b);
        b = f(b, c);
        c = f(c, d);
        d = f(d, a);
      }
      xor = (xor ^ a ^ b ^ c ^ d) >>> 0;
    }
  }
  return xor;
}

describe('measurement kernels', () => {
  let gpu: GpuPage;
  beforeAll(async () => {
    gpu = await openGpuPage();
  });
  afterAll(() => gpu?.close());

  it('XORs every word of a buffer that is no multiple of the grid, as its CPU twin does, in each access pattern', async () => {
    // 12,345 vec4s: not a multiple of 256 invocations, of the 64-workgroup grid, of the 16384 spans
    // nor of the four vec4s a span step reads; the 7 extra bytes are dropped.
    const bytes = 16 * 12345 + 7;
    const results = await gpu.evaluate(async (n) => {
      const { acquireGpu } = await window.lanternImport('/src/gpu/device.ts');
      const bench = await window.lanternImport('/src/runtime/bench.ts');
      const context = await acquireGpu(navigator.gpu);
      const clock = bench.SubmitClock.create(context, 32);
      try {
        const timestamps = context.device.features.has('timestamp-query') as boolean;
        const reads = [];
        for (const pattern of ['grid', 'spans', undefined] as const) reads.push({ ...(await bench.measureStreamRead(context, { bytes: n, clock, pattern })), asked: pattern, timestamps });
        return reads;
      } finally {
        clock?.destroy();
        context.device.destroy();
      }
    }, bytes);
    let xor = 0;
    for (let i = 0; i < (16 * 12345) / 4; i++) xor = (xor ^ streamWord(i)) >>> 0;
    for (const result of results) {
      expect(result.pattern).toBe(result.asked ?? result.pattern);
      expect(result.bytes).toBe(16 * 12345);
      expect(result.xor).toBe(xor);
      expect(result.wallMs).toBeGreaterThan(0);
      if (result.timestamps) {
        // GPU time of a submit cannot exceed the wall-clock time from submit to completion.
        expect(result.gpuMs).toBeGreaterThan(0);
        expect(result.gpuMs).toBeLessThanOrEqual(result.wallMs * 1.05 + 0.1);
      } else {
        expect(result.gpuMs).toBeUndefined();
      }
    }
    expect(['grid', 'spans']).toContain(results[2].pattern);
  }, 60_000);

  it('measures the cost of every operation, add as 1, each kernel computing what its CPU twin does', async () => {
    const { costs, subgroups } = await gpu.evaluate(async (size) => {
      const { acquireGpu } = await window.lanternImport('/src/gpu/device.ts');
      const bench = await window.lanternImport('/src/runtime/bench.ts');
      const context = await acquireGpu(navigator.gpu);
      try {
        return { costs: (await bench.measureOpCosts(context, size)) as OpCost[], subgroups: context.subgroupSize !== undefined };
      } finally {
        context.device.destroy();
      }
    }, { rounds: 1, invocations: 256 });
    expect(costs.map((c) => c.op)).toEqual([
      'u32 +', 'u32 *', 'u32 ^', 'u32 >>', 'f32 a * b + c', 'i32 to f32', 'dot4I8Packed', 'unpack2x16float', 'storage load (u32, any index)',
      ...(subgroups ? ['subgroupBroadcast'] : []), 'loop round',
    ]);
    expect(costs[0].adds).toBe(1);
    for (const c of costs) {
      expect(c.gOpsPerSecond, c.op).toBeGreaterThan(0);
      expect(Number.isFinite(c.adds), c.op).toBe(true);
    }
    const checked = ['u32 +', 'u32 *', 'u32 ^', 'u32 >>', 'dot4I8Packed', 'storage load (u32, any index)'];
    for (const op of checked) expect(costs.find((c) => c.op === op)!.xor, op).toBe(opCostTwin(op, 256, 1));
    // The loop variant does the adds of OP_ADD, 16 a round.
    expect(costs[costs.length - 1].xor).toBe(costs[0].xor);
  }, 60_000);
});
