// ggml block formats, decoded in registers from the raw GGUF bytes (included by weights.wgsl).
// Expects:  var<storage, read> W: array<u32>;  the tensor's blocks back to back, as in the file.
//           Blocks of 34, 18, 22 or 210 bytes mostly do not start on a word: bytes come out of
//           u32 words with shifts (20-, 24- and 144-byte blocks always do). Every f16 field lies
//           at an even byte offset.
// Variants (one of):
//   W_Q8_0  32 elements, 34 bytes:  f16 d | i8 qs[32]                        x = d * q
//   W_Q4_0  32 elements, 18 bytes:  f16 d | u8 qs[16]                        x = d * (q - 8)
//           byte j: element j in the low nibble, element j + 16 in the high nibble
//   W_Q4_1  32 elements, 20 bytes:  f16 d | f16 m | u8 qs[16]                x = d * q + m
//   W_Q5_0  32 elements, 22 bytes:  f16 d | u32 qh | u8 qs[16]               x = d * (q - 16)
//   W_Q5_1  32 elements, 24 bytes:  f16 d | f16 m | u32 qh | u8 qs[16]       x = d * q + m
//   W_Q5_0R Q5_0 regrouped for CPU adapters, 64 elements in 44 bytes (src/model/regroup.ts)
//   W_Q6_KR Q6_K regrouped for CPU adapters, 512 elements in 420 bytes (src/model/regroup.ts)
//           qs as Q4_0's (the low 4 bits of q); bit e of qh (little-endian) is bit 4 of element e
//   W_Q4_K 256 elements, 144 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
//           8 sub-blocks of 32, 6-bit scale sc and min m each:           x = d * sc * q - dmin * m
//           qs[32 p + l]: element 64 p + l (low nibble), element 64 p + 32 + l (high nibble)
//   W_Q6_K 256 elements, 210 bytes: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d
//           element e = 128 h + 32 r + l: low 4 bits in ql[64 h + 32 (r & 1) + l] at bit 4 (r >> 1),
//           high 2 bits in qh[32 h + l] at bit 2 r;                      x = d * scales[e / 16] * (q - 32)
//   W_Q5_K 256 elements, 176 bytes: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//           Q4_K's scales and qs; bit 4 of element 32 j + l in qh[l] at bit j: x = d * sc * q - dmin * m
//   W_Q3_K 256 elements, 110 bytes: u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d
//           element e = 128 h + 32 r + l: low 2 bits in qs[32 h + l] at bit 2 r, bit 2 in hmask[l]
//           at bit 4 h + r; 16 6-bit scales s, one per 16 (q3k_scale):  x = d * (s - 32) * (q - 4)
//   W_Q2_K 256 elements, 84 bytes:  u8 scales[16] | u8 qs[64] | f16 d | f16 dmin
//           element e = 128 h + 32 r + l: q in qs[32 h + l] at bit 2 r; scales[e / 16] = sc | m << 4:
//                                                                         x = d * sc * q - dmin * m
//   W_IQ4_NL 32 elements, 18 bytes: f16 d | u8 qs[16], qs as Q4_0's:     x = d * IQ4[q]
//   W_IQ4_XS 256 elements, 136 bytes: f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]
//           8 sub-blocks of 32, each 16 qs bytes as IQ4_NL's, a 6-bit scale s (low 4 bits in
//           scales_l[j / 2] at bit 4 (j % 2), top 2 in scales_h at bit 2 j):  x = d * (s - 32) * IQ4[q]
//           IQ4 is ggml's fixed table of 16 int8 values (iq4_bytes).
// Provides: helpers for block fields (upper_lower, bytes_of, i8x4, i8_of, q4k_scale_min, ...);
//           w_load(i) -> f32, element i of the flat tensor (rows are whole blocks, so the row
//           structure does not matter); with W_DOT also w_dot32(c, xi) = sum of the 32 elements of
//           chunk c (elements 32 c .. 32 c + 31) times x4(xi), x4(xi + 4), ... which the includer defines.

// The 4 bytes starting at byte offset b, little-endian, at any alignment.
fn w_bytes4(b: u32) -> u32 {
  let i = b >> 2u;
  let s = (b & 3u) * 8u;
  if (s == 0u) { return W[i]; }
  return (W[i] >> s) | (W[i + 1u] << (32u - s));
}

