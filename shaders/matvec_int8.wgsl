// Matvec with int8 activations, for CPU adapters (SwiftShader, llvmpipe): y[t, n] = sum_k W[n, k] x[t, k]
// with x quantized per block of 32 by quantize_x.wgsl. Each weight word is turned into four signed
// bytes with a few whole-word masks and meets four x bytes in one dot4I8Packed, where decoding each
// byte to f32 costs a CPU several vector instructions per byte: on SwiftShader this reads weights
// ~1.5x faster than matvec.wgsl (see bench/). Integer sums are exact; scales are applied per block.
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, out_at_pos}),
//           2 xq [n_tokens, k / 4] u32 (four int8 each), 3 xs [n_tokens, k / 32] vec2<f32> (d, d * sum q),
//           4 W [n_out, k] (raw GGUF blocks as u32 words), 5 y [n_tokens, n_out] f32
//           (token t at row pos0 + t when out_at_pos = 1); BIAS adds 6 bias [n_out] f32.
// Variants (one of), with the unit each loop step takes from every row:
//   W_Q8_0, W_Q4_0, W_Q5_0  a pair of blocks (64 elements; k a multiple of 64, so pairs start on a
//                            word: 68, 36 and 44 bytes), the first block's fields half a word off;
//   W_Q4_K                  one 144-byte block (256 elements) in four steps of 64;
//   W_Q6_K                  one 210-byte block in two steps of 128; blocks start on a word or half a word.
// Signed quants are shifted into the top bits of each byte, so that a byte is a multiple of the
// value: Q4_0 16 (q - 8), Q5_0 8 (q - 16), Q6_K 4 (q - 32); the factor is divided out per block.
// Needs subgroups of at least 4: lanes 0..3 each load a quarter of the x words that all lanes share
// (a CPU pays per load, not per byte) and subgroupBroadcast hands them round.
// Dispatch: g = ceil(n_out / (4 WG)) workgroups, as (min(g, 65535), ceil(g / 65535), n_tokens); each
// invocation computes 4 consecutive rows, so each x load serves four rows.

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

// v as lanes 0, 1, 2, 3 of the subgroup hold it.
fn spread(v: u32) -> vec4<u32> {
  return vec4<u32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}

fn spread_f32(v: f32) -> vec4<f32> {
  return vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}

// The word that starts at byte 2 of word a: its upper half, then the lower half of b.
fn upper_lower(a: u32, b: u32) -> u32 {
  return (a >> 16u) | (b << 16u);
}

// Sum over four words of dot4I8Packed(w[i], x[i]).
fn dot16(w: vec4<u32>, x: vec4<u32>) -> i32 {
  return dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y) + dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w);
}

#ifdef W_Q8_0
// Blocks 2 u and 2 u + 1 of a row: 17 words at i. The first has d in the low half of word 0 and
// its 32 quants across words 0..8; the second d in the high half of word 8, quants in words 9..16.
fn unit_dot(i: u32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, dx: vec2<f32>) -> f32 {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  let w5 = W[i + 5u]; let w6 = W[i + 6u]; let w7 = W[i + 7u]; let w8 = W[i + 8u];
  let a = dot16(vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4)), x0)
        + dot16(vec4<u32>(upper_lower(w4, w5), upper_lower(w5, w6), upper_lower(w6, w7), upper_lower(w7, w8)), x1);
  let b = dot16(vec4<u32>(W[i + 9u], W[i + 10u], W[i + 11u], W[i + 12u]), x2)
        + dot16(vec4<u32>(W[i + 13u], W[i + 14u], W[i + 15u], W[i + 16u]), x3);
  return unpack2x16float(w0).x * dx.x * f32(a) + unpack2x16float(w8).y * dx.y * f32(b);
}
const UNIT_WORDS = 17u;
#endif

#ifdef W_Q4_0
// Quant bytes q0..q3 of one block: byte j holds element j (low nibble) and j + 16 (high nibble).
// Flipping bit 3 of a nibble makes it the 4-bit two's complement of q - 8; in the byte's top half
// it reads as the int8 16 (q - 8).
fn q4_0_dot(q: vec4<u32>, x_low: vec4<u32>, x_high: vec4<u32>) -> i32 {
  let low = ((q & vec4<u32>(0x0f0f0f0fu)) ^ vec4<u32>(0x08080808u)) << vec4<u32>(4u);
  let high = (q & vec4<u32>(0xf0f0f0f0u)) ^ vec4<u32>(0x80808080u);
  return dot16(low, x_low) + dot16(high, x_high);
}

