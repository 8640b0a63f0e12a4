import { UniformLayout } from '../gpu/uniforms.ts';
import type { Kernels, Op } from './ops.ts';

/** Most candidates one top-k pass returns. */
export const TOPK_MAX = 256;

/** Word of the result that counts the NaN and ±Inf logits (a numeric fault when not 0). */
export const TOPK_NON_FINITE = 2 * TOPK_MAX;

/** Words of the result buffer: ids, logit bits, the non-finite count, padded to 16 bytes. */
export const TOPK_RESULT_WORDS = 2 * TOPK_MAX + 4;

const PARAMS = new UniformLayout('Params', { n: 'u32', k: 'u32' });

/**
 * Top-k selection on the GPU (shaders/topk.wgsl): the k largest finite of [n] f32 logits, best
 * first, written to `result` as [TOPK_MAX] u32 ids then [TOPK_MAX] f32 logit bits, then at
 * TOPK_NON_FINITE the count of NaN and ±Inf logits. Picks past the last finite logit are
 * 0xffffffff. `k` is set per step with setK, before the step is submitted.
 */
export interface TopKOp extends Op {
  setK(k: number): void;
}

/**
 * `result` must hold TOPK_RESULT_WORDS words. With `mask` ([ceil(n / 32)] u32, bit i & 31 of word
 * i >> 5) only allowed ids are picked, and picks past the last allowed finite logit are 0xffffffff.
 */
export async function topK(kernels: Kernels, logits: GPUBuffer, n: number, result: GPUBuffer, mask?: GPUBuffer): Promise<TopKOp> {
  const { device } = kernels.gpu;
  const pipeline = await kernels.pipeline('topk', mask ? ['MASK'] : [], PARAMS, { WG: 256, K_MAX: TOPK_MAX });
  // Its own uniform buffer rather than Kernels.uniform's shared ones: k changes between steps.
  const params = kernels.gpu.memory.createBuffer('activations', { label: 'uniform topk Params', size: PARAMS.byteSize, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const op = kernels.op(pipeline, kernels.bindGroup(pipeline, [params, logits, result, mask]), () => [1]);
  return {
    name: op.name,
    encode: (pass, nTokens) => op.encode(pass, nTokens),
    setK(k) {
      if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(TOPK_MAX, n))) throw new Error(`top-k takes 1..${Math.min(TOPK_MAX, n)} candidates, not ${k}`);
      device.queue.writeBuffer(params, 0, PARAMS.pack({ n, k }));
    },
  };
}

/**
 * The CPU twin: the k largest finite logits (fewer when fewer are finite), value descending then
 * index ascending, in float64, and how many logits are NaN or ±Inf.
 */
export function topKReference(logits: ArrayLike<number>, k: number, mask?: Uint32Array): { ids: number[]; values: number[]; nonFinite: number } {
  const all = Array.from({ length: logits.length }, (_, i) => i);
  const nonFinite = all.filter((i) => !Number.isFinite(logits[i])).length;
  const finite = all.filter((i) => Number.isFinite(logits[i]) && (!mask || (mask[i >>> 5] >>> (i & 31)) & 1));
  const ids = finite.sort((a, b) => logits[b] - logits[a] || a - b).slice(0, k);
  return { ids, values: ids.map((i) => logits[i]), nonFinite };
}
