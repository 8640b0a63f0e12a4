/**
 * Writes Hugging Face checkpoints (config.json, model.safetensors or shards with their index, and
 * tokenizer files given to it) holding exactly the weights of a GGUF model, laid out as HF's
 * modeling code expects them: the inverse of src/model/hf/architectures.ts, written from HF's
 * side (transformers' modeling_*.py), so that a test of the converter against it checks two
 * independent readings of the same layouts:
 * - GPT-2's Conv1D stores a projection as [in, out];
 * - GPT-NeoX's query_key_value holds per head its q, k and v rows ([n_head, 3, head_dim]);
 * - Llama/Mistral rotate the halves of each q/k head (rotate_half), where llama.cpp rotates
 *   adjacent pairs: HF row h·d + j·d/2 + i is llama.cpp's row h·d + 2i + j;
 * - Gemma's RMSNorm multiplies by (1 + w): the checkpoint stores w - 1;
 * - Phi-3's LongRoPE factors live in config.json's rope_scaling.
 * The config carries the hyperparameters under HF's names, with general.name as _name_or_path.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GGMLType, type GGUFFile, readGGUF } from '../../src/model/gguf.ts';
import type { MetaValue } from '../../src/model/gguf-writer.ts';
import { bytesSource } from '../../src/storage/source.ts';
import { type ModelShape, writeRandomModel } from './model-writer.ts';
import { encodeFloats, type FloatDtype, type SafetensorsEntry, writeSafetensors } from './safetensors-writer.ts';

export interface HfWriteOptions {
  /** How the weights are stored (default F32). F16 and BF16 round them. */
  dtype?: FloatDtype;
  /** Split into this many model-0000K-of-0000N.safetensors files with model.safetensors.index.json (default 1). */
  shards?: number;
  /** The class written to config.json where a GGUF architecture has more than one (llama: LlamaForCausalLM or MistralForCausalLM). */
  hfArchitecture?: string;
  /** Names without the "model."/"transformer."/"gpt_neox." prefix, as some older checkpoints have them (default false). */
  bareNames?: boolean;
  /**
   * The tokenizer files derived from the GGUF's vocabulary (tokenizerFiles): tokenizer.json and
   * tokenizer_config.json (default), or vocab.json and merges.txt as EleutherAI's GPT-Neo
   * repositories have them, or none.
   */
  tokenizer?: 'tokenizer.json' | 'vocab.json' | 'none';
  /** Files copied into the checkpoint as they are (after the derived ones, so they replace them). */
  files?: Record<string, Uint8Array>;
}

export interface HfCheckpoint {
  /** config.json as an object (also in `files`). */
  config: Record<string, unknown>;
  /** Every file of the repository by name: config.json, model.safetensors (or shards and index), the copied files. */
  files: Map<string, Uint8Array>;
}

/** One HF tensor: PyTorch shape, and values row-major in that shape. */
interface HfTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Reads a GGUF model whose tensors are all F32: metadata and values by name. */
class Source {
  readonly arch: string;
  constructor(readonly file: GGUFFile, readonly bytes: Uint8Array) {
    this.arch = String(file.metadata.get('general.architecture'));
  }

  has(name: string): boolean {
    return this.file.tensors.some((t) => t.name === name);
  }

  dims(name: string): number[] {
    const t = this.file.tensors.find((x) => x.name === name);
    if (!t) throw new Error(`hf-writer: the GGUF has no ${name}`);
    return t.dims;
  }

  values(name: string): Float32Array {
    const t = this.file.tensors.find((x) => x.name === name);
    if (!t) throw new Error(`hf-writer: the GGUF has no ${name}`);
    if (t.type !== GGMLType.F32) throw new Error(`hf-writer reads F32 GGUF tensors; ${name} is ${GGMLType[t.type]}`);
    return new Float32Array(new Uint8Array(this.bytes.subarray(t.offset, t.offset + t.nBytes)).buffer);
  }

  /** ARCH.key, or a general. or tokenizer. key as given. */
  get(key: string): unknown {
    return this.file.metadata.get(/^(general|tokenizer)\./.test(key) ? key : `${this.arch}.${key}`);
  }

  num(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number') throw new Error(`hf-writer: the GGUF has no number ${this.arch}.${key}`);
    return v;
  }
}

/** Collects the HF tensors of one checkpoint. */
class Out {
  readonly tensors: HfTensor[] = [];
  constructor(readonly src: Source, readonly prefix: string) {}

  /** A Linear weight: GGUF [in, out] rows are HF's [out, in] rows. */
  linear(gguf: string, hf: string, root = false): void {
    const [inp, out] = this.src.dims(gguf);
    this.tensors.push({ name: root ? hf : this.prefix + hf, shape: [out, inp], values: this.src.values(gguf) });
  }

