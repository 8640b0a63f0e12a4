/**
 * Hugging Face architectures → GGUF plans (src/model/hf/architectures.ts), checked against the
 * project's HF writer (scripts/lib/hf-writer.ts), which lays the same weights out as HF's modeling
 * code does: random GGUF (model-writer) → HF checkpoint → plan + applyRecipe → GGUF again. Every
 * tensor must come back with exactly the original's values, every key the family reads with the
 * original's value, and the family must read the same hyperparameters from both. No GPU.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { GGMLType, type GGUFFile, readGGUF } from '../src/model/gguf.ts';
import { type MetaValue, type TensorSpec, writeGGUF } from '../src/model/gguf-writer.ts';
import { HF_ARCHITECTURES, planArchitecture } from '../src/model/hf/architectures.ts';
import { applyRecipe, type ArchitecturePlan, type CheckpointTensor, type HfConfig } from '../src/model/hf/plan.ts';
import { readSafetensors, readTensorF32, type SafetensorsTensor } from '../src/model/safetensors.ts';
import { modelConfig } from '../src/runtime/models/index.ts';
import { type ByteSource, bytesSource } from '../src/storage/source.ts';
import { type HfCheckpoint, type HfWriteOptions, tokenizerFiles, writeRandomHfModel } from '../scripts/lib/hf-writer.ts';
import { type ModelShape, vocabularyOf } from '../scripts/lib/model-writer.ts';
import { type FloatDtype, roundFloats } from '../scripts/lib/safetensors-writer.ts';
import { LLAMACPP_VOCAB_DIR, SHARED_MODELS_DIR, STORIES_GGUF } from './helpers/paths.ts';

const small = { nLayers: 2, nEmbd: 64, nFF: 96, nHeads: 4, nKvHeads: 2, contextLength: 64 };
const window8 = { 'attention.sliding_window': { type: 'u32', value: 8 } } as const;
const bools = (value: boolean[]): MetaValue => ({ type: 'array', itemType: 'bool', value });

let vocab: Record<string, MetaValue>;
beforeAll(async () => {
  vocab = vocabularyOf(await readGGUF(bytesSource(readFileSync(STORIES_GGUF))));
});

/** A checkpoint's tensors by name, across its shards: where each lives and what the plan sees. */
async function checkpointTensors(ck: HfCheckpoint): Promise<Map<string, { source: ByteSource; tensor: SafetensorsTensor }>> {
  const out = new Map<string, { source: ByteSource; tensor: SafetensorsTensor }>();
  const index = ck.files.get('model.safetensors.index.json');
  const names = index ? [...new Set(Object.values(JSON.parse(new TextDecoder().decode(index)).weight_map as Record<string, string>))] : ['model.safetensors'];
  for (const name of names) {
    const source = bytesSource(ck.files.get(name)!);
    for (const tensor of (await readSafetensors(source)).tensors) out.set(tensor.name, { source, tensor });
  }
  return out;
}

function shapes(tensors: Map<string, { tensor: SafetensorsTensor }>): Map<string, CheckpointTensor> {
  return new Map([...tensors].map(([name, { tensor }]) => [name, { dtype: tensor.dtype, shape: tensor.shape }]));
}

/** The GGUF a converter following `plan` writes (all F32), with the original's vocabulary. */
async function convert(plan: ArchitecturePlan, tensors: Map<string, { source: ByteSource; tensor: SafetensorsTensor }>, vocabulary = vocab): Promise<{ file: GGUFFile; bytes: Uint8Array }> {
  const specs: TensorSpec[] = [];
  for (const recipe of plan.tensors) {
    const sources = await Promise.all(recipe.from.map((name) => readTensorF32(tensors.get(name)!.source, tensors.get(name)!.tensor)));
    const values = applyRecipe(recipe, sources);
    specs.push({ name: recipe.name, type: GGMLType.F32, dims: recipe.dims, data: new Uint8Array(values.slice().buffer) });
  }
  const bytes = writeGGUF({ metadata: { ...plan.metadata, ...vocabulary }, tensors: specs });
  return { file: await readGGUF(bytesSource(bytes)), bytes };
}

function tensorValues(file: GGUFFile, bytes: Uint8Array, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name)!;
  return new Float32Array(new Uint8Array(bytes.subarray(t.offset, t.offset + t.nBytes)).buffer);
}