// Blocks 2 u and 2 u + 1: 9 words at i. The first: d in the low half of word 0, quants from byte 2;
// the second: d in the high half of word 4, quants in words 5..8.
fn unit_dot(i: u32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, dx: vec2<f32>) -> f32 {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u];
  let a = q4_0_dot(vec4<u32>(upper_lower(w0, w1), upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4)), x0, x1);
  let b = q4_0_dot(vec4<u32>(W[i + 5u], W[i + 6u], W[i + 7u], W[i + 8u]), x2, x3);
  return (unpack2x16float(w0).x * dx.x * f32(a) + unpack2x16float(w4).y * dx.y * f32(b)) / 16.0;
}
const UNIT_WORDS = 9u;
#endif

#ifdef W_Q5_0
// Bit 4 of four consecutive quants, from the low 4 bits of h, at bit 4 of each byte.
fn q5_high(h: u32) -> u32 {
  return (((h & 15u) * 0x00204081u) & 0x01010101u) << 4u;
}

// As q4_0_dot, with bit 4 of element e in bit e of qh; flipping bit 4 gives the 5-bit two's
// complement of q - 16, which the byte's top 5 bits read as 8 (q - 16).
fn q5_0_dot(q: vec4<u32>, qh: u32, x_low: vec4<u32>, x_high: vec4<u32>) -> i32 {
  let h_low = vec4<u32>(q5_high(qh), q5_high(qh >> 4u), q5_high(qh >> 8u), q5_high(qh >> 12u));
  let h_high = vec4<u32>(q5_high(qh >> 16u), q5_high(qh >> 20u), q5_high(qh >> 24u), q5_high(qh >> 28u));
  let low = (((q & vec4<u32>(0x0f0f0f0fu)) | h_low) ^ vec4<u32>(0x10101010u)) << vec4<u32>(3u);
  let high = ((((q >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu)) | h_high) ^ vec4<u32>(0x10101010u)) << vec4<u32>(3u);
  return dot16(low, x_low) + dot16(high, x_high);
}

// Blocks 2 u and 2 u + 1: 11 words at i. The first: d in the low half of word 0, then qh and the
// quants from byte 2; the second: d in the high half of word 5, qh word 6, quants in words 7..10.
fn unit_dot(i: u32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, dx: vec2<f32>) -> f32 {
  let w0 = W[i]; let w1 = W[i + 1u]; let w2 = W[i + 2u]; let w3 = W[i + 3u]; let w4 = W[i + 4u]; let w5 = W[i + 5u];
  let a = q5_0_dot(vec4<u32>(upper_lower(w1, w2), upper_lower(w2, w3), upper_lower(w3, w4), upper_lower(w4, w5)), upper_lower(w0, w1), x0, x1);
  let b = q5_0_dot(vec4<u32>(W[i + 7u], W[i + 8u], W[i + 9u], W[i + 10u]), W[i + 6u], x2, x3);
  return (unpack2x16float(w0).x * dx.x * f32(a) + unpack2x16float(w5).y * dx.y * f32(b)) / 8.0;
}
const UNIT_WORDS = 11u;
#endif

#ifdef W_Q4_K
// (scale, min) of sub-block j from the scale words s = (s0, s1, s2). j < 4: the low 6 bits of byte j
// of s0 (scale) and s1 (min); j >= 4: byte j - 4 of s2 (scale low nibble, min high nibble) with the
// top 2 bits of byte j - 4 of s0 and s1.
fn q4_k_scale_min(s: vec3<u32>, j: u32) -> vec2<f32> {
  let bytes = (s >> vec3<u32>(8u * (j & 3u))) & vec3<u32>(0xffu);
  let low = vec2<u32>(bytes.x & 63u, bytes.y & 63u);
  let high = vec2<u32>((bytes.z & 15u) | ((bytes.x >> 6u) << 4u), (bytes.z >> 4u) | ((bytes.y >> 6u) << 4u));
  return vec2<f32>(select(high, low, j < 4u));
}

// Sub-blocks 2 p (low nibbles of the 8 quant words at i + 4 + 8 p) and 2 p + 1 (high nibbles) of
// the block at word i, whose (d, dmin) and scale words are `head`. Nibbles are q itself (0..15);
// the mins meet the x block sums: x = d sc q - dmin m.
fn unit_dot(i: u32, head: vec4<u32>, p: u32, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>, dx: vec4<f32>) -> f32 {
  let q = i + 4u + 8u * p;
  let qa = vec4<u32>(W[q], W[q + 1u], W[q + 2u], W[q + 3u]);
  let qb = vec4<u32>(W[q + 4u], W[q + 5u], W[q + 6u], W[q + 7u]);
  let nib = vec4<u32>(0x0f0f0f0fu);
  let low = dot16(qa & nib, x0) + dot16(qb & nib, x1);
  let high = dot16((qa >> vec4<u32>(4u)) & nib, x2) + dot16((qb >> vec4<u32>(4u)) & nib, x3);
  let sm_low = q4_k_scale_min(head.yzw, 2u * p);
  let sm_high = q4_k_scale_min(head.yzw, 2u * p + 1u);
  let dm = unpack2x16float(head.x);
  return dm.x * (sm_low.x * dx.x * f32(low) + sm_high.x * dx.z * f32(high)) - dm.y * (sm_low.y * dx.y + sm_high.y * dx.w);
}
#endif