fn w_byte(b: u32) -> u32 {
  return (W[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// The f16 at an even byte offset b.
fn w_half(b: u32) -> f32 {
  let pair = unpack2x16float(W[b >> 2u]);
  return select(pair.x, pair.y, (b & 2u) != 0u);
}

// The word that starts at byte 2 of word a: its upper half, then the lower half of b.
fn upper_lower(a: u32, b: u32) -> u32 {
  return (a >> 16u) | (b << 16u);
}

fn bytes_of(q: u32) -> vec4<u32> {
  return vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) & vec4<u32>(0xffu);
}

// The four bytes of q as signed int8 values.
fn i8x4(q: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u));
}

fn i8_of(byte: u32) -> f32 {
  return f32(bitcast<i32>(byte << 24u) >> 24u);
}

// IQ4_NL's and IQ4_XS's 16 values (ggml's kvalues_iq4nl: -127, -104, -83, -65, -49, -35, -22, -10,
// 1, 13, 25, 38, 53, 69, 89, 113) as int8 bytes, four per word.
const IQ4_TABLE = vec4<u32>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);

// The table values of four 4-bit indices, packed as four int8 bytes (index 0's in the low byte):
// arithmetic only, as a dynamically indexed array costs a CPU adapter a trip to memory per lookup.
fn iq4_bytes(q: vec4<u32>) -> u32 {
  let high = (q & vec4<u32>(4u)) != vec4<u32>(0u);
  let words = select(select(vec4<u32>(IQ4_TABLE.x), vec4<u32>(IQ4_TABLE.y), high), select(vec4<u32>(IQ4_TABLE.z), vec4<u32>(IQ4_TABLE.w), high), q >= vec4<u32>(8u));
  let b = (words >> ((q & vec4<u32>(3u)) * 8u)) & vec4<u32>(0xffu);
  return b.x | (b.y << 8u) | (b.z << 16u) | (b.w << 24u);
}

fn iq4_value(q: u32) -> f32 {
  return i8_of((IQ4_TABLE[q >> 2u] >> ((q & 3u) * 8u)) & 0xffu);
}

// Bit 4 of the 5-bit quants of elements e .. e + 3 (Q5_0, Q5_1), from their bits e .. e + 3 of qh.
fn q5_high4(qh: u32, e: u32) -> vec4<u32> {
  return ((vec4<u32>(qh >> e) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
}

#ifdef W_Q8_0
fn w_load(i: u32) -> f32 {
  let b = (i >> 5u) * 34u;
  return w_half(b) * i8_of(w_byte(b + 2u + (i & 31u)));
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  // The 34-byte block starts at byte 0 or 2 of word i: qs are words i+1.. (start at 2) or the
  // upper halves of words i.. joined to the lower halves of i+1.. (start at 0): 9 loads either way.
  let b = c * 34u;
  let i = b >> 2u;
  let odd = (b & 2u) != 0u;
  var prev = W[i];
  let dd = unpack2x16float(prev);
  var acc = 0.0;
  for (var j = 0u; j < 8u; j++) {
    let next = W[i + 1u + j];
    acc += dot(i8x4(select(upper_lower(prev, next), next, odd)), x4(xi + 4u * j));
    prev = next;
  }
  return select(dd.x, dd.y, odd) * acc;
}
#endif
#endif

#ifdef W_Q4_0
fn w_load(i: u32) -> f32 {
  let b = (i >> 5u) * 18u;
  let e = i & 31u;
  let q = (w_byte(b + 2u + (e & 15u)) >> ((e >> 4u) * 4u)) & 15u;
  return w_half(b) * (f32(q) - 8.0);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  // As for Q8_0: the 18-byte block starts at byte 0 or 2 of word i, qs follow d (5 loads).
  let b = c * 18u;
  let i = b >> 2u;
  let odd = (b & 2u) != 0u;
  var prev = W[i];
  let dd = unpack2x16float(prev);
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let next = W[i + 1u + j];
    let q = bytes_of(select(upper_lower(prev, next), next, odd));
    acc += dot(vec4<f32>(q & vec4<u32>(15u)) - 8.0, x4(xi + 4u * j));
    acc += dot(vec4<f32>(q >> vec4<u32>(4u)) - 8.0, x4(xi + 16u + 4u * j));
    prev = next;
  }
  return select(dd.x, dd.y, odd) * acc;
}
#endif
#endif

#ifdef W_Q4_1
fn w_load(i: u32) -> f32 {
  let b = (i >> 5u) * 20u;
  let e = i & 31u;
  let q = (w_byte(b + 4u + (e & 15u)) >> ((e >> 4u) * 4u)) & 15u;
  let dm = unpack2x16float(W[b >> 2u]);
  return dm.x * f32(q) + dm.y;
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let i = c * 5u; // blocks are 5 words: d and m in word i, qs in words i + 1 .. i + 4
  var acc_q = 0.0;
  var acc_x = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let q = bytes_of(W[i + 1u + j]);
    let x_low = x4(xi + 4u * j);
    let x_high = x4(xi + 16u + 4u * j);
    acc_q += dot(vec4<f32>(q & vec4<u32>(15u)), x_low) + dot(vec4<f32>(q >> vec4<u32>(4u)), x_high);
    acc_x += dot(x_low + x_high, vec4<f32>(1.0));
  }
  let dm = unpack2x16float(W[i]);
  return dm.x * acc_q + dm.y * acc_x;
}
#endif
#endif

