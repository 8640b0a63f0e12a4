/**
 * Writes GGUF models for tests and benchmarks: random weights at any shape of any family Lantern
 * runs, or the weights of an existing GGUF re-stored in another type; the vocabulary is copied from a GGUF.
 */
import { GGMLType, type GGUFFile, type GGUFValue } from '../../src/model/gguf.ts';
import { floatToHalfBits, halfToFloat } from '../../src/model/f16.ts';
import { seededRandom } from '../../src/runtime/sampler.ts';
import { type MetaValue, type TensorSpec, writeGGUF } from './gguf-writer.ts';
import { dequantize, isQuantType, QUANT_BLOCKS, quantize, type QuantType } from './quantize.ts';

/** The types a 2-D weight can be written as. */
export type StorageType = GGMLType.F32 | GGMLType.F16 | QuantType;

/**
 * The type of each 2-D weight: one type for all, or a choice per tensor name (a "mixed" file).
 * A tensor whose rows are not whole blocks of the chosen type falls back as llama.cpp's quantize
 * does (storageTypeFor).
 */
export type TensorTypes = StorageType | ((tensorName: string, model: ModelLayout) => StorageType);

/** What a per-tensor choice of type may depend on besides the name. */
export interface ModelLayout {
  nLayers: number;
  /** No output.weight: token_embd serves as the output too. */
  tiedOutput: boolean;
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between. */
function useMoreBits(layer: number, nLayers: number): boolean {
  const eighth = Math.floor(nLayers / 8);
  return layer < eighth || layer >= Math.floor((7 * nLayers) / 8) || (layer - eighth) % 3 === 2;
}

/**
 * llama.cpp's Q4_K_M: Q4_K, with Q6_K for the output (token_embd where the output is tied to it),
 * and for attn_v and ffn_down in the layers use_more_bits picks.
 */
export const Q4_K_M: TensorTypes = (name, { nLayers, tiedOutput }) => {
  if (name === 'output.weight' || (tiedOutput && name === 'token_embd.weight')) return GGMLType.Q6_K;
  const layer = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  return layer && useMoreBits(Number(layer[1]), nLayers) ? GGMLType.Q6_K : GGMLType.Q4_K;
};

/**
 * llama.cpp's Q3_K_M (for a llama without experts): Q3_K, with Q6_K for the output, Q4_K for
 * attn_output, and for attn_v (Q5_K in layers 0 and 1) and ffn_down (Q5_K in the first sixteenth).
 */
export const Q3_K_M: TensorTypes = (name, { nLayers, tiedOutput }) => {
  if (name === 'output.weight' || (tiedOutput && name === 'token_embd.weight')) return GGMLType.Q6_K;
  if (/\.attn_output\.weight$/.test(name)) return GGMLType.Q4_K;
  const layer = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(name);
  if (!layer) return GGMLType.Q3_K;
  const i = Number(layer[1]);
  return (layer[2] === 'attn_v' ? i < 2 : i < Math.floor(nLayers / 16)) ? GGMLType.Q5_K : GGMLType.Q4_K;
};

/** llama.cpp's choice for rows that are not whole blocks of a type (tensor_type_fallback). */
const FALLBACK: Partial<Record<StorageType, StorageType>> = {
  [GGMLType.Q6_K]: GGMLType.Q8_0, [GGMLType.Q5_K]: GGMLType.Q5_1, [GGMLType.Q4_K]: GGMLType.Q5_0,
  [GGMLType.Q3_K]: GGMLType.Q4_0, [GGMLType.Q2_K]: GGMLType.Q4_0, [GGMLType.IQ4_XS]: GGMLType.IQ4_NL,
};

/**
 * The type `name` gets under `types`, given its rows of `cols`. Like llama.cpp's quantize: rows that
 * are not whole 256-blocks turn Q6_K into Q8_0, Q5_K into Q5_1, Q4_K into Q5_0, Q3_K and Q2_K into
 * Q4_0, IQ4_XS into IQ4_NL, and rows that are not whole 32-blocks stay F16.
 */
export function storageTypeFor(types: TensorTypes, name: string, cols: number, model: ModelLayout): StorageType {
  let type = typeof types === 'function' ? types(name, model) : types;
  if (!isQuantType(type)) return type;
  const fallback = FALLBACK[type];
  if (cols % QUANT_BLOCKS[type][0] !== 0 && fallback !== undefined) type = fallback as QuantType;
  return cols % QUANT_BLOCKS[type][0] === 0 ? type : GGMLType.F16;
}

/**
 * general.file_type as llama.cpp numbers it (LLAMA_FTYPE_MOSTLY_*): a single K-quant type as its
 * _S file (Q3_K_S 11, Q4_K_S 14, Q5_K_S 16), Q2_K 10, Q6_K 18, IQ4_NL 25, IQ4_XS 30, BF16 32.
 */
const FILE_TYPES: Record<StorageType, number> = {
  [GGMLType.F32]: 0, [GGMLType.F16]: 1, [GGMLType.Q4_0]: 2, [GGMLType.Q4_1]: 3, [GGMLType.Q8_0]: 7,
  [GGMLType.Q5_0]: 8, [GGMLType.Q5_1]: 9, [GGMLType.Q2_K]: 10, [GGMLType.Q3_K]: 11, [GGMLType.Q4_K]: 14,
  [GGMLType.Q5_K]: 16, [GGMLType.Q6_K]: 18, [GGMLType.IQ4_NL]: 25, [GGMLType.IQ4_XS]: 30, [GGMLType.BF16]: 32,
};

function fileType(types: TensorTypes): number {
  if (types === Q3_K_M) return 12;
  if (typeof types === 'function') return 15; // Q4_K_M
  return FILE_TYPES[types];
}

/** Stores f32 values as the given type. */
export function encodeTensor(values: Float32Array, type: StorageType): Uint8Array {
  if (type === GGMLType.F32) return new Uint8Array(values.slice().buffer);
  if (isQuantType(type)) return quantize(values, type);
  return new Uint8Array(Uint16Array.from(values, floatToHalfBits).buffer);
}

/** Tokenizer metadata (tokenizer.ggml.*) of another GGUF, to reuse its vocabulary. */
export function vocabularyOf(file: GGUFFile): Record<string, MetaValue> {
  const out: Record<string, MetaValue> = {};
  for (const [key, value] of file.metadata) {
    if (!key.startsWith('tokenizer.')) continue;
    out[key] = toMeta(value);
  }
  return out;
}

/** Keys llama.cpp reads as f32 even when the value is whole (rope.freq_base = 10000). */
const FLOAT_KEY = /(freq_base|freq_scale|epsilon|_scale|factor)$/;

function toMeta(value: GGUFValue, key = ''): MetaValue {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value === 'boolean') return { type: 'bool', value };
  if (typeof value === 'bigint') return { type: 'u64', value };
  if (typeof value === 'number') return Number.isInteger(value) && !FLOAT_KEY.test(key) ? { type: value < 0 ? 'i32' : 'u32', value } : { type: 'f32', value };
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return { type: 'array', itemType: 'string', value: value as string[] };
    if (value.every((v) => typeof v === 'boolean')) return { type: 'array', itemType: 'bool', value: value as boolean[] };
  }
  if (value instanceof Float32Array) return { type: 'array', itemType: 'f32', value: Array.from(value) };
  if (value instanceof Int32Array) return { type: 'array', itemType: 'i32', value: Array.from(value) };
  if (value instanceof Uint32Array) return { type: 'array', itemType: 'u32', value: Array.from(value) };
  throw new Error('unsupported metadata value in vocabulary copy');
}

