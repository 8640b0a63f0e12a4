/**
 * Grammars for constrained decoding: the rule representation that both GBNF text and JSON Schema
 * compile to, a parser for llama.cpp's GBNF (grammars/README.md, llama-grammar.cpp's
 * llama_grammar_parser) and a printer back to GBNF for debugging.
 *
 * Terminals are Unicode code points, as in llama.cpp; matcher.ts lowers them to UTF-8 bytes.
 * Token terminals (`<[id]>`, `<think>`, `!<...>`) are not supported.
 */
import { LanternError } from '../../errors.ts';

/** An inclusive range of code points. */
export type CodeRange = readonly [lo: number, hi: number];

export type GrammarExpr =
  | { kind: 'seq'; items: GrammarExpr[] }
  | { kind: 'alt'; items: GrammarExpr[] }
  /** A string, matched as its UTF-8 bytes. */
  | { kind: 'literal'; text: string }
  /** One code point in (or, negated, not in) the ranges. */
  | { kind: 'class'; ranges: CodeRange[]; negated: boolean }
  /** Any one code point (GBNF's `.`). */
  | { kind: 'any' }
  | { kind: 'ref'; name: string }
  /** `item{min,max}`; max is Infinity for `*`, `+`, `{m,}`. */
  | { kind: 'repeat'; item: GrammarExpr; min: number; max: number };

/** Named rules; `root` names the start rule. Rule order is kept for printing. */
export interface Grammar {
  rules: Map<string, GrammarExpr>;
  root: string;
}

/** llama.cpp's MAX_REPETITION_THRESHOLD: a larger count is a mistake, not a grammar. */
const MAX_REPETITIONS = 2000;

export const seq = (...items: GrammarExpr[]): GrammarExpr => (items.length === 1 ? items[0] : { kind: 'seq', items });
export const alt = (...items: GrammarExpr[]): GrammarExpr => (items.length === 1 ? items[0] : { kind: 'alt', items });
export const lit = (text: string): GrammarExpr => ({ kind: 'literal', text });
export const ref = (name: string): GrammarExpr => ({ kind: 'ref', name });
export const cls = (ranges: CodeRange[], negated = false): GrammarExpr => ({ kind: 'class', ranges, negated });
export const rep = (item: GrammarExpr, min: number, max: number): GrammarExpr => ({ kind: 'repeat', item, min, max });
export const opt = (item: GrammarExpr): GrammarExpr => rep(item, 0, 1);
export const EMPTY: GrammarExpr = { kind: 'seq', items: [] };

/** Parses GBNF text. Errors are LanternError('BAD_GRAMMAR') naming the line and column. */
export function parseGbnf(text: string): Grammar {
  return new GbnfParser(text).parse();
}

class GbnfParser {
  private pos = 0;
  private readonly rules = new Map<string, GrammarExpr>();
  /** Where each rule is first used, for "never defined" errors. */
  private readonly used = new Map<string, number>();

  constructor(private readonly src: string) {}

  parse(): Grammar {
    this.space(true);
    while (this.pos < this.src.length) this.rule();
    for (const [name, at] of this.used) {
      if (!this.rules.has(name)) this.fail(`rule "${name}" is used but never defined`, at);
    }
    if (!this.rules.has('root')) this.fail('the grammar has no "root" rule; add one (root ::= ...), it is where matching starts', this.pos);
    return { rules: this.rules, root: 'root' };
  }

  private rule(): void {
    const start = this.pos;
    const name = this.name();
    this.space(false);
    if (!this.src.startsWith('::=', this.pos)) this.fail('expected "::=" after the rule name', this.pos);
    this.pos += 3;
    this.space(true);
    const body = this.alternates(false);
    const c = this.src[this.pos];
    if (c === '\r') this.pos += this.src[this.pos + 1] === '\n' ? 2 : 1;
    else if (c === '\n') this.pos++;
    else if (c !== undefined) this.fail(`unexpected ${JSON.stringify(c)}; expected a newline or the end of the rule`, this.pos);
    if (this.rules.has(name)) this.fail(`rule "${name}" is defined twice`, start);
    this.rules.set(name, body);
    this.space(true);
  }

  private alternates(nested: boolean): GrammarExpr {
    const items = [this.sequence(nested)];
    while (this.src[this.pos] === '|') {
      this.pos++;
      this.space(true);
      items.push(this.sequence(nested));
    }
    return alt(...items);
  }