  /** GPT-2's Conv1D: HF [in, out], element (i, o) = GGUF row o, column i. */
  conv1d(gguf: string, hf: string): void {
    const [inp, out] = this.src.dims(gguf);
    const v = this.src.values(gguf);
    const t = new Float32Array(v.length);
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = v[o * inp + i];
    this.tensors.push({ name: this.prefix + hf, shape: [inp, out], values: t });
  }

  /** A 1-D tensor, with `offset` added (Gemma stores norm weights as w - 1). */
  vector(gguf: string, hf: string, offset = 0): void {
    const v = this.src.values(gguf);
    this.tensors.push({ name: this.prefix + hf, shape: [v.length], values: offset === 0 ? v : v.map((x) => x + offset) });
  }

  /** Rows moved: HF row hfRow(r) holds GGUF row r (rows of dims[0] values; 1-D: single values). */
  permuted(gguf: string, hf: string, hfRow: (r: number) => number): void {
    const dims = this.src.dims(gguf);
    const v = this.src.values(gguf);
    const length = dims.length === 1 ? 1 : dims[0];
    const t = new Float32Array(v.length);
    for (let r = 0; r < v.length / length; r++) t.set(v.subarray(r * length, (r + 1) * length), hfRow(r) * length);
    this.tensors.push({ name: this.prefix + hf, shape: dims.length === 1 ? [v.length] : [dims[1], dims[0]], values: t });
  }
}

/** llama.cpp's adjacent-pair row r → HF's rotate-half row, within heads of `headDim`. */
function halfRotationRow(headDim: number): (r: number) => number {
  const half = headDim / 2;
  return (r) => {
    const h = Math.floor(r / headDim);
    const k = r % headDim;
    return h * headDim + (k % 2) * half + Math.floor(k / 2);
  };
}

function layers(src: Source): number {
  return src.num('block_count');
}

function flags(src: Source, key: string): boolean[] | undefined {
  const v = src.get(key);
  return Array.isArray(v) && v.every((b) => typeof b === 'boolean') ? (v as boolean[]) : undefined;
}

/** GPT-Neo's attention_types: the layer list as one repeated run, [[types, count]]. */
function attentionTypes(list: string[]): [string[], number][] {
  for (let period = 1; period <= list.length; period++) {
    if (list.length % period !== 0) continue;
    if (list.every((t, i) => t === list[i % period])) return [[list.slice(0, period), list.length / period]];
  }
  return [[list, 1]];
}

function common(src: Source, hfArchitecture: string, modelType: string): Record<string, unknown> {
  const embd = src.dims('token_embd.weight');
  const config: Record<string, unknown> = {
    architectures: [hfArchitecture],
    model_type: modelType,
    _name_or_path: String(src.get('general.name') ?? 'random'),
    vocab_size: embd[1],
    torch_dtype: 'float32',
  };
  for (const [key, hf] of [['tokenizer.ggml.bos_token_id', 'bos_token_id'], ['tokenizer.ggml.eos_token_id', 'eos_token_id']] as const) {
    const v = src.file.metadata.get(key);
    if (typeof v === 'number') config[hf] = v;
  }
  return config;
}

function gptNeo(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  const nLayers = layers(src);
  const local = flags(src, 'attention.sliding_window_pattern');
  if (!local) throw new Error('hf-writer: a gpt-neo GGUF needs attention.sliding_window_pattern (one boolean per layer)');
  const types = local.map((l) => (l ? 'local' : 'global'));
  if (src.num('attention.scale', 1) !== 1) throw new Error('hf-writer: GPT-Neo does not scale scores; attention.scale must be 1');
  const tied = !src.has('output.weight');
  const config = {
    ...common(src, hfArchitecture, 'gpt_neo'),
    hidden_size: src.num('embedding_length'),
    num_layers: nLayers,
    num_heads: src.num('attention.head_count'),
    intermediate_size: src.num('feed_forward_length'),
    max_position_embeddings: src.num('context_length'),
    window_size: src.num('attention.sliding_window'),
    attention_types: attentionTypes(types),
    attention_layers: types,
    layer_norm_epsilon: src.num('attention.layer_norm_epsilon'),
    activation_function: 'gelu_new',
    tie_word_embeddings: tied,
  };
  out.linear('token_embd.weight', 'wte.weight');
  out.linear('position_embd.weight', 'wpe.weight');
  out.vector('output_norm.weight', 'ln_f.weight');
  out.vector('output_norm.bias', 'ln_f.bias');
  if (!tied) out.linear('output.weight', 'lm_head.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `h.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}ln_1.weight`);
    out.vector(`${p}attn_norm.bias`, `${h}ln_1.bias`);
    for (const x of ['q', 'k', 'v']) out.linear(`${p}attn_${x}.weight`, `${h}attn.attention.${x}_proj.weight`);
    out.linear(`${p}attn_output.weight`, `${h}attn.attention.out_proj.weight`);
    out.vector(`${p}attn_output.bias`, `${h}attn.attention.out_proj.bias`);
    out.vector(`${p}ffn_norm.weight`, `${h}ln_2.weight`);
    out.vector(`${p}ffn_norm.bias`, `${h}ln_2.bias`);
    out.linear(`${p}ffn_up.weight`, `${h}mlp.c_fc.weight`);
    out.vector(`${p}ffn_up.bias`, `${h}mlp.c_fc.bias`);
    out.linear(`${p}ffn_down.weight`, `${h}mlp.c_proj.weight`);
    out.vector(`${p}ffn_down.bias`, `${h}mlp.c_proj.bias`);
  }
  return config;
}

