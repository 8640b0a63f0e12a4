import { LanternError } from '../../errors.ts';
import type { MetaValue } from '../gguf-writer.ts';
import { type ArchitecturePlan, type CheckpointTensor, ConfigReader, type HfConfig, meta, type TensorRecipe } from './plan.ts';

/**
 * Hugging Face architectures (config.json's `architectures[0]`) → the GGUF description the runtime's
 * families read (src/runtime/models/*.ts): the keys and tensors llama.cpp's convert_hf_to_gguf.py
 * writes for each, and, for GPT-Neo, which llama.cpp lacks, Lantern's own "gpt-neo"
 * (docs/gguf-gpt-neo.md). One planner per architecture, reading the config keys HF's modeling code
 * reads, with the same defaults.
 *
 * Where HF and llama.cpp lay a weight out differently the recipe says how to move it:
 * - GPT-2's Conv1D stores projections as [in, out]: transposed.
 * - GPT-NeoX fuses q|k|v per head ([n_head, 3, head_dim] rows); llama.cpp wants all q, then k, then v.
 * - Llama (and Mistral) rotate halves of each head in HF (rotate_half) but adjacent pairs in
 *   llama.cpp: q and k rows are permuted as convert's LlamaModel.permute does. Qwen2/3, Gemma and
 *   Phi-3 run NeoX RoPE in llama.cpp, which is HF's rotate_half: no permutation.
 * - Gemma's RMSNorm multiplies by (1 + w): GGUF holds w + 1.
 */

type Planner = (cfg: ConfigReader, ck: Checkpoint) => ArchitecturePlan;

/** Activations run as llama.cpp's (tanh-approximated) GELU, as its converter accepts them; and SiLU. */
const GELU = new Set(['gelu_new', 'gelu', 'gelu_pytorch_tanh', 'gelu_fast']);
const SILU = new Set(['silu', 'swish']);

/**
 * The checkpoint's tensors as the plan reads them: names under the prefix the architecture saves
 * them with ("model.", "transformer.", ...; none in some older checkpoints), each checked for
 * presence, dtype and shape before a recipe names it.
 */
class Checkpoint {
  readonly tensors: TensorRecipe[] = [];
  readonly metadata: Record<string, MetaValue> = {};
  /** "model." or "" as the checkpoint has it. */
  readonly prefix: string;

  constructor(
    readonly all: ReadonlyMap<string, CheckpointTensor>,
    readonly hfArchitecture: string,
    readonly architecture: string,
    prefixes: readonly string[],
    /** A tensor every checkpoint of the architecture has, found under one of the prefixes. */
    probe: string,
  ) {
    this.prefix = prefixes.find((p) => all.has(p + probe)) ?? prefixes[0];
    this.metadata['general.architecture'] = meta.string(architecture);
  }

  /** A key under the architecture's prefix: "llama.context_length". */
  key(name: string, value: MetaValue): void {
    this.metadata[`${this.architecture}.${name}`] = value;
  }

  has(name: string, root = false): boolean {
    return this.all.has(root ? name : this.prefix + name);
  }

  /** The checkpoint tensor `name` (under the prefix unless `root`), checked to be of `shape` (PyTorch order). */
  source(name: string, shape: readonly number[], root = false): string {
    const full = root ? name : this.prefix + name;
    const t = this.all.get(full);
    if (!t) {
      throw new LanternError(
        'BAD_MODEL_FILE',
        `The checkpoint has no tensor "${full}", which a ${this.hfArchitecture} with this config.json needs; the download is incomplete (a sharded checkpoint needs every model-*.safetensors file its index names) or the config belongs to another model: download the repository's files again.`,
        { tensor: full, architecture: this.hfArchitecture },
      );
    }
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      throw new LanternError('UNSUPPORTED_TENSOR_TYPE', `Tensor "${full}" is ${t.dtype}; Lantern reads checkpoints of F32, F16 or BF16 weights: choose a revision of the model stored in one of those.`, { tensor: full, type: t.dtype });
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new LanternError(
        'BAD_MODEL_FILE',
        `Tensor "${full}" is [${t.shape.slice(0, 8).join(', ')}${t.shape.length > 8 ? ', …' : ''}], but config.json's sizes make it [${shape.join(', ')}] for a ${this.hfArchitecture}; the weights and the config do not belong together: download both again from the same revision of the model.`,
        { tensor: full, shape: t.shape, expected: shape },
      );
    }
    return full;
  }

  /** A Linear weight, [out, in] in the checkpoint, [in, out] in GGUF. */
  linear(gguf: string, name: string, out: number, inp: number, options: { rows?: Int32Array; root?: boolean } = {}): void {
    this.tensors.push({ name: gguf, dims: [inp, out], from: [this.source(name, [out, inp], options.root)], rows: options.rows, quantizable: true });
  }

  /** GPT-2's Conv1D weight, stored [in, out]. */
  conv1d(gguf: string, name: string, inp: number, out: number): void {
    this.tensors.push({ name: gguf, dims: [inp, out], from: [this.source(name, [inp, out])], transpose: true, quantizable: true });
  }

  /** A 1-D tensor (norm weight, bias), kept F32. */
  vector(gguf: string, name: string, n: number, options: { add?: number; rows?: Int32Array } = {}): void {
    this.tensors.push({ name: gguf, dims: [n], from: [this.source(name, [n])], add: options.add, rows: options.rows, quantizable: false });
  }

  /** A tensor made from config.json's values. */
  values(gguf: string, values: Float32Array): void {
    this.tensors.push({ name: gguf, dims: [values.length], from: [], values, quantizable: false });
  }
}

/** A check on config values that must hang together (BAD_MODEL_FILE otherwise). */
function check(cfg: ConfigReader, ok: boolean, what: string): void {
  if (!ok) {
    throw new LanternError('BAD_MODEL_FILE', `config.json's sizes do not fit together for a ${cfg.architecture}: ${what}; the config is damaged: download it again from the model's repository.`, { architecture: cfg.architecture });
  }
}

