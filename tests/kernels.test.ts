/**
 * Every WGSL kernel against its float64 CPU twin (tests/kernels/reference.ts), in Chromium's
 * WebGPU (SwiftShader here), on shapes that are not multiples of the tile or workgroup sizes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { GGMLType } from '../src/model/gguf.ts';
import { ATTENTION_SPLIT, type KvCacheType, type WeightFormat } from '../src/kernels/ops.ts';
import type { KernelSpec } from './kernels/harness.ts';
import * as ref from './kernels/reference.ts';
import { asF32, expectClose, f32, packKvCache, packQuantized, packWeight } from './kernels/check.ts';
import { regroupQ5_0, regroupQ6_K } from '../src/model/regroup.ts';

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

describe('kernels match their CPU twins', () => {
  for (const format of ['f32', 'f16', 'bf16'] as const) {
    it(`embedding (${format}) gathers rows`, async () => {
      const rows = 37, cols = 45;
      const table = packWeight(ref.randomArray(rows * cols, 1), format);
      const tokens = [5, 0, 36, 5, 17];
      const got = await runKernel({
        op: 'embedding', nTokens: tokens.length, pos0: 0, inputs: { tokens },
        weights: { W: { words: table.words, format, rows, cols } }, outputs: { out: tokens.length * cols },
      });
      expectClose(got.out, ref.embedding(table.rounded, cols, tokens), { abs: 0, rel: 0 }, 'embedding');
    });

    // Prefill (matmul) for several token counts around the 16-wide tile; decode (matvec) for one,
    // with each invocation on whole rows (CPU adapters) and with 16 sharing a row (GPUs).
    // k a multiple of 16 with the default: four rows per invocation on CPU adapters (matvec_rows.wgsl).
    for (const [nTokens, k, n, threadsPerRow] of [[1, 67, 45, 1], [1, 67, 45, 16], [1, 300, 131, 1], [1, 300, 131, 16], [1, 67, 45, 0], [1, 300, 131, 0], [5, 67, 45, 0], [17, 70, 33, 0], [33, 129, 19, 0],
      [1, 64, 45, 0], [5, 96, 37, 0], [3, 320, 131, 0]]) {
      // 0: the adapter's default (one subgroup per row where subgroups exist, as on SwiftShader).
      it(`linear (${format}) ${nTokens} x ${k} -> ${n}, ${threadsPerRow ? `${threadsPerRow} per row` : 'default'}`, async () => {
        const x = asF32(ref.randomArray(nTokens * k, 2));
        const w = packWeight(ref.randomArray(n * k, 3), format);
        const got = await runKernel({
          op: 'linear', nTokens, pos0: 0, inputs: { x: f32(x) },
          weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: nTokens * n },
          options: threadsPerRow ? { threadsPerRow, ...(threadsPerRow === 16 ? TILED : {}) } : {},
        });
        expectClose(got.y, ref.linear(x, w.rounded, k, n), { abs: 1e-4, rel: 1e-4 }, 'linear');
      });
    }

    // The adapter's default (one subgroup per row on SwiftShader) and the GPU path (a workgroup of 64, barriers).
    for (const gpuPaths of [false, true]) {
      it(`rmsnorm (${format}) per row and last row only, ${gpuPaths ? 'GPU path' : 'default'}`, async () => {
        const nTokens = 3, n = 77, eps = 1e-5;
        const x = asF32(ref.randomArray(nTokens * n, 4, 3));
        const w = packWeight(ref.randomArray(n, 5), format);
        const weights = { W: { words: w.words, format, rows: 1, cols: n } };
        const want = ref.rmsnorm(x, w.rounded, eps);
        const all = await runKernel({ op: 'rmsnorm', nTokens, pos0: 0, inputs: { x: f32(x) }, weights, outputs: { out: nTokens * n }, options: { eps, gpuPaths } });
        expectClose(all.out, want, { abs: 1e-5, rel: 1e-5 }, 'rmsnorm');
        const last = await runKernel({ op: 'rmsnorm', nTokens, pos0: 0, inputs: { x: f32(x) }, weights, outputs: { out: n }, options: { eps, lastRow: true, gpuPaths } });
        expectClose(last.out, want.subarray((nTokens - 1) * n), { abs: 1e-5, rel: 1e-5 }, 'rmsnorm last row');
      });
    }
  }

  // Block formats: rows of 1 to 5 blocks, odd row counts; for 34-, 18-, 22- and 210-byte blocks
  // most blocks (and rows) start off a word boundary.
  const QUANT: [WeightFormat, ref.QuantType][] = [
    ['q8_0', GGMLType.Q8_0], ['q4_0', GGMLType.Q4_0], ['q4_1', GGMLType.Q4_1], ['q5_0', GGMLType.Q5_0],
    ['q5_1', GGMLType.Q5_1], ['q4_k', GGMLType.Q4_K], ['q6_k', GGMLType.Q6_K], ['q5_k', GGMLType.Q5_K],
    ['q3_k', GGMLType.Q3_K], ['q2_k', GGMLType.Q2_K], ['iq4_nl', GGMLType.IQ4_NL], ['iq4_xs', GGMLType.IQ4_XS],
  ];
  for (const [format, type] of QUANT) {
    const qk = ref.QUANT_BLOCKS[type][0];
    it(`embedding (${format}) gathers and decodes rows`, async () => {
      const rows = 7, cols = 2 * qk;
      const table = packQuantized(ref.randomArray(rows * cols, 21), type);
      const tokens = [3, 0, 6, 3];
      const got = await runKernel({
        op: 'embedding', nTokens: tokens.length, pos0: 0, inputs: { tokens },
        weights: { W: { words: table.words, format, rows, cols } }, outputs: { out: tokens.length * cols },
      });
      expectClose(got.out, ref.embedding(table.rounded, cols, tokens), { abs: 1e-6, rel: 1e-6 }, `embedding ${format}`);
    });

    const blocks = qk === 32 ? 5 : 2;
    // Several tokens: 1 per row runs the matvec over the tokens (CPU adapters), 16 the tiled matmul (forced: TILED).
    // 0: the adapter's default (one subgroup per row where subgroups exist, as on SwiftShader).
    const shapes = [[1, blocks * qk, 37, 1], [1, blocks * qk, 37, 16], [1, qk, 9, 16], [1, blocks * qk, 37, 0], [5, blocks * qk, 37, 0], [5, blocks * qk, 37, 1], [5, blocks * qk, 37, 16], [17, qk, 19, 1], [17, qk, 19, 16]];
    // The adapter's default on whole pairs of 32-blocks or whole 256-blocks: on SwiftShader, int8
    // activations (matvec_int8.wgsl), with rows past a multiple of 4 and Q6_K blocks off a word.
    const int8Shapes = qk === 32 ? [[1, 192, 37, 0], [5, 128, 9, 0], [3, 64, 6, 0]] : [[1, 512, 37, 0], [4, 768, 13, 0]];
    for (const [nTokens, k, n, threadsPerRow] of [...shapes, ...int8Shapes]) {
      it(`linear (${format}) ${nTokens} x ${k} -> ${n}, ${threadsPerRow ? `${threadsPerRow} per row` : 'default'}`, async () => {
        const x = asF32(ref.randomArray(nTokens * k, 22));
        const w = packQuantized(ref.randomArray(n * k, 23), type);
        const got = await runKernel({
          op: 'linear', nTokens, pos0: 0, inputs: { x: f32(x) },
          weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: nTokens * n },
          options: threadsPerRow ? { threadsPerRow, ...(threadsPerRow === 16 ? TILED : {}) } : {},
        });
        // The int8 path's twin quantizes x as quantize_x.wgsl does; the sums are then exact.
        const int8 = got.int8[0] === 1;
        expectClose(got.y, ref.linear(int8 ? ref.quantizeActivations(x) : x, w.rounded, k, n), { abs: 1e-4, rel: 1e-4 }, `linear ${format}${int8 ? ' (int8 activations)' : ''}`);
        if (threadsPerRow === 0 && k % (qk === 32 ? 64 : 256) === 0 && !['q4_1', 'q5_1'].includes(format)) {
          expect(int8, 'SwiftShader takes the int8 path for this shape').toBe(true);
        }
      });
    }
  }

  // matvec_int8.wgsl keeps several products in one 32-bit sum, exact only within stated bounds. Equal
  // weights put every quant at the format's signed extreme (Q8_0 -127, Q4_0 -8, Q5_0 -16, Q6_K -32,
  // Q3_K -4, IQ4_NL / IQ4_XS the table's -127); ones with a zero in each 32 put Q4_K's, Q5_K's and
  // Q2_K's unsigned quants at their top (15, 31, 3: Q5_K's signed 15), minus ones with a zero in each
  // 32 put Q5_K's at 0 (signed -16); equal x of either sign puts every activation at +-127: the
  // largest sums those bounds must hold.
  for (const [format, type] of QUANT.filter(([f]) => !['q4_1', 'q5_1'].includes(f))) {
    it(`linear (${format}) with int8 activations is exact at the extremes of weights and x`, async () => {
      const k = 512, n = 9;
      for (const pattern of ['equal', 'ones', 'minus ones'] as const) {
        const one = pattern === 'ones' ? 1 : -1;
        const values = new Float64Array(n * k).map((_, i) => (pattern === 'equal' ? -1 : i % 32 === 0 ? 0 : one));
        await expectExactAtExtremes(format, packQuantized(values, type), k, n, `${pattern} weights`);
      }
    });
  }

  /** A linear of weights `w` [n, k] is exact with int8 activations for x all 1, then all -1 (each quantized to +-127). */
  async function expectExactAtExtremes(format: WeightFormat, w: { words: number[]; rounded: Float64Array }, k: number, n: number, what: string): Promise<void> {
    for (const sign of [1, -1]) {
      const x = new Float64Array(k).fill(sign);
      const got = await runKernel({
        op: 'linear', nTokens: 1, pos0: 0, inputs: { x: f32(x) },
        weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: n },
      });
      expect(got.int8[0], 'SwiftShader takes the int8 path for this shape').toBe(1);
      expectClose(got.y, ref.linear(ref.quantizeActivations(x), w.rounded, k, n), { abs: 1e-4, rel: 1e-5 }, `linear ${format} at the extremes, ${what}, x = ${sign}`);
    }
  }

  // Q5_0R and Q6_KR: Q5_0 and Q6_K regrouped at load for the int8 path (src/model/regroup.ts).
  // Their twin is the format they came from, so a misplaced quant in the regrouping or in either
  // decoder (embedding's w_load, matvec_int8's pairs) shows as a mismatch; the spare bits carry
  // elements 57, 59, 61 and 63 of each Q5_0R pair and sub-blocks 6, 7 of each Q6_KR half block.
  const REGROUPED = [
    { format: 'q5_0r', type: GGMLType.Q5_0, regroup: regroupQ5_0, unit: 64 },
    { format: 'q6_kr', type: GGMLType.Q6_K, regroup: regroupQ6_K, unit: 512 },
  ] as const;
  for (const { format, type, regroup, unit } of REGROUPED) {
    describe(`${format.toUpperCase()} (${format.slice(0, -1).toUpperCase()} regrouped)`, () => {
      const regrouped = (values: Float64Array) => {
        const bytes = ref.quantize(values, type);
        return { words: Array.from(new Uint32Array(regroup(bytes).buffer)), rounded: ref.dequantize(bytes, type, values.length) };
      };
      it('embedding gathers and decodes rows', async () => {
        const rows = 7, cols = 3 * unit;
        const table = regrouped(ref.randomArray(rows * cols, 41));
        const tokens = [3, 0, 6, 3];
        const got = await runKernel({
          op: 'embedding', nTokens: tokens.length, pos0: 0, inputs: { tokens },
          weights: { W: { words: table.words, format, rows, cols } }, outputs: { out: tokens.length * cols },
        });
        expectClose(got.out, ref.embedding(table.rounded, cols, tokens), { abs: 1e-6, rel: 1e-6 }, `embedding ${format}`);
      });
      for (const [nTokens, k, n] of [[1, 3 * unit, 37], [5, 2 * unit, 9], [3, unit, 6]]) {
        it(`linear ${nTokens} x ${k} -> ${n}, int8 activations`, async () => {
          const x = asF32(ref.randomArray(nTokens * k, 42));
          const w = regrouped(ref.randomArray(n * k, 43));
          const got = await runKernel({
            op: 'linear', nTokens, pos0: 0, inputs: { x: f32(x) },
            weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: nTokens * n },
          });
          expect(got.int8[0]).toBe(1);
          expectClose(got.y, ref.linear(ref.quantizeActivations(x), w.rounded, k, n), { abs: 1e-4, rel: 1e-4 }, `linear ${format}`);
        });
      }
      it('linear is exact at the extremes of weights and x', async () => {
        const k = Math.max(512, unit), n = 9;
        await expectExactAtExtremes(format, regrouped(new Float64Array(n * k).fill(-1)), k, n, 'equal weights');
      });
      it('is refused where linears read f32 activations', async () => {
        const spec: KernelSpec = {
          op: 'linear', nTokens: 1, pos0: 0, inputs: { x: new Array(unit).fill(0) },
          weights: { W: { words: new Array(unit).fill(0), format, rows: 1, cols: unit } }, outputs: { y: 1 }, options: { gpuPaths: true },
        };
        await expect(runKernel(spec)).rejects.toThrow(/int8 activations only/);
      });
    });
  }

  it('a block-format weight whose rows are not whole blocks is refused with BAD_MODEL_FILE', async () => {
    const spec: KernelSpec = {
      op: 'linear', nTokens: 1, pos0: 0, inputs: { x: new Array(300).fill(0) },
      weights: { W: { words: new Array(64).fill(0), format: 'q4_k', rows: 1, cols: 300 } }, outputs: { y: 1 },
    };
    await expect(runKernel(spec)).rejects.toThrow(/BAD_MODEL_FILE|not a whole number of 256-element blocks/);
  });

  // Several tokens through the matvec with 1 per row; and the adapter's default, which on CPU
  // adapters is matvec_rows.wgsl (f32) and matvec_int8.wgsl (q8_0, int8 activations).
  for (const format of ['f32', 'q8_0'] as const) {
    for (const threadsPerRow of [1, 0]) {
      it(`linear (${format}) with bias, and writing rows at pos0 (V into the KV cache), ${threadsPerRow ? '1 per row' : 'default'}`, async () => {
        const nTokens = 3, k = format === 'f32' ? 48 : 64, n = 24, pos0 = 5;
        const x = asF32(ref.randomArray(nTokens * k, 6));
        const w = format === 'f32' ? packWeight(ref.randomArray(n * k, 7), 'f32') : packQuantized(ref.randomArray(n * k, 7), GGMLType.Q8_0);
        const bias = asF32(ref.randomArray(n, 8));
        for (const tokens of [nTokens, 1]) {
          const got = await runKernel({
            op: 'linear', nTokens: tokens, pos0, inputs: { x: f32(x), bias: f32(bias) },
            weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: (pos0 + tokens) * n },
            options: { cacheRows: pos0 + tokens, ...(threadsPerRow ? { threadsPerRow, ...(threadsPerRow === 16 ? TILED : {}) } : {}) },
          });
          const want = ref.linear(got.int8[0] === 1 ? ref.quantizeActivations(x) : x, w.rounded, k, n, bias);
          expectClose(got.y.slice(0, pos0 * n), new Float64Array(pos0 * n), { abs: 0, rel: 0 }, 'rows before pos0 untouched');
          expectClose(got.y.slice(pos0 * n), want.subarray(0, tokens * n), { abs: 1e-4, rel: 1e-4 }, `linear+bias at pos0 (${tokens} tokens)`);
        }
      });
    }
  }

  // A stacked weight (q, k and v; gate and up) in one dispatch: each part's rows land in its own
  // output, the last part's at pos0 + t when asked, on every path: the f32 matvec (1 per row), the
  // tiled matmul (16 per row, several tokens), and the adapter's default (matvec_rows.wgsl for f32,
  // matvec_int8.wgsl for the block formats on SwiftShader, one token and TOKENS4). Part boundaries
  // fall inside an invocation's four rows.
  const stackCases: [WeightFormat, number, number][] = [['f32', 64, 1], ['f32', 64, 16], ['f32', 64, 0], ['q8_0', 64, 1], ['q8_0', 128, 0], ['q5_0', 128, 0], ['q4_k', 256, 0]];
  for (const [format, k, threadsPerRow] of stackCases) {
    for (const parts of [[20, 9, 11], [13, 6]]) {
      it(`linear (${format}) of ${parts.length} stacked parts [${parts.join(', ')}], bias, last part at pos0, ${threadsPerRow ? `${threadsPerRow} per row` : 'default'}`, async () => {
        const n = parts.reduce((a, b) => a + b, 0), pos0 = 2;
        const type = { f32: GGMLType.F32, q8_0: GGMLType.Q8_0, q5_0: GGMLType.Q5_0, q4_k: GGMLType.Q4_K }[format as string]!;
        const w = format === 'f32' ? packWeight(ref.randomArray(n * k, 31), 'f32') : packQuantized(ref.randomArray(n * k, 31), type as ref.QuantType);
        const bias = asF32(ref.randomArray(n, 32));
        for (const nTokens of [1, 5]) {
          const x = asF32(ref.randomArray(nTokens * k, 33));
          const outputs = Object.fromEntries(parts.map((rows, i) => [`y${i}`, (i === parts.length - 1 ? pos0 + nTokens : nTokens) * rows]));
          const got = await runKernel({
            op: 'linear', nTokens, pos0, inputs: { x: f32(x), bias: f32(bias) },
            weights: { W: { words: w.words, format, rows: n, cols: k, parts } }, outputs,
            options: { cacheRows: pos0 + nTokens, ...(threadsPerRow ? { threadsPerRow, ...(threadsPerRow === 16 ? TILED : {}) } : {}) },
          });
          const full = ref.linear(got.int8[0] === 1 ? ref.quantizeActivations(x) : x, w.rounded, k, n, bias);
          let first = 0;
          parts.forEach((rows, i) => {
            const last = i === parts.length - 1;
            const want = new Float64Array((last ? pos0 + nTokens : nTokens) * rows);
            for (let t = 0; t < nTokens; t++) {
              for (let r = 0; r < rows; r++) want[((last ? pos0 : 0) + t) * rows + r] = full[t * n + first + r];
            }
            expectClose(got[`y${i}`], want, { abs: 1e-4, rel: 1e-4 }, `part ${i} of [${parts.join(', ')}], ${nTokens} tokens`);
            first += rows;
          });
        }
      });
    }
  }

  // matmul.wgsl, the register-tiled prefill of GPUs (a workgroup tile of 32 tokens x 32 rows, 4 x 4
  // per invocation, k in chunks of 32), forced here since SwiftShader prefills through its own
  // kernels (1 per row: its decode matvec is then one the tests above compiled already): token and row
  // counts off the tile, k off the chunk and, for F32, off a quad (x read a float at a time), one
  // token (its op encoded for 2, so the tiled kernel runs with the step's single token), and blocks
  // starting off a word (Q8_0, Q6_K). The formats are the common ones; the tests above run every
  // format through the tiled matmul too (16 per row), on fewer shapes.
  describe('tiled matmul (prefill on GPUs)', () => {
    const formats: [WeightFormat, number[][]][] = [
      ['f32', [[5, 67, 45], [13, 320, 131], [1, 70, 33], [34, 96, 7]]],
      ['f16', [[5, 68, 45], [13, 320, 131], [1, 72, 33], [34, 96, 7]]],
      ['q8_0', [[5, 64, 45], [13, 320, 131], [1, 32, 33], [34, 96, 7]]],
      ['q4_k', [[5, 512, 45], [13, 256, 131], [1, 256, 33], [34, 256, 7]]],
      ['q6_k', [[5, 512, 45], [13, 256, 131], [1, 256, 33], [34, 256, 7]]],
    ];
    for (const [format, shapes] of formats) {
      it(`linear (${format}) on odd shapes`, async () => {
        for (const [nTokens, k, n] of shapes) {
          const x = asF32(ref.randomArray(nTokens * k, 51));
          const values = ref.randomArray(n * k, 52);
          const w = format === 'f32' || format === 'f16' ? packWeight(values, format) : packQuantized(values, QUANT.find(([f]) => f === format)![1]);
          const got = await runKernel({
            op: 'linear', nTokens, encodeTokens: Math.max(2, nTokens), pos0: 0, inputs: { x: f32(x) },
            weights: { W: { words: w.words, format, rows: n, cols: k } }, outputs: { y: nTokens * n }, options: { tiledMatmul: true, threadsPerRow: 1 },
          });
          expectClose(got.y, ref.linear(x, w.rounded, k, n), { abs: 1e-4, rel: 1e-4 }, `tiled ${format} ${nTokens} x ${k} -> ${n}`);
        }
      });
    }

    // Bias and three stacked parts (q, k, v), the last into a KV cache ring of 40 rows that the tokens wrap around.
    it('linear (q8_0) of stacked parts [20, 9, 11], bias, the last part into a ring', async () => {
      const parts = [20, 9, 11], k = 160, n = 40, nTokens = 35, pos0 = 30, cacheRows = 40;
      const w = packQuantized(ref.randomArray(n * k, 53), GGMLType.Q8_0);
      const bias = asF32(ref.randomArray(n, 54));
      const x = asF32(ref.randomArray(nTokens * k, 55));
      const outputs = { y0: nTokens * parts[0], y1: nTokens * parts[1], y2: cacheRows * parts[2] };
      const got = await runKernel({
        op: 'linear', nTokens, pos0, inputs: { x: f32(x), bias: f32(bias) },
        weights: { W: { words: w.words, format: 'q8_0', rows: n, cols: k, parts } }, outputs, options: { cacheRows, tiledMatmul: true, threadsPerRow: 1 },
      });
      const full = ref.linear(x, w.rounded, k, n, bias);
      let first = 0;
      parts.forEach((rows, i) => {
        const last = i === parts.length - 1;
        const want = new Float64Array((last ? cacheRows : nTokens) * rows);
        // Tokens 0..9 land on rows 30..39, 10..34 on rows 0..24; rows 25..29 stay 0.
        for (let t = 0; t < nTokens; t++) {
          const at = last ? (pos0 + t) % cacheRows : t;
          for (let r = 0; r < rows; r++) want[at * rows + r] = full[t * n + first + r];
        }
        expectClose(got[`y${i}`], want, { abs: 1e-4, rel: 1e-4 }, `part ${i} of [${parts.join(', ')}]`);
        first += rows;
      });
    });
  });

  for (const neox of [false, true]) {
    it(`rope (${neox ? 'neox' : 'adjacent pairs'}) in place and into the cache, partial rotary dims`, async () => {
      const nTokens = 3, nHeads = 3, headDim = 12, ropeDim = 8, pos0 = 7, thetaBase = 10000;
      const shape = { nHeads, headDim, ropeDim, thetaBase, neox };
      const x = asF32(ref.randomArray(nTokens * nHeads * headDim, 9));
      const want = ref.rope(x, shape, pos0);
      const options = { ...shape };
      const inPlace = await runKernel({ op: 'rope', nTokens, pos0, inputs: { x: f32(x) }, outputs: { x: x.length }, options });
      // WGSL lets sin/cos be off by 2^-11 absolute (SwiftShader uses that room); the bound follows it.
      const tol = { abs: 2e-6, rel: 1e-5 };
      expectClose(inPlace.x, want, tol, 'rope in place');
      const width = nHeads * headDim;
      const cached = await runKernel({
        op: 'rope', nTokens, pos0, inputs: { x: f32(x), cache: new Array((pos0 + nTokens) * width).fill(0) },
        outputs: { cache: (pos0 + nTokens) * width }, options,
      });
      expectClose(cached.cache.slice(pos0 * width), want, tol, 'rope into cache');
    });
  }

  // Heads of 64 and 128 take attention_subgroup.wgsl on CPU adapters (SwiftShader here).
  for (const [nTokens, pos0, nHeads, nKvHeads, headDim] of [[1, 0, 4, 2, 8], [1, 150, 6, 2, 24], [5, 0, 8, 4, 8], [7, 60, 3, 1, 70], [2, 3, 2, 2, 130],
    [1, 0, 3, 1, 64], [1, 37, 9, 3, 64], [6, 20, 4, 4, 64], [1, 70, 4, 2, 128], [3, 5, 2, 1, 128]]) {
    it(`attention: ${nTokens} tokens at pos ${pos0}, ${nHeads}/${nKvHeads} heads of ${headDim}`, async () => {
      const ctx = pos0 + nTokens + 3; // rows past the causal limit hold junk that must be ignored
      const q = asF32(ref.randomArray(nTokens * nHeads * headDim, 10));
      const kCache = asF32(ref.randomArray(ctx * nKvHeads * headDim, 11));
      const vCache = asF32(ref.randomArray(ctx * nKvHeads * headDim, 12));
      const got = await runKernel({
        op: 'attention', nTokens, pos0, inputs: { q: f32(q), kCache: f32(kCache), vCache: f32(vCache) },
        outputs: { out: q.length }, options: { nHeads, nKvHeads, headDim },
      });
      expectClose(got.out, ref.attention(q, kCache, vCache, { nHeads, nKvHeads, headDim }, pos0), { abs: 1e-5, rel: 1e-4 }, 'attention');
    });
  }

  /**
   * Split decode attention (flash-decoding): one query over contexts that are not multiples of the
   * chunk, in every KV form, with GQA, a window over a ring, soft-capping, heads up to 256, on the
   * kernels for CPU adapters (heads of 64 and 128 on SwiftShader: attention_group.wgsl for groups of
   * 2, 3, 4 and 5 query heads per KV head, attention_subgroup.wgsl for one) and the workgroup one
   * (heads of 96, 256). splitChunk 64 splits
   * from one chunk on (minChunks 1), as a split chunk of 256 does (ATTENTION_SPLIT's, which GPUs
   * take from 3 chunks on and CPU adapters not at all by default).
   */
  interface SplitCase { positions: number; nHeads: number; nKvHeads: number; headDim: number; kv: KvCacheType; chunk: number; window?: number; softcap?: number }
  const splitCases: SplitCase[] = [
    { positions: 1, nHeads: 5, nKvHeads: 1, headDim: 64, kv: 'f32', chunk: 64 },
    { positions: 255, nHeads: 6, nKvHeads: 2, headDim: 64, kv: 'f16', chunk: 64, softcap: 2 },
    { positions: 200, nHeads: 2, nKvHeads: 2, headDim: 64, kv: 'f16', chunk: 64 },
    { positions: 700, nHeads: 4, nKvHeads: 1, headDim: 64, kv: 'f16', chunk: 256, window: 600 },
    { positions: 257, nHeads: 4, nKvHeads: 2, headDim: 128, kv: 'q8_0', chunk: 64 },
    { positions: 257, nHeads: 4, nKvHeads: 2, headDim: 96, kv: 'q8_0', chunk: 64, softcap: 2 },
    { positions: 300, nHeads: 2, nKvHeads: 1, headDim: 256, kv: 'f16', chunk: 64 },
  ];
  for (const c of splitCases) {
    const { positions, nHeads, nKvHeads, headDim, kv, chunk, window, softcap } = c;
    const what = [kv, chunk ? `chunks of ${chunk}` : 'default chunks', window && `window ${window}`, softcap && `softcap ${softcap}`].filter(Boolean).join(', ');
    it(`split decode attention: ${positions} positions, ${nHeads}/${nKvHeads} heads of ${headDim}, ${what}`, async () => {
      const width = nKvHeads * headDim, pos0 = positions - 1;
      const q = asF32(ref.randomArray(nHeads * headDim, 100, softcap ? 8 : 1));
      const k = asF32(ref.randomArray(positions * width, 101));
      const v = asF32(ref.randomArray(positions * width, 102));
      // A window's layer keeps a ring of window rows (decode: window + 1 - 1); row r holds the last position j with j % rows = r.
      const rows = window ? window : positions;
      const ring = (full: Float64Array) => {
        const out = new Float64Array(rows * width);
        for (let j = 0; j < positions; j++) out.set(full.subarray(j * width, (j + 1) * width), (j % rows) * width);
        return out;
      };
      const byPosition = (inRing: Float64Array) => {
        const out = new Float64Array(positions * width);
        for (let j = Math.max(0, positions - rows); j < positions; j++) out.set(inRing.subarray((j % rows) * width, (j % rows + 1) * width), j * width);
        return out;
      };
      const kc = kv === 'f32' ? { words: [], rounded: ring(k) } : packKvCache(ring(k), width, kv);
      const vc = kv === 'f32' ? { words: [], rounded: ring(v) } : packKvCache(ring(v), width, kv);
      const shape = { nHeads, nKvHeads, headDim, ...(window ? { window } : {}), ...(softcap ? { softcap } : {}) };
      const want = ref.attention(q, byPosition(kc.rounded), byPosition(vc.rounded), shape, pos0);
      const caches: Pick<KernelSpec, 'inputs' | 'words'> = kv === 'f32' ? { inputs: { q: f32(q), kCache: f32(kc.rounded), vCache: f32(vc.rounded) } } : { inputs: { q: f32(q) }, words: { kCache: kc.words, vCache: vc.words } };
      const got = await runKernel({
        op: 'attention', nTokens: 1, pos0, kvCache: kv, ...caches, outputs: { out: q.length },
        options: { ...shape, cacheRows: rows, ...(chunk ? { splitChunk: chunk } : {}) },
      });
      expectClose(got.out, want, { abs: 1e-5, rel: 1e-4 }, 'split attention');
      // It did split: partials per (head, chunk), or on CPU adapters per (up to 4 heads of a KV head, chunk), then one reduction per head.
      const chunks = Math.ceil(Math.min(positions, window ?? positions) / (chunk || ATTENTION_SPLIT.chunk));
      const group = nHeads / nKvHeads;
      const grouped = got.cpuSubgroups[0] === 1 && (headDim === 64 || headDim === 128) && group > 1;
      expect(got.dispatches).toEqual([grouped ? nKvHeads * Math.ceil(group / 4) : nHeads, chunks, 1, nHeads, 1, 1]);
    });
  }

  it('attention below ATTENTION_SPLIT.minChunks chunks, and in prefill, keeps one workgroup per (head, token)', async () => {
    const nHeads = 2, headDim = 64, positions = (ATTENTION_SPLIT.minChunks - 1) * ATTENTION_SPLIT.chunk;
    const kCache = asF32(ref.randomArray(positions * headDim, 103));
    const vCache = asF32(ref.randomArray(positions * headDim, 104));
    for (const nTokens of [1, 3]) {
      const q = asF32(ref.randomArray(nTokens * nHeads * headDim, 105));
      const pos0 = positions - nTokens;
      const got = await runKernel({
        op: 'attention', nTokens, pos0, inputs: { q: f32(q), kCache: f32(kCache), vCache: f32(vCache) }, outputs: { out: q.length },
        options: { nHeads, nKvHeads: 1, headDim, cacheRows: positions + ATTENTION_SPLIT.chunk },
      });
      expectClose(got.out, ref.attention(q, kCache, vCache, { nHeads, nKvHeads: 1, headDim }, pos0), { abs: 1e-5, rel: 1e-4 }, 'attention');
      expect(got.dispatches).toEqual([nHeads, nTokens, 1]);
    }
  });

  it('swiglu and residual add over [n_tokens, width]', async () => {
    const nTokens = 3, width = 301;
    const a = asF32(ref.randomArray(nTokens * width, 13, 4));
    const b = asF32(ref.randomArray(nTokens * width, 14, 4));
    const s = await runKernel({ op: 'swiglu', nTokens, pos0: 0, inputs: { gate: f32(a), up: f32(b) }, outputs: { gate: a.length }, options: { width } });
    expectClose(s.gate, ref.swiglu(a, b), { abs: 1e-5, rel: 1e-5 }, 'swiglu');
    const r = await runKernel({ op: 'add', nTokens, pos0: 0, inputs: { x: f32(a), y: f32(b) }, outputs: { x: a.length }, options: { width } });
    expectClose(r.x, ref.add(a, b), { abs: 1e-6, rel: 0 }, 'add');
  });

  it('argmax finds the largest logit, first index on ties', async () => {
    const n = 50_001;
    const logits = asF32(ref.randomArray(n, 15, 10));
    logits[31_337] = 50;
    logits[40_000] = 50;
    const got = await runKernel({ op: 'argmax', nTokens: 1, pos0: 0, inputs: { logits: f32(logits) }, outputs: { result: 2 }, options: { n } });
    expect(got.result).toEqual([31_337, 0]); // the id, and no NaN or Inf
    expect(ref.argmax(logits)).toBe(31_337);
  });

  it('argmax under a grammar mask picks the largest allowed logit, NONE when nothing is allowed', async () => {
    const n = 1_001; // not a multiple of 32: the last mask word is partial
    const logits = asF32(ref.randomArray(n, 16, 10));
    logits[500] = 50; // the largest, but banned
    logits[7] = Infinity; // banned, and still counted as a fault
    const allowed = [3, 64, 700, 998, 1_000];
    const mask = new Array(Math.ceil(n / 32)).fill(0);
    for (const id of allowed) mask[id >> 5] |= 1 << (id & 31);
    const want = allowed.reduce((best, id) => (logits[id] > logits[best] ? id : best));
    const got = await runKernel({ op: 'argmax', nTokens: 1, pos0: 0, inputs: { logits: f32(logits) }, words: { mask: mask.map((w) => w >>> 0) }, outputs: { result: 2 }, u32Outputs: ['result'], options: { n } });
    expect(got.result).toEqual([want, 1]);
    const none = await runKernel({ op: 'argmax', nTokens: 1, pos0: 0, inputs: { logits: f32(logits) }, words: { mask: mask.map(() => 0) }, outputs: { result: 2 }, u32Outputs: ['result'], options: { n } });
    expect(none.result).toEqual([0xffffffff, 1]);
  });
});