function gpt2(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  const nLayers = layers(src);
  const tied = !src.has('output.weight');
  const config = {
    ...common(src, hfArchitecture, 'gpt2'),
    n_embd: src.num('embedding_length'),
    n_layer: nLayers,
    n_head: src.num('attention.head_count'),
    n_inner: src.num('feed_forward_length'),
    n_positions: src.num('context_length'),
    n_ctx: src.num('context_length'),
    layer_norm_epsilon: src.num('attention.layer_norm_epsilon'),
    activation_function: 'gelu_new',
    tie_word_embeddings: tied,
  };
  out.linear('token_embd.weight', 'wte.weight');
  out.linear('position_embd.weight', 'wpe.weight');
  out.vector('output_norm.weight', 'ln_f.weight');
  out.vector('output_norm.bias', 'ln_f.bias');
  if (!tied) out.linear('output.weight', 'lm_head.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `h.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}ln_1.weight`);
    out.vector(`${p}attn_norm.bias`, `${h}ln_1.bias`);
    out.conv1d(`${p}attn_qkv.weight`, `${h}attn.c_attn.weight`);
    out.vector(`${p}attn_qkv.bias`, `${h}attn.c_attn.bias`);
    out.conv1d(`${p}attn_output.weight`, `${h}attn.c_proj.weight`);
    out.vector(`${p}attn_output.bias`, `${h}attn.c_proj.bias`);
    out.vector(`${p}ffn_norm.weight`, `${h}ln_2.weight`);
    out.vector(`${p}ffn_norm.bias`, `${h}ln_2.bias`);
    out.conv1d(`${p}ffn_up.weight`, `${h}mlp.c_fc.weight`);
    out.vector(`${p}ffn_up.bias`, `${h}mlp.c_fc.bias`);
    out.conv1d(`${p}ffn_down.weight`, `${h}mlp.c_proj.weight`);
    out.vector(`${p}ffn_down.bias`, `${h}mlp.c_proj.bias`);
  }
  return config;
}

function gptNeoX(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  const nLayers = layers(src);
  const nEmbd = src.num('embedding_length');
  const nHeads = src.num('attention.head_count');
  if (src.num('attention.head_count_kv', nHeads) !== nHeads) throw new Error('hf-writer: GPT-NeoX has as many key/value heads as query heads');
  const headDim = nEmbd / nHeads;
  const ropeDims = src.num('rope.dimension_count', headDim);
  const rotaryPct = ropeDims / headDim;
  if (Math.trunc(headDim * rotaryPct) !== ropeDims) throw new Error(`hf-writer: rotary_pct ${rotaryPct} does not give back ${ropeDims} dims`);
  const tied = !src.has('output.weight');
  const config = {
    ...common(src, hfArchitecture, 'gpt_neox'),
    hidden_size: nEmbd,
    num_hidden_layers: nLayers,
    num_attention_heads: nHeads,
    intermediate_size: src.num('feed_forward_length'),
    max_position_embeddings: src.num('context_length'),
    rotary_pct: rotaryPct,
    rotary_emb_base: src.num('rope.freq_base', 10000),
    use_parallel_residual: src.get('use_parallel_residual') ?? false,
    layer_norm_eps: src.num('attention.layer_norm_epsilon'),
    hidden_act: 'gelu',
    tie_word_embeddings: tied,
  };
  // The module holds, per head, its q rows, then k, then v: HF row (h·3 + part)·d + i is llama.cpp's part·n_embd + h·d + i.
  const qkvRow = (r: number) => {
    const part = Math.floor(r / nEmbd);
    const h = Math.floor((r % nEmbd) / headDim);
    return (h * 3 + part) * headDim + (r % headDim);
  };
  out.linear('token_embd.weight', 'embed_in.weight');
  out.vector('output_norm.weight', 'final_layer_norm.weight');
  out.vector('output_norm.bias', 'final_layer_norm.bias');
  if (!tied) out.linear('output.weight', 'embed_out.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `layers.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}input_layernorm.weight`);
    out.vector(`${p}attn_norm.bias`, `${h}input_layernorm.bias`);
    out.permuted(`${p}attn_qkv.weight`, `${h}attention.query_key_value.weight`, qkvRow);
    out.permuted(`${p}attn_qkv.bias`, `${h}attention.query_key_value.bias`, qkvRow);
    out.linear(`${p}attn_output.weight`, `${h}attention.dense.weight`);
    out.vector(`${p}attn_output.bias`, `${h}attention.dense.bias`);
    out.vector(`${p}ffn_norm.weight`, `${h}post_attention_layernorm.weight`);
    out.vector(`${p}ffn_norm.bias`, `${h}post_attention_layernorm.bias`);
    out.linear(`${p}ffn_up.weight`, `${h}mlp.dense_h_to_4h.weight`);
    out.vector(`${p}ffn_up.bias`, `${h}mlp.dense_h_to_4h.bias`);
    out.linear(`${p}ffn_down.weight`, `${h}mlp.dense_4h_to_h.weight`);
    out.vector(`${p}ffn_down.bias`, `${h}mlp.dense_4h_to_h.bias`);
  }
  return config;
}