#ifdef W_Q6_KR
// Q6_K regrouped in pairs of blocks (src/model/regroup.ts, whose q6Slot this follows): 105 words
// per 512 elements, no w_dot32 (only matvec_int8.wgsl reads it as a matrix).
fn w_load(i: u32) -> f32 {
  let pair = (i >> 9u) * 105u;
  let second = ((i >> 8u) & 1u) == 1u;
  let e = i & 255u;
  let k = (e & 127u) >> 4u;
  let j4 = e & 15u;
  let w = j4 >> 2u;
  let odd = j4 & 1u;
  let half = 16u * ((j4 >> 1u) & 1u);
  let quants = pair + select(9u, 57u, second) + 24u * (e >> 7u);
  var q: u32;
  if (k < 6u) {
    q = (W[quants + 4u * k + w] >> (6u * odd + half)) & 63u;
  } else {
    let j = 8u * (k - 6u) + 4u * odd + w;
    q = ((W[quants + j] >> (12u + half)) & 15u) | (((W[quants + 16u + (j >> 1u)] >> (12u + 2u * (j & 1u) + half)) & 3u) << 4u);
  }
  let s = e >> 4u; // scale index in the block
  let scale = i8_of((W[pair + select(1u, 5u, second) + (s >> 2u)] >> ((s & 3u) * 8u)) & 0xffu);
  let d = unpack2x16float(W[pair]);
  return select(d.x, d.y, second) * scale * (f32(q) - 32.0);
}
#endif

#ifdef W_Q5_0R
// Q5_0 regrouped in pairs of blocks (src/model/regroup.ts, whose q5Slot this follows): 11 words
// per 64 elements, no w_dot32 (only matvec_int8.wgsl reads it as a matrix).
fn w_load(i: u32) -> f32 {
  let base = (i >> 6u) * 11u;
  let e = i & 63u;
  let block = e >> 5u;
  let r = e & 31u;
  let kind = ((r >> 4u) << 1u) | (r & 1u); // a, b, c, e
  let j = (r & 15u) >> 2u;
  let half = 16u * ((r >> 1u) & 1u);
  var word = 0u;
  var bit = 0u;
  var spare = false;
  if (block == 0u) {
    word = select(5u, 1u, kind < 2u) + j;
    bit = (kind & 1u) * 5u + half;
  } else if (kind == 0u || kind == 2u) {
    word = select(5u, 1u, kind == 0u) + j;
    bit = 10u + half;
  } else if (kind == 1u) {
    word = 9u + (j & 1u);
    bit = (j >> 1u) * 5u + half;
  } else if (j < 2u) {
    word = 9u + j;
    bit = 10u + half;
  } else {
    word = 1u + 5u * (j - 2u);
    bit = 15u + half;
    spare = true;
  }
  var q = (W[base + word] >> bit) & 31u;
  if (spare) {
    q = 0u;
    for (var k = 0u; k < 5u; k++) { q |= ((W[base + word + k] >> bit) & 1u) << k; }
  }
  let d = unpack2x16float(W[base]);
  return select(d.x, d.y, block == 1u) * (f32(q) - 16.0);
}
#endif

