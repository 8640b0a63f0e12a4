/**
 * Weight formats regrouped at load for CPU adapters (shaders/matvec_int8.wgsl, int8 activations):
 * ggml blocks rearranged in pairs, to the same size, so that the kernel spends fewer instructions
 * on each weight. GPUs read the GGUF layouts as they are.
 *
 * Q5_0R: ggml's Q5_0 blocks regrouped in pairs, the same 44 bytes per 64 elements
 * (weights are x = d * (q - 16), q the 5-bit quant, as in Q5_0). Q5_0 keeps each element's fifth
 * bit apart from its low four (qh), so a kernel spends more instructions putting the bits back
 * together than on the products; here every quant is five contiguous bits, in the places
 * shaders/matvec_int8.wgsl takes them from as 16-bit pairs with one shift and one mask.
 *
 *   word 0       f16 d of the first block (low half), of the second (high half)
 *   words 1..10  the 64 quants: each half-word holds three at bits 0, 5 and 10; bits 15 and 31
 *                of the ten words hold the other four (elements 57, 59, 61 and 63 of the pair), a
 *                bit from each of five words
 *
 * A pair's elements meet x as matvec_int8's Pairs32 (a, b, c, e of each block): pair word a_j
 * holds elements 4 j (low half) and 4 j + 2 (high half), b_j elements 4 j + 1 and 4 j + 3, c_j and
 * e_j the same from element 16 on. q5Slot says where each of the 64 sits.
 */

/** Bytes of one regrouped pair of blocks (two Q5_0 blocks of 22). */
export const Q5_0R_PAIR_BYTES = 44;

/** Where quant `e` (0..63) of a pair lives: five bits of word `word` from bit `bit`, or (spare) bit `bit` of words word .. word + 4. */
export function q5Slot(e: number): { word: number; bit: number; spare: boolean } {
  const block = e >> 5;
  const r = e & 31;
  const kind = ((r >> 4) << 1) | (r & 1); // 0: a, 1: b, 2: c, 3: e
  const j = (r & 15) >> 2;
  const half = 16 * ((r >> 1) & 1);
  // Block 0: a, b from words 1..4 at bits 0 and 5; c, e from words 5..8 at bits 0 and 5.
  // Block 1: a from words 1..4 and c from words 5..8 at bit 10; b from words 9, 10 at bits 0
  // then 5; e from words 9, 10 at bit 10, then the spare bits of words 1..5 and 6..10.
  if (block === 0) return { word: (kind < 2 ? 1 : 5) + j, bit: (kind & 1) * 5 + half, spare: false };
  if (kind === 0 || kind === 2) return { word: (kind === 0 ? 1 : 5) + j, bit: 10 + half, spare: false };
  if (kind === 1) return { word: 9 + (j & 1), bit: (j >> 1) * 5 + half, spare: false };
  if (j < 2) return { word: 9 + j, bit: 10 + half, spare: false };
  return { word: 1 + 5 * (j - 2), bit: 15 + half, spare: true };
}

/** q5Slot of each quant of a pair, worked out once. */
const Q5_SLOTS = Array.from({ length: 64 }, (_, e) => q5Slot(e));

/**
 * A Q5_0 tensor's bytes (whole pairs of 22-byte blocks: rows of a multiple of 64 elements) as
 * Q5_0R, the same size.
 */
export function regroupQ5_0(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (bytes.byteLength % Q5_0R_PAIR_BYTES !== 0) throw new Error(`Q5_0R takes whole pairs of Q5_0 blocks, not ${bytes.byteLength} bytes`);
  const out = new Uint8Array(bytes.byteLength);
  const src = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dst = new DataView(out.buffer);
  const words = new Uint32Array(11);
  for (let at = 0; at < bytes.byteLength; at += Q5_0R_PAIR_BYTES) {
    words.fill(0);
    words[0] = src.getUint16(at, true) | (src.getUint16(at + 22, true) << 16);
    for (let b = 0; b < 2; b++) {
      const block = at + 22 * b;
      const qh = src.getUint32(block + 2, true);
      for (let i = 0; i < 32; i++) {
        const low = (src.getUint8(block + 6 + (i & 15)) >> (4 * (i >> 4))) & 15;
        const q = low | (((qh >>> i) & 1) << 4);
        const slot = Q5_SLOTS[32 * b + i];
        if (slot.spare) {
          for (let k = 0; k < 5; k++) words[slot.word + k] |= ((q >> k) & 1) << slot.bit;
        } else {
          words[slot.word] |= q << slot.bit;
        }
      }
    }
    for (let w = 0; w < 11; w++) dst.setUint32(at + 4 * w, words[w], true);
  }
  return out;
}