/** rope_scaling from the GGUF's rope.scaling.* keys (linear only: llama.cpp's others have their own writers). */
function ropeScaling(src: Source): Record<string, unknown> | null {
  const type = src.get('rope.scaling.type');
  if (type === undefined || type === 'none') return null;
  if (type !== 'linear') throw new Error(`hf-writer: rope.scaling.type ${String(type)} is not written`);
  return { rope_type: 'linear', factor: src.num('rope.scaling.factor') };
}

/** The "model.layers.N.self_attn / mlp" family: Llama, Mistral, Qwen2, Qwen3. */
function llamaLike(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  if (src.has('rope_freqs.weight')) throw new Error('hf-writer: rope_freqs has no HF form but rope_scaling llama3; write the GGUF without ropeFreqs');
  const nLayers = layers(src);
  const nEmbd = src.num('embedding_length');
  const nHeads = src.num('attention.head_count');
  const nKvHeads = src.num('attention.head_count_kv', nHeads);
  const headDim = src.num('attention.key_length', nEmbd / nHeads);
  if (src.num('rope.dimension_count', headDim) !== headDim) throw new Error('hf-writer: this family rotates whole heads');
  const modelType = { LlamaForCausalLM: 'llama', MistralForCausalLM: 'mistral', Qwen2ForCausalLM: 'qwen2', Qwen3ForCausalLM: 'qwen3' }[hfArchitecture]!;
  const pairs = modelType === 'llama' || modelType === 'mistral';
  const tied = !src.has('output.weight');
  const bias = src.has('blk.0.attn_q.bias');
  const config: Record<string, unknown> = {
    ...common(src, hfArchitecture, modelType),
    hidden_size: nEmbd,
    num_hidden_layers: nLayers,
    num_attention_heads: nHeads,
    num_key_value_heads: nKvHeads,
    intermediate_size: src.num('feed_forward_length'),
    max_position_embeddings: src.num('context_length'),
    rms_norm_eps: src.num('attention.layer_norm_rms_epsilon'),
    rope_theta: src.num('rope.freq_base', 10000),
    rope_scaling: ropeScaling(src),
    hidden_act: 'silu',
    tie_word_embeddings: tied,
  };
  // Qwen3's config always names its head size (its default, 128, is not hidden / heads).
  if (src.get('attention.key_length') !== undefined || modelType === 'qwen3') config.head_dim = headDim;
  if (modelType === 'mistral') config.sliding_window = null;
  if (modelType === 'qwen2' || modelType === 'qwen3') config.use_sliding_window = false;
  if (modelType !== 'qwen2') config.attention_bias = bias;
  else if (!bias) throw new Error('hf-writer: Qwen2 has q/k/v biases');
  out.linear('token_embd.weight', 'embed_tokens.weight');
  out.vector('output_norm.weight', 'norm.weight');
  if (!tied) out.linear('output.weight', 'lm_head.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `layers.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}input_layernorm.weight`);
    for (const x of ['q', 'k', 'v']) {
      const rotated = pairs && x !== 'v';
      for (const kind of bias ? ['weight', 'bias'] : ['weight']) {
        if (rotated) out.permuted(`${p}attn_${x}.${kind}`, `${h}self_attn.${x}_proj.${kind}`, halfRotationRow(headDim));
        else if (kind === 'weight') out.linear(`${p}attn_${x}.weight`, `${h}self_attn.${x}_proj.weight`);
        else out.vector(`${p}attn_${x}.bias`, `${h}self_attn.${x}_proj.bias`);
      }
    }
    if (modelType === 'qwen3') {
      out.vector(`${p}attn_q_norm.weight`, `${h}self_attn.q_norm.weight`);
      out.vector(`${p}attn_k_norm.weight`, `${h}self_attn.k_norm.weight`);
    }
    out.linear(`${p}attn_output.weight`, `${h}self_attn.o_proj.weight`);
    out.vector(`${p}ffn_norm.weight`, `${h}post_attention_layernorm.weight`);
    out.linear(`${p}ffn_gate.weight`, `${h}mlp.gate_proj.weight`);
    out.linear(`${p}ffn_up.weight`, `${h}mlp.up_proj.weight`);
    out.linear(`${p}ffn_down.weight`, `${h}mlp.down_proj.weight`);
  }
  return config;
}

