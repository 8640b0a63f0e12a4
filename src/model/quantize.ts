/**
 * Quantize-on-load: f32 rows to GGUF block bytes, byte for byte what llama.cpp writes
 * (`ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, NULL)`, no importance matrix), so that a
 * checkpoint compressed in the browser is the file `llama-quantize` would have made.
 *
 *   Q8_0   32 values, 34 bytes:  f16 d | i8 qs[32]                                   x = d * q
 *   Q4_0   32 values, 18 bytes:  f16 d | u8 qs[16]                                   x = d * (q - 8)
 *          byte j holds value j (low nibble) and value j + 16 (high nibble)
 *   Q4_K  256 values, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
 *          8 sub-blocks of 32 with a 6-bit scale sc and min m each:   x = d * sc * q - dmin * m
 *          qs[32 p + l] holds value 64 p + l (low nibble) and 64 p + 32 + l (high nibble)
 *   F16, BF16  one value, 2 bytes, rounded to nearest even; a NaN becomes a quiet NaN
 *
 * ggml does this arithmetic in C `float`: every f32 operation below is wrapped in Math.fround. A
 * double result of +, -, *, / or sqrt on two f32 values, rounded once more to f32, is exactly the
 * f32 result (53 >= 2 * 24 + 2 bits), so the bytes match ggml's on every input, including the
 * underflows and overflows inside a block of huge or tiny values. Follows llama.cpp's
 * ggml/src/ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q4_0_ref, quantize_row_q4_K_ref,
 * make_qkx2_quants, nearest_int) and ggml-impl.h (fp32 <-> fp16 / bf16).
 */
import { LanternError } from '../errors.ts';
import { GGMLType } from './gguf.ts';

export type QuantizeType = 'q8_0' | 'q4_0' | 'q4_k' | 'f16' | 'bf16';

/** Values and bytes per block of each type, and its id in a GGUF tensor info. */
export const QUANTIZE_LAYOUT: Readonly<Record<QuantizeType, { blockValues: number; blockBytes: number; ggmlType: GGMLType }>> = {
  q8_0: { blockValues: 32, blockBytes: 34, ggmlType: GGMLType.Q8_0 },
  q4_0: { blockValues: 32, blockBytes: 18, ggmlType: GGMLType.Q4_0 },
  q4_k: { blockValues: 256, blockBytes: 144, ggmlType: GGMLType.Q4_K },
  f16: { blockValues: 1, blockBytes: 2, ggmlType: GGMLType.F16 },
  bf16: { blockValues: 1, blockBytes: 2, ggmlType: GGMLType.BF16 },
};

/** Bytes of one row of `rowLength` values stored as `type`; throws unless the row is whole blocks. */
export function quantizedRowBytes(type: QuantizeType, rowLength: number): number {
  const layout = Object.hasOwn(QUANTIZE_LAYOUT, type) ? QUANTIZE_LAYOUT[type] : undefined;
  if (!layout) {
    throw new LanternError('BAD_ARGUMENT', `Cannot quantize to "${String(type)}"; choose one of ${Object.keys(QUANTIZE_LAYOUT).join(', ')}.`, { type });
  }
  if (!Number.isSafeInteger(rowLength) || rowLength <= 0) {
    throw new LanternError('BAD_ARGUMENT', `A row length of ${rowLength} cannot be quantized; pass the tensor's innermost dimension, a positive integer.`, { type, rowLength });
  }
  if (rowLength % layout.blockValues !== 0) {
    const fallback = type === 'q4_k' ? ' (llama.cpp falls back to a 32-value type such as q4_0 or q8_0 for such tensors)' : '';
    throw new LanternError('BAD_ARGUMENT', `Rows of ${rowLength} values are not a whole number of ${layout.blockValues}-value ${type} blocks; store this tensor as another type${fallback}.`, { type, rowLength });
  }
  return (rowLength / layout.blockValues) * layout.blockBytes;
}

/** Bytes of `nRows` rows of `rowLength` values stored as `type`. */
export function quantizedByteSize(type: QuantizeType, rowLength: number, nRows: number): number {
  return quantizedRowBytes(type, rowLength) * nRows;
}

/**
 * Whole rows of f32 values ([nRows, rowLength], row-major) as `type`'s GGUF block bytes
 * ([nRows, quantizedRowBytes] u8). Q8_0, Q4_0 and Q4_K refuse NaN and infinite values, which
 * their blocks cannot hold; F16 and BF16 store them.
 */
