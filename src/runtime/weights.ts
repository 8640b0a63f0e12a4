import { LanternError } from '../errors.ts';
import { halfToFloat } from '../model/f16.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { Weight, WeightFormat } from '../kernels/ops.ts';
import { GGMLType, type GGUFFile, type GGUFTensorInfo, ggmlTypeName } from '../model/gguf.ts';
import { Q5_0R_PAIR_BYTES, Q6_KR_PAIR_BYTES, regroupQ5_0, regroupQ6_K } from '../model/regroup.ts';
import type { ByteSource } from '../storage/source.ts';

/** Tensor data moves from the source to the GPU in reads of at most this many bytes. */
const UPLOAD_CHUNK = 8 << 20;

/** The GGUF types the kernels read as stored; quantized blocks are decoded on the GPU, never expanded. */
const FORMATS: Partial<Record<GGMLType, WeightFormat>> = {
  [GGMLType.F32]: 'f32',
  [GGMLType.F16]: 'f16',
  [GGMLType.Q8_0]: 'q8_0',
  [GGMLType.Q4_0]: 'q4_0',
  [GGMLType.Q4_1]: 'q4_1',
  [GGMLType.Q5_0]: 'q5_0',
  [GGMLType.Q5_1]: 'q5_1',
  [GGMLType.Q4_K]: 'q4_k',
  [GGMLType.Q6_K]: 'q6_k',
  [GGMLType.BF16]: 'bf16',
  [GGMLType.Q5_K]: 'q5_k',
  [GGMLType.Q3_K]: 'q3_k',
  [GGMLType.Q2_K]: 'q2_k',
  [GGMLType.IQ4_NL]: 'iq4_nl',
  [GGMLType.IQ4_XS]: 'iq4_xs',
};

/** How the kernels read a GGUF type, or undefined where they cannot. */
export function weightFormatOf(type: GGMLType): WeightFormat | undefined {
  return FORMATS[type];
}

/** Reads GGUF tensors by name and uploads them, raw, into GPU buffers. */
export class WeightLoader {
  private readonly byName: Map<string, GGUFTensorInfo>;