/** Deterministic normal-ish values (sum of uniforms), scaled. */
export function randomWeights(n: number, seed: number, scale: number): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() - 1.5) * 2 * scale;
  return out;
}

export type FamilyArchitecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'smollm3' | 'phi3' | 'gemma2' | 'gemma3' | 'olmo2' | 'gpt2' | 'gptneox' | 'gpt-neo';

export interface ModelShape {
  architecture: FamilyArchitecture;
  nLayers: number;
  nEmbd: number;
  nFF: number;
  nHeads: number;
  nKvHeads: number;
  /** attention.key_length/value_length, where the head size is not n_embd / n_head. */
  headDim?: number;
  contextLength: number;
  ropeTheta?: number;
  /** rope.dimension_count: partial rotary (GPT-NeoX). */
  ropeDims?: number;
  /** No output.weight: the logits reuse token_embd. */
  tiedOutput?: boolean;
  /** Phi-3: one attn_qkv (default); false writes attn_q/k/v. GPT-2 and GPT-NeoX always fuse. */
  fusedQkv?: boolean;
  /** Phi-3's LongRoPE factor tensors (rope_factors_short/long). */
  ropeFactors?: boolean;
  /** A rope_freqs.weight tensor of Llama 3-style frequency factors (1 for high, up to 8 for low frequencies). */
  ropeFreqs?: boolean;
  /** More keys under the architecture's prefix (e.g. attention.sliding_window, use_parallel_residual). */
  extra?: Record<string, MetaValue>;
}