/** A config value Lantern cannot run (UNSUPPORTED_ARCH), saying which. */
function unsupported(cfg: ConfigReader, what: string): LanternError {
  return new LanternError('UNSUPPORTED_ARCH', `This ${cfg.architecture} has ${what}, which Lantern does not run; choose another model.`, { architecture: cfg.architecture });
}

function activation(cfg: ConfigReader, key: string, allowed: ReadonlySet<string>, fallback: string): void {
  const act = cfg.string(key, fallback);
  if (!allowed.has(act)) throw unsupported(cfg, `${key} "${act}" (Lantern runs ${[...allowed].join(', ')} here)`);
}

/** general.name: the repository's name where config.json records it (_name_or_path), else the HF architecture. */
function generalName(cfg: ConfigReader, ck: Checkpoint): void {
  const path = cfg.raw('_name_or_path');
  const last = typeof path === 'string' ? path.replace(/\/+$/, '').split('/').pop()!.slice(0, 200) : '';
  const name = last !== '' ? last : cfg.architecture;
  ck.metadata['general.name'] = meta.string(name);
}

/** lm_head when the checkpoint has its own (tie_word_embeddings false and the tensor present). */
function untiedHead(cfg: ConfigReader, ck: Checkpoint, name: string, tieDefault: boolean): boolean {
  return !cfg.boolean('tie_word_embeddings', tieDefault) && ck.has(name, true);
}

/** The shared shape of a decoder with q/k/v heads. */
interface Heads {
  nEmbd: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

/**
 * Head counts and size. `headDimDefault` is the config class's own default for head_dim where it
 * has one (Qwen3: 128, Gemma 3: 256), which need not be hidden / heads; else hidden / heads.
 */
function heads(cfg: ConfigReader, nEmbd: number, nHeads: number, kvKey?: string, headDimKey?: string, headDimDefault?: number | 'none'): Heads {
  const nKvHeads = kvKey ? cfg.count(kvKey, nHeads) : nHeads;
  check(cfg, nHeads % nKvHeads === 0, `${nHeads} attention heads are not a multiple of ${nKvHeads} key/value heads`);
  const even = nEmbd % nHeads === 0 ? nEmbd / nHeads : undefined;
  const fallback = headDimDefault === 'none' ? undefined : (headDimDefault ?? even);
  const headDim = headDimKey ? cfg.count(headDimKey, fallback) : even;
  check(cfg, headDim !== undefined, `hidden size ${nEmbd} is not a multiple of ${nHeads} heads`);
  return { nEmbd, nHeads, nKvHeads, headDim: headDim! };
}

/**
 * Which layers attend locally, from a per-layer list (HF's `layer_types`, GPT-Neo's expanded
 * `attention_types`), checked against its length.
 */
function localFlags(cfg: ConfigReader, key: string, nLayers: number, local: string, global: readonly string[]): boolean[] | undefined {
  const list = cfg.raw(key);
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length !== nLayers || !list.every((t) => t === local || global.includes(t))) {
    throw cfg.bad(key, list, `${nLayers} entries (one per layer), each "${local}" or "${global[0]}"`);
  }
  return list.map((t) => t === local);
}

/** HF's `rope_parameters` (transformers 5) or `rope_scaling`, and rope_theta, for the global layers. */
interface Rope {
  theta: number;
  /** The rope_type (or type); "default" when there is none. */
  type: string;
  params: Record<string, unknown>;
  /** Sliding layers' own theta where rope_parameters gives one. */
  thetaSwa?: number;
}

function rope(cfg: ConfigReader, thetaKeys: readonly string[], thetaDefault: number): Rope {
  const raw = cfg.raw('rope_parameters') ?? cfg.raw('rope_scaling');
  if (raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) throw cfg.bad(cfg.has('rope_parameters') ? 'rope_parameters' : 'rope_scaling', raw, 'an object');
  const all = (raw ?? {}) as Record<string, unknown>;
  const full = (typeof all.full_attention === 'object' && all.full_attention !== null ? all.full_attention : all) as Record<string, unknown>;
  const sliding = typeof all.sliding_attention === 'object' && all.sliding_attention !== null ? (all.sliding_attention as Record<string, unknown>) : undefined;
  const inner = new ConfigReader(full, cfg.architecture);
  const key = thetaKeys.find((k) => cfg.has(k));
  const theta = inner.has('rope_theta') ? inner.positive('rope_theta') : cfg.positive(key ?? thetaKeys[0], thetaDefault);
  const type = inner.has('rope_type') ? inner.string('rope_type') : inner.string('type', 'default');
  const thetaSwa = sliding && Object.hasOwn(sliding, 'rope_theta') ? new ConfigReader(sliding, cfg.architecture).positive('rope_theta') : undefined;
  return { theta, type, params: full, thetaSwa };
}

/**
 * rope.freq_base and the scaling keys for RoPE types every family here runs: none, linear (factor),
 * Llama 3's frequency factors (a rope_freqs tensor, where `llama3` is allowed). Others → UNSUPPORTED_ARCH.
 */
function ropeKeys(cfg: ConfigReader, ck: Checkpoint, r: Rope, options: { dims: number; llama3?: boolean }): void {
  ck.key('rope.freq_base', meta.f32(r.theta));
  const p = new ConfigReader(r.params, cfg.architecture);
  if (r.type === 'default' || r.type === 'none') return;
  if (r.type === 'linear') {
    ck.key('rope.scaling.type', meta.string('linear'));
    ck.key('rope.scaling.factor', meta.f32(p.positive('factor')));
    return;
  }
  if (r.type === 'llama3' && options.llama3) {
    ck.values('rope_freqs.weight', llama3Factors(p, r.theta, options.dims));
    return;
  }
  throw unsupported(cfg, `RoPE scaling "${r.type.slice(0, 40)}" (Lantern runs none, linear${options.llama3 ? ', llama3' : ''} here)`);
}

/**
 * Llama 3's per-frequency divisors, as HF's _compute_llama3_parameters scales inv_freq: 1 for short
 * wavelengths, `factor` for long ones, a smooth blend between. [dims / 2] f32.
 */
