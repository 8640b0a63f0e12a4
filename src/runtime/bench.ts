/**
 * The benchmark of a loaded Runtime: prefill and decode tokens/s, the weight bandwidth decoding
 * reaches, and the bandwidth a plain streaming read (shaders/stream_read.wgsl) gets from the same
 * adapter in the same run. Decoding one token reads every weight once, so decode bandwidth over
 * stream-read bandwidth says how close the decode loop is to the memory's limit.
 *
 * Runs wherever a Runtime does (a page, a worker, Node over Dawn); the CLI's `lantern bench` and
 * scripts/bench.ts call it. GPU time comes from `timestamp-query` where the device has it, and
 * wall-clock figures are always reported beside it.
 */
import { LanternError } from '../errors.ts';
import type { GpuContext } from '../gpu/device.ts';
import { UniformLayout } from '../gpu/uniforms.ts';
import { Kernels, type Op, STEP } from '../kernels/ops.ts';
import type { GGUFTensorInfo } from '../model/gguf.ts';
import type { KernelProfile, Runtime } from './runtime.ts';
import type { GpuBytes } from '../gpu/memory.ts';

export interface BenchOptions {
  /** Prompt length for the prefill measurement (default 128). */
  promptTokens?: number;
  /** Greedy tokens for the decode measurement (default 64). */
  genTokens?: number;
  /** Bytes the streaming read covers; default 256 MB (64 MB on a CPU adapter), less if the adapter's limits are smaller. */
  streamBytes?: number;
  /** Also time each kernel of a decode step (Runtime.profileDecode); needs timestamp-query. */
  profile?: boolean;
  /** Also measure what each kind of WGSL operation costs on this adapter (measureOpCosts). */
  opCosts?: boolean;
  /** Also run a greedy decode of genTokens constrained to this JSON Schema, and time its grammar masks. */
  jsonSchema?: Record<string, unknown>;
  /** Also time genTokens decode steps from each of these positions of the context (benchPositions). */
  positions?: number[];
}

export interface BenchResult {
  /** general.name of the model. */
  model: string;
  adapter: string;
  /** How the headline figures were timed: GPU timestamps around each submit, or the wall clock. */
  timing: 'gpu-timestamps' | 'wall-clock';
  promptTokens: number;
  genTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** Bytes of weights one decode step reads: every layer tensor, norms, the output matrix, one embedding row. */
  weightBytesPerToken: number;
  /** weightBytesPerToken / decode time per token, in 1e9 bytes/s. */
  decodeGBps: number;
  /** The KV cache: bytes as allocated for the loaded context, and bytes per token of context (sliding-window layers keep a ring of their window and add none). */
  kvBytes: { total: number; perToken: number };
  /** How the KV cache stores K and V, and the context it was allocated for. */
  kvCache: 'f32' | 'f16' | 'q8_0';
  contextLength: number;
  /** The model's GPU memory by category as loaded (Runtime.memory), before the benchmark's own buffers. */
  gpuBytes: GpuBytes;
  /** The same adapter reading one large buffer with vectorized loads, in 1e9 bytes/s: the faster of two access patterns. */
  streamReadGBps: number;
  /** The access pattern streamReadGBps comes from (measureStreamRead). */
  streamPattern: StreamPattern;
  /** decodeGBps / streamReadGBps. */
  decodeBandwidthFraction: number;
  /** The same runs by wall clock, readbacks and CPU work included: what a user waits, and how llama.cpp is timed. */
  wallClock: { prefillTokensPerSecond: number; decodeTokensPerSecond: number; streamReadGBps: number };
  /**
   * With options.profile, GPU time per decode step by kernel, slowest first, each dispatch timed in
   * its own pass (so their sum exceeds a step's time by the passes' overhead); null where the
   * device has no timestamp-query.
   */
  profile?: KernelProfile[] | null;
  /** With options.opCosts, the throughput of each kind of operation, and its cost in u32 adds. */
  opCosts?: OpCost[];
  /**
   * With options.jsonSchema, a greedy decode constrained to it: how many tokens it gave, how it
   * ended, and the CPU time of each token's mask and grammar step (median and 99th percentile, ms;
   * the mask is then applied on the GPU), beside its wall-clock decode speed.
   */
  grammar?: { tokens: number; finishReason: string; maskMsMedian: number; maskMsP99: number; decodeTokensPerSecond: number };
  /** With options.positions, decode speed and bytes read at each position of one context (benchPositions). */
  positions?: PositionsResult;
}

