import { LanternError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { type KernelOptions, Kernels, type Op, STEP } from '../kernels/ops.ts';
import { topK, TOPK_MAX, TOPK_NON_FINITE, TOPK_RESULT_WORDS, type TopKOp } from '../kernels/topk.ts';
import type { LlamaConfig } from '../model/config.ts';
import { countNonFinite, numericError } from './numeric.ts';
import type { WeightLoader } from './weights.ts';

/**
 * The llama-family forward pass on the GPU. Every buffer, the KV cache included, is allocated
 * once at load; each step writes the token ids and one small uniform, encodes every dispatch
 * into one compute pass, and submits one command buffer.
 */
export class LlamaForward {
  private constructor(
    private readonly gpu: GpuContext,
    readonly config: LlamaConfig,
    readonly contextLength: number,
    /** Most tokens one step can take; longer prompts are prefilled in chunks. */
    readonly maxBatch: number,
    private readonly buffers: ForwardBuffers,
    private readonly layerOps: Op[],
    private readonly headOps: Op[],
    private readonly topKOp: TopKOp,
    private readonly kernels: Kernels,
  ) {}

  /** Whether quantized linears take int8 activations on this device (Kernels.int8Activations). */
  get int8Activations(): boolean {
    return this.kernels.int8Activations;
  }

  static async create(
    gpu: GpuContext, config: LlamaConfig, weights: WeightLoader, contextLength: number, maxBatch: number, options: Pick<KernelOptions, 'int8Activations'> = {},
  ): Promise<LlamaForward> {
    const { device } = gpu;
    const c = config;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const f32 = (label: string, elements: number, extra = 0): GPUBuffer =>
      device.createBuffer({ label, size: Math.max(16, elements * 4), usage: GPUBufferUsage.STORAGE | extra });

    const b: ForwardBuffers = {
      step: device.createBuffer({ label: 'step', size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
      tokens: device.createBuffer({ label: 'tokens', size: maxBatch * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }),
      x: f32('x', maxBatch * c.nEmbd),                  // [batch, n_embd] residual stream
      xn: f32('xn', maxBatch * c.nEmbd),                // [batch, n_embd] normed
      q: f32('q', maxBatch * qDim),                     // [batch, n_heads * head_dim]
      k: f32('k', maxBatch * kvDim),                    // [batch, n_kv_heads * head_dim]
      attn: f32('attn', maxBatch * qDim),               // [batch, n_heads * head_dim]
      proj: f32('proj', maxBatch * c.nEmbd),            // [batch, n_embd] block output before the residual add
      gate: f32('gate', maxBatch * c.nFF),              // [batch, n_ff]
      up: f32('up', maxBatch * c.nFF),                  // [batch, n_ff]
      last: f32('last', c.nEmbd),                       // [1, n_embd] final-normed last token
      logits: f32('logits', c.vocabSize, GPUBufferUsage.COPY_SRC),  // [vocab]
      argmax: f32('argmax', 2, GPUBufferUsage.COPY_SRC),            // [2] u32: id, non-finite count
      topK: f32('top-k', TOPK_RESULT_WORDS, GPUBufferUsage.COPY_SRC), // [TOPK_MAX] u32 ids, [TOPK_MAX] f32 logits, non-finite count
      kCache: [],
      vCache: [],
      readLogits: device.createBuffer({ label: 'read logits', size: c.vocabSize * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      readArgmax: device.createBuffer({ label: 'read argmax', size: 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      readTopK: device.createBuffer({ label: 'read top-k', size: TOPK_RESULT_WORDS * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };
    for (let l = 0; l < c.nLayers; l++) {
      b.kCache.push(f32(`k cache ${l}`, contextLength * kvDim)); // [n_ctx, n_kv_heads * head_dim]
      b.vCache.push(f32(`v cache ${l}`, contextLength * kvDim));
    }

    const k = new Kernels(gpu, b.step, options);
    // Llama 3 files carry per-frequency scaling factors for RoPE as a tensor.
    const freqFactors = weights.has('rope_freqs.weight') ? await weights.hostVector('rope_freqs.weight') : undefined;
    if (freqFactors && freqFactors.length !== c.ropeDim / 2) {
      throw new LanternError('BAD_MODEL_FILE', `rope_freqs.weight has ${freqFactors.length} factors but RoPE rotates ${c.ropeDim / 2} pairs; the file is damaged.`);
    }
    const rope = { headDim: c.headDim, ropeDim: c.ropeDim, thetaBase: c.ropeTheta, neox: c.ropeNeox, maxPositions: contextLength, freqFactors };
    const layerOps: Op[] = [];
    // Where linears read int8 activations, Q5_0 and Q6_K are regrouped at load (src/model/regroup.ts).
    const layout = { regroup: k.int8Activations };
    const tokenEmbd = await weights.matrix('token_embd.weight', layout);
    layerOps.push(await k.embedding(tokenEmbd, b.tokens, b.x));
    for (let l = 0; l < c.nLayers; l++) {
      const name = (tensor: string) => `blk.${l}.${tensor}.weight`;
      const w = (tensor: string) => weights.matrix(name(tensor), layout);
      /**
       * The linears that read xn, each with its output (with outAtPos the last lands at pos0, as V
       * does; with qkvBias, each has a bias): stacked into one weight and one dispatch where their
       * tensors are stored alike (stack()), q and k alone where v differs (Q4_K_M gives some layers'
       * V more bits), else one by one.
       */
      const linears = async (parts: { tensor: string; y: GPUBuffer }[], outAtPos: boolean, qkvBias: boolean): Promise<Op[]> => {
        const biases = async (ps: typeof parts) => (qkvBias ? weights.vectorF32(...ps.map((p) => `blk.${l}.${p.tensor}.bias`)) : undefined);
        const stacked = await weights.stack(parts.map((p) => name(p.tensor)), layout);
        if (stacked) return [await k.linear(b.xn, stacked, parts.map((p) => p.y), { outAtPos, bias: await biases(parts) })];
        if (parts.length === 3) return [...(await linears(parts.slice(0, 2), false, qkvBias)), ...(await linears(parts.slice(2), outAtPos, qkvBias))];
        const ops: Op[] = [];
        for (const [i, p] of parts.entries()) {
          ops.push(await k.linear(b.xn, await w(p.tensor), p.y, { outAtPos: outAtPos && i === parts.length - 1, bias: await biases([p]) }));
        }
        return ops;
      };
      layerOps.push(
        await k.rmsnorm(b.x, await w('attn_norm'), b.xn, c.rmsEps),
        ...(await linears([{ tensor: 'attn_q', y: b.q }, { tensor: 'attn_k', y: b.k }, { tensor: 'attn_v', y: b.vCache[l] }], true, c.qkvBias)),
        await k.rope(b.q, { nHeads: c.nHeads, ...rope }),
        await k.rope(b.k, { nHeads: c.nKvHeads, ...rope }, b.kCache[l]),
        await k.attention(b.q, b.kCache[l], b.vCache[l], b.attn, { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim }),
        await k.linear(b.attn, await w('attn_output'), b.proj),
        await k.add(b.x, b.proj, c.nEmbd),
        await k.rmsnorm(b.x, await w('ffn_norm'), b.xn, c.rmsEps),
        ...(await linears([{ tensor: 'ffn_gate', y: b.gate }, { tensor: 'ffn_up', y: b.up }], false, false)),
        await k.swiglu(b.gate, b.up, c.nFF),
        await k.linear(b.gate, await w('ffn_down'), b.proj),
        await k.add(b.x, b.proj, c.nEmbd),
      );
    }
    // Tied embeddings: models without output.weight reuse the token embedding table.
    const output = weights.has('output.weight') ? await weights.matrix('output.weight', layout) : tokenEmbd;
    const headOps = [
      await k.rmsnorm(b.x, await weights.matrix('output_norm.weight'), b.last, c.rmsEps, true),
      await k.linear(b.last, output, b.logits),
      await k.argmax(b.logits, c.vocabSize, b.argmax),
    ];
    const topKOp = await topK(k, b.logits, c.vocabSize, b.topK);
    return new LlamaForward(gpu, config, contextLength, maxBatch, b, layerOps, headOps, topKOp, k);
  }

  /**
   * Runs `tokens` (at most maxBatch) at positions pos0.. through the model. With `read` the
   * last token's next-token result comes back: the argmax id, the full logits, or the `k`
   * largest logits and their ids, best first (k <= TOPK_MAX). NaN or ±Inf in the logits (counted
   * on the GPU for argmax and top-k, here for full logits) is NUMERIC_ERROR, never an id.
   */
  async step(tokens: readonly number[], pos0: number, read: 'argmax'): Promise<number>;
  async step(tokens: readonly number[], pos0: number, read: 'logits'): Promise<Float32Array>;
  async step(tokens: readonly number[], pos0: number, read: 'topk', k: number): Promise<{ ids: number[]; logits: number[] }>;
  async step(tokens: readonly number[], pos0: number, read: 'none'): Promise<void>;
  async step(tokens: readonly number[], pos0: number, read: 'argmax' | 'logits' | 'topk' | 'none', k = 0): Promise<number | Float32Array | { ids: number[]; logits: number[] } | void> {
    const n = tokens.length;
    if (n === 0 || n > this.maxBatch) throw new Error(`step takes 1..${this.maxBatch} tokens, got ${n}`);
    if (pos0 + n > this.contextLength) throw new Error(`step would write past the KV cache (${pos0} + ${n} > ${this.contextLength})`);
    const { device } = this.gpu;
    const b = this.buffers;
    device.queue.writeBuffer(b.tokens, 0, new Uint32Array(tokens));
    device.queue.writeBuffer(b.step, 0, STEP.pack({ n_tokens: n, pos0 }));

    const encoder = device.createCommandEncoder({ label: 'forward' });
    const pass = encoder.beginComputePass({ label: 'forward' });
    for (const op of this.layerOps) op.encode(pass, n);
    if (read !== 'none') for (const op of this.headOps) op.encode(pass, 1);
    if (read === 'topk') {
      this.topKOp.setK(k);
      this.topKOp.encode(pass, 1);
    }
    pass.end();
    if (read === 'argmax') encoder.copyBufferToBuffer(b.argmax, 0, b.readArgmax, 0, 8);
    if (read === 'logits') encoder.copyBufferToBuffer(b.logits, 0, b.readLogits, 0, this.config.vocabSize * 4);
    if (read === 'topk') encoder.copyBufferToBuffer(b.topK, 0, b.readTopK, 0, TOPK_RESULT_WORDS * 4);
    this.gpu.submit([encoder.finish()]);

    if (read === 'none') return;
    const staging = read === 'argmax' ? b.readArgmax : read === 'topk' ? b.readTopK : b.readLogits;
    await staging.mapAsync(GPUMapMode.READ);
    const error = this.gpu.takeError();
    try {
      if (error) throw error;
      const data = staging.getMappedRange();
      const vocab = this.config.vocabSize;
      if (read === 'topk') {
        const ids = Array.from(new Uint32Array(data, 0, k));
        const nonFinite = new Uint32Array(data)[TOPK_NON_FINITE];
        if (nonFinite > 0) throw numericError(nonFinite, vocab);
        if (ids.some((id) => id >= vocab)) throw new LanternError('GPU_ERROR', `top-k returned an id outside the vocabulary of ${vocab}. This is a bug in Lantern; please report it with the model you used.`);
        return { ids, logits: Array.from(new Float32Array(data, TOPK_MAX * 4, k)) };
      }
      if (read === 'argmax') {
        const [id, nonFinite] = new Uint32Array(data, 0, 2);
        if (nonFinite > 0) throw numericError(nonFinite, vocab);
        if (id >= vocab) throw new LanternError('GPU_ERROR', `argmax returned id ${id}, outside the vocabulary of ${vocab}. This is a bug in Lantern; please report it with the model you used.`);
        return id;
      }
      const logits = new Float32Array(data.slice(0));
      const nonFinite = countNonFinite(logits);
      if (nonFinite > 0) throw numericError(nonFinite, vocab);
      return logits;
    } finally {
      staging.unmap();
    }
  }

  /**
   * GPU time of every dispatch of one decode step of `token` at position `pos`, the head included:
   * each op in its own compute pass between two timestamps, so the figures carry each dispatch's
   * own overhead too. [op name, ms] in encoding order. Needs timestamp-query (else undefined). It
   * writes KV-cache row `pos`, which the caller must treat as not holding any token.
   */
  async profileStep(token: number, pos: number): Promise<{ name: string; ms: number }[] | undefined> {
    const { device } = this.gpu;
    if (!device.features.has('timestamp-query')) return undefined;
    if (pos >= this.contextLength) throw new Error(`profileStep would write past the KV cache (${pos} >= ${this.contextLength})`);
    const ops = [...this.layerOps, ...this.headOps];
    const count = 2 * ops.length;
    // A query set holds at most 4096 queries: one set per 2048 ops (deep models need several).
    const perSet = 4096;
    const querySets = Array.from({ length: Math.ceil(count / perSet) }, (_, s) =>
      device.createQuerySet({ label: 'profile', type: 'timestamp', count: Math.min(perSet, count - s * perSet) }));
    const resolved = device.createBuffer({ label: 'profile', size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = device.createBuffer({ label: 'profile read', size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      device.queue.writeBuffer(this.buffers.tokens, 0, new Uint32Array([token]));
      device.queue.writeBuffer(this.buffers.step, 0, STEP.pack({ n_tokens: 1, pos0: pos }));
      const encoder = device.createCommandEncoder({ label: 'profile' });
      ops.forEach((op, i) => {
        const querySet = querySets[Math.floor((2 * i) / perSet)];
        const at = (2 * i) % perSet;
        const pass = encoder.beginComputePass({ label: op.name, timestampWrites: { querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 } });
        op.encode(pass, 1);
        pass.end();
      });
      querySets.forEach((querySet, s) => encoder.resolveQuerySet(querySet, 0, querySet.count, resolved, 8 * s * perSet));
      encoder.copyBufferToBuffer(resolved, 0, read, 0, 8 * count);
      this.gpu.submit([encoder.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const error = this.gpu.takeError();
      if (error) throw error;
      const stamps = new BigInt64Array(read.getMappedRange().slice(0)); // ns
      read.unmap();
      return ops.map((op, i) => ({ name: op.name, ms: Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6 }));
    } finally {
      for (const querySet of querySets) querySet.destroy();
      resolved.destroy();
      read.destroy();
    }
  }

  /** Waits for all submitted work (used before timing and after prefill chunks). */
  async finish(): Promise<void> {
    await this.gpu.device.queue.onSubmittedWorkDone();
    const error = this.gpu.takeError();
    if (error) throw error;
  }

  destroy(): void {
    const b = this.buffers;
    for (const buffer of [b.step, b.tokens, b.x, b.xn, b.q, b.k, b.attn, b.proj, b.gate, b.up, b.last, b.logits, b.argmax, b.topK, b.readLogits, b.readArgmax, b.readTopK, ...b.kCache, ...b.vCache]) {
      buffer.destroy();
    }
    this.kernels.destroy();
  }
}

interface ForwardBuffers {
  step: GPUBuffer;
  tokens: GPUBuffer;
  x: GPUBuffer;
  xn: GPUBuffer;
  q: GPUBuffer;
  k: GPUBuffer;
  attn: GPUBuffer;
  proj: GPUBuffer;
  gate: GPUBuffer;
  up: GPUBuffer;
  last: GPUBuffer;
  logits: GPUBuffer;
  argmax: GPUBuffer;
  topK: GPUBuffer;
  kCache: GPUBuffer[];
  vCache: GPUBuffer[];
  readLogits: GPUBuffer;
  readArgmax: GPUBuffer;
  readTopK: GPUBuffer;
}
