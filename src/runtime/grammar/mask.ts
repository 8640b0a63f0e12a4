/**
 * Which tokens may come next: the allowed-token set of a matcher state as a bitmask
 * `Uint32Array(ceil(n_vocab / 32))` (bit id & 31 of word id >> 5), ready to upload or to apply to
 * logits. The vocabulary is a trie of token bytes, walked once per state with the automaton's
 * cached byte transitions, so tokens sharing a prefix share its matching and a dead prefix prunes
 * its whole subtree. Masks are cached per automaton state: states are canonical (matcher.ts).
 */
import { LanternError } from '../../errors.ts';
import type { Tokenizer } from '../../model/tokenizer/index.ts';
import { GrammarAutomaton, isPlainText } from './matcher.ts';

/** What the masker needs of a vocabulary. */
export interface MaskVocabulary {
  /** Per token id: its bytes, or undefined for tokens never allowed (control, unknown, unused, empty). */
  bytes: readonly (Uint8Array | undefined)[];
  /** End-of-generation ids: allowed exactly when the grammar is complete. */
  eog: readonly number[];
}

export function maskVocabulary(tokenizer: Tokenizer): MaskVocabulary {
  const bytes: (Uint8Array | undefined)[] = [];
  const eog: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const end = tokenizer.isEndOfGeneration(id);
    if (end) eog.push(id);
    bytes.push(end ? undefined : tokenizer.tokenBytes(id));
  }
  return { bytes, eog };
}

/**
 * The vocabulary as a trie in depth-first order: node i has `depth[i]`, the byte on its incoming
 * edge `label[i]`, and `skip[i]`, the first node after its subtree. Tokens ending at node i are
 * `ids[first[i] .. first[i + 1])`. Node 0 is the root (the empty prefix).
 */
export class TokenTrie {
  readonly size: number;
  readonly eog: readonly number[];
  readonly depth: Uint16Array;
  readonly label: Uint8Array;
  readonly skip: Int32Array;
  readonly first: Int32Array;
  readonly ids: Int32Array;
  readonly maxDepth: number;
  /** 1 where the node's byte and every byte below it is plain text (isPlainText). */
  readonly plainSubtree: Uint8Array;

  constructor(vocab: MaskVocabulary) {
    this.size = vocab.bytes.length;
    this.eog = vocab.eog;
    // Sorting the tokens by their bytes lays the trie out depth first.
    const order: number[] = [];
    vocab.bytes.forEach((b, id) => { if (b !== undefined && b.length > 0) order.push(id); });
    const byBytes = (a: Uint8Array, b: Uint8Array) => {
      const n = Math.min(a.length, b.length);
      for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
      return a.length - b.length;
    };
    order.sort((x, y) => byBytes(vocab.bytes[x]!, vocab.bytes[y]!) || x - y);

    const depth: number[] = [0];
    const label: number[] = [0];
    const first: number[] = [0];
    const ids: number[] = [];
    const parent: number[] = [-1];
    const path: number[] = [0]; // node ids of the current root-to-leaf path
    let prev: Uint8Array = new Uint8Array(0);
    for (const id of order) {
      const bytes = vocab.bytes[id]!;
      let common = 0;
      while (common < prev.length && common < bytes.length && prev[common] === bytes[common]) common++;
      path.length = common + 1;
      for (let d = common; d < bytes.length; d++) {
        parent.push(path[path.length - 1]);
        path.push(depth.length);
        depth.push(d + 1);
        label.push(bytes[d]);
        first.push(ids.length);
      }
      ids.push(id); // ends at the last node of its path, the node just pushed or an existing one
      prev = bytes;
    }
    first.push(ids.length);
    const n = depth.length;
    // skip[i]: the next node whose depth is not deeper than i's
    const skip = new Int32Array(n);
    const open: number[] = [];
    for (let i = 0; i < n; i++) {
      while (open.length > 0 && depth[open[open.length - 1]] >= depth[i]) skip[open.pop()!] = i;
      open.push(i);
    }
    for (const i of open) skip[i] = n;
    this.depth = Uint16Array.from(depth);
    this.label = Uint8Array.from(label);
    this.skip = skip;
    this.first = Int32Array.from(first);
    this.ids = Int32Array.from(ids);
    this.maxDepth = depth.reduce((a, b) => Math.max(a, b), 0);
    const plain = new Uint8Array(n);
    for (let i = 1; i < n; i++) plain[i] = isPlainText(label[i]) ? 1 : 0;
    for (let i = n - 1; i > 0; i--) if (!plain[i]) plain[parent[i]] = 0;
    this.plainSubtree = plain;
  }

  get nodeCount(): number {
    return this.depth.length;
  }
}

/** Most masks kept per masker before the cache starts over. */
const MASK_CACHE_LIMIT = 4096;

