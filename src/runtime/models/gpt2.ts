import { decoderConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

/**
 * GPT-2: learned absolute positions (position_embd) instead of RoPE, pre-norm LayerNorm with bias,
 * fused attn_qkv with bias, a GELU MLP with biases, tied or separate output. Keys: the shared
 * decoder keys and attention.layer_norm_epsilon.
 */
export const gpt2: Family = {
  architectures: ['gpt2'],
  config: (hp) => decoderConfig(hp, 'attention.layer_norm_epsilon'),
  async build(g) {
    await g.embed();
    await g.positions();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('layer', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h');
      await g.add('x', 'h');
      await g.norm('layer', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'gelu');
      await g.add('x', 'h');
    }
    await g.output('layer');
  },
};