function gemma(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  const version = src.arch === 'gemma2' ? 2 : 3;
  const nLayers = layers(src);
  const nEmbd = src.num('embedding_length');
  const nHeads = src.num('attention.head_count');
  const headDim = src.num('attention.key_length', nEmbd / nHeads);
  const tied = !src.has('output.weight');
  if (version === 2 && !tied) throw new Error('hf-writer: Gemma 2 always ties its output to the embedding');
  const big = nLayers === (version === 2 ? 46 : 62);
  const config: Record<string, unknown> = {
    ...common(src, hfArchitecture, version === 2 ? 'gemma2' : 'gemma3_text'),
    hidden_size: nEmbd,
    num_hidden_layers: nLayers,
    num_attention_heads: nHeads,
    num_key_value_heads: src.num('attention.head_count_kv', nHeads),
    head_dim: headDim,
    intermediate_size: src.num('feed_forward_length'),
    max_position_embeddings: src.num('context_length'),
    rms_norm_eps: src.num('attention.layer_norm_rms_epsilon'),
    rope_theta: src.num('rope.freq_base', 10000),
    rope_scaling: ropeScaling(src),
    query_pre_attn_scalar: big ? nEmbd / nHeads : headDim,
    hidden_activation: 'gelu_pytorch_tanh',
    tie_word_embeddings: tied,
  };
  const marked = flags(src, 'attention.sliding_window_pattern');
  const every = src.get('attention.sliding_window_pattern');
  if (version === 2) {
    config.attn_logit_softcapping = src.num('attn_logit_softcapping', 50);
    config.final_logit_softcapping = src.num('final_logit_softcapping', 30);
    config.sliding_window = src.num('attention.sliding_window', 4096);
    const pattern = typeof every === 'number' ? every : 2;
    const local = marked ?? Array.from({ length: nLayers }, (_, l) => l % pattern < pattern - 1);
    config.layer_types = local.map((s) => (s ? 'sliding_attention' : 'full_attention'));
  } else {
    config.final_logit_softcapping = src.get('final_logit_softcapping') ?? null;
    config.attn_logit_softcapping = null;
    config.rope_local_base_freq = src.num('rope.freq_base_swa', 10000);
    const window = src.num('attention.sliding_window', 0);
    if (window === 0) config.sliding_window_pattern = 1;
    else {
      config.sliding_window = window;
      if (marked) config.layer_types = marked.map((s) => (s ? 'sliding_attention' : 'full_attention'));
      else config.sliding_window_pattern = typeof every === 'number' ? every : 6;
    }
  }
  out.linear('token_embd.weight', 'embed_tokens.weight');
  out.vector('output_norm.weight', 'norm.weight', -1);
  if (!tied) out.linear('output.weight', 'lm_head.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `layers.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}input_layernorm.weight`, -1);
    for (const x of ['q', 'k', 'v']) out.linear(`${p}attn_${x}.weight`, `${h}self_attn.${x}_proj.weight`);
    if (version === 3) {
      out.vector(`${p}attn_q_norm.weight`, `${h}self_attn.q_norm.weight`, -1);
      out.vector(`${p}attn_k_norm.weight`, `${h}self_attn.k_norm.weight`, -1);
    }
    out.linear(`${p}attn_output.weight`, `${h}self_attn.o_proj.weight`);
    out.vector(`${p}post_attention_norm.weight`, `${h}post_attention_layernorm.weight`, -1);
    out.vector(`${p}ffn_norm.weight`, `${h}pre_feedforward_layernorm.weight`, -1);
    out.linear(`${p}ffn_gate.weight`, `${h}mlp.gate_proj.weight`);
    out.linear(`${p}ffn_up.weight`, `${h}mlp.up_proj.weight`);
    out.linear(`${p}ffn_down.weight`, `${h}mlp.down_proj.weight`);
    out.vector(`${p}post_ffw_norm.weight`, `${h}post_feedforward_layernorm.weight`, -1);
  }
  return config;
}

