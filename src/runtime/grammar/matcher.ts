/**
 * A byte-level pushdown matcher for a Grammar, as llama.cpp's llama_grammar_advance_stack and
 * llama_grammar_accept, with two differences: terminals are single bytes (code-point classes are
 * lowered to their UTF-8 byte sequences here, so a token may end inside a character), and every
 * set of stacks the matcher reaches is interned as a numbered state with a lazily filled table of
 * byte transitions: a deterministic automaton built only where the text goes. mask.ts walks the
 * vocabulary trie over those cached transitions.
 *
 *   Grammar ─lower─▶ CompiledGrammar (flat elements) ─▶ GrammarAutomaton (states, transitions)
 *                                                        ▲ GrammarMatcher: one position in it
 */
import { LanternError } from '../../errors.ts';
import type { CodeRange, Grammar, GrammarExpr } from './gbnf.ts';

/** Element kinds of the flat rule array (llama.cpp's llama_gretype, reduced to three). */
const END = 0;
const BYTES = 1;
const RULE = 2;

interface Element { kind: typeof BYTES | typeof RULE; arg: number }

/**
 * The grammar as flat arrays: every alternative of every rule is a run of elements ending in END.
 * A BYTES element's arg indexes `byteSets` ([8] u32 words: a 256-bit set of bytes); a RULE
 * element's arg is a rule id, whose alternatives start at `ruleStarts[id]`.
 */
export interface CompiledGrammar {
  kinds: Uint8Array;
  args: Int32Array;
  ruleStarts: number[][];
  ruleNames: string[];
  byteSets: Uint32Array[];
  root: number;
}

/** Most stacks one state may hold before the grammar counts as too ambiguous to run. */
const MAX_STACKS = 20_000;
/** Most elements a lowered grammar may have. */
const MAX_ELEMENTS = 1 << 22;

export function compileGrammar(grammar: Grammar): CompiledGrammar {
  const lowering = new Lowering(grammar);
  const compiled = lowering.finish();
  refuseLeftRecursion(compiled);
  return compiled;
}

class Lowering {
  private readonly names: string[] = [];
  private readonly alts: Element[][][] = [];
  private readonly ids = new Map<string, number>();
  private readonly byteSets: Uint32Array[] = [];
  private readonly byteSetIds = new Map<string, number>();
  private readonly classRules = new Map<string, number>();
  private freshCount = 0;

  constructor(private readonly grammar: Grammar) {
    for (const [name, expr] of grammar.rules) {
      const id = this.ruleId(name);
      this.alts[id] = this.alternatives(expr, name);
    }
  }

  finish(): CompiledGrammar {
    const kinds: number[] = [];
    const args: number[] = [];
    const ruleStarts = this.alts.map((alternatives, id) => {
      if (alternatives === undefined) {
        throw new LanternError('BAD_GRAMMAR', `Rule "${this.names[id]}" is used but never defined; define it or remove the reference.`, { rule: this.names[id] });
      }
      return alternatives.map((elements) => {
        const start = kinds.length;
        for (const e of elements) { kinds.push(e.kind); args.push(e.arg); }
        kinds.push(END);
        args.push(0);
        if (kinds.length > MAX_ELEMENTS) throw new LanternError('BAD_GRAMMAR', 'The grammar is too large once its repetitions are expanded; use smaller repetition counts.');
        return start;
      });
    });
    const root = this.ids.get(this.grammar.root);
    if (root === undefined) throw new LanternError('BAD_GRAMMAR', `The grammar has no rule "${this.grammar.root}" to start from; add it.`);
    return { kinds: Uint8Array.from(kinds), args: Int32Array.from(args), ruleStarts, ruleNames: this.names, byteSets: this.byteSets, root };
  }

