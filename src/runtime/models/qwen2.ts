import { decoderConfig, ropeConfig } from '../../model/config.ts';
import { type Family } from './family.ts';
import { llama } from './llama.ts';

/** Qwen2 (and Qwen2.5): Llama's block with NeoX RoPE and biases on q, k and v (which the attention block adds where the file has them). */
export const qwen2: Family = {
  architectures: ['qwen2'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    return { ...c, rope: ropeConfig(hp, c, true) };
  },
  build: llama.build,
};
