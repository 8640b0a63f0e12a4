import { decoderConfig, type ModelConfig, ropeConfig, slidingWindows } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface Gemma3Config extends ModelConfig {
  /** q is scaled by this before q·k (the head size's, or n_embd / n_head's for the 27B, ^-1/2). */
  attentionScale: number;
  /** Logits soft-capped at cap·tanh(l/cap) where final_logit_softcapping is set (Gemma 3 has none by default). */
  finalSoftcap?: number;
}

/**
 * Gemma 3: Gemma 2's sandwich block with per-head q/k RMSNorms instead of score soft-capping, and
 * five sliding-window layers for each global one (attention.sliding_window, or the per-layer
 * sliding_window_pattern), which rotate at rope.freq_base_swa (10000) unscaled while global
 * layers take rope.freq_base and its scaling.
 */
export const gemma3: Family<Gemma3Config> = {
  architectures: ['gemma3'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    const rope = ropeConfig(hp, c, true);
    const cap = hp.finite('final_logit_softcapping', 0);
    hp.require(cap >= 0, `a final_logit_softcapping of ${cap}`);
    return {
      ...c,
      windows: hp.finite('attention.sliding_window', 0) > 0 ? slidingWindows(hp, c, 6) : c.windows,
      rope: { ...rope, thetaSwa: hp.positive('rope.freq_base_swa', 10000), freqScaleSwa: 1 },
      attentionScale: 1 / Math.sqrt(c.nLayers === 62 ? c.nEmbd / c.nHeads : c.headDim),
      finalSoftcap: cap > 0 ? cap : undefined,
    };
  },
  async build(g) {
    await g.embed(Math.sqrt(g.c.nEmbd));
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('rms', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { qkNorm: 'head', scale: g.c.attentionScale });
      await g.norm('rms', blk(l, 'post_attention_norm'), 'h', 'xn');
      await g.add('x', 'xn');
      await g.norm('rms', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'geglu');
      await g.norm('rms', blk(l, 'post_ffw_norm'), 'h', 'xn');
      await g.add('x', 'xn');
    }
    await g.output('rms', { softcap: g.c.finalSoftcap });
  },
};