  private ruleId(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(name);
      this.ids.set(name, id);
    }
    return id;
  }

  private fresh(owner: string, alternatives: Element[][]): number {
    const id = this.ruleId(`${owner}-${++this.freshCount}`);
    this.alts[id] = alternatives;
    return id;
  }

  private alternatives(expr: GrammarExpr, owner: string): Element[][] {
    return expr.kind === 'alt' ? expr.items.map((item) => this.sequence(item, owner)) : [this.sequence(expr, owner)];
  }

  private sequence(expr: GrammarExpr, owner: string): Element[] {
    const out: Element[] = [];
    this.append(expr, owner, out);
    return out;
  }

  private append(expr: GrammarExpr, owner: string, out: Element[]): void {
    switch (expr.kind) {
      case 'seq':
        for (const item of expr.items) this.append(item, owner, out);
        return;
      case 'literal':
        for (const b of utf8.encode(expr.text)) out.push({ kind: BYTES, arg: this.byteSet([[b, b]]) });
        return;
      case 'class':
      case 'any':
        out.push(this.codePoints(expr.kind === 'any' ? [[0, 0x10ffff]] : normalizeRanges(expr.ranges, expr.negated), owner));
        return;
      case 'ref':
        out.push({ kind: RULE, arg: this.ruleId(expr.name) });
        return;
      case 'alt':
        out.push({ kind: RULE, arg: this.fresh(owner, this.alternatives(expr, owner)) });
        return;
      case 'repeat': {
        const inner = this.sequence(expr.item, owner);
        const symbol: Element = inner.length === 1 ? inner[0] : { kind: RULE, arg: this.fresh(owner, [inner]) };
        for (let i = 0; i < expr.min; i++) out.push(symbol);
        if (expr.max === Infinity) {
          // star ::= symbol star | ε  (a tail call: the matcher's stacks do not grow)
          const star = this.fresh(owner, []);
          this.alts[star] = [[symbol, { kind: RULE, arg: star }], []];
          out.push({ kind: RULE, arg: star });
        } else if (expr.max > expr.min) {
          // up to n more: r_n ::= symbol r_{n-1} | ε
          let chain = this.fresh(owner, [[symbol], []]);
          for (let i = expr.min + 1; i < expr.max; i++) chain = this.fresh(owner, [[symbol, { kind: RULE, arg: chain }], []]);
          out.push({ kind: RULE, arg: chain });
        }
        return;
      }
    }
  }

  /** One code point from sorted, disjoint ranges, as UTF-8: one BYTES element when all are ASCII. */
  private codePoints(ranges: CodeRange[], owner: string): Element {
    const key = ranges.map(([lo, hi]) => `${lo}-${hi}`).join(',');
    const seen = this.classRules.get(key);
    if (seen !== undefined) return { kind: RULE, arg: seen };
    const sequences: [number, number][][] = [];
    for (const [lo, hi] of ranges) utf8Sequences(lo, hi, sequences);
    const single = sequences.filter((s) => s.length === 1).map((s) => s[0]);
    const multi = sequences.filter((s) => s.length > 1);
    if (multi.length === 0) {
      if (single.length === 0) throw new LanternError('BAD_GRAMMAR', `A character class in rule "${owner}" matches no character; fix the class.`, { rule: owner });
      return { kind: BYTES, arg: this.byteSet(single) };
    }
    const alternatives: Element[][] = [];
    if (single.length > 0) alternatives.push([{ kind: BYTES, arg: this.byteSet(single) }]);
    for (const s of multi) alternatives.push(s.map((range) => ({ kind: BYTES, arg: this.byteSet([range]) }) as Element));
    const id = this.fresh(owner, alternatives);
    this.classRules.set(key, id);
    return { kind: RULE, arg: id };
  }

  private byteSet(ranges: [number, number][]): number {
    const set = new Uint32Array(8);
    for (const [lo, hi] of ranges) for (let b = lo; b <= hi; b++) set[b >>> 5] |= 1 << (b & 31);
    const key = set.join(',');
    let id = this.byteSetIds.get(key);
    if (id === undefined) {
      id = this.byteSets.length;
      this.byteSets.push(set);
      this.byteSetIds.set(key, id);
    }
    return id;
  }
}

const utf8 = new TextEncoder();

/** Sorted, merged ranges, complemented if negated, without the surrogates (they have no UTF-8). */
function normalizeRanges(ranges: readonly CodeRange[], negated: boolean): CodeRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let merged: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = merged[merged.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  if (negated) {
    const complement: [number, number][] = [];
    let next = 0;
    for (const [lo, hi] of merged) {
      if (lo > next) complement.push([next, lo - 1]);
      next = hi + 1;
    }
    if (next <= 0x10ffff) complement.push([next, 0x10ffff]);
    merged = complement;
  }
  const out: CodeRange[] = [];
  for (const [lo, hi] of merged) {
    if (hi < 0xd800 || lo > 0xdfff) out.push([lo, hi]);
    else {
      if (lo < 0xd800) out.push([lo, 0xd7ff]);
      if (hi > 0xdfff) out.push([0xe000, hi]);
    }
  }
  return out;
}

/**
 * The UTF-8 encodings of code points lo..hi as sequences of byte ranges, each sequence matching
 * exactly the encodings of a sub-range (the algorithm of Rust's regex-syntax Utf8Sequences).
 */
