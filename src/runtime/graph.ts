import { LanternError } from '../errors.ts';
import type { Kernels, KvCacheType, Op, RopeShift, Weight } from '../kernels/ops.ts';
import type { ModelConfig } from '../model/config.ts';
import { type GGUFFile, type GGUFTensorInfo, ggmlTypeName } from '../model/gguf.ts';
import { type LoadLayout, weightFormatOf, type WeightLoader } from './weights.ts';

/**
 * The shared blocks a model family builds its graph from (src/runtime/models/*.ts), as llama.cpp's
 * families call build_norm/build_attn/build_ffn on one graph context. A family names activations
 * by role and tensors by their GGUF names; the blocks pick fused or separate projections and add
 * biases where the file has them, as llama.cpp does.
 *
 * Every graph is built twice: first as a plan, with no GPU, which checks that each tensor a block
 * reads is in the file with the shape and a type the kernels read, and adds up what the buffers
 * will need (Forward.create checks that against the adapter before it allocates anything); then
 * for real, recording the ops a step encodes.
 */

/** The activations families pass between blocks, each [n_tokens, n_embd] f32: the residual stream x, a normed copy, and two block outputs. */
export type Act = 'x' | 'xn' | 'h' | 'h2';

/** The buffers a built graph reads and writes (Forward allocates them). */
export interface GraphBuffers {
  step: GPUBuffer;
  tokens: GPUBuffer;            // [batch] u32
  acts: Record<Act, GPUBuffer>; // [batch, n_embd] each
  q: GPUBuffer;                 // [batch, n_heads * head_dim]
  k: GPUBuffer;                 // [batch, n_kv_heads * head_dim]
  v?: GPUBuffer;                // [batch, n_kv_heads * head_dim], where V goes through it into an f16 or Q8_0 cache
  attn: GPUBuffer;              // [batch, n_heads * head_dim]
  gate: GPUBuffer;              // [batch, n_ff]
  up: GPUBuffer;                // [batch, n_ff]
  last: GPUBuffer;              // [1, n_embd] the last token, final-normed
  logits: GPUBuffer;            // [vocab]
  kCache: GPUBuffer[];          // per layer [cacheRows[l], n_kv_heads * head_dim]
  vCache: GPUBuffer[];
}

/** What the graph runs on when it is built for real; absent while planning. */
export interface GraphGpu {
  kernels: Kernels;
  weights: WeightLoader;
  buffers: GraphBuffers;
  /** How the KV cache stores K and V (default f32). */
  kvCache?: KvCacheType;
}

export type NormKind = 'rms' | 'layer';
export type FfnKind = 'swiglu' | 'geglu' | 'gelu';

export interface AttentionOptions {
  /** RMSNorm of q and k before RoPE: per head (Qwen3, Gemma 3) or over the whole projection (OLMo 2). */
  qkNorm?: 'head' | 'whole';
  /** Rotate q and k (default: when the config has RoPE). */
  rope?: boolean;
  /** RoPE frequency factors tensor (default rope_freqs.weight where the file has it). */
  ropeFactors?: string;
  /** Scale of q·k (default 1/sqrt(head_dim)). */
  scale?: number;
  /** Soft-capping of the scaled scores: cap·tanh(s/cap) (Gemma 2). */
  softcap?: number;
}

export class Graph<C extends ModelConfig = ModelConfig> {
  /** The embedding and every layer: encoded for all tokens of a step. */
  readonly body: Op[] = [];
  /** The output norm, projection and logit transforms: encoded for the last token only. */
  readonly head: Op[] = [];
  /**
   * The same head for every token of a step, into `logits` [n_tokens, vocab] (scoring a text:
   * Runtime.tokenLogProbs). Built on first use (Forward.stepRows), so generation never pays for it.
   */
  rowHead: ((logits: GPUBuffer) => Promise<Op[]>) | undefined;
  /**
   * The output norm for every token of a step, x → xn [n_tokens, n_embd]: the final hidden states,
   * which embeddings pool (Forward.stepHidden), and the first op of rowHead.
   */
  rowNorm: Op | undefined;
  /** Each layer's RoPE of K, as a context shift re-rotates it (Forward.shift); undefined for a layer without RoPE. */
  readonly kvRopes: (RopeShift | undefined)[] = [];
  /** Whether positions are learned (position_embd): a context shift cannot move such keys, and prefills again instead. */
  learnedPositions = false;
  private readonly normWeights = new Map<string, Promise<Weight>>();
  /** Bytes of every weight the graph reads, by tensor (the plan). */
  readonly weightBytes = new Map<string, number>();
  private readonly tensors: Map<string, GGUFTensorInfo>;
  private readonly layout: LoadLayout;
  private tokenEmbd: Weight | undefined;