function phi3(src: Source, out: Out, hfArchitecture: string): Record<string, unknown> {
  if (!src.has('blk.0.attn_qkv.weight')) throw new Error('hf-writer: HF\'s Phi-3 fuses q, k and v (qkv_proj); write the GGUF with fusedQkv');
  const nLayers = layers(src);
  const nEmbd = src.num('embedding_length');
  const nHeads = src.num('attention.head_count');
  const headDim = nEmbd / nHeads;
  const ropeDims = src.num('rope.dimension_count', headDim);
  const pct = ropeDims / headDim;
  if (Math.floor(Math.trunc(pct * nEmbd) / nHeads) !== ropeDims) throw new Error(`hf-writer: partial_rotary_factor ${pct} does not give back ${ropeDims} dims`);
  const tied = !src.has('output.weight');
  const nCtx = src.num('context_length');
  const window = src.num('attention.sliding_window', 0);
  const config: Record<string, unknown> = {
    ...common(src, hfArchitecture, 'phi3'),
    hidden_size: nEmbd,
    num_hidden_layers: nLayers,
    num_attention_heads: nHeads,
    num_key_value_heads: src.num('attention.head_count_kv', nHeads),
    intermediate_size: src.num('feed_forward_length'),
    max_position_embeddings: nCtx,
    original_max_position_embeddings: src.num('rope.scaling.original_context_length', nCtx),
    rms_norm_eps: src.num('attention.layer_norm_rms_epsilon'),
    rope_theta: src.num('rope.freq_base', 10000),
    sliding_window: window === 0 ? null : window,
    hidden_act: 'silu',
    tie_word_embeddings: tied,
  };
  if (ropeDims !== headDim) config.partial_rotary_factor = pct;
  if (src.has('rope_factors_long.weight')) {
    config.rope_scaling = {
      type: 'longrope',
      long_factor: Array.from(src.values('rope_factors_long.weight')),
      short_factor: Array.from(src.values('rope_factors_short.weight')),
      attention_factor: src.num('rope.scaling.attn_factor', 1),
    };
  } else config.rope_scaling = ropeScaling(src);
  out.linear('token_embd.weight', 'embed_tokens.weight');
  out.vector('output_norm.weight', 'norm.weight');
  if (!tied) out.linear('output.weight', 'lm_head.weight', true);
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    const h = `layers.${l}.`;
    out.vector(`${p}attn_norm.weight`, `${h}input_layernorm.weight`);
    out.linear(`${p}attn_qkv.weight`, `${h}self_attn.qkv_proj.weight`);
    out.linear(`${p}attn_output.weight`, `${h}self_attn.o_proj.weight`);
    out.vector(`${p}ffn_norm.weight`, `${h}post_attention_layernorm.weight`);
    out.linear(`${p}ffn_up.weight`, `${h}mlp.gate_up_proj.weight`);
    out.linear(`${p}ffn_down.weight`, `${h}mlp.down_proj.weight`);
  }
  return config;
}

type Writer = (src: Source, out: Out, hfArchitecture: string) => Record<string, unknown>;

/** Per GGUF architecture: its HF classes (the first by default), the names' prefix, the writer. */
const WRITERS: Record<string, { classes: string[]; prefix: string; write: Writer }> = {
  'gpt-neo': { classes: ['GPTNeoForCausalLM'], prefix: 'transformer.', write: gptNeo },
  gpt2: { classes: ['GPT2LMHeadModel'], prefix: 'transformer.', write: gpt2 },
  gptneox: { classes: ['GPTNeoXForCausalLM'], prefix: 'gpt_neox.', write: gptNeoX },
  llama: { classes: ['LlamaForCausalLM', 'MistralForCausalLM'], prefix: 'model.', write: llamaLike },
  qwen2: { classes: ['Qwen2ForCausalLM'], prefix: 'model.', write: llamaLike },
  qwen3: { classes: ['Qwen3ForCausalLM'], prefix: 'model.', write: llamaLike },
  gemma2: { classes: ['Gemma2ForCausalLM'], prefix: 'model.', write: gemma },
  gemma3: { classes: ['Gemma3ForCausalLM'], prefix: 'model.', write: gemma },
  phi3: { classes: ['Phi3ForCausalLM'], prefix: 'model.', write: phi3 },
};

