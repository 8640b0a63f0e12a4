// Matvec with int8 activations, for CPU adapters (SwiftShader, llvmpipe): y[t, n] = sum_k W[n, k] x[t, k]
// with x quantized per block of 32 by quantize_x.wgsl. A CPU pays for every load (each is a gather
// across lanes) and for every instruction, not for bytes: decoding each weight to f32 costs several
// vector instructions per weight, so this kernel keeps weights as integers and multiplies several
// per instruction. Integer sums are exact; scales are applied per block.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, cache_rows, n0, n1}),
//           2 xq [n_tokens, ...] u32: x's quants, laid out as quantize_x.wgsl's variant for the format,
//           3 xs [n_tokens, k / 32] vec2<f32> (d, d * sum q), 4 W [n_out, k] (raw GGUF blocks as u32
//           words), 5 y [n_tokens, n_out] f32 (token t at row (pos0 + t) % cache_rows when cache_rows > 0);
//           BIAS adds 6 bias [n_out] f32. STACK2, STACK3 (linear_store.wgsl): a weight stacking 2
//           or 3 linears, each part's rows to its own output (y, then bindings 8 and 9).
// The loop walks k in blocks (per row: row_block, what the block's steps need) and each block in
// steps (w_unit: a row's weights for the step, loaded and unpacked; x_unit: a token's x for it;
// unit_dot: the two met). Variants (one of), with their block and step:
//   W_Q8_0                 a pair of blocks (64 elements, 68 bytes: k a multiple of 64 puts every pair
//                          on a word) in one step, the first block's fields half a word off; x as
//                          four int8 per word, met by dot4I8Packed;
//   W_Q4_0, W_Q5_0,        with W_PAIR_BLOCKS: a pair of blocks (36, 44 bytes) in one step, x as
//   W_Q5_0R                16-bit pairs (quantize_x PAIRS) met by packed products (below); Q5_0R
//                          is Q5_0 regrouped at load (src/model/regroup.ts), 1.4x faster here;
//   W_Q4_K                 a 144-byte block in four steps of 64 elements, x as pairs;
//   W_Q6_K, W_Q6_KR        a 210-byte block in two steps of 128 elements (Q6_KR: Q6_K regrouped at
//                          load, src/model/regroup.ts, every field on a word); Q6_K's blocks start on a word or
//                          half a word; x as pairs.
//   W_Q5_K                 as Q4_K, a 176-byte block in four steps, quants made signed (q - 16);
//   W_Q3_K                 as Q6_K, a 110-byte block (on a word or half a word) in two steps, 3-bit
//                          quants (q - 4) and 16 6-bit scales;
//   W_Q2_K                 as Q6_K, an 84-byte block in two steps, 2-bit quants with a 4-bit scale
//                          and min per 16: the mins meet x's sums per 16 (sum16), worked out once per
//                          token and step for the four rows;
//   W_IQ4_NL               a pair of blocks (36 bytes) in one step, as Q8_0: each 4-bit index becomes
//                          its int8 table value (iq4_bytes, quant.wgsl), four to a word, met with x as
//                          four int8 per word by dot4I8Packed (the values span -127..113: 8 bits, so
//                          packed products would hold one per sum);
//   W_IQ4_XS               a quarter of a 136-byte block (64 elements) in one step, as IQ4_NL.
// BF16 has no int8 variant: its weights carry their own exponent each, with no block scale to make
// them integers; it is read as F16 is (matvec_rows.wgsl).
// Packed products (x as pairs): a weight word holds two signed 16-bit weights, elements e (low half)
// and f (high half); the x word for them is x_f + 65536 x_e. Their product, mod 2^32, is
// w_e x_f + 65536 (w_e x_e + w_f x_f): the high half is the two-element dot product, and a sum of such
// products stays exact while the low halves sum to within +-2^15 and the high halves too. With
// |x| <= 127 that allows 16 products of signed 4-bit weights, 8 of 5-bit or of unsigned 4-bit, and 4
// of 6-bit per sum; each format sums no more (the extremes test in tests/kernels.test.ts reaches these
// bounds). Weights are made signed (q - 8, q - 16, q - 32) with one subtraction per word, except
// Q4_K's, whose mins already meet x's block sums. On SwiftShader dot4I8Packed
// costs more than the packed products for 4-, 5- and 6-bit weights (Q6_K ran 1.7x faster on them);
// Q8_0's 8-bit weights would allow one product per sum, and keep dot4I8Packed.
// Needs subgroups of at least 4: lanes 0..3 each load a quarter of the x words all lanes share and
// subgroupBroadcast hands them round.
// TOKENS4 (prefill): four tokens per invocation too, so that each weight is loaded and unpacked once
// for four tokens (16 tokens through a 1536x576 linear on SwiftShader, per token: Q5_0 2.2x, Q4_0
// 1.7x, Q4_K 1.9x, Q6_K 2.0x, Q8_0 1.1x faster; Q8_0's dot4I8Packed is paid per token).
// Dispatch: g = ceil(n_out / (4 WG)) workgroups, as (min(g, 65535), ceil(g / 65535), n_tokens), or
// ceil(n_tokens / 4) with TOKENS4; each invocation computes 4 consecutive rows, so each x load
// serves four rows.

enable subgroups;

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> xq: array<u32>;
@group(0) @binding(3) var<storage, read> xs: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> W: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
#ifdef BIAS
@group(0) @binding(6) var<storage, read> bias: array<f32>;
#endif

override WG: u32 = 16u;

#include "rows4"
// Block field helpers (upper_lower, i8x4) from quant.wgsl.
#include "weights"

// Elements e, f of each 16-bit pair in a weight word: bytes 0 and 2 (mask), or 1 and 3 (shift 8 first).
const PAIR_LOW4 = vec4<u32>(0x000f000fu);

// Sum of packed products of 16 elements: a holds elements 4 m and 4 m + 2 of groups m = 0..3, b
// elements 4 m + 1 and 4 m + 3; x0, x1 are the 8 x pair words of those groups. Not yet reduced.
fn pair_products(a: vec4<u32>, b: vec4<u32>, x0: vec4<u32>, x1: vec4<u32>) -> vec4<u32> {
  return a * vec4<u32>(x0.x, x0.z, x1.x, x1.z) + b * vec4<u32>(x0.y, x0.w, x1.y, x1.w);
}