function llama3Factors(p: ConfigReader, theta: number, dims: number): Float32Array {
  const factor = p.positive('factor', 8);
  const low = p.positive('low_freq_factor', 1);
  const high = p.positive('high_freq_factor', 4);
  const original = p.positive('original_max_position_embeddings', 8192);
  const lowWavelen = original / low;
  const highWavelen = original / high;
  const out = new Float32Array(dims / 2);
  for (let i = 0; i < dims / 2; i++) {
    const freq = 1 / theta ** ((2 * i) / dims);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (original / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

/** HF's rotate_half order → llama.cpp's adjacent pairs: GGUF row h·d + 2i + j is HF row h·d + j·d/2 + i. */
function pairRows(nHeads: number, headDim: number): Int32Array {
  const rows = new Int32Array(nHeads * headDim);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let k = 0; k < headDim; k++) rows[h * headDim + k] = h * headDim + (k % 2) * half + Math.floor(k / 2);
  }
  return rows;
}

/** GPT-NeoX's per-head [q; k; v] rows → all q, then all k, then all v. */
function neoxQkvRows(nHeads: number, headDim: number): Int32Array {
  const nEmbd = nHeads * headDim;
  const rows = new Int32Array(3 * nEmbd);
  for (let part = 0; part < 3; part++) {
    for (let h = 0; h < nHeads; h++) {
      for (let d = 0; d < headDim; d++) rows[part * nEmbd + h * headDim + d] = (h * 3 + part) * headDim + d;
    }
  }
  return rows;
}

function result(ck: Checkpoint): ArchitecturePlan {
  return { architecture: ck.architecture, metadata: ck.metadata, tensors: ck.tensors };
}

// ---------------------------------------------------------------------------------------------
// GPT-Neo: Lantern's "gpt-neo" (docs/gguf-gpt-neo.md)

/**
 * GPT-Neo's attention_types, e.g. [[["global", "local"], 2]], expanded as HF's
 * GPTNeoConfig.expand_attention_types_params does: each list of types repeated its count of times.
 */
function expandAttentionTypes(cfg: ConfigReader): string[] | undefined {
  const raw = cfg.raw('attention_types');
  if (raw === undefined) return undefined;
  const expected = 'a list of [[types...], count] pairs, e.g. [[["global", "local"], 2]]';
  if (!Array.isArray(raw)) throw cfg.bad('attention_types', raw, expected);
  const out: string[] = [];
  for (const item of raw) {
    if (!Array.isArray(item) || item.length !== 2 || !Array.isArray(item[0]) || !item[0].every((t) => typeof t === 'string') || !Number.isSafeInteger(item[1]) || item[1] < 0 || item[1] > 4096) {
      throw cfg.bad('attention_types', raw, expected);
    }
    for (let i = 0; i < item[1]; i++) out.push(...(item[0] as string[]));
  }
  return out;
}

const gptNeo: Planner = (cfg, ck) => {
  const nLayers = cfg.count('num_layers');
  const nEmbd = cfg.count('hidden_size');
  const h = heads(cfg, nEmbd, cfg.count('num_heads'));
  const nFF = cfg.count('intermediate_size', 4 * nEmbd);
  const nCtx = cfg.count('max_position_embeddings');
  const nVocab = cfg.count('vocab_size');
  activation(cfg, 'activation_function', new Set(['gelu_new']), 'gelu_new');

  const expanded = expandAttentionTypes(cfg);
  const layers = cfg.raw('attention_layers');
  if (expanded !== undefined && layers !== undefined && JSON.stringify(expanded) !== JSON.stringify(layers)) {
    throw cfg.bad('attention_layers', layers, `the expansion of attention_types, ${JSON.stringify(expanded).slice(0, 60)}`);
  }
  const types = expanded ?? layers;
  if (types === undefined) throw cfg.missing('attention_types');
  const source = expanded ? 'attention_types' : 'attention_layers';
  const local = localFlags(new ConfigReader({ [source]: types }, cfg.architecture), source, nLayers, 'local', ['global']);

  generalName(cfg, ck);
  ck.key('context_length', meta.u32(nCtx));
  ck.key('embedding_length', meta.u32(nEmbd));
  ck.key('feed_forward_length', meta.u32(nFF));
  ck.key('block_count', meta.u32(nLayers));
  ck.key('attention.head_count', meta.u32(h.nHeads));
  ck.key('attention.head_count_kv', meta.u32(h.nHeads));
  ck.key('attention.layer_norm_epsilon', meta.f32(cfg.positive('layer_norm_epsilon', 1e-5)));
  ck.key('attention.sliding_window', meta.u32(cfg.count('window_size', 256)));
  ck.key('attention.sliding_window_pattern', meta.bools(local!));
  ck.key('attention.scale', meta.f32(1));

  ck.linear('token_embd.weight', 'wte.weight', nVocab, nEmbd);
  ck.tensors.push({ name: 'position_embd.weight', dims: [nEmbd, nCtx], from: [ck.source('wpe.weight', [nCtx, nEmbd])], quantizable: false });
  ck.vector('output_norm.weight', 'ln_f.weight', nEmbd);
  ck.vector('output_norm.bias', 'ln_f.bias', nEmbd);
  if (untiedHead(cfg, ck, 'lm_head.weight', true)) ck.linear('output.weight', 'lm_head.weight', nVocab, nEmbd, { root: true });
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const hf = `h.${l}.`;
    ck.vector(`${p}attn_norm.weight`, `${hf}ln_1.weight`, nEmbd);
    ck.vector(`${p}attn_norm.bias`, `${hf}ln_1.bias`, nEmbd);
    for (const x of ['q', 'k', 'v']) ck.linear(`${p}attn_${x}.weight`, `${hf}attn.attention.${x}_proj.weight`, nEmbd, nEmbd);
    ck.linear(`${p}attn_output.weight`, `${hf}attn.attention.out_proj.weight`, nEmbd, nEmbd);
    ck.vector(`${p}attn_output.bias`, `${hf}attn.attention.out_proj.bias`, nEmbd);
    ck.vector(`${p}ffn_norm.weight`, `${hf}ln_2.weight`, nEmbd);
    ck.vector(`${p}ffn_norm.bias`, `${hf}ln_2.bias`, nEmbd);
    ck.linear(`${p}ffn_up.weight`, `${hf}mlp.c_fc.weight`, nFF, nEmbd);
    ck.vector(`${p}ffn_up.bias`, `${hf}mlp.c_fc.bias`, nFF);
    ck.linear(`${p}ffn_down.weight`, `${hf}mlp.c_proj.weight`, nEmbd, nFF);
    ck.vector(`${p}ffn_down.bias`, `${hf}mlp.c_proj.bias`, nEmbd);
  }
  return result(ck);
};

