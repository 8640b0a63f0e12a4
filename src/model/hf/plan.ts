import { LanternError } from '../../errors.ts';
import type { MetaValue } from '../gguf-writer.ts';

/**
 * How a Hugging Face checkpoint becomes the GGUF description the runtime reads: the metadata
 * llama.cpp's convert_hf_to_gguf.py would write, and, for each GGUF tensor, a recipe over the
 * checkpoint's tensors. Recipes are data, not code, so that the converter (convert.ts) can stream
 * a tensor by rows where the recipe allows it, and tests can check a plan without running it.
 *
 * Shapes: a checkpoint tensor's `shape` is PyTorch's (outermost first: a Linear weight is
 * [out, in]); a GGUF tensor's `dims` are ggml's (innermost first: the same weight is [in, out]).
 * A recipe works on rows: row r of a 2-D tensor is its r-th run of dims[0] values.
 */

/** What the plan needs to know of a checkpoint tensor. */
export interface CheckpointTensor {
  /** F32, F16 or BF16 (others are refused before planning). */
  dtype: string;
  /** PyTorch order, outermost first. */
  shape: readonly number[];
}

export interface TensorRecipe {
  /** The GGUF tensor's name, e.g. "blk.0.attn_q.weight". */
  name: string;
  /** ggml order: dims[0] is the row length. Its element count equals the sources' together. */
  dims: number[];
  /**
   * Checkpoint tensors whose rows are stacked in this order (one, for most). Each is read as
   * [rows, cols] with cols = its last PyTorch dimension (1-D: one row).
   */
  from: string[];
  /**
   * The stacked source is [cols, rows] and GGUF row r is its column r: GPT-2's Conv1D stores a
   * projection as [in, out], transposed against a Linear's [out, in].
   */
  transpose?: boolean;
  /**
   * GGUF row r is row rows[r] of the (stacked, transposed) source: a permutation, e.g. llama's Q/K
   * rows reordered so that RoPE rotates adjacent pairs, or GPT-NeoX's per-head q|k|v regrouped.
   * Rows here are runs of (element count / rows.length) values: dims[0] for a matrix, one value
   * for a 1-D tensor, so that a bias (GPT-NeoX's fused q|k|v bias, llama's q/k bias) is permuted
   * value by value as its matrix is permuted row by row.
   */
  rows?: Int32Array;
  /** Added to every value: Gemma's RMSNorm weights are stored as w - 1 and GGUF holds w. */
  add?: number;
  /**
   * The tensor's values, made from config.json rather than read from the checkpoint (`from` is
   * then empty): Phi-3's LongRoPE factors (rope_scaling.long_factor/short_factor), Llama 3's
   * rope_freqs. [∏dims] f32.
   */
  values?: Float32Array;
  /**
   * A matrix a linear or the embedding reads, which the converter may quantize; false for norms,
   * biases and position embeddings, which stay F32 as llama.cpp keeps them.
   */
  quantizable: boolean;
}

export interface ArchitecturePlan {
  /** general.architecture of the GGUF, e.g. "llama". */
  architecture: string;
  /** Every key the runtime's family reads (general.* and ARCH.*), typed as GGUF stores them. */
  metadata: Record<string, MetaValue>;
  /** In the order they are written. */
  tensors: TensorRecipe[];
}

/** config.json as parsed, untrusted. */
export type HfConfig = Record<string, unknown>;

/** The config keys an architecture reads, checked: each accessor names the key when it is missing or wrong. */
export class ConfigReader {
  constructor(readonly config: HfConfig, readonly architecture: string) {}

  has(key: string): boolean {
    return Object.hasOwn(this.config, key) && this.config[key] !== null;
  }

  /** A whole number ≥ min (default 1), or `fallback` when absent. */
  count(key: string, fallback?: number, min = 1): number {
    const value = this.has(key) ? this.config[key] : fallback;
    if (value === undefined) throw this.missing(key);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw this.bad(key, value, `a whole number of at least ${min}`);
    return value;
  }

  /** A finite number > 0, or `fallback` when absent. */
  positive(key: string, fallback?: number): number {
    const value = this.has(key) ? this.config[key] : fallback;
    if (value === undefined) throw this.missing(key);
    if (typeof value !== 'number' || !Number.isFinite(value) || !(value > 0)) throw this.bad(key, value, 'a finite number above 0');
    return value;
  }