// The dot product in the high halves of a sum of packed products (rounding away the low halves).
fn high_half(p: vec4<u32>) -> i32 {
  return bitcast<i32>(p.x + p.y + p.z + p.w + 0x8000u) >> 16u;
}

#ifdef W_Q8_0
#define UNIT64
#endif
#ifdef W_PAIR_BLOCKS
#define UNIT64
#endif
#ifdef W_IQ4_NL
#define UNIT64
#define X_INT8
#endif
#ifdef W_IQ4_XS
#define X_INT8
#define ONE_STEP
#endif
#ifdef W_Q4_K
#define STEPS4
#endif
#ifdef W_Q5_K
#define STEPS4
#endif
#ifdef W_Q8_0
#define X_INT8
#endif

#ifdef UNIT64
#define ONE_STEP
#endif

#ifdef UNIT64
// A pair of 32-element blocks per block and step; a row's pair starts at word i.
const BLOCK = 64u;
alias RowBlock = u32;

fn row_block(row: u32, b: u32) -> RowBlock {
  return UNIT_WORDS * (row * (params.k / 64u) + b);
}
#endif

#ifdef X_INT8
// x as four int8 per word, met by dot4I8Packed: the sum over four words of dot4I8Packed(w[i], x[i]).
fn dot16(w: vec4<u32>, x: vec4<u32>) -> i32 {
  return dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
}
#else
// x as pairs, 64 elements from element e of token t: its 32 pair words (lanes 0..3 each load a
// quarter) and (d, d * sum q) of its two blocks.
struct XPairs {
  x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>,
  dx: vec4<f32>,
}

fn x_pairs(t: u32, e: u32, lane: u32) -> XPairs {
  let w = t * (params.k / 2u) + e / 2u + lane;
  let s = xs[t * (params.k / 32u) + e / 32u + (lane & 1u)]; // lanes 0, 1: the two blocks
  return XPairs(spread(xq[w]), spread(xq[w + 4u]), spread(xq[w + 8u]), spread(xq[w + 12u]),
                spread(xq[w + 16u]), spread(xq[w + 20u]), spread(xq[w + 24u]), spread(xq[w + 28u]),
                vec4<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u)));
}

// 32 weights as 16-bit pairs: elements 0..15 as a (bytes 0, 2 of four words) and b (bytes 1, 3),
// elements 16..31 as c and e.
struct Pairs32 {
  a: vec4<u32>,
  b: vec4<u32>,
  c: vec4<u32>,
  e: vec4<u32>,
}

// 32 weights against their 16 x pair words, in two sums of 8 products (for weights in -16..15, or
// 0..15).
fn sum_8(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return high_half(pair_products(p.a, p.b, x0, x1)) + high_half(pair_products(p.c, p.e, x2, x3));
}
#endif

#ifdef W_Q8_0
// Blocks 2 b and 2 b + 1 of a row: 17 words at i. The first has d in the low half of word 0 and
// its 32 quants across words 0..8, half a word off; rather than realign them, each of words 0..8
// meets x realigned the same way (XUnit a, b, c: x's words of the first block shifted by half a
// word, zero where d's bytes fall). The second block has d in the high half of word 8 (which c
// zeroes) and its quants in words 9..16.
struct WUnit {
  w0: vec4<u32>, // words 0..3
  w4: vec4<u32>, // 4..7
  w8: u32,
  w9: vec4<u32>, // 9..12
  w13: vec4<u32>, // 13..16
  d: vec2<f32>,
}
const UNIT_WORDS = 17u;

fn w_unit(i: RowBlock, s: u32) -> WUnit {
  let w0 = W[i];
  let w8 = W[i + 8u];
  return WUnit(vec4<u32>(w0, W[i + 1u], W[i + 2u], W[i + 3u]), vec4<u32>(W[i + 4u], W[i + 5u], W[i + 6u], W[i + 7u]), w8,
               vec4<u32>(W[i + 9u], W[i + 10u], W[i + 11u], W[i + 12u]), vec4<u32>(W[i + 13u], W[i + 14u], W[i + 15u], W[i + 16u]),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w8).y));
}

struct XUnit {
  a: vec4<u32>,
  b: vec4<u32>,
  c: u32,
  x2: vec4<u32>, // the second block's 8 words
  x3: vec4<u32>,
  dx: vec2<f32>,
}

// Token t's x for blocks 2 b, 2 b + 1: lanes 0..3 each load a quarter of its 16 words.
fn x_unit(t: u32, b: u32, s: u32, lane: u32) -> XUnit {
  let w = t * (params.k / 4u) + 16u * b + lane;
  let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]);
  let d = xs[t * (params.k / 32u) + 2u * b + (lane & 1u)].x; // lanes 0, 1: d of blocks 2 b, 2 b + 1
  // The first block's x words shifted by half a word: word j is bytes 4 j - 2 .. 4 j + 1.
  return XUnit(vec4<u32>(x0.x << 16u, upper_lower(x0.x, x0.y), upper_lower(x0.y, x0.z), upper_lower(x0.z, x0.w)),
               vec4<u32>(upper_lower(x0.w, x1.x), upper_lower(x1.x, x1.y), upper_lower(x1.y, x1.z), upper_lower(x1.z, x1.w)),
               x1.w >> 16u, spread(xq[w + 8u]), spread(xq[w + 12u]),
               vec2<f32>(subgroupBroadcast(d, 0u), subgroupBroadcast(d, 1u)));
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let a = dot16(w.w0, x.a) + dot16(w.w4, x.b) + dot4I8Packed(w.w8, x.c);
  let b = dot16(w.w9, x.x2) + dot16(w.w13, x.x3);
  return w.d.x * x.dx.x * f32(a) + w.d.y * x.dx.y * f32(b);
}
#endif

#ifdef X_INT8
#ifndef W_Q8_0
#define IQ4
#endif
#endif