interface Layout {
  /** LayerNorm with bias (GPT-2, GPT-NeoX) rather than RMSNorm. */
  layerNorm: boolean;
  /** Biases on every linear (GPT-2, GPT-NeoX), on q, k and v only (Qwen2), or on all but q, k and v (GPT-Neo). */
  biases: 'none' | 'qkv' | 'all' | 'notQkv';
  fusedQkv: boolean;
  /** 'gated': ffn_gate and ffn_up; 'fused': one ffn_up of 2 n_ff rows (Phi-3); 'plain': up and down only. */
  mlp: 'gated' | 'fused' | 'plain';
  /** Norm before attention and the MLP (attn_norm, ffn_norm). */
  preNorm: boolean;
  /** Norms after attention and the MLP (post_attention_norm, post_ffw_norm). */
  postNorm: boolean;
  qkNorm: 'none' | 'head' | 'whole';
  positions: boolean;
}

const LAYOUTS: Record<FamilyArchitecture, Omit<Layout, 'fusedQkv'> & { fusedQkv?: boolean }> = {
  llama: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: false, qkNorm: 'none', positions: false },
  mistral: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: false, qkNorm: 'none', positions: false },
  qwen2: { layerNorm: false, biases: 'qkv', mlp: 'gated', preNorm: true, postNorm: false, qkNorm: 'none', positions: false },
  qwen3: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: false, qkNorm: 'head', positions: false },
  smollm3: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: false, qkNorm: 'none', positions: false },
  phi3: { layerNorm: false, biases: 'none', mlp: 'fused', preNorm: true, postNorm: false, qkNorm: 'none', positions: false },
  gemma2: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: true, qkNorm: 'none', positions: false },
  gemma3: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: true, postNorm: true, qkNorm: 'head', positions: false },
  olmo2: { layerNorm: false, biases: 'none', mlp: 'gated', preNorm: false, postNorm: true, qkNorm: 'whole', positions: false },
  gpt2: { layerNorm: true, biases: 'all', mlp: 'plain', preNorm: true, postNorm: false, qkNorm: 'none', positions: true, fusedQkv: true },
  gptneox: { layerNorm: true, biases: 'all', mlp: 'plain', preNorm: true, postNorm: false, qkNorm: 'none', positions: false, fusedQkv: true },
  'gpt-neo': { layerNorm: true, biases: 'notQkv', mlp: 'plain', preNorm: true, postNorm: false, qkNorm: 'none', positions: true, fusedQkv: false },
};

/**
 * A random-weight model of `shape` in any family Lantern runs (src/runtime/models/*.ts), with the
 * tensors and keys llama.cpp's loader reads for its architecture: 2-D weights stored as `types`,
 * norms and biases F32 as llama.cpp's converter keeps them, the vocabulary of another GGUF.
 */