export function quantizeRows(type: QuantizeType, values: Float32Array, rowLength: number): Uint8Array {
  const rowBytes = quantizedRowBytes(type, rowLength);
  if (values.length % rowLength !== 0) {
    throw new LanternError('BAD_ARGUMENT', `${values.length} values are not whole rows of ${rowLength}; pass complete rows (RowQuantizer keeps a partial row between pieces).`, { type, rowLength, values: values.length });
  }
  const out = new Uint8Array((values.length / rowLength) * rowBytes);
  QUANTIZERS[type](values, out, 0);
  return out;
}

/**
 * Quantizes a tensor that arrives in pieces (from a fetch stream) that need not end on a row, or
 * even on a value. Each piece's completed rows come back as block bytes at once; only the
 * unfinished row's bytes are kept, plus a scratch of at most ROW_BATCH_BYTES of f32 rows.
 */
export class RowQuantizer {
  /** Source bytes of one row. */
  readonly rowSourceBytes: number;
  /** Output bytes of one row. */
  readonly rowBytes: number;
  /** Rows emitted so far. */
  rows = 0;
  private readonly sourceWidth: number;
  private readonly partial: Uint8Array; // [rowSourceBytes] u8, the row being filled
  private partialLength = 0;
  private readonly batchRows: number;
  private readonly batch: Float32Array; // [batchRows, rowLength] f32
  private readonly batchBytes: Uint8Array; // the same memory
  private readonly batchBits: Uint32Array; // the same memory

  /**
   * @param type what to store the rows as
   * @param rowLength values per row (the tensor's innermost dimension)
   * @param source the dtype of the incoming bytes, little-endian as in safetensors
   * @param nRows if given, end() checks that exactly this many rows came
   */
  constructor(
    readonly type: QuantizeType,
    readonly rowLength: number,
    readonly source: 'F32' | 'F16' | 'BF16' = 'F32',
    readonly nRows?: number,
  ) {
    this.rowBytes = quantizedRowBytes(type, rowLength);
    if (source !== 'F32' && source !== 'F16' && source !== 'BF16') {
      throw new LanternError('BAD_ARGUMENT', `Cannot read ${String(source)} values to quantize; pass F32, F16 or BF16 data.`, { source });
    }
    if (nRows !== undefined && (!Number.isSafeInteger(nRows) || nRows < 0)) {
      throw new LanternError('BAD_ARGUMENT', `A tensor of ${nRows} rows cannot be quantized; pass the product of its outer dimensions, a non-negative integer.`, { nRows });
    }
    this.sourceWidth = source === 'F32' ? 4 : 2;
    this.rowSourceBytes = rowLength * this.sourceWidth;
    this.partial = new Uint8Array(this.rowSourceBytes);
    this.batchRows = Math.max(1, Math.floor(ROW_BATCH_BYTES / (4 * rowLength)));
    this.batch = new Float32Array(this.batchRows * rowLength);
    this.batchBytes = new Uint8Array(this.batch.buffer);
    this.batchBits = new Uint32Array(this.batch.buffer);
  }

  /** Takes the next piece of the tensor's bytes; returns the block bytes of the rows it completes. */
  push(piece: Uint8Array): Uint8Array {
    const total = this.partialLength + piece.byteLength;
    const completeRows = Math.floor(total / this.rowSourceBytes);
    if (this.nRows !== undefined && this.rows + completeRows > this.nRows) {
      throw new LanternError('BAD_MODEL_FILE', `The tensor's data holds more than the ${this.nRows} rows of ${this.rowLength} values its shape says; the checkpoint is damaged.`, { rows: this.nRows });
    }
    const out = new Uint8Array(completeRows * this.rowBytes);
    let at = 0; // into piece
    let row = 0; // of this push
    while (row < completeRows) {
      // Up to batchRows rows into the f32 batch; the first may begin with the kept partial row.
      const n = Math.min(this.batchRows, completeRows - row);
      for (let r = 0; r < n; r++) {
        const start = r * this.rowLength;
        if (this.partialLength > 0) {
          const rest = this.rowSourceBytes - this.partialLength;
          this.partial.set(piece.subarray(at, at + rest), this.partialLength);
          at += rest;
          this.partialLength = 0;
          this.decode(this.partial, start);
        } else {
          this.decode(piece.subarray(at, at + this.rowSourceBytes), start);
          at += this.rowSourceBytes;
        }
      }
      QUANTIZERS[this.type](this.batch.subarray(0, n * this.rowLength), out, row * this.rowBytes);
      row += n;
    }
    this.partial.set(piece.subarray(at), this.partialLength);
    this.partialLength += piece.byteLength - at;
    this.rows += completeRows;
    return out;
  }

