import { LanternError } from '../errors.ts';
import { type GGUFFile, metaNumber, metaString } from './gguf.ts';

/** Hyperparameters of a llama-family decoder, read from GGUF metadata. */
export interface LlamaConfig {
  architecture: string;
  name: string;
  nLayers: number;
  nEmbd: number;
  nFF: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Leading dims of each head that RoPE rotates. */
  ropeDim: number;
  ropeTheta: number;
  /** NeoX pairs (i, i + d/2) rather than llama.cpp's adjacent pairs (2i, 2i + 1). */
  ropeNeox: boolean;
  rmsEps: number;
  contextLength: number;
  vocabSize: number;
  /** Q, K and V projections carry a bias (Qwen2). */
  qkvBias: boolean;
}

/** Architectures that run on the llama graph, and how each rotates. */
const ARCHITECTURES: Record<string, { neox: boolean; qkvBias: boolean }> = {
  llama: { neox: false, qkvBias: false },
  mistral: { neox: false, qkvBias: false },
  qwen2: { neox: true, qkvBias: true },
};

export function llamaConfig(file: GGUFFile): LlamaConfig {
  const architecture = metaString(file, 'general.architecture');
  const arch = ARCHITECTURES[architecture];
  if (!arch) {
    throw new LanternError(
      'UNSUPPORTED_ARCH',
      `This model's architecture is "${architecture}"; Lantern runs ${Object.keys(ARCHITECTURES).join(', ')}. Choose a model of one of those families.`,
      { architecture },
    );
  }
  const key = (k: string): string => `${architecture}.${k}`;
  const nEmbd = metaNumber(file, key('embedding_length'));
  const nHeads = metaNumber(file, key('attention.head_count'));
  const headDim = metaNumber(file, key('attention.key_length'), nEmbd / nHeads);
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  const embd = file.tensors.find((t) => t.name === 'token_embd.weight');
  const vocabSize = metaNumber(file, key('vocab_size'), embd?.dims[1] ?? (Array.isArray(tokens) ? tokens.length : 0));
  return {
    architecture,
    name: metaString(file, 'general.name', architecture),
    nLayers: metaNumber(file, key('block_count')),
    nEmbd,
    nFF: metaNumber(file, key('feed_forward_length')),
    nHeads,
    nKvHeads: metaNumber(file, key('attention.head_count_kv'), nHeads),
    headDim,
    ropeDim: metaNumber(file, key('rope.dimension_count'), headDim),
    ropeTheta: metaNumber(file, key('rope.freq_base'), 10000),
    ropeNeox: arch.neox,
    rmsEps: metaNumber(file, key('attention.layer_norm_rms_epsilon'), 1e-5),
    contextLength: metaNumber(file, key('context_length'), 2048),
    vocabSize,
    qkvBias: arch.qkvBias,
  };
}