/** The metadata keys `modelConfig` reads from `file` (its family's keys, with or without a value there). */
function keysRead(file: GGUFFile): Set<string> {
  const read = new Set<string>();
  class Recording extends Map<string, unknown> {
    override get(key: string) {
      read.add(key);
      return super.get(key);
    }
    override has(key: string) {
      read.add(key);
      return super.has(key);
    }
  }
  modelConfig({ ...file, metadata: new Recording(file.metadata) as GGUFFile['metadata'] });
  return read;
}

/** Index of the first value that differs (bit for bit, -0 ≠ 0), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

interface Case {
  shape: ModelShape;
  options?: HfWriteOptions;
  /** The config.json class expected (default: the writer's first for the architecture). */
  hfArchitecture?: string;
  /** GGUF tensors the plan adds that the original lacks, and the original tensor each copies. */
  copies?: Record<string, string>;
}

const CASES: Record<string, Case> = {
  'GPT-Neo: local/global layers, tied lm_head': {
    shape: { architecture: 'gpt-neo', ...small, nKvHeads: 4, tiedOutput: true, extra: { ...window8, 'attention.sliding_window_pattern': bools([false, true]), 'attention.scale': { type: 'f32', value: 1 } } },
  },
  'GPT-Neo: own lm_head, 4 layers local first, F16 in 3 shards': {
    shape: { architecture: 'gpt-neo', ...small, nLayers: 4, nKvHeads: 4, extra: { ...window8, 'attention.sliding_window_pattern': bools([true, false, true, false]) } },
    options: { dtype: 'F16', shards: 3 },
  },
  'GPT-2: Conv1D transposed, tied, names without "transformer."': {
    shape: { architecture: 'gpt2', ...small, nKvHeads: 4, tiedOutput: true },
    options: { bareNames: true },
  },
  'GPT-2: own lm_head, BF16': { shape: { architecture: 'gpt2', ...small, nKvHeads: 4 }, options: { dtype: 'BF16' } },
  'GPT-NeoX: interleaved QKV, parallel residual, rotary_pct 0.5': {
    shape: { architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 8, extra: { use_parallel_residual: { type: 'bool', value: true } } },
  },
  'GPT-NeoX: sequential residual, rotary_pct 0.25, tied (output.weight copied from the embedding)': {
    shape: { architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 4, tiedOutput: true, extra: { use_parallel_residual: { type: 'bool', value: false } } },
    copies: { 'output.weight': 'token_embd.weight' },
  },
  'Llama: rotate-half q/k permuted, GQA, own lm_head': { shape: { architecture: 'llama', ...small, ropeTheta: 500000 } },
  'Llama: head_dim 32 of 64/4, linear RoPE scaling, F16 in 2 shards': {
    shape: { architecture: 'llama', ...small, headDim: 32, extra: { 'rope.scaling.type': { type: 'string', value: 'linear' }, 'rope.scaling.factor': { type: 'f32', value: 4 } } },
    options: { dtype: 'F16', shards: 2 },
  },
  'Mistral: a llama, tied, no "model." prefix': {
    shape: { architecture: 'llama', ...small, tiedOutput: true },
    options: { hfArchitecture: 'MistralForCausalLM', bareNames: true },
    hfArchitecture: 'MistralForCausalLM',
  },
  'Qwen2: q/k/v biases, NeoX RoPE (no permutation), tied': { shape: { architecture: 'qwen2', ...small, tiedOutput: true, ropeTheta: 1e6 } },
  'Qwen3: per-head q/k norms, head_dim 32': { shape: { architecture: 'qwen3', ...small, headDim: 32, ropeTheta: 1e6 } },
  'Gemma 2: norms stored w - 1, soft-capping, window 8 on even layers': {
    shape: { architecture: 'gemma2', ...small, headDim: 32, tiedOutput: true, extra: { ...window8, attn_logit_softcapping: { type: 'f32', value: 5 }, final_logit_softcapping: { type: 'f32', value: 10 } } },
  },
  'Gemma 2: BF16': { shape: { architecture: 'gemma2', ...small, headDim: 16, tiedOutput: true, extra: window8 }, options: { dtype: 'BF16' } },
  'Gemma 3: q/k norms, 5 local : 1 global, rope_local_base_freq, own lm_head': {
    shape: { architecture: 'gemma3', ...small, nLayers: 6, nEmbd: 32, nFF: 64, nHeads: 2, nKvHeads: 1, headDim: 32, ropeTheta: 1e6, extra: { ...window8, 'rope.freq_base_swa': { type: 'f32', value: 20000 } } },
  },
  'Gemma 3: a per-layer pattern (layer_types), final soft-capping, linear scaling, tied': {
    shape: {
      architecture: 'gemma3', ...small, nLayers: 4, headDim: 16, tiedOutput: true,
      extra: {
        ...window8, 'attention.sliding_window_pattern': bools([true, false, false, true]), final_logit_softcapping: { type: 'f32', value: 30 },
        'rope.scaling.type': { type: 'string', value: 'linear' }, 'rope.scaling.factor': { type: 'f32', value: 8 },
      },
    },
  },
  'Gemma 3: sliding_window_pattern 3': {
    shape: { architecture: 'gemma3', ...small, nLayers: 6, headDim: 16, extra: { ...window8, 'attention.sliding_window_pattern': { type: 'u32', value: 3 } } },
  },
  'Phi-3: fused qkv and gate_up, LongRoPE factors from config.json': {
    shape: { architecture: 'phi3', ...small, ropeFactors: true, extra: { 'rope.scaling.original_context_length': { type: 'u32', value: 4096 } } },
  },
  'Phi-3: LongRoPE past the original context with attention_factor, window read, tied': {
    shape: {
      architecture: 'phi3', ...small, ropeFactors: true, tiedOutput: true,
      extra: { 'rope.scaling.original_context_length': { type: 'u32', value: 16 }, 'rope.scaling.attn_factor': { type: 'f32', value: 1.25 }, ...window8 },
    },
  },
};

