/**
 * Absolute paths to the shared test data. Tests and CI find it at `../shared/models` beside the
 * repository root (see ../shared/models/README.md for what each file is and where it came from).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED_MODELS_DIR = resolve(REPO_ROOT, '../shared/models');

/** stories260K: GGUF v3, llama, all F32, vocab 512. */
export const STORIES_GGUF = resolve(SHARED_MODELS_DIR, 'stories260K/stories260K.gguf');
/** The same model in llama2.c's format, and its tokenizers. */
export const STORIES_BIN = resolve(SHARED_MODELS_DIR, 'stories260K/stories260K.bin');
export const STORIES_TOK_BIN = resolve(SHARED_MODELS_DIR, 'stories260K/tok512.bin');
export const STORIES_TOK_MODEL = resolve(SHARED_MODELS_DIR, 'stories260K/tok512.model');
/** `{ prompt_ids: [1], generated_ids: number[256], text, ... }`: greedy from BOS, numpy fp32. */
export const STORIES_REFERENCE = resolve(SHARED_MODELS_DIR, 'stories260K/reference_greedy_from_bos.json');

export const LLAMA2_TOKENIZER_DIR = resolve(SHARED_MODELS_DIR, 'llama2-tokenizer');
export const SMOLLM2_TOKENIZER_DIR = resolve(SHARED_MODELS_DIR, 'smollm2-135m-tokenizer');
/** llama.cpp's vocab-only GGUFs with their `.inp` / `.out` tokenizer test vectors. */
export const LLAMACPP_VOCAB_DIR = resolve(SHARED_MODELS_DIR, 'llamacpp-vocab');
/** llama.cpp's example GBNF grammars, as node-llama-cpp ships them. */
export const LLAMACPP_GRAMMARS_DIR = resolve(REPO_ROOT, 'node_modules/node-llama-cpp/llama/grammars');
export const ZH_POEM_DIR = resolve(SHARED_MODELS_DIR, 'zh-poem');
