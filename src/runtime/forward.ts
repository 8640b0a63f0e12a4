import { LanternError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { type GpuBytes, gpuBytes, type MemoryCategory } from '../gpu/memory.ts';
import { ATTENTION_SPLIT, attentionChunks, attentionPartialsBytes, type KernelOptions, Kernels, type KvCacheType, kvRowBytes, KV_SHIFT, kvShiftParams, type Op, type RopeShift, ropeShiftTable, STEP } from '../kernels/ops.ts';
import { topK, TOPK_MAX, TOPK_NON_FINITE, TOPK_RESULT_WORDS, type TopKOp } from '../kernels/topk.ts';
import type { ModelConfig } from '../model/config.ts';
import { type GGUFFile, GGMLType } from '../model/gguf.ts';
import { Graph, type GraphBuffers } from './graph.ts';
import type { Family } from './models/family.ts';
import { noTokenAllowed } from './grammar/mask.ts';
import { countNonFinite, numericError } from './numeric.ts';
import type { WeightLoader } from './weights.ts';

/**
 * The forward pass of any family on the GPU: the family's graph (src/runtime/models/*.ts) over
 * buffers this class owns. Every buffer, the KV cache included, is allocated once at load, after
 * the graph's plan has been checked against the adapter; each step writes the token ids and one
 * small uniform, encodes every dispatch into one compute pass, and submits one command buffer.
 */
export class Forward {
  private constructor(
    private readonly gpu: GpuContext,
    readonly config: ModelConfig,
    readonly contextLength: number,
    /** Most tokens one step can take; longer prompts are prefilled in chunks. */
    readonly maxBatch: number,
    private readonly buffers: ForwardBuffers,
    private readonly layerOps: Op[],
    private readonly headOps: Op[],
    private readonly topKOp: TopKOp,
    private readonly kernels: Kernels,
    /** The KV cache's layout: bytes in all, bytes per token of context, and the tightest ring of the sliding-window layers (kvLayout). */
    readonly kv: KvLayout,
    /** Builds the head for every token of a step (Graph.rowHead); stepRows calls it once. */
    private readonly rowHead?: (logits: GPUBuffer) => Promise<Op[]>,
    /** The output norm of every token of a step, into acts.xn (Graph.rowNorm); stepHidden reads it back. */
    private readonly rowNorm?: Op,
    /** What a context shift does to each layer's K (Graph.kvRopes), and whether positions are learned. */
    private readonly shiftPlan: { kvRopes: readonly (RopeShift | undefined)[]; learnedPositions: boolean; kvCache: KvCacheType } = { kvRopes: [], learnedPositions: true, kvCache: 'f32' },
  ) {}

  /** The staging buffer stepHidden reads xn through, [maxBatch, n_embd] f32, made by the first call. */
  private readHidden: GPUBuffer | undefined;

  /** The context shift's kernels and buffers, made by the first shift(). */
  private shifter: Shifter | undefined;

  /** The all-rows head and its buffers, made by the first stepRows. */
  private rows: RowHead | undefined;
  /** argmax and top-k under the grammar mask (their MASK variants), made by the first masked step. */
  private masked: Promise<{ argmax: Op; topK: TopKOp }> | undefined;

  /** Whether quantized linears take int8 activations on this device (Kernels.int8Activations). */
  get int8Activations(): boolean {
    return this.kernels.int8Activations;
  }

  static async create(
    gpu: GpuContext, family: Family, modelConfig: ModelConfig, file: GGUFFile, weights: WeightLoader, contextLength: number, maxBatch: number,
    options: Pick<KernelOptions, 'int8Activations'> & { kvCache?: KvCacheType; maxGpuBytes?: number } = {},
  ): Promise<Forward> {
    const { device, memory } = gpu;
    const kvCache = options.kvCache ?? 'f32';
    const c: ModelConfig = { ...modelConfig, contextLength };
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const kv = kvLayout(c, maxBatch, kvCache);

    // The plan: every tensor checked, every buffer sized, and the whole checked against the
    // adapter and the budget, before the first buffer is created.
    const plan = await planForward(family, c, file, maxBatch, kvCache);
    const widest = Math.max(c.nEmbd, qDim, c.nFF);
    checkBufferSizes(device.limits, [
      ...plan.weightBytes,
      ['the activations', maxBatch * widest * 4],
      ['the logits', c.vocabSize * 4],
      ...kv.cacheRows.map((rows, l): [string, number] => [`layer ${l}'s KV cache`, rows * kvRowBytes(kvCache, kvDim)]),
    ]);
    // Int8 copies of activations are made only on CPU adapters (Kernels.int8Activations): counted there.
    const planned = forwardBytes(plan, c, maxBatch, kvCache, gpu.cpuAdapter && options.int8Activations !== false);
    checkBudget(planned, options.maxGpuBytes, kvCache);

    const create = (category: MemoryCategory, descriptor: GPUBufferDescriptor) => memory.createBuffer(category, descriptor);
    const f32 = (label: string, elements: number, extra = 0): GPUBuffer =>
      create('activations', { label, size: Math.max(16, elements * 4), usage: GPUBufferUsage.STORAGE | extra });
    const act = (label: string) => f32(label, maxBatch * c.nEmbd); // [batch, n_embd]
    const cache = (label: string, rows: number) => create('kvCache', { label, size: Math.max(16, rows * kvRowBytes(kvCache, kvDim)), usage: GPUBufferUsage.STORAGE });
    const b: ForwardBuffers = {
      step: create('activations', { label: 'step', size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
      tokens: create('activations', { label: 'tokens', size: maxBatch * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }),
      // residual stream, normed (read back as the final hidden states by stepHidden), two block outputs
      acts: { x: act('x'), xn: f32('xn', maxBatch * c.nEmbd, GPUBufferUsage.COPY_SRC), h: act('h'), h2: act('h2') },
      q: f32('q', maxBatch * qDim),                     // [batch, n_heads * head_dim]
      k: f32('k', maxBatch * kvDim),                    // [batch, n_kv_heads * head_dim]
      // [batch, n_kv_heads * head_dim]: V on its way into an f16 or Q8_0 cache (an f32 one takes it straight)
      ...(kvCache === 'f32' ? {} : { v: f32('v', maxBatch * kvDim) }),
      attn: f32('attn', maxBatch * qDim),               // [batch, n_heads * head_dim]
      gate: f32('gate', maxBatch * c.nFF),              // [batch, n_ff]
      up: f32('up', maxBatch * c.nFF),                  // [batch, n_ff]
      last: f32('last', c.nEmbd),                       // [1, n_embd] final-normed last token
      logits: f32('logits', c.vocabSize, GPUBufferUsage.COPY_SRC),  // [vocab]
      argmax: f32('argmax', 2, GPUBufferUsage.COPY_SRC),            // [2] u32: id, non-finite count
      topK: f32('top-k', TOPK_RESULT_WORDS, GPUBufferUsage.COPY_SRC), // [TOPK_MAX] u32 ids, [TOPK_MAX] f32 logits, non-finite count
      mask: f32('grammar mask', maskWords(c.vocabSize), GPUBufferUsage.COPY_DST), // [ceil(vocab / 32)] u32: bit id & 31 of word id >> 5
      // [cacheRows[l], n_kv_heads * head_dim] per layer in form kvCache: the whole context, or a ring of a sliding window
      kCache: kv.cacheRows.map((rows, l) => cache(`k cache ${l}`, rows)),
      vCache: kv.cacheRows.map((rows, l) => cache(`v cache ${l}`, rows)),
      readLogits: create('staging', { label: 'read logits', size: c.vocabSize * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      readArgmax: create('staging', { label: 'read argmax', size: 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      readTopK: create('staging', { label: 'read top-k', size: TOPK_RESULT_WORDS * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
    };

    const k = new Kernels(gpu, b.step, options);
    const graph = new Graph(c, file, kv.cacheRows, { kernels: k, weights, buffers: b, kvCache });
    await family.build(graph);
    const headOps = [...graph.head, await k.argmax(b.logits, c.vocabSize, b.argmax)];
    const topKOp = await topK(k, b.logits, c.vocabSize, b.topK);
    return new Forward(gpu, c, contextLength, maxBatch, b, graph.body, headOps, topKOp, k, kv, graph.rowHead, graph.rowNorm, { kvRopes: graph.kvRopes, learnedPositions: graph.learnedPositions, kvCache });
  }

  /**
   * Runs `tokens` (at most maxBatch) at positions pos0.. through the model. With `read` the
   * last token's next-token result comes back: the argmax id, the full logits, or the `k`
   * largest logits and their ids, best first (k <= TOPK_MAX). NaN or ±Inf in the logits (counted
   * on the GPU for argmax and top-k, here for full logits) is NUMERIC_ERROR, never an id.
   * With `mask` (a grammar's allowed tokens, [ceil(vocab / 32)] u32, bit id & 31 of word id >> 5),
   * uploaded and applied on the GPU, argmax and top-k pick only allowed ids (top-k may then return
   * fewer than k); a mask that allows nothing is BAD_GRAMMAR.
   */
  async step(tokens: readonly number[], pos0: number, read: 'argmax', mask?: Uint32Array<ArrayBuffer>): Promise<number>;
  async step(tokens: readonly number[], pos0: number, read: 'logits'): Promise<Float32Array>;
  async step(tokens: readonly number[], pos0: number, read: 'topk', k: number, mask?: Uint32Array<ArrayBuffer>): Promise<{ ids: number[]; logits: number[] }>;
  async step(tokens: readonly number[], pos0: number, read: 'none'): Promise<void>;
  async step(tokens: readonly number[], pos0: number, read: 'argmax' | 'logits' | 'topk' | 'none', kOrMask?: number | Uint32Array<ArrayBuffer>, topKMask?: Uint32Array<ArrayBuffer>): Promise<number | Float32Array | { ids: number[]; logits: number[] } | void> {
    const k = typeof kOrMask === 'number' ? kOrMask : 0;
    const mask = typeof kOrMask === 'number' ? topKMask : kOrMask;
    const n = tokens.length;
    if (n === 0 || n > this.maxBatch) throw new Error(`step takes 1..${this.maxBatch} tokens, got ${n}`);
    if (pos0 + n > this.contextLength) throw new Error(`step would write past the KV cache (${pos0} + ${n} > ${this.contextLength})`);
    const { device } = this.gpu;
    const b = this.buffers;
    const masked = mask ? await (this.masked ??= this.createMaskedOps()) : undefined;
    if (mask) {
      if (mask.length !== maskWords(this.config.vocabSize)) throw new Error(`a mask of ${this.config.vocabSize} tokens has ${maskWords(this.config.vocabSize)} words, not ${mask.length}`);
      device.queue.writeBuffer(b.mask, 0, mask);
    }
    device.queue.writeBuffer(b.tokens, 0, new Uint32Array(tokens));
    device.queue.writeBuffer(b.step, 0, STEP.pack({ n_tokens: n, pos0 }));

    const encoder = device.createCommandEncoder({ label: 'forward' });
    const pass = encoder.beginComputePass({ label: 'forward' });
    for (const op of this.layerOps) op.encode(pass, n, pos0);
    // The head's last op is the unmasked argmax: a masked step runs the head without it, then its own.
    const head = masked ? this.headOps.slice(0, -1) : this.headOps;
    if (read !== 'none') for (const op of head) op.encode(pass, 1);
    if (read === 'argmax' && masked) masked.argmax.encode(pass, 1);
    if (read === 'topk') {
      const topKOp = masked?.topK ?? this.topKOp;
      topKOp.setK(k);
      topKOp.encode(pass, 1);
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
        let ids = Array.from(new Uint32Array(data, 0, k));
        const nonFinite = new Uint32Array(data)[TOPK_NON_FINITE];
        if (nonFinite > 0) throw numericError(nonFinite, vocab);
        if (mask) {
          // Fewer allowed tokens than k: the picks after the last are NONE.
          const none = ids.indexOf(NONE);
          if (none === 0) throw noTokenAllowed();
          if (none > 0) ids = ids.slice(0, none);
        }
        if (ids.some((id) => id >= vocab)) throw new LanternError('GPU_ERROR', `top-k returned an id outside the vocabulary of ${vocab}. This is a bug in Lantern; please report it with the model you used.`);
        return { ids, logits: Array.from(new Float32Array(data, TOPK_MAX * 4, ids.length)) };
      }
      if (read === 'argmax') {
        const [id, nonFinite] = new Uint32Array(data, 0, 2);
        if (nonFinite > 0) throw numericError(nonFinite, vocab);
        if (mask && id === NONE) throw noTokenAllowed();
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
   * Runs `tokens` (at most maxBatch) at positions pos0.. like step(), and reads back every token's
   * next-token logits, [n_tokens, vocab] f32: what scoring a text needs (Runtime.tokenLogProbs).
   * NaN or ±Inf among them is NUMERIC_ERROR.
   */
  async stepRows(tokens: readonly number[], pos0: number): Promise<Float32Array> {
    const n = tokens.length;
    if (n === 0 || n > this.maxBatch) throw new Error(`stepRows takes 1..${this.maxBatch} tokens, got ${n}`);
    if (pos0 + n > this.contextLength) throw new Error(`stepRows would write past the KV cache (${pos0} + ${n} > ${this.contextLength})`);
    const rows = (this.rows ??= await this.createRowHead());
    const { device } = this.gpu;
    const b = this.buffers;
    const bytes = n * this.config.vocabSize * 4;
    device.queue.writeBuffer(b.tokens, 0, new Uint32Array(tokens));
    device.queue.writeBuffer(b.step, 0, STEP.pack({ n_tokens: n, pos0 }));
    const encoder = device.createCommandEncoder({ label: 'forward rows' });
    const pass = encoder.beginComputePass({ label: 'forward rows' });
    for (const op of [...this.layerOps, ...rows.ops]) op.encode(pass, n, pos0);
    pass.end();
    encoder.copyBufferToBuffer(rows.logits, 0, rows.read, 0, bytes);
    this.gpu.submit([encoder.finish()]);
    await rows.read.mapAsync(GPUMapMode.READ, 0, bytes);
    const error = this.gpu.takeError();
    try {
      if (error) throw error;
      const logits = new Float32Array(rows.read.getMappedRange(0, bytes).slice(0));
      const nonFinite = countNonFinite(logits);
      if (nonFinite > 0) throw numericError(nonFinite, this.config.vocabSize);
      return logits;
    } finally {
      rows.read.unmap();
    }
  }

  /**
   * Runs `tokens` (at most maxBatch) at positions pos0.. like step(), and reads back every token's
   * final hidden state, after the output norm and before the output projection: [n_tokens, n_embd]
   * f32, what embeddings pool (Runtime.embed). NaN or ±Inf among them is NUMERIC_ERROR.
   */
  async stepHidden(tokens: readonly number[], pos0: number): Promise<Float32Array> {
    const n = tokens.length;
    if (n === 0 || n > this.maxBatch) throw new Error(`stepHidden takes 1..${this.maxBatch} tokens, got ${n}`);
    if (pos0 + n > this.contextLength) throw new Error(`stepHidden would write past the KV cache (${pos0} + ${n} > ${this.contextLength})`);
    if (!this.rowNorm) throw new Error(`the ${this.config.architecture} graph has no output norm`);
    const { device, memory } = this.gpu;
    const b = this.buffers;
    const bytes = n * this.config.nEmbd * 4;
    const read = (this.readHidden ??= memory.createBuffer('staging', {
      label: 'read hidden', size: this.maxBatch * this.config.nEmbd * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    }));
    device.queue.writeBuffer(b.tokens, 0, new Uint32Array(tokens));
    device.queue.writeBuffer(b.step, 0, STEP.pack({ n_tokens: n, pos0 }));
    const encoder = device.createCommandEncoder({ label: 'forward hidden' });
    const pass = encoder.beginComputePass({ label: 'forward hidden' });
    for (const op of [...this.layerOps, this.rowNorm]) op.encode(pass, n);
    pass.end();
    encoder.copyBufferToBuffer(b.acts.xn, 0, read, 0, bytes);
    this.gpu.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ, 0, bytes);
    const error = this.gpu.takeError();
    try {
      if (error) throw error;
      const hidden = new Float32Array(read.getMappedRange(0, bytes).slice(0));
      const nonFinite = countNonFinite(hidden);
      if (nonFinite > 0) {
        throw new LanternError(
          'NUMERIC_ERROR',
          `The model produced ${nonFinite} NaN or infinite values among the ${hidden.length} of its final hidden states, so no embedding can be made of them: the file's weights are damaged or overflow. ` +
            'Download the file again; if it repeats, load with f32 activations (int8Activations: false) or use another quantization of the model.',
          { nonFinite, values: hidden.length },
        );
      }
      return hidden;
    } finally {
      read.unmap();
    }
  }

  private async createMaskedOps(): Promise<{ argmax: Op; topK: TopKOp }> {
    const b = this.buffers;
    const vocab = this.config.vocabSize;
    return { argmax: await this.kernels.argmax(b.logits, vocab, b.argmax, b.mask), topK: await topK(this.kernels, b.logits, vocab, b.topK, b.mask) };
  }

  /** The head for every row, into [maxBatch, vocab] logits and their staging copy (each 39 MB for a 152k vocabulary: made only when asked for). */
  private async createRowHead(): Promise<RowHead> {
    if (!this.rowHead) throw new Error(`the ${this.config.architecture} graph has no output head`);
    const { device } = this.gpu;
    const bytes = this.maxBatch * this.config.vocabSize * 4;
    checkBufferSizes(device.limits, [['the logits of every token of a step', bytes]]);
    const logits = device.createBuffer({ label: 'row logits', size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }); // [maxBatch, vocab]
    const read = device.createBuffer({ label: 'read row logits', size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      return { ops: await this.rowHead(logits), logits, read };
    } catch (e) {
      logits.destroy();
      read.destroy();
      throw e;
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
    const resolved = this.gpu.memory.createBuffer('staging', { label: 'profile', size: 8 * count, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const read = this.gpu.memory.createBuffer('staging', { label: 'profile read', size: 8 * count, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      device.queue.writeBuffer(this.buffers.tokens, 0, new Uint32Array([token]));
      device.queue.writeBuffer(this.buffers.step, 0, STEP.pack({ n_tokens: 1, pos0: pos }));
      const encoder = device.createCommandEncoder({ label: 'profile' });
      ops.forEach((op, i) => {
        const querySet = querySets[Math.floor((2 * i) / perSet)];
        const at = (2 * i) % perSet;
        const pass = encoder.beginComputePass({ label: op.name, timestampWrites: { querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 } });
        op.encode(pass, 1, pos);
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

  /**
   * Whether shift() can move this cache: its keys carry no learned positions (GPT-2, GPT-Neo add
   * them to the embedding, where no rotation reaches), and every layer keeps the whole context (a
   * sliding-window ring holds positions modulo its size, which a move down would scramble).
   * Elsewhere a context shift prefills the kept tokens again (Runtime).
   */
  get canShift(): boolean {
    return !this.shiftPlan.learnedPositions && this.kv.ring === undefined;
  }

  /**
   * A context shift (llama.cpp's K-shift, done in place): rows keep + delta .. length − 1 of every
   * layer's K and V move down to keep.., in the cache's own form, and K of RoPE layers is rotated
   * by −delta, so that a key written at position p now reads as written at p − delta (exact up to
   * rounding: RoPE is a rotation). Rows keep .. keep + delta − 1 are dropped; rows from length −
   * delta on are stale. delta must be at least the rows moved, so that no row is both read and written.
   */
  async shift(keep: number, delta: number, length: number): Promise<void> {
    if (!this.canShift) throw new Error(`the ${this.config.architecture} cache cannot be shifted (learned positions or a sliding-window ring)`);
    if (length > this.contextLength) throw new Error(`shift of ${length} rows in a cache of ${this.contextLength}`);
    const s = (this.shifter ??= await this.createShifter());
    const c = this.config;
    const rows = length - keep - delta;
    const { device } = this.gpu;
    const kvCache = this.shiftPlan.kvCache;
    device.queue.writeBuffer(s.params, 0, kvShiftParams({ width: c.nKvHeads * c.headDim, headDim: c.headDim, kvCache, ropeDim: c.rope?.dims }, keep + delta, keep, rows));
    for (const { buffer, rope } of s.tables) device.queue.writeBuffer(buffer, 0, ropeShiftTable(rope, delta));
    if (rows > 0) {
      const encoder = device.createCommandEncoder({ label: 'context shift' });
      const pass = encoder.beginComputePass({ label: 'context shift' });
      for (const op of s.ops) op.encode(pass, rows);
      pass.end();
      this.gpu.submit([encoder.finish()]);
    }
    await this.finish();
  }

  /** Every layer's move of K (rotated where the layer has RoPE: one table per distinct RoPE) and of V. */
  private async createShifter(): Promise<Shifter> {
    const c = this.config;
    const memory = this.gpu.memory;
    const kvCache = this.shiftPlan.kvCache;
    const width = c.nKvHeads * c.headDim;
    const params = memory.createBuffer('activations', { label: 'context shift', size: KV_SHIFT.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    const tables: Shifter['tables'] = [];
    const tableOf = (rope: RopeShift): GPUBuffer => {
      const same = tables.find((t) => t.rope.thetaBase === rope.thetaBase && t.rope.freqScale === rope.freqScale && t.rope.freqFactors === rope.freqFactors);
      if (same) return same.buffer;
      const buffer = memory.createBuffer('activations', { label: `context shift rope ${rope.thetaBase}`, size: Math.max(16, rope.ropeDim * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      tables.push({ buffer, rope });
      return buffer;
    };
    const ops: Op[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const rope = this.shiftPlan.kvRopes[l];
      const shape = { width, headDim: c.headDim, kvCache };
      ops.push(
        await this.kernels.kvShift(params, this.buffers.kCache[l], { ...shape, rope: rope && { ropeDim: rope.ropeDim, neox: rope.neox, table: tableOf(rope) } }),
        await this.kernels.kvShift(params, this.buffers.vCache[l], shape),
      );
    }
    return { params, tables, ops };
  }

  /**
   * Bytes of K and V rows attention reads for a query at position `pos`: in every layer its keys
   * and values at positions 0..pos, or the window's last positions in a sliding-window layer.
   */
  kvBytesRead(pos: number): number {
    const rowBytes = 2 * kvRowBytes(this.kv.kvCache, this.config.nKvHeads * this.config.headDim);
    return this.config.windows.reduce((sum, w) => sum + rowBytes * (w > 0 ? Math.min(w, pos + 1) : pos + 1), 0);
  }

  /** Waits for all submitted work (used before timing and after prefill chunks). */
  async finish(): Promise<void> {
    await this.gpu.device.queue.onSubmittedWorkDone();
    const error = this.gpu.takeError();
    if (error) throw error;
  }

  destroy(): void {
    const b = this.buffers;
    for (const buffer of [b.step, b.tokens, ...Object.values(b.acts), b.q, b.k, ...(b.v ? [b.v] : []), b.attn, b.gate, b.up, b.last, b.logits, b.argmax, b.topK, b.readLogits, b.readArgmax, b.readTopK, ...b.kCache, ...b.vCache]) {
      buffer.destroy();
    }
    this.rows?.logits.destroy();
    this.rows?.read.destroy();
    this.readHidden?.destroy();
    this.shifter?.params.destroy();
    for (const { buffer } of this.shifter?.tables ?? []) buffer.destroy();
    this.kernels.destroy();
  }
}

/** Forward.stepRows' head: its ops, the logits they write ([maxBatch, vocab] f32) and the staging buffer they are read through. */
interface RowHead {
  ops: Op[];
  logits: GPUBuffer;
  read: GPUBuffer;
}

/** Forward.shift's kernels: every layer's K and V move, the KV_SHIFT uniform they share, and a (cos, sin) table per distinct RoPE of K. */
interface Shifter {
  params: GPUBuffer;
  tables: { buffer: GPUBuffer; rope: RopeShift }[];
  ops: Op[];
}

interface ForwardBuffers extends GraphBuffers {
  argmax: GPUBuffer;
  topK: GPUBuffer;
  mask: GPUBuffer;
  readLogits: GPUBuffer;
  readArgmax: GPUBuffer;
  readTopK: GPUBuffer;
}

/** What argmax.wgsl and topk.wgsl pick when nothing can be picked. */
const NONE = 0xffffffff;

/** Words of a grammar mask over `vocab` tokens: one bit per token. */
function maskWords(vocab: number): number {
  return Math.ceil(vocab / 32);
}

/** Where the KV cache's rows live, and what that costs. */
export interface KvLayout {
  /** How K and V are stored. */
  kvCache: KvCacheType;
  /** Rows of each layer's K and V: the context, or for a sliding-window layer a ring of window + maxBatch − 1 (enough for a prefill chunk's queries to see their whole window). */
  cacheRows: number[];
  /** Bytes of K and V in all layers, as allocated. */
  bytes: number;
  /** Bytes per token of context: the layers that keep the whole context. */
  bytesPerToken: number;
  /** The sliding-window layers' tightest ring: the fewest rows, and the widest window (for deciding whether a cached prefix is still whole). */
  ring?: { rows: number; window: number };
}

export function kvLayout(c: ModelConfig, maxBatch: number, kvCache: KvCacheType): KvLayout {
  const rowBytes = 2 * kvRowBytes(kvCache, c.nKvHeads * c.headDim); // K and V
  const cacheRows = c.windows.map((w) => (w > 0 ? Math.min(c.contextLength, w + maxBatch - 1) : c.contextLength));
  const rings = c.windows.map((w, l) => ({ rows: cacheRows[l], window: w })).filter((r) => r.window > 0 && r.rows < c.contextLength);
  return {
    kvCache,
    cacheRows,
    bytes: cacheRows.reduce((sum, rows) => sum + rows * rowBytes, 0),
    bytesPerToken: cacheRows.filter((rows) => rows === c.contextLength).length * rowBytes,
    ring: rings.length ? { rows: Math.min(...rings.map((r) => r.rows)), window: Math.max(...rings.map((r) => r.window)) } : undefined,
  };
}

/** Every buffer the model will create fits the adapter's limits, or ADAPTER_LIMITS names the first that does not. */
function checkBufferSizes(limits: GPUSupportedLimits, buffers: Iterable<readonly [string, number]>): void {
  const most = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  for (const [what, bytes] of buffers) {
    if (bytes > most) {
      throw new LanternError(
        'ADAPTER_LIMITS',
        `${what} needs ${bytes} bytes in one buffer but this GPU allows ${most}; choose a smaller model or quantization, or a shorter context.`,
        { buffer: what, bytes, limit: most },
      );
    }
  }
}

/** The graph's plan: every tensor it reads checked against the model, with its bytes; nothing created. */
export interface ForwardPlan {
  weightBytes: Map<string, number>;
  /** Elements of each 1-D tensor the plan reads (biases go to the GPU as f32). */
  vectorElements: Map<string, number>;
  /** How many RoPE cos/sin tables the kernels build (one per base), each [context, rope dims / 2] vec2<f32>. */
  ropeTables: number;
  ropeDim: number;
  /** Whether any weight is in a block format (the int8-activation path copies activations only for those). */
  blockWeights: boolean;
}

export async function planForward(family: Family, c: ModelConfig, file: GGUFFile, maxBatch: number, kvCache: KvCacheType): Promise<ForwardPlan> {
  const graph = new Graph(c, file, kvLayout(c, maxBatch, kvCache).cacheRows);
  await family.build(graph);
  const vectorElements = new Map<string, number>();
  let blockWeights = false;
  for (const t of file.tensors) {
    if (!graph.weightBytes.has(t.name)) continue;
    if (t.dims.length === 1) vectorElements.set(t.name, t.dims[0]);
    if (t.type !== GGMLType.F32 && t.type !== GGMLType.F16 && t.type !== GGMLType.BF16) blockWeights = true;
  }
  // A table per RoPE base (the sliding-window layers may take their own).
  const swa = c.rope?.thetaSwa !== undefined || c.rope?.freqScaleSwa !== undefined;
  return { weightBytes: graph.weightBytes, vectorElements, ropeTables: c.rope ? (swa ? 2 : 1) : 0, ropeDim: c.rope?.dims ?? 0, blockWeights };
}

/**
 * The GPU bytes Forward.create will take with this plan, known before anything is allocated: the
 * weights as uploaded (whole words; vectors as f32 at most), the KV cache exactly, the activations
 * exactly, and the kernels' scratch (RoPE tables, int8 copies of activations, uniforms) as an
 * upper bound, so that a model the plan fits never exceeds it.
 */
export function forwardBytes(plan: ForwardPlan, c: ModelConfig, maxBatch: number, kvCache: KvCacheType, int8Activations: boolean): GpuBytes {
  const align4 = (n: number) => Math.ceil(n / 4) * 4;
  let weights = 0;
  for (const [name, bytes] of plan.weightBytes) {
    const elements = plan.vectorElements.get(name);
    weights += Math.max(align4(bytes), elements === undefined ? 0 : elements * 4);
  }
  // RoPE factors are read on the host, never uploaded; the plan counts them anyway (bytes, a bound).
  const kvDim = c.nKvHeads * c.headDim;
  const qDim = c.nHeads * c.headDim;
  const buf = (elements: number) => Math.max(16, elements * 4);
  // What linears read: the four activations, attn, gate, up, last.
  const inputs = [...Array(4).fill(maxBatch * c.nEmbd), maxBatch * qDim, maxBatch * c.nFF, maxBatch * c.nFF, c.nEmbd].map((n) => buf(n) / 4);
  const forwardActs = STEP.byteSize + Math.max(16, maxBatch * 4) + 4 * buf(maxBatch * c.nEmbd) + buf(maxBatch * qDim) + buf(maxBatch * kvDim)
    + (kvCache === 'f32' ? 0 : buf(maxBatch * kvDim)) + buf(maxBatch * qDim) + 2 * buf(maxBatch * c.nFF) + buf(c.nEmbd)
    + buf(c.vocabSize) + buf(2) + buf(TOPK_RESULT_WORDS) + buf(maskWords(c.vocabSize));
  const rope = plan.ropeTables * Math.max(16, c.contextLength * plan.ropeDim * 4);
  // quantize_x.wgsl's copies: int8 pairs of words and a scale pair per 32 (Kernels.quantizedCopy).
  const int8 = int8Activations && plan.blockWeights ? inputs.reduce((sum, n) => sum + Math.max(16, Math.ceil(n / 2) * 4) + Math.max(16, Math.ceil(n / 32) * 8), 0) : 0;
  // Uniforms of static parameters: at most 32 bytes each, at most 24 ops a layer and 8 in the head.
  const uniforms = 32 * (24 * c.nLayers + 8);
  // Split decode attention's partials: one buffer per size, shared by the layers of that size (Kernels.attention).
  const partialSizes = new Set(kvLayout(c, maxBatch, kvCache).cacheRows.map((rows, l) => {
    const chunks = attentionChunks(c.windows[l] > 0 ? Math.min(c.windows[l], rows) : rows, ATTENTION_SPLIT.chunk);
    return chunks < ATTENTION_SPLIT.minChunks ? 0 : attentionPartialsBytes(c.nHeads, c.headDim, chunks);
  }));
  const partials = [...partialSizes].reduce((a, b) => a + b, 0);
  return gpuBytes({
    weights,
    kvCache: kvLayout(c, maxBatch, kvCache).cacheRows.reduce((sum, rows) => sum + 2 * Math.max(16, rows * kvRowBytes(kvCache, kvDim)), 0),
    activations: forwardActs + rope + int8 + uniforms + partials,
    staging: c.vocabSize * 4 + 8 + TOPK_RESULT_WORDS * 4,
  });
}

/** OUT_OF_MEMORY, before anything is allocated, when the plan needs more than the caller's budget. */
function checkBudget(planned: GpuBytes, maxGpuBytes: number | undefined, kvCache: KvCacheType): void {
  if (maxGpuBytes === undefined || planned.total <= maxGpuBytes) return;
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const tries = ['a shorter context (contextLength)', ...(kvCache !== 'q8_0' ? ["kvCache: 'q8_0'"] : []), 'a smaller quantization of the model'];
  throw new LanternError(
    'OUT_OF_MEMORY',
    `This model needs ${planned.total} bytes (${mb(planned.total)}: weights ${mb(planned.weights)}, KV cache ${mb(planned.kvCache)}, activations ${mb(planned.activations)}) of GPU memory but the budget is ${maxGpuBytes} (${mb(maxGpuBytes)}); try ${tries.join(', or ')}.`,
    { needed: planned.total, budget: maxGpuBytes, ...planned },
  );
}