export function utf8Sequences(lo: number, hi: number, out: [number, number][][]): void {
  for (const bound of [0x7f, 0x7ff, 0xffff]) {
    if (lo <= bound && hi > bound) {
      utf8Sequences(lo, bound, out);
      utf8Sequences(bound + 1, hi, out);
      return;
    }
  }
  const n = hi <= 0x7f ? 1 : hi <= 0x7ff ? 2 : hi <= 0xffff ? 3 : 4;
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1;
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) {
        utf8Sequences(lo, lo | m, out);
        utf8Sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) !== m) {
        utf8Sequences(lo, (hi & ~m) - 1, out);
        utf8Sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  const a = utf8.encode(String.fromCodePoint(lo));
  const b = utf8.encode(String.fromCodePoint(hi));
  out.push([...a].map((x, k) => [x, b[k]] as [number, number]));
}

/**
 * Refuses left recursion (a rule that can reach itself without consuming a byte), which a
 * pushdown matcher would expand forever; llama.cpp's parser refuses it the same way.
 */
function refuseLeftRecursion(g: CompiledGrammar): void {
  const n = g.ruleStarts.length;
  const nullable = new Uint8Array(n);
  const prefixNullable = (start: number, until: (pos: number) => boolean) => {
    for (let p = start; g.kinds[p] !== END; p++) {
      if (until(p)) return false;
      if (g.kinds[p] === BYTES || !nullable[g.args[p]]) return false;
    }
    return true;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let r = 0; r < n; r++) {
      if (!nullable[r] && g.ruleStarts[r].some((s) => prefixNullable(s, () => false))) {
        nullable[r] = 1;
        changed = true;
      }
    }
  }
  // left[r]: the rules r can begin with
  const left: number[][] = g.ruleStarts.map((starts) => {
    const out: number[] = [];
    for (const s of starts) {
      for (let p = s; g.kinds[p] === RULE; p++) {
        out.push(g.args[p]);
        if (!nullable[g.args[p]]) break;
      }
    }
    return out;
  });
  const color = new Uint8Array(n); // 0 new, 1 on the path, 2 done
  const visit = (r: number, path: number[]): void => {
    color[r] = 1;
    path.push(r);
    for (const next of left[r]) {
      if (color[next] === 1) {
        const cycle = path.slice(path.indexOf(next)).map((id) => g.ruleNames[id]);
        throw new LanternError('BAD_GRAMMAR', `The grammar is left-recursive (${[...cycle, g.ruleNames[next]].join(' → ')}): a rule reaches itself before matching any text. Rewrite it with repetition, e.g. "list ::= item (\\",\\" item)*".`, { rules: cycle });
      }
      if (color[next] === 0) visit(next, path);
    }
    path.pop();
    color[r] = 2;
  };
  for (let r = 0; r < n; r++) if (color[r] === 0) visit(r, []);
}

/**
 * The matcher's automaton. A stack is a chain of interned nodes (position of the next element,
 * parent node); a state is the set of stacks whose top is a byte terminal, plus whether the empty
 * stack (the whole grammar matched) is among them. States are interned by that canonical set, so
 * equal states get equal ids and transitions and masks can be cached per id.
 */
export class GrammarAutomaton {
  static readonly DEAD = 0;
  readonly initial: number;

  private readonly nodePos: number[] = [];
  private readonly nodeParent: number[] = [];
  private readonly nodeIds = new Map<number, number>();
  private readonly stateIds = new Map<string, number>();
  /** Per state: node ids of its stacks (tops are BYTES elements). */
  private readonly stacks: Int32Array[] = [];
  private readonly complete: boolean[] = [];
  private readonly plainLoop: (boolean | undefined)[] = [];
  /**
   * [states, 256] next state per byte, -1 until computed: one flat array (the trie walk's inner
   * loop reads it), reallocated as states are added, so read it again after calling step().
   */
  table = new Int32Array(256 * 64).fill(-1);

  constructor(readonly grammar: CompiledGrammar) {
    this.intern(new Set(), false); // DEAD = 0
    const out = new Set<number>();
    const done = { complete: false };
    const visited = new Set<number>();
    for (const s of grammar.ruleStarts[grammar.root]) this.closure(this.push(s, -1), out, done, visited);
    this.initial = this.intern(out, done.complete);
  }

  /** Whether the text so far is a whole sentence of the grammar. */
  isComplete(state: number): boolean {
    return this.complete[state];
  }

  /**
   * Whether every printable ASCII byte but '"' and '\\' leads from this state back to itself, as
   * inside a JSON string: then any token made only of such bytes is allowed (mask.ts skips its walk).
   */
  loopsOnPlainText(state: number): boolean {
    let known = this.plainLoop[state];
    if (known === undefined) {
      known = true;
      for (let b = 0x20; b < 0x7f && known; b++) if (isPlainText(b) && this.step(state, b) !== state) known = false;
      this.plainLoop[state] = known;
    }
    return known;
  }

