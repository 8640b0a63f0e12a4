/**
 * Throughput of quantize-on-load (src/model/quantize.ts) on this machine, in MB of f32 input per
 * second, beside llama.cpp's own ggml_quantize_chunk (node-llama-cpp's libggml-base, through koffi,
 * one thread) on the same values, where that library is installed.
 *
 *   node scripts/run-ts.mjs scripts/bench-quantize.ts [--mb 16] [--row 2048]
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import koffi from 'koffi';
import { quantizedByteSize, quantizeRows, type QuantizeType, RowQuantizer } from '../src/model/quantize.ts';

const TYPES: QuantizeType[] = ['q8_0', 'q4_0', 'q4_k', 'f16', 'bf16'];
const GGML_TYPE_ID: Record<QuantizeType, number> = { q8_0: 8, q4_0: 2, q4_k: 12, f16: 1, bf16: 30 };

export async function main(argv: string[]): Promise<number> {
  const { values: args } = parseArgs({ args: argv, options: { mb: { type: 'string', default: '16' }, row: { type: 'string', default: '2048' } } });
  const rowLength = Number(args.row);
  const nRows = Math.max(1, Math.round((Number(args.mb) * 1e6) / 4 / rowLength));
  const values = new Float32Array(nRows * rowLength); // [nRows, rowLength] f32, normals × 0.02 as in a trained matrix
  let seed = 1;
  const uniform = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) + 0.5) / 2 ** 32;
  for (let i = 0; i < values.length; i++) values[i] = 0.02 * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const mb = values.byteLength / 1e6;

  const platform = `${process.platform}-${process.arch}`;
  const ggmlPath = fileURLToPath(new URL(`../node_modules/@node-llama-cpp/${platform}/bins/${platform}/libggml-base.so`, import.meta.url));
  const quantizeChunk = existsSync(ggmlPath)
    ? koffi.load(ggmlPath).func('size_t ggml_quantize_chunk(int type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)')
    : undefined;

  const seconds = (run: () => void): number => {
    run(); // warm-up: the JIT, and the first touch of the output's pages
    const t0 = performance.now();
    run();
    return (performance.now() - t0) / 1e3;
  };

  console.log(`${mb.toFixed(1)} MB of f32 (${nRows} rows of ${rowLength}), MB of f32 input per second, one thread:\n`);
  console.log('| type | quantizeRows | RowQuantizer (BF16 source, 4 MB pieces) | llama.cpp |');
  console.log('|------|-------------:|----------------------------------------:|----------:|');
  const bf16 = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer);
  for (let i = 0; i < values.length; i++) bf16[i] = bits[i] >>> 16;
  const bf16Bytes = new Uint8Array(bf16.buffer);
  for (const type of TYPES) {
    const ours = seconds(() => quantizeRows(type, values, rowLength));
    const streamed = seconds(() => {
      const rows = new RowQuantizer(type, rowLength, 'BF16', nRows);
      for (let at = 0; at < bf16Bytes.length; at += 4e6) rows.push(bf16Bytes.subarray(at, at + 4e6));
      rows.end();
    });
    const out = new Uint8Array(quantizedByteSize(type, rowLength, nRows));
    const theirs = quantizeChunk ? seconds(() => quantizeChunk(GGML_TYPE_ID[type], values, out, 0, nRows, rowLength, null)) : NaN;
    // The streamed figure counts the f32 the pieces decode to, so the columns compare.
    console.log(`| ${type} | ${(mb / ours).toFixed(0)} | ${(mb / streamed).toFixed(0)} | ${quantizeChunk ? (mb / theirs).toFixed(0) : 'not installed'} |`);
  }
  return 0;
}