export function writeRandomModel(shape: ModelShape, vocabulary: Record<string, MetaValue>, types: TensorTypes, seed = 1): Uint8Array {
  const tokens = vocabulary['tokenizer.ggml.tokens'];
  if (!tokens || tokens.type !== 'array') throw new Error('vocabulary lacks tokenizer.ggml.tokens');
  const nVocab = tokens.value.length;
  const a = shape.architecture;
  const layout: Layout = { ...LAYOUTS[a], fusedQkv: LAYOUTS[a].fusedQkv ?? (a === 'phi3' && shape.fusedQkv !== false) };
  const { nEmbd, nFF, nHeads, nKvHeads } = shape;
  const headDim = shape.headDim ?? nEmbd / nHeads;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const tensors: TensorSpec[] = [];
  let s = seed;
  const modelLayout: ModelLayout = { nLayers: shape.nLayers, tiedOutput: !!shape.tiedOutput };
  const matrix = (name: string, cols: number, rows: number, scale = 1 / Math.sqrt(cols)) => {
    const type = storageTypeFor(types, name, cols, modelLayout);
    tensors.push({ name, type, dims: [cols, rows], data: encodeTensor(randomWeights(cols * rows, s++, scale), type) });
  };
  const vector = (name: string, n: number, base: number, scale: number) => {
    const v = randomWeights(n, s++, scale).map((x) => x + base);
    tensors.push({ name, type: GGMLType.F32, dims: [n], data: encodeTensor(v, GGMLType.F32) });
  };
  const norm = (name: string, n = nEmbd) => {
    vector(`${name}.weight`, n, 1, 0.1);
    if (layout.layerNorm) vector(`${name}.bias`, n, 0, 0.1);
  };
  const linear = (name: string, cols: number, rows: number, bias: boolean) => {
    matrix(`${name}.weight`, cols, rows);
    if (bias) vector(`${name}.bias`, rows, 0, 0.2);
  };

  matrix('token_embd.weight', nEmbd, nVocab, 1);
  if (layout.positions) matrix('position_embd.weight', nEmbd, shape.contextLength, 0.5);
  norm('output_norm');
  if (!shape.tiedOutput) matrix('output.weight', nEmbd, nVocab);
  if (shape.ropeFreqs) {
    const half = (shape.ropeDims ?? headDim) / 2;
    const factors = Float32Array.from({ length: half }, (_, i) => 1 + (7 * i) / Math.max(1, half - 1));
    tensors.push({ name: 'rope_freqs.weight', type: GGMLType.F32, dims: [half], data: encodeTensor(factors, GGMLType.F32) });
  }
  if (shape.ropeFactors) {
    const half = (shape.ropeDims ?? headDim) / 2;
    for (const [name, top] of [['rope_factors_short.weight', 2], ['rope_factors_long.weight', 6]] as const) {
      const factors = Float32Array.from({ length: half }, (_, i) => 1 + ((top - 1) * i) / Math.max(1, half - 1));
      tensors.push({ name, type: GGMLType.F32, dims: [half], data: encodeTensor(factors, GGMLType.F32) });
    }
  }
  for (let l = 0; l < shape.nLayers; l++) {
    const p = `blk.${l}.`;
    if (layout.preNorm) norm(`${p}attn_norm`);
    const qkvBias = layout.biases === 'qkv' || layout.biases === 'all';
    if (layout.fusedQkv) linear(`${p}attn_qkv`, nEmbd, qDim + 2 * kvDim, qkvBias);
    else {
      linear(`${p}attn_q`, nEmbd, qDim, qkvBias);
      linear(`${p}attn_k`, nEmbd, kvDim, qkvBias);
      linear(`${p}attn_v`, nEmbd, kvDim, qkvBias);
    }
    if (layout.qkNorm !== 'none') {
      vector(`${p}attn_q_norm.weight`, layout.qkNorm === 'head' ? headDim : qDim, 1, 0.1);
      vector(`${p}attn_k_norm.weight`, layout.qkNorm === 'head' ? headDim : kvDim, 1, 0.1);
    }
    const bias = layout.biases === 'all' || layout.biases === 'notQkv';
    linear(`${p}attn_output`, qDim, nEmbd, bias);
    if (layout.postNorm) norm(`${p}post_attention_norm`);
    if (layout.preNorm) norm(`${p}ffn_norm`);
    if (layout.mlp === 'gated') matrix(`${p}ffn_gate.weight`, nEmbd, nFF);
    linear(`${p}ffn_up`, nEmbd, layout.mlp === 'fused' ? 2 * nFF : nFF, bias);
    linear(`${p}ffn_down`, nFF, nEmbd, bias);
    if (layout.postNorm) norm(`${p}post_ffw_norm`);
  }

  const metadata: Record<string, MetaValue> = {
    'general.architecture': { type: 'string', value: a },
    // Not the architecture's name: llama.cpp sets Phi-3's special-token attributes by general.name,
    // and fails on a vocabulary without them.
    'general.name': { type: 'string', value: `random weights ${nEmbd}x${shape.nLayers}` },
    [`${a}.context_length`]: { type: 'u32', value: shape.contextLength },
    [`${a}.embedding_length`]: { type: 'u32', value: nEmbd },
    [`${a}.feed_forward_length`]: { type: 'u32', value: nFF },
    [`${a}.block_count`]: { type: 'u32', value: shape.nLayers },
    [`${a}.attention.head_count`]: { type: 'u32', value: nHeads },
    [`${a}.attention.head_count_kv`]: { type: 'u32', value: nKvHeads },
    [`${a}.rope.freq_base`]: { type: 'f32', value: shape.ropeTheta ?? 10000 },
    [layout.layerNorm ? `${a}.attention.layer_norm_epsilon` : `${a}.attention.layer_norm_rms_epsilon`]: { type: 'f32', value: layout.layerNorm ? 1e-5 : 1e-6 },
    'general.file_type': { type: 'u32', value: fileType(types) },
    ...vocabulary,
  };
  if (shape.headDim !== undefined) {
    metadata[`${a}.attention.key_length`] = { type: 'u32', value: headDim };
    metadata[`${a}.attention.value_length`] = { type: 'u32', value: headDim };
  }
  if (shape.ropeDims !== undefined) metadata[`${a}.rope.dimension_count`] = { type: 'u32', value: shape.ropeDims };
  if (a === 'gpt-neo') {
    // Lantern's gpt-neo spells out which layers are local (docs/gguf-gpt-neo.md): HF's default, global then local.
    metadata[`${a}.attention.sliding_window_pattern`] = { type: 'array', itemType: 'bool', value: Array.from({ length: shape.nLayers }, (_, l) => l % 2 === 1) };
    metadata[`${a}.attention.sliding_window`] = { type: 'u32', value: 256 };
  }
  for (const [key, value] of Object.entries(shape.extra ?? {})) metadata[`${a}.${key}`] = value;
  return writeGGUF({ metadata, tensors });
}

