import { LanternError } from '../errors.ts';
import type { GGUFFile } from '../model/gguf.ts';

/**
 * Embeddings: a text's final hidden states (after the output norm, [n_tokens, n_embd]) pooled into
 * one vector and L2-normalized, as llama.cpp's embedding mode pools them (llama-graph.cpp
 * build_pooling) and its llama-embedding tool normalizes them.
 */

/** How a text's hidden states become one vector: their mean, the first token's (CLS), or the last token's. */
export type EmbeddingPooling = 'mean' | 'cls' | 'last';

/** llama.cpp's enum llama_pooling_type, as `{arch}.pooling_type` stores it. */
const POOLING_TYPES: ReadonlyMap<number, EmbeddingPooling | undefined> = new Map([
  [0, undefined], // NONE: a vector per token; one per text here, so the default
  [1, 'mean'],
  [2, 'cls'],
  [3, 'last'], // Qwen3-Embedding and other decoder embedders
]);

/**
 * The pooling the model declares in `{arch}.pooling_type`; mean where it declares none (a chat
 * model). The key is read when a text is embedded, so that an odd value never stops a model from
 * loading for chat: RANK (4, a reranker's classifier head) and values llama.cpp does not define
 * are BAD_MODEL_FILE then.
 */
export function declaredPooling(file: GGUFFile): () => EmbeddingPooling {
  const key = `${String(file.metadata.get('general.architecture'))}.pooling_type`;
  const value = file.metadata.get(key);
  return () => {
    if (value === undefined) return 'mean';
    const n = typeof value === 'number' || typeof value === 'bigint' ? Number(value) : NaN;
    if (!POOLING_TYPES.has(n)) {
      throw new LanternError(
        'BAD_MODEL_FILE',
        `${key} is ${String(value)}, which is not a pooling Lantern embeds with (0 none, 1 mean, 2 cls, 3 last; 4 is a reranker's); pass a pooling to embed it anyway.`,
        { key, value: String(value) },
      );
    }
    return POOLING_TYPES.get(n) ?? 'mean';
  };
}

/** Embedding options below the engine (Runtime.embed). */
export interface EmbedOptions {
  /** How to pool the hidden states; default: the model's declared pooling, mean where it declares none. */
  pooling?: EmbeddingPooling;
}

export function checkPooling(pooling: unknown): asserts pooling is EmbeddingPooling | undefined {
  if (pooling !== undefined && pooling !== 'mean' && pooling !== 'cls' && pooling !== 'last') {
    throw new LanternError('BAD_ARGUMENT', `pooling must be 'mean', 'cls' or 'last', not ${String(pooling)}.`);
  }
}

/**
 * Pools [rows, n_embd] blocks of hidden states, fed in order from token `first` on, in double; the
 * tokens before `first` are those a 'last' pooling may skip. `vector()` is L2-normalized.
 */
export class Pool {
  private readonly sum: Float64Array; // [n_embd]
  private rows = 0;

  constructor(
    readonly pooling: EmbeddingPooling,
    private readonly nEmbd: number,
    private readonly nTokens: number,
  ) {
    this.sum = new Float64Array(nEmbd);
  }

  /** Whether the hidden states of tokens first .. first + count − 1 are needed (else they are only run, not read back). */
  needs(first: number, count: number): boolean {
    if (this.pooling === 'mean') return true;
    if (this.pooling === 'cls') return first === 0;
    return first + count === this.nTokens;
  }

  /** hidden: [count, n_embd] f32, the states of tokens first .. first + count − 1. */
  add(hidden: Float32Array, first: number): void {
    const d = this.nEmbd;
    const count = hidden.length / d;
    const take = (row: number) => {
      for (let i = 0; i < d; i++) this.sum[i] += hidden[row * d + i];
      this.rows++;
    };
    if (this.pooling === 'mean') for (let r = 0; r < count; r++) take(r);
    else if (this.pooling === 'cls' && first === 0) take(0);
    else if (this.pooling === 'last' && first + count === this.nTokens) take(count - 1);
  }

  /** The pooled vector over its L2 norm ([n_embd] f32); a zero vector stays zero. */
  vector(): Float32Array {
    if (this.rows === 0) throw new Error('Pool.vector before the rows it pools were added');
    let norm = 0;
    for (const v of this.sum) norm += (v / this.rows) ** 2;
    norm = Math.sqrt(norm);
    return Float32Array.from(this.sum, (v) => (norm > 0 ? v / this.rows / norm : 0));
  }
}