  /** Checks that the data ended on a row (and, given nRows, that every row came). */
  end(): void {
    if (this.partialLength > 0) {
      throw new LanternError('TRUNCATED_FILE', `The tensor's data ended ${this.partialLength} bytes into a row of ${this.rowSourceBytes}; the download is incomplete, fetch it again.`, { rows: this.rows });
    }
    if (this.nRows !== undefined && this.rows !== this.nRows) {
      throw new LanternError('TRUNCATED_FILE', `The tensor's data ended after ${this.rows} of its ${this.nRows} rows; the download is incomplete, fetch it again.`, { rows: this.rows });
    }
  }

  /** One row of source bytes ([rowSourceBytes] u8) into the batch at value `start`. */
  private decode(bytes: Uint8Array, start: number): void {
    if (this.source === 'F32') {
      // Little-endian, as safetensors and every WebGPU platform are.
      this.batchBytes.set(bytes, 4 * start);
      return;
    }
    const batch = this.batch;
    if (this.source === 'BF16') {
      // bf16 is the top half of an f32.
      const bits = this.batchBits;
      for (let i = 0; i < this.rowLength; i++) bits[start + i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
      return;
    }
    const table = halfTable();
    for (let i = 0; i < this.rowLength; i++) batch[start + i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  }
}

/** How much f32 a RowQuantizer decodes before quantizing it (at least one row). */
const ROW_BATCH_BYTES = 1 << 20;

type Quantizer = (x: Float32Array, out: Uint8Array, at: number) => void;

const QUANTIZERS: Record<QuantizeType, Quantizer> = {
  q8_0: quantizeQ8_0,
  q4_0: quantizeQ4_0,
  q4_k: quantizeQ4_K,
  f16: (x, out, at) => {
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    for (let i = 0; i < bits.length; i++) {
      const h = f32BitsToHalf(bits[i]);
      out[at + 2 * i] = h & 0xff;
      out[at + 2 * i + 1] = h >>> 8;
    }
  },
  bf16: (x, out, at) => {
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    for (let i = 0; i < bits.length; i++) {
      const u = bits[i];
      // ggml_compute_fp32_to_bf16: a NaN keeps its top half with the quiet bit set; else round to nearest even.
      const h = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 64 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
      out[at + 2 * i] = h & 0xff;
      out[at + 2 * i + 1] = (h >>> 8) & 0xff;
    }
  },
};

const f = Math.fround;
const MAX_F32 = 3.4028234663852886e38;

/** quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d). */
function quantizeQ8_0(x: Float32Array, out: Uint8Array, at: number): void {
  for (let b = 0; b < x.length; b += 32, at += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(x[b + j]);
      if (!(a <= MAX_F32)) throw nonFinite('q8_0', x, b + j);
      if (a > amax) amax = a;
    }
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    const h = f32ToHalf(d);
    out[at] = h & 0xff;
    out[at + 1] = h >>> 8;
    for (let j = 0; j < 32; j++) {
      const v = f(x[b + j] * id);
      // roundf (halves away from zero: exact in double), then the float-to-int8 conversion; the
      // sign goes back on without a branch, since random signs would defeat a branch predictor.
      const neg = -(+(v < 0)) | 0; // -1 or 0
      out[at + 2 + j] = ((toInt8Bits(Math.abs(v) + 0.5) ^ neg) - neg) & 0xff;
    }
  }
}

/** quantize_row_q4_0_ref: the value of largest magnitude (with its sign) maps to -8. */
function quantizeQ4_0(x: Float32Array, out: Uint8Array, at: number): void {
  for (let b = 0; b < x.length; b += 32, at += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      const a = Math.abs(v);
      if (!(a <= MAX_F32)) throw nonFinite('q4_0', x, b + j);
      if (a > amax) {
        amax = a;
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    const h = f32ToHalf(d);
    out[at] = h & 0xff;
    out[at + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      // (uint8_t) MIN(15, (int8_t)(x * id + 8.5f))
      const lo = Math.min(15, (toInt8Bits(f(f(x[b + j] * id) + 8.5)) << 24) >> 24) & 0xff;
      const hi = Math.min(15, (toInt8Bits(f(f(x[b + 16 + j] * id) + 8.5)) << 24) >> 24) & 0xff;
      out[at + 2 + j] = (lo | (hi << 4)) & 0xff;
    }
  }
}

// Scratch for Q4_K, one block at a time.
const q4kL = new Uint8Array(256); // [256] quants 0..15
const q4kLaux = new Uint8Array(32);
const q4kX = new Float32Array(32); // one sub-block
const q4kXMinusMin = new Float32Array(32); // x - min, for the current min
const q4kFit = new Float32Array(16); // scale * q + min of a trial fit, q = 0..15
const q4kWeights = new Float32Array(32);
const q4kScales = new Float32Array(8);
const q4kMins = new Float32Array(8);
const q4kScaleBytes = new Uint8Array(12);
const RDELTA = f(0.1);

/**
 * quantize_row_q4_K_ref: per sub-block of 32, make_qkx2_quants searches a scale and min weighted
 * by av_x + |x|; the 8 scales and mins go to 6 bits against the block's largest, and the values are
 * quantized again with the scales as stored.
 */
function quantizeQ4_K(x: Float32Array, out: Uint8Array, at: number): void {
  const L = q4kL, weights = q4kWeights, scales = q4kScales, mins = q4kMins, sc = q4kScaleBytes;
  for (let b = 0; b < x.length; b += 256, at += 144) {
    for (let i = b; i < b + 256; i++) if (!(Math.abs(x[i]) <= MAX_F32)) throw nonFinite('q4_k', x, i);
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const o = b + 32 * j;
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[o + l] * x[o + l]));
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[o + l]));
      const scale = makeQkx2Quants(x, o, 32 * j, mins, j);
      scales[j] = scale;
      if (scale > maxScale) maxScale = scale;
      if (mins[j] > maxMin) maxMin = mins[j];
    }

    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff);
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
      }
    }
    const dBits = f32ToHalf(f(maxScale / 63));
    const dminBits = f32ToHalf(f(maxMin / 63));
    const dAll = halfToF32(dBits);
    const dminAll = halfToF32(dminBits);

    for (let j = 0; j < 8; j++) {
      const s = j < 4 ? sc[j] & 63 : (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
      const m = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
      const d = f(dAll * s);
      // A sub-block whose stored scale is 0 keeps make_qkx2_quants' quants. C's `!d` is `d == 0`:
      // a NaN scale (infinite d times a scale of 0) does not skip, and its quants all come out 0.
      if (d === 0) continue;
      const dm = f(dminAll * m);
      const o = b + 32 * j;
      for (let l = 0; l < 32; l++) {
        const q = nearestInt(f(f(x[o + l] + dm) / d));
        L[32 * j + l] = q < 0 ? 0 : q > 15 ? 15 : q;
      }
    }

    out[at] = dBits & 0xff;
    out[at + 1] = dBits >>> 8;
    out[at + 2] = dminBits & 0xff;
    out[at + 3] = dminBits >>> 8;
    out.set(sc, at + 4);
    for (let p = 0; p < 4; p++) {
      for (let l = 0; l < 32; l++) out[at + 16 + 32 * p + l] = L[64 * p + l] | (L[64 * p + 32 + l] << 4);
    }
  }
}