  private sequence(nested: boolean): GrammarExpr {
    const items: GrammarExpr[] = [];
    const repeatLast = (min: number, max: number, at: number) => {
      const last = items.pop();
      if (last === undefined) this.fail('a repetition operator needs something before it', at);
      items.push(rep(last, min, max));
    };
    for (;;) {
      const at = this.pos;
      const c = this.src[this.pos];
      if (c === '"') {
        this.pos++;
        let text = '';
        while (this.src[this.pos] !== '"') {
          if (this.pos >= this.src.length) this.fail('unterminated string literal', at);
          text += String.fromCodePoint(this.char());
        }
        this.pos++;
        items.push(lit(text));
      } else if (c === '[') {
        this.pos++;
        const negated = this.src[this.pos] === '^';
        if (negated) this.pos++;
        const ranges: [number, number][] = [];
        while (this.src[this.pos] !== ']') {
          if (this.pos >= this.src.length) this.fail('unterminated character class', at);
          const lo = this.char();
          let hi = lo;
          if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
            this.pos++;
            hi = this.char();
            if (hi < lo) this.fail('a character range ends before it starts', at);
          }
          ranges.push([lo, hi]);
        }
        this.pos++;
        items.push(cls(ranges, negated));
      } else if (c === '<' || c === '!') {
        this.fail('token terminals (<...>, !<...>) are not supported by Lantern; write the text as a string literal', at);
      } else if (c !== undefined && isWordChar(c)) {
        const name = this.name();
        if (!this.used.has(name)) this.used.set(name, at);
        items.push(ref(name));
      } else if (c === '(') {
        this.pos++;
        this.space(true);
        const inner = this.alternates(true);
        if (this.src[this.pos] !== ')') this.fail('expected ")" to close the group', this.pos);
        this.pos++;
        items.push(inner.kind === 'seq' || inner.kind === 'alt' ? inner : seq(inner));
      } else if (c === '.') {
        this.pos++;
        items.push({ kind: 'any' });
      } else if (c === '*' || c === '+' || c === '?') {
        this.pos++;
        repeatLast(c === '+' ? 1 : 0, c === '?' ? 1 : Infinity, at);
      } else if (c === '{') {
        this.pos++;
        this.space(nested);
        const min = this.int();
        this.space(nested);
        let max = min;
        if (this.src[this.pos] === ',') {
          this.pos++;
          this.space(nested);
          max = isDigit(this.src[this.pos]) ? this.int() : Infinity;
          this.space(nested);
        }
        if (this.src[this.pos] !== '}') this.fail('expected "}" to close the repetition count', this.pos);
        this.pos++;
        if (min > MAX_REPETITIONS || (max !== Infinity && max > MAX_REPETITIONS)) {
          this.fail(`repetition counts above ${MAX_REPETITIONS} are not supported; use * or + instead`, at);
        }
        if (max < min) this.fail(`the repetition {${min},${max}} has its maximum below its minimum`, at);
        repeatLast(min, max, at);
      } else {
        break;
      }
      this.space(nested);
    }
    return seq(...items);
  }

  /** One code point of a literal or class, with GBNF's escapes. */
  private char(): number {
    const s = this.src;
    if (s[this.pos] !== '\\') {
      const cp = s.codePointAt(this.pos)!;
      this.pos += cp > 0xffff ? 2 : 1;
      return cp;
    }
    const at = this.pos;
    const e = s[this.pos + 1];
    this.pos += 2;
    const hexDigits = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (hexDigits > 0) {
      const hex = s.slice(this.pos, this.pos + hexDigits);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== hexDigits) this.fail(`expected ${hexDigits} hex digits after \\${e}`, at);
      this.pos += hexDigits;
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) this.fail(`\\${e}${hex} is past the last Unicode code point`, at);
      return cp;
    }
    const simple = ESCAPES.get(e ?? '');
    if (simple === undefined) this.fail(`unknown escape \\${e ?? ''}`, at);
    return simple;
  }

  private name(): string {
    const start = this.pos;
    while (this.pos < this.src.length && isWordChar(this.src[this.pos])) this.pos++;
    if (this.pos === start) this.fail('expected a rule name', start);
    return this.src.slice(start, this.pos);
  }

  private int(): number {
    const start = this.pos;
    while (isDigit(this.src[this.pos])) this.pos++;
    if (this.pos === start) this.fail('expected a whole number', start);
    return Number(this.src.slice(start, this.pos));
  }

  /** Spaces, tabs and # comments; newlines too where `newlines` (inside groups, after ::= and |). */
  private space(newlines: boolean): void {
    const s = this.src;
    for (;;) {
      const c = s[this.pos];
      if (c === ' ' || c === '\t' || (newlines && (c === '\r' || c === '\n'))) this.pos++;
      else if (c === '#') while (this.pos < s.length && s[this.pos] !== '\n' && s[this.pos] !== '\r') this.pos++;
      else return;
    }
  }

  private fail(what: string, at: number): never {
    const before = this.src.slice(0, at);
    const line = before.split('\n').length;
    const column = at - (before.lastIndexOf('\n') + 1) + 1;
    throw new LanternError('BAD_GRAMMAR', `GBNF grammar, line ${line} column ${column}: ${what}. Fix the grammar (see llama.cpp's grammars/README.md).`, { line, column });
  }
}