/** Decode at positions of one context: how speed follows the bytes a step reads as the context grows. */
export interface PositionsResult {
  /** By position, in the order asked. */
  at: {
    position: number;
    /** GPU-timestamped where the device has timestamp-query, else the wall clock. */
    decodeTokensPerSecond: number;
    wallClockDecodeTokensPerSecond: number;
    /** Bytes one step reads there: the weights, and the K and V rows attention reads (the mean over the steps timed). */
    bytesPerStep: number;
  }[];
  /**
   * With two positions or more, first and last asked: decode(last) / decode(first), and
   * bytes(first) / bytes(last). Decoding slows no faster than its bytes grow where decode >= bytes.
   */
  ratios?: { decode: number; bytes: number };
}

const MB = 1 << 20;
const STREAM_REPEATS = 5;

/**
 * Bytes of weights a decode step reads, from the GGUF tensor list. The token and position
 * embeddings count one row, unless the token embedding is also the output matrix (tied
 * embeddings), which is read whole.
 */
export function weightBytesPerToken(tensors: readonly GGUFTensorInfo[]): number {
  const tied = !tensors.some((t) => t.name === 'output.weight');
  let bytes = 0;
  for (const t of tensors) {
    if (t.name === 'token_embd.weight' || t.name === 'position_embd.weight') {
      const rows = t.dims[1] ?? 1;
      bytes += t.nBytes / rows + (tied && t.name === 'token_embd.weight' ? t.nBytes : 0);
    } else {
      bytes += t.nBytes;
    }
  }
  return bytes;
}