#ifdef IQ4
// A block's 4 quant words q (byte j: index of element j in the low nibble, j + 16 in the high one)
// as the int8 values of elements 0..15 (lo) and 16..31 (hi), four per word.
struct Values32 {
  lo: vec4<u32>,
  hi: vec4<u32>,
}

fn values32(q: vec4<u32>) -> Values32 {
  let n = vec4<u32>(15u);
  let f = vec4<u32>(4u);
  let b0 = bytes_of(q.x); let b1 = bytes_of(q.y); let b2 = bytes_of(q.z); let b3 = bytes_of(q.w);
  return Values32(vec4<u32>(iq4_bytes(b0 & n), iq4_bytes(b1 & n), iq4_bytes(b2 & n), iq4_bytes(b3 & n)),
                  vec4<u32>(iq4_bytes(b0 >> f), iq4_bytes(b1 >> f), iq4_bytes(b2 >> f), iq4_bytes(b3 >> f)));
}

// A step: two blocks (IQ4_NL) or sub-blocks (IQ4_XS) of 32, with their factors.
struct WUnit {
  first: Values32,
  second: Values32,
  f: vec2<f32>,
}

// x's 16 words for elements e .. e + 63 (lanes 0..3 each load a quarter) and d of its two blocks.
struct XUnit {
  x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>,
  dx: vec2<f32>,
}

fn x_int8(t: u32, e: u32, lane: u32) -> XUnit {
  let w = t * (params.k / 4u) + e / 4u + lane;
  let d = xs[t * (params.k / 32u) + e / 32u + (lane & 1u)].x; // lanes 0, 1: the two blocks
  return XUnit(spread(xq[w]), spread(xq[w + 4u]), spread(xq[w + 8u]), spread(xq[w + 12u]), vec2<f32>(subgroupBroadcast(d, 0u), subgroupBroadcast(d, 1u)));
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let a = dot16(w.first.lo, x.x0) + dot16(w.first.hi, x.x1);
  let b = dot16(w.second.lo, x.x2) + dot16(w.second.hi, x.x3);
  return w.f.x * x.dx.x * f32(a) + w.f.y * x.dx.y * f32(b);
}
#endif

#ifdef W_IQ4_NL
const UNIT_WORDS = 9u;

// Blocks 2 b and 2 b + 1: 9 words at i, as Q4_0's: the first block's d in the low half of word 0,
// its quants from byte 2; the second's d in the high half of word 4, quants in words 5..8.
fn w_unit(i: RowBlock, s: u32) -> WUnit {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  return WUnit(values32(vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4))),
               values32(vec4<u32>(W[i + 5u], W[i + 6u], W[i + 7u], W[i + 8u])),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w4).y));
}

fn x_unit(t: u32, b: u32, s: u32, lane: u32) -> XUnit {
  return x_int8(t, 64u * b, lane);
}
#endif

#ifdef W_IQ4_XS
// A quarter of a 136-byte block per block and step: one step's code, as IQ4_NL's (four steps written
// out, as Q4_K's, ran at half the speed on SwiftShader).
const BLOCK = 64u;

// Quarter b of a row's blocks: its 8 quant words (sub-blocks 2 (b % 4) and 2 (b % 4) + 1) and
// their factors, d times the 6-bit scales (low 4 bits: nibble j of word 1; top 2: bits 16 + 2 j of
// word 0; less 32).
struct RowBlock {
  q: u32,
  f: vec2<f32>,
}

fn row_block(row: u32, b: u32) -> RowBlock {
  let i = 34u * (row * (params.k / 256u) + (b >> 2u));
  let s = b & 3u;
  let w0 = W[i];
  let j = vec2<u32>(2u * s, 2u * s + 1u);
  let low = (vec2<u32>(W[i + 1u]) >> (4u * j)) & vec2<u32>(15u);
  let high = (vec2<u32>(w0) >> (16u + 2u * j)) & vec2<u32>(3u);
  return RowBlock(i + 2u + 8u * s, unpack2x16float(w0).x * (vec2<f32>(low | (high << vec2<u32>(4u))) - 32.0));
}

fn w_unit(r: RowBlock, s: u32) -> WUnit {
  let q = r.q;
  return WUnit(values32(vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u])), values32(vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u])), r.f);
}

fn x_unit(t: u32, b: u32, s: u32, lane: u32) -> XUnit {
  return x_int8(t, 64u * b, lane);
}
#endif

#ifdef W_PAIR_BLOCKS
struct WUnit {
  first: Pairs32,
  second: Pairs32,
  d: vec2<f32>,
}
alias XUnit = XPairs;

fn x_unit(t: u32, b: u32, s: u32, lane: u32) -> XUnit {
  return x_pairs(t, 64u * b, lane);
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let a = block_sum(w.first, x.x0, x.x1, x.x2, x.x3);
  let b = block_sum(w.second, x.x4, x.x5, x.x6, x.x7);
  return w.d.x * x.dx.x * f32(a) + w.d.y * x.dx.z * f32(b);
}
#endif

#ifdef W_Q4_0
// One block's quant words q (byte j: element j in the low nibble, j + 16 in the high one) as q - 8.
fn pairs32(q: vec4<u32>) -> Pairs32 {
  let o = vec4<u32>(0x00080008u);
  return Pairs32((q & PAIR_LOW4) - o, ((q >> vec4<u32>(8u)) & PAIR_LOW4) - o,
                 ((q >> vec4<u32>(4u)) & PAIR_LOW4) - o, ((q >> vec4<u32>(12u)) & PAIR_LOW4) - o);
}

// 16 products of 4-bit weights in one sum.
fn block_sum(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return high_half(pair_products(p.a, p.b, x0, x1) + pair_products(p.c, p.e, x2, x3));
}

// Blocks 2 b and 2 b + 1: 9 words at i. The first: d in the low half of word 0, quants from byte 2;
// the second: d in the high half of word 4, quants in words 5..8.
fn w_unit(i: RowBlock, s: u32) -> WUnit {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  return WUnit(pairs32(vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4))),
               pairs32(vec4<u32>(W[i + 5u], W[i + 6u], W[i + 7u], W[i + 8u])),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w4).y));
}
const UNIT_WORDS = 9u;
#endif

