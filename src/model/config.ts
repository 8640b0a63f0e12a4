import { LanternError } from '../errors.ts';
import type { GGUFFile } from './gguf.ts';

/**
 * Hyperparameters every model family fills from its GGUF metadata (src/runtime/models/*.ts). The
 * forward pass sizes every buffer from these, so each is checked here, before anything is allocated.
 */
export interface ModelConfig {
  architecture: string;
  name: string;
  nLayers: number;
  nEmbd: number;
  nFF: number;
  nHeads: number;
  nKvHeads: number;
  /** Dims of each query and key head (attention.key_length; n_embd / n_head by default). */
  headDim: number;
  /** Epsilon of the family's norms (RMSNorm or LayerNorm). */
  normEps: number;
  contextLength: number;
  vocabSize: number;
  /** RoPE as the family applies it; undefined for families with learned or no positions. */
  rope?: RopeConfig;
  /** Per layer, the sliding window of its attention (query p sees keys p − window < j ≤ p), or 0 for all keys. */
  windows: number[];
}

export interface RopeConfig {
  /** Leading dims of each head that rotate. */
  dims: number;
  theta: number;
  /** NeoX pairs (i, i + dims/2) rather than llama.cpp's adjacent pairs (2i, 2i + 1). */
  neox: boolean;
  /** The base of sliding-window layers, where the family gives them their own. */
  thetaSwa?: number;
  /** Positions are multiplied by this before rotating (linear RoPE scaling: 1 / rope.scaling.factor); 1 by default. */
  freqScale: number;
  /** freqScale of sliding-window layers, where the family keeps them unscaled (Gemma 3, OLMo 3). */
  freqScaleSwa?: number;
  /** Multiplies cos and sin (rope.scaling.attn_factor, Phi-3's LongRoPE); 1 by default. */
  attnFactor: number;
}

/** Upper bounds on what a file may ask for: far above any released model, far below what would exhaust memory. */
const LIMITS = {
  block_count: 1024,
  embedding_length: 1 << 16,
  feed_forward_length: 1 << 20,
  'attention.head_count': 1024,
  'attention.head_count_kv': 1024,
  'attention.key_length': 256, // the attention kernels' largest head
  context_length: 1 << 24,
  vocab_size: 1 << 22,
  'rope.dimension_count': 256,
  'attention.sliding_window': 1 << 24,
} as const satisfies Record<string, number>;

/**
 * Reads `ARCH.key` metadata with a default, and refuses values that cannot be what the key means:
 * the message names the key and says the file is damaged or not a model Lantern runs.
 */
export class Hyperparameters {
  readonly architecture: string;

  constructor(readonly file: GGUFFile) {
    const architecture = file.metadata.get('general.architecture');
    if (typeof architecture !== 'string') {
      throw new LanternError('BAD_MODEL_FILE', 'The model file has no general.architecture string; it is damaged or was not written by a GGUF converter.', { key: 'general.architecture' });
    }
    this.architecture = architecture;
  }

  has(key: string): boolean {
    return this.file.metadata.has(this.key(key));
  }

  /** A whole number from 1 to `max` (LIMITS for the common keys). */
  count(key: string, fallback?: number, max: number = (LIMITS as Record<string, number>)[key] ?? 2 ** 32): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v < 1 || v > max) this.refuse(key, v, `a whole number from 1 to ${max}`);
    return v;
  }

  /** A finite number greater than 0. */
  positive(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isFinite(v) || v <= 0) this.refuse(key, v, 'a finite number above 0');
    return v;
  }

  /** A finite number of either sign, or 0. */
  finite(key: string, fallback: number): number {
    const v = this.number(key, fallback);
    if (!Number.isFinite(v)) this.refuse(key, v, 'a finite number');
    return v;
  }

  flag(key: string, fallback: boolean): boolean {
    const v = this.file.metadata.get(this.key(key));
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.refuse(key, v, 'true or false');
    return v;
  }

  /** A per-layer array of booleans (e.g. which layers slide), undefined when absent. */
  layerFlags(key: string, nLayers: number): boolean[] | undefined {
    const v = this.file.metadata.get(this.key(key));
    if (v === undefined || typeof v === 'number' || typeof v === 'bigint') return undefined;
    if (!Array.isArray(v) || v.length !== nLayers || !v.every((b) => typeof b === 'boolean')) {
      this.refuse(key, v, `${nLayers} booleans, one per layer`);
    }
    return v as boolean[];
  }

  /** A check on values that hang together (head counts that divide, shapes that agree). */
  require(ok: boolean, what: string): void {
    if (!ok) throw new LanternError('BAD_MODEL_FILE', `The model's hyperparameters do not fit together: ${what}. The file is damaged or not a model Lantern runs.`, { architecture: this.architecture });
  }

  private number(key: string, fallback?: number): number {
    const v = this.file.metadata.get(this.key(key));
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) {
      throw new LanternError('BAD_MODEL_FILE', `The model file lacks ${this.key(key)}; it is damaged or was not written by a GGUF converter Lantern knows.`, { key: this.key(key) });
    }
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    return this.refuse(key, v, 'a number');
  }

  private key(key: string): string {
    return key.startsWith('general.') || key.startsWith('tokenizer.') ? key : `${this.architecture}.${key}`;
  }

  private refuse(key: string, value: unknown, wanted: string): never {
    const shown = typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' ? String(value) : Array.isArray(value) || ArrayBuffer.isView(value) ? 'an array' : typeof value;
    throw new LanternError('BAD_MODEL_FILE', `${this.key(key)} is ${shown}, but it must be ${wanted}; the file is damaged or not a model Lantern runs.`, { key: this.key(key) });
  }
}