#ifdef W_Q5_0
fn w_load(i: u32) -> f32 {
  let b = (i >> 5u) * 22u;
  let e = i & 31u;
  let low = (w_byte(b + 6u + (e & 15u)) >> ((e >> 4u) * 4u)) & 15u;
  let high = (w_bytes4(b + 2u) >> e) & 1u;
  return w_half(b) * (f32(low | (high << 4u)) - 16.0);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  // As for Q4_0: the 22-byte block starts at byte 0 or 2 of word i; qh and then the qs words
  // follow d, each a whole word (start at 2) or two half words joined (start at 0): 6 loads.
  let b = c * 22u;
  let i = b >> 2u;
  let odd = (b & 2u) != 0u;
  var prev = W[i];
  let dd = unpack2x16float(prev);
  var next = W[i + 1u];
  let qh = select(upper_lower(prev, next), next, odd);
  prev = next;
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    next = W[i + 2u + j];
    let q = bytes_of(select(upper_lower(prev, next), next, odd));
    acc += dot(vec4<f32>((q & vec4<u32>(15u)) | q5_high4(qh, 4u * j)) - 16.0, x4(xi + 4u * j));
    acc += dot(vec4<f32>((q >> vec4<u32>(4u)) | q5_high4(qh, 16u + 4u * j)) - 16.0, x4(xi + 16u + 4u * j));
    prev = next;
  }
  return select(dd.x, dd.y, odd) * acc;
}
#endif
#endif

#ifdef W_Q5_1
fn w_load(i: u32) -> f32 {
  let w = (i >> 5u) * 6u; // blocks are 6 words: d and m, qh, then qs
  let e = i & 31u;
  let low = (w_byte(4u * w + 8u + (e & 15u)) >> ((e >> 4u) * 4u)) & 15u;
  let high = (W[w + 1u] >> e) & 1u;
  let dm = unpack2x16float(W[w]);
  return dm.x * f32(low | (high << 4u)) + dm.y;
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let i = c * 6u;
  let qh = W[i + 1u];
  var acc_q = 0.0;
  var acc_x = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let q = bytes_of(W[i + 2u + j]);
    let x_low = x4(xi + 4u * j);
    let x_high = x4(xi + 16u + 4u * j);
    acc_q += dot(vec4<f32>((q & vec4<u32>(15u)) | q5_high4(qh, 4u * j)), x_low);
    acc_q += dot(vec4<f32>((q >> vec4<u32>(4u)) | q5_high4(qh, 16u + 4u * j)), x_high);
    acc_x += dot(x_low + x_high, vec4<f32>(1.0));
  }
  let dm = unpack2x16float(W[i]);
  return dm.x * acc_q + dm.y * acc_x;
}
#endif
#endif

#ifdef W_Q4_K
#define K_SCALE_MIN
#endif
#ifdef W_Q5_K
#define K_SCALE_MIN
#endif

#ifdef K_SCALE_MIN
// (scale, min) of sub-block j of the block at byte b (a word boundary). scales[0..12] are words
// s0, s1, s2: j < 4 in the low 6 bits of byte j of s0 (scale) and s1 (min); j >= 4 in byte j - 4
// of s2 (scale low nibble, min high nibble) with the top 2 bits of byte j - 4 of s0 and s1.
// (matvec_int8.wgsl unpacks all eight at once, four per word.)
fn q4k_scale_min(b: u32, j: u32) -> vec2<f32> {
  let w = b >> 2u;
  let bytes = (vec3<u32>(W[w + 1u], W[w + 2u], W[w + 3u]) >> vec3<u32>(8u * (j & 3u))) & vec3<u32>(0xffu);
  let low = vec2<u32>(bytes.x & 63u, bytes.y & 63u);
  let high = vec2<u32>((bytes.z & 15u) | ((bytes.x >> 6u) << 4u), (bytes.z >> 4u) | ((bytes.y >> 6u) << 4u));
  return vec2<f32>(select(high, low, j < 4u));
}
#endif