#ifdef W_Q6_K
// Word j of a run starting at word i, or half a word on (odd): the upper half of i + j and the lower of i + j + 1.
fn run_word(i: u32, j: u32, odd: bool) -> u32 {
  let a = W[i + j];
  return select(a, upper_lower(a, W[i + j + 1u]), odd);
}

fn run4(i: u32, j: u32, odd: bool) -> vec4<u32> {
  return vec4<u32>(run_word(i, j, odd), run_word(i, j + 1u, odd), run_word(i, j + 2u, odd), run_word(i, j + 3u, odd));
}

// The four bytes of q as signed int8 values.
fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u));
}

// 16 quants of sub-block r (0..3) of a half block: low 4 bits from ql words at bit 4 (r >> 1), high
// 2 bits from qh words at bit 2 r. With bit 5 flipped and shifted to the byte's top, a byte reads
// as the int8 4 (q - 32).
fn q6_k_dot(ql: vec4<u32>, qh: vec4<u32>, r: u32, x: vec4<u32>) -> f32 {
  let q = ((ql >> vec4<u32>(4u * (r >> 1u))) & vec4<u32>(0x0f0f0f0fu)) | (((qh >> vec4<u32>(2u * r)) & vec4<u32>(0x03030303u)) << vec4<u32>(4u));
  return f32(dot16((q ^ vec4<u32>(0x20202020u)) << vec4<u32>(2u), x));
}

// Half h (elements 128 h .. 128 h + 127) of the block at word i (odd: half a word on); sc are its
// int8 scale words 2 h and 2 h + 1 (one scale per 16 elements), dx the d of its four x blocks.
// Element 128 h + 32 r + l: low 4 bits in ql[64 h + 32 (r & 1) + l], high 2 bits in qh[32 h + l].
fn unit_dot(i: u32, odd: bool, h: u32, sc: vec2<u32>, x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>,
            x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>, dx: vec4<f32>) -> f32 {
  let ql = 16u * h;
  let qh = 32u + 8u * h;
  let even0 = run4(i, ql, odd);
  let even1 = run4(i, ql + 4u, odd);
  let odd0 = run4(i, ql + 8u, odd);
  let odd1 = run4(i, ql + 12u, odd);
  let high0 = run4(i, qh, odd);
  let high1 = run4(i, qh + 4u, odd);
  let s01 = i8x4(sc.x); // scales of sub-blocks 0 and 1, two per sub-block
  let s23 = i8x4(sc.y);
  let r0 = s01.x * q6_k_dot(even0, high0, 0u, x0) + s01.y * q6_k_dot(even1, high1, 0u, x1);
  let r1 = s01.z * q6_k_dot(odd0, high0, 1u, x2) + s01.w * q6_k_dot(odd1, high1, 1u, x3);
  let r2 = s23.x * q6_k_dot(even0, high0, 2u, x4) + s23.y * q6_k_dot(even1, high1, 2u, x5);
  let r3 = s23.z * q6_k_dot(odd0, high0, 3u, x6) + s23.w * q6_k_dot(odd1, high1, 3u, x7);
  return dot(dx, vec4<f32>(r0, r1, r2, r3)) / 4.0;
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sg: u32) {
  let t = wid.z;
  if (t >= step.n_tokens) { return; }
  let row0 = ((wid.x + wid.y * 65535u) * WG + lid.x) * 4u;
  // Rows past the end repeat the last one (their results are not stored): every lane stays in the
  // loop, as subgroupBroadcast needs.
  let rows = min(vec4<u32>(row0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.n - 1u));
  let lane = sg & 3u;
  let k = params.k;
  let xw = t * (k / 4u) + lane;   // this lane's share of token t's x words
  let xb = t * (k / 32u);         // token t's first x block
  var acc = vec4<f32>(0.0);
#ifdef W_Q4_K
  let blocks = k / 256u;
  for (var b = 0u; b < blocks; b++) {
    let i = 36u * (rows * blocks + b);
    let heads = array<vec4<u32>, 4>(
      vec4<u32>(W[i.x], W[i.x + 1u], W[i.x + 2u], W[i.x + 3u]), vec4<u32>(W[i.y], W[i.y + 1u], W[i.y + 2u], W[i.y + 3u]),
      vec4<u32>(W[i.z], W[i.z + 1u], W[i.z + 2u], W[i.z + 3u]), vec4<u32>(W[i.w], W[i.w + 1u], W[i.w + 2u], W[i.w + 3u]));
    for (var p = 0u; p < 4u; p++) {
      let w = xw + 64u * b + 16u * p;
      let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]); let x2 = spread(xq[w + 8u]); let x3 = spread(xq[w + 12u]);
      let s = xs[xb + 8u * b + 2u * p + (lane & 1u)]; // lanes 0, 1: blocks 2 p, 2 p + 1 (d, d * sum q)
      let dx = vec4<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u));
      acc += vec4<f32>(unit_dot(i.x, heads[0], p, x0, x1, x2, x3, dx), unit_dot(i.y, heads[1], p, x0, x1, x2, x3, dx),
                       unit_dot(i.z, heads[2], p, x0, x1, x2, x3, dx), unit_dot(i.w, heads[3], p, x0, x1, x2, x3, dx));
    }
  }
