/**
 * ggml block quantization in TypeScript: round-to-nearest quantizers that write ggml's block
 * layouts byte for byte, and dequantizers that read them back (the CPU side of the GPU decoders in
 * shaders/quant.wgsl). All blocks are little-endian; f16 fields are IEEE halves.
 *
 *   Q8_0   32 elements, 34 bytes:  f16 d | i8 qs[32]                         x = d * q
 *   Q4_0   32 elements, 18 bytes:  f16 d | u8 qs[16]                         x = d * (q - 8)
 *          byte j holds element j (low nibble) and element j + 16 (high nibble)
 *   Q4_1   32 elements, 20 bytes:  f16 d | f16 m | u8 qs[16]                 x = d * q + m
 *   Q5_0   32 elements, 22 bytes:  f16 d | u8 qh[4] | u8 qs[16]              x = d * (q - 16)
 *   Q5_1   32 elements, 24 bytes:  f16 d | f16 m | u8 qh[4] | u8 qs[16]      x = d * q + m
 *          qs as Q4_0's hold the low 4 bits of q; bit e of qh (a little-endian u32) is bit 4 of element e
 *   Q4_K  256 elements, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
 *          8 sub-blocks of 32 with a 6-bit scale sc and min m each:   x = d * sc * q - dmin * m
 *          qs[32 p + l] holds element 64 p + l (low nibble) and 64 p + 32 + l (high nibble)
 *   Q6_K  256 elements, 210 bytes: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d
 *          16 groups of 16 with an 8-bit scale each:                  x = d * scales[e / 16] * (q - 32)
 *          element e = 128 h + 32 r + l: low 4 bits in ql[64 h + 32 (r & 1) + l] at bit 4 (r >> 1),
 *          high 2 bits in qh[32 h + l] at bit 2 r.
 *   Q5_K  256 elements, 176 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
 *          Q4_K's sub-blocks, scales and qs, with bit 4 of q in qh[l] at bit 2 p (element 64 p + l)
 *          and 2 p + 1 (element 64 p + 32 + l):                     x = d * sc * q - dmin * m
 *   Q3_K  256 elements, 110 bytes: u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d
 *          16 groups of 16 with a 6-bit scale s each (stored s + 32):  x = d * s * (q - 4)
 *          element e = 128 h + 32 r + l: low 2 bits in qs[32 h + l] at bit 2 r, bit 2 in hmask[l]
 *          at bit 4 h + r; scale j: low 4 bits in scales[j % 8] at bit 4 (j / 8), top 2 in
 *          scales[8 + j % 4] at bit 2 (j / 4)
 *   Q2_K  256 elements, 84 bytes:  u8 scales[16] | u8 qs[64] | f16 d | f16 dmin
 *          16 groups of 16, scales[j] = sc | m << 4 (4 bits each):   x = d * sc * q - dmin * m
 *          element e = 128 h + 32 r + l: q (2 bits) in qs[32 h + l] at bit 2 r
 *   IQ4_NL 32 elements, 18 bytes:  f16 d | u8 qs[16]                  x = d * IQ4_VALUES[q]
 *          qs as Q4_0's; q indexes a fixed non-linear table of 16 int8 values
 *   IQ4_XS 256 elements, 136 bytes: f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]
 *          8 sub-blocks of 32 with a 6-bit scale s (stored s + 32: low 4 bits in scales_l[j / 2]
 *          at bit 4 (j % 2), top 2 in scales_h at bit 2 j); each sub-block's 16 qs bytes as IQ4_NL's:
 *                                                                      x = d * s * IQ4_VALUES[q]
 *   BF16   one element, 2 bytes: the top half of its f32 (rounded to nearest even)
 *
 * Q8_0, Q4_0, Q4_K and BF16 come from src/model/quantize.ts, the quantize-on-load code: byte for byte
 * what llama.cpp's quantizer writes, from the values rounded to f32. The others are this file's:
 * Q5_0 / Q6_K follow ggml's reference rounding (the value of largest magnitude maps to the end of
 * the integer range); Q4_1 / Q5_1 map [min, max] onto [0, 15] / [0, 31]. The other K-quants' scales
 * are chosen by plain min/max per sub-block, without ggml's iterative refinement search: the blocks
 * are valid and decode exactly as ggml decodes them, only their rounding error is a little larger
 * than llama-quantize's. Q3_K and IQ4_XS choose their signed sub-block scales as Q6_K does,
 * IQ4_NL / IQ4_XS each quant as the nearest table value.
 */