  /** A finite number, or `fallback` when absent. */
  number(key: string, fallback?: number): number {
    const value = this.has(key) ? this.config[key] : fallback;
    if (value === undefined) throw this.missing(key);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.bad(key, value, 'a finite number');
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.has(key) ? this.config[key] : fallback;
    if (typeof value !== 'boolean') throw this.bad(key, value, 'true or false');
    return value;
  }

  string(key: string, fallback?: string): string {
    const value = this.has(key) ? this.config[key] : fallback;
    if (value === undefined) throw this.missing(key);
    if (typeof value !== 'string') throw this.bad(key, value, 'a string');
    return value;
  }

  /** The raw value, for keys with a structure of their own (rope_scaling, attention_layers). */
  raw(key: string): unknown {
    return this.has(key) ? this.config[key] : undefined;
  }

  missing(key: string): LanternError {
    return new LanternError(
      'BAD_MODEL_FILE',
      `config.json has no "${key}", which a ${this.architecture} needs; the checkpoint is incomplete or not a ${this.architecture}: download its config.json again from the model's repository.`,
      { key, architecture: this.architecture },
    );
  }

  bad(key: string, value: unknown, expected: string): LanternError {
    const shown = JSON.stringify(value)?.slice(0, 80) ?? String(value);
    return new LanternError(
      'BAD_MODEL_FILE',
      `config.json's "${key}" is ${shown}, but a ${this.architecture} needs ${expected} there; the config is damaged: download it again from the model's repository.`,
      { key, architecture: this.architecture },
    );
  }
}

/** Metadata values, typed as llama.cpp's converter writes them. */
export const meta = {
  u32: (value: number): MetaValue => ({ type: 'u32', value }),
  f32: (value: number): MetaValue => ({ type: 'f32', value }),
  bool: (value: boolean): MetaValue => ({ type: 'bool', value }),
  string: (value: string): MetaValue => ({ type: 'string', value }),
  f32s: (value: readonly number[]): MetaValue => ({ type: 'array', itemType: 'f32', value }),
  bools: (value: readonly boolean[]): MetaValue => ({ type: 'array', itemType: 'bool', value }),
  u32s: (value: readonly number[]): MetaValue => ({ type: 'array', itemType: 'u32', value }),
};

/**
 * A whole GGUF tensor from its sources' values (each row-major as the checkpoint stores it):
 * stacked, transposed, rows permuted and offset as the recipe says. [∏dims] f32, ggml order.
 */
export function applyRecipe(recipe: TensorRecipe, sources: readonly Float32Array[]): Float32Array {
  const n = recipe.dims.reduce((a, b) => a * b, 1);
  if (recipe.values) {
    if (recipe.values.length !== n) throw new Error(`recipe ${recipe.name}: values hold ${recipe.values.length} for ${n}`);
    return recipe.values.slice();
  }
  const total = sources.reduce((sum, s) => sum + s.length, 0);
  if (total !== n) throw new Error(`recipe ${recipe.name}: sources hold ${total} values for ${n}`);
  let values = sources.length === 1 ? sources[0] : new Float32Array(n);
  if (sources.length > 1) {
    let at = 0;
    for (const s of sources) {
      values.set(s, at);
      at += s.length;
    }
  }
  const rowLength = recipe.dims[0];
  const rowCount = n / rowLength;
  if (recipe.transpose) {
    // The stacked source is [rowLength][rowCount]: its column r becomes row r.
    const out = new Float32Array(n);
    for (let i = 0; i < rowLength; i++) {
      const from = i * rowCount;
      for (let r = 0; r < rowCount; r++) out[r * rowLength + i] = values[from + r];
    }
    values = out;
  }
  if (recipe.rows) {
    const out = new Float32Array(n);
    const length = n / recipe.rows.length; // dims[0], or 1 for a 1-D tensor
    if (!Number.isInteger(length)) throw new Error(`recipe ${recipe.name}: ${recipe.rows.length} rows of ${n} values`);
    for (let r = 0; r < recipe.rows.length; r++) out.set(values.subarray(recipe.rows[r] * length, (recipe.rows[r] + 1) * length), r * length);
    values = out;
  }
  if (recipe.add !== undefined) {
    if (values === sources[0]) values = values.slice();
    for (let i = 0; i < n; i++) values[i] = Math.fround(values[i] + recipe.add);
  }
  return values;
}