// ---------------------------------------------------------------------------------------------
// GPT-2

const gpt2: Planner = (cfg, ck) => {
  const nLayers = cfg.count('n_layer');
  const nEmbd = cfg.count('n_embd');
  const h = heads(cfg, nEmbd, cfg.count('n_head'));
  const nFF = cfg.count('n_inner', 4 * nEmbd);
  const nCtx = cfg.count('n_positions', cfg.has('n_ctx') ? cfg.count('n_ctx') : undefined);
  const nVocab = cfg.count('vocab_size');
  activation(cfg, 'activation_function', GELU, 'gelu_new');
  if (!cfg.boolean('scale_attn_weights', true)) throw unsupported(cfg, 'scale_attn_weights false (scores not divided by sqrt(head_dim))');
  if (cfg.boolean('scale_attn_by_inverse_layer_idx', false)) throw unsupported(cfg, 'scale_attn_by_inverse_layer_idx');

  generalName(cfg, ck);
  ck.key('context_length', meta.u32(nCtx));
  ck.key('embedding_length', meta.u32(nEmbd));
  ck.key('feed_forward_length', meta.u32(nFF));
  ck.key('block_count', meta.u32(nLayers));
  ck.key('attention.head_count', meta.u32(h.nHeads));
  ck.key('attention.head_count_kv', meta.u32(h.nHeads));
  ck.key('attention.layer_norm_epsilon', meta.f32(cfg.positive('layer_norm_epsilon', 1e-5)));

  ck.linear('token_embd.weight', 'wte.weight', nVocab, nEmbd);
  ck.tensors.push({ name: 'position_embd.weight', dims: [nEmbd, nCtx], from: [ck.source('wpe.weight', [nCtx, nEmbd])], quantizable: false });
  ck.vector('output_norm.weight', 'ln_f.weight', nEmbd);
  ck.vector('output_norm.bias', 'ln_f.bias', nEmbd);
  if (untiedHead(cfg, ck, 'lm_head.weight', true)) ck.linear('output.weight', 'lm_head.weight', nVocab, nEmbd, { root: true });
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const hf = `h.${l}.`;
    ck.vector(`${p}attn_norm.weight`, `${hf}ln_1.weight`, nEmbd);
    ck.vector(`${p}attn_norm.bias`, `${hf}ln_1.bias`, nEmbd);
    ck.conv1d(`${p}attn_qkv.weight`, `${hf}attn.c_attn.weight`, nEmbd, 3 * nEmbd);
    ck.vector(`${p}attn_qkv.bias`, `${hf}attn.c_attn.bias`, 3 * nEmbd);
    ck.conv1d(`${p}attn_output.weight`, `${hf}attn.c_proj.weight`, nEmbd, nEmbd);
    ck.vector(`${p}attn_output.bias`, `${hf}attn.c_proj.bias`, nEmbd);
    ck.vector(`${p}ffn_norm.weight`, `${hf}ln_2.weight`, nEmbd);
    ck.vector(`${p}ffn_norm.bias`, `${hf}ln_2.bias`, nEmbd);
    ck.conv1d(`${p}ffn_up.weight`, `${hf}mlp.c_fc.weight`, nEmbd, nFF);
    ck.vector(`${p}ffn_up.bias`, `${hf}mlp.c_fc.bias`, nFF);
    ck.conv1d(`${p}ffn_down.weight`, `${hf}mlp.c_proj.weight`, nFF, nEmbd);
    ck.vector(`${p}ffn_down.bias`, `${hf}mlp.c_proj.bias`, nEmbd);
  }
  return result(ck);
};

// ---------------------------------------------------------------------------------------------
// GPT-NeoX (Pythia)

