import { decoderConfig, type ModelConfig, ropeConfig } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface Phi3Config extends ModelConfig {
  /** The context the model was trained at before LongRoPE (rope.scaling.original_context_length). */
  originalContext: number;
}

/**
 * Phi-3, Phi-3.5 and Phi-4-mini: Llama's block with a fused attn_qkv, a fused gate+up (ffn_up of
 * twice n_ff rows, gate first) and NeoX RoPE, with LongRoPE's factors (rope_factors_short, or
 * rope_factors_long when the context exceeds the original one). phi3.attention.sliding_window is
 * read by llama.cpp but not applied (it runs Phi-3 with full attention); Lantern does the same.
 */
export const phi3: Family<Phi3Config> = {
  architectures: ['phi3'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-5);
    return { ...c, rope: ropeConfig(hp, c, true), originalContext: hp.count('rope.scaling.original_context_length', c.contextLength) };
  },
  async build(g) {
    const factors = g.c.contextLength > g.c.originalContext ? 'rope_factors_long.weight' : 'rope_factors_short.weight';
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { ropeFactors: g.has(factors) ? factors : undefined });
      await g.add('x', 'h');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'swiglu');
      await g.add('x', 'h');
    }
    await g.output('rms');
  },
};