import { GGMLType } from '../../src/model/gguf.ts';
import { floatToHalfBits, halfBitsToFloat } from '../../src/model/f16.ts';
import { quantizeRows, type QuantizeType } from '../../src/model/quantize.ts';

export type QuantType =
  | GGMLType.Q8_0 | GGMLType.Q4_0 | GGMLType.Q4_1 | GGMLType.Q5_0 | GGMLType.Q5_1 | GGMLType.Q4_K | GGMLType.Q6_K
  | GGMLType.Q5_K | GGMLType.Q3_K | GGMLType.Q2_K | GGMLType.IQ4_NL | GGMLType.IQ4_XS | GGMLType.BF16;

/** IQ4_NL's and IQ4_XS's 16 quant values (ggml's kvalues_iq4nl). */
export const IQ4_VALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113] as const;

/** [elements per block, bytes per block], as in src/model/gguf.ts. */
export const QUANT_BLOCKS: Record<QuantType, readonly [number, number]> = {
  [GGMLType.Q8_0]: [32, 34],
  [GGMLType.Q4_0]: [32, 18],
  [GGMLType.Q4_1]: [32, 20],
  [GGMLType.Q5_0]: [32, 22],
  [GGMLType.Q5_1]: [32, 24],
  [GGMLType.Q4_K]: [256, 144],
  [GGMLType.Q6_K]: [256, 210],
  [GGMLType.Q5_K]: [256, 176],
  [GGMLType.Q3_K]: [256, 110],
  [GGMLType.Q2_K]: [256, 84],
  [GGMLType.IQ4_NL]: [32, 18],
  [GGMLType.IQ4_XS]: [256, 136],
  [GGMLType.BF16]: [1, 2],
};

export function isQuantType(type: GGMLType): type is QuantType {
  return type in QUANT_BLOCKS;
}

/** Stores `values` (a whole number of blocks) as `type`. */
export function quantize(values: ArrayLike<number>, type: QuantType): Uint8Array {
  const [qk, size] = QUANT_BLOCKS[type];
  if (values.length % qk !== 0) throw new Error(`quantize: ${values.length} values are not a whole number of ${qk}-element blocks`);
  const shared = Object.hasOwn(LLAMA_CPP_ROUNDING, type) ? LLAMA_CPP_ROUNDING[type as keyof typeof LLAMA_CPP_ROUNDING] : undefined;
  // One row of all the values: ggml's blocks do not depend on where rows end.
  if (shared) return values.length ? quantizeRows(shared, Float32Array.from(values), values.length) : new Uint8Array(0);
  const out = new Uint8Array((values.length / qk) * size);
  const block = QUANTIZERS[type as Exclude<QuantType, keyof typeof LLAMA_CPP_ROUNDING>];
  for (let b = 0; b < values.length / qk; b++) {
    block(Array.from({ length: qk }, (_, i) => values[b * qk + i]), out.subarray(b * size, (b + 1) * size), new DataView(out.buffer, b * size, size));
  }
  return out;
}

/** Reads `nElements` values stored as `type` back as float64. */
export function dequantize(bytes: Uint8Array, type: QuantType, nElements: number): Float64Array {
  const [qk, size] = QUANT_BLOCKS[type];
  if (nElements % qk !== 0 || bytes.byteLength < (nElements / qk) * size) throw new Error(`dequantize: ${bytes.byteLength} bytes do not hold ${nElements} ${GGMLType[type]} elements`);
  if (type === GGMLType.BF16) return Float64Array.from(new Uint16Array(bytes.slice(0, 2 * nElements).buffer), bf16BitsToFloat);
  const out = new Float64Array(nElements);
  const block = DEQUANTIZERS[type];
  for (let b = 0; b < nElements / qk; b++) {
    const at = bytes.byteOffset + b * size;
    block(bytes.subarray(b * size, (b + 1) * size), new DataView(bytes.buffer, at, size), out.subarray(b * qk, (b + 1) * qk));
  }
  return out;
}