/** Measures `runtime`: warm-up, one prefill of promptTokens, genTokens greedy decode steps, then the streaming read. */
export async function benchRuntime(runtime: Runtime, options: BenchOptions = {}): Promise<BenchResult> {
  const promptTokens = options.promptTokens ?? 128;
  const genTokens = options.genTokens ?? 64;
  for (const [name, n] of [['promptTokens', promptTokens], ['genTokens', genTokens]] as const) {
    if (!Number.isSafeInteger(n) || n < 1) throw new LanternError('BAD_ARGUMENT', `${name} must be a whole number of at least 1, not ${n}.`);
  }
  const { contextLength, vocabSize } = runtime.info;
  const gpuBytes = runtime.memory();
  if (promptTokens + genTokens > contextLength) {
    throw new LanternError(
      'BAD_ARGUMENT',
      `The benchmark needs ${promptTokens + genTokens} positions but the context holds ${contextLength}; load with a larger contextLength or ask for fewer tokens.`,
      { promptTokens, genTokens, contextLength },
    );
  }
  const gpu = runtime.gpuContext;
  const clock = SubmitClock.create(gpu, Math.min(2048, 2 * (genTokens + promptTokens) + 16));

  let run: { prefill: Timed; decode: Timed };
  let stream: Awaited<ReturnType<typeof measureStreamRead>>;
  try {
    // Warm-up: pipelines, first-use allocations and both the prefill and decode paths. Each run's
    // prompt starts with a different id, so no KV-cache prefix carries over from one to the next.
    // The stream read brackets the decode run, so that a machine that speeds up or slows down
    // meanwhile (a shared CPU, for SwiftShader) moves both figures alike; its time is the median
    // of both sets of runs.
    await decodeRun(runtime, randomIds(promptTokens, vocabSize, 1), 2, undefined);
    const before = await measureStreamRead(gpu, { bytes: options.streamBytes, clock });
    run = await decodeRun(runtime, randomIds(promptTokens, vocabSize, 2), genTokens, clock);
    const after = await measureStreamRead(gpu, { bytes: options.streamBytes, clock, pattern: before.pattern });
    stream = { ...after, ...medianTimes([...before.runs, ...after.runs]) };
  } finally {
    clock?.destroy();
  }

  const grammar = options.jsonSchema ? await grammarRun(runtime, options.jsonSchema, promptTokens, genTokens) : undefined;
  const positions = options.positions ? await benchPositions(runtime, options.positions, genTokens) : undefined;
  const profile = options.profile ? (await runtime.profileDecode()) ?? null : undefined;
  const opCosts = options.opCosts ? await measureOpCosts(gpu) : undefined;

  const gpuTimed = run.prefill.gpuMs !== undefined && run.decode.gpuMs !== undefined && stream.gpuMs !== undefined;
  const prefillMs = gpuTimed ? run.prefill.gpuMs! : run.prefill.wallMs;
  const decodeMs = gpuTimed ? run.decode.gpuMs! : run.decode.wallMs;
  const streamMs = gpuTimed ? stream.gpuMs! : stream.wallMs;
  const bytesPerToken = runtime.weightBytesPerToken;
  const decodeGBps = (bytesPerToken * genTokens) / (decodeMs * 1e6);
  const streamReadGBps = stream.bytes / (streamMs * 1e6);
  return {
    model: runtime.info.name,
    adapter: runtime.info.adapter,
    timing: gpuTimed ? 'gpu-timestamps' : 'wall-clock',
    promptTokens,
    genTokens,
    prefillTokensPerSecond: promptTokens / (prefillMs / 1000),
    decodeTokensPerSecond: genTokens / (decodeMs / 1000),
    weightBytesPerToken: bytesPerToken,
    decodeGBps,
    kvBytes: { total: runtime.info.kvBytes, perToken: runtime.info.kvBytesPerToken },
    kvCache: runtime.info.kvCache,
    contextLength,
    gpuBytes,
    streamReadGBps,
    streamPattern: stream.pattern,
    decodeBandwidthFraction: decodeGBps / streamReadGBps,
    wallClock: {
      prefillTokensPerSecond: promptTokens / (run.prefill.wallMs / 1000),
      decodeTokensPerSecond: genTokens / (run.decode.wallMs / 1000),
      streamReadGBps: stream.bytes / (stream.wallMs * 1e6),
    },
    ...(profile !== undefined ? { profile } : {}),
    ...(opCosts ? { opCosts } : {}),
    ...(grammar ? { grammar } : {}),
    ...(positions ? { positions } : {}),
  };
}

/** A real constrained decode: greedy under the schema from a random prompt, masks timed by the runtime (GenerationStats.maskMs). */
async function grammarRun(runtime: Runtime, schema: Record<string, unknown>, promptTokens: number, genTokens: number): Promise<BenchResult['grammar']> {
  const responseFormat = { type: 'json_schema' as const, json_schema: { name: 'bench', schema } };
  let tokens = 0;
  for await (const token of runtime.generate(randomIds(promptTokens, runtime.info.vocabSize, 3), { maxTokens: genTokens, temperature: 0, responseFormat })) {
    if (token.id >= 0) tokens++;
  }
  const stats = runtime.lastStats!;
  return {
    tokens,
    finishReason: stats.finishReason,
    maskMsMedian: stats.maskMs?.median ?? 0,
    maskMsP99: stats.maskMs?.p99 ?? 0,
    decodeTokensPerSecond: stats.decodeTokensPerSecond,
  };
}

/**
 * Decode speed at each of `positions` of one context: a warm-up step there, then `steps` greedy
 * steps from it (Runtime.decodeAt), over whatever the KV cache holds (a step's work does not
 * depend on the values it reads, so the context need not be prefilled). Each figure is timed by
 * GPU timestamps where the device has them, and by the wall clock beside.
 */