  constructor(
    readonly c: C,
    file: GGUFFile,
    /** Rows of each layer's K/V cache: the context, or a ring of the window for sliding layers. */
    readonly cacheRows: readonly number[],
    private readonly gpu?: GraphGpu,
  ) {
    this.tensors = new Map(file.tensors.map((t) => [t.name, t]));
    this.layout = { regroup: gpu?.kernels.int8Activations ?? false };
  }

  /** Whether the file has this tensor (where a family's layout varies: fused or separate, with or without bias). */
  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** x = token_embd[tokens], times `scale` where the family scales it (Gemma: sqrt(n_embd)). */
  async embed(scale?: number): Promise<void> {
    this.need('token_embd.weight', [this.c.nEmbd, this.c.vocabSize]);
    if (!this.gpu) return;
    const { kernels: k, buffers: b } = this.gpu;
    this.tokenEmbd = await this.gpu.weights.matrix('token_embd.weight', this.layout);
    this.body.push(await k.embedding(this.tokenEmbd, b.tokens, b.acts.x));
    if (scale !== undefined) this.body.push(await k.scale(b.acts.x, this.c.nEmbd, scale));
  }

  /** x += position_embd[pos] (GPT-2's learned absolute positions). */
  async positions(): Promise<void> {
    const info = this.need('position_embd.weight', [this.c.nEmbd, undefined]);
    if (info.dims[1] < this.c.contextLength) {
      this.bad(`position_embd.weight holds ${info.dims[1]} positions but the context is ${this.c.contextLength}`, 'position_embd.weight');
    }
    this.learnedPositions = true;
    if (!this.gpu) return;
    const table = await this.gpu.weights.matrix('position_embd.weight', this.layout);
    this.body.push(await this.gpu.kernels.positionEmbedding(table, this.gpu.buffers.acts.x));
  }

  /** to = norm(from) · `tensor`.weight (+ `tensor`.bias for LayerNorm, where the file has one). */
  async norm(kind: NormKind, tensor: string, from: Act, to: Act): Promise<void> {
    if (from === to) throw new Error(`norm ${tensor}: from and to must differ`);
    const op = await this.normOp(kind, tensor, this.gpu && this.act(from), this.gpu && this.act(to), false);
    if (op) this.body.push(op);
  }

  /** to += from, or to = (to + from) + also in one dispatch (a parallel residual). */
  async add(to: Act, from: Act, also?: Act): Promise<void> {
    if (!this.gpu) return;
    const k = this.gpu.kernels;
    this.body.push(also ? await k.add2(this.act(to), this.act(from), this.act(also), this.c.nEmbd) : await k.add(this.act(to), this.act(from), this.c.nEmbd));
  }

