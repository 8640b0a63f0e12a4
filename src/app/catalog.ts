/**
 * The models the demo offers: the bundled stories260K, and on the Hugging Face hub one chat model
 * (or base model, for the classics) of each family this build runs (src/runtime/models), in
 * formats it reads (F32, F16, Q8_0, Q4_0, Q4_K_M). Small models whose widths are not multiples of
 * 256 are listed as Q8_0: their Q4_K_M files fall back to Q5_0 in places.
 */

export interface CatalogModel {
  /** The <option> value. */
  key: string;
  label: string;
  url: string;
  /** Download size in bytes, as the hub lists it (rounded). */
  sizeBytes: number;
  quant: string;
  /** A Hugging Face checkpoint (safetensors), converted on load: its size after q8_0 compression. */
  compressedBytes?: number;
}

const HF = 'https://huggingface.co';

/** Served by this site from public/models; small enough to load on every visit. */
export const BUNDLED: CatalogModel = {
  key: 'bundled',
  label: 'stories260K',
  url: `${import.meta.env.BASE_URL}models/stories260K.gguf`,
  sizeBytes: 1_185_376,
  quant: 'F32',
};

export const HUB_MODELS: readonly CatalogModel[] = [
  {
    key: 'smollm2-135m',
    label: 'SmolLM2 135M Instruct',
    url: `${HF}/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q8_0.gguf`,
    sizeBytes: 145_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'smollm2-360m',
    label: 'SmolLM2 360M Instruct',
    url: `${HF}/HuggingFaceTB/SmolLM2-360M-Instruct-GGUF/resolve/main/smollm2-360m-instruct-q8_0.gguf`,
    sizeBytes: 386_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'qwen2.5-0.5b',
    label: 'Qwen2.5 0.5B Instruct',
    url: `${HF}/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q8_0.gguf`,
    sizeBytes: 676_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'qwen3-0.6b',
    label: 'Qwen3 0.6B',
    url: `${HF}/Qwen/Qwen3-0.6B-GGUF/resolve/main/Qwen3-0.6B-Q8_0.gguf`,
    sizeBytes: 639_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'gemma-3-270m',
    label: 'Gemma 3 270M Instruct',
    url: `${HF}/ggml-org/gemma-3-270m-it-GGUF/resolve/main/gemma-3-270m-it-Q8_0.gguf`,
    sizeBytes: 292_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'gemma-3-1b',
    label: 'Gemma 3 1B Instruct',
    url: `${HF}/ggml-org/gemma-3-1b-it-GGUF/resolve/main/gemma-3-1b-it-Q4_K_M.gguf`,
    sizeBytes: 806_000_000,
    quant: 'Q4_K_M',
  },
  {
    key: 'olmo-2-1b',
    label: 'OLMo 2 1B Instruct',
    url: `${HF}/allenai/OLMo-2-0425-1B-Instruct-GGUF/resolve/main/OLMo-2-0425-1B-Instruct-Q4_K_M.gguf`,
    sizeBytes: 935_000_000,
    quant: 'Q4_K_M',
  },
  {
    key: 'smollm3-3b',
    label: 'SmolLM3 3B',
    url: `${HF}/ggml-org/SmolLM3-3B-GGUF/resolve/main/SmolLM3-Q4_K_M.gguf`,
    sizeBytes: 1_920_000_000,
    quant: 'Q4_K_M',
  },
  {
    key: 'phi-3.5-mini',
    label: 'Phi-3.5 mini Instruct',
    url: `${HF}/bartowski/Phi-3.5-mini-instruct-GGUF/resolve/main/Phi-3.5-mini-instruct-Q4_K_M.gguf`,
    sizeBytes: 2_390_000_000,
    quant: 'Q4_K_M',
  },
  {
    key: 'gpt2',
    label: 'GPT-2 (124M, base)',
    url: `${HF}/QuantFactory/gpt2-GGUF/resolve/main/gpt2.Q8_0.gguf`,
    sizeBytes: 178_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'pythia-160m',
    label: 'Pythia 160M (GPT-NeoX, base)',
    url: `${HF}/mradermacher/pythia-160m-GGUF/resolve/main/pythia-160m.Q8_0.gguf`,
    sizeBytes: 180_000_000,
    quant: 'Q8_0',
  },
  {
    key: 'llama-3.2-1b',
    label: 'Llama 3.2 1B Instruct',
    url: `${HF}/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf`,
    sizeBytes: 808_000_000,
    quant: 'Q4_K_M',
  },
  {
    key: 'tinyllama-1.1b',
    label: 'TinyLlama 1.1B Chat v1.0',
    url: `${HF}/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf`,
    sizeBytes: 669_000_000,
    quant: 'Q4_K_M',
  },
];

/**
 * Hugging Face checkpoints as published (config.json, F32 safetensors, the GPT-2 tokenizer),
 * converted and compressed on load (src/model/hf/convert.ts): GPT-Neo has no GGUF anywhere.
 * Sizes: the hub's listing of model.safetensors; after q8_0, 34 bytes per 32 weights.
 */
export const CHECKPOINTS: readonly CatalogModel[] = [
  {
    key: 'gpt-neo-125m',
    label: 'GPT-Neo 125M (EleutherAI, base)',
    url: `${HF}/EleutherAI/gpt-neo-125m`,
    sizeBytes: 526_000_000,
    quant: 'F32',
    compressedBytes: 140_000_000,
  },
  {
    key: 'tinystories-33m',
    label: 'TinyStories 33M (GPT-Neo, stories)',
    url: `${HF}/roneneldan/TinyStories-33M`,
    sizeBytes: 291_000_000,
    quant: 'F32',
    compressedBytes: 77_000_000,
  },
];

/** The <option> values of the sources that are not in the catalog. */
export const CUSTOM_URL = 'custom-url';
export const HF_REPO = 'hf-repo';
export const LOCAL_FILE = 'local-file';

export function catalogModel(key: string): CatalogModel | undefined {
  return key === BUNDLED.key ? BUNDLED : HUB_MODELS.find((m) => m.key === key) ?? CHECKPOINTS.find((m) => m.key === key);
}

/** The last path segment of a URL or cache id, for display. */
export function fileName(id: string): string {
  const file = /^file:(.*):\d+:\d+$/.exec(id); // openModel's id for a File: name, size, mtime
  if (file) return file[1];
  const path = id.split(/[?#]/)[0];
  const last = path.slice(path.lastIndexOf('/') + 1) || path;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}