const gptNeoX: Planner = (cfg, ck) => {
  const nLayers = cfg.count('num_hidden_layers');
  const nEmbd = cfg.count('hidden_size');
  const h = heads(cfg, nEmbd, cfg.count('num_attention_heads'));
  const nFF = cfg.count('intermediate_size');
  const nVocab = cfg.count('vocab_size');
  activation(cfg, 'hidden_act', GELU, 'gelu');
  // HF: rotary_ndims = int(head_size * rotary_pct); transformers 5 calls it partial_rotary_factor.
  const pct = cfg.has('rotary_pct') ? cfg.positive('rotary_pct') : cfg.positive('partial_rotary_factor', 0.25);
  const ropeDims = Math.trunc(h.headDim * pct);
  check(cfg, ropeDims >= 2 && ropeDims % 2 === 0 && ropeDims <= h.headDim, `rotary_pct ${pct} of ${h.headDim}-dim heads gives ${ropeDims} rotated dims (an even number from 2 to the head size is needed)`);
  const r = rope(cfg, ['rotary_emb_base', 'rope_theta'], 10000);
  const bias = cfg.boolean('attention_bias', true);

  generalName(cfg, ck);
  ck.key('context_length', meta.u32(cfg.count('max_position_embeddings')));
  ck.key('embedding_length', meta.u32(nEmbd));
  ck.key('feed_forward_length', meta.u32(nFF));
  ck.key('block_count', meta.u32(nLayers));
  ck.key('attention.head_count', meta.u32(h.nHeads));
  ck.key('attention.head_count_kv', meta.u32(h.nHeads));
  ck.key('rope.dimension_count', meta.u32(ropeDims));
  ropeKeys(cfg, ck, r, { dims: ropeDims });
  ck.key('use_parallel_residual', meta.bool(cfg.boolean('use_parallel_residual', true)));
  ck.key('attention.layer_norm_epsilon', meta.f32(cfg.positive('layer_norm_eps', 1e-5)));

  const qkvRows = neoxQkvRows(h.nHeads, h.headDim);
  ck.linear('token_embd.weight', 'embed_in.weight', nVocab, nEmbd);
  ck.vector('output_norm.weight', 'final_layer_norm.weight', nEmbd);
  ck.vector('output_norm.bias', 'final_layer_norm.bias', nEmbd);
  // llama.cpp's gptneox requires output.weight: a tied checkpoint (no embed_out) gets the embedding's copy.
  const tied = cfg.boolean('tie_word_embeddings', false);
  ck.linear('output.weight', tied ? `${ck.prefix}embed_in.weight` : 'embed_out.weight', nVocab, nEmbd, { root: true });
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const hf = `layers.${l}.`;
    ck.vector(`${p}attn_norm.weight`, `${hf}input_layernorm.weight`, nEmbd);
    ck.vector(`${p}attn_norm.bias`, `${hf}input_layernorm.bias`, nEmbd);
    ck.linear(`${p}attn_qkv.weight`, `${hf}attention.query_key_value.weight`, 3 * nEmbd, nEmbd, { rows: qkvRows });
    if (bias) ck.vector(`${p}attn_qkv.bias`, `${hf}attention.query_key_value.bias`, 3 * nEmbd, { rows: qkvRows });
    ck.linear(`${p}attn_output.weight`, `${hf}attention.dense.weight`, nEmbd, nEmbd);
    if (bias) ck.vector(`${p}attn_output.bias`, `${hf}attention.dense.bias`, nEmbd);
    ck.vector(`${p}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`, nEmbd);
    ck.vector(`${p}ffn_norm.bias`, `${hf}post_attention_layernorm.bias`, nEmbd);
    ck.linear(`${p}ffn_up.weight`, `${hf}mlp.dense_h_to_4h.weight`, nFF, nEmbd);
    ck.vector(`${p}ffn_up.bias`, `${hf}mlp.dense_h_to_4h.bias`, nFF);
    ck.linear(`${p}ffn_down.weight`, `${hf}mlp.dense_4h_to_h.weight`, nEmbd, nFF);
    ck.vector(`${p}ffn_down.bias`, `${hf}mlp.dense_4h_to_h.bias`, nEmbd);
  }
  return result(ck);
};

// ---------------------------------------------------------------------------------------------
// Llama, Mistral, Qwen2, Qwen3: the "model.layers.N.self_attn/mlp" layout

interface LlamaLike {
  /** Permute q/k rows from rotate-half to adjacent pairs (llama.cpp's llama runs normal RoPE). */
  pairs: boolean;
  /** q/k/v biases: always (Qwen2), never, or per attention_bias. */
  qkvBias: 'always' | 'config';
  qkNorm: boolean;
  llama3: boolean;
  epsDefault: number;
  /** Writes vocab_size, as convert's LlamaModel does. */
  vocabKey: boolean;
  /** The config class's head_dim default, where it is not hidden / heads. */
  headDim?: number;
}

function llamaLike(options: LlamaLike): Planner {
  return (cfg, ck) => {
    const nLayers = cfg.count('num_hidden_layers');
    const nEmbd = cfg.count('hidden_size');
    const h = heads(cfg, nEmbd, cfg.count('num_attention_heads'), 'num_key_value_heads', 'head_dim', options.headDim);
    check(cfg, h.headDim % 2 === 0, `heads of ${h.headDim} dims (RoPE needs an even number)`);
    const nFF = cfg.count('intermediate_size');
    const nVocab = cfg.count('vocab_size');
    const nCtx = cfg.count('max_position_embeddings');
    activation(cfg, 'hidden_act', SILU, 'silu');
    if (cfg.boolean('use_sliding_window', false)) throw unsupported(cfg, 'use_sliding_window true');
    const r = rope(cfg, ['rope_theta'], 10000);
    const qkvBias = options.qkvBias === 'always' || cfg.boolean('attention_bias', false);
    const mlpBias = cfg.boolean('mlp_bias', false);
    if (mlpBias) throw unsupported(cfg, 'mlp_bias true');
    const qDim = h.nHeads * h.headDim;
    const kvDim = h.nKvHeads * h.headDim;

    generalName(cfg, ck);
    // Mistral's sliding_window: llama.cpp runs these layers with full attention, which equals HF's
    // within the window; the context is capped there so that the two never differ.
    const window = ck.hfArchitecture === 'MistralForCausalLM' && cfg.has('sliding_window') ? cfg.count('sliding_window') : Infinity;
    ck.key('context_length', meta.u32(Math.min(nCtx, window)));
    ck.key('embedding_length', meta.u32(nEmbd));
    ck.key('feed_forward_length', meta.u32(nFF));
    ck.key('block_count', meta.u32(nLayers));
    ck.key('attention.head_count', meta.u32(h.nHeads));
    ck.key('attention.head_count_kv', meta.u32(h.nKvHeads));
    ck.key('attention.layer_norm_rms_epsilon', meta.f32(cfg.positive('rms_norm_eps', options.epsDefault)));
    if (cfg.has('head_dim')) {
      ck.key('attention.key_length', meta.u32(h.headDim));
      ck.key('attention.value_length', meta.u32(h.headDim));
    }
    if (options.vocabKey) ck.key('vocab_size', meta.u32(nVocab));
    ck.key('rope.dimension_count', meta.u32(h.headDim));
    ropeKeys(cfg, ck, r, { dims: h.headDim, llama3: options.llama3 });

    const qRows = options.pairs ? pairRows(h.nHeads, h.headDim) : undefined;
    const kRows = options.pairs ? pairRows(h.nKvHeads, h.headDim) : undefined;
    ck.linear('token_embd.weight', 'embed_tokens.weight', nVocab, nEmbd);
    ck.vector('output_norm.weight', 'norm.weight', nEmbd);
    if (untiedHead(cfg, ck, 'lm_head.weight', false)) ck.linear('output.weight', 'lm_head.weight', nVocab, nEmbd, { root: true });
    for (let l = 0; l < nLayers; l++) {
      const p = `blk.${l}.`;
      const hf = `layers.${l}.`;
      ck.vector(`${p}attn_norm.weight`, `${hf}input_layernorm.weight`, nEmbd);
      const proj = [['q', qDim, qRows], ['k', kvDim, kRows], ['v', kvDim, undefined]] as const;
      for (const [x, rows, order] of proj) {
        ck.linear(`${p}attn_${x}.weight`, `${hf}self_attn.${x}_proj.weight`, rows, nEmbd, { rows: order });
        if (qkvBias) ck.vector(`${p}attn_${x}.bias`, `${hf}self_attn.${x}_proj.bias`, rows, { rows: order });
      }
      if (options.qkNorm) {
        ck.vector(`${p}attn_q_norm.weight`, `${hf}self_attn.q_norm.weight`, h.headDim);
        ck.vector(`${p}attn_k_norm.weight`, `${hf}self_attn.k_norm.weight`, h.headDim);
      }
      ck.linear(`${p}attn_output.weight`, `${hf}self_attn.o_proj.weight`, nEmbd, qDim);
      ck.vector(`${p}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`, nEmbd);
      ck.linear(`${p}ffn_gate.weight`, `${hf}mlp.gate_proj.weight`, nFF, nEmbd);
      ck.linear(`${p}ffn_up.weight`, `${hf}mlp.up_proj.weight`, nFF, nEmbd);
      ck.linear(`${p}ffn_down.weight`, `${hf}mlp.down_proj.weight`, nEmbd, nFF);
    }
    return result(ck);
  };
}