#ifdef W_Q5_0
// As Q4_0's, with bit 4 of element e in bit e of qh, as q - 16. For group m (elements 4 m .. 4 m + 3)
// one multiply by 0x40010 copies qh's nibble m to bits 4..7 and 18..21: bits 4 and 20 then hold bit 4
// of elements 4 m and 4 m + 2 (pair word a), bits 5 and 21 those of 4 m + 1 and 4 m + 3 (b).
fn pairs32(q: vec4<u32>, qh: u32) -> Pairs32 {
  let o = vec4<u32>(0x00100010u);
  let m = vec4<u32>(0x00100010u);
  let lo = ((vec4<u32>(qh) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(0xfu)) * 0x40010u; // elements 0..15
  let hi = ((vec4<u32>(qh) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(0xfu)) * 0x40010u; // 16..31
  return Pairs32(((q & PAIR_LOW4) | (lo & m)) - o, (((q >> vec4<u32>(8u)) & PAIR_LOW4) | ((lo >> vec4<u32>(1u)) & m)) - o,
                 (((q >> vec4<u32>(4u)) & PAIR_LOW4) | (hi & m)) - o, (((q >> vec4<u32>(12u)) & PAIR_LOW4) | ((hi >> vec4<u32>(1u)) & m)) - o);
}

// 8 products of 5-bit weights per sum.
fn block_sum(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return sum_8(p, x0, x1, x2, x3);
}

// Blocks 2 b and 2 b + 1: 11 words at i. The first: d in the low half of word 0, then qh and the
// quants from byte 2; the second: d in the high half of word 5, qh word 6, quants in words 7..10.
fn w_unit(i: RowBlock, s: u32) -> WUnit {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u]; let w5 = W[i + 5u];
  return WUnit(pairs32(vec4<u32>(upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4), upper_lower(w4, w5)), upper_lower(w0, w1)),
               pairs32(vec4<u32>(W[i + 7u], W[i + 8u], W[i + 9u], W[i + 10u]), W[i + 6u]),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w5).y));
}
const UNIT_WORDS = 11u;
#endif

#ifdef W_Q5_0R
// Q5_0 regrouped (src/model/regroup.ts): d of both blocks in word 0, the 64 quants as five-bit
// fields of words 1..10 (three per half-word), so each pair word is one shift and one mask away,
// where Q5_0 spends more on its fifth bits than on the products.
const FIVE = vec4<u32>(0x001f001fu);

// Bits 15 and 31 of the five words a, b as a pair word: bit k of each value from word k.
fn spare_pair(a: vec4<u32>, b: u32) -> u32 {
  let t = (a >> vec4<u32>(15u, 14u, 13u, 12u)) & vec4<u32>(0x00010001u, 0x00020002u, 0x00040004u, 0x00080008u);
  return t.x | t.y | t.z | t.w | ((b >> 11u) & 0x00100010u);
}

// 8 products of 5-bit weights per sum.
fn block_sum(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return sum_8(p, x0, x1, x2, x3);
}

// Pairs 2 b and 2 b + 1: 11 words at i, laid out as q5Slot (regroup.ts) says.
fn w_unit(i: RowBlock, s: u32) -> WUnit {
  let a = vec4<u32>(W[i + 1u], W[i + 2u], W[i + 3u], W[i + 4u]);
  let b = vec4<u32>(W[i + 5u], W[i + 6u], W[i + 7u], W[i + 8u]);
  let c = vec2<u32>(W[i + 9u], W[i + 10u]);
  let o = vec4<u32>(0x00100010u);
  let five = vec4<u32>(5u);
  let ten = vec4<u32>(10u);
  return WUnit(Pairs32((a & FIVE) - o, ((a >> five) & FIVE) - o, (b & FIVE) - o, ((b >> five) & FIVE) - o),
               Pairs32(((a >> ten) & FIVE) - o, ((vec4<u32>(c, c) >> vec4<u32>(0u, 0u, 5u, 5u)) & FIVE) - o, ((b >> ten) & FIVE) - o,
                       vec4<u32>((c >> vec2<u32>(10u)) & FIVE.xy, spare_pair(a, b.x), spare_pair(vec4<u32>(b.yzw, c.x), c.y)) - o),
               unpack2x16float(W[i]));
}
const UNIT_WORDS = 11u;
#endif

#ifdef W_Q4_K
#define K_SUB32
const K_WORDS = 36u; // 144-byte blocks
#endif
#ifdef W_Q5_K
#define K_SUB32
const K_WORDS = 44u; // 176-byte blocks
#endif

#ifdef K_SUB32
const BLOCK = 256u; // in four steps

// A row's block: its first word, and for each step s the f32 factors of sub-blocks 2 s and 2 s + 1:
// (d sc, d sc', -dmin m, -dmin m'), the 6-bit scales and mins all unpacked at once, four per word.
// Q5_K's quants are made signed (q - 16): the 16 d sc each gives up joins the min's factor.
struct RowBlock {
  i: u32,
  f0: vec4<f32>,
  f1: vec4<f32>,
  f2: vec4<f32>,
  f3: vec4<f32>,
}

fn row_block(row: u32, b: u32) -> RowBlock {
  let i = K_WORDS * (row * (params.k / 256u) + b);
  let h = vec4<u32>(W[i], W[i + 1u], W[i + 2u], W[i + 3u]); // (d, dmin), then the 12 bytes of scales and mins
  let dm = unpack2x16float(h.x);
  // Sub-blocks 0..3: the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); 4..7: the nibbles of
  // bytes 8..11, with bits 6, 7 of bytes 0..3 (scales) and 4..7 (mins) above them.
  let sc_lo = dm.x * vec4<f32>(unpack4xU8(h.y & 0x3f3f3f3fu));
  var m_lo = -dm.y * vec4<f32>(unpack4xU8(h.z & 0x3f3f3f3fu));
  let sc_hi = dm.x * vec4<f32>(unpack4xU8((h.w & 0x0f0f0f0fu) | ((h.y >> 2u) & 0x30303030u)));
  var m_hi = -dm.y * vec4<f32>(unpack4xU8(((h.w >> 4u) & 0x0f0f0f0fu) | ((h.z >> 2u) & 0x30303030u)));
#ifdef W_Q5_K
  m_lo += 16.0 * sc_lo;
  m_hi += 16.0 * sc_hi;
#endif
  return RowBlock(i, vec4<f32>(sc_lo.xy, m_lo.xy), vec4<f32>(sc_lo.zw, m_lo.zw), vec4<f32>(sc_hi.xy, m_hi.xy), vec4<f32>(sc_hi.zw, m_hi.zw));
}

