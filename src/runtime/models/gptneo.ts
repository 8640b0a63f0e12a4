import { decoderConfig, type ModelConfig, slidingWindows } from '../../model/config.ts';
import { blk, type Family } from './family.ts';

interface GptNeoConfig extends ModelConfig {
  /** Scores are q·k times this: 1 for GPT-Neo, which does not divide by sqrt(head_dim). */
  attentionScale: number;
}

/**
 * EleutherAI's GPT-Neo (llama.cpp has no such architecture; Lantern's converter writes it from a
 * Hugging Face GPTNeoForCausalLM, docs/gguf-gpt-neo.md): GPT-2's learned absolute positions,
 * LayerNorms and GELU MLP with biases, but separate q/k/v projections without bias (out_proj has
 * one), scores NOT scaled by 1/sqrt(head_dim) (attention.scale, 1), and local layers that see the
 * last attention.sliding_window keys (query i, keys j with 0 <= i - j < window) on the layers
 * attention.sliding_window_pattern marks. Output tied to token_embd unless output.weight is there.
 */
export const gptneo: Family<GptNeoConfig> = {
  architectures: ['gpt-neo'],
  config(hp) {
    const c = decoderConfig(hp, 'attention.layer_norm_epsilon', 1e-5);
    // Which layers are local is spelt out: a default would have to guess HF's attention_types order.
    hp.require(hp.layerFlags('attention.sliding_window_pattern', c.nLayers) !== undefined, 'no attention.sliding_window_pattern (one boolean per layer, true where the layer is local)');
    return { ...c, windows: slidingWindows(hp, c, 2, 256), attentionScale: hp.positive('attention.scale', 1) };
  },
  async build(g) {
    await g.embed();
    await g.positions();
    for (let l = 0; l < g.c.nLayers; l++) {
      await g.norm('layer', blk(l, 'attn_norm'), 'x', 'xn');
      await g.attention(l, 'xn', 'h', { scale: g.c.attentionScale });
      await g.add('x', 'h');
      await g.norm('layer', blk(l, 'ffn_norm'), 'x', 'xn');
      await g.ffn(l, 'xn', 'h', 'gelu');
      await g.add('x', 'h');
    }
    await g.output('layer');
  },
};