// ---------------------------------------------------------------------------------------------
// Gemma 2 and Gemma 3 (text)

/**
 * The layers that slide, written as HF's config says them: a per-layer array from `layer_types`,
 * `sliding_window_pattern` as a number where it is not the family's default, nothing otherwise.
 * HF slides layer l when (l + 1) % pattern != 0, as llama.cpp's set_swa_pattern does.
 */
function gemmaPattern(cfg: ConfigReader, ck: Checkpoint, nLayers: number, defaultPattern: number, patternKey?: string): void {
  const flags = localFlags(cfg, 'layer_types', nLayers, 'sliding_attention', ['full_attention']);
  const pattern = patternKey ? cfg.count(patternKey, defaultPattern) : defaultPattern;
  if (flags) {
    if (patternKey && cfg.has(patternKey) && flags.some((f, l) => f !== ((l + 1) % pattern !== 0))) {
      throw cfg.bad(patternKey, pattern, `the pattern layer_types spells out (${JSON.stringify(cfg.raw('layer_types')).slice(0, 60)})`);
    }
    const standard = flags.every((f, l) => f === ((l + 1) % defaultPattern !== 0));
    if (!standard) ck.key('attention.sliding_window_pattern', meta.bools(flags));
    return;
  }
  if (pattern !== defaultPattern) ck.key('attention.sliding_window_pattern', meta.u32(pattern));
}