  /** Number of states built so far (grows as text is matched). */
  get stateCount(): number {
    return this.stacks.length;
  }

  /** The state after one more byte; DEAD if the byte cannot continue the text. */
  step(state: number, byte: number): number {
    const cached = this.table[state * 256 + byte];
    if (cached >= 0) return cached;
    const g = this.grammar;
    const out = new Set<number>();
    const done = { complete: false };
    const visited = new Set<number>();
    for (const node of this.stacks[state]) {
      const pos = this.nodePos[node];
      const set = g.byteSets[g.args[pos]];
      if ((set[byte >>> 5] >>> (byte & 31)) & 1) this.closure(this.push(pos + 1, this.nodeParent[node]), out, done, visited);
    }
    const next = this.intern(out, done.complete);
    this.table[state * 256 + byte] = next;
    return next;
  }

  /** A stack with `pos` on top of `parent`; an END on top pops at once (so tail calls do not grow stacks). -1 is the empty stack. */
  private push(pos: number, parent: number): number {
    if (this.grammar.kinds[pos] === END) return parent;
    const key = pos * 0x8000000 + parent + 1;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /** Expands rule references on top of a stack until every stack has a byte terminal on top. */
  private closure(node: number, out: Set<number>, done: { complete: boolean }, visited: Set<number>): void {
    if (node < 0) {
      done.complete = true;
      return;
    }
    const g = this.grammar;
    const pos = this.nodePos[node];
    if (g.kinds[pos] === BYTES) {
      out.add(node);
      if (out.size > MAX_STACKS) {
        throw new LanternError('BAD_GRAMMAR', `The grammar is too ambiguous: more than ${MAX_STACKS} ways to read the same text at once. Make its alternatives start differently.`);
      }
      return;
    }
    if (visited.has(node)) return;
    visited.add(node);
    const after = this.push(pos + 1, this.nodeParent[node]);
    for (const start of g.ruleStarts[g.args[pos]]) this.closure(this.push(start, after), out, done, visited);
  }

  private intern(nodes: Set<number>, complete: boolean): number {
    const sorted = Int32Array.from(nodes).sort();
    const key = sorted.join(',') + (complete ? '$' : '');
    let id = this.stateIds.get(key);
    if (id === undefined) {
      id = this.stacks.length;
      this.stacks.push(sorted);
      this.complete.push(complete);
      if ((id + 1) * 256 > this.table.length) {
        const grown = new Int32Array(this.table.length * 2).fill(-1);
        grown.set(this.table);
        this.table = grown;
      }
      this.stateIds.set(key, id);
    }
    return id;
  }
}

/** Printable ASCII but '"' and '\\': the bytes a JSON string holds as they are. */
export function isPlainText(byte: number): boolean {
  return byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c;
}

/** A position in a grammar: feed it bytes, ask whether what it has seen is complete. */
export class GrammarMatcher {
  constructor(readonly automaton: GrammarAutomaton, private current = automaton.initial) {}

  /** A matcher at the start of a grammar. */
  static of(grammar: Grammar): GrammarMatcher {
    return new GrammarMatcher(new GrammarAutomaton(compileGrammar(grammar)));
  }

  get state(): number {
    return this.current;
  }

  /** Whether these bytes would keep the text a valid prefix (the matcher does not move). */
  accepts(bytes: Uint8Array | string): boolean {
    return this.after(bytes) !== GrammarAutomaton.DEAD;
  }

  /** Moves past the bytes and returns true, or returns false and stays where it was. */
  advance(bytes: Uint8Array | string): boolean {
    const next = this.after(bytes);
    if (next === GrammarAutomaton.DEAD) return false;
    this.current = next;
    return true;
  }

  isComplete(): boolean {
    return this.automaton.isComplete(this.current);
  }

  /** Whether no byte can follow (the grammar is complete and nothing may be added). */
  isFinished(): boolean {
    for (let b = 0; b < 256; b++) if (this.automaton.step(this.current, b) !== GrammarAutomaton.DEAD) return false;
    return true;
  }

  clone(): GrammarMatcher {
    return new GrammarMatcher(this.automaton, this.current);
  }

  private after(bytes: Uint8Array | string): number {
    const data = typeof bytes === 'string' ? utf8.encode(bytes) : bytes;
    let s = this.current;
    for (let i = 0; i < data.length && s !== GrammarAutomaton.DEAD; i++) s = this.automaton.step(s, data[i]);
    return s;
  }
}