/** The types src/model/quantize.ts writes as llama.cpp does. */
const LLAMA_CPP_ROUNDING = { [GGMLType.Q8_0]: 'q8_0', [GGMLType.Q4_0]: 'q4_0', [GGMLType.Q4_K]: 'q4_k', [GGMLType.BF16]: 'bf16' } as const satisfies Partial<Record<QuantType, QuantizeType>>;

type Quantizer = (x: number[], block: Uint8Array, view: DataView) => void;
type Dequantizer = (block: Uint8Array, view: DataView, out: Float64Array) => void;

const QUANTIZERS: Record<Exclude<QuantType, keyof typeof LLAMA_CPP_ROUNDING>, Quantizer> = {
  [GGMLType.Q4_1]: (x, block, view) => {
    const q = minMaxQuants(x, 15, view);
    for (let j = 0; j < 16; j++) block[4 + j] = q[j] | (q[j + 16] << 4);
  },
  [GGMLType.Q5_0]: (x, block, view) => {
    const max = signedAbsMax(x);
    const d = max / -16;
    const id = d ? 1 / d : 0;
    view.setUint16(0, floatToHalfBits(d), true);
    packQ5(x.map((v) => Math.min(31, Math.trunc(v * id + 16.5))), block, view, 2);
  },
  [GGMLType.Q5_1]: (x, block, view) => packQ5(minMaxQuants(x, 31, view), block, view, 4),
  [GGMLType.Q5_K]: (x, block, view) => {
    const q = kSubBlockQuants(x, 31, block, view);
    for (let p = 0; p < 4; p++) {
      for (let l = 0; l < 32; l++) {
        const a = q[64 * p + l], b = q[64 * p + 32 + l];
        block[48 + 32 * p + l] = (a & 0xf) | ((b & 0xf) << 4);
        block[16 + l] |= ((a >> 4) << (2 * p)) | ((b >> 4) << (2 * p + 1));
      }
    }
  },
  [GGMLType.Q3_K]: (x, block, view) => {
    // Per group of 16 the value of largest magnitude maps to -4, the group scales to 6 bits (-32..31) as Q6_K's.
    const ls = signedScales(Array.from({ length: 16 }, (_, g) => signedAbsMax(x.slice(16 * g, 16 * g + 16)) / -4), 32, view, 108);
    const d = halfBitsToFloat(view.getUint16(108, true));
    for (let j = 0; j < 16; j++) {
      const s = ls[j] + 32;
      block[96 + (j & 7)] |= (s & 0xf) << (4 * (j >> 3));
      block[104 + (j & 3)] |= (s >> 4) << (2 * (j >> 2));
    }
    for (let e = 0; e < 256; e++) {
      const step = d * ls[e >> 4];
      const q = (step ? clamp(Math.round(x[e] / step), -4, 3) : 0) + 4;
      const h = e >> 7, r = (e >> 5) & 3, l = e & 31;
      block[32 + 32 * h + l] |= (q & 3) << (2 * r);
      block[l] |= (q >> 2) << (4 * h + r);
    }
  },
  [GGMLType.Q2_K]: (x, block, view) => {
    // Per group of 16: scale = (max - min) / 3 and min = -min(0, min(x)), both to 4 bits against the largest.
    const scales: number[] = [];
    const mins: number[] = [];
    for (let g = 0; g < 16; g++) {
      const sub = x.slice(16 * g, 16 * g + 16);
      const lo = Math.min(0, ...sub);
      scales.push((Math.max(...sub) - lo) / 3);
      mins.push(-lo);
    }
    const [ls, d] = unsignedScales(scales, 15, view, 80);
    const [lm, dmin] = unsignedScales(mins, 15, view, 82);
    for (let g = 0; g < 16; g++) block[g] = ls[g] | (lm[g] << 4);
    for (let e = 0; e < 256; e++) {
      const step = d * ls[e >> 4];
      const q = step ? clamp(Math.round((x[e] + dmin * lm[e >> 4]) / step), 0, 3) : 0;
      block[16 + 32 * (e >> 7) + (e & 31)] |= q << (2 * ((e >> 5) & 3));
    }
  },
  [GGMLType.IQ4_NL]: (x, block, view) => {
    view.setUint16(0, floatToHalfBits(signedAbsMax(x) / IQ4_VALUES[0]), true);
    const q = iq4Indices(x, halfBitsToFloat(view.getUint16(0, true)));
    for (let j = 0; j < 16; j++) block[2 + j] = q[j] | (q[j + 16] << 4);
  },
  [GGMLType.IQ4_XS]: (x, block, view) => {
    // Per sub-block of 32 the value of largest magnitude maps to the table's -127; the sub-block
    // scales to 6 bits (-32..31) as Q6_K's.
    const ls = signedScales(Array.from({ length: 8 }, (_, j) => signedAbsMax(x.slice(32 * j, 32 * j + 32)) / IQ4_VALUES[0]), 32, view, 0);
    const d = halfBitsToFloat(view.getUint16(0, true));
    let high = 0;
    for (let j = 0; j < 8; j++) {
      const s = ls[j] + 32;
      block[4 + (j >> 1)] |= (s & 0xf) << (4 * (j & 1));
      high |= (s >> 4) << (2 * j);
      const q = iq4Indices(x.slice(32 * j, 32 * j + 32), d * ls[j]);
      for (let l = 0; l < 16; l++) block[8 + 16 * j + l] = q[l] | (q[l + 16] << 4);
    }
    view.setUint16(2, high, true);
  },
  [GGMLType.Q6_K]: (x, block, view) => {
    // Per group of 16: the value of largest magnitude maps to -32; the 16 group scales are then
    // quantized to i8 the same way (largest magnitude to -128).
    const groupScales = Array.from({ length: 16 }, (_, g) => signedAbsMax(x.slice(16 * g, 16 * g + 16)) / -32);
    const maxScale = signedAbsMax(groupScales);
    const iscale = maxScale ? -128 / maxScale : 0;
    view.setUint16(208, floatToHalfBits(iscale ? 1 / iscale : 0), true);
    const d = halfBitsToFloat(view.getUint16(208, true));
    const sc = groupScales.map((v) => Math.min(127, Math.round(iscale * v)));
    for (let g = 0; g < 16; g++) view.setInt8(192 + g, sc[g]);
    const q = x.map((v, e) => {
      const step = d * sc[e >> 4];
      return (step ? clamp(Math.round(v / step), -32, 31) : 0) + 32;
    });
    for (let e = 0; e < 256; e++) {
      const h = e >> 7, r = (e >> 5) & 3, l = e & 31;
      block[64 * h + 32 * (r & 1) + l] |= (q[e] & 0xf) << (4 * (r >> 1));
      block[128 + 32 * h + l] |= (q[e] >> 4) << (2 * r);
    }
  },
};