#ifdef W_Q4_K
fn w_load(i: u32) -> f32 {
  let b = (i >> 8u) * 144u;
  let e = i & 255u;
  let sub = e >> 5u;
  let q = (w_byte(b + 16u + 32u * (sub >> 1u) + (e & 31u)) >> ((sub & 1u) * 4u)) & 15u;
  let dm = unpack2x16float(W[b >> 2u]);
  let sm = q4k_scale_min(b, sub);
  return dm.x * sm.x * f32(q) - dm.y * sm.y;
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let b = (c >> 3u) * 144u; // blocks are 36 words: every field is word-aligned
  let sub = c & 7u;
  let shift = vec4<u32>((sub & 1u) * 4u);
  let qs = (b + 16u + 32u * (sub >> 1u)) >> 2u;
  var acc_q = 0.0;
  var acc_x = 0.0;
  for (var j = 0u; j < 8u; j++) {
    let xv = x4(xi + 4u * j);
    let q = (bytes_of(W[qs + j]) >> shift) & vec4<u32>(15u);
    acc_q += dot(vec4<f32>(q), xv);
    acc_x += xv.x + xv.y + xv.z + xv.w;
  }
  let dm = unpack2x16float(W[b >> 2u]);
  let sm = q4k_scale_min(b, sub);
  return dm.x * sm.x * acc_q - dm.y * sm.y * acc_x;
}
#endif
#endif

#ifdef W_Q6_K
fn w_load(i: u32) -> f32 {
  let b = (i >> 8u) * 210u;
  let e = i & 255u;
  let h = e >> 7u;
  let r = (e >> 5u) & 3u;
  let l = e & 31u;
  let low = (w_byte(b + 64u * h + 32u * (r & 1u) + l) >> (4u * (r >> 1u))) & 15u;
  let high = (w_byte(b + 128u + 32u * h + l) >> (2u * r)) & 3u;
  return w_half(b + 208u) * i8_of(w_byte(b + 192u + (e >> 4u))) * (f32(low | (high << 4u)) - 32.0);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let b = (c >> 3u) * 210u;
  let sub = c & 7u; // elements 32 sub .. 32 sub + 31 of the block: h = sub / 4, r = sub % 4
  let h = sub >> 2u;
  let r = sub & 3u;
  // ql and qh runs start at the block's parity: on a word, or at its upper half (then each word
  // is the upper half of one load joined to the lower half of the next).
  let odd = (b & 2u) != 0u;
  let ql = (b + 64u * h + 32u * (r & 1u)) >> 2u;
  let qh = (b + 128u + 32u * h) >> 2u;
  let low_shift = vec4<u32>(4u * (r >> 1u));
  let high_shift = vec4<u32>(2u * r);
  var acc = vec2<f32>(0.0);  // the two groups of 16, each with its own scale
  for (var g = 0u; g < 2u; g++) {
    var prev_l = W[ql + 4u * g];
    var prev_h = W[qh + 4u * g];
    var part = 0.0;
    for (var j = 4u * g; j < 4u * g + 4u; j++) {
      let next_l = W[ql + 1u + j];
      let next_h = W[qh + 1u + j];
      let lw = select(prev_l, upper_lower(prev_l, next_l), odd);
      let hw = select(prev_h, upper_lower(prev_h, next_h), odd);
      let low = (bytes_of(lw) >> low_shift) & vec4<u32>(15u);
      let high = (bytes_of(hw) >> high_shift) & vec4<u32>(3u);
      part += dot(vec4<f32>(low | (high << vec4<u32>(4u))) - 32.0, x4(xi + 4u * j));
      prev_l = next_l;
      prev_h = next_h;
    }
    acc[g] = part;
  }
  let scales = w_bytes4(b + 192u + 2u * sub);
  return w_half(b + 208u) * (i8_of(scales & 0xffu) * acc.x + i8_of((scales >> 8u) & 0xffu) * acc.y);
}
#endif
#endif

