import { UniformLayout } from '../gpu/uniforms.ts';
import type { Kernels, Op } from './ops.ts';

/** Most candidates one top-k pass returns. */
export const TOPK_MAX = 256;

const PARAMS = new UniformLayout('Params', { n: 'u32', k: 'u32' });

/**
 * Top-k selection on the GPU (shaders/topk.wgsl): the k largest of [n] f32 logits, best first,
 * written to `result` as [TOPK_MAX] u32 ids then [TOPK_MAX] f32 logit bits. `k` is set per step
 * with setK, before the step is submitted.
 */
export interface TopKOp extends Op {
  setK(k: number): void;
}

/** `result` must hold 2 * TOPK_MAX words. */
export async function topK(kernels: Kernels, logits: GPUBuffer, n: number, result: GPUBuffer): Promise<TopKOp> {
  const { device } = kernels.gpu;
  const pipeline = await kernels.pipeline('topk', [], PARAMS, { WG: 256, K_MAX: TOPK_MAX });
  // Its own uniform buffer rather than Kernels.uniform's shared ones: k changes between steps.
  const params = device.createBuffer({ label: 'uniform topk Params', size: PARAMS.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const op = kernels.op(pipeline, kernels.bindGroup(pipeline, [params, logits, result]), () => [1]);
  return {
    name: op.name,
    encode: (pass, nTokens) => op.encode(pass, nTokens),
    setK(k) {
      if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(TOPK_MAX, n))) throw new Error(`top-k takes 1..${Math.min(TOPK_MAX, n)} candidates, not ${k}`);
      device.queue.writeBuffer(params, 0, PARAMS.pack({ n, k }));
    },
  };
}

/** The CPU twin: the k largest, value descending then index ascending, in float64. */
export function topKReference(logits: ArrayLike<number>, k: number): { ids: number[]; values: number[] } {
  const ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k);
  return { ids, values: ids.map((i) => logits[i]) };
}