function gemma(version: 2 | 3): Planner {
  return (cfg, ck) => {
    const nLayers = cfg.count('num_hidden_layers');
    const nEmbd = cfg.count('hidden_size');
    // Gemma 2's convert requires head_dim; Gemma 3's config defaults it to 256.
    const h = heads(cfg, nEmbd, cfg.count('num_attention_heads', version === 3 ? 8 : undefined), 'num_key_value_heads', 'head_dim', version === 3 ? 256 : 'none');
    const nFF = cfg.count('intermediate_size');
    const nVocab = cfg.count('vocab_size');
    activation(cfg, cfg.has('hidden_activation') ? 'hidden_activation' : 'hidden_act', new Set(['gelu_pytorch_tanh']), 'gelu_pytorch_tanh');
    // llama.cpp (and Lantern) scale q by the head size's, or for the 27B models n_embd / n_head's, ^-1/2.
    const big = nLayers === (version === 2 ? 46 : 62);
    const scalar = big ? nEmbd / h.nHeads : h.headDim;
    const qpas = cfg.positive('query_pre_attn_scalar', scalar);
    if (qpas !== scalar) throw unsupported(cfg, `query_pre_attn_scalar ${qpas} (Lantern, like llama.cpp, scales queries by ${scalar}^-1/2 for this shape)`);
    const r = rope(cfg, ['rope_theta'], version === 3 ? 1_000_000 : 10000);
    const norm = (gguf: string, name: string, n = nEmbd) => ck.vector(gguf, name, n, { add: 1 });

    generalName(cfg, ck);
    ck.key('context_length', meta.u32(cfg.count('max_position_embeddings', version === 3 ? 131072 : undefined)));
    ck.key('embedding_length', meta.u32(nEmbd));
    ck.key('feed_forward_length', meta.u32(nFF));
    ck.key('block_count', meta.u32(nLayers));
    ck.key('attention.head_count', meta.u32(h.nHeads));
    ck.key('attention.head_count_kv', meta.u32(h.nKvHeads));
    ck.key('attention.layer_norm_rms_epsilon', meta.f32(cfg.positive('rms_norm_eps', 1e-6)));
    ck.key('attention.key_length', meta.u32(h.headDim));
    ck.key('attention.value_length', meta.u32(h.headDim));
    ropeKeys(cfg, ck, r, { dims: h.headDim });
    if (version === 2) {
      // Gemma 2 always soft-caps in llama.cpp and Lantern; a config that turns capping off (null) is another model.
      const attnCap = cfg.raw('attn_logit_softcapping');
      const finalCap = cfg.raw('final_logit_softcapping');
      if (attnCap === undefined || finalCap === undefined) throw unsupported(cfg, 'no attn_logit_softcapping or final_logit_softcapping (Gemma 2 without soft-capping)');
      ck.key('attn_logit_softcapping', meta.f32(cfg.positive('attn_logit_softcapping')));
      ck.key('final_logit_softcapping', meta.f32(cfg.positive('final_logit_softcapping')));
      ck.key('attention.sliding_window', meta.u32(cfg.count('sliding_window', 4096)));
      gemmaPattern(cfg, ck, nLayers, 2);
      if (r.thetaSwa !== undefined && r.thetaSwa !== r.theta) ck.key('rope.freq_base_swa', meta.f32(r.thetaSwa));
    } else {
      if (cfg.raw('attn_logit_softcapping') !== undefined) throw unsupported(cfg, 'attn_logit_softcapping (Gemma 3 has none)');
      if (cfg.has('final_logit_softcapping')) ck.key('final_logit_softcapping', meta.f32(cfg.positive('final_logit_softcapping')));
      const pattern = cfg.count('sliding_window_pattern', 6);
      if (pattern !== 1 || cfg.has('layer_types')) {
        ck.key('attention.sliding_window', meta.u32(cfg.count('sliding_window', 4096)));
        gemmaPattern(cfg, ck, nLayers, 6, 'sliding_window_pattern');
      }
      ck.key('rope.freq_base_swa', meta.f32(r.thetaSwa ?? cfg.positive('rope_local_base_freq', 10000)));
    }

    const qDim = h.nHeads * h.headDim;
    const kvDim = h.nKvHeads * h.headDim;
    ck.linear('token_embd.weight', 'embed_tokens.weight', nVocab, nEmbd);
    norm('output_norm.weight', 'norm.weight');
    // Gemma 2 always ties (llama.cpp reads no output.weight for it); Gemma 3 may not.
    if (version === 3 && untiedHead(cfg, ck, 'lm_head.weight', true)) ck.linear('output.weight', 'lm_head.weight', nVocab, nEmbd, { root: true });
    for (let l = 0; l < nLayers; l++) {
      const p = `blk.${l}.`;
      const hf = `layers.${l}.`;
      norm(`${p}attn_norm.weight`, `${hf}input_layernorm.weight`);
      ck.linear(`${p}attn_q.weight`, `${hf}self_attn.q_proj.weight`, qDim, nEmbd);
      ck.linear(`${p}attn_k.weight`, `${hf}self_attn.k_proj.weight`, kvDim, nEmbd);
      ck.linear(`${p}attn_v.weight`, `${hf}self_attn.v_proj.weight`, kvDim, nEmbd);
      if (version === 3) {
        norm(`${p}attn_q_norm.weight`, `${hf}self_attn.q_norm.weight`, h.headDim);
        norm(`${p}attn_k_norm.weight`, `${hf}self_attn.k_norm.weight`, h.headDim);
      }
      ck.linear(`${p}attn_output.weight`, `${hf}self_attn.o_proj.weight`, nEmbd, qDim);
      norm(`${p}post_attention_norm.weight`, `${hf}post_attention_layernorm.weight`);
      norm(`${p}ffn_norm.weight`, `${hf}pre_feedforward_layernorm.weight`);
      ck.linear(`${p}ffn_gate.weight`, `${hf}mlp.gate_proj.weight`, nFF, nEmbd);
      ck.linear(`${p}ffn_up.weight`, `${hf}mlp.up_proj.weight`, nFF, nEmbd);
      ck.linear(`${p}ffn_down.weight`, `${hf}mlp.down_proj.weight`, nEmbd, nFF);
      norm(`${p}post_ffw_norm.weight`, `${hf}post_feedforward_layernorm.weight`);
    }
    return result(ck);
  };
}

// ---------------------------------------------------------------------------------------------
// Phi-3 (and Phi-3.5, Phi-4-mini)

/** A list of `n` finite numbers from a rope_scaling entry. */
function factorList(cfg: ConfigReader, params: Record<string, unknown>, key: string, n: number): Float32Array {
  const list = params[key];
  if (!Array.isArray(list) || list.length !== n || !list.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw cfg.bad(`rope_scaling.${key}`, list, `${n} numbers (half the rotated dims)`);
  }
  return Float32Array.from(list as number[]);
}

const phi3: Planner = (cfg, ck) => {
  const nLayers = cfg.count('num_hidden_layers');
  const nEmbd = cfg.count('hidden_size');
  const h = heads(cfg, nEmbd, cfg.count('num_attention_heads'), 'num_key_value_heads');
  const nFF = cfg.count('intermediate_size');
  const nVocab = cfg.count('vocab_size');
  const nCtx = cfg.count('max_position_embeddings');
  activation(cfg, 'hidden_act', SILU, 'silu');
  const r = rope(cfg, ['rope_theta'], 10000);
  const pct = r.params.partial_rotary_factor !== undefined ? new ConfigReader(r.params, cfg.architecture).positive('partial_rotary_factor') : cfg.positive('partial_rotary_factor', 1);
  // convert: int(partial_rotary_factor * n_embd) // n_head
  const ropeDims = Math.floor(Math.trunc(pct * nEmbd) / h.nHeads);
  check(cfg, ropeDims >= 2 && ropeDims % 2 === 0 && ropeDims <= h.headDim, `partial_rotary_factor ${pct} gives ${ropeDims} rotated dims of ${h.headDim}`);
  const original = cfg.count('original_max_position_embeddings', typeof r.params.original_max_position_embeddings === 'number' ? (r.params.original_max_position_embeddings as number) : nCtx);

  generalName(cfg, ck);
  ck.key('context_length', meta.u32(nCtx));
  ck.key('rope.scaling.original_context_length', meta.u32(original));
  ck.key('embedding_length', meta.u32(nEmbd));
  ck.key('feed_forward_length', meta.u32(nFF));
  ck.key('block_count', meta.u32(nLayers));
  ck.key('attention.head_count', meta.u32(h.nHeads));
  ck.key('attention.head_count_kv', meta.u32(h.nKvHeads));
  ck.key('attention.layer_norm_rms_epsilon', meta.f32(cfg.positive('rms_norm_eps', 1e-5)));
  ck.key('rope.dimension_count', meta.u32(ropeDims));
  // Read by llama.cpp and Lantern but not applied (both run Phi-3 with full attention); 0 = none.
  ck.key('attention.sliding_window', meta.u32(cfg.has('sliding_window') ? cfg.count('sliding_window') : 0));
  const longrope = r.type === 'longrope' || r.type === 'su';
  if (longrope) {
    ck.key('rope.freq_base', meta.f32(r.theta));
    ck.key('rope.scaling.type', meta.string('longrope'));
    // HF's attention_factor where the config gives it; else sqrt(1 + ln(scale) / ln(original)), as HF and convert compute it.
    const p = new ConfigReader(r.params, cfg.architecture);
    const scale = nCtx / original;
    const computed = scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(original)) : 1;
    ck.key('rope.scaling.attn_factor', meta.f32(p.has('attention_factor') ? p.positive('attention_factor') : computed));
  } else {
    ropeKeys(cfg, ck, r, { dims: ropeDims });
  }

  ck.linear('token_embd.weight', 'embed_tokens.weight', nVocab, nEmbd);
  ck.vector('output_norm.weight', 'norm.weight', nEmbd);
  if (untiedHead(cfg, ck, 'lm_head.weight', false)) ck.linear('output.weight', 'lm_head.weight', nVocab, nEmbd, { root: true });
  if (longrope) {
    ck.values('rope_factors_short.weight', factorList(cfg, r.params, 'short_factor', ropeDims / 2));
    ck.values('rope_factors_long.weight', factorList(cfg, r.params, 'long_factor', ropeDims / 2));
  }
  const qkvRows = (h.nHeads + 2 * h.nKvHeads) * h.headDim;
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const hf = `layers.${l}.`;
    ck.vector(`${p}attn_norm.weight`, `${hf}input_layernorm.weight`, nEmbd);
    ck.linear(`${p}attn_qkv.weight`, `${hf}self_attn.qkv_proj.weight`, qkvRows, nEmbd);
    ck.linear(`${p}attn_output.weight`, `${hf}self_attn.o_proj.weight`, nEmbd, h.nHeads * h.headDim);
    ck.vector(`${p}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`, nEmbd);
    ck.linear(`${p}ffn_up.weight`, `${hf}mlp.gate_up_proj.weight`, 2 * nFF, nEmbd);
    ck.linear(`${p}ffn_down.weight`, `${hf}mlp.down_proj.weight`, nEmbd, nFF);
  }
  return result(ck);
};