export async function benchPositions(runtime: Runtime, positions: readonly number[], steps: number): Promise<PositionsResult> {
  const { contextLength } = runtime.info;
  for (const p of positions) {
    if (!Number.isSafeInteger(p) || p < 0 || p + 1 + steps > contextLength) {
      throw new LanternError('BAD_ARGUMENT', `A position to decode at must be a whole number from 0 to ${contextLength - 1 - steps} (the context of ${contextLength} holds a warm-up step and ${steps} more), not ${p}; load a longer context or ask for fewer tokens.`);
    }
  }
  const clock = SubmitClock.create(runtime.gpuContext, steps + 1);
  try {
    const at: PositionsResult['at'] = [];
    for (const position of positions) {
      await runtime.decodeAt(position, 1);
      const window = clock?.open();
      const t0 = performance.now();
      const read = await runtime.decodeAt(position + 1, steps);
      const wallMs = performance.now() - t0;
      const gpuMs = await window?.close();
      const kvBytes = read.reduce((a, b) => a + b, 0) / steps;
      at.push({
        position,
        decodeTokensPerSecond: steps / ((gpuMs ?? wallMs) / 1000),
        wallClockDecodeTokensPerSecond: steps / (wallMs / 1000),
        bytesPerStep: runtime.weightBytesPerToken + kvBytes,
      });
    }
    const [first, last] = [at[0], at[at.length - 1]];
    return { at, ...(at.length > 1 ? { ratios: { decode: last.decodeTokensPerSecond / first.decodeTokensPerSecond, bytes: first.bytesPerStep / last.bytesPerStep } } : {}) };
  } finally {
    clock?.destroy();
  }
}

interface Timed {
  wallMs: number;
  /** Undefined without timestamp-query, or when the submits could not all be bracketed. */
  gpuMs?: number;
}

/**
 * Prefills `prompt`, then decodes `steps` greedy tokens, timing the two phases apart. The
 * runtime's generate() does one decode step per token it yields after the first; when it ends
 * early (an end-of-generation token), it is restarted on everything so far, and that prefill
 * is not counted.
 */
async function decodeRun(runtime: Runtime, prompt: number[], steps: number, clock: SubmitClock | undefined): Promise<{ prefill: Timed; decode: Timed }> {
  const prefill: Timed = { wallMs: 0 };
  const decode: Timed = { wallMs: 0 };
  const sequence = [...prompt];
  let decoded = 0;
  let decodeWindow: ClockWindow | undefined;
  for (let restarts = 0; decoded < steps; restarts++) {
    if (restarts > steps + 8) {
      throw new LanternError('CONTEXT_OVERFLOW', `The benchmark's generation kept ending early (${decoded} of ${steps} tokens decoded); load with a larger contextLength.`);
    }
    const firstRun = restarts === 0;
    const tokens = runtime.generate(sequence.slice(), { maxTokens: steps - decoded + 1, temperature: 0 });
    try {
      const prefillWindow = firstRun ? clock?.open() : undefined;
      let t0 = performance.now();
      const first = await nextToken(tokens);
      if (firstRun) {
        prefill.wallMs = performance.now() - t0;
        if (prefillWindow) prefill.gpuMs = await prefillWindow.close();
      }
      if (first === undefined) {
        // The prompt's greedy continuation is an end-of-generation token: go on after a prompt id instead.
        sequence.push(prompt[restarts % prompt.length]);
        continue;
      }
      sequence.push(first);
      if (decodeWindow) decodeWindow.resume();
      else decodeWindow = clock?.open();
      while (decoded < steps) {
        t0 = performance.now();
        const id = await nextToken(tokens);
        if (id === undefined) break;
        decode.wallMs += performance.now() - t0;
        sequence.push(id);
        decoded++;
      }
      decodeWindow?.pause();
    } finally {
      await tokens.return(undefined);
    }
  }
  if (decodeWindow) decode.gpuMs = await decodeWindow.close();
  return { prefill, decode };
}

/** The next sampled id, skipping text-only items (id -1); undefined when generation has ended. */
async function nextToken(tokens: AsyncGenerator<{ id: number }>): Promise<number | undefined> {
  for (;;) {
    const item = await tokens.next();
    if (item.done) return undefined;
    if (item.value.id >= 0) return item.value.id;
  }
}

