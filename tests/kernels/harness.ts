/**
 * Runs one kernel on the page's WebGPU device with given inputs and returns its outputs.
 * Loaded into a Chromium page by tests/kernels.test.ts; every run is inside validation and
 * out-of-memory error scopes, so a GPU error fails the test instead of passing silently.
 */
import { acquireGpu, type GpuContext } from '../../src/gpu/device.ts';
import { type KvCacheType, Kernels, KV_SHIFT, kvShiftParams, type Op, ropeShiftTable, STEP, type Weight, type WeightFormat } from '../../src/kernels/ops.ts';

export interface KernelSpec {
  op: 'embedding' | 'rmsnorm' | 'linear' | 'rope' | 'attention' | 'swiglu' | 'add' | 'argmax'
    | 'add2' | 'layernorm' | 'rmsnormRows' | 'gelu' | 'geglu' | 'scale' | 'softcap' | 'positionEmbedding' | 'copyToCache' | 'kvShift';
  /** Tokens the op is encoded for, when not nTokens (the head's ops run for 1 whatever the batch). */
  encodeTokens?: number;
  nTokens: number;
  pos0: number;
  /** f32 arrays, and u32 arrays named in `u32`. */
  inputs: Record<string, number[]>;
  /**
   * Weight matrices given as raw storage words (GGUF bytes, zero-padded to a word): {words, format,
   * rows, cols}, and for a stacked weight its parts (linear then writes outputs y0, y1, ...).
   */
  weights?: Record<string, { words: number[]; format: WeightFormat; rows: number; cols: number; parts?: number[] }>;
  /** Raw u32 inputs (a KV cache in f16 or Q8_0 form, as shaders/kv_cache.wgsl lays it out). */
  words?: Record<string, number[]>;
  /** Sizes in elements of the outputs to read back; those named in u32Outputs come back as raw words. */
  outputs: Record<string, number>;
  u32Outputs?: string[];
  /** The KV cache form attention and copyToCache take (default f32). */
  kvCache?: KvCacheType;
  options?: Record<string, number | boolean>;
}

let gpu: GpuContext | undefined;

