import { decoderConfig, ropeConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

/**
 * Llama, and Mistral: pre-norm RMSNorm blocks, RoPE on adjacent pairs (with Llama 3's rope_freqs
 * where the file has them), SwiGLU. Keys: the shared decoder keys, attention.layer_norm_rms_epsilon
 * (1e-5), rope.freq_base (10000), rope.dimension_count (the head).
 */
export const llama: Family = {
  architectures: ['llama', 'mistral'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-5);
    return { ...c, rope: ropeConfig(hp, c, false) };
  },
  async build(g) {
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h');
      await g.add('x', 'h');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'swiglu');
      await g.add('x', 'h');
    }
    await g.output('rms');
  },
};
