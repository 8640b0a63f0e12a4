// Matvec with int8 activations, for CPU adapters (SwiftShader, llvmpipe): y[t, n] = sum_k W[n, k] x[t, k]
// with x quantized per block of 32 by quantize_x.wgsl. A CPU pays for every load (each is a gather
// across lanes) and for every instruction, not for bytes: decoding each weight to f32 costs several
// vector instructions per weight, so this kernel keeps weights as integers and multiplies several
// per instruction. Integer sums are exact; scales are applied per block.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, out_at_pos}),
//           2 xq [n_tokens, ...] u32: x's quants, laid out as quantize_x.wgsl's variant for the format,
//           3 xs [n_tokens, k / 32] vec2<f32> (d, d * sum q), 4 W [n_out, k] (raw GGUF blocks as u32
//           words), 5 y [n_tokens, n_out] f32 (token t at row pos0 + t when out_at_pos = 1);
//           BIAS adds 6 bias [n_out] f32.
// Variants (one of), each with the unit a loop step takes from every row:
//   W_Q8_0                 a pair of blocks (64 elements, 68 bytes: k a multiple of 64 puts every pair
//                          on a word), the first block's fields half a word off; x as four int8 per
//                          word, met by dot4I8Packed;
//   W_Q4_0, W_Q5_0         with W_PAIR_BLOCKS: a pair of blocks (36, 44 bytes), x as 16-bit pairs
//                          (quantize_x PAIRS) met by packed products (below);
//   W_Q4_K                 a quarter of a 144-byte block (64 elements), x as pairs;
//   W_Q6_K                 half of a 210-byte block (128 elements); blocks start on a word or half a
//                          word; x as pairs.
// Packed products (x as pairs): a weight word holds two signed 16-bit weights, elements e (low half)
// and f (high half); the x word for them is x_f + 65536 x_e. Their product, mod 2^32, is
// w_e x_f + 65536 (w_e x_e + w_f x_f): the high half is the two-element dot product, and a sum of such
// products stays exact while the low halves sum to within +-2^15 and the high halves too. With
// |x| <= 127 that allows 16 products of 4-bit weights, 8 of 5-bit and 4 of 6-bit per sum; each
// format sums no more (the extremes test in tests/kernels.test.ts reaches these bounds). Weights are
// made signed (q - 8, q - 16, q - 32) with one subtraction per word. On SwiftShader dot4I8Packed
// costs more than the packed products for 4-, 5- and 6-bit weights (Q6_K ran 1.7x faster on them);
// Q8_0's 8-bit weights would allow one product per sum, and keep dot4I8Packed.
// Needs subgroups of at least 4: lanes 0..3 each load a quarter of the x words all lanes share and
// subgroupBroadcast hands them round.
// TOKENS4 (prefill; Q8_0, Q4_0, Q5_0): four tokens per invocation too, so that each weight is loaded
// and unpacked once for four tokens (Q5_0 2.2x, Q4_0 1.7x, Q8_0 1.1x faster per token on SwiftShader).
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
// Block field helpers (upper_lower, i8x4, q4k_scale_min_of) from quant.wgsl.
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
// Q8_0, Q4_0 and Q5_0 take a pair of blocks (64 elements) per loop step, in two parts: w_unit loads
// a row's pair and unpacks it, x_unit gathers a token's x for it, and unit_dot meets the two. With
// TOKENS4 each unpacked pair meets four tokens.

#ifdef W_Q8_0
// x as four int8 per word, met by dot4I8Packed: the sum over four words of dot4I8Packed(w[i], x[i]).
fn dot16(w: vec4<u32>, x: vec4<u32>) -> i32 {
  return dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
}

// Blocks 2 u and 2 u + 1 of a row: 17 words at i. The first has d in the low half of word 0 and
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

fn w_unit(i: u32) -> WUnit {
  let w0 = W[i];
  let w8 = W[i + 8u];
  return WUnit(vec4<u32>(w0, W[i + 1u], W[i + 2u], W[i + 3u]), vec4<u32>(W[i + 4u], W[i + 5u], W[i + 6u], W[i + 7u]), w8,
               vec4<u32>(W[i + 9u], W[i + 10u], W[i + 11u], W[i + 12u]), vec4<u32>(W[i + 13u], W[i + 14u], W[i + 15u], W[i + 16u]),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w8).y));
}
const UNIT_WORDS = 17u;

struct XUnit {
  a: vec4<u32>,
  b: vec4<u32>,
  c: u32,
  x2: vec4<u32>, // the second block's 8 words
  x3: vec4<u32>,
  dx: vec2<f32>,
}