/**
 * The hyperparameters every decoder shares, read as llama.cpp reads them (llama_model::load_hparams):
 * layers, widths, heads, head size, context, vocabulary (the token list's length, which
 * token_embd's rows must match). Families add their own keys on top.
 */
export function decoderConfig(hp: Hyperparameters, normEpsKey: 'attention.layer_norm_rms_epsilon' | 'attention.layer_norm_epsilon', normEpsDefault?: number): ModelConfig {
  const nEmbd = hp.count('embedding_length');
  const nHeads = hp.count('attention.head_count');
  const nKvHeads = hp.count('attention.head_count_kv', nHeads);
  hp.require(nHeads % nKvHeads === 0, `${nHeads} query heads are not a multiple of ${nKvHeads} key/value heads`);
  const headDim = hp.count('attention.key_length', nEmbd % nHeads === 0 ? nEmbd / nHeads : undefined);
  const valueDim = hp.count('attention.value_length', headDim);
  hp.require(valueDim === headDim, `values of ${valueDim} dims and keys of ${headDim} per head (Lantern needs them equal)`);
  hp.require(headDim % 4 === 0, `heads of ${headDim} dims (Lantern needs a multiple of 4)`);
  const nLayers = hp.count('block_count');
  const tokens = hp.file.metadata.get('tokenizer.ggml.tokens');
  const embd = hp.file.tensors.find((t) => t.name === 'token_embd.weight');
  const vocabSize = hp.count('vocab_size', Array.isArray(tokens) ? tokens.length : embd?.dims[1]);
  if (Array.isArray(tokens)) hp.require(tokens.length === vocabSize, `a vocabulary of ${vocabSize} tokens and a token list of ${tokens.length}`);
  return {
    architecture: hp.architecture,
    name: typeof hp.file.metadata.get('general.name') === 'string' ? (hp.file.metadata.get('general.name') as string) : hp.architecture,
    nLayers,
    nEmbd,
    nFF: hp.count('feed_forward_length'),
    nHeads,
    nKvHeads,
    headDim,
    normEps: hp.positive(normEpsKey, normEpsDefault),
    contextLength: hp.count('context_length', 2048),
    vocabSize,
    windows: new Array<number>(nLayers).fill(0),
  };
}

/**
 * RoPE of `dims` (rope.dimension_count, the whole head by default) at base rope.freq_base, with
 * linear scaling (rope.scaling.factor) and rope.scaling.attn_factor as llama.cpp reads them.
 * LongRoPE's per-frequency factors are tensors (rope_freqs, rope_factors_long/short: graph.ts).
 */
export function ropeConfig(hp: Hyperparameters, config: ModelConfig, neox: boolean): RopeConfig {
  const dims = hp.count('rope.dimension_count', config.headDim);
  hp.require(dims % 2 === 0 && dims <= config.headDim, `RoPE over ${dims} dims of ${config.headDim}-dim heads`);
  const scaling = hp.file.metadata.get(`${hp.architecture}.rope.scaling.type`) ?? 'linear';
  if (scaling !== 'linear' && scaling !== 'none' && scaling !== 'longrope') {
    throw new LanternError('UNSUPPORTED_ARCH', `This model scales RoPE with "${String(scaling)}", which Lantern does not run yet (it runs linear scaling and LongRoPE). Choose a model without it.`, { key: `${hp.architecture}.rope.scaling.type` });
  }
  const factor = hp.has('rope.scaling.factor') ? hp.finite('rope.scaling.factor', 0) : hp.finite('rope.scale_linear', 0);
  hp.require(factor >= 0, `a RoPE scaling factor of ${factor}`);
  return {
    dims,
    theta: hp.positive('rope.freq_base', 10000),
    neox,
    freqScale: factor === 0 ? 1 : 1 / factor,
    attnFactor: hp.positive('rope.scaling.attn_factor', 1),
  };
}

/**
 * Sliding-window layers as llama.cpp lays them out: attention.sliding_window (or `defaultWindow`),
 * on the layers the per-layer attention.sliding_window_pattern array marks, or else on all but the
 * last of every `pattern` layers (Gemma 2: 2, Gemma 3: 6).
 */
export function slidingWindows(hp: Hyperparameters, config: ModelConfig, pattern: number, defaultWindow?: number): number[] {
  const window = hp.has('attention.sliding_window') || defaultWindow === undefined ? hp.count('attention.sliding_window', defaultWindow) : defaultWindow;
  const marked = hp.layerFlags('attention.sliding_window_pattern', config.nLayers);
  const every = marked ? 0 : hp.count('attention.sliding_window_pattern', pattern);
  return config.windows.map((_, l) => ((marked ? marked[l] : l % every < every - 1) ? window : 0));
}