/**
 * Q6_KR: ggml's Q6_K blocks regrouped in pairs, the same 420 bytes (105 words) per 512 elements
 * (x = d * scale * (q - 32), q the 6-bit quant, as in Q6_K). Q6_K's 210-byte blocks start every
 * other time half a word off, and keep each quant's top two bits apart from its low four; here
 * every field starts on a word and most quants are six contiguous bits.
 *
 *   word 0        f16 d of the first block (low half), of the second (high half)
 *   words 1..8    the 16 int8 scales of the first block, then of the second
 *   words 9..56   the first block's 256 quants, words 57..104 the second's: 24 words per half
 *                 block (step h, elements 128 h ..), in which sub-block k (16 elements) of the
 *                 step has its quants at bits 0 and 6 of each half-word of words 4 k .. 4 k + 3
 *                 for k < 6; sub-blocks 6 and 7 take the spare bits 12..15 of each half-word:
 *                 the low four bits from words 0..15, the top two from words 16..23
 *
 * Pair words as matvec_int8's Pairs16: a_w holds elements 4 w (low half) and 4 w + 2 (high half)
 * of a sub-block, b_w elements 4 w + 1 and 4 w + 3.
 */

/** Bytes of one regrouped pair of Q6_K blocks. */
export const Q6_KR_PAIR_BYTES = 420;

/**
 * Where quant `e` (0..255 of one block) lives among the block's 48 quant words: `bits` bits of
 * word `word` from bit `bit`; a spare-bit quant (bits 4) also has its top two bits in `highWord`
 * from `highBit`.
 */
export function q6Slot(e: number): { word: number; bit: number; bits: number; highWord?: number; highBit?: number } {
  const h = e >> 7;
  const k = (e & 127) >> 4;
  const i = e & 15;
  const w = i >> 2;
  const odd = i & 1; // b rather than a
  const half = 16 * ((i >> 1) & 1);
  const step = 24 * h;
  if (k < 6) return { word: step + 4 * k + w, bit: 6 * odd + half, bits: 6 };
  const j = 8 * (k - 6) + 4 * odd + w; // spare pair word 0..15
  return { word: step + j, bit: 12 + half, bits: 4, highWord: step + 16 + (j >> 1), highBit: 12 + 2 * (j & 1) + half };
}

/** q6Slot of each quant of a block, worked out once. */
const Q6_SLOTS = Array.from({ length: 256 }, (_, e) => q6Slot(e));

/**
 * A Q6_K tensor's bytes (whole pairs of 210-byte blocks: rows of a multiple of 512 elements) as
 * Q6_KR, the same size.
 */
export function regroupQ6_K(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (bytes.byteLength % Q6_KR_PAIR_BYTES !== 0) throw new Error(`Q6_KR takes whole pairs of Q6_K blocks, not ${bytes.byteLength} bytes`);
  const out = new Uint8Array(bytes.byteLength);
  const dst = new DataView(out.buffer);
  const words = new Uint32Array(105);
  for (let at = 0; at < bytes.byteLength; at += Q6_KR_PAIR_BYTES) {
    words.fill(0);
    for (let b = 0; b < 2; b++) {
      const block = bytes.subarray(at + 210 * b, at + 210 * (b + 1));
      const d = block[208] | (block[209] << 8);
      words[0] |= d << (16 * b);
      for (let s = 0; s < 16; s++) words[1 + 4 * b + (s >> 2)] |= block[192 + s] << (8 * (s & 3));
      const quants = 9 + 48 * b;
      for (let e = 0; e < 256; e++) {
        // Q6_K: element 128 h + 32 r + l has its low 4 bits in ql[64 h + 32 (r & 1) + l] at bit
        // 4 (r >> 1) and its top 2 bits in qh[32 h + l] at bit 2 r.
        const h = e >> 7, r = (e >> 5) & 3, l = e & 31;
        const low = (block[64 * h + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 15;
        const top = (block[128 + 32 * h + l] >> (2 * r)) & 3;
        const q = low | (top << 4);
        const slot = Q6_SLOTS[e];
        if (slot.bits === 6) {
          words[quants + slot.word] |= q << slot.bit;
        } else {
          words[quants + slot.word] |= low << slot.bit;
          words[quants + slot.highWord!] |= top << slot.highBit!;
        }
      }
    }
    for (let w = 0; w < 105; w++) dst.setUint32(at + 4 * w, words[w], true);
  }
  return out;
}