// Step s: sub-blocks 2 s (low nibbles) and 2 s + 1 (high nibbles) with their factors f. Q4_K's
// unsigned 4-bit quants and Q5_K's signed 5-bit ones both allow 8 products per sum.
struct WUnit {
  low: Pairs32,
  high: Pairs32,
  f: vec4<f32>,
}

fn step_factors(r: RowBlock, s: u32) -> vec4<f32> {
  return select(select(r.f0, r.f1, s == 1u), select(r.f2, r.f3, s == 3u), s >= 2u);
}

alias XUnit = XPairs;

fn x_unit(t: u32, b: u32, s: u32, lane: u32) -> XUnit {
  return x_pairs(t, 256u * b + 64u * s, lane);
}

// w = d sc q - dmin m: the mins meet the x block sums (d * sum q).
fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let low = sum_8(w.low, x.x0, x.x1, x.x2, x.x3);
  let high = sum_8(w.high, x.x4, x.x5, x.x6, x.x7);
  return w.f.x * x.dx.x * f32(low) + w.f.y * x.dx.z * f32(high) + w.f.z * x.dx.y + w.f.w * x.dx.w;
}
#endif

#ifdef W_Q4_K
// The 8 quant words at i + 4 + 8 s: sub-block 2 s in their low nibbles, 2 s + 1 in the high ones.
fn w_unit(r: RowBlock, s: u32) -> WUnit {
  let q = r.i + 4u + 8u * s;
  let qa = vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u]);
  let qb = vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u]);
  return WUnit(Pairs32(qa & PAIR_LOW4, (qa >> vec4<u32>(8u)) & PAIR_LOW4, qb & PAIR_LOW4, (qb >> vec4<u32>(8u)) & PAIR_LOW4),
               Pairs32((qa >> vec4<u32>(4u)) & PAIR_LOW4, (qa >> vec4<u32>(12u)) & PAIR_LOW4, (qb >> vec4<u32>(4u)) & PAIR_LOW4, (qb >> vec4<u32>(12u)) & PAIR_LOW4),
               step_factors(r, s));
}
#endif

#ifdef W_Q5_K
// A sub-block's 32 quants as signed pairs (q - 16): low 4 bits from quant words qa (elements 0..15),
// qb (16..31) at bit `low` (0 or 4), bit 4 from qh words ha, hb at bit `high`.
fn q5k_pairs32(qa: vec4<u32>, qb: vec4<u32>, ha: vec4<u32>, hb: vec4<u32>, low: u32, high: u32) -> Pairs32 {
  let one = vec4<u32>(0x00010001u);
  let o = vec4<u32>(0x00100010u);
  let l0 = vec4<u32>(low);
  let l8 = vec4<u32>(low + 8u);
  let h0 = vec4<u32>(high);
  let h8 = vec4<u32>(high + 8u);
  let four = vec4<u32>(4u);
  return Pairs32((((qa >> l0) & PAIR_LOW4) | (((ha >> h0) & one) << four)) - o, (((qa >> l8) & PAIR_LOW4) | (((ha >> h8) & one) << four)) - o,
                 (((qb >> l0) & PAIR_LOW4) | (((hb >> h0) & one) << four)) - o, (((qb >> l8) & PAIR_LOW4) | (((hb >> h8) & one) << four)) - o);
}

// As Q4_K's, with qh words i + 4 .. i + 11 (bit 2 s for sub-block 2 s, 2 s + 1 for 2 s + 1) and the
// quant words at i + 12 + 8 s.
fn w_unit(r: RowBlock, s: u32) -> WUnit {
  let q = r.i + 12u + 8u * s;
  let qa = vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u]);
  let qb = vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u]);
  let ha = vec4<u32>(W[r.i + 4u], W[r.i + 5u], W[r.i + 6u], W[r.i + 7u]);
  let hb = vec4<u32>(W[r.i + 8u], W[r.i + 9u], W[r.i + 10u], W[r.i + 11u]);
  return WUnit(q5k_pairs32(qa, qb, ha, hb, 0u, 2u * s), q5k_pairs32(qa, qb, ha, hb, 4u, 2u * s + 1u), step_factors(r, s));
}
#endif

// Blocks of 256 in sub-blocks of 16, each with its own scale.
#ifdef W_Q6_K
#define SUB16
#endif
#ifdef W_Q6_KR
#define SUB16
#endif
#ifdef W_Q3_K
#define SUB16
#endif
#ifdef W_Q2_K
#define SUB16
#endif

#ifdef SUB16
const BLOCK = 256u; // in two steps

// 16 quants of one sub-block as 16-bit pairs (Q6_K: q - 32; Q3_K: q - 4; Q2_K: q, unsigned). A
// product's high half is at most 2 * 32 * 127, so each sum takes 4 (q6_sum).
struct Pairs16 {
  a: vec4<u32>,
  b: vec4<u32>,
}

fn q6_sum(p: Pairs16, x0: vec4<u32>, x1: vec4<u32>) -> f32 {
  return f32(high_half(p.a * vec4<u32>(x0.x, x0.z, x1.x, x1.z)) + high_half(p.b * vec4<u32>(x0.y, x0.w, x1.y, x1.w)));
}

// Step h: elements 128 h .. 128 h + 127, sub-blocks 8 h .. 8 h + 7 (16 elements each) with their
// scales times d.
struct WUnit {
  p0: Pairs16, p1: Pairs16, p2: Pairs16, p3: Pairs16, p4: Pairs16, p5: Pairs16, p6: Pairs16, p7: Pairs16,
  sc0: vec4<f32>, // sub-blocks 8 h .. 8 h + 3
  sc1: vec4<f32>, // 8 h + 4 .. 8 h + 7
#ifdef W_Q2_K
  m0: vec4<f32>, // their mins times -dmin
  m1: vec4<f32>,
#endif
}