/** What the checkpoint's dtype keeps of an original value, as the plan must give it back. */
function stored(values: Float32Array, dtype: FloatDtype, gemmaNorm: boolean): Float32Array {
  if (!gemmaNorm) return roundFloats(values, dtype);
  // Stored as w - 1 (rounded), read back + 1.
  return roundFloats(values.map((w) => w - 1), dtype).map((x) => x + 1);
}

describe('HF checkpoint → plan → GGUF gives back the original model', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const { file: original, gguf, checkpoint } = await writeRandomHfModel(c.shape, vocab, 7, c.options);
      if (c.hfArchitecture) expect(checkpoint.config.architectures).toEqual([c.hfArchitecture]);
      const tensors = await checkpointTensors(checkpoint);
      const config = JSON.parse(new TextDecoder().decode(checkpoint.files.get('config.json'))) as HfConfig;
      const plan = planArchitecture(config, shapes(tensors));
      expect(plan.architecture).toBe(c.shape.architecture);
      // Every checkpoint tensor is used (no weight left behind) and each GGUF tensor is planned once.
      expect(new Set(plan.tensors.flatMap((r) => r.from))).toEqual(new Set(tensors.keys()));
      const { file: converted, bytes } = await convert(plan, tensors);

      const copies = c.copies ?? {};
      expect(converted.tensors.map((t) => t.name).sort()).toEqual([...original.tensors.map((t) => t.name), ...Object.keys(copies)].sort());
      const dtype = c.options?.dtype ?? 'F32';
      const gemma = c.shape.architecture.startsWith('gemma');
      for (const t of converted.tensors) {
        const from = copies[t.name] ?? t.name;
        expect(t.dims, t.name).toEqual(original.tensors.find((x) => x.name === from)!.dims);
        const expected = stored(tensorValues(original, gguf, from), dtype, gemma && from.endsWith('norm.weight'));
        const at = firstDifference(tensorValues(converted, bytes, t.name), expected);
        expect(at, `${t.name}: first difference at ${at}`).toBe(-1);
      }

      // Every key the family reads that the original has, with the same value and type.
      const read = keysRead(original);
      for (const key of read) {
        if (!original.metadata.has(key)) continue;
        expect(converted.metadata.get(key), key).toEqual(original.metadata.get(key));
      }
      expect(modelConfig(converted).config).toEqual(modelConfig(original).config);
    });
  }
});

