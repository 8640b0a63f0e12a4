import type { Hyperparameters, ModelConfig } from '../../model/config.ts';
import type { Graph } from '../graph.ts';

/**
 * A model family in one short file (src/runtime/models/*.ts): the GGUF keys it reads with their
 * defaults, and its graph on the shared blocks of Graph (norms, attention, MLP, residual adds, the
 * output head). The tensors each block reads are named in graph.ts; a family only says which
 * blocks, in what order, with what options.
 */
export interface Family<C extends ModelConfig = ModelConfig> {
  /** The general.architecture values this family runs. */
  readonly architectures: readonly string[];
  /** Hyperparameters from the file's metadata, each checked (config.ts). */
  config(hp: Hyperparameters): C;
  /** The graph: the input, every layer's block, and the output head. */
  build(g: Graph<C>): Promise<void>;
}

/** Layer l's tensor `name` prefix, as GGUF names them: blk.L.NAME. */
export function blk(l: number, name: string): string {
  return `blk.${l}.${name}`;
}