  /**
   * Self-attention of layer l from `from` into `to`: q, k and v (one fused attn_qkv or three, each
   * with its bias where the file has one), q/k norms, RoPE, K and V into the layer's cache (a ring
   * of its window where it slides), attention, and attn_output.
   */
  async attention(l: number, from: Act, to: Act, options: AttentionOptions = {}): Promise<void> {
    const c = this.c;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const t = (name: string) => `blk.${l}.${name}`;
    const fused = this.has(t('attn_qkv.weight'));
    const projections = fused
      ? [{ name: 'attn_qkv', rows: qDim + 2 * kvDim }]
      : [{ name: 'attn_q', rows: qDim }, { name: 'attn_k', rows: kvDim }, { name: 'attn_v', rows: kvDim }];
    for (const p of projections) {
      this.need(t(`${p.name}.weight`), [c.nEmbd, p.rows]);
      this.need(t(`${p.name}.bias`), [p.rows], false);
    }
    const normDims = options.qkNorm === 'head' ? [c.headDim, c.headDim] : [qDim, kvDim];
    if (options.qkNorm) {
      this.need(t('attn_q_norm.weight'), [normDims[0]]);
      this.need(t('attn_k_norm.weight'), [normDims[1]]);
    }
    const rope = options.rope ?? c.rope !== undefined;
    if (rope && !c.rope) throw new Error(`${c.architecture}: attention with RoPE, but the config has none`);
    const factorsName = options.ropeFactors ?? (this.has('rope_freqs.weight') ? 'rope_freqs.weight' : undefined);
    if (rope && factorsName) this.need(factorsName, [c.rope!.dims / 2]);
    this.need(t('attn_output.weight'), [qDim, c.nEmbd]);
    this.need(t('attn_output.bias'), [c.nEmbd], false);
    if (!this.gpu) return;

    const { kernels: k, weights, buffers: b } = this.gpu;
    const rows = this.cacheRows[l];
    const window = c.windows[l];
    // An f32 cache takes V from its projection and K from RoPE directly; f16 and Q8_0 rows are
    // packed from b.v and b.k by copyToCache (a value per invocation cannot pack pairs or blocks).
    const kvCache = this.gpu.kvCache ?? 'f32';
    const direct = kvCache === 'f32';
    const v = direct ? b.vCache[l] : b.v!;
    const vRows = direct ? rows : undefined;
    if (fused) {
      const w = { ...(await weights.matrix(t('attn_qkv.weight'), this.layout)), parts: [qDim, kvDim, kvDim] };
      const bias = this.has(t('attn_qkv.bias')) ? await weights.vectorF32(t('attn_qkv.bias')) : undefined;
      this.body.push(await k.linear(this.act(from), w, [b.q, b.k, v], { cacheRows: vRows, bias }));
    } else {
      this.body.push(...(await this.linears(this.act(from), [
        { tensor: t('attn_q'), y: b.q }, { tensor: t('attn_k'), y: b.k }, { tensor: t('attn_v'), y: v },
      ], vRows)));
    }
    if (options.qkNorm) {
      const perToken = options.qkNorm === 'head' ? [c.nHeads, c.nKvHeads] : [1, 1];
      this.body.push(
        await k.rmsnormRows(b.q, await weights.matrix(t('attn_q_norm.weight')), c.normEps, perToken[0]),
        await k.rmsnormRows(b.k, await weights.matrix(t('attn_k_norm.weight')), c.normEps, perToken[1]),
      );
    }
    if (rope) {
      const r = c.rope!;
      const shape = {
        headDim: c.headDim, ropeDim: r.dims, neox: r.neox, maxPositions: this.c.contextLength, cacheRows: rows,
        thetaBase: window > 0 && r.thetaSwa !== undefined ? r.thetaSwa : r.theta,
        freqScale: window > 0 && r.freqScaleSwa !== undefined ? r.freqScaleSwa : r.freqScale,
        attnFactor: r.attnFactor,
        freqFactors: factorsName ? await weights.hostVector(factorsName) : undefined,
      };
      this.body.push(await k.rope(b.q, { nHeads: c.nHeads, ...shape }), await k.rope(b.k, { nHeads: c.nKvHeads, ...shape }, direct ? b.kCache[l] : undefined));
      const { headDim, ropeDim, neox, thetaBase, freqScale, freqFactors } = shape;
      this.kvRopes[l] = { headDim, ropeDim, neox, thetaBase, freqScale, freqFactors };
    }
    if (!rope || !direct) this.body.push(await k.copyToCache(b.k, b.kCache[l], kvDim, rows, kvCache));
    if (!direct) this.body.push(await k.copyToCache(v, b.vCache[l], kvDim, rows, kvCache));
    this.body.push(
      await k.attention(b.q, b.kCache[l], b.vCache[l], b.attn, {
        nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, scale: options.scale, softcap: options.softcap, window, cacheRows: rows, kvCache,
      }),
      ...(await this.linears(b.attn, [{ tensor: t('attn_output'), y: this.act(to) }])),
    );
  }