#endif
#ifdef W_Q6_K
  let blocks = k / 256u;
  for (var b = 0u; b < blocks; b++) {
    let byte = 210u * (rows * blocks + b);
    let i = byte >> vec4<u32>(2u);
    let odd = (byte & vec4<u32>(2u)) != vec4<u32>(0u);
    // d: the f16 at byte 208 of each block, in the low or (odd) high half of word i + 52.
    let d = vec4<f32>(unpack2x16float(W[i.x + 52u])[u32(odd.x)], unpack2x16float(W[i.y + 52u])[u32(odd.y)],
                      unpack2x16float(W[i.z + 52u])[u32(odd.z)], unpack2x16float(W[i.w + 52u])[u32(odd.w)]);
    let sc = array<vec4<u32>, 4>(run4(i.x, 48u, odd.x), run4(i.y, 48u, odd.y), run4(i.z, 48u, odd.z), run4(i.w, 48u, odd.w));
    for (var h = 0u; h < 2u; h++) {
      let w = xw + 64u * b + 32u * h;
      let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]); let x2 = spread(xq[w + 8u]); let x3 = spread(xq[w + 12u]);
      let x4 = spread(xq[w + 16u]); let x5 = spread(xq[w + 20u]); let x6 = spread(xq[w + 24u]); let x7 = spread(xq[w + 28u]);
      let dx = spread_f32(xs[xb + 8u * b + 4u * h + lane].x); // blocks 4 h .. 4 h + 3 of this one
      acc += d * vec4<f32>(unit_dot(i.x, odd.x, h, select(sc[0].xy, sc[0].zw, h == 1u), x0, x1, x2, x3, x4, x5, x6, x7, dx),
                           unit_dot(i.y, odd.y, h, select(sc[1].xy, sc[1].zw, h == 1u), x0, x1, x2, x3, x4, x5, x6, x7, dx),
                           unit_dot(i.z, odd.z, h, select(sc[2].xy, sc[2].zw, h == 1u), x0, x1, x2, x3, x4, x5, x6, x7, dx),
                           unit_dot(i.w, odd.w, h, select(sc[3].xy, sc[3].zw, h == 1u), x0, x1, x2, x3, x4, x5, x6, x7, dx));
    }
  }
#endif
#ifdef UNIT_PAIRS
  let units = k / 64u;
  for (var u = 0u; u < units; u++) {
    let w = xw + 16u * u;
    let x0 = spread(xq[w]); let x1 = spread(xq[w + 4u]); let x2 = spread(xq[w + 8u]); let x3 = spread(xq[w + 12u]);
    let s = xs[xb + 2u * u + (lane & 1u)].x; // lanes 0, 1: d of blocks 2 u, 2 u + 1
    let dx = vec2<f32>(subgroupBroadcast(s, 0u), subgroupBroadcast(s, 1u));
    let i = UNIT_WORDS * (rows * units + u);
    acc += vec4<f32>(unit_dot(i.x, x0, x1, x2, x3, dx), unit_dot(i.y, x0, x1, x2, x3, dx),
                     unit_dot(i.z, x0, x1, x2, x3, dx), unit_dot(i.w, x0, x1, x2, x3, dx));
  }
#endif
#ifdef BIAS
  acc += vec4<f32>(bias[rows.x], bias[rows.y], bias[rows.z], bias[rows.w]);
#endif
  let out_row = select(t, step.pos0 + t, params.out_at_pos == 1u);
  for (var r = 0u; r < 4u; r++) {
    if (row0 + r < params.n) { y[out_row * params.n + row0 + r] = acc[r]; }
  }
}
