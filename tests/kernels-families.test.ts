/**
 * The kernels the model families add (LayerNorm, per-head RMSNorm, GELU, scaling, soft-capping,
 * learned positions, sliding-window and ring-cache attention, ring writes into the KV cache)
 * against their float64 CPU twins, in Chromium's WebGPU (SwiftShader here), on shapes that are
 * not multiples of the workgroup sizes. One page for the file, as tests/kernels.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { GGMLType } from '../src/model/gguf.ts';
import type { KernelSpec } from './kernels/harness.ts';
import * as ref from './kernels/reference.ts';
import { asF32, expectClose, f32, packQuantized, packWeight } from './kernels/check.ts';

/** 16 per row: several tokens go through the register-tiled matmul (GPUs' prefill), which CPU adapters skip by default. */
const TILED = { tiledMatmul: true };

let gpu: GpuPage;
beforeAll(async () => {
  gpu = await openGpuPage();
});
afterAll(() => gpu?.close());

function runKernel(spec: KernelSpec): Promise<Record<string, number[]>> {
  return gpu.evaluate(async (s) => {
    const harness = await window.lanternImport('/tests/kernels/harness.ts');
    return harness.run(s);
  }, spec);
}

/** Rows `rows` of a [*, width] array. */
const rowsOf = (a: Float64Array | number[], rows: number[], width: number): number[] =>
  rows.flatMap((r) => Array.from(a.slice(r * width, (r + 1) * width)));

/** A ring of `cacheRows` rows as it stands after positions 0..positions-1 were written: row r holds the last position j with j % cacheRows = r. */
function ring(full: Float64Array, width: number, positions: number, cacheRows: number): Float64Array {
  const out = new Float64Array(cacheRows * width);
  for (let j = 0; j < positions; j++) out.set(full.subarray(j * width, (j + 1) * width), (j % cacheRows) * width);
  return out;
}