/** The same model with every 2-D weight re-stored as `types` gives (norms stay F32). */
export function restoreModel(file: GGUFFile, bytes: Uint8Array, types: TensorTypes): Uint8Array {
  const metadata: Record<string, MetaValue> = {};
  for (const [key, value] of file.metadata) if (key !== 'general.alignment') metadata[key] = toMeta(value, key);
  metadata['general.file_type'] = { type: 'u32', value: fileType(types) };
  const layers = file.tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)).filter((m) => m !== null);
  const layout: ModelLayout = {
    nLayers: 1 + Math.max(-1, ...layers.map((m) => Number(m[1]))),
    tiedOutput: !file.tensors.some((t) => t.name === 'output.weight'),
  };
  const tensors: TensorSpec[] = file.tensors.map((t) => {
    if (t.type !== GGMLType.F32) throw new Error(`restoreModel reads F32 tensors only; ${t.name} is not`);
    // Copied out: a Node Buffer's slice() shares its (pooled) memory.
    const values = new Float32Array(new Uint8Array(bytes.subarray(t.offset, t.offset + t.nBytes)).buffer);
    const storeAs = t.dims.length >= 2 ? storageTypeFor(types, t.name, t.dims[0], layout) : GGMLType.F32;
    return { name: t.name, type: storeAs, dims: t.dims, data: encodeTensor(values, storeAs) };
  });
  return writeGGUF({ metadata, tensors });
}

/**
 * The same model with every tensor stored as F32, blocks decoded by quantize.ts: the exact values
 * a correct reader of `file` computes with, for comparisons free of llama.cpp's activation quantization.
 */
export function expandModel(file: GGUFFile, bytes: Uint8Array): Uint8Array {
  const metadata: Record<string, MetaValue> = {};
  for (const [key, value] of file.metadata) if (key !== 'general.alignment') metadata[key] = toMeta(value, key);
  metadata['general.file_type'] = { type: 'u32', value: 0 };
  const tensors: TensorSpec[] = file.tensors.map((t) => {
    const raw = new Uint8Array(bytes.subarray(t.offset, t.offset + t.nBytes));
    let values: Float32Array;
    if (t.type === GGMLType.F32) values = new Float32Array(raw.buffer);
    else if (t.type === GGMLType.F16) values = halfToFloat(new Uint16Array(raw.buffer));
    else if (isQuantType(t.type)) values = Float32Array.from(dequantize(raw, t.type, t.nElements));
    else throw new Error(`expandModel: ${t.name} is ${GGMLType[t.type]}, which quantize.ts does not decode`);
    return { name: t.name, type: GGMLType.F32, dims: t.dims, data: encodeTensor(values, GGMLType.F32) };
  });
  return writeGGUF({ metadata, tensors });
}