/** Masks for one grammar automaton over one vocabulary, cached per state. */
export class TokenMasker {
  private readonly cache = new Map<number, Uint32Array<ArrayBuffer>>();
  private readonly stateAt: Int32Array;

  constructor(readonly automaton: GrammarAutomaton, readonly trie: TokenTrie) {
    this.stateAt = new Int32Array(trie.maxDepth + 1);
  }

  /** The allowed tokens in a state. The returned array is shared: do not modify it. */
  mask(state: number): Uint32Array<ArrayBuffer> {
    let mask = this.cache.get(state);
    if (mask === undefined) {
      mask = this.compute(state);
      if (this.cache.size >= MASK_CACHE_LIMIT) this.cache.clear();
      this.cache.set(state, mask);
    }
    return mask;
  }

  private compute(state: number): Uint32Array<ArrayBuffer> {
    const { automaton, trie, stateAt } = this;
    const { depth, label, skip, first, ids, plainSubtree } = trie;
    let table = automaton.table;
    const mask = new Uint32Array(Math.ceil(trie.size / 32));
    if (automaton.isComplete(state)) for (const id of trie.eog) mask[id >>> 5] |= 1 << (id & 31);
    stateAt[0] = state;
    const n = depth.length;
    for (let i = 1; i < n;) {
      const d = depth[i];
      const parent = stateAt[d - 1];
      let next = table[parent * 256 + label[i]];
      if (next < 0) {
        next = automaton.step(parent, label[i]);
        table = automaton.table; // step() may have grown it
      }
      if (next === GrammarAutomaton.DEAD) {
        i = skip[i];
        continue;
      }
      if (plainSubtree[i] && automaton.loopsOnPlainText(next)) {
        // Inside a string: every token below is allowed, and the state stays the same.
        for (let k = first[i], end = first[skip[i]]; k < end; k++) mask[ids[k] >>> 5] |= 1 << (ids[k] & 31);
        table = automaton.table;
        i = skip[i];
        continue;
      }
      stateAt[d] = next;
      const end = first[i + 1];
      for (let k = first[i]; k < end; k++) mask[ids[k] >>> 5] |= 1 << (ids[k] & 31);
      i++;
    }
    return mask;
  }
}

/**
 * One request's constrained decoding: the allowed tokens now, and `advance(id)` once a token is
 * chosen. Tokens outside the mask are refused with false (nothing moves).
 */
export class TokenConstraint {
  private current: number;

  constructor(private readonly masker: TokenMasker, private readonly vocab: MaskVocabulary) {
    this.current = masker.automaton.initial;
  }

  get state(): number {
    return this.current;
  }

  /** Milliseconds each token's mask and advance took together (one entry per advance): what `lantern bench --json-schema` reports. */
  readonly msPerToken: number[] = [];
  private spent = 0;

  mask(): Uint32Array<ArrayBuffer> {
    const t0 = performance.now();
    const mask = this.masker.mask(this.current);
    this.spent += performance.now() - t0;
    return mask;
  }

  allows(id: number): boolean {
    const m = this.mask();
    return id >= 0 && id < this.masker.trie.size && ((m[id >>> 5] >>> (id & 31)) & 1) === 1;
  }

  isComplete(): boolean {
    return this.masker.automaton.isComplete(this.current);
  }

  /** Moves past the token's bytes; an end-of-generation token is accepted only when complete. */
  advance(id: number): boolean {
    const t0 = performance.now();
    try {
      return this.step(id);
    } finally {
      this.msPerToken.push(this.spent + performance.now() - t0);
      this.spent = 0;
    }
  }

  private step(id: number): boolean {
    if (this.vocab.eog.includes(id)) return this.isComplete();
    const bytes = this.vocab.bytes[id];
    if (bytes === undefined || bytes.length === 0) return false;
    const a = this.masker.automaton;
    let s = this.current;
    for (let i = 0; i < bytes.length && s !== GrammarAutomaton.DEAD; i++) s = a.step(s, bytes[i]);
    if (s === GrammarAutomaton.DEAD) return false;
    this.current = s;
    return true;
  }
}

/** Sets logits of disallowed tokens to -Infinity, in place. */
export function applyMask(logits: Float32Array | Float64Array, mask: Uint32Array): void {
  for (let w = 0; w < mask.length; w++) {
    const bits = mask[w];
    if (bits === 0xffffffff) continue;
    const base = w * 32;
    const end = Math.min(32, logits.length - base);
    for (let b = 0; b < end; b++) if (!((bits >>> b) & 1)) logits[base + b] = -Infinity;
  }
}

/** BAD_GRAMMAR for a step whose mask allows no token (on the CPU or the GPU path alike). */
export function noTokenAllowed(): LanternError {
  return new LanternError('BAD_GRAMMAR', 'No token of the vocabulary can continue the grammar here; check that the grammar can be completed with the model\'s tokens.');
}
