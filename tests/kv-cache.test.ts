/**
 * The KV cache in f16 and Q8_0 (issue 18): copy_to_cache.wgsl writes rows in each form exactly as
 * the CPU twin packs them (tests/kernels/check.ts packKvCache), and both attention kernels (the
 * workgroup one and the subgroup one for heads of 64 and 128) read each form, prefill and decode,
 * with windows, rings and soft-capping, against the float64 twin over the rounded K and V.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import type { KvCacheType } from '../src/kernels/ops.ts';
import type { KernelSpec } from './kernels/harness.ts';
import * as ref from './kernels/reference.ts';
import { asF32, expectClose, f32, packKvCache } from './kernels/check.ts';

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

/** A ring of `cacheRows` rows after positions 0..positions-1 were written: row r holds the last position j with j % cacheRows = r. */
function ring(full: Float64Array, width: number, positions: number, cacheRows: number): Float64Array {
  const out = new Float64Array(cacheRows * width);
  for (let j = 0; j < positions; j++) out.set(full.subarray(j * width, (j + 1) * width), (j % cacheRows) * width);
  return out;
}

const SENTINEL_WORD = 0x7fc00abc;

describe('KV cache forms', () => {
  // Widths: 2 blocks per row, 3 (an odd count: each row ends in 2 bytes of padding), 5; f16 the same.
  const copyCases: { type: 'f16' | 'q8_0'; width: number; nTokens: number; pos0: number }[] = [];
  for (const type of ['f16', 'q8_0'] as const) {
    for (const width of [64, 96, 160]) copyCases.push({ type, width, nTokens: 5, pos0: 4 }, { type, width, nTokens: 1, pos0: 13 });
  }
  const RING = 7;
  for (const { type, width, nTokens, pos0 } of copyCases) {
    it(`copyToCache writes ${type} rows of ${width} into a ring of ${RING}: ${nTokens} tokens at ${pos0}`, async () => {
      const x = asF32(ref.randomArray(nTokens * width, 80 + width, 3));
      x[0] = 0; // a block's largest value may sit anywhere, and a zero block must stay zero
      if (nTokens > 1) x.fill(0, width, width + 32);
      const rows = packKvCache(x, width, type);
      const rowWords = rows.words.length / nTokens;
      const want = new Array(RING * rowWords).fill(SENTINEL_WORD);
      for (let t = 0; t < nTokens; t++) want.splice(((pos0 + t) % RING) * rowWords, rowWords, ...rows.words.slice(t * rowWords, (t + 1) * rowWords));
      const got = await runKernel({
        op: 'copyToCache', nTokens, pos0, kvCache: type, inputs: { x: f32(x) }, words: { cache: new Array(RING * rowWords).fill(SENTINEL_WORD) },
        outputs: { cache: RING * rowWords }, u32Outputs: ['cache'], options: { width, cacheRows: RING },
      });
      const diff = got.cache.flatMap((w, i) => (w === want[i] ? [] : [`word ${i}: got ${w.toString(16)} want ${want[i].toString(16)}`]));
      expect(diff.slice(0, 8), `${diff.length} words differ`).toEqual([]);
    });
  }

  it('the Q8_0 twin lays out blocks as ggml: d, then 32 int8, and a zero block is all zero', () => {
    const x = new Float64Array(64);
    x[3] = -2; x[5] = 1; // block 0: amax 2, d = 2/127
    const { words, rounded } = packKvCache(x, 64, 'q8_0');
    const bytes = new Uint8Array(Uint32Array.from(words).buffer);
    expect(ref.halfBitsToFloat(bytes[0] | (bytes[1] << 8))).toBeCloseTo(2 / 127, 4);
    expect(new Int8Array(bytes.buffer)[2 + 3]).toBe(-127);
    expect(new Int8Array(bytes.buffer)[2 + 5]).toBe(64); // 63.5 rounds to even
    expect(Array.from(bytes.subarray(34, 68))).toEqual(new Array(34).fill(0));
    expect(rounded[3]).toBeCloseTo(-2, 3);
  });

  interface Case { nTokens: number; pos0: number; nHeads: number; nKvHeads: number; headDim: number; window?: number; softcap?: number; gpuPaths?: boolean }
  const cases: Case[] = [
    { nTokens: 6, pos0: 10, nHeads: 4, nKvHeads: 2, headDim: 64, window: 8 },             // subgroup kernel, prefill through a ring
    { nTokens: 6, pos0: 10, nHeads: 4, nKvHeads: 2, headDim: 64, window: 8, gpuPaths: true },
    { nTokens: 1, pos0: 90, nHeads: 4, nKvHeads: 4, headDim: 64, window: 7 },             // decode far past the ring's wrap
    { nTokens: 1, pos0: 70, nHeads: 4, nKvHeads: 1, headDim: 64, gpuPaths: true },        // decode over more than one chunk of 64
    { nTokens: 5, pos0: 9, nHeads: 2, nKvHeads: 1, headDim: 128, window: 4 },
    { nTokens: 4, pos0: 9, nHeads: 4, nKvHeads: 2, headDim: 96, softcap: 2 },             // the workgroup kernel, an odd block count per row
    { nTokens: 3, pos0: 20, nHeads: 3, nKvHeads: 1, headDim: 32 },
  ];
  for (const type of ['f16', 'q8_0'] as KvCacheType[]) {
    for (const c of cases) {
      const { nTokens, pos0, nHeads, nKvHeads, headDim, window, softcap, gpuPaths } = c;
      const what = [window && `window ${window}`, softcap && `softcap ${softcap}`, gpuPaths ? 'GPU path' : 'default'].filter(Boolean).join(', ');
      it(`attention reads a ${type} cache: ${nTokens} tokens at ${pos0}, ${nHeads}/${nKvHeads} heads of ${headDim}, ${what}`, async () => {
        const positions = pos0 + nTokens, width = nKvHeads * headDim;
        const q = asF32(ref.randomArray(nTokens * nHeads * headDim, 90, softcap ? 8 : 1));
        const k = asF32(ref.randomArray(positions * width, 91));
        const v = asF32(ref.randomArray(positions * width, 92));
        const shape = { nHeads, nKvHeads, headDim, ...(window ? { window } : {}), ...(softcap ? { softcap } : {}) };
        const rows = window && window + nTokens - 1 < positions ? window + nTokens - 1 : positions;
        const kc = packKvCache(ring(k, width, positions, rows), width, type as 'f16' | 'q8_0');
        const vc = packKvCache(ring(v, width, positions, rows), width, type as 'f16' | 'q8_0');
        // The twin reads the rounded rows by position: unwind the ring.
        const byPosition = (rounded: Float64Array) => {
          const out = new Float64Array(positions * width);
          for (let j = Math.max(0, positions - rows); j < positions; j++) out.set(rounded.subarray((j % rows) * width, (j % rows + 1) * width), j * width);
          return out;
        };
        const want = ref.attention(q, byPosition(kc.rounded), byPosition(vc.rounded), shape, pos0);
        const got = await runKernel({
          op: 'attention', nTokens, pos0, kvCache: type, inputs: { q: f32(q) }, words: { kCache: kc.words, vCache: vc.words },
          outputs: { out: q.length }, options: { ...shape, cacheRows: rows, ...(gpuPaths ? { gpuPaths } : {}) },
        });
        expectClose(got.out, want, { abs: 1e-5, rel: 1e-4 }, `attention over a ${type} cache`);
        // Rounding K and V is what changed: the f32 result differs from this one (the test can fail).
        const exact = ref.attention(q, k, v, shape, pos0);
        expect(exact.some((e, i) => Math.abs(e - want[i]) > 1e-5), 'the rounding shows').toBe(true);
      });
    }
  }

  // A context shift (kv_shift.wgsl): rows src.. move to dst.., K rotated by -(src - dst) in the
  // cache's own form, against the twin: the stored rows decoded, rotated in f64 (reference.rope at
  // position -delta), and stored again. Odd shapes: heads of 10 and partial rotary, Q8_0 heads of one
  // block (two heads share a word: a unit of 2, the row padded) and of three.
  interface ShiftCase { type: KvCacheType; heads: number; headDim: number; ropeDim?: number; neox?: boolean; freqScale?: number }
  const shiftCases: ShiftCase[] = [
    { type: 'f32', heads: 3, headDim: 10, ropeDim: 10 },
    { type: 'f32', heads: 3, headDim: 10, ropeDim: 6, neox: true, freqScale: 0.25 },
    { type: 'f16', heads: 3, headDim: 10, ropeDim: 6 },
    { type: 'q8_0', heads: 3, headDim: 32, ropeDim: 32 },
    { type: 'q8_0', heads: 2, headDim: 96, ropeDim: 64, neox: true },
    { type: 'q8_0', heads: 3, headDim: 32 }, // V: a verbatim copy
    { type: 'f16', heads: 3, headDim: 10 },
  ];
  const CACHE_ROWS = 13, DST = 3, SRC = 8, MOVED = 5;
  for (const { type, heads, headDim, ropeDim, neox = false, freqScale } of shiftCases) {
    const what = ropeDim === undefined ? 'copied verbatim' : `rotated (${neox ? 'NeoX' : 'adjacent'} pairs, rope_dim ${ropeDim}${freqScale ? `, freq_scale ${freqScale}` : ''})`;
    it(`kvShift moves ${MOVED} ${type} rows of ${heads} heads of ${headDim} from ${SRC} to ${DST}, ${what}`, async () => {
      const width = heads * headDim, delta = SRC - DST;
      const rows = asF32(ref.randomArray(CACHE_ROWS * width, 95 + headDim, 2));
      rows.fill(0, SRC * width, SRC * width + 32); // a zero block stays zero
      const cache = type === 'f32' ? { words: Array.from(new Uint32Array(Float32Array.from(rows).buffer)), rounded: rows } : packKvCache(rows, width, type);
      const rowWords = cache.words.length / CACHE_ROWS;
      const got = await runKernel({
        op: 'kvShift', nTokens: MOVED, pos0: 0, kvCache: type, inputs: {}, words: { cache: cache.words }, outputs: { cache: cache.words.length }, u32Outputs: ['cache'],
        options: { width, headDim, src: SRC, dst: DST, ...(ropeDim === undefined ? {} : { ropeDim, neox, thetaBase: 10000 }), ...(freqScale ? { freqScale } : {}) },
      });
      // Rows outside dst.. keep their words.
      const kept = (w: number) => Math.floor(w / rowWords) < DST || Math.floor(w / rowWords) >= DST + MOVED;
      const changed = got.cache.flatMap((w, i) => (kept(i) && w !== cache.words[i] ? [i] : []));
      expect(changed, 'words outside the destination rows').toEqual([]);
      const moved = cache.rounded.slice(SRC * width, (SRC + MOVED) * width);
      if (ropeDim === undefined) {
        expect(got.cache.slice(DST * rowWords, (DST + MOVED) * rowWords)).toEqual(cache.words.slice(SRC * rowWords, (SRC + MOVED) * rowWords));
        return;
      }
      // One "token" of MOVED * heads heads: every row is rotated by the same -delta.
      const want = ref.rope(moved, { nHeads: MOVED * heads, headDim, ropeDim, thetaBase: 10000, neox }, -delta * (freqScale ?? 1));
      const decoded = decodeKvCache(got.cache.slice(DST * rowWords, (DST + MOVED) * rowWords), width, type);
      // f32: the rotation's rounding; f16: half an ulp of f16 more; Q8_0: a quantization step more (d = amax / 127 <= 2 / 127).
      const tol = { f32: { abs: 1e-6, rel: 1e-6 }, f16: { abs: 1e-3, rel: 1e-3 }, q8_0: { abs: 0.017, rel: 0 } }[type];
      expectClose(Array.from(decoded), want, tol, `kvShift of a ${type} cache`);
      // The rotation shows: the moved rows are not the source rows.
      expect(want.some((v, i) => Math.abs(v - moved[i]) > 0.05), 'the rotation changes K').toBe(true);
    });
  }

  it('a Q8_0 cache refuses rows that are not whole blocks of 32, with BAD_ARGUMENT', async () => {
    const spec: KernelSpec = {
      op: 'attention', nTokens: 1, pos0: 0, kvCache: 'q8_0', inputs: { q: new Array(48).fill(0) }, words: { kCache: new Array(16).fill(0), vCache: new Array(16).fill(0) },
      outputs: { out: 48 }, options: { nHeads: 2, nKvHeads: 2, headDim: 24 },
    };
    await expect(runKernel(spec)).rejects.toThrow(/BAD_ARGUMENT|multiple of 32/);
    await expect(runKernel({ ...spec, op: 'copyToCache', inputs: { x: new Array(24).fill(0) }, words: { cache: new Array(16).fill(0) }, outputs: { cache: 16 }, options: { width: 24, cacheRows: 1 } }))
      .rejects.toThrow(/BAD_ARGUMENT|multiple of 32/);
  });
});

/** The values of rows of a cache of form `type` (the words packKvCache or the GPU wrote). */
function decodeKvCache(words: number[], width: number, type: KvCacheType): Float64Array {
  const buffer = Uint32Array.from(words).buffer;
  if (type === 'f32') return Float64Array.from(new Float32Array(buffer));
  if (type === 'f16') return Float64Array.from(new Uint16Array(buffer).subarray(0, (words.length * 2 / width | 0) * width), ref.halfBitsToFloat);
  const bytes = new Uint8Array(buffer);
  const rowBytes = Math.ceil(((width / 32) * 34) / 4) * 4;
  const rows = bytes.length / rowBytes;
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < width / 32; b++) {
      const at = r * rowBytes + b * 34;
      const d = ref.halfBitsToFloat(bytes[at] | (bytes[at + 1] << 8));
      for (let i = 0; i < 32; i++) out[r * width + b * 32 + i] = d * ((bytes[at + 2 + i] << 24) >> 24);
    }
  }
  return out;
}
