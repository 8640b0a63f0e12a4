import { decoderConfig, type ModelConfig, ropeConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface SmolLM3Config extends ModelConfig {
  /** Every this-many-th layer (the 4th, 8th, ...) attends without RoPE (NoPE), as llama.cpp fixes it for SmolLM3. */
  noRopeLayerStep: number;
}

/** SmolLM3: Llama's block, with RoPE left out of every fourth layer. */
export const smollm3: Family<SmolLM3Config> = {
  architectures: ['smollm3'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    return { ...c, rope: ropeConfig(hp, c, false), noRopeLayerStep: 4 };
  },
  async build(g) {
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { rope: (l + 1) % g.c.noRopeLayerStep !== 0 });
      await g.add('x', 'h');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'swiglu');
      await g.add('x', 'h');
    }
    await g.output('rms');
  },
};
