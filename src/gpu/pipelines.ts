import { LanternError } from '../errors.ts';

/**
 * One cache of compute pipelines, keyed by a readable variant name such as `matvec:f16:wg64`.
 * The name is also the GPU object's label, so validation errors name the kernel. A device kept
 * across models (Runtime.load on a GpuContext) keeps its cache and the next model reuses its
 * pipelines, so the name must say everything that shapes the code: get() checks that it does.
 */
export interface PipelineSource {
  code: string;
  constants?: Record<string, number>;
}

export class PipelineCache {
  /** Name → the pipeline, and the code and constants it was built from. */
  private readonly pipelines = new Map<string, { source: string; pipeline: Promise<GPUComputePipeline> }>();

  constructor(private readonly device: GPUDevice) {}

  get(name: string, build: () => PipelineSource): Promise<GPUComputePipeline> {
    const { code, constants } = build();
    const source = `${code}\n${JSON.stringify(constants ?? {})}`;
    const cached = this.pipelines.get(name);
    if (cached) {
      if (cached.source !== source) throw new LanternError('GPU_ERROR', `Two different kernels are both named ${name}; this is a bug in Lantern (a variant missing from the name), please report it.`, { kernel: name });
      return cached.pipeline;
    }
    const module = this.device.createShaderModule({ label: name, code });
    const pipeline = this.device
      .createComputePipelineAsync({ label: name, layout: 'auto', compute: { module, entryPoint: 'main', constants } })
      .catch(async (e: Error) => {
        const info = await module.getCompilationInfo();
        const messages = info.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
        throw new LanternError('GPU_ERROR', `The GPU could not build kernel ${name} (${e.message}); this is a bug in Lantern or the browser's WebGPU, please report it.${messages ? `\n${messages}` : ''}`, { kernel: name });
      });
    this.pipelines.set(name, { source, pipeline });
    return pipeline;
  }
}