/**
 * make_qkx2_quants(32, 15, x + o, weights, L + lAt, &mins[j], Laux, -1, 0.1, 20, false): a min/max
 * start, then 21 trial scales around 15 / (max - min), each refit by weighted least squares; keeps
 * the fit of least weighted squared error. Writes -min to mins[j], returns the scale.
 *
 * Two shortcuts leave the result as ggml's: a trial whose quants are the previous trial's refits to
 * the same scale, min and error, which cannot beat the best error (it is that trial's, or lower);
 * and an error sum of non-negative f32 terms never decreases, so a trial is dropped as soon as
 * its partial sum reaches the best error (a NaN sum is never accepted either way).
 */
function makeQkx2Quants(x: Float32Array, o: number, lAt: number, mins: Float32Array, j: number): number {
  const w = q4kWeights, L = q4kL, Laux = q4kLaux, xs = q4kX, xm = q4kXMinusMin, fit = q4kFit;
  const nmax = 15;
  for (let i = 0; i < 32; i++) xs[i] = x[o + i];
  let min = xs[0];
  let max = xs[0];
  let sumW = w[0];
  let sumX = f(sumW * xs[0]);
  for (let i = 1; i < 32; i++) {
    const v = xs[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sumW = f(sumW + w[i]);
    sumX = f(sumX + f(w[i] * v));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lAt, lAt + 32);
    mins[j] = -min;
    return 0;
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < 32; i++) {
    xm[i] = xs[i] - min; // the f32 store rounds
    const l = nearestInt(f(iscale * xm[i]));
    const q = l < 0 ? 0 : l > nmax ? nmax : l;
    L[lAt + i] = q;
    const diff = f(f(f(scale * q) + min) - xs[i]);
    bestError = f(bestError + f(w[i] * f(diff * diff)));
  }
  let previous = false; // whether Laux holds the previous trial's quants
  for (let is = 0; is <= 20; is++) {
    // min is the best fit's so far, as in ggml: each trial starts from the last accepted one.
    iscale = f(f(f(-1 + f(RDELTA * is)) + nmax) / f(max - min));
    let same = previous;
    for (let i = 0; i < 32; i++) {
      const l0 = nearestInt(f(iscale * xm[i]));
      const l = l0 < 0 ? 0 : l0 > nmax ? nmax : l0;
      if (Laux[i] !== l) {
        Laux[i] = l;
        same = false;
      }
    }
    previous = true;
    if (same) continue;
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < 32; i++) {
      const l = Laux[i];
      const wl = f(w[i] * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * xs[i]));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    for (let q = 0; q <= nmax; q++) fit[q] = f(thisScale * q) + thisMin; // the f32 store rounds
    let curError = 0;
    for (let i = 0; i < 32 && curError < bestError; i++) {
      const diff = f(fit[Laux[i]] - xs[i]);
      curError = f(curError + f(w[i] * f(diff * diff)));
    }
    if (curError < bestError) {
      L.set(Laux, lAt);
      bestError = curError;
      scale = thisScale;
      min = thisMin;
      for (let i = 0; i < 32; i++) xm[i] = xs[i] - min;
    }
  }
  mins[j] = -min;
  return scale;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * ggml's nearest_int: adds 1.5 * 2^23 in f32 and reads the low mantissa bits, which rounds halves
 * to even for |v| < 2^22. Outside that range (an overflow inside a block of huge values, or NaN)
 * it returns what those bits say, as ggml does.
 */