// ---------------------------------------------------------------------------------------------

interface Entry {
  /** general.architecture of the GGUF. */
  architecture: string;
  /** Prefixes the checkpoint's tensor names may carry, most common first. */
  prefixes: readonly string[];
  /** The token embedding's name under the prefix, to find which prefix this checkpoint uses. */
  probe: string;
  plan: Planner;
}

const LLAMA = llamaLike({ pairs: true, qkvBias: 'config', qkNorm: false, llama3: true, epsDefault: 1e-6, vocabKey: true });

const ARCHITECTURES = new Map<string, Entry>([
  ['GPTNeoForCausalLM', { architecture: 'gpt-neo', prefixes: ['transformer.', ''], probe: 'wte.weight', plan: gptNeo }],
  ['GPT2LMHeadModel', { architecture: 'gpt2', prefixes: ['transformer.', ''], probe: 'wte.weight', plan: gpt2 }],
  ['GPTNeoXForCausalLM', { architecture: 'gptneox', prefixes: ['gpt_neox.', ''], probe: 'embed_in.weight', plan: gptNeoX }],
  ['LlamaForCausalLM', { architecture: 'llama', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: LLAMA }],
  ['MistralForCausalLM', { architecture: 'llama', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: LLAMA }],
  ['Qwen2ForCausalLM', { architecture: 'qwen2', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: llamaLike({ pairs: false, qkvBias: 'always', qkNorm: false, llama3: false, epsDefault: 1e-6, vocabKey: false }) }],
  ['Qwen3ForCausalLM', { architecture: 'qwen3', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: llamaLike({ pairs: false, qkvBias: 'config', qkNorm: true, llama3: false, epsDefault: 1e-6, vocabKey: false, headDim: 128 }) }],
  ['Gemma2ForCausalLM', { architecture: 'gemma2', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: gemma(2) }],
  ['Gemma3ForCausalLM', { architecture: 'gemma3', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: gemma(3) }],
  ['Phi3ForCausalLM', { architecture: 'phi3', prefixes: ['model.', ''], probe: 'embed_tokens.weight', plan: phi3 }],
]);

/** The config.json `architectures` values Lantern converts. */
export const HF_ARCHITECTURES: readonly string[] = [...ARCHITECTURES.keys()];

/**
 * The GGUF description of a Hugging Face checkpoint: its metadata and a recipe per tensor, every
 * source tensor checked present with the shape config.json implies. BAD_MODEL_FILE for a config
 * without a key the architecture needs or a missing or misshapen tensor; UNSUPPORTED_ARCH for an
 * architecture or a setting (RoPE scaling, activation, ...) Lantern does not run.
 */
export function planArchitecture(config: HfConfig, tensors: ReadonlyMap<string, CheckpointTensor>): ArchitecturePlan {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new LanternError('BAD_MODEL_FILE', 'config.json is not a JSON object; it is damaged: download it again from the model\'s repository.', { file: 'config.json' });
  }
  const list = Object.hasOwn(config, 'architectures') ? config.architectures : undefined;
  if (!Array.isArray(list) || list.length === 0 || typeof list[0] !== 'string') {
    throw new LanternError(
      'BAD_MODEL_FILE',
      `config.json has no "architectures" list naming the model class (e.g. ["LlamaForCausalLM"]); it is damaged or not a transformers config: download it again from the model's repository.`,
      { key: 'architectures' },
    );
  }
  const name = list[0];
  const entry = ARCHITECTURES.get(name);
  if (!entry) {
    throw new LanternError(
      'UNSUPPORTED_ARCH',
      `This checkpoint is a ${name.slice(0, 80)}; Lantern converts ${HF_ARCHITECTURES.join(', ')}. Choose a model of one of those, or a GGUF of this one.`,
      { architecture: name, supported: HF_ARCHITECTURES },
    );
  }
  const cfg = new ConfigReader(config, name);
  return entry.plan(cfg, new Checkpoint(tensors, name, entry.architecture, entry.prefixes, entry.probe));
}