// Token t's x for blocks 2 u, 2 u + 1: lanes 0..3 each load a quarter of its 16 words.
fn x_unit(t: u32, u: u32, lane: u32) -> XUnit {
  let w = t * (params.k / 4u) + 16u * u + lane;
  let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]);
  let s = xs[t * (params.k / 32u) + 2u * u + (lane & 1u)].x; // lanes 0, 1: d of blocks 2 u, 2 u + 1
  // The first block's x words shifted by half a word: word j is bytes 4 j - 2 .. 4 j + 1.
  return XUnit(vec4<u32>(x0.x << 16u, upper_lower(x0.x, x0.y), upper_lower(x0.y, x0.z), upper_lower(x0.z, x0.w)),
               vec4<u32>(upper_lower(x0.w, x1.x), upper_lower(x1.x, x1.y), upper_lower(x1.y, x1.z), upper_lower(x1.z, x1.w)),
               x1.w >> 16u, spread(xq[w + 8u]), spread(xq[w + 12u]),
               vec2<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u)));
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let a = dot16(w.w0, x.a) + dot16(w.w4, x.b) + dot4I8Packed(w.w8, x.c);
  let b = dot16(w.w9, x.x2) + dot16(w.w13, x.x3);
  return w.d.x * x.dx.x * f32(a) + w.d.y * x.dx.y * f32(b);
}
#endif

#ifdef W_PAIR_BLOCKS
// A block's 32 weights as signed 16-bit pairs (as quantize_x PAIRS pairs x): the low nibbles of its
// quant words (elements 0..15) as a (bytes 0, 2) and b (bytes 1, 3), the high nibbles
// (elements 16..31) as c and e.
struct Pairs32 {
  a: vec4<u32>,
  b: vec4<u32>,
  c: vec4<u32>,
  e: vec4<u32>,
}

struct WUnit {
  first: Pairs32,
  second: Pairs32,
  d: vec2<f32>,
}

struct XUnit { // the 32 pair words of the two blocks
  x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>,
  dx: vec2<f32>,
}

// Token t's x for blocks 2 u, 2 u + 1: lanes 0..3 each load a quarter of its 32 pair words.
fn x_unit(t: u32, u: u32, lane: u32) -> XUnit {
  let w = t * (params.k / 2u) + 32u * u + lane;
  let s = xs[t * (params.k / 32u) + 2u * u + (lane & 1u)].x;
  return XUnit(spread(xq[w]), spread(xq[w + 4u]), spread(xq[w + 8u]), spread(xq[w + 12u]),
               spread(xq[w + 16u]), spread(xq[w + 20u]), spread(xq[w + 24u]), spread(xq[w + 28u]),
               vec2<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u)));
}

fn unit_dot(w: WUnit, x: XUnit) -> f32 {
  let a = block_sum(w.first, x.x0, x.x1, x.x2, x.x3);
  let b = block_sum(w.second, x.x4, x.x5, x.x6, x.x7);
  return w.d.x * x.dx.x * f32(a) + w.d.y * x.dx.y * f32(b);
}
#endif

#ifdef W_Q4_0
// One block's quant words q (byte j: element j in the low nibble, j + 16 in the high one) as q - 8.
fn pairs32(q: vec4<u32>) -> Pairs32 {
  let o = vec4<u32>(0x00080008u);
  return Pairs32((q & PAIR_LOW4) - o, ((q >> vec4<u32>(8u)) & PAIR_LOW4) - o,
                 ((q >> vec4<u32>(4u)) & PAIR_LOW4) - o, ((q >> vec4<u32>(12u)) & PAIR_LOW4) - o);
}

// A block against its 16 x pair words: 16 products of 4-bit weights in one sum.
fn block_sum(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return high_half(pair_products(p.a, p.b, x0, x1) + pair_products(p.c, p.e, x2, x3));
}

// Blocks 2 u and 2 u + 1: 9 words at i. The first: d in the low half of word 0, quants from byte 2;
// the second: d in the high half of word 4, quants in words 5..8.
fn w_unit(i: u32) -> WUnit {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  return WUnit(pairs32(vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4))),
               pairs32(vec4<u32>(W[i + 5u], W[i + 6u], W[i + 7u], W[i + 8u])),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w4).y));
}
const UNIT_WORDS = 9u;
#endif