// A row's block: its first quant word, its 16 int8 scales as four words, and d (Q2_K: its 16 mins
// as four words, and dmin).
struct RowBlock {
  i: u32,
  odd: bool, // Q6_K, Q3_K: the block starts half a word on
  sc: vec4<u32>,
  d: f32,
#ifdef W_Q2_K
  mins: vec4<u32>,
  dmin: f32,
#endif
}

struct Words8 {
  a: vec4<u32>,
  b: vec4<u32>,
}

// The 8 words starting at word i, or (odd) at byte 2 of word i.
fn run8(i: u32, odd: bool) -> Words8 {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  let w5 = W[i + 5u]; let w6 = W[i + 6u]; let w7 = W[i + 7u]; let w8 = W[i + 8u];
  let a = vec4<u32>(w0, w1, w2, w3);
  let b = vec4<u32>(w4, w5, w6, w7);
  let sixteen = vec4<u32>(16u);
  return Words8(select(a, (a >> sixteen) | (vec4<u32>(w1, w2, w3, w4) << sixteen), odd),
                select(b, (b >> sixteen) | (vec4<u32>(w5, w6, w7, w8) << sixteen), odd));
}

// Sub-blocks 8 h .. 8 h + 3 and 8 h + 4 .. 8 h + 7's scales times d.
struct StepScales {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

fn step_scales(r: RowBlock, h: u32) -> StepScales {
  return StepScales(r.d * i8x4(select(r.sc.x, r.sc.z, h == 1u)), r.d * i8x4(select(r.sc.y, r.sc.w, h == 1u)));
}

// 128 elements: two runs of 64 (Q2_K: with the sums of x's quants per 16, for the mins).
struct XUnit {
  lo: XPairs,
  hi: XPairs,
#ifdef W_Q2_K
  s0: vec4<f32>, // sub-blocks 8 h .. 8 h + 3
  s1: vec4<f32>,
#endif
}

#ifdef W_Q2_K
// The sum of the 16 x quants in pair words x0, x1: each word times 0x10001 has x_e + x_f in its high half.
fn sum16(x0: vec4<u32>, x1: vec4<u32>) -> f32 {
  return f32(high_half((x0 + x1) * vec4<u32>(0x10001u)));
}
#endif

fn x_unit(t: u32, b: u32, h: u32, lane: u32) -> XUnit {
  let e = 256u * b + 128u * h;
  let lo = x_pairs(t, e, lane);
  let hi = x_pairs(t, e + 64u, lane);
#ifdef W_Q2_K
  return XUnit(lo, hi, vec4<f32>(sum16(lo.x0, lo.x1), sum16(lo.x2, lo.x3), sum16(lo.x4, lo.x5), sum16(lo.x6, lo.x7)),
               vec4<f32>(sum16(hi.x0, hi.x1), sum16(hi.x2, hi.x3), sum16(hi.x4, hi.x5), sum16(hi.x6, hi.x7)));
#else
  return XUnit(lo, hi);
#endif
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  var r0 = w.sc0.x * q6_sum(w.p0, x.lo.x0, x.lo.x1) + w.sc0.y * q6_sum(w.p1, x.lo.x2, x.lo.x3);
  var r1 = w.sc0.z * q6_sum(w.p2, x.lo.x4, x.lo.x5) + w.sc0.w * q6_sum(w.p3, x.lo.x6, x.lo.x7);
  var r2 = w.sc1.x * q6_sum(w.p4, x.hi.x0, x.hi.x1) + w.sc1.y * q6_sum(w.p5, x.hi.x2, x.hi.x3);
  var r3 = w.sc1.z * q6_sum(w.p6, x.hi.x4, x.hi.x5) + w.sc1.w * q6_sum(w.p7, x.hi.x6, x.hi.x7);
#ifdef W_Q2_K
  // w = d sc q - dmin m: the mins meet x's sums per 16.
  let m = vec4<f32>(dot(w.m0.xy, x.s0.xy), dot(w.m0.zw, x.s0.zw), dot(w.m1.xy, x.s1.xy), dot(w.m1.zw, x.s1.zw));
  r0 += m.x;
  r1 += m.y;
  r2 += m.z;
  r3 += m.w;
#endif
  return dot(vec4<f32>(x.lo.dx.x, x.lo.dx.z, x.hi.dx.x, x.hi.dx.z), vec4<f32>(r0, r1, r2, r3));
}
#endif

#ifdef W_Q6_KR
// Q6_K regrouped in pairs of blocks (src/model/regroup.ts): 105 words per 512 elements, every
// field on a word; a step's 24 quant words hold sub-blocks 0..5 as six-bit fields (bits 0 and 6
// of each half-word), and sub-blocks 6, 7 in the spare bits 12..15 (low four bits in words
// 0..15, top two in words 16..23).
fn row_block(row: u32, b: u32) -> RowBlock {
  let pair = 105u * (row * (params.k / 512u) + (b >> 1u));
  let second = (b & 1u) == 1u;
  let s = pair + select(1u, 5u, second);
  let d = unpack2x16float(W[pair]);
  return RowBlock(pair + select(9u, 57u, second), false, vec4<u32>(W[s], W[s + 1u], W[s + 2u], W[s + 3u]), select(d.x, d.y, second));
}

fn field_pairs(d: vec4<u32>) -> Pairs16 {
  let six = vec4<u32>(0x003f003fu);
  let o = vec4<u32>(0x00200020u);
  return Pairs16((d & six) - o, ((d >> vec4<u32>(6u)) & six) - o);
}

// A spare-bit pair word set: low four bits at bits 12..15 of `low`, top two of pair word w at bits
// 12 + 2 (w & 1) of high word w >> 1 (here hx, hy).
fn spare_pairs(low: vec4<u32>, hx: u32, hy: u32) -> vec4<u32> {
  let top = (vec4<u32>(hx, hx, hy, hy) >> vec4<u32>(8u, 10u, 8u, 10u)) & vec4<u32>(0x00300030u);
  return (((low >> vec4<u32>(12u)) & vec4<u32>(0x000f000fu)) | top) - vec4<u32>(0x00200020u);
}

fn w_unit(r: RowBlock, h: u32) -> WUnit {
  let i = r.i + 24u * h;
  let d0 = vec4<u32>(W[i], W[i + 1u], W[i + 2u], W[i + 3u]);
  let d1 = vec4<u32>(W[i + 4u], W[i + 5u], W[i + 6u], W[i + 7u]);
  let d2 = vec4<u32>(W[i + 8u], W[i + 9u], W[i + 10u], W[i + 11u]);
  let d3 = vec4<u32>(W[i + 12u], W[i + 13u], W[i + 14u], W[i + 15u]);
  let d4 = vec4<u32>(W[i + 16u], W[i + 17u], W[i + 18u], W[i + 19u]);
  let d5 = vec4<u32>(W[i + 20u], W[i + 21u], W[i + 22u], W[i + 23u]);
  let sc = step_scales(r, h);
  return WUnit(field_pairs(d0), field_pairs(d1), field_pairs(d2), field_pairs(d3), field_pairs(d4), field_pairs(d5),
               Pairs16(spare_pairs(d0, d4.x, d4.y), spare_pairs(d1, d4.z, d4.w)),
               Pairs16(spare_pairs(d2, d5.x, d5.y), spare_pairs(d3, d5.z, d5.w)),
               sc.lo, sc.hi);
}
#endif

#ifdef W_Q6_K
// A row's block: its word (odd: half a word on), its 16 int8 scales (bytes 192..207), and d.
fn row_block(row: u32, b: u32) -> RowBlock {
  let byte = 210u * (row * (params.k / 256u) + b);
  let i = byte >> 2u;
  let odd = (byte & 2u) != 0u;
  let tail = run8(i + 48u, odd); // bytes 192..223: the scales, then d (the f16 at byte 208)
  return RowBlock(i, odd, tail.a, unpack2x16float(tail.b.x).x);
}

// 16 quants of one sub-block as pairs: low 4 bits from ql words at bit s_low, high 2 bits from
// qh words at bit s_high.
fn pairs16(ql: vec4<u32>, qh: vec4<u32>, s_low: u32, s_high: u32) -> Pairs16 {
  let q = ((ql >> vec4<u32>(s_low)) & vec4<u32>(0x0f0f0f0fu)) | (((qh >> vec4<u32>(s_high)) & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
  let o = vec4<u32>(0x00200020u);
  return Pairs16((q & vec4<u32>(0x00ff00ffu)) - o, ((q >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu)) - o);
}

// Element 128 h + 32 r + l: low 4 bits in ql[64 h + 32 (r & 1) + l] at bit 4 (r >> 1), high 2 bits
// in qh[32 h + l] at bit 2 r.
fn w_unit(r: RowBlock, h: u32) -> WUnit {
  let even = run8(r.i + 16u * h, r.odd);
  let odd_r = run8(r.i + 16u * h + 8u, r.odd);
  let high = run8(r.i + 32u + 8u * h, r.odd);
  let sc = step_scales(r, h);
  return WUnit(pairs16(even.a, high.a, 0u, 0u), pairs16(even.b, high.b, 0u, 0u), pairs16(odd_r.a, high.a, 0u, 2u), pairs16(odd_r.b, high.b, 0u, 2u),
               pairs16(even.a, high.a, 4u, 4u), pairs16(even.b, high.b, 4u, 4u), pairs16(odd_r.a, high.a, 4u, 6u), pairs16(odd_r.b, high.b, 4u, 6u),
               sc.lo, sc.hi);
}
#endif


#ifdef W_Q3_K
// A row's block: its word (odd: half a word on), its 16 6-bit scales (bytes 96..107) made int8
// (s - 32), and d (the f16 at byte 108).
fn row_block(row: u32, b: u32) -> RowBlock {
  let byte = 110u * (row * (params.k / 256u) + b);
  let i = byte >> 2u;
  let odd = (byte & 2u) != 0u;
  let w0 = W[i + 24u]; let w1 = W[i + 25u]; let w2 = W[i + 26u]; let w3 = W[i + 27u];
  let words = select(vec4<u32>(w0, w1, w2, w3), vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, W[i + 28u])), odd);
  // words.xyz: scales[0..12]; scale j's low 4 bits in byte j % 8 at bit 4 (j / 8), top 2 in byte 8 + j % 4 at bit 2 (j / 4).
  let low = vec4<u32>(words.x, words.y, words.x >> 4u, words.y >> 4u) & vec4<u32>(0x0f0f0f0fu);
  let high = ((vec4<u32>(words.z) >> vec4<u32>(0u, 2u, 4u, 6u)) & vec4<u32>(0x03030303u)) << vec4<u32>(4u);
  // Each byte less 32 with no borrow across bytes: bytes 0..63 | 0x80 less 32, then the top bit back.
  let sc = (((low | high) | vec4<u32>(0x80808080u)) - vec4<u32>(0x20202020u)) ^ vec4<u32>(0x80808080u);
  return RowBlock(i, odd, sc, unpack2x16float(words.w).x);
}

// 16 quants as signed pairs (q - 4): low 2 bits from qs words at bit 2 r, bit 2 from hmask words at bit m.
fn q3k_pairs16(qs: vec4<u32>, hm: vec4<u32>, r: u32, m: u32) -> Pairs16 {
  let q = ((qs >> vec4<u32>(2u * r)) & vec4<u32>(0x03030303u)) | (((hm >> vec4<u32>(m)) & vec4<u32>(0x01010101u)) << vec4<u32>(2u));
  let o = vec4<u32>(0x00040004u);
  return Pairs16((q & vec4<u32>(0x00ff00ffu)) - o, ((q >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu)) - o);
}

// Element 128 h + 32 r + l: low 2 bits in qs[32 h + l] (bytes 32..95) at bit 2 r, bit 2 in hmask[l]
// (bytes 0..31) at bit 4 h + r.
fn w_unit(r: RowBlock, h: u32) -> WUnit {
  let qs = run8(r.i + 8u + 8u * h, r.odd);
  let hm = run8(r.i, r.odd);
  let sc = step_scales(r, h);
  let m = 4u * h;
  return WUnit(q3k_pairs16(qs.a, hm.a, 0u, m), q3k_pairs16(qs.b, hm.b, 0u, m), q3k_pairs16(qs.a, hm.a, 1u, m + 1u), q3k_pairs16(qs.b, hm.b, 1u, m + 1u),
               q3k_pairs16(qs.a, hm.a, 2u, m + 2u), q3k_pairs16(qs.b, hm.b, 2u, m + 2u), q3k_pairs16(qs.a, hm.a, 3u, m + 3u), q3k_pairs16(qs.b, hm.b, 3u, m + 3u),
               sc.lo, sc.hi);
}
#endif

#ifdef W_Q2_K
// A row's block (21 words, every field on a word): scales[16] in words 0..3 (scale in each byte's
// low nibble, min in its high one), qs in words 4..19, (d, dmin) in word 20.
fn row_block(row: u32, b: u32) -> RowBlock {
  let i = 21u * (row * (params.k / 256u) + b);
  let s = vec4<u32>(W[i], W[i + 1u], W[i + 2u], W[i + 3u]);
  let dm = unpack2x16float(W[i + 20u]);
  let n = vec4<u32>(0x0f0f0f0fu);
  return RowBlock(i, false, s & n, dm.x, (s >> vec4<u32>(4u)) & n, dm.y);
}

// 16 quants as unsigned pairs: qs words at bit 2 r.
fn q2k_pairs16(qs: vec4<u32>, r: u32) -> Pairs16 {
  let q = (qs >> vec4<u32>(2u * r)) & vec4<u32>(0x03030303u);
  return Pairs16(q & vec4<u32>(0x00ff00ffu), (q >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu));
}

// Element 128 h + 32 r + l: in qs[32 h + l] (words 4 + 8 h ..) at bit 2 r.
fn w_unit(r: RowBlock, h: u32) -> WUnit {
  let q = r.i + 4u + 8u * h;
  let a = vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u]);
  let b = vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u]);
  let sc = step_scales(r, h);
  let m = -r.dmin;
  return WUnit(q2k_pairs16(a, 0u), q2k_pairs16(b, 0u), q2k_pairs16(a, 1u), q2k_pairs16(b, 1u),
               q2k_pairs16(a, 2u), q2k_pairs16(b, 2u), q2k_pairs16(a, 3u), q2k_pairs16(b, 3u),
               sc.lo, sc.hi, m * i8x4(select(r.mins.x, r.mins.z, h == 1u)), m * i8x4(select(r.mins.y, r.mins.w, h == 1u)));
}
#endif