  constructor(private readonly gpu: GpuContext, private readonly source: ByteSource, file: GGUFFile) {
    this.byName = new Map(file.tensors.map((t) => [t.name, t]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /**
   * A 1-D or 2-D weight, uploaded as stored: [rows = dims[1], cols = dims[0]]. With regroup (the
   * kernels read int8 activations), Q5_0 and Q6_K rows of whole pairs of blocks are regrouped on
   * the way (Q5_0R, Q6_KR: src/model/regroup.ts), the same size.
   */
  async matrix(name: string, options: LoadLayout = {}): Promise<Weight> {
    const info = this.info(name);
    const format = storedFormat(info, options);
    const buffer = this.createBuffer(name, info.nBytes);
    await this.upload(info, buffer, 0, format);
    return { buffer, format, rows: info.dims[1] ?? 1, cols: info.dims[0] };
  }

  /**
   * The matrices `names`, stacked row-wise into one buffer (their rows in order, as Weight.parts),
   * so that linears reading the same x run as one dispatch; undefined unless they share a storage
   * type and row length and each is a whole number of words (a part must start on a word).
   */
  async stack(names: readonly string[], options: LoadLayout = {}): Promise<Weight | undefined> {
    const infos = names.map((name) => this.info(name));
    const [first] = infos;
    const alike = infos.every((i) => i.type === first.type && i.dims[0] === first.dims[0] && i.dims.length === 2 && i.nBytes % 4 === 0);
    const bytes = infos.reduce((sum, i) => sum + i.nBytes, 0);
    const limits = this.gpu.device.limits;
    if (!alike || bytes > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) return undefined;
    const format = storedFormat(first, options);
    const buffer = this.createBuffer(names.join('+'), bytes);
    let at = 0;
    for (const info of infos) {
      await this.upload(info, buffer, at, format);
      at += info.nBytes;
    }
    const parts = infos.map((i) => i.dims[1]);
    return { buffer, format, rows: parts.reduce((a, b) => a + b, 0), cols: first.dims[0], parts };
  }

  /** Small vectors (biases), converted to f32 on the way and laid end to end in one buffer (a stacked weight's bias). */
  async vectorF32(...names: string[]): Promise<GPUBuffer> {
    const vectors = await Promise.all(names.map((name) => this.hostVector(name)));
    const values = new Float32Array(vectors.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of vectors) {
      values.set(v, at);
      at += v.length;
    }
    const buffer = this.createBuffer(names.join('+'), values.byteLength);
    this.gpu.device.queue.writeBuffer(buffer, 0, values);
    return buffer;
  }

  /** A small F32/F16 vector read into host memory as f32 (RoPE frequency factors, biases). */
  async hostVector(name: string): Promise<Float32Array<ArrayBuffer>> {
    const info = this.info(name);
    // Copied into a fresh buffer: a source may hand out views into a larger (pooled) one.
    const bytes = new Uint8Array(await this.source.read(info.offset, info.nBytes));
    if (info.type === GGMLType.F32) return new Float32Array(bytes.buffer);
    if (info.type === GGMLType.F16) return halfToFloat(new Uint16Array(bytes.buffer));
    if (info.type === GGMLType.BF16) return new Float32Array(Uint32Array.from(new Uint16Array(bytes.buffer), (h) => h << 16).buffer);
    throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Vector ${name} is ${ggmlTypeName(info.type)}; expected F32, F16 or BF16. The file is unusual; convert it with a current llama.cpp.`);
  }

  /** Tensor `info`'s bytes into `buffer` from byte `offset` (a multiple of 4), in chunks, regrouped as `format` asks. */
  private async upload(info: GGUFTensorInfo, buffer: GPUBuffer, offset: number, format: WeightFormat): Promise<void> {
    const regrouped = Object.values(REGROUPED).find((r) => r.format === format);
    // Chunks of whole regrouped pairs (both pair sizes are whole words).
    const pair = regrouped?.pairBytes ?? 4;
    const chunk = pair * Math.floor(UPLOAD_CHUNK / pair);
    for (let done = 0; done < info.nBytes; done += chunk) {
      const bytes = await this.source.read(info.offset + done, Math.min(chunk, info.nBytes - done));
      writePadded(this.gpu.device.queue, buffer, offset + done, regrouped ? regrouped.regroup(bytes) : bytes);
    }
  }

  private info(name: string): GGUFTensorInfo {
    const info = this.byName.get(name);
    if (!info) throw new LanternError('BAD_MODEL_FILE', `The model file has no tensor ${name}; it is incomplete or not a model of its architecture.`, { tensor: name });
    return info;
  }

  private createBuffer(label: string, nBytes: number): GPUBuffer {
    const limits = this.gpu.device.limits;
    if (nBytes > limits.maxStorageBufferBindingSize || nBytes > limits.maxBufferSize) {
      throw new LanternError(
        'ADAPTER_LIMITS',
        `Tensor ${label} needs ${nBytes} bytes in one buffer but this GPU allows ${Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)}; choose a smaller model.`,
        { tensor: label, bytes: nBytes },
      );
    }
    return this.gpu.memory.createBuffer('weights', { label, size: align4(nBytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  }
}

/** How a weight is laid out on the GPU, beyond its GGUF type. */
export interface LoadLayout {
  /** Regroup Q5_0 into Q5_0R and Q6_K into Q6_KR where the rows allow (whole pairs of blocks). */
  regroup?: boolean;
}

/** The formats regrouped at load (src/model/regroup.ts), by the format they come from: each pair of blocks, its elements and bytes. */
const REGROUPED: Partial<Record<WeightFormat, { format: WeightFormat; pairElements: number; pairBytes: number; regroup: (bytes: Uint8Array) => Uint8Array }>> = {
  q5_0: { format: 'q5_0r', pairElements: 64, pairBytes: Q5_0R_PAIR_BYTES, regroup: regroupQ5_0 },
  q6_k: { format: 'q6_kr', pairElements: 512, pairBytes: Q6_KR_PAIR_BYTES, regroup: regroupQ6_K },
};

/** The format a tensor is uploaded as: its own, or a regrouped one where asked and its rows are whole pairs of blocks. */
function storedFormat(info: GGUFTensorInfo, layout: LoadLayout): WeightFormat {
  const format = formatOf(info);
  const regrouped = REGROUPED[format];
  return layout.regroup && regrouped && info.dims[0] % regrouped.pairElements === 0 ? regrouped.format : format;
}

/** How the kernels read a tensor of this GGUF type, or a clear refusal. */
function formatOf(info: GGUFTensorInfo): WeightFormat {
  const format = FORMATS[info.type];
  if (!format) {
    throw new LanternError(
      'UNSUPPORTED_TENSOR_TYPE',
      `Tensor ${info.name} is ${ggmlTypeName(info.type)}, which this build of Lantern cannot run yet; use a GGUF of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or IQ4_XS weights.`,
      { tensor: info.name, type: info.type },
    );
  }
  return format;
}

/** queue.writeBuffer wants sizes in multiples of 4; the last chunk of an odd-sized tensor is padded. */
function writePadded(queue: GPUQueue, buffer: GPUBuffer, offset: number, bytes: Uint8Array): void {
  if (bytes.byteLength % 4 === 0) {
    queue.writeBuffer(buffer, offset, bytes as Uint8Array<ArrayBuffer>);
    return;
  }
  const padded = new Uint8Array(align4(bytes.byteLength));
  padded.set(bytes);
  queue.writeBuffer(buffer, offset, padded);
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