/** The HF checkpoint of a GGUF model whose tensors are all F32. */
export function hfCheckpointFromGGUF(file: GGUFFile, bytes: Uint8Array, options: HfWriteOptions = {}): HfCheckpoint {
  const src = new Source(file, bytes);
  const writer = WRITERS[src.arch];
  if (!writer) throw new Error(`hf-writer: no HF layout for GGUF architecture ${src.arch}`);
  const hfArchitecture = options.hfArchitecture ?? writer.classes[0];
  if (!writer.classes.includes(hfArchitecture)) throw new Error(`hf-writer: a ${src.arch} GGUF is written as ${writer.classes.join(' or ')}, not ${hfArchitecture}`);
  const out = new Out(src, options.bareNames ? '' : writer.prefix);
  const dtype = options.dtype ?? 'F32';
  const config = writer.write(src, out, hfArchitecture);
  config.torch_dtype = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype];

  const entries: SafetensorsEntry[] = out.tensors.map((t) => ({ name: t.name, dtype, shape: t.shape, data: encodeFloats(t.values, dtype) }));
  const files = new Map<string, Uint8Array>();
  files.set('config.json', json(config));
  const shards = options.shards ?? 1;
  if (shards === 1) files.set('model.safetensors', writeSafetensors(entries, { format: 'pt' }));
  else {
    const per = Math.ceil(entries.length / shards);
    if (!(shards >= 2) || (shards - 1) * per >= entries.length) throw new Error(`hf-writer: ${entries.length} tensors cannot fill ${shards} shards`);
    const weightMap: Record<string, string> = {};
    for (let k = 0; k < shards; k++) {
      const name = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = entries.slice(k * per, (k + 1) * per);
      for (const e of part) weightMap[e.name] = name;
      files.set(name, writeSafetensors(part, { format: 'pt' }));
    }
    const totalSize = entries.reduce((sum, e) => sum + e.data.byteLength, 0);
    files.set('model.safetensors.index.json', json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  }
  const tokenizer = options.tokenizer ?? 'tokenizer.json';
  if (tokenizer !== 'none') for (const [name, data] of Object.entries(tokenizerFiles(file, tokenizer))) files.set(name, data);
  for (const [name, data] of Object.entries(options.files ?? {})) files.set(name, data);
  return { config, files };
}

// ---------------------------------------------------------------------------------------------
// Tokenizer files from a GGUF vocabulary

/** llama.cpp's token types (llama_token_type). */
const NORMAL = 1;
const CONTROL = 3;
const USER_DEFINED = 4;

const json = (value: unknown) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);

/**
 * HF tokenizer files holding the GGUF's vocabulary, as transformers' tokenizer conversions lay
 * them out:
 * - a byte-level BPE (tokenizer.ggml.model "gpt2", GPT-2's split regex: tokenizer.ggml.pre
 *   "gpt-2" or none) as GPT2TokenizerFast: ByteLevel pre-tokenizer and decoder, the GGUF's merges;
 * - a SentencePiece vocabulary ("llama") as LlamaTokenizerFast (legacy): a BPE with byte fallback
 *   whose merges are derived from the pieces' scores as transformers' SentencePieceExtractor
 *   derives them (every split of a piece into two pieces, in order of the whole piece's score),
 *   a normalizer that prepends "▁" and turns spaces into "▁", and the matching decoder.
 * Control and user-defined tokens become added_tokens (special: control; normalized in a byte-level
 * BPE, as GPT-2's <|endoftext|> is, and in SentencePiece only where user-defined). `kind` "vocab.json"
 * writes a byte-level BPE as vocab.json and merges.txt instead (EleutherAI's GPT-Neo repositories).
 */