describe('plans of other settings', () => {
  async function hf(shape: ModelShape, options?: HfWriteOptions): Promise<{ config: HfConfig; tensors: Map<string, CheckpointTensor> }> {
    const { checkpoint } = await writeRandomHfModel(shape, vocab, 3, options);
    return { config: { ...checkpoint.config }, tensors: shapes(await checkpointTensors(checkpoint)) };
  }
  const llama = { architecture: 'llama', ...small } as const;

  it('Llama 3 rope_scaling becomes a rope_freqs tensor of HF\'s frequency divisors', async () => {
    const { config, tensors } = await hf(llama);
    config.rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    config.rope_theta = 500000;
    const plan = planArchitecture(config, tensors);
    const freqs = plan.tensors.find((t) => t.name === 'rope_freqs.weight')!;
    expect(freqs.from).toEqual([]);
    const f = applyRecipe(freqs, []);
    expect(f.length).toBe(8); // head 16: 8 frequencies
    // Wavelength 2π·θ^(2i/16): 6.3 for i = 0, under 64/4 = 16: kept; over 64 for i ≥ 2: divided by 8; i = 1 (32.5) blended.
    expect(f[0]).toBe(1);
    expect(Array.from(f.subarray(2))).toEqual([8, 8, 8, 8, 8, 8]);
    const wavelen = 2 * Math.PI * 500000 ** (2 / 16);
    const smooth = (64 / wavelen - 1) / 3;
    expect(f[1]).toBeCloseTo(1 / ((1 - smooth) / 8 + smooth), 5);
  });

  it('GPT-NeoX takes partial_rotary_factor and rope_theta (transformers 5 names) as rotary_pct and rotary_emb_base', async () => {
    const { config, tensors } = await hf({ architecture: 'gptneox', ...small, nKvHeads: 4, ropeDims: 8 });
    config.partial_rotary_factor = config.rotary_pct;
    config.rope_theta = 1234;
    delete config.rotary_pct;
    delete config.rotary_emb_base;
    const plan = planArchitecture(config, tensors);
    expect(plan.metadata['gptneox.rope.dimension_count']).toEqual({ type: 'u32', value: 8 });
    expect(plan.metadata['gptneox.rope.freq_base']).toEqual({ type: 'f32', value: 1234 });
  });

  it('Mistral\'s sliding_window caps the context where llama.cpp\'s full attention equals it', async () => {
    const { config, tensors } = await hf(llama, { hfArchitecture: 'MistralForCausalLM' });
    config.sliding_window = 32;
    expect(planArchitecture(config, tensors).metadata['llama.context_length']).toEqual({ type: 'u32', value: 32 });
  });
});