const DEQUANTIZERS: Record<QuantType, Dequantizer> = {
  [GGMLType.Q8_0]: (_block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    for (let i = 0; i < 32; i++) out[i] = d * view.getInt8(2 + i);
  },
  [GGMLType.Q4_0]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    for (let j = 0; j < 16; j++) {
      out[j] = d * ((block[2 + j] & 0xf) - 8);
      out[j + 16] = d * ((block[2 + j] >> 4) - 8);
    }
  },
  [GGMLType.Q4_1]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    const m = halfBitsToFloat(view.getUint16(2, true));
    for (let j = 0; j < 16; j++) {
      out[j] = d * (block[4 + j] & 0xf) + m;
      out[j + 16] = d * (block[4 + j] >> 4) + m;
    }
  },
  [GGMLType.Q5_0]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    unpackQ5(block, view, 2).forEach((q, e) => (out[e] = d * (q - 16)));
  },
  [GGMLType.Q5_1]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    const m = halfBitsToFloat(view.getUint16(2, true));
    unpackQ5(block, view, 4).forEach((q, e) => (out[e] = d * q + m));
  },
  [GGMLType.Q4_K]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    const dmin = halfBitsToFloat(view.getUint16(2, true));
    for (let s = 0; s < 8; s++) {
      const [sc, m] = q4kScaleMin(block.subarray(4, 16), s);
      const p = s >> 1, shift = 4 * (s & 1);
      for (let l = 0; l < 32; l++) out[32 * s + l] = d * sc * ((block[16 + 32 * p + l] >> shift) & 0xf) - dmin * m;
    }
  },
  [GGMLType.Q6_K]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(208, true));
    for (let e = 0; e < 256; e++) {
      const h = e >> 7, r = (e >> 5) & 3, l = e & 31;
      const low = (block[64 * h + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 0xf;
      const high = (block[128 + 32 * h + l] >> (2 * r)) & 3;
      out[e] = d * view.getInt8(192 + (e >> 4)) * ((low | (high << 4)) - 32);
    }
  },
  [GGMLType.Q5_K]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    const dmin = halfBitsToFloat(view.getUint16(2, true));
    for (let s = 0; s < 8; s++) {
      const [sc, m] = q4kScaleMin(block.subarray(4, 16), s);
      const p = s >> 1, shift = 4 * (s & 1);
      for (let l = 0; l < 32; l++) {
        const q = ((block[48 + 32 * p + l] >> shift) & 0xf) | (((block[16 + l] >> s) & 1) << 4);
        out[32 * s + l] = d * sc * q - dmin * m;
      }
    }
  },
  [GGMLType.Q3_K]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(108, true));
    for (let e = 0; e < 256; e++) {
      const h = e >> 7, r = (e >> 5) & 3, l = e & 31, j = e >> 4;
      const s = ((block[96 + (j & 7)] >> (4 * (j >> 3))) & 0xf) | (((block[104 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4);
      const q = ((block[32 + 32 * h + l] >> (2 * r)) & 3) | (((block[l] >> (4 * h + r)) & 1) << 2);
      out[e] = d * (s - 32) * (q - 4);
    }
  },
  [GGMLType.Q2_K]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(80, true));
    const dmin = halfBitsToFloat(view.getUint16(82, true));
    for (let e = 0; e < 256; e++) {
      const q = (block[16 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
      const sm = block[e >> 4];
      out[e] = d * (sm & 0xf) * q - dmin * (sm >> 4);
    }
  },
  [GGMLType.IQ4_NL]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    for (let j = 0; j < 16; j++) {
      out[j] = d * IQ4_VALUES[block[2 + j] & 0xf];
      out[j + 16] = d * IQ4_VALUES[block[2 + j] >> 4];
    }
  },
  [GGMLType.IQ4_XS]: (block, view, out) => {
    const d = halfBitsToFloat(view.getUint16(0, true));
    const high = view.getUint16(2, true);
    for (let j = 0; j < 8; j++) {
      const s = ((block[4 + (j >> 1)] >> (4 * (j & 1))) & 0xf) | (((high >> (2 * j)) & 3) << 4);
      for (let l = 0; l < 16; l++) {
        out[32 * j + l] = d * (s - 32) * IQ4_VALUES[block[8 + 16 * j + l] & 0xf];
        out[32 * j + l + 16] = d * (s - 32) * IQ4_VALUES[block[8 + 16 * j + l] >> 4];
      }
    }
  },
  [GGMLType.BF16]: (_block, view, out) => {
    out[0] = bf16BitsToFloat(view.getUint16(0, true));
  },
};

