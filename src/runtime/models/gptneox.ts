import { decoderConfig, type ModelConfig, ropeConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface GptNeoXConfig extends ModelConfig {
  /** x + attn(ln1(x)) + mlp(ln2(x)) in one step, rather than one after the other (use_parallel_residual). */
  parallelResidual: boolean;
}

/**
 * GPT-NeoX (Pythia): LayerNorm with bias, fused attn_qkv with bias, NeoX RoPE over the leading
 * rope.dimension_count dims of each head (partial rotary), a GELU MLP with biases, and the
 * parallel residual where use_parallel_residual says so. Keys: the shared decoder keys,
 * attention.layer_norm_epsilon, use_parallel_residual (false, as llama.cpp's default).
 */
export const gptneox: Family<GptNeoXConfig> = {
  architectures: ['gptneox'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_epsilon');
    return { ...c, rope: ropeConfig(hp, c, true), parallelResidual: hp.flag('use_parallel_residual', false) };
  },
  async build(g) {
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('layer', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h');
      if (g.c.parallelResidual) {
        await g.norm('layer', blk(l, 'ffn_norm'), 'x', 'xn');
        await g.ffn(l, 'xn', 'h2', 'gelu');
        await g.add('x', 'h2', 'h'); // (x + mlp) + attn, in llama.cpp's order
      } else {
        await g.add('x', 'h');
        await g.norm('layer', blk(l, 'ffn_norm'), 'x', 'xn');
        await g.ffn(l, 'xn', 'h', 'gelu');
        await g.add('x', 'h');
      }
    }
    await g.output('layer');
  },
};
