import { decoderConfig, ropeConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

/**
 * Qwen3: Llama's block with an RMSNorm over each head of q and k before NeoX RoPE (attn_q_norm,
 * attn_k_norm of head_dim), and heads whose size (attention.key_length) need not be n_embd / n_head.
 */
export const qwen3: Family = {
  architectures: ['qwen3'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    return { ...c, rope: ropeConfig(hp, c, true) };
  },
  async build(g) {
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { qkNorm: 'head' });
      await g.add('x', 'h');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'swiglu');
      await g.add('x', 'h');
    }
    await g.output('rms');
  },
};
