/**
 * JSON Schema `pattern` → grammar for the *content* of a JSON string (between its quotes), for a
 * documented subset of ECMAScript regular expressions:
 *
 *   literals and escaped punctuation (\. \/ \( ...), \n \t \r \f \v \0 \xHH \uHHHH,
 *   . (any character but a line terminator), \d \D \w \W \s \S,
 *   classes [a-z0-9_] [^...] with ranges and the escapes above, groups ( ) and (?: ),
 *   alternation |, quantifiers * + ? {n} {n,} {n,m} (lazy forms accepted: same language),
 *   ^ at the very start and $ at the very end.
 *
 * Not supported (UNSUPPORTED_SCHEMA): lookaround, backreferences, \b \B, \p{...}, named groups,
 * anchors elsewhere. A pattern without ^ (or $) may have any text before (or after) its match, as
 * JSON Schema searches rather than matches. Each character is written in the JSON text either as
 * itself or, for '"', '\' and control characters, as one fixed escape (\" \\ \n \t \r \b \f \u00XX).
 */
import { LanternError } from '../../errors.ts';
import { alt, cls, EMPTY, lit, rep, seq, type CodeRange, type GrammarExpr } from './gbnf.ts';

const LINE_TERMINATORS: CodeRange[] = [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]];
const DIGIT: CodeRange[] = [[0x30, 0x39]];
const WORD: CodeRange[] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: CodeRange[] = [
  [0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029],
  [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff],
];
const MAX_CODE_POINT = 0x10ffff;
const MAX_REPEAT = 1000;

/** `anyChar`: the grammar of one unconstrained string character (raw or any escape), used around unanchored patterns. */
export function patternGrammar(pattern: string, anyChar: GrammarExpr, path: string): GrammarExpr {
  let body = pattern;
  const anchoredStart = body.startsWith('^');
  if (anchoredStart) body = body.slice(1);
  const anchoredEnd = body.endsWith('$') && !isEscapedAt(body, body.length - 1);
  if (anchoredEnd) body = body.slice(0, -1);
  const parser = new PatternParser(body, pattern, path);
  const expr = parser.parse();
  return seq(...(anchoredStart ? [] : [rep(anyChar, 0, Infinity)]), expr, ...(anchoredEnd ? [] : [rep(anyChar, 0, Infinity)]));
}

function isEscapedAt(s: string, i: number): boolean {
  let n = 0;
  for (let j = i - 1; j >= 0 && s[j] === '\\'; j--) n++;
  return n % 2 === 1;
}

class PatternParser {
  private pos = 0;
  constructor(private readonly src: string, private readonly pattern: string, private readonly path: string) {}

  parse(): GrammarExpr {
    const e = this.alternation();
    if (this.pos < this.src.length) this.fail(`unexpected "${this.src[this.pos]}"`);
    return e;
  }

  private alternation(): GrammarExpr {
    const items = [this.sequence()];
    while (this.src[this.pos] === '|') {
      this.pos++;
      items.push(this.sequence());
    }
    return alt(...items);
  }

