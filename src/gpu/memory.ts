/**
 * The GPU memory account: every buffer the runtime creates goes through GpuMemory.createBuffer with
 * its category, so that what a model holds on the GPU can be told, and checked against a budget.
 */

/** What a buffer holds: model weights, the KV cache, activations and scratch (uniforms, tables, int8 copies), or host-readable staging. */
export type MemoryCategory = 'weights' | 'kvCache' | 'activations' | 'staging';

/** Bytes of GPU buffers by category, and in all. */
export interface GpuBytes {
  weights: number;
  kvCache: number;
  activations: number;
  staging: number;
  total: number;
}

export function gpuBytes(parts: Omit<GpuBytes, 'total'>): GpuBytes {
  return { ...parts, total: parts.weights + parts.kvCache + parts.activations + parts.staging };
}

/** Counts live buffers by category: a buffer counts from its creation until destroy(). */
export class GpuMemory {
  private readonly live: Record<MemoryCategory, number> = { weights: 0, kvCache: 0, activations: 0, staging: 0 };
  private readonly buffers = new Set<GPUBuffer>();

  constructor(private readonly device: GPUDevice) {}

  createBuffer(category: MemoryCategory, descriptor: GPUBufferDescriptor): GPUBuffer {
    const buffer = this.device.createBuffer(descriptor);
    const size = buffer.size;
    this.live[category] += size;
    // Counted down once, however often destroy() is called (destroying a buffer twice is legal).
    const destroy = buffer.destroy.bind(buffer);
    let counted = true;
    this.buffers.add(buffer);
    buffer.destroy = () => {
      if (counted) this.live[category] -= size;
      counted = false;
      this.buffers.delete(buffer);
      destroy();
    };
    return buffer;
  }

  /** Destroys every buffer still alive: a model's whole share of a device that outlives it. */
  destroyAll(): void {
    for (const buffer of [...this.buffers]) buffer.destroy();
  }

  /** The buffers alive now, by category. */
  bytes(): GpuBytes {
    return gpuBytes({ ...this.live });
  }
}