describe('family kernels match their CPU twins', () => {
  // The adapter's default (one subgroup per row on SwiftShader) and the GPU path (a workgroup of 64, barriers).
  for (const gpuPaths of [false, true]) {
    const path = gpuPaths ? 'GPU path' : 'default';
    for (const [format, withBias] of [['f32', true], ['f16', true], ['f32', false]] as const) {
      it(`layernorm (${format}${withBias ? ', f16 bias' : ''}) per row and last row only, ${path}`, async () => {
        const nTokens = 3, n = 77, eps = 1e-5;
        // A mean far from 0 and a small spread: E[x^2] - mean^2 would cancel where (x - mean)^2 does not.
        const x = asF32(ref.randomArray(nTokens * n, 51, 0.5).map((v) => v + 40));
        const w = packWeight(ref.randomArray(n, 52), format);
        const b = packWeight(ref.randomArray(n, 53), 'f16');
        const weights = { W: { words: w.words, format, rows: 1, cols: n }, ...(withBias ? { B: { words: b.words, format: 'f16' as const, rows: 1, cols: n } } : {}) };
        const want = ref.layernorm(x, w.rounded, withBias ? b.rounded : undefined, eps);
        const all = await runKernel({ op: 'layernorm', nTokens, pos0: 0, inputs: { x: f32(x) }, weights, outputs: { out: nTokens * n }, options: { eps, gpuPaths } });
        expectClose(all.out, want, { abs: 2e-5, rel: 2e-5 }, 'layernorm');
        const last = await runKernel({ op: 'layernorm', nTokens, pos0: 0, inputs: { x: f32(x) }, weights, outputs: { out: n }, options: { eps, lastRow: true, gpuPaths } });
        expectClose(last.out, want.subarray((nTokens - 1) * n), { abs: 2e-5, rel: 2e-5 }, 'layernorm last row');
      });
    }

    // Per-head q/k norms (Qwen3, Gemma 3): 5 heads of 24; OLMo 2's norm over a whole projection of 150.
    for (const [format, rowsPerToken, cols] of [['f32', 5, 24], ['f16', 1, 150]] as const) {
      it(`rmsnormRows (${format}) in place, ${rowsPerToken} rows of ${cols} per token, ${path}`, async () => {
        const nTokens = 3, eps = 1e-6;
        const x = asF32(ref.randomArray(nTokens * rowsPerToken * cols, 54, 3));
        const w = packWeight(ref.randomArray(cols, 55), format);
        const got = await runKernel({
          op: 'rmsnormRows', nTokens, pos0: 0, inputs: { x: f32(x) }, weights: { W: { words: w.words, format, rows: 1, cols } },
          outputs: { x: x.length }, options: { eps, rowsPerToken, gpuPaths },
        });
        expectClose(got.x, ref.rmsnorm(x, w.rounded, eps), { abs: 1e-5, rel: 1e-5 }, 'rmsnormRows');
      });
    }
  }

  it('a norm given a quantized or many-row tensor is refused with BAD_MODEL_FILE', async () => {
    const spec: KernelSpec = {
      op: 'rmsnormRows', nTokens: 1, pos0: 0, inputs: { x: new Array(64).fill(1) },
      weights: { W: { words: new Array(17).fill(0), format: 'q8_0', rows: 1, cols: 64 } }, outputs: { x: 64 }, options: { eps: 1e-6, rowsPerToken: 1 },
    };
    await expect(runKernel(spec)).rejects.toThrow(/BAD_MODEL_FILE|one F32 or F16 vector/);
  });

  // llama.cpp's CPU backend reads f32 GELU from a table of f16 (ggml-cpu/vec.h, GGML_GELU_FP16); the
  // kernel rounds the same way. Inputs cover both pass-through ends (|x| >= 10), the table's range,
  // f16 subnormals and zero.
  const geluInputs = asF32(Float64Array.from([
    ...ref.randomArray(700, 56, 12), -10, 10, -9.999, 9.999, -30, 40, 0, 1e-6, -3e-5, 2.5e-7, 0.5, -0.5, 3, -3,
  ]));
  it('gelu rounds through f16 as llama.cpp does', async () => {
    const width = 357, nTokens = 2; // [2, 357] over the 714 inputs
    const got = await runKernel({ op: 'gelu', nTokens, pos0: 0, inputs: { x: f32(geluInputs) }, outputs: { x: geluInputs.length }, options: { width } });
    const want = geluInputs.map(ref.gelu);
    // One f16 step either way where the kernel's f32 arithmetic lands across a rounding boundary from
    // the twin's; otherwise equal. Below x = -3, 1 + tanh(...) cancels, in f32 here as in llama.cpp's
    // table (absolute error a few 2^-24: tiny outputs may differ by 2^-22).
    expectClose(got.x, want, { abs: 2 ** -22, rel: 2 ** -10 }, 'gelu');
    const above = (i: number) => geluInputs[i] > -3;
    const equal = got.x.filter((v, i) => above(i) && v === want[i]).length;
    expect(equal / want.filter((_, i) => above(i)).length, 'share of outputs for x > -3 equal to the twin').toBeGreaterThan(0.98);
    // The rounding is real: exact GELU differs from llama.cpp's by ~1e-3 relative for x in [0, 10]
    // (two f16 roundings of up to 2^-11 each), 3.4e-3 near x = -3 where GELU is small (measured on
    // a grid of 1e-4), and from the kernel's output for most inputs.
    let worst = 0;
    geluInputs.forEach((x) => {
      if (Math.abs(x) > 0.01 && x > -3 && x < 10) worst = Math.max(worst, Math.abs(ref.gelu(x) - ref.geluExact(x)) / Math.abs(ref.geluExact(x)));
    });
    expect(worst).toBeGreaterThan(4e-4);
    expect(worst).toBeLessThan(5e-3);
    const exact = got.x.filter((v, i) => v === Math.fround(ref.geluExact(geluInputs[i]))).length;
    expect(exact / want.length, 'share of outputs equal to exact GELU').toBeLessThan(0.5);
  });

  it('geglu: gelu(gate) * up', async () => {
    const width = 357, nTokens = 2;
    const up = asF32(ref.randomArray(geluInputs.length, 57, 3));
    const got = await runKernel({ op: 'geglu', nTokens, pos0: 0, inputs: { gate: f32(geluInputs), up: f32(up) }, outputs: { gate: up.length }, options: { width } });
    const want = ref.geglu(geluInputs, up);
    expectClose(got.gate, want, { abs: 3 * 2 ** -22, rel: 2 ** -10 }, 'geglu');
    const above = (i: number) => geluInputs[i] > -3;
    const close = got.gate.filter((v, i) => above(i) && Math.abs(v - want[i]) <= 1e-6 * Math.abs(want[i])).length;
    expect(close / want.filter((_, i) => above(i)).length, 'share of outputs for gate > -3 equal to the twin (to f32)').toBeGreaterThan(0.98);
  });

  it('add2: the parallel residual\'s two adds in one', async () => {
    const nTokens = 3, width = 301;
    const [x, y, z] = [71, 72, 73].map((seed) => asF32(ref.randomArray(nTokens * width, seed, 4)));
    const got = await runKernel({ op: 'add2', nTokens, pos0: 0, inputs: { x: f32(x), y: f32(y), z: f32(z) }, outputs: { x: x.length }, options: { width } });
    expectClose(got.x, ref.add(ref.add(x, y), z), { abs: 2e-6, rel: 0 }, 'add2');
  });

  it('scale multiplies in place', async () => {
    const nTokens = 3, width = 301, factor = Math.sqrt(576);
    const x = asF32(ref.randomArray(nTokens * width, 58, 2));
    const got = await runKernel({ op: 'scale', nTokens, pos0: 0, inputs: { x: f32(x) }, outputs: { x: x.length }, options: { width, factor } });
    expectClose(got.x, x.map((v) => v * factor), { abs: 0, rel: 1e-7 }, 'scale');
  });

  // Gemma 2's final logits [1, vocab], encoded for one row while the step holds 3 tokens (as the
  // head's ops are): row 0 capped, the rows after it untouched. Large inputs too, where tanh built
  // from exp(x) / exp(x) overflows.
  it('softcap over [1, vocab] with large inputs, one row only', async () => {
    const width = 1003, nTokens = 3, cap = 30;
    const x = asF32(ref.randomArray(nTokens * width, 59, 60));
    x.set([1e4, -1e4, 300, -300, 30, -30, 1e-5, -2e-7, 0, 89, -89, 3.7], 0);
    const got = await runKernel({ op: 'softcap', nTokens, encodeTokens: 1, pos0: 0, inputs: { x: f32(x) }, outputs: { x: x.length }, options: { width, cap } });
    expectClose(got.x.slice(0, width), ref.softcap(x.subarray(0, width), cap), { abs: 1e-12, rel: 2e-6 }, 'softcap');
    expectClose(got.x.slice(width), x.subarray(width), { abs: 0, rel: 0 }, 'rows past the first untouched');
  });

  for (const [format, cols] of [['f32', 45], ['f16', 45], ['q8_0', 64]] as const) {
    it(`positionEmbedding (${format}) adds rows pos0.. of the table`, async () => {
      const rows = 20, nTokens = 4, pos0 = 7;
      const values = ref.randomArray(rows * cols, 60);
      const table = format === 'q8_0' ? packQuantized(values, GGMLType.Q8_0) : packWeight(values, format);
      const x = asF32(ref.randomArray(nTokens * cols, 61));
      const got = await runKernel({
        op: 'positionEmbedding', nTokens, pos0, inputs: { x: f32(x) }, weights: { W: { words: table.words, format, rows, cols } }, outputs: { x: x.length },
      });
      const positions = ref.embedding(table.rounded, cols, Array.from({ length: nTokens }, (_, t) => pos0 + t));
      expectClose(got.x, ref.add(x, positions), { abs: 1e-6, rel: 1e-6 }, `positionEmbedding ${format}`);
    });
  }

  // A ring of 8 rows: a chunk of 4 at positions 6..9 wraps (rows 6, 7, 0, 1); one token at 19 lands at row 3.
  const RING = 8;
  const SENTINEL = -7.25;
  for (const [nTokens, pos0] of [[4, 6], [1, 19]]) {
    it(`rope into a ring cache: ${nTokens} tokens at position ${pos0}, ${RING} rows`, async () => {
      const nHeads = 2, headDim = 12, ropeDim = 8, thetaBase = 10000, width = nHeads * headDim;
      const shape = { nHeads, headDim, ropeDim, thetaBase, neox: true };
      const x = asF32(ref.randomArray(nTokens * width, 62));
      const got = await runKernel({
        op: 'rope', nTokens, pos0, inputs: { x: f32(x), cache: new Array(RING * width).fill(SENTINEL) },
        outputs: { cache: RING * width }, options: { ...shape, cacheRows: RING },
      });
      // Rotated at the absolute positions, stored at their ring rows; the other rows untouched.
      const want = new Float64Array(RING * width).fill(SENTINEL);
      const rotated = ref.rope(x, shape, pos0);
      for (let t = 0; t < nTokens; t++) want.set(rotated.subarray(t * width, (t + 1) * width), ((pos0 + t) % RING) * width);
      expectClose(got.cache, want, { abs: 2e-6, rel: 1e-5 }, 'rope into the ring');
    });

    it(`copyToCache into a ring: ${nTokens} tokens at position ${pos0}, ${RING} rows`, async () => {
      const width = 37;
      const x = asF32(ref.randomArray(nTokens * width, 63));
      const got = await runKernel({
        op: 'copyToCache', nTokens, pos0, inputs: { x: f32(x), cache: new Array(RING * width).fill(SENTINEL) },
        outputs: { cache: RING * width }, options: { width, cacheRows: RING },
      });
      const want = new Float64Array(RING * width).fill(SENTINEL);
      for (let t = 0; t < nTokens; t++) want.set(x.subarray(t * width, (t + 1) * width), ((pos0 + t) % RING) * width);
      expectClose(got.cache, want, { abs: 0, rel: 0 }, 'copyToCache');
    });
  }

  // V straight into a ring on each linear path: the f32 matvec (1 and 16 per row), the tiled matmul
  // (several tokens, 16 per row), the block-format matvec over several tokens (1 per row), and the
  // adapter's defaults on SwiftShader: matvec_rows.wgsl (f32) and matvec_int8.wgsl (q8_0), one token and TOKENS4.
  const linearCases: ['f32' | 'q8_0', number, number, string][] = [
    ['f32', 1, 1, 'matvec'], ['f32', 16, 1, 'matvec, 16 per row'], ['f32', 16, 4, 'matmul'], ['q8_0', 1, 4, 'matvec over tokens'],
    ['f32', 0, 1, 'default'], ['f32', 0, 4, 'default'], ['q8_0', 0, 1, 'default'], ['q8_0', 0, 4, 'default'],
  ];
  for (const [format, threadsPerRow, nTokens, path] of linearCases) {
    it(`linear (${format}) into a ring of ${RING} rows, ${nTokens} tokens, ${path}`, async () => {
      const k = 64, n = 19, pos0 = nTokens === 1 ? 19 : 6;
      const x = asF32(ref.randomArray(nTokens * k, 64));
      const w = format === 'f32' ? packWeight(ref.randomArray(n * k, 65), 'f32') : packQuantized(ref.randomArray(n * k, 65), GGMLType.Q8_0);
      const bias = asF32(ref.randomArray(n, 66));
      const got = await runKernel({
        op: 'linear', nTokens, pos0, inputs: { x: f32(x), bias: f32(bias), y: new Array(RING * n).fill(SENTINEL) },
        weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: RING * n },
        options: { cacheRows: RING, ...(threadsPerRow ? { threadsPerRow, ...(threadsPerRow === 16 ? TILED : {}) } : {}) },
      });
      if (path === 'default') expect(got.int8[0], 'SwiftShader quantizes x for Q8_0 only').toBe(format === 'q8_0' ? 1 : 0);
      const rows = ref.linear(got.int8[0] === 1 ? ref.quantizeActivations(x) : x, w.rounded, k, n, bias);
      const want = new Float64Array(RING * n).fill(SENTINEL);
      for (let t = 0; t < nTokens; t++) want.set(rows.subarray(t * n, (t + 1) * n), ((pos0 + t) % RING) * n);
      expectClose(got.y, want, { abs: 1e-4, rel: 1e-4 }, `linear into the ring (${path})`);
    });
  }

  /**
   * Attention with the options the families use, on the full cache (rows by position, 3 junk rows
   * past the last) and, with a window, on the tightest ring (window + n_tokens - 1 rows, positions
   * past the wrap); both must equal the twin over the full cache, and each other exactly. Heads of 64 and 128 take
   * attention_subgroup.wgsl on SwiftShader by default; gpuPaths gives them attention.wgsl.
   */
  interface AttentionCase { nTokens: number; pos0: number; nHeads: number; nKvHeads: number; headDim: number; window?: number; softcap?: number; scale?: number; gpuPaths?: boolean; qScale?: number }
  const attentionCases: AttentionCase[] = [
    // A prefill chunk crossing the window's edge: queries at 10..15 see 3..10 up to 8..15.
    { nTokens: 6, pos0: 10, nHeads: 4, nKvHeads: 2, headDim: 24, window: 8 },
    { nTokens: 6, pos0: 10, nHeads: 4, nKvHeads: 2, headDim: 64, window: 8 },
    { nTokens: 6, pos0: 10, nHeads: 4, nKvHeads: 2, headDim: 64, window: 8, gpuPaths: true },
    { nTokens: 5, pos0: 9, nHeads: 2, nKvHeads: 1, headDim: 128, window: 4 },
    // A window longer than the generic kernel's chunk of 64, and decode far past the ring's wrap.
    { nTokens: 3, pos0: 150, nHeads: 3, nKvHeads: 1, headDim: 70, window: 100 },
    { nTokens: 1, pos0: 90, nHeads: 4, nKvHeads: 4, headDim: 64, window: 7 },
    { nTokens: 1, pos0: 90, nHeads: 4, nKvHeads: 4, headDim: 64, window: 7, gpuPaths: true },
    // A window wider than the context so far: all of it, as without one.
    { nTokens: 4, pos0: 2, nHeads: 2, nKvHeads: 2, headDim: 64, window: 4096 },
    // Soft-capped scores (Gemma 2: cap 50 there; 2 here, with scores well past it) and a custom scale.
    { nTokens: 4, pos0: 9, nHeads: 4, nKvHeads: 2, headDim: 24, softcap: 2, qScale: 8 },
    { nTokens: 4, pos0: 9, nHeads: 4, nKvHeads: 2, headDim: 64, softcap: 2, qScale: 8 },
    { nTokens: 4, pos0: 9, nHeads: 4, nKvHeads: 2, headDim: 64, softcap: 2, qScale: 8, gpuPaths: true },
    { nTokens: 3, pos0: 20, nHeads: 2, nKvHeads: 1, headDim: 128, scale: 0.0625 },
    { nTokens: 3, pos0: 20, nHeads: 2, nKvHeads: 1, headDim: 40, scale: 0.3 },
    // All three together, as Gemma 2's local layers.
    { nTokens: 5, pos0: 12, nHeads: 4, nKvHeads: 2, headDim: 64, window: 6, softcap: 3, scale: 0.2, qScale: 4 },
    { nTokens: 5, pos0: 12, nHeads: 4, nKvHeads: 2, headDim: 64, window: 6, softcap: 3, scale: 0.2, qScale: 4, gpuPaths: true },
  ];
  for (const c of attentionCases) {
    const { nTokens, pos0, nHeads, nKvHeads, headDim, window, softcap, scale, gpuPaths } = c;
    const what = [window && `window ${window}`, softcap && `softcap ${softcap}`, scale && `scale ${scale}`, gpuPaths ? 'GPU path' : 'default'].filter(Boolean).join(', ');
    it(`attention: ${nTokens} tokens at pos ${pos0}, ${nHeads}/${nKvHeads} heads of ${headDim}, ${what}`, async () => {
      const positions = pos0 + nTokens, kvWidth = nKvHeads * headDim;
      const q = asF32(ref.randomArray(nTokens * nHeads * headDim, 67, c.qScale ?? 1));
      const kFull = asF32(ref.randomArray((positions + 3) * kvWidth, 68));
      const vFull = asF32(ref.randomArray((positions + 3) * kvWidth, 69));
      const shape = { nHeads, nKvHeads, headDim, ...(window ? { window } : {}), ...(softcap ? { softcap } : {}), ...(scale ? { scale } : {}) };
      const want = ref.attention(q, kFull, vFull, shape, pos0);
      const tol = { abs: 1e-5, rel: 1e-4 };
      const options = { ...shape, ...(gpuPaths ? { gpuPaths } : {}) };
      const full = await runKernel({
        op: 'attention', nTokens, pos0, inputs: { q: f32(q), kCache: f32(kFull), vCache: f32(vFull) },
        outputs: { out: q.length }, options: { ...options, cacheRows: positions + 3 },
      });
      expectClose(full.out, want, tol, 'attention over the full cache');
      if (window && window + nTokens - 1 < positions) {
        const rows = window + nTokens - 1;
        const got = await runKernel({
          op: 'attention', nTokens, pos0,
          inputs: { q: f32(q), kCache: f32(ring(kFull, kvWidth, positions, rows)), vCache: f32(ring(vFull, kvWidth, positions, rows)) },
          outputs: { out: q.length }, options: { ...options, cacheRows: rows },
        });
        expectClose(got.out, want, tol, `attention over a ring of ${rows} rows`);
        // The same keys in the same order, only at other rows: the very same result.
        expectClose(got.out, full.out, { abs: 0, rel: 0 }, 'ring and full cache alike');
      }
    });
  }

  it('the twin masks as llama.cpp: a window of 1 sees only the query\'s own position', () => {
    const hd = 4, q = ref.randomArray(2 * hd, 70), k = ref.randomArray(5 * hd, 71), v = ref.randomArray(5 * hd, 72);
    const out = ref.attention(q, k, v, { nHeads: 1, nKvHeads: 1, headDim: hd, window: 1 }, 3);
    expect(Array.from(out)).toEqual(rowsOf(v, [3, 4], hd));
  });

  it('attention refuses a cache of no rows and a negative softcap with BAD_ARGUMENT', async () => {
    const base: KernelSpec = {
      op: 'attention', nTokens: 1, pos0: 0, inputs: { q: new Array(8).fill(0), kCache: new Array(8).fill(0), vCache: new Array(8).fill(0) },
      outputs: { out: 8 }, options: { nHeads: 1, nKvHeads: 1, headDim: 8 },
    };
    await expect(runKernel({ ...base, options: { ...base.options, cacheRows: 0 } })).rejects.toThrow(/BAD_ARGUMENT|row count/);
    await expect(runKernel({ ...base, options: { ...base.options, softcap: -1 } })).rejects.toThrow(/BAD_ARGUMENT|softcap >= 0/);
  });
});