  /**
   * The MLP of layer l from `from` into `to`: swiglu/geglu down(act(gate(x)) · up(x)), with gate and
   * up as two tensors or one fused ffn_up of twice the rows (Phi-3); gelu down(gelu(up(x))).
   * Biases where the file has them.
   */
  async ffn(l: number, from: Act, to: Act, kind: FfnKind): Promise<void> {
    const c = this.c;
    const t = (name: string) => `blk.${l}.${name}`;
    const gated = kind !== 'gelu';
    const fusedUp = gated && !this.has(t('ffn_gate.weight'));
    if (gated && !fusedUp) this.need(t('ffn_gate.weight'), [c.nEmbd, c.nFF]);
    this.need(t('ffn_up.weight'), [c.nEmbd, fusedUp ? 2 * c.nFF : c.nFF]);
    for (const name of gated && !fusedUp ? ['ffn_gate', 'ffn_up'] : ['ffn_up']) this.need(t(`${name}.bias`), [fusedUp ? 2 * c.nFF : c.nFF], false);
    this.need(t('ffn_down.weight'), [c.nFF, c.nEmbd]);
    this.need(t('ffn_down.bias'), [c.nEmbd], false);
    if (!this.gpu) return;

    const { kernels: k, weights, buffers: b } = this.gpu;
    const x = this.act(from);
    if (!gated) {
      this.body.push(...(await this.linears(x, [{ tensor: t('ffn_up'), y: b.up }])), await k.gelu(b.up, c.nFF));
    } else {
      if (fusedUp) {
        const w = { ...(await weights.matrix(t('ffn_up.weight'), this.layout)), parts: [c.nFF, c.nFF] };
        const bias = this.has(t('ffn_up.bias')) ? await weights.vectorF32(t('ffn_up.bias')) : undefined;
        this.body.push(await k.linear(x, w, [b.gate, b.up], { bias }));
      } else {
        this.body.push(...(await this.linears(x, [{ tensor: t('ffn_gate'), y: b.gate }, { tensor: t('ffn_up'), y: b.up }])));
      }
      this.body.push(kind === 'swiglu' ? await k.swiglu(b.gate, b.up, c.nFF) : await k.geglu(b.gate, b.up, c.nFF));
    }
    this.body.push(...(await this.linears(gated ? b.gate : b.up, [{ tensor: t('ffn_down'), y: this.act(to) }])));
  }

  /**
   * The head: the last token's x through output_norm (a `kind` norm), then output.weight (or the
   * token embedding where the output is tied to it, or where the family always ties it), then
   * soft-capping where the family has it.
   */
  async output(kind: NormKind, options: { softcap?: number; tied?: boolean } = {}): Promise<void> {
    const c = this.c;
    const { softcap } = options;
    const tied = options.tied ?? !this.has('output.weight');
    this.need(tied ? 'token_embd.weight' : 'output.weight', [c.nEmbd, c.vocabSize]);
    const b = this.gpu?.buffers;
    const norm = await this.normOp(kind, 'output_norm', b?.acts.x, b?.last, true);
    if (!this.gpu || !b || !norm) return;
    const { kernels: k, weights } = this.gpu;
    const output = tied ? (this.tokenEmbd ?? (await weights.matrix('token_embd.weight', this.layout))) : await weights.matrix('output.weight', this.layout);
    this.head.push(norm, await k.linear(b.last, output, b.logits));
    if (softcap !== undefined) this.head.push(await k.softcap(b.logits, c.vocabSize, softcap));
    // The body is done with xn by now: every row's normed x goes there. The norm is made now (its
    // weight is read with the others); the projection waits for a logits buffer.
    const rowNorm = (await this.normOp(kind, 'output_norm', b.acts.x, b.acts.xn, false))!;
    this.rowNorm = rowNorm;
    this.rowHead = async (logits) => {
      const rows = [rowNorm, await k.linear(b.acts.xn, output, logits)];
      if (softcap !== undefined) rows.push(await k.softcap(logits, c.vocabSize, softcap));
      return rows;
    };
  }

