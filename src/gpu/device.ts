import { LanternError } from '../errors.ts';
import { GpuMemory } from './memory.ts';
import { PipelineCache } from './pipelines.ts';

/** The GPU device and what the rest of the runtime needs to know about it. */
export interface GpuContext {
  readonly device: GPUDevice;
  /** e.g. "nvidia (ampere)" or "google (swiftshader)". */
  readonly adapterName: string;
  readonly shaderF16: boolean;
  /**
   * The subgroup size when the device has the `subgroups` feature and the adapter reports one
   * fixed size (kernels then reduce within a subgroup, with no workgroup barrier).
   */
  readonly subgroupSize: number | undefined;
  /** A software adapter running on the CPU (SwiftShader, or anything marked as a fallback). */
  readonly cpuAdapter: boolean;
  /** WGSL has dot4I8Packed and pack4xI8 (the packed_4x8_integer_dot_product language feature). */
  readonly packedInt8: boolean;
  readonly pipelines: PipelineCache;
  /** Every buffer the runtime creates, by category (create them with memory.createBuffer). */
  readonly memory: GpuMemory;
  /** Resolves when the device is lost, with a DEVICE_LOST error. */
  readonly lost: Promise<LanternError>;
  /** First uncaptured GPU error since the last call, if any (errors are watched, not ignored). */
  takeError(): LanternError | undefined;
  /**
   * Submits to the device's queue. The runtime's work goes through here, so that a profiler can
   * set `onSubmit` to put its own command buffers around each submit (runtime/bench.ts).
   */
  submit(buffers: GPUCommandBuffer[]): void;
  onSubmit: ((buffers: GPUCommandBuffer[]) => GPUCommandBuffer[]) | undefined;
}

/** Requests an adapter and a device with the adapter's full buffer limits. */
export async function acquireGpu(gpu: GPU | undefined): Promise<GpuContext> {
  if (!gpu) {
    throw new LanternError('NO_WEBGPU', 'This browser has no WebGPU. Use a current Chrome, Edge or Safari, or enable WebGPU in the browser settings.');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new LanternError('NO_WEBGPU', 'WebGPU is present but no GPU adapter is available. Update the graphics driver, or enable hardware acceleration in the browser.');
  }
  const shaderF16 = adapter.features.has('shader-f16');
  const wanted: (keyof GPUSupportedLimits)[] = [
    'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
    'maxStorageBuffersPerShaderStage', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
  ];
  const requiredLimits: Record<string, number> = {};
  for (const key of wanted) requiredLimits[key] = adapter.limits[key] as number;
  const requiredFeatures: GPUFeatureName[] = [];
  if (shaderF16) requiredFeatures.push('shader-f16');
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  // subgroupMinSize/MaxSize are newer than @webgpu/types' GPUAdapterInfo in some versions.
  const sizes = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const subgroupSize = adapter.features.has('subgroups') && sizes.subgroupMinSize !== undefined && sizes.subgroupMinSize === sizes.subgroupMaxSize ? sizes.subgroupMinSize : undefined;
  if (subgroupSize) requiredFeatures.push('subgroups' as GPUFeatureName);

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'lantern' });
  } catch (e) {
    throw new LanternError('ADAPTER_LIMITS', `The GPU refused a device with its own limits (${(e as Error).message}); try another browser or GPU.`);
  }

  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture || info.device || info.description].filter(Boolean).join(' ') || 'unknown adapter';
  let pending: LanternError | undefined;
  device.addEventListener('uncapturederror', (event) => {
    const error = (event as GPUUncapturedErrorEvent).error;
    pending ??= new LanternError('GPU_ERROR', `The GPU reported an error: ${error.message}. This is a bug in Lantern; please report it with the model you used.`);
  });
  const lost = device.lost.then(
    (info) => new LanternError('DEVICE_LOST', `The GPU device was lost (${info.reason}: ${info.message}). Load the model again; if it repeats, close other GPU-heavy tabs.`),
  );

  const context: GpuContext = {
    device,
    adapterName,
    shaderF16,
    subgroupSize,
    cpuAdapter: info.isFallbackAdapter === true || /swiftshader|llvmpipe|software|cpu/i.test(`${adapterName} ${info.description}`),
    packedInt8: gpu.wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false,
    pipelines: new PipelineCache(device),
    memory: new GpuMemory(device),
    lost,
    takeError() {
      const e = pending;
      pending = undefined;
      return e;
    },
    onSubmit: undefined,
    submit(buffers) {
      device.queue.submit(this.onSubmit ? this.onSubmit(buffers) : buffers);
    },
  };
  return context;
}

/**
 * `gpu`'s device for one more model: its own memory account and profiler hook, the device's
 * pipelines (those earlier models compiled are reused, which a CPU adapter takes seconds over each).
 */
export function shareGpu(gpu: GpuContext): GpuContext {
  return { ...gpu, memory: new GpuMemory(gpu.device), onSubmit: undefined };
}