export function tokenizerFiles(file: GGUFFile, kind: 'tokenizer.json' | 'vocab.json' = 'tokenizer.json'): Record<string, Uint8Array> {
  const model = file.metadata.get('tokenizer.ggml.model');
  const tokens = file.metadata.get('tokenizer.ggml.tokens') as string[] | undefined;
  if (!Array.isArray(tokens)) throw new Error('hf-writer: the GGUF has no tokenizer.ggml.tokens');
  const types = (file.metadata.get('tokenizer.ggml.token_type') as Int32Array | undefined) ?? new Int32Array(tokens.length).fill(NORMAL);
  const id = (key: string) => {
    const v = file.metadata.get(`tokenizer.ggml.${key}`);
    return typeof v === 'number' && v < tokens.length ? v : undefined;
  };
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!Object.hasOwn(vocab, t)) vocab[t] = i;
  });
  const added = tokens.flatMap((content, i) =>
    types[i] === CONTROL || types[i] === USER_DEFINED || (model === 'llama' && i === id('unknown_token_id'))
      ? [{ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: model === 'gpt2' || types[i] === USER_DEFINED, special: types[i] !== USER_DEFINED }]
      : [],
  );
  const special = (key: string) => (id(key) === undefined ? null : tokens[id(key)!]);
  const addBos = file.metadata.get('tokenizer.ggml.add_bos_token');
  const config = {
    add_bos_token: typeof addBos === 'boolean' ? addBos : model === 'llama',
    add_eos_token: file.metadata.get('tokenizer.ggml.add_eos_token') === true,
    bos_token: special('bos_token_id'),
    eos_token: special('eos_token_id'),
    unk_token: special('unknown_token_id'),
    pad_token: special('padding_token_id'),
    clean_up_tokenization_spaces: false,
    model_max_length: Number(file.metadata.get(`${String(file.metadata.get('general.architecture'))}.context_length`) ?? 2048),
    added_tokens_decoder: Object.fromEntries(added.map(({ id: i, ...rest }) => [String(i), rest])),
  };

  if (model === 'gpt2') {
    const pre = file.metadata.get('tokenizer.ggml.pre');
    if (pre !== undefined && pre !== 'gpt-2' && pre !== 'default') throw new Error(`hf-writer: byte-level BPE with tokenizer.ggml.pre "${String(pre)}" has its own split regex; pass its tokenizer files, or tokenizer: 'none'`);
    const merges = file.metadata.get('tokenizer.ggml.merges') as string[] | undefined;
    if (!Array.isArray(merges)) throw new Error('hf-writer: a gpt2 vocabulary needs tokenizer.ggml.merges');
    const tokenizerConfig = { ...config, add_prefix_space: false, errors: 'replace', tokenizer_class: 'GPT2Tokenizer' };
    if (kind === 'vocab.json') {
      return { 'vocab.json': json(vocab), 'merges.txt': new TextEncoder().encode(`#version: 0.2\n${merges.join('\n')}\n`), 'tokenizer_config.json': json(tokenizerConfig) };
    }
    const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) => ({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
    const tokenizer = {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: byteLevel(false, true), post_processor: byteLevel(true, false), decoder: byteLevel(true, true),
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
    };
    return { 'tokenizer.json': json(tokenizer), 'tokenizer_config.json': json(tokenizerConfig) };
  }

  if (model === 'llama') {
    if (kind !== 'tokenizer.json') throw new Error('hf-writer: a SentencePiece vocabulary is written as tokenizer.json');
    const scores = file.metadata.get('tokenizer.ggml.scores') as Float32Array | undefined;
    if (!scores) throw new Error('hf-writer: a llama vocabulary needs tokenizer.ggml.scores');
    // Merges: each normal piece split in two normal pieces; all such merges by the whole piece's
    // score, highest first (ties: by the piece's id, then by the parts' ids).
    const normal = new Map<string, number>();
    tokens.forEach((t, i) => {
      if (types[i] === NORMAL && !normal.has(t)) normal.set(t, i);
    });
    const found: { left: number; right: number; piece: number }[] = [];
    for (const [piece, i] of normal) {
      const chars = [...piece];
      for (let k = 1; k < chars.length; k++) {
        const left = normal.get(chars.slice(0, k).join(''));
        const right = normal.get(chars.slice(k).join(''));
        if (left !== undefined && right !== undefined) found.push({ left, right, piece: i });
      }
    }
    found.sort((a, b) => scores[b.piece] - scores[a.piece] || a.piece - b.piece || a.left - b.left || a.right - b.right);
    const unk = special('unknown_token_id') ?? '<unk>';
    const bos = special('bos_token_id');
    const tokenizer = {
      version: '1.0', truncation: null, padding: null, added_tokens: added,
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      post_processor: config.add_bos_token && bos !== null
        ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [id('bos_token_id')], tokens: [bos] } },
        }
        : null,
      decoder: {
        type: 'Sequence',
        decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
        vocab, merges: found.map((m) => `${tokens[m.left]} ${tokens[m.right]}`),
      },
    };
    return { 'tokenizer.json': json(tokenizer), 'tokenizer_config.json': json({ ...config, legacy: true, tokenizer_class: 'LlamaTokenizer' }) };
  }
  throw new Error(`hf-writer: no HF tokenizer layout for tokenizer.ggml.model "${String(model)}"; pass its tokenizer files, or tokenizer: 'none'`);
}

/**
 * A random-weight model of `shape` (writeRandomModel's, all F32, same seed: the same weights) and
 * its HF checkpoint.
 */
export async function writeRandomHfModel(
  shape: ModelShape,
  vocabulary: Record<string, MetaValue>,
  seed = 1,
  options: HfWriteOptions = {},
): Promise<{ gguf: Uint8Array; file: GGUFFile; checkpoint: HfCheckpoint }> {
  const gguf = writeRandomModel(shape, vocabulary, GGMLType.F32, seed);
  const file = await readGGUF(bytesSource(gguf));
  return { gguf, file, checkpoint: hfCheckpointFromGGUF(file, gguf, options) };
}

/** Writes a checkpoint's files into `dir` (created), as a repository folder. */
export function writeCheckpointDir(dir: string, checkpoint: HfCheckpoint): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of checkpoint.files) writeFileSync(join(dir, name), data);
}