/**
 * Q4_1 / Q5_1: d = (max - min) / qmax and m = min written as f16 at bytes 0 and 2; returns the
 * quants, (x - min) / d rounded half up, as ggml's reference (which rounds with the f32 d, not the f16 one).
 */
function minMaxQuants(x: number[], qmax: number, view: DataView): number[] {
  const min = Math.min(...x);
  const d = (Math.max(...x) - min) / qmax;
  const id = d ? 1 / d : 0;
  view.setUint16(0, floatToHalfBits(d), true);
  view.setUint16(2, floatToHalfBits(min), true);
  return x.map((v) => Math.min(qmax, Math.trunc((v - min) * id + 0.5)));
}

/**
 * Q5_K: per sub-block of 32, scale = (max - min) / qmax and min = -min(0, min(x)), both
 * quantized to 6 bits against the super-block's largest scale and min; writes d, dmin (bytes 0, 2)
 * and the 12 packed scale bytes (4..15), and returns the quants 0..qmax.
 */
function kSubBlockQuants(x: number[], qmax: number, block: Uint8Array, view: DataView): number[] {
  const scales: number[] = [];
  const mins: number[] = [];
  for (let s = 0; s < 8; s++) {
    const sub = x.slice(32 * s, 32 * s + 32);
    const lo = Math.min(0, ...sub);
    scales.push((Math.max(...sub) - lo) / qmax);
    mins.push(-lo);
  }
  const [ls, d] = unsignedScales(scales, 63, view, 0);
  const [lm, dmin] = unsignedScales(mins, 63, view, 2);
  const sc = block.subarray(4, 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      sc[j] = ls[j];
      sc[j + 4] = lm[j];
    } else {
      sc[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      sc[j - 4] |= (ls[j] >> 4) << 6;
      sc[j] |= (lm[j] >> 4) << 6;
    }
  }
  return x.map((v, i) => {
    const s = i >> 5;
    const step = d * ls[s];
    return step ? clamp(Math.round((v + dmin * lm[s]) / step), 0, qmax) : 0;
  });
}

