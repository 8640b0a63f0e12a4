import { LanternError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { preprocess } from '../gpu/preprocess.ts';
import { UniformLayout, type UniformField } from '../gpu/uniforms.ts';
import { shaderSource } from './shaders.ts';

/**
 * Kernel dispatch sites. Each builder returns an Op: a pipeline with its bind group fixed at
 * load time, which a forward pass encodes once per step. Only the shared Step uniform
 * (token count and start position) changes between steps.
 */

/** Per-step values every kernel may read, written once before each submit. */
export const STEP = new UniformLayout('Step', { n_tokens: 'u32', pos0: 'u32' });

/**
 * How a weight matrix is stored on the GPU (raw GGUF bytes, as u32 words). The q formats are
 * ggml blocks (shaders/quant.wgsl), decoded in registers by every kernel that reads them.
 */
export type WeightFormat = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q6_k' | 'q5_0r' | 'q6_kr'
  | 'bf16' | 'q5_k' | 'q3_k' | 'q2_k' | 'iq4_nl' | 'iq4_xs';

/** Elements per block of each format: a row of a block format is a whole number of blocks. */
const BLOCK_ELEMENTS: Record<WeightFormat, number> = {
  f32: 1, f16: 1, q8_0: 32, q4_0: 32, q4_1: 32, q5_0: 32, q5_1: 32, q4_k: 256, q6_k: 256, q5_0r: 64, q6_kr: 512,
  bf16: 1, q5_k: 256, q3_k: 256, q2_k: 256, iq4_nl: 32, iq4_xs: 256,
};

/**
 * Formats matvec_int8.wgsl reads, each with the multiple of k it needs: pairs of 32-element blocks
 * (so that every pair starts on a word) or whole 256-element blocks.
 */
const INT8_UNIT: Partial<Record<WeightFormat, number>> = {
  q8_0: 64, q4_0: 64, q5_0: 64, q4_k: 256, q6_k: 256, q5_0r: 64, q6_kr: 512, q5_k: 256, q3_k: 256, q2_k: 256, iq4_nl: 64, iq4_xs: 256,
};

/** Formats whose int8 linears meet x as four int8 per word (dot4I8Packed): 8-bit weights; the others take 16-bit pairs. */
const INT8_PACKED_X: ReadonlySet<WeightFormat> = new Set(['q8_0', 'iq4_nl', 'iq4_xs']);

/**
 * How the KV cache stores K and V (shaders/kv_cache.wgsl): f32, f16 pairs (pack2x16float, no
 * shader-f16 needed), or ggml Q8_0 blocks of 32 (34 bytes each), quantized as rows are written.
 */
export type KvCacheType = 'f32' | 'f16' | 'q8_0';

/** Bytes of one cache row of `width` values (K or V of one token in one layer) in form `type`: Q8_0 rows are padded to a whole word. */
export function kvRowBytes(type: KvCacheType, width: number): number {
  if (type === 'f32') return width * 4;
  if (type === 'f16') return width * 2;
  return Math.ceil(((width / 32) * 34) / 4) * 4;
}

/**
 * Whether heads of `headDim` values can be stored as `type`: f16 pairs need an even count, Q8_0
 * whole blocks of 32 per head (llama.cpp refuses a Q8_0 cache otherwise, and so does Lantern).
 */
export function kvCacheFits(type: KvCacheType, headDim: number): boolean {
  return type === 'f32' || (type === 'f16' ? headDim % 2 === 0 : headDim % 32 === 0);
}

/**
 * kv_shift.wgsl's uniform: a context shift moves rows src .. src + rows − 1 of every layer's cache
 * to dst .. (Forward.shift writes it once per shift; every layer's move reads it).
 */
export const KV_SHIFT = new UniformLayout('Params', {
  src: 'u32', dst: 'u32', rows: 'u32', width: 'u32', head_dim: 'u32', rope_dim: 'u32', row_words: 'u32', heads_per_unit: 'u32',
});

/** The RoPE of a layer's K as a context shift re-rotates it: the frequencies of Kernels.rope, without attnFactor. */
export interface RopeShift {
  headDim: number;
  ropeDim: number;
  neox: boolean;
  thetaBase: number;
  freqScale?: number;
  freqFactors?: Float32Array;
}

/**
 * (cos, sin) of −delta · θ_i for i < ropeDim / 2, [ropeDim / 2] vec2<f32>: the rotation that takes
 * K rotated at position p to K rotated at p − delta (θ_i as Kernels.rope: linear in the position).
 * attnFactor is left out: the cached K carries it once already, and a rotation must not scale.
 */
export function ropeShiftTable(rope: RopeShift, delta: number): Float32Array<ArrayBuffer> {
  const half = rope.ropeDim / 2;
  const table = new Float32Array(half * 2);
  for (let i = 0; i < half; i++) {
    const theta = ((rope.freqScale ?? 1) * -delta * rope.thetaBase ** ((-2 * i) / rope.ropeDim)) / (rope.freqFactors?.[i] ?? 1);
    table[2 * i] = Math.cos(theta);
    table[2 * i + 1] = Math.sin(theta);
  }
  return table;
}

/** A weight matrix of `rows` rows of `cols` elements, row-major as ggml stores it. */
export interface Weight {
  buffer: GPUBuffer;
  format: WeightFormat;
  rows: number;
  cols: number;
  /**
   * Set when the matrix stacks the rows of several linears that read the same x (WeightLoader.stack):
   * the rows of each, in order. linear() then writes each part to its own output.
   */
  parts?: readonly number[];
}

/** The uniform every linear kernel reads; n0, n1 are the rows of a stacked weight's first parts (linear_store.wgsl). */
const LINEAR_PARAMS = new UniformLayout('Params', { k: 'u32', n: 'u32', cache_rows: 'u32', n0: 'u32', n1: 'u32' });

export interface KernelOptions {
  matvecThreadsPerRow?: number;
  /** Default true: where it pays (CPU adapters), linears of block formats quantize their input to int8. */
  int8Activations?: boolean;
  /** Default true: CPU adapters take the kernels written for them; false gives them the GPU paths (tests). */
  cpuKernels?: boolean;
  /**
   * Whether linears of several tokens (prefill) take the register-tiled matmul.wgsl. Default: where
   * no CPU-adapter kernel applies (GPUs; see Kernels.linear). true forces it on every adapter, false
   * runs the matvec once per token (tests, benchmarks).
   */
  tiledMatmul?: boolean;
  /** Split decode attention (ATTENTION_SPLIT by default on GPUs, none on CPU adapters): positions per chunk, and the fewest chunks worth splitting into (tests make both small). */
  attentionSplit?: { chunk: number; minChunks: number };
}

/**
 * Decode attention is split over the context (flash-decoding) in chunks of about `chunk` positions
 * once a query sees more than `minChunks - 1` chunks: below that, one workgroup per head walks
 * the context faster than two dispatches would.
 */
export const ATTENTION_SPLIT = { chunk: 256, minChunks: 3 } as const;

export interface Op {
  readonly name: string;
  /**
   * Records the op's dispatches for a step of nTokens tokens from position pos0. pos0 only shapes
   * the dispatch of ops whose work grows with the context (split decode attention); where it is
   * not given they take a path that does not depend on it.
   */
  encode(pass: GPUComputePassEncoder, nTokens: number, pos0?: number): void;
}

const MAX_DISPATCH = 65535;

/** `groups` workgroups as (x, y) within the per-dimension limit; the shaders read row groups as x + 65535 y. */
function rowGroups(groups: number): [number, number] {
  return [Math.min(groups, MAX_DISPATCH), Math.ceil(groups / MAX_DISPATCH)];
}

export class Kernels {
  private readonly uniforms = new Map<string, GPUBuffer>();

  /**
   * Invocations that share one matvec row. With subgroups, one subgroup per row, reduced with
   * subgroupAdd (no barrier). Without, CPU-backed adapters (SwiftShader) take whole rows per
   * invocation, since each workgroup barrier costs them dearly; GPUs share a row among 16.
   */
  readonly matvecThreadsPerRow: number;
  private readonly matvecSubgroups: boolean;
  /**
   * CPU adapters with subgroups of 4 or more and WGSL's packed int8 dot product quantize the
   * activations of block-format linears to int8 and take matvec_int8.wgsl, which reads weights
   * 2-4x faster there than decoding them to f32 (llama.cpp's CPU backend quantizes activations the
   * same way). GPUs keep the f32 path.
   */
  readonly int8Activations: boolean;
  /** A CPU adapter with subgroups of 4 or more: the kernels written for it (one subgroup per head, four rows per invocation) run. */
  private readonly cpuSubgroups: boolean;
  /** F16 and F32 linears take matvec_rows.wgsl (four rows per invocation). */
  private readonly cpuRows: boolean;
  /** KernelOptions.tiledMatmul: undefined chooses per adapter. */
  private readonly tiledMatmul: boolean | undefined;
  /** Int8 copies of activation buffers, one per f32 buffer (quantize_x.wgsl's outputs). */
  private readonly quantized = new Map<GPUBuffer, { xq: GPUBuffer; xs: GPUBuffer }>();
  private readonly attentionSplit: { chunk: number; minChunks: number };
  /** Split attention's partials (attention_partials.wgsl) by size in bytes: layers of one shape share one, as their dispatches run in turn. */
  private readonly partials = new Map<number, GPUBuffer>();

  /**
   * `matvecThreadsPerRow` forces the barrier-reduced f32 matvec with that many invocations per row
   * (tests); `int8Activations: false` keeps block formats on the f32 path on CPU adapters too.
   */
  constructor(readonly gpu: GpuContext, readonly step: GPUBuffer, options: KernelOptions = {}) {
    const { matvecThreadsPerRow, int8Activations = true, cpuKernels = true, tiledMatmul } = options;
    this.tiledMatmul = tiledMatmul;
    this.matvecSubgroups = matvecThreadsPerRow === undefined && gpu.subgroupSize !== undefined && gpu.subgroupSize <= 64;
    this.matvecThreadsPerRow = matvecThreadsPerRow ?? (this.matvecSubgroups ? gpu.subgroupSize! : gpu.cpuAdapter ? 1 : 16);
    this.cpuSubgroups = cpuKernels && gpu.cpuAdapter && (gpu.subgroupSize ?? 0) >= 4;
    this.cpuRows = this.matvecSubgroups && this.cpuSubgroups;
    this.int8Activations = int8Activations && this.cpuRows && gpu.packedInt8;
    // CPU adapters keep one subgroup per head unless told otherwise: on SwiftShader the split kernels
    // measured slower at 4,000 positions (README, Benchmarks), where the cores are few anyway.
    this.attentionSplit = options.attentionSplit ?? (gpu.cpuAdapter ? { chunk: ATTENTION_SPLIT.chunk, minChunks: MAX_DISPATCH + 1 } : ATTENTION_SPLIT);
    const { chunk, minChunks } = this.attentionSplit;
    if (!(Number.isInteger(chunk) && chunk >= 1 && Number.isInteger(minChunks) && minChunks >= 1)) {
      throw new LanternError('BAD_ARGUMENT', `attentionSplit takes a whole chunk >= 1 and minChunks >= 1, not chunk ${chunk}, minChunks ${minChunks}.`);
    }
  }

  /** Whether linear() with this weight quantizes its input to int8 (matvec_int8.wgsl) rather than reading it as f32. */
  readsInt8Activations(weight: Pick<Weight, 'format' | 'cols'>): boolean {
    const unit = INT8_UNIT[weight.format];
    return this.int8Activations && unit !== undefined && weight.cols % unit === 0;
  }

  /** out[t, :] = W[tokens[t], :] */
  async embedding(table: Weight, tokens: GPUBuffer, out: GPUBuffer): Promise<Op> {
    const params = new UniformLayout('Params', { n_embd: 'u32' });
    const wg = 64;
    const pipeline = await this.pipeline('embedding', [weightDefine(table)], params, { WG: wg });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n_embd: table.cols }), tokens, table.buffer, out]);
    return this.op(pipeline, bind, (n) => [Math.ceil(table.cols / wg), n]);
  }

  /** x[t, :] += table[pos0 + t, :]: learned absolute positions (GPT-2's position_embd), stored as token_embd may be. */
  async positionEmbedding(table: Weight, x: GPUBuffer): Promise<Op> {
    const params = new UniformLayout('Params', { n_embd: 'u32' });
    const wg = 64;
    const pipeline = await this.pipeline('embedding', [weightDefine(table), 'POSITIONS'], params, { WG: wg });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n_embd: table.cols }), undefined, table.buffer, x]);
    return this.op(pipeline, bind, (n) => [Math.ceil(table.cols / wg), n]);
  }

  /** out[r, :] = x[r, :] / rms(x[r, :]) * w; with lastRow only the last token's row, into row 0. */
  async rmsnorm(x: GPUBuffer, weight: Weight, out: GPUBuffer, eps: number, lastRow = false): Promise<Op> {
    const params = new UniformLayout('Params', { n: 'u32', eps: 'f32' });
    const defines = [weightDefine(weight), ...(lastRow ? ['LAST_ROW'] : []), ...(this.cpuSubgroups ? ['SUBGROUPS'] : [])];
    const pipeline = await this.pipeline('rmsnorm', defines, params, { WG: this.cpuSubgroups ? this.gpu.subgroupSize! : 64 });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n: weight.cols, eps }), x, weight.buffer, out]);
    return this.op(pipeline, bind, (n) => (lastRow ? [1] : [1, n]));
  }

  /**
   * RMSNorm in place of every weight.cols-wide row of x [n_tokens, rowsPerToken * weight.cols]:
   * per-head q/k norms (Qwen3, Gemma 3: weight [head_dim], rowsPerToken = n_heads), or OLMo 2's
   * norm over a whole q or k projection (rowsPerToken = 1).
   */
  async rmsnormRows(x: GPUBuffer, weight: Weight, eps: number, rowsPerToken: number): Promise<Op> {
    checkNormVector(weight, 'rmsnormRows');
    if (!Number.isInteger(rowsPerToken) || rowsPerToken < 1 || rowsPerToken > MAX_DISPATCH) {
      throw new LanternError('BAD_ARGUMENT', `rmsnormRows takes 1 to ${MAX_DISPATCH} rows per token, not ${rowsPerToken}; pass the head count (per-head norms) or 1 (whole projection).`);
    }
    const params = new UniformLayout('Params', { n: 'u32', eps: 'f32' });
    const defines = [weightDefine(weight), 'IN_PLACE', ...(this.cpuSubgroups ? ['SUBGROUPS'] : [])];
    const pipeline = await this.pipeline('rmsnorm', defines, params, { WG: this.cpuSubgroups ? this.gpu.subgroupSize! : 64 });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n: weight.cols, eps }), x, weight.buffer]);
    return this.op(pipeline, bind, (n) => [rowsPerToken, n]);
  }

  /**
   * LayerNorm: out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b over rows of weight.cols (ggml_norm,
   * then mul and add); with lastRow only the last token's row, into row 0.
   */
  async layernorm(x: GPUBuffer, weight: Weight, bias: Weight | undefined, out: GPUBuffer, eps: number, lastRow = false): Promise<Op> {
    checkNormVector(weight, 'layernorm weight');
    if (bias) {
      checkNormVector(bias, 'layernorm bias');
      if (bias.cols !== weight.cols) throw new LanternError('BAD_MODEL_FILE', `A LayerNorm's bias has ${bias.cols} elements but its weight ${weight.cols}; the file is damaged.`);
    }
    const params = new UniformLayout('Params', { n: 'u32', eps: 'f32' });
    const defines = [
      weightDefine(weight), ...(bias ? ['BIAS', ...(bias.format === 'f16' ? ['B_F16'] : [])] : []),
      ...(lastRow ? ['LAST_ROW'] : []), ...(this.cpuSubgroups ? ['SUBGROUPS'] : []),
    ];
    const pipeline = await this.pipeline('layernorm', defines, params, { WG: this.cpuSubgroups ? this.gpu.subgroupSize! : 64 });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n: weight.cols, eps }), x, weight.buffer, out, bias?.buffer]);
    return this.op(pipeline, bind, (n) => [lastRow ? 1 : n]);
  }

  /**
   * y = x W^T for every token: a matvec for one token (decode), and for several (prefill) the
   * register-tiled matmul.wgsl on GPUs. CPU adapters prefill with the matvecs written for them
   * (int8 activations, four rows per invocation, or whole rows of blocks per invocation): on
   * SwiftShader, at SmolLM2's 64 tokens x 576 -> 1536, F16 rows took half the tiled matmul's time
   * and Q8_0's int8 path a small fraction of it, since each workgroup barrier and workgroup-memory
   * access costs a CPU dearly (the tiled matmul still beats a matvec per token, 2-5x).
   * KernelOptions.tiledMatmul overrides the choice.
   * With cacheRows, token t's row lands at row (pos0 + t) % cacheRows of y (writing V into a KV
   * cache of cacheRows rows: the whole context, or a ring for a sliding-window layer);
   * with bias, bias[n] is added to every row. A stacked weight (weight.parts, 2 or 3 of them)
   * takes one output per part, [n_tokens, part rows] each; cacheRows applies to the last.
   */
  async linear(x: GPUBuffer, weight: Weight, y: GPUBuffer | readonly GPUBuffer[], options: { cacheRows?: number; bias?: GPUBuffer } = {}): Promise<Op> {
    const { cacheRows = 0, bias } = options;
    const parts = weight.parts ?? [weight.rows];
    const outputs = Array.isArray(y) ? (y as readonly GPUBuffer[]) : [y as GPUBuffer];
    if (outputs.length !== parts.length || parts.length > 3 || parts.reduce((a, b) => a + b, 0) !== weight.rows) {
      throw new Error(`linear: a weight of parts [${parts.join(', ')}] (${weight.rows} rows) cannot write ${outputs.length} outputs`);
    }
    const values = this.uniform(LINEAR_PARAMS, {
      k: weight.cols, n: weight.rows, cache_rows: cacheRows, n0: parts.length > 1 ? parts[0] : 0, n1: parts.length > 2 ? parts[1] : 0,
    });
    // y, and for a stacked weight y_mid (binding 8) and y_last (binding 9), as linear_store.wgsl declares them.
    const stack: LinearOutputs = {
      defines: parts.length === 3 ? ['STACK3'] : parts.length === 2 ? ['STACK2'] : [],
      y: outputs[0],
      extra: parts.length === 3 ? [outputs[1], outputs[2]] : parts.length === 2 ? [undefined, outputs[1]] : [],
    };
    const int8 = this.readsInt8Activations(weight);
    if (!int8 && (weight.format === 'q5_0r' || weight.format === 'q6_kr')) {
      throw new Error(`${weight.format.toUpperCase()} weights are read with int8 activations only: load them as stored where int8Activations is off`);
    }
    const rows = !int8 && this.cpuRows && (weight.format === 'f16' || weight.format === 'f32' || weight.format === 'bf16') && weight.cols % 16 === 0;
    // Block weights with one invocation per row (CPU adapters) decode each block in registers with no barrier.
    const blockRows = BLOCK_ELEMENTS[weight.format] > 1 && (this.matvecThreadsPerRow === 1 || (this.matvecSubgroups && this.gpu.cpuAdapter));
    const matvec = int8
      ? await this.linearInt8(x, weight, stack, values, bias)
      : rows ? await this.linearRows(x, weight, stack, values, bias) : await this.linearMatvec(x, weight, stack, values, bias);
    // CPU adapters run the matvec over the tokens where none of their own paths applies (odd widths):
    // compiling the tiled matmul costs SwiftShader more, at each load, than it saves on such layers.
    if (!(this.tiledMatmul ?? !(int8 || rows || blockRows || this.gpu.cpuAdapter))) return matvec;
    const matmul = await this.linearTiled(x, weight, stack, values, bias);
    return {
      name: matvec.name,
      encode(pass, n) {
        (n === 1 ? matvec : matmul).encode(pass, n);
      },
    };
  }

  /** linear() through matvec.wgsl for every token: a workgroup of rows, each row's dot product shared by matvecThreadsPerRow invocations. */
  private async linearMatvec(x: GPUBuffer, weight: Weight, out: LinearOutputs, values: GPUBuffer, bias?: GPUBuffer): Promise<Op> {
    const defines = [weightDefine(weight), ...(bias ? ['BIAS'] : []), ...out.defines, ...(this.matvecSubgroups ? ['SUBGROUPS'] : [])];
    const wg = 64;
    const tpr = this.matvecThreadsPerRow;
    const pipeline = await this.pipeline('matvec', defines, LINEAR_PARAMS, { WG: wg, TPR: tpr });
    const bind = this.bindGroup(pipeline, [this.step, values, x, weight.buffer, out.y, bias, undefined, undefined, ...out.extra]);
    const groups = rowGroups(Math.ceil(weight.rows / (wg / tpr)));
    return { name: `linear:${weight.format} ${shapeName(weight)}`, encode: this.op(pipeline, bind, (n) => [...groups, n]).encode };
  }

  /** linear() through matmul.wgsl: 4 tokens x 4 rows per invocation, a workgroup of 8 x 8 on a 32 x 32 tile (its header says why). */
  private async linearTiled(x: GPUBuffer, weight: Weight, out: LinearOutputs, values: GPUBuffer, bias?: GPUBuffer): Promise<Op> {
    const tg = 8;
    const tile = 4 * tg;
    if (Math.ceil(weight.rows / tile) > MAX_DISPATCH) {
      throw new LanternError('BAD_MODEL_FILE', `A linear of ${weight.rows} rows is more than the tiled matmul dispatches (${MAX_DISPATCH * tile}); the file is not a language model Lantern can run.`);
    }
    const defines = [weightDefine(weight), ...(weight.cols % 4 === 0 ? ['X_VEC4'] : []), ...(bias ? ['BIAS'] : []), ...out.defines];
    const pipeline = await this.pipeline('matmul', defines, LINEAR_PARAMS, { TG: tg });
    const bind = this.bindGroup(pipeline, [this.step, values, x, weight.buffer, out.y, bias, undefined, undefined, ...out.extra]);
    return this.op(pipeline, bind, (n) => [Math.ceil(weight.rows / tile), Math.ceil(n / tile)]);
  }

  /** linear() on a CPU adapter: x quantized per block of 32 (quantize_x.wgsl), then matvec_int8.wgsl for every token. */
  private async linearInt8(x: GPUBuffer, weight: Weight, out: LinearOutputs, values: GPUBuffer, bias?: GPUBuffer): Promise<Op> {
    const k = weight.cols;
    const { xq, xs } = this.quantizedCopy(x);
    const quantizeParams = new UniformLayout('Params', { k: 'u32' });
    const quantizeWg = 64;
    const pairs = !INT8_PACKED_X.has(weight.format);
    const quantize = await this.pipeline('quantize_x', pairs ? ['PAIRS'] : [], quantizeParams, { WG: quantizeWg });
    const quantizeBind = this.bindGroup(quantize, [this.step, this.uniform(quantizeParams, { k }), x, xq, xs]);
    const defines = [weightDefine(weight), ...(pairs && INT8_UNIT[weight.format] === 64 ? ['W_PAIR_BLOCKS'] : []), ...(bias ? ['BIAS'] : []), ...out.defines];
    const matvec = await this.fourRows('matvec_int8', defines, [this.step, values, xq, xs, weight.buffer, out.y, bias, undefined, ...out.extra], weight.rows);
    return {
      name: `linear:${weight.format}:int8 ${shapeName(weight)}`,
      encode(pass, n) {
        pass.setPipeline(quantize);
        pass.setBindGroup(0, quantizeBind);
        pass.dispatchWorkgroups(Math.ceil(k / 32 / quantizeWg), n);
        matvec(pass, n);
      },
    };
  }

  /** linear() of F16 or F32 weights on a CPU adapter: matvec_rows.wgsl, four rows per invocation, and four tokens when there are several. */
  private async linearRows(x: GPUBuffer, weight: Weight, out: LinearOutputs, values: GPUBuffer, bias?: GPUBuffer): Promise<Op> {
    const defines = [weightDefine(weight), ...(bias ? ['BIAS'] : []), ...out.defines];
    const matvec = await this.fourRows('matvec_rows', defines, [this.step, values, x, weight.buffer, out.y, bias, undefined, undefined, ...out.extra], weight.rows);
    return { name: `linear:${weight.format}:rows ${shapeName(weight)}`, encode: matvec };
  }

  /**
   * The dispatch of a matvec that computes four rows per invocation (matvec_int8.wgsl,
   * matvec_rows.wgsl, both from rows4.wgsl): one token per invocation when decoding, and with
   * several tokens (prefill) four (TOKENS4), so that each weight is loaded and unpacked once for four.
   */
  private async fourRows(
    kernel: string, defines: string[], resources: (GPUBuffer | undefined)[], rows: number,
  ): Promise<(pass: GPUComputePassEncoder, n: number) => void> {
    const wg = 16;
    const one = await this.pipeline(kernel, defines, LINEAR_PARAMS, { WG: wg });
    const four = await this.pipeline(kernel, [...defines, 'TOKENS4'], LINEAR_PARAMS, { WG: wg });
    const oneBind = this.bindGroup(one, resources);
    const fourBind = this.bindGroup(four, resources);
    const groups = rowGroups(Math.ceil(rows / (4 * wg)));
    return (pass, n) => {
      pass.setPipeline(n === 1 ? one : four);
      pass.setBindGroup(0, n === 1 ? oneBind : fourBind);
      pass.dispatchWorkgroups(...groups, n === 1 ? 1 : Math.ceil(n / 4));
    };
  }

  /** The int8 copy of activation buffer x: xq, up to 2 bytes per f32 of x (16-bit pairs); xs, a vec2<f32> per 32. */
  private quantizedCopy(x: GPUBuffer): { xq: GPUBuffer; xs: GPUBuffer } {
    let copy = this.quantized.get(x);
    if (!copy) {
      const usage = GPUBufferUsage.STORAGE;
      const elements = Math.floor(x.size / 4);
      copy = {
        xq: this.gpu.memory.createBuffer('activations', { label: `${x.label} int8`, size: Math.max(16, Math.ceil(elements / 2) * 4), usage }),
        xs: this.gpu.memory.createBuffer('activations', { label: `${x.label} int8 scales`, size: Math.max(16, Math.ceil(elements / 32) * 8), usage }),
      };
      this.quantized.set(x, copy);
    }
    return copy;
  }

  /**
   * Rotates [n_tokens, nHeads, headDim] in place, or into `cache` at rows (pos0 + t) % cacheRows
   * (default maxPositions; fewer for a sliding-window layer's ring), positions below maxPositions.
   * freqFactors [ropeDim / 2] divide the rotation frequencies (Llama 3's rope_freqs, Phi-3's LongRoPE),
   * freqScale multiplies the positions (linear scaling) and attnFactor the cos and sin, as ggml_rope_ext does.
   */
  async rope(
    x: GPUBuffer,
    shape: {
      nHeads: number; headDim: number; ropeDim: number; thetaBase: number; neox: boolean; maxPositions: number; freqFactors?: Float32Array; cacheRows?: number;
      /** Linear RoPE scaling: positions times this (1 / rope.scaling.factor); 1 by default. */
      freqScale?: number;
      /** cos and sin times this (rope.scaling.attn_factor); 1 by default. */
      attnFactor?: number;
    },
    cache?: GPUBuffer,
  ): Promise<Op> {
    const cacheRows = checkCacheRows(shape.cacheRows ?? shape.maxPositions, 'rope');
    const params = new UniformLayout('Params', { n_heads: 'u32', head_dim: 'u32', rope_dim: 'u32', cache_rows: 'u32' });
    const defines = [...(shape.neox ? ['NEOX'] : []), ...(cache ? ['TO_CACHE'] : [])];
    const wg = 64;
    const pipeline = await this.pipeline('rope', defines, params, { WG: wg });
    const values = this.uniform(params, { n_heads: shape.nHeads, head_dim: shape.headDim, rope_dim: shape.ropeDim, cache_rows: cacheRows });
    const half = shape.ropeDim / 2;
    // Llama 3's rope_freqs: frequency i is divided by factor i (long-context scaling).
    const factors = shape.freqFactors;
    const { freqScale = 1, attnFactor = 1 } = shape;
    const table = this.constants(`rope:${shape.thetaBase}:${shape.ropeDim}:${shape.maxPositions}:${freqScale}:${attnFactor}:${factors?.join(',') ?? ''}`, () => {
      const cs = new Float32Array(shape.maxPositions * half * 2);
      for (let pos = 0; pos < shape.maxPositions; pos++) {
        for (let i = 0; i < half; i++) {
          const theta = (freqScale * pos * shape.thetaBase ** ((-2 * i) / shape.ropeDim)) / (factors?.[i] ?? 1);
          cs[(pos * half + i) * 2] = attnFactor * Math.cos(theta);
          cs[(pos * half + i) * 2 + 1] = attnFactor * Math.sin(theta);
        }
      }
      return cs;
    });
    const bind = this.bindGroup(pipeline, [this.step, values, table, x, ...(cache ? [cache] : [])]);
    const pairs = (shape.nHeads * shape.headDim) / 2;
    return this.op(pipeline, bind, (n) => [Math.ceil(pairs / wg), n]);
  }

  /**
   * cache[(pos0 + t) % cacheRows, :] = x[t, :] in the cache's form (kvCache, default f32): K into an
   * f32 cache in layers without RoPE (GPT-2, SmolLM3's NoPE layers), every K and V row into an f16
   * or Q8_0 cache.
   */
  async copyToCache(x: GPUBuffer, cache: GPUBuffer, width: number, cacheRows: number, kvCache: KvCacheType = 'f32'): Promise<Op> {
    checkKvCache(kvCache, width);
    const params = new UniformLayout('Params', { width: 'u32', cache_rows: 'u32' });
    const wg = 64;
    const pipeline = await this.pipeline('copy_to_cache', kvDefines(kvCache), params, { WG: wg });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { width, cache_rows: checkCacheRows(cacheRows, 'copyToCache') }), x, cache]);
    // Invocations per row: one per value, per f16 pair, or per pair of Q8_0 blocks.
    const units = kvCache === 'f32' ? width : kvCache === 'f16' ? width / 2 : Math.ceil(width / 64);
    return this.op(pipeline, bind, (n) => [Math.ceil(units / wg), n]);
  }

  /**
   * A context shift's move of one layer's cache (kv_shift.wgsl): `params` (KV_SHIFT, kvShiftParams)
   * says which rows go where; the op is encoded for that many rows. With `rope`, the rows are K of a
   * RoPE layer and are rotated by `rope.table` (ropeShiftTable) in the cache's form; without, they
   * are copied verbatim (V, and K of a layer without RoPE).
   */
  async kvShift(
    params: GPUBuffer, cache: GPUBuffer,
    shape: { width: number; headDim: number; kvCache: KvCacheType; rope?: { ropeDim: number; neox: boolean; table: GPUBuffer } },
  ): Promise<Op> {
    const { width, headDim, kvCache, rope } = shape;
    checkKvCache(kvCache, headDim);
    if (headDim > 256 || width % headDim !== 0) throw new Error(`kvShift takes heads of at most 256 values that divide the row (${headDim}, ${width})`);
    if (rope && (rope.ropeDim % 2 !== 0 || rope.ropeDim > headDim)) throw new Error(`kvShift rotates an even rope_dim <= head_dim, not ${rope.ropeDim}`);
    const wg = 64;
    const defines = rope ? ['ROTATE', ...(rope.neox ? ['NEOX'] : []), ...kvDefines(kvCache)] : [];
    const pipeline = await this.pipeline('kv_shift', defines, KV_SHIFT, { WG: wg });
    const bind = this.bindGroup(pipeline, [undefined, params, cache, rope?.table]);
    const { units } = kvShiftUnits(shape);
    return this.op(pipeline, bind, (rows) => rowGroups(Math.ceil((rows * units) / wg)));
  }

  /**
   * Causal attention of q [n_tokens, nHeads * headDim]: query t at position p = pos0 + t over key
   * positions 0..p, or with a window p - window + 1..p (llama.cpp's standard sliding window). Key
   * position j is cache row j % cacheRows: cacheRows covers the context, or for a windowed layer is
   * a ring of at least window + n_tokens - 1 rows (a chunk's own keys must not overwrite ones its
   * first queries still see). Scores are scale * q.k (default 1 / sqrt(headDim)), then with
   * softcap, softcap * tanh(score / softcap) (Gemma 2). The caches hold K and V in form kvCache
   * (default f32; shaders/kv_cache.wgsl).
   */
  async attention(
    q: GPUBuffer, kCache: GPUBuffer, vCache: GPUBuffer, out: GPUBuffer,
    shape: { nHeads: number; nKvHeads: number; headDim: number; scale?: number; softcap?: number; window?: number; cacheRows: number; kvCache?: KvCacheType },
  ): Promise<Op> {
    const kvCache = shape.kvCache ?? 'f32';
    checkKvCache(kvCache, shape.headDim);
    if (shape.headDim > 256) throw new Error(`attention supports head_dim <= 256, not ${shape.headDim}`);
    if (shape.nHeads % shape.nKvHeads !== 0) throw new Error(`n_heads ${shape.nHeads} is not a multiple of n_kv_heads ${shape.nKvHeads}`);
    const { scale = 1 / Math.sqrt(shape.headDim), softcap = 0, window = 0 } = shape;
    const cacheRows = checkCacheRows(shape.cacheRows, 'attention');
    if (!(softcap >= 0 && Number.isFinite(softcap)) || !(Number.isInteger(window) && window >= 0) || !Number.isFinite(scale)) {
      throw new LanternError('BAD_ARGUMENT', `attention takes a finite scale, a softcap >= 0 and a whole window >= 0 (0: none), not scale ${scale}, softcap ${softcap}, window ${window}; check the model's attention settings.`);
    }
    const params = new UniformLayout('Params', {
      n_heads: 'u32', n_kv_heads: 'u32', head_dim: 'u32', scale: 'f32', softcap: 'f32', window: 'u32', cache_rows: 'u32',
    });
    // CPU adapters pay dearly for workgroup barriers: one subgroup per head there, for the common head sizes.
    const subgroupHeads = this.cpuSubgroups && (shape.headDim === 64 || shape.headDim === 128);
    const kernel = subgroupHeads ? 'attention_subgroup' : 'attention';
    const defines = [...(subgroupHeads && shape.headDim === 128 ? ['HD128'] : []), ...kvDefines(kvCache)];
    const pipeline = await this.pipeline(kernel, defines, params, {});
    const values = this.uniform(params, { n_heads: shape.nHeads, n_kv_heads: shape.nKvHeads, head_dim: shape.headDim, scale, softcap, window, cache_rows: cacheRows });
    const bind = this.bindGroup(pipeline, [this.step, values, q, kCache, vCache, out]);
    const whole = this.op(pipeline, bind, (n) => [shape.nHeads, n]);
    const { chunk, minChunks } = this.attentionSplit;
    const maxChunks = attentionChunks(window > 0 ? Math.min(window, cacheRows) : cacheRows, chunk);
    if (maxChunks < minChunks) return whole;

    // Split decode (flash-decoding): partials per (head, chunk), then one reduction per head. CPU
    // adapters take the query heads of a KV head together (attention_group.wgsl), so that each K and
    // V value is decoded once for all of them: there the decoding, not the memory, is the cost.
    const partials = this.partialsBuffer(attentionPartialsBytes(shape.nHeads, shape.headDim, maxChunks));
    const group = shape.nHeads / shape.nKvHeads;
    const grouped = subgroupHeads && group > 1;
    const split = grouped
      ? await this.pipeline('attention_group', defines, params, {})
      : await this.pipeline(kernel, [...defines, 'SPLIT'], params, {});
    const splitGroups = grouped ? shape.nKvHeads * Math.ceil(group / 4) : shape.nHeads;
    const splitBind = this.bindGroup(split, [this.step, values, q, kCache, vCache, undefined, partials]);
    const reduceWg = subgroupHeads ? this.gpu.subgroupSize! : 64;
    const reduce = await this.pipeline('attention_reduce', [], params, { WG: reduceWg });
    const reduceBind = this.bindGroup(reduce, [undefined, values, undefined, undefined, undefined, out, partials]);
    return {
      name: whole.name,
      encode(pass, n, pos0) {
        // The positions the one query of a decode step sees: 0..pos0, or the window's last ones.
        const seen = pos0 === undefined ? 0 : window > 0 ? Math.min(window, pos0 + 1) : pos0 + 1;
        const chunks = Math.min(attentionChunks(seen, chunk), maxChunks);
        if (n !== 1 || pos0 === undefined || chunks < minChunks) {
          whole.encode(pass, n);
          return;
        }
        pass.setPipeline(split);
        pass.setBindGroup(0, splitBind);
        pass.dispatchWorkgroups(splitGroups, chunks);
        pass.setPipeline(reduce);
        pass.setBindGroup(0, reduceBind);
        pass.dispatchWorkgroups(shape.nHeads);
      },
    };
  }

  /** A partials buffer of `bytes` for split attention, shared by every attention op of that size. */
  private partialsBuffer(bytes: number): GPUBuffer {
    let buffer = this.partials.get(bytes);
    if (!buffer) {
      buffer = this.gpu.memory.createBuffer('activations', { label: 'attention partials', size: bytes, usage: GPUBufferUsage.STORAGE });
      this.partials.set(bytes, buffer);
    }
    return buffer;
  }

  /** gate = silu(gate) * up, over [n_tokens, width]. */
  async swiglu(gate: GPUBuffer, up: GPUBuffer, width: number): Promise<Op> {
    return this.elementwise('swiglu', gate, up, width);
  }

  /** gate = gelu(gate) * up, over [n_tokens, width] (Gemma's MLP); GELU as llama.cpp's CPU backend (shaders/gelu.wgsl). */
  async geglu(gate: GPUBuffer, up: GPUBuffer, width: number): Promise<Op> {
    return this.elementwise('geglu', gate, up, width);
  }

  /** x = gelu(x) in place over [n_tokens, width], the tanh form through f16 as llama.cpp's CPU backend (shaders/gelu.wgsl). */
  async gelu(x: GPUBuffer, width: number): Promise<Op> {
    return this.unary('GELU', x, width, 0);
  }

  /** x = factor * x in place over [n_tokens, width] (Gemma's embeddings times sqrt(n_embd)). */
  async scale(x: GPUBuffer, width: number, factor: number): Promise<Op> {
    return this.unary('SCALE', x, width, factor);
  }

  /** x = cap * tanh(x / cap) in place over [n_tokens, width] (Gemma 2's final-logit soft-capping, over [1, vocab]). */
  async softcap(x: GPUBuffer, width: number, cap: number): Promise<Op> {
    if (!(cap > 0 && Number.isFinite(cap))) throw new LanternError('BAD_ARGUMENT', `softcap takes a cap > 0, not ${cap}; leave the op out where the model has no soft-capping.`);
    return this.unary('SOFTCAP', x, width, cap);
  }

  /** x += y, over [n_tokens, width]. */
  async add(x: GPUBuffer, y: GPUBuffer, width: number): Promise<Op> {
    return this.elementwise('add', x, y, width);
  }

  /** x = (x + y) + z, over [n_tokens, width]: a parallel residual's two adds (x + ffn, then + attn, in llama.cpp's order). */
  async add2(x: GPUBuffer, y: GPUBuffer, z: GPUBuffer, width: number): Promise<Op> {
    return this.elementwise('add', x, y, width, z);
  }

  /**
   * result[0] = index of the largest finite of logits[0..n), result[1] = how many are NaN or ±Inf
   * (a numeric fault when not 0; result[0] is then 0xffffffff if none is finite). [2] u32.
   * With `mask` ([ceil(n / 32)] u32, bit i & 31 of word i >> 5) only allowed ids are picked:
   * result[0] is 0xffffffff when the mask allows no finite logit.
   */
  async argmax(logits: GPUBuffer, n: number, result: GPUBuffer, mask?: GPUBuffer): Promise<Op> {
    const params = new UniformLayout('Params', { n: 'u32' });
    const pipeline = await this.pipeline('argmax', mask ? ['MASK'] : [], params, { WG: 256 });
    const bind = this.bindGroup(pipeline, [this.uniform(params, { n }), logits, result, mask]);
    return this.op(pipeline, bind, () => [1]);
  }

  /** a = f(a, b) (or with c, add.wgsl's ADD2) over [n_tokens, width]. */
  private async elementwise(kernel: string, a: GPUBuffer, b: GPUBuffer, width: number, c?: GPUBuffer): Promise<Op> {
    const params = new UniformLayout('Params', { n: 'u32' });
    const wg = 256;
    const pipeline = await this.pipeline(kernel, c ? ['ADD2'] : [], params, { WG: wg });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n: width }), a, b, c]);
    return this.op(pipeline, bind, (n) => [Math.ceil((n * width) / wg)]);
  }

  /** unary.wgsl's variant `fn` in place over x [n_tokens, width]; rows bounded by the grid (an op encoded for 1 touches row 0). */
  private async unary(fn: 'GELU' | 'SCALE' | 'SOFTCAP', x: GPUBuffer, width: number, factor: number): Promise<Op> {
    const params = new UniformLayout('Params', { n: 'u32', factor: 'f32' });
    const wg = 256;
    const pipeline = await this.pipeline('unary', [fn], params, { WG: wg });
    const bind = this.bindGroup(pipeline, [this.step, this.uniform(params, { n: width, factor }), x]);
    return this.op(pipeline, bind, (n) => [Math.ceil(width / wg), n]);
  }

  /** Frees the buffers the kernels made for themselves: uniforms, constant tables, int8 activations. */
  destroy(): void {
    for (const buffer of this.uniforms.values()) buffer.destroy();
    for (const { xq, xs } of this.quantized.values()) {
      xq.destroy();
      xs.destroy();
    }
    for (const buffer of this.partials.values()) buffer.destroy();
    this.uniforms.clear();
    this.quantized.clear();
    this.partials.clear();
  }

  /** Building blocks below are shared with kernel modules outside this file (e.g. sampling). */
  op(pipeline: GPUComputePipeline, bind: GPUBindGroup, grid: (nTokens: number) => number[]): Op {
    return {
      name: pipeline.label,
      encode(pass, nTokens) {
        const [x, y = 1, z = 1] = grid(nTokens);
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(x, y, z);
      },
    };
  }

  pipeline<F extends Record<string, UniformField>>(
    kernel: string,
    defines: string[],
    params: UniformLayout<F>,
    overrides: Record<string, number>,
  ): Promise<GPUComputePipeline> {
    const sizes = Object.entries(overrides).map(([k, v]) => `${k.toLowerCase()}${v}`);
    const name = [kernel, ...defines.map((d) => d.toLowerCase()), ...sizes].join(':');
    return this.gpu.pipelines.get(name, () => {
      const body = preprocess(shaderSource(kernel), new Set(defines), shaderSource);
      // `enable` directives must open the module, before the structs prepended here.
      const enables = body.split('\n').filter((line) => /^\s*enable\s/.test(line));
      const rest = body.split('\n').filter((line) => !/^\s*enable\s/.test(line)).join('\n');
      return { code: [...enables, STEP.wgsl, params.wgsl, rest].join('\n'), constants: overrides };
    });
  }

  /** Buffer i at binding i; an undefined entry leaves its binding out (a variant that declares none there). */
  bindGroup(pipeline: GPUComputePipeline, buffers: readonly (GPUBuffer | undefined)[]): GPUBindGroup {
    return this.gpu.device.createBindGroup({
      label: pipeline.label,
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.flatMap((buffer, binding) => (buffer ? [{ binding, resource: { buffer } }] : [])),
    });
  }

  /** Read-only tables (RoPE cos/sin), built once per distinct key. */
  constants(key: string, build: () => Float32Array<ArrayBuffer>): GPUBuffer {
    let buffer = this.uniforms.get(key);
    if (!buffer) {
      const values = build();
      buffer = this.gpu.memory.createBuffer('activations', { label: key, size: Math.max(16, values.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      this.gpu.device.queue.writeBuffer(buffer, 0, values);
      this.uniforms.set(key, buffer);
    }
    return buffer;
  }

  /** Uniform buffers of static parameters, shared between sites with equal values. */
  uniform<F extends Record<string, UniformField>>(layout: UniformLayout<F>, values: { [K in keyof F]: number }): GPUBuffer {
    const bytes = new Uint8Array(layout.pack(values));
    const key = `${layout.wgsl}|${bytes.join(',')}`;
    let buffer = this.uniforms.get(key);
    if (!buffer) {
      buffer = this.gpu.memory.createBuffer('activations', { label: `uniform ${layout.structName}`, size: bytes.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      this.gpu.device.queue.writeBuffer(buffer, 0, bytes);
      this.uniforms.set(key, buffer);
    }
    return buffer;
  }
}

/** Chunks of about `chunk` positions that `positions` split into (at most 65535, a dispatch's limit). */
export function attentionChunks(positions: number, chunk: number): number {
  return Math.min(MAX_DISPATCH, Math.ceil(positions / chunk));
}

/** Bytes of split attention's partials (attention_partials.wgsl) for nHeads heads of headDim in up to `chunks` chunks. */
export function attentionPartialsBytes(nHeads: number, headDim: number, chunks: number): number {
  return 4 * (1 + nHeads * chunks * (headDim + 2));
}

/** A weight's shape for op names (profiles): rows x cols, a stacked weight's parts joined by +. */
function shapeName(weight: Weight): string {
  return `${weight.parts ? weight.parts.join('+') : weight.rows}x${weight.cols}`;
}

/** A linear's outputs as linear_store.wgsl takes them: its variant, y, and what bindings 8 and 9 hold. */
interface LinearOutputs {
  defines: string[];
  y: GPUBuffer;
  extra: (GPUBuffer | undefined)[];
}

/** A norm's weight or bias: one F32 or F16 vector (rmsnorm.wgsl and layernorm.wgsl read no blocks). */
function checkNormVector(vector: Weight, what: string): void {
  if (vector.rows !== 1 || (vector.format !== 'f32' && vector.format !== 'f16')) {
    throw new LanternError(
      'BAD_MODEL_FILE',
      `The ${what} is a ${vector.rows}-row ${vector.format.toUpperCase()} tensor, where a norm needs one F32 or F16 vector; the file is damaged or was converted by a broken tool, convert it again with llama.cpp.`,
      { format: vector.format, rows: vector.rows },
    );
  }
}

/** How kv_shift.wgsl splits a row: words (a verbatim copy) or units of heads (a rotation; two heads where Q8_0 blocks of one end mid-word). */
function kvShiftUnits(shape: { width: number; headDim: number; kvCache: KvCacheType; rope?: object }): { units: number; headsPerUnit: number; rowWords: number } {
  const rowWords = kvRowBytes(shape.kvCache, shape.width) / 4;
  const headsPerUnit = shape.kvCache === 'q8_0' && (shape.headDim / 32) % 2 === 1 ? 2 : 1;
  const heads = shape.width / shape.headDim;
  return { units: shape.rope ? Math.ceil(heads / headsPerUnit) : rowWords, headsPerUnit, rowWords };
}

/** KV_SHIFT's values: `rows` rows from src to dst (dst < src, rows <= src − dst: no row is both read and written). */
export function kvShiftParams(
  shape: { width: number; headDim: number; kvCache: KvCacheType; ropeDim?: number }, src: number, dst: number, rows: number,
): ArrayBuffer {
  if (!(Number.isInteger(src) && Number.isInteger(dst) && Number.isInteger(rows) && dst >= 0 && dst < src && rows >= 0 && rows <= src - dst)) {
    throw new Error(`kvShift moves rows down without overlap: src ${src}, dst ${dst}, rows ${rows}`);
  }
  const { headsPerUnit, rowWords } = kvShiftUnits(shape);
  return KV_SHIFT.pack({ src, dst, rows, width: shape.width, head_dim: shape.headDim, rope_dim: shape.ropeDim ?? 0, row_words: rowWords, heads_per_unit: headsPerUnit });
}

/** kv_cache.wgsl's variant of a cache form. */
function kvDefines(kvCache: KvCacheType): string[] {
  return kvCache === 'f16' ? ['KV_F16'] : kvCache === 'q8_0' ? ['KV_Q8_0'] : [];
}

/** A KV cache form the kernels read, for heads (attention) or rows (copyToCache: whole pairs or blocks) of `n` values (kvCacheFits). */
function checkKvCache(kvCache: KvCacheType, n: number): void {
  if (kvCache !== 'f32' && kvCache !== 'f16' && kvCache !== 'q8_0') {
    throw new LanternError('BAD_ARGUMENT', `kvCache must be 'f32', 'f16' or 'q8_0', not ${String(kvCache)}.`);
  }
  if (!kvCacheFits(kvCache, n)) {
    throw new LanternError('BAD_ARGUMENT', `A ${kvCache} KV cache needs ${kvCache === 'f16' ? 'an even number of' : 'a multiple of 32'} values per head, not ${n}; use kvCache 'f16' or 'f32'.`, { kvCache, values: n });
  }
}

/** A KV cache's row count as the kernels take it: a whole number of rows, at least 1. */
function checkCacheRows(rows: number, what: string): number {
  if (!Number.isInteger(rows) || rows < 1) {
    throw new LanternError('BAD_ARGUMENT', `${what} needs the KV cache's row count (a whole number >= 1), not ${rows}; pass the context length, or the ring's size for a sliding-window layer.`);
  }
  return rows;
}

/** The weights.wgsl variant of a weight, after checking that its rows are whole blocks. */
function weightDefine(weight: Weight): string {
  const block = BLOCK_ELEMENTS[weight.format];
  if (weight.cols % block !== 0) {
    throw new LanternError(
      'BAD_MODEL_FILE',
      `A ${weight.format.toUpperCase()} weight has rows of ${weight.cols} elements, which is not a whole number of ${block}-element blocks; the file is damaged or was quantized by a broken tool, re-quantize it with llama.cpp.`,
      { format: weight.format, cols: weight.cols, block },
    );
  }
  return `W_${weight.format.toUpperCase()}`;
}