describe('refusals', () => {
  async function hf(shape: ModelShape): Promise<{ config: HfConfig; tensors: Map<string, CheckpointTensor> }> {
    const { checkpoint } = await writeRandomHfModel(shape, vocab, 3);
    return { config: { ...checkpoint.config }, tensors: shapes(await checkpointTensors(checkpoint)) };
  }
  const refused = (f: () => unknown, code: string, words: RegExp) => {
    let error: unknown;
    try {
      f();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LanternError);
    expect((error as LanternError).code).toBe(code);
    expect((error as LanternError).message).toMatch(words);
  };
  const gptNeo: ModelShape = { architecture: 'gpt-neo', ...small, nKvHeads: 4, tiedOutput: true, extra: { ...window8, 'attention.sliding_window_pattern': bools([false, true]) } };
  const llama: ModelShape = { architecture: 'llama', ...small };

  it('an unknown architecture names every supported one', () => {
    refused(() => planArchitecture({ architectures: ['BertForMaskedLM'] }, new Map()), 'UNSUPPORTED_ARCH', /BertForMaskedLM.*GPTNeoForCausalLM.*Phi3ForCausalLM/);
    expect(HF_ARCHITECTURES).toEqual(expect.arrayContaining(['GPTNeoForCausalLM', 'GPT2LMHeadModel', 'GPTNeoXForCausalLM', 'LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'Gemma2ForCausalLM', 'Gemma3ForCausalLM', 'Phi3ForCausalLM']));
  });

  it('a config without architectures, or not an object', () => {
    refused(() => planArchitecture({ model_type: 'llama' }, new Map()), 'BAD_MODEL_FILE', /"architectures"/);
    refused(() => planArchitecture([] as unknown as HfConfig, new Map()), 'BAD_MODEL_FILE', /not a JSON object/);
  });

  it('a config without a key the architecture needs names the key', async () => {
    const { config, tensors } = await hf(llama);
    delete config.hidden_size;
    refused(() => planArchitecture(config, tensors), 'BAD_MODEL_FILE', /"hidden_size".*LlamaForCausalLM/);
    const neo = await hf(gptNeo);
    delete neo.config.attention_types;
    delete neo.config.attention_layers;
    refused(() => planArchitecture(neo.config, neo.tensors), 'BAD_MODEL_FILE', /"attention_types"/);
  });

  it('head_dim defaults as each config class has it: Qwen3 128, Gemma 3 256, Gemma 2 none', async () => {
    const qwen3 = await hf({ architecture: 'qwen3', ...small, headDim: 32 });
    delete qwen3.config.head_dim;
    refused(() => planArchitecture(qwen3.config, qwen3.tensors), 'BAD_MODEL_FILE', /q_proj\.weight" is \[128, 64\].*\[512, 64\]/);
    const gemma3 = await hf({ architecture: 'gemma3', ...small, headDim: 16, extra: window8 });
    delete gemma3.config.head_dim;
    delete gemma3.config.query_pre_attn_scalar;
    refused(() => planArchitecture(gemma3.config, gemma3.tensors), 'BAD_MODEL_FILE', /q_proj\.weight" is \[64, 64\].*\[1024, 64\]/);
    const gemma2 = await hf({ architecture: 'gemma2', ...small, headDim: 16, tiedOutput: true });
    delete gemma2.config.head_dim;
    refused(() => planArchitecture(gemma2.config, gemma2.tensors), 'BAD_MODEL_FILE', /"head_dim"/);
  });

  it('a missing tensor is named, with what to do', async () => {
    const { config, tensors } = await hf(llama);
    tensors.delete('model.layers.1.mlp.down_proj.weight');
    refused(() => planArchitecture(config, tensors), 'BAD_MODEL_FILE', /"model\.layers\.1\.mlp\.down_proj\.weight".*download/);
    const neo = await hf({ ...gptNeo, tiedOutput: false });
    neo.tensors.delete('transformer.h.0.attn.attention.out_proj.bias');
    refused(() => planArchitecture(neo.config, neo.tensors), 'BAD_MODEL_FILE', /out_proj\.bias/);
  });

  it('a tensor of the wrong shape or dtype is named', async () => {
    const { config, tensors } = await hf(llama);
    tensors.set('model.layers.0.self_attn.k_proj.weight', { dtype: 'F32', shape: [64, 64] });
    refused(() => planArchitecture(config, tensors), 'BAD_MODEL_FILE', /k_proj\.weight" is \[64, 64\].*\[32, 64\]/);
    tensors.set('model.layers.0.self_attn.k_proj.weight', { dtype: 'I64', shape: [32, 64] });
    refused(() => planArchitecture(config, tensors), 'UNSUPPORTED_TENSOR_TYPE', /k_proj\.weight" is I64/);
  });

  it('settings Lantern cannot run: RoPE scaling types, activations, GPT-Neo patterns that disagree', async () => {
    const { config, tensors } = await hf(llama);
    refused(() => planArchitecture({ ...config, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } }, tensors), 'UNSUPPORTED_ARCH', /yarn/);
    refused(() => planArchitecture({ ...config, rope_scaling: { type: 'dynamic', factor: 2 } }, tensors), 'UNSUPPORTED_ARCH', /dynamic/);
    refused(() => planArchitecture({ ...config, hidden_act: 'relu' }, tensors), 'UNSUPPORTED_ARCH', /relu/);
    const neo = await hf(gptNeo);
    refused(() => planArchitecture({ ...neo.config, activation_function: 'gelu' }, neo.tensors), 'UNSUPPORTED_ARCH', /activation_function "gelu"/);
    refused(() => planArchitecture({ ...neo.config, attention_layers: ['local', 'global'] }, neo.tensors), 'BAD_MODEL_FILE', /attention_layers/);
    refused(() => planArchitecture({ ...neo.config, attention_types: [[['global', 'local'], 2]], attention_layers: undefined }, neo.tensors), 'BAD_MODEL_FILE', /2 entries/);
    const gemma = await hf({ architecture: 'gemma2', ...small, headDim: 32, tiedOutput: true });
    refused(() => planArchitecture({ ...gemma.config, query_pre_attn_scalar: 64 }, gemma.tensors), 'UNSUPPORTED_ARCH', /query_pre_attn_scalar 64/);
    refused(() => planArchitecture({ ...gemma.config, attn_logit_softcapping: null }, gemma.tensors), 'UNSUPPORTED_ARCH', /soft-capping/);
  });
});

/**
 * GPT-Neo's forward pass in float64, as docs/gguf-gpt-neo.md states it, over a gpt-neo GGUF's
 * tensors (ggml layout): the next-token logits after `ids`. No cache: every position recomputed.
 */
function gptNeoLogits(file: GGUFFile, bytes: Uint8Array, ids: readonly number[]): Float64Array {
  const md = (key: string) => file.metadata.get(`gpt-neo.${key}`) as number;
  const cache = new Map<string, Float32Array>();
  const w = (name: string) => cache.get(name) ?? cache.set(name, tensorValues(file, bytes, name)).get(name)!;
  const nEmbd = md('embedding_length');
  const nHeads = md('attention.head_count');
  const headDim = nEmbd / nHeads;
  const eps = md('attention.layer_norm_epsilon');
  const window = md('attention.sliding_window');
  const local = file.metadata.get('gpt-neo.attention.sliding_window_pattern') as boolean[];
  const scale = md('attention.scale');
  const n = ids.length;
  const layerNorm = (x: Float64Array, name: string) => {
    const g = w(`${name}.weight`);
    const b = w(`${name}.bias`);
    let mean = 0;
    for (const v of x) mean += v / x.length;
    let variance = 0;
    for (const v of x) variance += (v - mean) ** 2 / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * g[i] + b[i]);
  };
  // y[o] = Σ_i W[o, i] x[i] (+ b[o]); the ggml [in, out] tensor is `out` rows of `in` values.
  const linear = (x: Float64Array, name: string, bias: boolean) => {
    const W = w(`${name}.weight`);
    const b = bias ? w(`${name}.bias`) : undefined;
    const out = new Float64Array(W.length / x.length);
    for (let o = 0; o < out.length; o++) {
      let sum = b ? b[o] : 0;
      for (let i = 0; i < x.length; i++) sum += W[o * x.length + i] * x[i];
      out[o] = sum;
    }
    return out;
  };
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  const embd = w('token_embd.weight');
  const pos = w('position_embd.weight');
  let xs = ids.map((t, p) => Float64Array.from({ length: nEmbd }, (_, i) => embd[t * nEmbd + i] + pos[p * nEmbd + i]));
  for (let l = 0; l < local.length; l++) {
    const hs = xs.map((x) => layerNorm(x, `blk.${l}.attn_norm`));
    const q = hs.map((h) => linear(h, `blk.${l}.attn_q`, false));
    const k = hs.map((h) => linear(h, `blk.${l}.attn_k`, false));
    const v = hs.map((h) => linear(h, `blk.${l}.attn_v`, false));
    xs = xs.map((x, i) => {
      const att = new Float64Array(nEmbd);
      for (let h = 0; h < nHeads; h++) {
        const seen = Array.from({ length: i + 1 }, (_, j) => j).filter((j) => !local[l] || i - j < window);
        const scores = seen.map((j) => {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[i][h * headDim + d] * k[j][h * headDim + d];
          return dot * scale;
        });
        const top = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - top));
        const total = e.reduce((a, b) => a + b, 0);
        seen.forEach((j, s) => {
          for (let d = 0; d < headDim; d++) att[h * headDim + d] += (e[s] / total) * v[j][h * headDim + d];
        });
      }
      const o = linear(att, `blk.${l}.attn_output`, true);
      return x.map((xv, c) => xv + o[c]);
    });
    xs = xs.map((x) => {
      const up = linear(layerNorm(x, `blk.${l}.ffn_norm`), `blk.${l}.ffn_up`, true).map(gelu);
      const down = linear(up, `blk.${l}.ffn_down`, true);
      return x.map((xv, c) => xv + down[c]);
    });
  }
  const last = layerNorm(xs[n - 1], 'output_norm');
  const out = file.tensors.some((t) => t.name === 'output.weight') ? w('output.weight') : embd;
  return Float64Array.from({ length: out.length / nEmbd }, (_, t) => {
    let sum = 0;
    for (let i = 0; i < nEmbd; i++) sum += out[t * nEmbd + i] * last[i];
    return sum;
  });
}

describe('the real tinystories-gptneo checkpoint', () => {
  const dir = resolve(SHARED_MODELS_DIR, 'tinystories-gptneo');

  it('plans cleanly: 64 wide, 4 layers of 4 heads, MLP 4 × 64, window 32 on the odd (local) layers, tied', async () => {
    const config = JSON.parse(readFileSync(resolve(dir, 'config.json'), 'utf8')) as HfConfig;
    const source = bytesSource(new Uint8Array(readFileSync(resolve(dir, 'model.safetensors'))));
    const st = await readSafetensors(source);
    const tensors = new Map(st.tensors.map((t) => [t.name, { source, tensor: t }]));
    const plan = planArchitecture(config, shapes(tensors));
    expect(plan.architecture).toBe('gpt-neo');
    const m = plan.metadata;
    expect(m['general.architecture']).toEqual({ type: 'string', value: 'gpt-neo' });
    expect(m['gpt-neo.embedding_length']).toEqual({ type: 'u32', value: 64 });
    expect(m['gpt-neo.block_count']).toEqual({ type: 'u32', value: 4 });
    expect(m['gpt-neo.attention.head_count']).toEqual({ type: 'u32', value: 4 });
    expect(m['gpt-neo.feed_forward_length']).toEqual({ type: 'u32', value: 256 });
    expect(m['gpt-neo.context_length']).toEqual({ type: 'u32', value: 512 });
    expect(m['gpt-neo.attention.sliding_window']).toEqual({ type: 'u32', value: 32 });
    expect(m['gpt-neo.attention.sliding_window_pattern']).toEqual({ type: 'array', itemType: 'bool', value: [false, true, false, true] });
    expect(m['gpt-neo.attention.scale']).toEqual({ type: 'f32', value: 1 });
    expect(plan.tensors.some((t) => t.name === 'output.weight')).toBe(false);
    expect(plan.tensors.length).toBe(4 + 4 * 13);

    // Without a vocabulary: the family then takes the vocabulary size from token_embd.
    const { file, bytes } = await convert(plan, tensors, {});
    const { config: c } = modelConfig(file);
    expect(c.windows).toEqual([0, 32, 0, 32]);
    expect(c.vocabSize).toBe(50257);
    // token_embd is wte as stored: row 7454 ("Once") is the checkpoint's row 7454.
    const wte = await readTensorF32(source, st.byName.get('transformer.wte.weight')!);
    expect(Array.from(tensorValues(file, bytes, 'token_embd.weight').subarray(7454 * 64, 7455 * 64))).toEqual(Array.from(wte.subarray(7454 * 64, 7455 * 64)));
  });
  // An independent check of the plan's reading of HF's GPT-Neo (q/k/v, out_proj, c_fc/c_proj as
  // Linear, the local layers, the window counting the query, no score scaling): the converted
  // GGUF, run as docs/gguf-gpt-neo.md states it, gives reference.json's logits (numpy float64 of
  // the HF checkpoint, made for the repository independently of Lantern).
  for (const folder of ['tinystories-gptneo', 'tinystories-gptneo-f16']) {
    it(`${folder}: the converted model gives reference.json's next-token logits and greedy tokens`, async () => {
      const at = resolve(SHARED_MODELS_DIR, folder);
      const config = JSON.parse(readFileSync(resolve(at, 'config.json'), 'utf8')) as HfConfig;
      const source = bytesSource(new Uint8Array(readFileSync(resolve(at, 'model.safetensors'))));
      const tensors = new Map((await readSafetensors(source)).tensors.map((t) => [t.name, { source, tensor: t }]));
      const { file, bytes } = await convert(planArchitecture(config, shapes(tensors)), tensors, {});
      const reference = JSON.parse(readFileSync(resolve(at, 'reference.json'), 'utf8')) as {
        prompts: { prompt_ids: number[]; next_token_top10: [number, number][]; greedy_ids: number[] }[];
      };
      expect(reference.prompts.some((p) => p.prompt_ids.length > 32)).toBe(true); // past the window
      for (const prompt of reference.prompts) {
        const logits = gptNeoLogits(file, bytes, prompt.prompt_ids);
        for (const [id, logit] of prompt.next_token_top10) expect(Math.abs(logits[id] - logit), `token ${id}`).toBeLessThan(1e-3);
      }
      // Greedy: the first 3 tokens of the short prompt.
      const ids = [...reference.prompts[0].prompt_ids];
      for (let i = 0; i < 3; i++) {
        const logits = gptNeoLogits(file, bytes, ids);
        ids.push(logits.indexOf(Math.max(...logits)));
      }
      expect(ids.slice(reference.prompts[0].prompt_ids.length)).toEqual(reference.prompts[0].greedy_ids.slice(0, 3));
    });
  }
});

describe('tokenizer files derived from a GGUF vocabulary', () => {
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const parse = (bytes: Uint8Array) => JSON.parse(decode(bytes));
  const gptNeo = resolve(SHARED_MODELS_DIR, 'tinystories-gptneo');

  it('GPT-2\'s byte-level BPE: the tokenizer.json, vocab.json and merges.txt of the real tinystories-gptneo repository (built from the same vocabulary)', async () => {
    const file = await readGGUF(bytesSource(readFileSync(resolve(LLAMACPP_VOCAB_DIR, 'ggml-vocab-gpt-2.gguf'))));
    const files = tokenizerFiles(file);
    // Compared as canonical text (the same key order): a deep toEqual of 50,257 entries takes seconds; it runs only to show a difference.
    const mine = parse(files['tokenizer.json']);
    const theirs = JSON.parse(readFileSync(resolve(gptNeo, 'tokenizer.json'), 'utf8'));
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) expect(mine).toEqual(theirs);
    const config = parse(files['tokenizer_config.json']);
    const real = JSON.parse(readFileSync(resolve(gptNeo, 'tokenizer_config.json'), 'utf8'));
    for (const key of ['add_bos_token', 'add_prefix_space', 'added_tokens_decoder', 'bos_token', 'eos_token', 'tokenizer_class']) expect(config[key], key).toEqual(real[key]);

    const split = tokenizerFiles(file, 'vocab.json');
    expect(JSON.stringify(parse(split['vocab.json']))).toBe(JSON.stringify(JSON.parse(readFileSync(resolve(gptNeo, 'vocab.json'), 'utf8'))));
    expect(decode(split['merges.txt'])).toBe(readFileSync(resolve(gptNeo, 'merges.txt'), 'utf8'));
  });

  it('a SentencePiece vocabulary (stories260K): a byte-fallback BPE whose merges make pieces, by score', async () => {
    const file = await readGGUF(bytesSource(readFileSync(STORIES_GGUF)));
    const tokens = file.metadata.get('tokenizer.ggml.tokens') as string[];
    const scores = file.metadata.get('tokenizer.ggml.scores') as Float32Array;
    const t = parse(tokenizerFiles(file)['tokenizer.json']);
    expect(t.model).toMatchObject({ type: 'BPE', byte_fallback: true, fuse_unk: true, unk_token: '<unk>' });
    expect(Object.keys(t.model.vocab).length).toBe(512);
    expect(t.model.vocab['<0x0A>']).toBe(tokens.indexOf('<0x0A>'));
    expect(t.added_tokens.map((a: { content: string }) => a.content)).toEqual(['<unk>', '<s>', '</s>']);
    expect(t.model.merges.length).toBeGreaterThan(100);
    let last = Infinity;
    for (const merge of t.model.merges as string[]) {
      const [left, right] = merge.split(' ');
      const piece = tokens.indexOf(left + right);
      expect(piece, merge).toBeGreaterThan(2);
      expect(scores[piece]).toBeLessThanOrEqual(last);
      last = scores[piece];
    }
    // Every normal piece of two or more characters is reachable by some merge.
    const made = new Set((t.model.merges as string[]).map((m) => m.replace(' ', '')));
    const types = file.metadata.get('tokenizer.ggml.token_type') as Int32Array;
    expect(tokens.filter((p, i) => types[i] === 1 && [...p].length > 1 && !made.has(p))).toEqual([]);
  });

  it('a checkpoint carries them, and files given replace them', async () => {
    const shape: ModelShape = { architecture: 'llama', ...small };
    const { checkpoint } = await writeRandomHfModel(shape, vocab, 1, { files: { 'tokenizer_config.json': new TextEncoder().encode('{}') } });
    expect([...checkpoint.files.keys()].sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(decode(checkpoint.files.get('tokenizer_config.json')!)).toBe('{}');
    const none = await writeRandomHfModel(shape, vocab, 1, { tokenizer: 'none', shards: 2 });
    expect([...none.checkpoint.files.keys()].sort()).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  });
});