/**
 * Non-negative scales to integers 0..levels against the largest: the super-block factor max / levels
 * is written as f16 at byte `at`; returns the integers and that factor as stored.
 */
function unsignedScales(values: number[], levels: number, view: DataView, at: number): [number[], number] {
  const max = Math.max(...values);
  view.setUint16(at, floatToHalfBits(max / levels), true);
  return [values.map((v) => (max > 0 ? Math.min(levels, Math.round((levels / max) * v)) : 0)), halfBitsToFloat(view.getUint16(at, true))];
}

/**
 * Signed scales to integers -half..half - 1, the one of largest magnitude to -half (as Q6_K's): the
 * super-block factor is written as f16 at byte `at`; returns the integers.
 */
function signedScales(values: number[], half: number, view: DataView, at: number): number[] {
  const max = signedAbsMax(values);
  const iscale = max ? -half / max : 0;
  view.setUint16(at, floatToHalfBits(iscale ? 1 / iscale : 0), true);
  return values.map((v) => clamp(Math.round(iscale * v), -half, half - 1));
}

/** For each value, the index of the nearest of IQ4_VALUES times d (0 where d is 0: any index decodes to 0). */
function iq4Indices(x: number[], d: number): number[] {
  return x.map((v) => {
    if (!d) return 0;
    let best = 0;
    for (let i = 1; i < 16; i++) if (Math.abs(IQ4_VALUES[i] * d - v) < Math.abs(IQ4_VALUES[best] * d - v)) best = i;
    return best;
  });
}

/** f32 to BF16 bits as ggml converts: round to nearest even, NaN kept quiet. */
export function floatToBF16Bits(value: number): number {
  const u = new Uint32Array(new Float32Array([value]).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 64;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f32 whose top half is `h`. */
export function bf16BitsToFloat(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
}

/** Writes 32 5-bit quants as Q5_0 / Q5_1 do: qh (u32) at byte `at`, then the qs nibbles as Q4_0's. */
function packQ5(q: number[], block: Uint8Array, view: DataView, at: number): void {
  let qh = 0;
  for (let e = 0; e < 32; e++) qh |= (q[e] >> 4) << e;
  view.setUint32(at, qh >>> 0, true);
  for (let j = 0; j < 16; j++) block[at + 4 + j] = (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4);
}

/** The 32 5-bit quants of a Q5_0 / Q5_1 block whose qh starts at byte `at`. */
function unpackQ5(block: Uint8Array, view: DataView, at: number): number[] {
  const qh = view.getUint32(at, true);
  return Array.from({ length: 32 }, (_, e) => ((block[at + 4 + (e & 15)] >> (4 * (e >> 4))) & 0xf) | (((qh >>> e) & 1) << 4));
}

/** Q4_K's 6-bit scale and min of sub-block j from the 12 packed bytes: j < 4 in the low 6 bits of
 *  bytes j and j + 4; j >= 4 split between byte j + 4 (low 4 bits) and the top 2 bits of bytes j - 4 and j. */
export function q4kScaleMin(s: Uint8Array, j: number): [number, number] {
  if (j < 4) return [s[j] & 63, s[j + 4] & 63];
  return [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
}

/** The element of largest magnitude, with its sign (the first of equals). */
function signedAbsMax(x: number[]): number {
  let best = 0;
  for (const v of x) if (Math.abs(v) > Math.abs(best)) best = v;
  return best;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