/** Deterministic prompt ids in [0, vocabSize) that start with a seed-dependent id. */
function randomIds(n: number, vocabSize: number, seed: number): number[] {
  let state = (seed * 0x9e3779b1) >>> 0;
  const ids = [seed % vocabSize];
  while (ids.length < n) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    ids.push(state % vocabSize);
  }
  return ids;
}

/** The word the stream-read buffer holds at index i (a fixed pattern, so the XOR can be checked). */
export function streamWord(i: number): number {
  return (Math.imul(i, 0x9e3779b1) + 0x7f4a7c15) >>> 0;
}

const STREAM_PARAMS = new UniformLayout('Params', { n_vec4: 'u32', n_threads: 'u32' });

/** How the stream read walks the buffer (shaders/stream_read.wgsl): grid stride, or a span per invocation. */
export type StreamPattern = 'grid' | 'spans';

/**
 * Reads a buffer of `bytes` (a multiple of 16) filled with streamWord(i) with shaders/stream_read.wgsl
 * in each access pattern (or only `pattern`), STREAM_REPEATS times after one warm-up run, and keeps
 * the faster pattern: the figure is the best plain read this adapter gets. Times are that pattern's
 * median run. `xor` is the XOR of every word as the GPU computed it, checked here against the CPU's
 * for every pattern run.
 */