#ifdef W_Q5_0
// Bit 4 of the elements of the pairs of groups m = 0..3, from bits 4 m + s and 4 m + s + 2 of qh, at
// bits 4 and 20 (the multiply copies bit 0 up to 4 and bit 2 up to 20; the mask drops the rest).
fn q5_high(qh: u32, s: u32) -> vec4<u32> {
  return (((vec4<u32>(qh) >> (vec4<u32>(0u, 4u, 8u, 12u) + s)) & vec4<u32>(5u)) * 0x40010u) & vec4<u32>(0x00100010u);
}

// As Q4_0's, with bit 4 of element e in bit e of qh, as q - 16.
fn pairs32(q: vec4<u32>, qh: u32) -> Pairs32 {
  let o = vec4<u32>(0x00100010u);
  return Pairs32(((q & PAIR_LOW4) | q5_high(qh, 0u)) - o, (((q >> vec4<u32>(8u)) & PAIR_LOW4) | q5_high(qh, 1u)) - o,
                 (((q >> vec4<u32>(4u)) & PAIR_LOW4) | q5_high(qh, 16u)) - o, (((q >> vec4<u32>(12u)) & PAIR_LOW4) | q5_high(qh, 17u)) - o);
}

// 8 products of 5-bit weights per sum.
fn block_sum(p: Pairs32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>) -> i32 {
  return high_half(pair_products(p.a, p.b, x0, x1)) + high_half(pair_products(p.c, p.e, x2, x3));
}

// Blocks 2 u and 2 u + 1: 11 words at i. The first: d in the low half of word 0, then qh and the
// quants from byte 2; the second: d in the high half of word 5, qh word 6, quants in words 7..10.
fn w_unit(i: u32) -> WUnit {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u]; let w5 = W[i + 5u];
  return WUnit(pairs32(vec4<u32>(upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4), upper_lower(w4, w5)), upper_lower(w0, w1)),
               pairs32(vec4<u32>(W[i + 7u], W[i + 8u], W[i + 9u], W[i + 10u]), W[i + 6u]),
               vec2<f32>(unpack2x16float(w0).x, unpack2x16float(w5).y));
}
const UNIT_WORDS = 11u;
#endif

#ifdef W_Q4_K
// Sub-blocks 2 p (low nibbles of the 8 quant words at i + 4 + 8 p) and 2 p + 1 (high nibbles) of the
// block at word i, whose (d, dmin) and scale words are `head`; x0..x3 and x4..x7 their x pair words,
// dx their (d, d * sum q) pairs. Weights enter as q - 8 (16 products per sum); with
// x = d sc q - dmin m, the 8 comes back with the x block sums: + (8 d sc - dmin m) * sum x.
fn unit_dot(i: u32, head: vec4<u32>, p: u32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>,
            x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>, dx: vec4<f32>) -> f32 {
  let q = i + 4u + 8u * p;
  let qa = vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u]);
  let qb = vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u]);
  let o = vec4<u32>(0x00080008u);
  let low = high_half(pair_products((qa & PAIR_LOW4) - o, ((qa >> vec4<u32>(8u)) & PAIR_LOW4) - o, x0, x1)
                    + pair_products((qb & PAIR_LOW4) - o, ((qb >> vec4<u32>(8u)) & PAIR_LOW4) - o, x2, x3));
  let high = high_half(pair_products(((qa >> vec4<u32>(4u)) & PAIR_LOW4) - o, ((qa >> vec4<u32>(12u)) & PAIR_LOW4) - o, x4, x5)
                     + pair_products(((qb >> vec4<u32>(4u)) & PAIR_LOW4) - o, ((qb >> vec4<u32>(12u)) & PAIR_LOW4) - o, x6, x7));
  let sm_low = q4k_scale_min_of(head.yzw, 2u * p);
  let sm_high = q4k_scale_min_of(head.yzw, 2u * p + 1u);
  let dm = unpack2x16float(head.x);
  return dm.x * (sm_low.x * dx.x * f32(low) + sm_high.x * dx.z * f32(high))
       + (8.0 * dm.x * sm_low.x - dm.y * sm_low.y) * dx.y + (8.0 * dm.x * sm_high.x - dm.y * sm_high.y) * dx.w;
}
#endif

#ifdef W_Q6_K
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