const ESCAPES = new Map<string, number>([
  ['t', 9], ['r', 13], ['n', 10], ['\\', 92], ['"', 34], ['[', 91], [']', 93], ['-', 45],
]);

function isWordChar(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c === '-' || c === '_';
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** The grammar with every rule name (and reference) prefixed, so that several grammars can share one rule set. */
export function prefixRules(grammar: Grammar, prefix: string): Grammar {
  const rename = (e: GrammarExpr): GrammarExpr => {
    switch (e.kind) {
      case 'ref': return ref(prefix + e.name);
      case 'seq':
      case 'alt': return { kind: e.kind, items: e.items.map(rename) };
      case 'repeat': return { ...e, item: rename(e.item) };
      default: return e;
    }
  };
  return { rules: new Map([...grammar.rules].map(([name, e]) => [prefix + name, rename(e)])), root: prefix + grammar.root };
}

/** The grammar as GBNF text, root first: for debugging and for llama.cpp side-by-side runs. */
export function printGbnf(grammar: Grammar): string {
  const names = [grammar.root, ...[...grammar.rules.keys()].filter((n) => n !== grammar.root)];
  return names.map((name) => `${name} ::= ${printExpr(grammar.rules.get(name)!, 0)}\n`).join('');
}

/** Precedence: 0 alternation, 1 sequence, 2 a single symbol. */
function printExpr(e: GrammarExpr, context: number): string {
  switch (e.kind) {
    case 'alt': {
      const text = e.items.map((item) => printExpr(item, 0)).join(' | ');
      return context > 0 ? `(${text})` : text;
    }
    case 'seq': {
      if (e.items.length === 0) return context > 0 ? '""' : '';
      const text = e.items.map((item) => printExpr(item, 2)).join(' ');
      return context > 1 && e.items.length > 1 ? `(${text})` : text;
    }
    case 'literal':
      return `"${[...e.text].map((ch) => (ch === '"' || ch === '\\' ? '\\' + ch : escapeControl(ch))).join('')}"`;
    case 'class': {
      const body = e.ranges.map(([lo, hi]) => classChar(lo) + (hi !== lo ? '-' + classChar(hi) : '')).join('');
      return `[${e.negated ? '^' : ''}${body}]`;
    }
    case 'any':
      return '.';
    case 'ref':
      return e.name;
    case 'repeat': {
      const op = e.min === 0 && e.max === 1 ? '?' : e.min === 0 && e.max === Infinity ? '*' : e.min === 1 && e.max === Infinity ? '+'
        : e.max === Infinity ? `{${e.min},}` : e.min === e.max ? `{${e.min}}` : `{${e.min},${e.max}}`;
      const inner = printExpr(e.item, 2);
      return `${inner.startsWith('(') || e.item.kind !== 'seq' ? inner : `(${inner})`}${op}`;
    }
  }
}

function classChar(cp: number): string {
  const ch = String.fromCodePoint(cp);
  return ch === ']' || ch === '[' || ch === '\\' || ch === '-' || ch === '^' || ch === '"' ? '\\' + (ch === '^' ? 'x5E' : ch) : escapeControl(ch);
}

function escapeControl(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (ch === '\n') return '\\n';
  if (ch === '\t') return '\\t';
  if (ch === '\r') return '\\r';
  if (cp < 0x20 || cp === 0x7f) return '\\x' + cp.toString(16).padStart(2, '0').toUpperCase();
  return ch;
}