export async function measureStreamRead(
  gpu: GpuContext,
  options: { bytes?: number; clock?: SubmitClock; pattern?: StreamPattern } = {},
): Promise<{ bytes: number; xor: number; pattern: StreamPattern; wallMs: number; gpuMs?: number; runs: Timed[] }> {
  const { device } = gpu;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const wanted = options.bytes ?? (gpu.cpuAdapter ? 64 * MB : 256 * MB);
  const bytes = Math.floor(Math.min(wanted, limit) / 16) * 16;
  if (!(bytes >= 16)) throw new LanternError('BAD_ARGUMENT', `The stream read needs at least 16 bytes, not ${wanted}.`);
  const nVec4 = bytes / 16;
  // Grid stride: enough workgroups to keep a GPU's memory busy (a CPU adapter runs each as a loop),
  // one partial XOR per workgroup. Spans: 16384 invocations, whose spans are long enough for a CPU
  // adapter's cores to stream, one partial XOR per invocation.
  const gridGroups = Math.min(Math.ceil(nVec4 / 256), gpu.cpuAdapter ? 64 : 8192);
  const shapes: Record<StreamPattern, { wg: number; groups: number; defines: string[]; partials: number }> = {
    grid: { wg: 256, groups: gridGroups, defines: [], partials: gridGroups },
    spans: { wg: 64, groups: 256, defines: ['SPANS'], partials: 256 * 64 },
  };
  const maxPartial = Math.max(shapes.grid.partials, shapes.spans.partials);

  const data = device.createBuffer({ label: 'stream read data', size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const partial = device.createBuffer({ label: 'stream read partial', size: maxPartial * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ label: 'stream read result', size: maxPartial * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const step = device.createBuffer({ label: 'stream read step', size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM });
  const kernels = new Kernels(gpu, step);
  try {
    let expected = 0;
    const chunkWords = (4 * MB) / 4;
    for (let start = 0; start < bytes / 4; start += chunkWords) {
      const words = new Uint32Array(Math.min(chunkWords, bytes / 4 - start));
      for (let i = 0; i < words.length; i++) {
        words[i] = streamWord(start + i);
        expected ^= words[i];
      }
      device.queue.writeBuffer(data, start * 4, words);
    }

    const measure = async (pattern: StreamPattern) => {
      const { wg, groups, defines } = shapes[pattern];
      const pipeline = await kernels.pipeline('stream_read', defines, STREAM_PARAMS, { WG: wg });
      const params = kernels.uniform(STREAM_PARAMS, { n_vec4: nVec4, n_threads: groups * wg });
      const bind = kernels.bindGroup(pipeline, [params, data, partial]);
      const op = kernels.op(pipeline, bind, () => [groups]);
      const runs = await timedRuns(gpu, op, 'stream read', STREAM_REPEATS, options.clock);
      const xor = await readXor(gpu, partial, read, shapes[pattern].partials);
      if (xor !== expected >>> 0) {
        throw new LanternError('GPU_ERROR', `The stream-read kernel (${pattern}) computed XOR ${xor} where ${expected >>> 0} was expected; this adapter's figures cannot be trusted, please report it.`);
      }
      return { bytes, xor, pattern, ...medianTimes(runs), runs };
    };

    const results = [];
    for (const pattern of options.pattern ? [options.pattern] : (['grid', 'spans'] as const)) results.push(await measure(pattern));
    const ms = (r: Timed) => r.gpuMs ?? r.wallMs;
    return results.reduce((best, r) => (ms(r) < ms(best) ? r : best));
  } finally {
    for (const buffer of [data, partial, read, step]) buffer.destroy();
    kernels.destroy();
  }
}

/** What one kind of operation costs on this adapter (measureOpCosts). */
export interface OpCost {
  /** The WGSL operation, e.g. `dot4I8Packed`. */
  op: string;
  /** Operations per second over all invocations, in 1e9. */
  gOpsPerSecond: number;
  /** Its time in u32 adds: add's throughput over its own. */
  adds: number;
  /** The XOR of what every invocation computed, for tests to check against a CPU twin. */
  xor: number;
}

const OP_COST_PARAMS = new UniformLayout('Params', { rounds: 'u32', mask: 'u32', shift: 'u32' });

/** The variants of shaders/op_cost.wgsl: the operation, its defines, and how many a round applies. */
const OP_KINDS: readonly { op: string; defines: string[]; perRound: number; subgroups?: boolean }[] = [
  { op: 'u32 +', defines: ['OP_ADD'], perRound: 1024 },
  { op: 'u32 *', defines: ['OP_MUL'], perRound: 1024 },
  { op: 'u32 ^', defines: ['OP_XOR'], perRound: 1024 },
  { op: 'u32 >>', defines: ['OP_SHIFT'], perRound: 1024 },
  { op: 'f32 a * b + c', defines: ['OP_FMA'], perRound: 1024 },
  { op: 'i32 to f32', defines: ['OP_I2F'], perRound: 1024 },
  { op: 'dot4I8Packed', defines: ['OP_DOT4I8'], perRound: 1024 },
  { op: 'unpack2x16float', defines: ['OP_UNPACK2X16FLOAT'], perRound: 512 },
  { op: 'storage load (u32, any index)', defines: ['OP_LOAD'], perRound: 1024 },
  { op: 'subgroupBroadcast', defines: ['OP_BROADCAST'], perRound: 1024, subgroups: true },
];
/** The loop variant: 16 adds a round, run for 64 times the rounds, so that it computes what OP_ADD does. */
const LOOP_KIND = { op: 'loop round', defines: ['OP_ADD', 'LOOP'], perRound: 16 };
const OP_COST_REPEATS = 5;

/**
 * The throughput of each operation of shaders/op_cost.wgsl on this adapter, and its cost in u32
 * adds: where a CPU adapter spends a quantized linear's time (on SwiftShader u32 >> and
 * dot4I8Packed have no SSE instruction and go lane by lane). Last comes a round of a loop, in
 * rounds per second and in adds beyond the 16 it holds. Each figure is the median of
 * OP_COST_REPEATS runs after a warm-up, by GPU timestamps where the device has them.
 * subgroupBroadcast only where subgroups are enabled.
 */
export async function measureOpCosts(gpu: GpuContext, options: { rounds?: number; invocations?: number } = {}): Promise<OpCost[]> {
  const { device } = gpu;
  const wg = 64;
  const invocations = Math.ceil((options.invocations ?? (gpu.cpuAdapter ? 1024 : 1 << 18)) / wg) * wg;
  const rounds = options.rounds ?? (gpu.cpuAdapter ? 50 : 64);
  const mask = (1 << 16) - 1;
  const data = device.createBuffer({ label: 'op cost data', size: (mask + 1) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const sink = device.createBuffer({ label: 'op cost sink', size: invocations * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ label: 'op cost sink read', size: invocations * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const step = device.createBuffer({ label: 'op cost step', size: STEP.byteSize, usage: GPUBufferUsage.UNIFORM });
  const kernels = new Kernels(gpu, step);
  const clock = SubmitClock.create(gpu, 1);
  try {
    device.queue.writeBuffer(data, 0, Uint32Array.from({ length: mask + 1 }, (_, i) => streamWord(i)));
    // Seconds per round of one invocation, and the XOR of what the invocations computed.
    const measure = async (kind: { defines: string[] }, kindRounds: number): Promise<{ seconds: number; xor: number }> => {
      const pipeline = await kernels.pipeline('op_cost', kind.defines, OP_COST_PARAMS, { WG: wg });
      const params = kernels.uniform(OP_COST_PARAMS, { rounds: kindRounds, mask, shift: 1 });
      // Only OP_LOAD reads data: the others' automatic layouts leave binding 1 out.
      const bind = kernels.bindGroup(pipeline, [params, kind.defines.includes('OP_LOAD') ? data : undefined, sink]);
      const op = kernels.op(pipeline, bind, () => [invocations / wg]);
      const runs = await timedRuns(gpu, op, 'op cost', OP_COST_REPEATS, clock);
      const xor = await readXor(gpu, sink, read, invocations);
      return { seconds: median(runs.map((r) => r.gpuMs ?? r.wallMs)) / 1000 / (invocations * kindRounds), xor };
    };

    const costs: OpCost[] = [];
    let addSeconds = 0; // per add
    for (const kind of OP_KINDS.filter((k) => !k.subgroups || gpu.subgroupSize !== undefined)) {
      const { seconds, xor } = await measure(kind, rounds);
      addSeconds ||= seconds / kind.perRound;
      costs.push({ op: kind.op, gOpsPerSecond: kind.perRound / seconds / 1e9, adds: seconds / kind.perRound / addSeconds, xor });
    }
    const loop = await measure(LOOP_KIND, 64 * rounds);
    costs.push({ op: LOOP_KIND.op, gOpsPerSecond: 1 / loop.seconds / 1e9, adds: loop.seconds / addSeconds - LOOP_KIND.perRound, xor: loop.xor });
    return costs;
  } finally {
    for (const buffer of [data, sink, read, step]) buffer.destroy();
    kernels.destroy();
    clock?.destroy();
  }
}

/**
 * `op` alone in a pass, one submit at a time waited for: a warm-up, then `repeats` runs, each with
 * its wall time and its GPU time by `clock` where there is one.
 */
async function timedRuns(gpu: GpuContext, op: Op, label: string, repeats: number, clock?: SubmitClock): Promise<Timed[]> {
  const runs: Timed[] = [];
  for (let r = 0; r <= repeats; r++) {
    const window = clock?.open();
    const t0 = performance.now();
    const encoder = gpu.device.createCommandEncoder({ label });
    const pass = encoder.beginComputePass({ label });
    op.encode(pass, 1);
    pass.end();
    gpu.submit([encoder.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    const wallMs = performance.now() - t0;
    const gpuMs = await window?.close();
    if (r > 0) runs.push({ wallMs, gpuMs });
  }
  return runs;
}

/** The XOR of the first `words` words of `buffer`, read through the mappable `read`; throws the GPU error caught meanwhile, if any. */
async function readXor(gpu: GpuContext, buffer: GPUBuffer, read: GPUBuffer, words: number): Promise<number> {
  const encoder = gpu.device.createCommandEncoder({ label: `${buffer.label} read` });
  encoder.copyBufferToBuffer(buffer, 0, read, 0, words * 4);
  gpu.device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ, 0, words * 4);
  const xor = new Uint32Array(read.getMappedRange(0, words * 4)).reduce((a, b) => (a ^ b) >>> 0, 0);
  read.unmap();
  const error = gpu.takeError();
  if (error) throw error;
  return xor;
}

/** Median wall time, and median GPU time where every run has one. */
function medianTimes(runs: Timed[]): Timed {
  const gpuRuns = runs.map((r) => r.gpuMs);
  return {
    wallMs: median(runs.map((r) => r.wallMs)),
    gpuMs: gpuRuns.every((ms) => ms !== undefined) ? median(gpuRuns as number[]) : undefined,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A measuring window of a SubmitClock: GPU time of the submits made while it is open. */
export interface ClockWindow {
  /** Stops counting submits until resume(). */
  pause(): void;
  resume(): void;
  /** Ends the window: the GPU milliseconds of its submits, or undefined if some were not bracketed. */
  close(): Promise<number | undefined>;
}

/**
 * GPU time of the runtime's submits: while a window is open, every GpuContext.submit() carries an
 * empty timestamped compute pass before and after its command buffers (through onSubmit), and the
 * window sums end - start over its submits. A timestamp is written
 * when the work before it in the queue is done, so each pair brackets that submit's GPU work.
 * The GPU's idle time between submits (CPU work, readbacks) is left out, which is the point.
 */
export class SubmitClock {
  private readonly querySet: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private readonly readback: GPUBuffer;

  private constructor(private readonly gpu: GpuContext, private readonly pairs: number) {
    const { device } = gpu;
    this.querySet = device.createQuerySet({ label: 'bench timestamps', type: 'timestamp', count: 2 * pairs });
    this.resolved = device.createBuffer({ label: 'bench timestamps', size: 16 * pairs, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.readback = device.createBuffer({ label: 'bench timestamps read', size: 16 * pairs, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** A clock for windows of up to `pairs` submits, or undefined when the device has no timestamp-query. */
  static create(gpu: GpuContext, pairs: number): SubmitClock | undefined {
    if (!gpu.device.features.has('timestamp-query')) return undefined;
    return new SubmitClock(gpu, pairs);
  }

  /** Frees the timestamp buffers and stops bracketing submits, also after a failure. */
  destroy(): void {
    this.gpu.onSubmit = undefined;
    this.querySet.destroy();
    this.resolved.destroy();
    this.readback.destroy();
  }

  open(): ClockWindow {
    const { gpu, querySet, pairs } = this;
    const { device } = gpu;
    let used = 0;
    let overflow = false;
    const marker = (index: number, where: 'beginningOfPassWriteIndex' | 'endOfPassWriteIndex'): GPUCommandBuffer => {
      const encoder = device.createCommandEncoder({ label: 'bench timestamp' });
      encoder.beginComputePass({ label: 'bench timestamp', timestampWrites: { querySet, [where]: index } }).end();
      return encoder.finish();
    };
    const bracketed = (buffers: GPUCommandBuffer[]): GPUCommandBuffer[] => {
      if (used === pairs) {
        overflow = true;
        return buffers;
      }
      const i = used++;
      return [marker(2 * i, 'endOfPassWriteIndex'), ...buffers, marker(2 * i + 1, 'beginningOfPassWriteIndex')];
    };
    const install = () => (gpu.onSubmit = bracketed);
    const uninstall = () => (gpu.onSubmit = undefined);
    install();
    let closed = false;
    return {
      pause: uninstall,
      resume: install,
      close: async () => {
        if (closed) throw new Error('This clock window is already closed.');
        closed = true;
        uninstall();
        // No submit went through gpu.submit: no GPU time.
        if (overflow || used === 0) return undefined;
        const encoder = device.createCommandEncoder({ label: 'bench timestamps resolve' });
        encoder.resolveQuerySet(querySet, 0, 2 * used, this.resolved, 0);
        encoder.copyBufferToBuffer(this.resolved, 0, this.readback, 0, 16 * used);
        device.queue.submit([encoder.finish()]);
        await this.readback.mapAsync(GPUMapMode.READ, 0, 16 * used);
        const stamps = new BigInt64Array(this.readback.getMappedRange(0, 16 * used).slice(0)); // ns
        this.readback.unmap();
        let ns = 0n;
        for (let i = 0; i < used; i++) {
          const span = stamps[2 * i + 1] - stamps[2 * i];
          if (span < 0n) return undefined; // a reset or unordered clock: not a measurement
          ns += span;
        }
        return Number(ns) / 1e6;
      },
    };
  }
}