export async function run(spec: KernelSpec): Promise<Record<string, number[]>> {
  gpu ??= await acquireGpu(navigator.gpu);
  const { device } = gpu;
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');

  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const buffers: Record<string, GPUBuffer> = {};
  const make = (name: string, bytes: number): GPUBuffer => {
    const buffer = device.createBuffer({ label: name, size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
    buffers[name] = buffer;
    return buffer;
  };
  for (const [name, values] of Object.entries(spec.inputs)) {
    const data = name === 'tokens' ? new Uint32Array(values) : new Float32Array(values);
    device.queue.writeBuffer(make(name, data.byteLength), 0, data);
  }
  for (const [name, values] of Object.entries(spec.words ?? {})) {
    const data = new Uint32Array(values);
    device.queue.writeBuffer(make(name, data.byteLength), 0, data);
  }
  const weights: Record<string, Weight> = {};
  for (const [name, w] of Object.entries(spec.weights ?? {})) {
    const data = new Uint32Array(w.words);
    const buffer = make(name, data.byteLength);
    device.queue.writeBuffer(buffer, 0, data);
    weights[name] = { buffer, format: w.format, rows: w.rows, cols: w.cols, ...(w.parts ? { parts: w.parts } : {}) };
  }
  for (const [name, size] of Object.entries(spec.outputs)) if (!buffers[name]) make(name, size * 4);

  const step = device.createBuffer({ size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(step, 0, STEP.pack({ n_tokens: spec.nTokens, pos0: spec.pos0 }));
  const o = spec.options ?? {};
  const k = new Kernels(gpu, step, {
    ...(o.threadsPerRow === undefined ? {} : { matvecThreadsPerRow: Number(o.threadsPerRow) }), ...(o.gpuPaths ? { cpuKernels: false } : {}),
    ...(o.tiledMatmul === undefined ? {} : { tiledMatmul: Boolean(o.tiledMatmul) }),
    ...(o.splitChunk === undefined ? {} : { attentionSplit: { chunk: Number(o.splitChunk), minChunks: Number(o.splitMinChunks ?? 1) } }),
  });
  const num = (key: string) => Number(o[key]);
  // Optional numbers: absent stays absent (the op's default).
  const opt = (key: string) => (o[key] === undefined ? undefined : Number(o[key]));
  let op: Op;
  switch (spec.op) {
    case 'embedding': op = await k.embedding(weights.W, buffers.tokens, buffers.out); break;
    case 'rmsnorm': op = await k.rmsnorm(buffers.x, weights.W, buffers.out, num('eps'), Boolean(o.lastRow)); break;
    case 'linear': {
      const y = weights.W.parts ? weights.W.parts.map((_, i) => buffers[`y${i}`]) : buffers.y;
      op = await k.linear(buffers.x, weights.W, y, { cacheRows: num('cacheRows') || 0, bias: buffers.bias });
      break;
    }
    case 'rope': {
      const shape = { nHeads: num('nHeads'), headDim: num('headDim'), ropeDim: num('ropeDim'), thetaBase: num('thetaBase'), neox: Boolean(o.neox), maxPositions: spec.pos0 + spec.nTokens, cacheRows: opt('cacheRows') };
      op = await k.rope(buffers.x, shape, buffers.cache);
      break;
    }
    case 'attention':
      op = await k.attention(buffers.q, buffers.kCache, buffers.vCache, buffers.out, {
        nHeads: num('nHeads'), nKvHeads: num('nKvHeads'), headDim: num('headDim'),
        scale: opt('scale'), softcap: opt('softcap'), window: opt('window'), cacheRows: opt('cacheRows') ?? spec.pos0 + spec.nTokens, kvCache: spec.kvCache,
      });
      break;
    case 'add2': op = await k.add2(buffers.x, buffers.y, buffers.z, num('width')); break;
    case 'layernorm': op = await k.layernorm(buffers.x, weights.W, weights.B, buffers.out, num('eps'), Boolean(o.lastRow)); break;
    case 'rmsnormRows': op = await k.rmsnormRows(buffers.x, weights.W, num('eps'), num('rowsPerToken')); break;
    case 'gelu': op = await k.gelu(buffers.x, num('width')); break;
    case 'geglu': op = await k.geglu(buffers.gate, buffers.up, num('width')); break;
    case 'scale': op = await k.scale(buffers.x, num('width'), num('factor')); break;
    case 'softcap': op = await k.softcap(buffers.x, num('width'), num('cap')); break;
    case 'positionEmbedding': op = await k.positionEmbedding(weights.W, buffers.x); break;
    case 'copyToCache': op = await k.copyToCache(buffers.x, buffers.cache, num('width'), num('cacheRows'), spec.kvCache); break;
    case 'kvShift': {
      // A context shift: rows src.. to dst.. of `cache` (words, any form), K rotated by -(src - dst) with ropeDim.
      const shape = { width: num('width'), headDim: num('headDim'), kvCache: spec.kvCache ?? 'f32', ropeDim: opt('ropeDim') };
      const params = device.createBuffer({ size: KV_SHIFT.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(params, 0, kvShiftParams(shape, num('src'), num('dst'), spec.nTokens));
      buffers.params = params;
      const ropeDim = opt('ropeDim');
      let rope: { ropeDim: number; neox: boolean; table: GPUBuffer } | undefined;
      if (ropeDim !== undefined) {
        const table = ropeShiftTable({ headDim: shape.headDim, ropeDim, neox: Boolean(o.neox), thetaBase: num('thetaBase'), freqScale: opt('freqScale') }, num('src') - num('dst'));
        buffers.table = make('table', table.byteLength);
        device.queue.writeBuffer(buffers.table, 0, table);
        rope = { ropeDim, neox: Boolean(o.neox), table: buffers.table };
      }
      op = await k.kvShift(params, buffers.cache, { ...shape, rope });
      break;
    }
    case 'swiglu': op = await k.swiglu(buffers.gate, buffers.up, num('width')); break;
    case 'add': op = await k.add(buffers.x, buffers.y, num('width')); break;
    case 'argmax': op = await k.argmax(buffers.logits, num('n'), buffers.result, buffers.mask); break; // a `mask` in words: the MASK variant
  }

  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  // The grids the op dispatched, [x, y, z] each: which path attention took.
  const dispatches: number[] = [];
  const dispatch = pass.dispatchWorkgroups.bind(pass);
  pass.dispatchWorkgroups = (x: number, y = 1, z = 1) => {
    dispatches.push(x, y, z);
    dispatch(x, y, z);
  };
  op.encode(pass, spec.encodeTokens ?? spec.nTokens, spec.pos0);
  pass.end();
  const reads: Record<string, GPUBuffer> = {};
  for (const [name, size] of Object.entries(spec.outputs)) {
    reads[name] = device.createBuffer({ size: Math.max(16, size * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(buffers[name], 0, reads[name], 0, Math.max(16, size * 4));
  }
  device.queue.submit([encoder.finish()]);

  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (validation || oom) throw new Error(`GPU error in ${op.name}: ${(validation ?? oom)!.message}`);

  const result: Record<string, number[]> = {};
  // Which path linear took: 1 where the activations were quantized to int8 (CPU adapters).
  if (spec.op === 'linear') result.int8 = [Number(k.readsInt8Activations(weights.W))];
  if (spec.op === 'attention') {
    result.dispatches = dispatches;
    // 1 where the kernels written for CPU adapters run (one subgroup per head or KV head).
    result.cpuSubgroups = [Number(gpu.cpuAdapter && (gpu.subgroupSize ?? 0) >= 4 && !o.gpuPaths)];
  }
  for (const [name, size] of Object.entries(spec.outputs)) {
    await reads[name].mapAsync(GPUMapMode.READ);
    const data = name === 'result' || spec.u32Outputs?.includes(name) ? new Uint32Array(reads[name].getMappedRange()) : new Float32Array(reads[name].getMappedRange());
    result[name] = Array.from(data.subarray(0, size));
    reads[name].unmap();
    reads[name].destroy();
  }
  for (const buffer of Object.values(buffers)) buffer.destroy();
  step.destroy();
  return result;
}
