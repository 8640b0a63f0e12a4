import { decoderConfig, type ModelConfig, ropeConfig, slidingWindows } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface Gemma2Config extends ModelConfig {
  /** q is scaled by this before q·k (query_pre_attn_scalar^-1/2: the head size, or n_embd / n_head for the 27B). */
  attentionScale: number;
  /** Scores soft-capped at cap·tanh(s/cap) (attn_logit_softcapping, 50). */
  attnSoftcap: number;
  /** Logits soft-capped the same way (final_logit_softcapping, 30). */
  finalSoftcap: number;
}

/**
 * Gemma 2: the embedding scaled by sqrt(n_embd), sandwich RMSNorms (before and after attention and
 * the MLP), NeoX RoPE, GeGLU, soft-capped scores and logits, and a sliding window (4096 by
 * default) on every other layer, as llama.cpp reads them; head size from attention.key_length.
 * The output is always the token embedding: llama.cpp reads no output.weight for Gemma 2.
 */
export const gemma2: Family<Gemma2Config> = {
  architectures: ['gemma2'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    const rope = ropeConfig(hp, c, true);
    return {
      ...c,
      windows: slidingWindows(hp, c, 2, 4096),
      rope: { ...rope, thetaSwa: hp.positive('rope.freq_base_swa', rope.theta) },
      attentionScale: 1 / Math.sqrt(c.nLayers === 46 ? c.nEmbd / c.nHeads : c.headDim),
      attnSoftcap: hp.positive('attn_logit_softcapping', 50),
      finalSoftcap: hp.positive('final_logit_softcapping', 30),
    };
  },
  async build(g) {
    await g.embed(Math.sqrt(g.c.nEmbd));
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { scale: g.c.attentionScale, softcap: g.c.attnSoftcap });
      await g.norm('rms', blk(l, 'post_attention_norm'), 'h', 'xn');
      await g.add('x', 'xn');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'geglu');
      await g.norm('rms', blk(l, 'post_ffw_norm'), 'h', 'xn');
      await g.add('x', 'xn');
    }
    await g.output('rms', { softcap: g.c.finalSoftcap, tied: true });
  },
};
