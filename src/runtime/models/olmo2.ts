import { decoderConfig, ropeConfig, slidingWindows } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

/**
 * OLMo 2 (and OLMo 3's sliding-window layers): no norm before attention or the MLP, RMSNorm after
 * each (post_attention_norm, post_ffw_norm), and q/k norms over the whole q and k projections
 * before NeoX RoPE. Sliding windows where attention.sliding_window is set: three of every four
 * layers (attention.sliding_window_pattern), with their own unscaled RoPE (rope.freq_base_swa).
 */
export const olmo2: Family = {
  architectures: ['olmo2'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_rms_epsilon', 1e-6);
    const rope = ropeConfig(hp, c, true);
    if (!(hp.finite('attention.sliding_window', 0) > 0)) return { ...c, rope };
    return { ...c, windows: slidingWindows(hp, c, 4), rope: { ...rope, thetaSwa: hp.positive('rope.freq_base_swa', rope.theta), freqScaleSwa: 1 } };
  },
  async build(g) {
    await g.embed();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.attention(l, 'x', 'h', { qkNorm: 'whole' });
      await g.norm('rms', blk(l, 'post_attention_norm'), 'h', 'xn');
      await g.add('x', 'xn');
      await g.ffn(l, 'x', 'h', 'swiglu');
      await g.norm('rms', blk(l, 'post_ffw_norm'), 'h', 'xn');
      await g.add('x', 'xn');
    }
    await g.output('rms');
  },
};