#ifdef W_Q5_K
fn w_load(i: u32) -> f32 {
  let b = (i >> 8u) * 176u;
  let e = i & 255u;
  let sub = e >> 5u;
  let l = e & 31u;
  let low = (w_byte(b + 48u + 32u * (sub >> 1u) + l) >> ((sub & 1u) * 4u)) & 15u;
  let high = (w_byte(b + 16u + l) >> sub) & 1u;
  let dm = unpack2x16float(W[b >> 2u]);
  let sm = q4k_scale_min(b, sub);
  return dm.x * sm.x * f32(low | (high << 4u)) - dm.y * sm.y;
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let b = (c >> 3u) * 176u; // blocks are 44 words: every field is word-aligned
  let sub = c & 7u;
  let shift = vec4<u32>((sub & 1u) * 4u);
  let qs = (b + 48u + 32u * (sub >> 1u)) >> 2u;
  let qh = (b + 16u) >> 2u;
  var acc_q = 0.0;
  var acc_x = 0.0;
  for (var j = 0u; j < 8u; j++) {
    let xv = x4(xi + 4u * j);
    let q = ((bytes_of(W[qs + j]) >> shift) & vec4<u32>(15u)) | (((bytes_of(W[qh + j]) >> vec4<u32>(sub)) & vec4<u32>(1u)) << vec4<u32>(4u));
    acc_q += dot(vec4<f32>(q), xv);
    acc_x += xv.x + xv.y + xv.z + xv.w;
  }
  let dm = unpack2x16float(W[b >> 2u]);
  let sm = q4k_scale_min(b, sub);
  return dm.x * sm.x * acc_q - dm.y * sm.y * acc_x;
}
#endif
#endif

#ifdef W_Q3_K
// Scale j (0..15) of the block at byte b, signed: low 4 bits in scales[j % 8] at bit 4 (j / 8),
// top 2 in scales[8 + j % 4] at bit 2 (j / 4), less 32.
fn q3k_scale(b: u32, j: u32) -> f32 {
  let low = (w_byte(b + 96u + (j & 7u)) >> (4u * (j >> 3u))) & 15u;
  let high = (w_byte(b + 104u + (j & 3u)) >> (2u * (j >> 2u))) & 3u;
  return f32(low | (high << 4u)) - 32.0;
}

fn w_load(i: u32) -> f32 {
  let b = (i >> 8u) * 110u;
  let e = i & 255u;
  let h = e >> 7u;
  let r = (e >> 5u) & 3u;
  let l = e & 31u;
  let q = ((w_byte(b + 32u + 32u * h + l) >> (2u * r)) & 3u) | (((w_byte(b + l) >> (4u * h + r)) & 1u) << 2u);
  return w_half(b + 108u) * q3k_scale(b, e >> 4u) * (f32(q) - 4.0);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let b = (c >> 3u) * 110u; // on a word or half a word on: w_bytes4 realigns
  let sub = c & 7u; // elements 32 sub .. 32 sub + 31 of the block: h = sub / 4, r = sub % 4
  let h = sub >> 2u;
  let r = sub & 3u;
  var acc = vec2<f32>(0.0); // the two groups of 16, each with its own scale
  for (var j = 0u; j < 8u; j++) {
    let low = (bytes_of(w_bytes4(b + 32u + 32u * h + 4u * j)) >> vec4<u32>(2u * r)) & vec4<u32>(3u);
    let high = (bytes_of(w_bytes4(b + 4u * j)) >> vec4<u32>(4u * h + r)) & vec4<u32>(1u);
    acc[j >> 2u] += dot(vec4<f32>(low | (high << vec4<u32>(2u))) - 4.0, x4(xi + 4u * j));
  }
  return w_half(b + 108u) * (q3k_scale(b, 2u * sub) * acc.x + q3k_scale(b, 2u * sub + 1u) * acc.y);
}
#endif
#endif