  private sequence(): GrammarExpr {
    const items: GrammarExpr[] = [];
    while (this.pos < this.src.length && this.src[this.pos] !== '|' && this.src[this.pos] !== ')') {
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return items.length === 0 ? EMPTY : seq(...items);
  }

  private quantified(atom: GrammarExpr): GrammarExpr {
    const c = this.src[this.pos];
    let min: number;
    let max: number;
    if (c === '*' || c === '+' || c === '?') {
      this.pos++;
      min = c === '+' ? 1 : 0;
      max = c === '?' ? 1 : Infinity;
    } else if (c === '{' && /^\{\d+(,\d*)?\}/.test(this.src.slice(this.pos))) {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos))!;
      this.pos += m[0].length;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) this.fail(`the quantifier ${m[0]} has its maximum below its minimum`);
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(`quantifier counts above ${MAX_REPEAT} are not supported`);
    } else {
      return atom;
    }
    if (this.src[this.pos] === '?') this.pos++; // lazy: the same set of strings
    if ('*+?{'.includes(this.src[this.pos] ?? '') && this.src[this.pos] !== undefined) this.fail('a quantifier cannot follow a quantifier');
    return rep(atom, min, max);
  }

  private atom(): GrammarExpr {
    const c = this.src[this.pos];
    if (c === '(') {
      this.pos++;
      if (this.src[this.pos] === '?') {
        if (this.src[this.pos + 1] !== ':') this.fail('lookaround and named groups are not supported');
        this.pos += 2;
      }
      const inner = this.alternation();
      if (this.src[this.pos] !== ')') this.fail('a group is not closed');
      this.pos++;
      return inner;
    }
    if (c === '[') return jsonChar(this.charClass());
    if (c === '.') {
      this.pos++;
      return jsonChar(complement(LINE_TERMINATORS));
    }
    if (c === '^' || c === '$') this.fail(`"${c}" is supported only at the very start or end of the pattern`);
    if (c === '*' || c === '+' || c === '?' || c === '{') this.fail(`"${c}" has nothing to repeat`);
    if (c === '\\') {
      const set = this.escape(false);
      return jsonChar(set);
    }
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return jsonChar([[cp, cp]]);
  }

  private charClass(): CodeRange[] {
    this.pos++; // [
    const negated = this.src[this.pos] === '^';
    if (negated) this.pos++;
    const ranges: CodeRange[] = [];
    while (this.src[this.pos] !== ']') {
      if (this.pos >= this.src.length) this.fail('a character class is not closed');
      const lo = this.classAtom();
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length && lo.length === 1 && lo[0][0] === lo[0][1]) {
        this.pos++;
        const hi = this.classAtom();
        if (hi.length !== 1 || hi[0][0] !== hi[0][1] || hi[0][0] < lo[0][0]) this.fail('a class range is out of order or uses a set as an end');
        ranges.push([lo[0][0], hi[0][0]]);
      } else {
        ranges.push(...lo);
      }
    }
    this.pos++;
    return negated ? complement(ranges) : ranges;
  }

  private classAtom(): CodeRange[] {
    if (this.src[this.pos] === '\\') return this.escape(true);
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return [[cp, cp]];
  }

  private escape(inClass: boolean): CodeRange[] {
    const e = this.src[this.pos + 1];
    this.pos += 2;
    const one = (cp: number): CodeRange[] => [[cp, cp]];
    switch (e) {
      case 'd': return DIGIT;
      case 'D': return complement(DIGIT);
      case 'w': return WORD;
      case 'W': return complement(WORD);
      case 's': return SPACE;
      case 'S': return complement(SPACE);
      case 'n': return one(10);
      case 't': return one(9);
      case 'r': return one(13);
      case 'f': return one(12);
      case 'v': return one(11);
      case '0': return one(0);
      case 'b':
        if (inClass) return one(8);
        return this.fail('\\b (word boundary) is not supported');
      case 'x':
      case 'u': {
        const n = e === 'x' ? 2 : 4;
        const hex = this.src.slice(this.pos, this.pos + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(`\\${e} needs ${n} hex digits`);
        this.pos += n;
        return one(parseInt(hex, 16));
      }
      case undefined:
        return this.fail('the pattern ends with a lone backslash');
      default:
        if (/[A-Za-z1-9]/.test(e)) this.fail(`the escape \\${e} is not supported`);
        return one(e.codePointAt(0)!);
    }
  }

  private fail(what: string): never {
    throw new LanternError('UNSUPPORTED_SCHEMA', `The pattern ${JSON.stringify(this.pattern)} at ${this.path}: ${what}. Lantern supports a subset of regular expressions (literals, classes, groups, |, quantifiers, ^ and $ at the ends); simplify the pattern.`, { keyword: 'pattern', path: this.path });
  }
}

function complement(ranges: readonly CodeRange[]): CodeRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: CodeRange[] = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

const SHORT_ESCAPES = new Map<number, string>([[0x22, '\\"'], [0x5c, '\\\\'], [0x0a, '\\n'], [0x09, '\\t'], [0x0d, '\\r'], [0x08, '\\b'], [0x0c, '\\f']]);

/** One character from a set of code points as it is written inside a JSON string. */
export function jsonChar(ranges: readonly CodeRange[]): GrammarExpr {
  const raw: CodeRange[] = [];
  const escaped: GrammarExpr[] = [];
  const needsEscape = (cp: number) => cp < 0x20 || cp === 0x22 || cp === 0x5c;
  for (const [lo, hi] of ranges) {
    let start = -1;
    for (let cp = lo; cp <= hi; cp++) {
      if (needsEscape(cp)) {
        if (start >= 0) raw.push([start, cp - 1]);
        start = -1;
        escaped.push(lit(SHORT_ESCAPES.get(cp) ?? `\\u${cp.toString(16).padStart(4, '0')}`));
      } else if (start < 0) {
        start = cp;
      }
      if (cp >= 0x5d && !needsEscape(cp)) {
        // Past the last character that needs an escape: the rest of the range is raw.
        if (start < 0) start = cp;
        break;
      }
    }
    if (start >= 0) raw.push([start, hi]);
  }
  const parts = raw.length > 0 ? [cls(raw), ...escaped] : escaped;
  if (parts.length === 0) throw new LanternError('UNSUPPORTED_SCHEMA', 'A pattern has a character class that matches no character; fix the pattern.');
  return alt(...parts);
}