// 16 quants of one sub-block, made signed (q - 32) as 16-bit pairs and met by packed products: low
// 4 bits from ql words at bit s_low, high 2 bits from qh words at bit s_high; x0, x1 the 8 x pair
// words of those elements. A product's high half is at most 2 * 32 * 127, so each sum takes 4.
fn q6_k_dot(ql: vec4<u32>, qh: vec4<u32>, s_low: u32, s_high: u32, x0: vec4<u32>, x1: vec4<u32>) -> f32 {
  let q = ((ql >> vec4<u32>(s_low)) & vec4<u32>(0x0f0f0f0fu)) | (((qh >> vec4<u32>(s_high)) & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
  let o = vec4<u32>(0x00200020u);
  let a = (q & vec4<u32>(0x00ff00ffu)) - o;
  let b = ((q >> vec4<u32>(8u)) & vec4<u32>(0x00ff00ffu)) - o;
  return f32(high_half(a * vec4<u32>(x0.x, x0.z, x1.x, x1.z)) + high_half(b * vec4<u32>(x0.y, x0.w, x1.y, x1.w)));
}

// 64 x pair words, as vec4s (a struct rather than an array: SwiftShader keeps arrays in memory).
struct X64 {
  x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>,
  x8: vec4<u32>, x9: vec4<u32>, x10: vec4<u32>, x11: vec4<u32>, x12: vec4<u32>, x13: vec4<u32>, x14: vec4<u32>, x15: vec4<u32>,
}

// Half h (elements 128 h .. 128 h + 127) of the block at word i (odd: half a word on); sc are the
// block's int8 scale words (one scale per 16 elements), x the half's 64 x pair words, dx the
// d of its four x blocks. Element 128 h + 32 r + l: low 4 bits in ql[64 h + 32 (r & 1) + l] at
// bit 4 (r >> 1), high 2 bits in qh[32 h + l] at bit 2 r. Without the block's d.
fn unit_dot(i: u32, odd: bool, h: u32, sc: vec4<u32>, x: X64, dx: vec4<f32>) -> f32 {
  let even = run8(i + 16u * h, odd);
  let odd_r = run8(i + 16u * h + 8u, odd);
  let high = run8(i + 32u + 8u * h, odd);
  let s01 = i8x4(select(sc.x, sc.z, h == 1u)); // scales of sub-blocks 0 and 1 of this half, two each
  let s23 = i8x4(select(sc.y, sc.w, h == 1u));
  let r0 = s01.x * q6_k_dot(even.a, high.a, 0u, 0u, x.x0, x.x1) + s01.y * q6_k_dot(even.b, high.b, 0u, 0u, x.x2, x.x3);
  let r1 = s01.z * q6_k_dot(odd_r.a, high.a, 0u, 2u, x.x4, x.x5) + s01.w * q6_k_dot(odd_r.b, high.b, 0u, 2u, x.x6, x.x7);
  let r2 = s23.x * q6_k_dot(even.a, high.a, 4u, 4u, x.x8, x.x9) + s23.y * q6_k_dot(even.b, high.b, 4u, 4u, x.x10, x.x11);
  let r3 = s23.z * q6_k_dot(odd_r.a, high.a, 4u, 6u, x.x12, x.x13) + s23.w * q6_k_dot(odd_r.b, high.b, 4u, 6u, x.x14, x.x15);
  return dot(dx, vec4<f32>(r0, r1, r2, r3));
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sg: u32) {
#ifdef TOKENS4
  let t = 4u * wid.z; // tokens t .. t + 3, those below n_tokens
  // Tokens past the end repeat the last one (not stored), as rows do.
  let ts = min(vec4<u32>(t) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(step.n_tokens - 1u));
#else
  let t = wid.z;
#endif
  if (t >= step.n_tokens) { return; }
  let row0 = first_row(wid, lid, WG);
  let rows = clamped_rows(row0);
  let lane = sg & 3u;
  let k = params.k;
  let xb = t * (k / 32u); // token t's first x block
  var acc = vec4<f32>(0.0);
#ifdef UNIT64
  let units = k / 64u;
#ifdef TOKENS4
  var sums = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0)); // per row, over the 4 tokens
  for (var u = 0u; u < units; u++) {
    let v0 = x_unit(ts.x, u, lane); let v1 = x_unit(ts.y, u, lane); let v2 = x_unit(ts.z, u, lane); let v3 = x_unit(ts.w, u, lane);
    for (var r = 0u; r < 4u; r++) {
      let w = w_unit(UNIT_WORDS * (rows[r] * units + u));
      sums[r] += vec4<f32>(unit_dot(w, v0), unit_dot(w, v1), unit_dot(w, v2), unit_dot(w, v3));
    }
  }
  for (var j = 0u; j < 4u; j++) {
    if (t + j < step.n_tokens) { store_rows(vec4<f32>(sums[0][j], sums[1][j], sums[2][j], sums[3][j]), rows, row0, t + j); }
  }
  return;
#else
  for (var u = 0u; u < units; u++) {
    let v = x_unit(t, u, lane);
    let i = UNIT_WORDS * (rows * units + u);
    acc += vec4<f32>(unit_dot(w_unit(i.x), v), unit_dot(w_unit(i.y), v), unit_dot(w_unit(i.z), v), unit_dot(w_unit(i.w), v));
  }
#endif
#endif
#ifdef W_Q4_K
  let xw = t * (k / 2u) + lane;
  let blocks = k / 256u;
  for (var b = 0u; b < blocks; b++) {
    let i = 36u * (rows * blocks + b);
    let heads = array<vec4<u32>, 4>(
      vec4<u32>(W[i.x], W[i.x + 1u], W[i.x + 2u], W[i.x + 3u]), vec4<u32>(W[i.y], W[i.y + 1u], W[i.y + 2u], W[i.y + 3u]),
      vec4<u32>(W[i.z], W[i.z + 1u], W[i.z + 2u], W[i.z + 3u]), vec4<u32>(W[i.w], W[i.w + 1u], W[i.w + 2u], W[i.w + 3u]));
    for (var p = 0u; p < 4u; p++) {
      let w = xw + 128u * b + 32u * p;
      let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]); let x2 = spread(xq[w + 8u]); let x3 = spread(xq[w + 12u]);
      let x4 = spread(xq[w + 16u]); let x5 = spread(xq[w + 20u]); let x6 = spread(xq[w + 24u]); let x7 = spread(xq[w + 28u]);
      let s = xs[xb + 8u * b + 2u * p + (lane & 1u)]; // lanes 0, 1: blocks 2 p, 2 p + 1 (d, d * sum q)
      let dx = vec4<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u));
      acc += vec4<f32>(unit_dot(i.x, heads[0], p, x0, x1, x2, x3, x4, x5, x6, x7, dx), unit_dot(i.y, heads[1], p, x0, x1, x2, x3, x4, x5, x6, x7, dx),
                       unit_dot(i.z, heads[2], p, x0, x1, x2, x3, x4, x5, x6, x7, dx), unit_dot(i.w, heads[3], p, x0, x1, x2, x3, x4, x5, x6, x7, dx));
    }
  }