// The four rows' blocks.
struct Rows4 {
  r0: RowBlock,
  r1: RowBlock,
  r2: RowBlock,
  r3: RowBlock,
}

#ifdef TOKENS4
// Per row, over the four tokens.
struct Acc {
  s0: vec4<f32>,
  s1: vec4<f32>,
  s2: vec4<f32>,
  s3: vec4<f32>,
}
alias Tokens = vec4<u32>;

// One unpacked step of a row against four tokens.
fn dots4(w: WUnit, v0: XUnit, v1: XUnit, v2: XUnit, v3: XUnit) -> vec4<f32> {
  return vec4<f32>(unit_dot(w, v0), unit_dot(w, v1), unit_dot(w, v2), unit_dot(w, v3));
}

// Step s of block b: each row's weights unpacked once for the four tokens ts.
fn add_step(acc: Acc, r: Rows4, b: u32, s: u32, ts: Tokens, lane: u32) -> Acc {
  let v0 = x_unit(ts.x, b, s, lane); let v1 = x_unit(ts.y, b, s, lane); let v2 = x_unit(ts.z, b, s, lane); let v3 = x_unit(ts.w, b, s, lane);
  return Acc(acc.s0 + dots4(w_unit(r.r0, s), v0, v1, v2, v3), acc.s1 + dots4(w_unit(r.r1, s), v0, v1, v2, v3),
             acc.s2 + dots4(w_unit(r.r2, s), v0, v1, v2, v3), acc.s3 + dots4(w_unit(r.r3, s), v0, v1, v2, v3));
}
#else
alias Acc = vec4<f32>; // per row
alias Tokens = u32;

