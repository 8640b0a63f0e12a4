import { LanternError } from '../errors.ts';

/**
 * One cache of compute pipelines, keyed by a readable variant name such as `matvec:f16:wg64`.
 * The name is also the GPU object's label, so validation errors name the kernel.
 */
export interface PipelineSource {
  code: string;
  constants?: Record<string, number>;
}

export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

  constructor(private readonly device: GPUDevice) {}

  get(name: string, build: () => PipelineSource): Promise<GPUComputePipeline> {
    let pipeline = this.pipelines.get(name);
    if (!pipeline) {
      const { code, constants } = build();
      const module = this.device.createShaderModule({ label: name, code });
      pipeline = this.device
        .createComputePipelineAsync({ label: name, layout: 'auto', compute: { module, entryPoint: 'main', constants } })
        .catch(async (e: Error) => {
          const info = await module.getCompilationInfo();
          const messages = info.messages.map((m) => `${m.type} at ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
          throw new LanternError('GPU_ERROR', `The GPU could not build kernel ${name} (${e.message}); this is a bug in Lantern or the browser's WebGPU, please report it.${messages ? `\n${messages}` : ''}`, { kernel: name });
        });
      this.pipelines.set(name, pipeline);
    }
    return pipeline;
  }
}
