// Register-tiled matmul for prefill: y[t, n] = sum_k x[t, k] * W[n, k]   (W row-major [n_out, k], as ggml stores it)
// Bindings: 0 step (uniform Step), 1 params (uniform Params {k, n, cache_rows, n0, n1}),
//           2 x [n_tokens, k] f32 (read as vec4s under X_VEC4), 3 W [n_out, k] (weights.wgsl words: F32, F16, BF16 or ggml blocks),
//           4 y [n_tokens, n_out] f32; cache_rows > 0 writes row t at row (pos0 + t) % cache_rows (V straight into the KV cache)
// Variants: W_F32, W_F16, W_BF16 or a ggml block format (W_Q8_0 ... W_IQ4_XS, weights.wgsl);
//           X_VEC4 where k % 4 == 0 (x read a vec4 at a time); BIAS adds binding 5 bias [n_out] f32;
//           STACK2, STACK3 (linear_store.wgsl): a weight stacking 2 or 3 linears, each part's rows to its own output (y, then bindings 8 and 9).
// Overrides: TG (the workgroup is TG x TG invocations; each computes 4 tokens x 4 outputs, so a workgroup's tile is 4 TG x 4 TG).
// Dispatch: (ceil(n_out / (4 TG)), ceil(n_tokens / (4 TG))).
//
// Design (for GPUs; CPU adapters keep their own linears, see Kernels.linear):
// - Per invocation, a 4 x 4 register tile: acc is 16 f32, plus one vec4 of x and one of W per k
//   step, about 40 registers in all, far under the 255 a GPU thread may hold, so occupancy is set by
//   workgroup memory and the grid, not registers. Each k step reads 2 vec4s of workgroup memory for
//   16 FMAs (the one-output-per-invocation matmul read 2 scalars for 1).
// - K goes through workgroup memory in chunks of KC = 32 (one 32-element ggml block, an eighth of a
//   K-quant block): 4 TG x 32 of x and of W, transposed to [k][4 TG] vec4s so that the inner loop is
//   two vec4 loads; 8 KiB at TG = 8, within WebGPU's guaranteed 16 KiB, so several workgroups fit
//   one SM / CU (an H100/H200 SM has 228 KiB). Each weight element is decoded once per workgroup
//   (w_load, in registers) and reused by its 4 TG tokens.
// - Why TG = 8 (64 invocations, a 32 x 32 tile): prefill runs in chunks of at most 64 tokens, so a
//   larger tile would leave most of it empty, and the small models Lantern targets have linears of
//   576..2048 outputs: 32-row tiles give 18..64 workgroups per token tile where 64-row ones give half
//   that, and even 64 invocations are 2 warps / 1 wave64. A 64-invocation workgroup is also the
//   smallest that keeps a wave64 (AMD) whole.
// - Measure on a real GPU (../shared/GPU.md, `npm run gpu:kit`): prefill tokens/s against
//   llama.cpp's Vulkan build on the same GGUF; this kernel's share of a prefill step (bench --profile);
//   and TG = 8 against 16 (64 x 64 tiles: twice the reuse of each decoded weight, a quarter of the
//   workgroups) and 8 x 4 register tiles, at 64-token chunks and at n_tokens = 5 (a short prompt).
//   If decoding block weights dominates (K-quants), decode whole 32-element runs per invocation rather
//   than element by element.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
#ifdef X_VEC4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;
#endif
@group(0) @binding(3) var<storage, read> W: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

#ifdef BIAS
@group(0) @binding(5) var<storage, read> bias: array<f32>;
#endif

#include "weights"
#include "linear_store"

override TG: u32 = 8u;
const KC = 32u; // k per staging step

var<workgroup> x_tile: array<vec4<f32>, KC * TG>; // [KC][TG]: x at k0 + kk of tokens 4 g .. 4 g + 3 of the tile
var<workgroup> w_tile: array<vec4<f32>, KC * TG>; // [KC][TG]: W at k0 + kk of rows 4 g .. 4 g + 3 of the tile

// x[t, kk .. kk + 3], zero past the tokens and past k.
fn x_quad(t: u32, kk: u32) -> vec4<f32> {
  let k = params.k;
  if (t >= step.n_tokens || kk >= k) { return vec4<f32>(0.0); }
#ifdef X_VEC4
  return x[(t * k + kk) >> 2u];
#else
  let i = t * k + kk;
  let last = t * k + k - 1u; // the row's last element: reads past k stay in the row, then read as 0
  let v = vec4<f32>(x[i], x[min(i + 1u, last)], x[min(i + 2u, last)], x[min(i + 3u, last)]);
  return select(vec4<f32>(0.0), v, vec4<u32>(kk) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(k));
#endif
}

// W[row, kk .. kk + 3], zero past the rows and past k.
fn w_quad(row: u32, kk: u32) -> vec4<f32> {
  let k = params.k;
  var w = vec4<f32>(0.0);
  if (row >= params.n) { return w; }
  for (var c = 0u; c < 4u; c++) {
    if (kk + c < k) { w[c] = w_load(row * k + kk + c); }
  }
  return w;
}

@compute @workgroup_size(TG, TG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let t0 = wid.y * 4u * TG;   // the tile's first token
  let row0 = wid.x * 4u * TG; // and first output row
  var acc: array<vec4<f32>, 4>; // acc[i][j]: token t0 + 4 lid.y + i, row row0 + 4 lid.x + j
  for (var k0 = 0u; k0 < params.k; k0 += KC) {
    // Staging: unit u is quad q of the chunk in row r of the tile (token t0 + r of x, row row0 + r
    // of W), stored transposed; neighbouring invocations take neighbouring quads of a row. One call
    // site of w_load keeps the shader small (SwiftShader compiles K-quant decoders slowly).
    for (var u = li; u < TG * KC; u += TG * TG) {
      let r = u / (KC / 4u);
      let kk = 4u * (u % (KC / 4u));
      let xq = x_quad(t0 + r, k0 + kk);
      let wq = w_quad(row0 + r, k0 + kk);
      for (var c = 0u; c < 4u; c++) {
        x_tile[(kk + c) * TG + r / 4u][r % 4u] = xq[c];
        w_tile[(kk + c) * TG + r / 4u][r % 4u] = wq[c];
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KC; kk++) {
      let xv = x_tile[kk * TG + lid.y];
      let wv = w_tile[kk * TG + lid.x];
      acc[0] += xv.x * wv;
      acc[1] += xv.y * wv;
      acc[2] += xv.z * wv;
      acc[3] += xv.w * wv;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + 4u * lid.y + i;
    for (var j = 0u; j < 4u; j++) {
      let row = row0 + 4u * lid.x + j;
      if (t < step.n_tokens && row < params.n) { store_y(t, row, acc[i][j]); }
    }
  }
}