fn add_step(acc: Acc, r: Rows4, b: u32, s: u32, t: Tokens, lane: u32) -> Acc {
  let v = x_unit(t, b, s, lane);
  return acc + vec4<f32>(unit_dot(w_unit(r.r0, s), v), unit_dot(w_unit(r.r1, s), v), unit_dot(w_unit(r.r2, s), v), unit_dot(w_unit(r.r3, s), v));
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sg: u32) {
#ifdef TOKENS4
  let t = 4u * wid.z; // tokens t .. t + 3, those below n_tokens
  // Tokens past the end repeat the last one (not stored), as rows do.
  let ts = min(vec4<u32>(t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(step.n_tokens - 1u));
  var acc = Acc(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
#else
  let t = wid.z;
  let ts = t;
  var acc = vec4<f32>(0.0);
#endif
  if (t >= step.n_tokens) { return; }
  let row0 = first_row(wid, lid, WG);
  let rows = clamped_rows(row0);
  let lane = sg & 3u;
  let blocks = params.k / BLOCK;
  for (var b = 0u; b < blocks; b++) {
    let r = Rows4(row_block(rows.x, b), row_block(rows.y, b), row_block(rows.z, b), row_block(rows.w, b));
    // A block's steps written out: SwiftShader runs a loop over them far slower (a loop of Q8_0's
    // one step cost 40%).
    acc = add_step(acc, r, b, 0u, ts, lane);
#ifndef ONE_STEP
    acc = add_step(acc, r, b, 1u, ts, lane);
#endif
#ifdef STEPS4
    acc = add_step(acc, r, b, 2u, ts, lane);
    acc = add_step(acc, r, b, 3u, ts, lane);
#endif
  }
#ifdef TOKENS4
  for (var j = 0u; j < 4u; j++) {
    if (t + j < step.n_tokens) { store_rows(vec4<f32>(acc.s0[j], acc.s1[j], acc.s2[j], acc.s3[j]), row0, t + j); }
  }
#else
  store_rows(acc, row0, t);
#endif
}