function nearestInt(v: number): number {
  if (Math.abs(v) <= 4194303) return f(v + 12582912) - 12582912;
  scratchF32[0] = v + 12582912;
  return (scratchU32[0] & 0x007fffff) - 0x00400000;
}

/**
 * The low byte of C's float-to-int conversion of `v` (an f32, or one plus a half), as x86's cvttss2si
 * does it: truncation, or 0x80000000 when out of range or NaN. JavaScript's `| 0` truncates too,
 * and where it wraps instead (|v| >= 2^31) v is a multiple of 2^8, so the low byte is 0 either way.
 */
function toInt8Bits(v: number): number {
  return (v | 0) & 0xff;
}

function f32ToHalf(v: number): number {
  scratchF32[0] = v;
  return f32BitsToHalf(scratchU32[0]);
}

/** The f16 bits of the f32 whose bits are `u`: nearest, ties to even; NaN becomes sign | 0x7e00 as in ggml. */
function f32BitsToHalf(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7c00; // 65520 and above round to infinity
  if (a >= 0x38800000) {
    // Normal half: rebias the exponent (127 -> 15) and round off 13 mantissa bits.
    let h = (a - 0x38000000) >>> 13;
    const rem = a & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    return sign | h;
  }
  if (a <= 0x33000000) return sign; // up to 2^-25, the half-way point to the least subnormal
  // Subnormal half: the value in units of 2^-24.
  const e = a >>> 23;
  const m = (a & 0x7fffff) | 0x800000;
  const shift = 126 - e;
  let h = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && h & 1)) h++;
  return sign | h;
}

function halfToF32(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1024 + frac) * 2 ** (exp - 25);
}

let halfTableCache: Float32Array | undefined;
/** The value of every f16 bit pattern: [65536] f32, 256 KiB, built on first use. */
function halfTable(): Float32Array {
  if (!halfTableCache) {
    halfTableCache = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTableCache[h] = halfToF32(h);
  }
  return halfTableCache;
}

function nonFinite(type: QuantizeType, x: Float32Array, i: number): LanternError {
  return new LanternError('NUMERIC_ERROR', `Value ${i} of the rows to quantize is ${x[i]}, which ${type} blocks cannot hold; the checkpoint's weights are damaged, or store this tensor as f16 or bf16.`, { type, index: i });
}