#ifdef W_Q2_K
fn w_load(i: u32) -> f32 {
  let b = (i >> 8u) * 84u; // blocks are 21 words: every field is word-aligned
  let e = i & 255u;
  let q = (w_byte(b + 16u + 32u * (e >> 7u) + (e & 31u)) >> (2u * ((e >> 5u) & 3u))) & 3u;
  let sm = w_byte(b + (e >> 4u));
  let dm = unpack2x16float(W[(b + 80u) >> 2u]);
  return dm.x * f32(sm & 15u) * f32(q) - dm.y * f32(sm >> 4u);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let b = (c >> 3u) * 84u;
  let sub = c & 7u; // h = sub / 4, r = sub % 4
  let qs = (b + 16u + 32u * (sub >> 2u)) >> 2u;
  let shift = vec4<u32>(2u * (sub & 3u));
  var acc_q = vec2<f32>(0.0); // the two groups of 16
  var acc_x = vec2<f32>(0.0);
  for (var j = 0u; j < 8u; j++) {
    let xv = x4(xi + 4u * j);
    let q = (bytes_of(W[qs + j]) >> shift) & vec4<u32>(3u);
    acc_q[j >> 2u] += dot(vec4<f32>(q), xv);
    acc_x[j >> 2u] += xv.x + xv.y + xv.z + xv.w;
  }
  let sm = bytes_of(W[(b >> 2u) + (sub >> 1u)] >> (16u * (sub & 1u))); // scales 2 sub, 2 sub + 1 in .x, .y
  let dm = unpack2x16float(W[(b + 80u) >> 2u]);
  return dm.x * (f32(sm.x & 15u) * acc_q.x + f32(sm.y & 15u) * acc_q.y) - dm.y * (f32(sm.x >> 4u) * acc_x.x + f32(sm.y >> 4u) * acc_x.y);
}
#endif
#endif

#ifdef W_IQ4_NL
fn w_load(i: u32) -> f32 {
  let b = (i >> 5u) * 18u;
  let e = i & 31u;
  return w_half(b) * iq4_value((w_byte(b + 2u + (e & 15u)) >> ((e >> 4u) * 4u)) & 15u);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  // As Q4_0's: the 18-byte block starts at byte 0 or 2 of word i, qs follow d (5 loads).
  let b = c * 18u;
  let i = b >> 2u;
  let odd = (b & 2u) != 0u;
  var prev = W[i];
  let dd = unpack2x16float(prev);
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let next = W[i + 1u + j];
    let q = bytes_of(select(upper_lower(prev, next), next, odd));
    acc += dot(i8x4(iq4_bytes(q & vec4<u32>(15u))), x4(xi + 4u * j));
    acc += dot(i8x4(iq4_bytes(q >> vec4<u32>(4u))), x4(xi + 16u + 4u * j));
    prev = next;
  }
  return select(dd.x, dd.y, odd) * acc;
}
#endif
#endif

#ifdef W_IQ4_XS
// Sub-block j's scale of the block at word w, signed.
fn iq4xs_scale(w: u32, j: u32) -> f32 {
  let low = (W[w + 1u] >> (4u * j)) & 15u; // scales_l[j / 2] at bit 4 (j % 2): bit 4 j of the word
  let high = (W[w] >> (16u + 2u * j)) & 3u;
  return f32(low | (high << 4u)) - 32.0;
}

fn w_load(i: u32) -> f32 {
  let w = (i >> 8u) * 34u; // blocks are 34 words: every field is word-aligned
  let e = i & 255u;
  let sub = e >> 5u;
  let l = e & 31u;
  let q = (w_byte(4u * w + 8u + 16u * sub + (l & 15u)) >> ((l >> 4u) * 4u)) & 15u;
  return unpack2x16float(W[w]).x * iq4xs_scale(w, sub) * iq4_value(q);
}

#ifdef W_DOT
fn w_dot32(c: u32, xi: u32) -> f32 {
  let w = (c >> 3u) * 34u;
  let sub = c & 7u;
  let qs = w + 2u + 4u * sub;
  var acc = 0.0;
  for (var j = 0u; j < 4u; j++) {
    let q = bytes_of(W[qs + j]);
    acc += dot(i8x4(iq4_bytes(q & vec4<u32>(15u))), x4(xi + 4u * j));
    acc += dot(i8x4(iq4_bytes(q >> vec4<u32>(4u))), x4(xi + 16u + 4u * j));
  }
  return unpack2x16float(W[w]).x * iq4xs_scale(w, sub) * acc;
}
#endif
#endif