  private async normOp(kind: NormKind, tensor: string, from: GPUBuffer | undefined, to: GPUBuffer | undefined, lastRow: boolean): Promise<Op | undefined> {
    this.need(`${tensor}.weight`, [this.c.nEmbd]);
    const hasBias = kind === 'layer' && this.has(`${tensor}.bias`);
    if (hasBias) this.need(`${tensor}.bias`, [this.c.nEmbd]);
    if (!this.gpu || !from || !to) return undefined;
    const { kernels: k } = this.gpu;
    const weight = await this.normWeight(`${tensor}.weight`);
    if (kind === 'rms') return k.rmsnorm(from, weight, to, this.c.normEps, lastRow);
    return k.layernorm(from, weight, hasBias ? await this.normWeight(`${tensor}.bias`) : undefined, to, this.c.normEps, lastRow);
  }

  /** A norm's weight or bias, uploaded once however many ops read it (the output norm serves the last row and every row). */
  private normWeight(name: string): Promise<Weight> {
    let weight = this.normWeights.get(name);
    if (!weight) this.normWeights.set(name, (weight = this.gpu!.weights.matrix(name)));
    return weight;
  }

  /**
   * Linears that read the same x, each into its own output (the last into a cache of `cacheRows`
   * where given, as V goes): one stacked weight and one dispatch where their tensors are stored
   * alike and their biases agree (WeightLoader.stack), else q and k together and v alone (Q4_K_M
   * gives some layers' V more bits), else one by one.
   */
  private async linears(x: GPUBuffer, parts: { tensor: string; y: GPUBuffer }[], cacheRows?: number): Promise<Op[]> {
    const { kernels: k, weights } = this.gpu!;
    const biased = parts.map((p) => this.has(`${p.tensor}.bias`));
    const biases = async (ps: typeof parts) => (this.has(`${ps[0].tensor}.bias`) ? weights.vectorF32(...ps.map((p) => `${p.tensor}.bias`)) : undefined);
    if (parts.length > 1 && biased.every((b) => b === biased[0])) {
      const stacked = await weights.stack(parts.map((p) => `${p.tensor}.weight`), this.layout);
      if (stacked) return [await k.linear(x, stacked, parts.map((p) => p.y), { cacheRows, bias: await biases(parts) })];
      if (parts.length === 3) return [...(await this.linears(x, parts.slice(0, 2))), ...(await this.linears(x, parts.slice(2), cacheRows))];
    }
    const ops: Op[] = [];
    for (const [i, p] of parts.entries()) {
      const weight = await weights.matrix(`${p.tensor}.weight`, this.layout);
      ops.push(await k.linear(x, weight, p.y, { cacheRows: i === parts.length - 1 ? cacheRows : undefined, bias: await biases([p]) }));
    }
    return ops;
  }

  /**
   * The tensor `name`, checked against the shape a block reads it as (undefined: any size there)
   * and against the types the kernels read; recorded in the plan. Absent and not required: undefined.
   */
  private need(name: string, dims: (number | undefined)[]): GGUFTensorInfo;
  private need(name: string, dims: (number | undefined)[], required: false): GGUFTensorInfo | undefined;
  private need(name: string, dims: (number | undefined)[], required = true): GGUFTensorInfo | undefined {
    const info = this.tensors.get(name);
    if (!info) {
      if (!required) return undefined;
      this.bad(`the tensor ${name}, which every ${this.c.architecture} model has, is missing`, name);
    }
    const shapeOk = info.dims.length === dims.length && dims.every((d, i) => d === undefined || info.dims[i] === d);
    if (!shapeOk) {
      this.bad(`${name} is [${info.dims.join(', ')}] but this ${this.c.architecture} model's hyperparameters make it [${dims.map((d) => d ?? 'any').join(', ')}]`, name);
    }
    if (!weightFormatOf(info.type)) {
      throw new LanternError(
        'UNSUPPORTED_TENSOR_TYPE',
        `Tensor ${name} is ${ggmlTypeName(info.type)}, which this build of Lantern cannot run yet; choose a GGUF of another quantization (the README lists the types Lantern reads).`,
        { tensor: name, type: info.type },
      );
    }
    this.weightBytes.set(name, info.nBytes);
    return info;
  }

  private bad(what: string, tensor: string): never {
    throw new LanternError('BAD_MODEL_FILE', `The model file does not hold what its architecture needs: ${what}. The file is damaged or not a model Lantern runs.`, { tensor });
  }

  private act(name: Act): GPUBuffer {
    return this.gpu!.buffers.acts[name];
  }
}