#endif
#ifdef W_Q6_K
  let xw = t * (k / 2u) + lane; // this lane's share of token t's x pair words
  let blocks = k / 256u;
  for (var b = 0u; b < blocks; b++) {
    let byte = 210u * (rows * blocks + b);
    let i = byte >> vec4<u32>(2u);
    let odd = (byte & vec4<u32>(2u)) != vec4<u32>(0u);
    // The block's bytes 192..223: its 16 int8 scales, then d (the f16 at byte 208).
    let tail = array<Words8, 4>(run8(i.x + 48u, odd.x), run8(i.y + 48u, odd.y), run8(i.z + 48u, odd.z), run8(i.w + 48u, odd.w));
    let d = vec4<f32>(unpack2x16float(tail[0].b.x).x, unpack2x16float(tail[1].b.x).x, unpack2x16float(tail[2].b.x).x, unpack2x16float(tail[3].b.x).x);
    var sum = vec4<f32>(0.0);
    for (var h = 0u; h < 2u; h++) {
      let w = xw + 128u * b + 64u * h;
      let x = X64(spread(xq[w]), spread(xq[w + 4u]), spread(xq[w + 8u]), spread(xq[w + 12u]), spread(xq[w + 16u]), spread(xq[w + 20u]),
                  spread(xq[w + 24u]), spread(xq[w + 28u]), spread(xq[w + 32u]), spread(xq[w + 36u]), spread(xq[w + 40u]), spread(xq[w + 44u]),
                  spread(xq[w + 48u]), spread(xq[w + 52u]), spread(xq[w + 56u]), spread(xq[w + 60u]));
      let dx = bitcast<vec4<f32>>(spread(bitcast<u32>(xs[xb + 8u * b + 4u * h + lane].x))); // x blocks 4 h .. 4 h + 3
      sum += vec4<f32>(unit_dot(i.x, odd.x, h, tail[0].a, x, dx), unit_dot(i.y, odd.y, h, tail[1].a, x, dx),
                       unit_dot(i.z, odd.z, h, tail[2].a, x, dx), unit_dot(i.w, odd.w, h, tail[3].a, x, dx));
    }
    acc += d * sum;
  }
#endif
  store_rows(acc, rows, row0, t);
}
