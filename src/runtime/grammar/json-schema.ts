/**
 * JSON Schema → Grammar, for the subset Lantern enforces (issue 16). Every text the grammar accepts
 * parses with JSON.parse and validates against the schema; the grammar may be stricter than the
 * schema (it accepts fewer texts), never looser. What it does:
 *
 * - `type` (object, array, string, number, integer, boolean, null, or a list of them); without
 *   `type`, the type the other keywords imply, or any JSON value.
 * - Objects: `properties` in their declared order (a reply lists them in that order), `required`
 *   ones always, optional ones optional; `additionalProperties: false`, or absent beside `properties`,
 *   allows no other key (stricter than JSON Schema, as OpenAI's strict mode); `true` or a schema allows more keys
 *   after the declared ones, written without escapes and never equal to a declared name.
 *   `allOf` of objects merges their properties and `required` (close it with
 *   `unevaluatedProperties: false`; other members' keys are the only ones written either way).
 * - Arrays: `items` (a schema or false), `prefixItems`, `minItems`/`maxItems`; with `prefixItems`
 *   and no `items`, no further items are written.
 * - `enum`, `const` (written as compact JSON), `anyOf`/`oneOf` (alternatives: oneOf's "exactly one"
 *   is not enforced, so give it branches that cannot both match), `$ref` to `#` or a JSON pointer
 *   under it (`$defs`, `definitions`), recursion included.
 * - Strings: `minLength`/`maxLength` (in code points; each escape is one character, and \u escapes
 *   of surrogates are not written), `pattern` (the subset in pattern.ts), `format` date, time,
 *   date-time (RFC 3339, seconds 00-59, real calendar days incl. leap years), uuid, email (a
 *   conservative dot-atom@domain form). At most one of length, pattern and format per string.
 * - Integers: `minimum`/`maximum` exactly, as digit ranges. Numbers: `minimum`/`maximum` when they
 *   are whole numbers (a bounded number is written without exponent); fractional bounds on a
 *   number are refused, as is `exclusiveMinimum`/`exclusiveMaximum`.
 * - Bounded sizes so a model cannot go on forever where no schema asks it to: whitespace is at
 *   most one space, or one newline and up to 20 spaces/tabs, between tokens; integers have at most
 *   16 digits, fractions 16, exponents 3.
 * - `description`, `title`, `$comment`, `$schema`, `$id`, `default`, `examples` are ignored; any
 *   other keyword is refused with UNSUPPORTED_SCHEMA naming it and its path, before any token.
 */
import { LanternError } from '../../errors.ts';
import { alt, cls, EMPTY, lit, opt, ref, rep, seq, type CodeRange, type Grammar, type GrammarExpr } from './gbnf.ts';
import { patternGrammar } from './pattern.ts';

type Schema = Record<string, unknown>;

const ANNOTATIONS = new Set(['description', 'title', '$comment', '$schema', '$id', 'default', 'examples']);
const KEYWORDS = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'items', 'prefixItems',
  'minItems', 'maxItems', 'anyOf', 'oneOf', 'allOf', 'unevaluatedProperties', '$ref', '$defs', 'definitions',
  'minLength', 'maxLength', 'pattern', 'format', 'minimum', 'maximum',
]);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];
const FORMATS = new Set(['date', 'time', 'date-time', 'uuid', 'email']);

const MAX_INT_DIGITS = 16;
const MAX_FRACTION_DIGITS = 16;

/** The grammar of the JSON texts that validate against `schema` (the subset above). */
export function grammarFromJsonSchema(schema: unknown): Grammar {
  checkKeywords(schema, '#');
  const converter = new SchemaConverter(schema);
  converter.rules.set('root', converter.convert(schema, '#'));
  return { rules: reorderRootFirst(converter.rules), root: 'root' };
}

/** OpenAI's `json_object` mode: any JSON object. */
export function jsonObjectGrammar(): Grammar {
  const converter = new SchemaConverter({});
  converter.rules.set('root', ref(converter.common('object')));
  return { rules: reorderRootFirst(converter.rules), root: 'root' };
}

function reorderRootFirst(rules: Map<string, GrammarExpr>): Map<string, GrammarExpr> {
  return new Map([['root', rules.get('root')!], ...[...rules].filter(([name]) => name !== 'root')]);
}

function unsupported(keyword: string, path: string, why: string): LanternError {
  return new LanternError('UNSUPPORTED_SCHEMA', `JSON schema keyword "${keyword}" at ${path}: ${why}.`, { keyword, path });
}

function isSchemaObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const escapePointer = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');

/** Walks the whole schema first, so that any unsupported keyword fails before a token is generated. */
function checkKeywords(schema: unknown, path: string): void {
  if (typeof schema === 'boolean') return;
  if (!isSchemaObject(schema)) throw new LanternError('UNSUPPORTED_SCHEMA', `The JSON schema at ${path} is ${Array.isArray(schema) ? 'an array' : JSON.stringify(schema)}, not an object; give a schema object.`, { path });
  for (const [key, value] of Object.entries(schema)) {
    const here = `${path}/${escapePointer(key)}`;
    if (ANNOTATIONS.has(key)) continue;
    if (!KEYWORDS.has(key)) throw unsupported(key, path, 'Lantern does not support this keyword; remove it (see the README for the supported subset)');
    switch (key) {
      case 'properties':
      case '$defs':
      case 'definitions':
        if (!isSchemaObject(value)) throw unsupported(key, path, 'must be an object of schemas');
        for (const [name, sub] of Object.entries(value)) checkKeywords(sub, `${here}/${escapePointer(name)}`);
        break;
      case 'additionalProperties':
      case 'items':
        checkKeywords(value, here);
        break;
      case 'unevaluatedProperties':
        if (value !== false) throw unsupported(key, path, 'only false is supported (it closes an allOf of objects)');
        break;
      case 'prefixItems':
      case 'anyOf':
      case 'oneOf':
      case 'allOf':
        if (!Array.isArray(value) || value.length === 0) throw unsupported(key, path, 'must be a non-empty array of schemas');
        value.forEach((sub, i) => checkKeywords(sub, `${here}/${i}`));
        break;
      case 'required':
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw unsupported(key, path, 'must be an array of property names');
        break;
      case 'enum':
        if (!Array.isArray(value) || value.length === 0) throw unsupported(key, path, 'must be a non-empty array');
        break;
      case 'type': {
        const types = Array.isArray(value) ? value : [value];
        for (const t of types) if (!(TYPES as readonly unknown[]).includes(t)) throw unsupported(key, path, `${JSON.stringify(t)} is not a JSON type (use ${TYPES.join(', ')})`);
        if (types.length === 0) throw unsupported(key, path, 'must name at least one type');
        break;
      }
      case 'minItems':
      case 'maxItems':
      case 'minLength':
      case 'maxLength':
        if (!(Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 10_000)) throw unsupported(key, path, 'must be a whole number from 0 to 10000');
        break;
      case 'minimum':
      case 'maximum':
        if (typeof value !== 'number' || !Number.isFinite(value)) throw unsupported(key, path, 'must be a finite number');
        break;
      case 'pattern':
        if (typeof value !== 'string') throw unsupported(key, path, 'must be a string');
        break;
      case 'format':
        if (typeof value !== 'string' || !FORMATS.has(value)) throw unsupported(key, path, `format ${JSON.stringify(value)} is not supported (use ${[...FORMATS].join(', ')})`);
        break;
      case '$ref':
        if (typeof value !== 'string' || !value.startsWith('#')) throw unsupported(key, path, 'only references inside the schema ("#" or "#/$defs/name") are supported');
        break;
    }
  }
}

class SchemaConverter {
  readonly rules = new Map<string, GrammarExpr>();
  private readonly refRules = new Map<string, string>();
  private count = 0;

  constructor(private readonly root: unknown) {}

  /** A fresh rule name from a hint (GBNF names: letters, digits, '-'). */
  private name(hint: string): string {
    const base = hint.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'r';
    let name = base;
    while (this.rules.has(name) || name === 'root') name = `${base}-${++this.count}`;
    this.rules.set(name, EMPTY); // reserve
    return name;
  }

  private define(hint: string, expr: GrammarExpr): GrammarExpr {
    const name = this.name(hint);
    this.rules.set(name, expr);
    return ref(name);
  }

  /** Shared rules: whitespace, JSON primitives and any JSON value. */
  common(what: 'ws' | 'char' | 'string' | 'number' | 'integer' | 'boolean' | 'null' | 'value' | 'object' | 'array'): string {
    if (this.rules.has(what)) return what;
    this.rules.set(what, EMPTY);
    const ws = () => ref(this.common('ws'));
    const hex: CodeRange[] = [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]];
    const digits = (min: number, max: number) => rep(cls([[0x30, 0x39]]), min, max);
    let expr: GrammarExpr;
    switch (what) {
      case 'ws':
        expr = alt(EMPTY, lit(' '), seq(lit('\n'), rep(cls([[0x20, 0x20], [0x09, 0x09]]), 0, 20)));
        break;
      case 'char':
        // A raw character or an escape; \u escapes of surrogates are not written, so that every
        // char is one code point (minLength/maxLength count code points).
        expr = alt(
          cls([[0x00, 0x1f], [0x22, 0x22], [0x5c, 0x5c]], true),
          seq(lit('\\'), alt(cls([[0x22, 0x22], [0x5c, 0x5c], [0x2f, 0x2f], [0x62, 0x62], [0x66, 0x66], [0x6e, 0x6e], [0x72, 0x72], [0x74, 0x74]]),
            seq(lit('u'), alt(seq(cls([[0x30, 0x39], [0x41, 0x43], [0x45, 0x46], [0x61, 0x63], [0x65, 0x66]]), rep(cls(hex), 3, 3)),
              seq(cls([[0x44, 0x44], [0x64, 0x64]]), cls([[0x30, 0x37]]), rep(cls(hex), 2, 2)))))),
        );
        break;
      case 'string':
        expr = seq(lit('"'), rep(ref(this.common('char')), 0, Infinity), lit('"'));
        break;
      case 'integer':
        expr = seq(opt(lit('-')), alt(lit('0'), seq(cls([[0x31, 0x39]]), digits(0, MAX_INT_DIGITS - 1))));
        break;
      case 'number':
        expr = seq(ref(this.common('integer')), opt(seq(lit('.'), digits(1, MAX_FRACTION_DIGITS))),
          opt(seq(cls([[0x45, 0x45], [0x65, 0x65]]), opt(cls([[0x2b, 0x2b], [0x2d, 0x2d]])), digits(1, 3))));
        break;
      case 'boolean':
        expr = alt(lit('true'), lit('false'));
        break;
      case 'null':
        expr = lit('null');
        break;
      case 'value':
        expr = alt(...(['object', 'array', 'string', 'number', 'boolean', 'null'] as const).map((t) => ref(this.common(t))));
        break;
      case 'object': {
        const kv = seq(ref(this.common('string')), ws(), lit(':'), ws(), ref(this.common('value')), ws());
        expr = seq(lit('{'), ws(), opt(seq(kv, rep(seq(lit(','), ws(), kv), 0, Infinity))), lit('}'));
        break;
      }
      case 'array': {
        const item = seq(ref(this.common('value')), ws());
        expr = seq(lit('['), ws(), opt(seq(item, rep(seq(lit(','), ws(), item), 0, Infinity))), lit(']'));
        break;
      }
    }
    this.rules.set(what, expr);
    return what;
  }

  convert(schema: unknown, path: string): GrammarExpr {
    if (schema === true) return ref(this.common('value'));
    if (schema === false) throw unsupported('false', path, 'a schema that matches nothing cannot be generated; remove it');
    const s = schema as Schema;
    const has = (k: string) => Object.hasOwn(s, k);

    if (has('$ref')) {
      const siblings = Object.keys(s).filter((k) => k !== '$ref' && !ANNOTATIONS.has(k) && k !== '$defs' && k !== 'definitions');
      if (siblings.length > 0) throw unsupported('$ref', path, `other keywords beside $ref (${siblings.join(', ')}) are not supported; move them into the referenced schema`);
      return ref(this.refRule(s.$ref as string, path));
    }
    if (has('const')) return lit(JSON.stringify(s.const));
    if (has('enum')) {
      const types = has('type') ? this.typesOf(s, path) : undefined;
      const fits = (t: JsonType) => types === undefined || types.includes(t) || (t === 'integer' && types.includes('number'));
      const values = (s.enum as unknown[]).filter((v) => fits(jsonTypeOf(v)));
      if (values.length === 0) throw unsupported('enum', path, 'no value of the enum has the schema\'s type');
      return alt(...values.map((v) => lit(JSON.stringify(v))));
    }
    for (const key of ['anyOf', 'oneOf'] as const) {
      if (!has(key)) continue;
      const siblings = Object.keys(s).filter((k) => k !== key && !ANNOTATIONS.has(k) && k !== '$defs' && k !== 'definitions');
      if (siblings.length > 0) throw unsupported(key, path, `other keywords beside ${key} (${siblings.join(', ')}) are not supported; move them into each branch`);
      return alt(...(s[key] as unknown[]).map((sub, i) => this.convert(sub, `${path}/${key}/${i}`)));
    }
    if (has('allOf')) return this.allOf(s, path);

    const types = this.typesOf(s, path);
    return alt(...types.map((t) => this.typed(t, s, path)));
  }

  private typesOf(s: Schema, path: string): JsonType[] {
    if (Object.hasOwn(s, 'type')) return (Array.isArray(s.type) ? s.type : [s.type]) as JsonType[];
    const has = (...keys: string[]) => keys.some((k) => Object.hasOwn(s, k));
    const implied: JsonType[] = [];
    if (has('properties', 'additionalProperties', 'required', 'unevaluatedProperties')) implied.push('object');
    if (has('items', 'prefixItems', 'minItems', 'maxItems')) implied.push('array');
    if (has('minLength', 'maxLength', 'pattern', 'format')) implied.push('string');
    if (has('minimum', 'maximum')) implied.push('number');
    if (implied.length > 1) throw unsupported('type', path, `the keywords here imply several types (${implied.join(', ')}); say which with "type"`);
    return implied.length === 1 ? implied : ['object', 'array', 'string', 'number', 'boolean', 'null'];
  }

  private typed(t: JsonType, s: Schema, path: string): GrammarExpr {
    switch (t) {
      case 'object': return this.object(s, path);
      case 'array': return this.array(s, path);
      case 'string': return this.string(s, path);
      case 'integer': return this.integer(s, path);
      case 'number': return this.number(s, path);
      case 'boolean': return ref(this.common('boolean'));
      case 'null': return ref(this.common('null'));
    }
  }

  private refRule(pointer: string, path: string): string {
    const known = this.refRules.get(pointer);
    if (known !== undefined) return known;
    let target: unknown = this.root;
    const parts = pointer === '#' ? [] : pointer.replace(/^#\/?/, '').split('/').map((p) => decodeURIComponent(p).replaceAll('~1', '/').replaceAll('~0', '~'));
    for (const part of parts) {
      if (!(isSchemaObject(target) || Array.isArray(target)) || !Object.hasOwn(target, part)) {
        throw unsupported('$ref', path, `${JSON.stringify(pointer)} points to nothing in the schema`);
      }
      target = (target as Record<string, unknown>)[part];
    }
    const name = this.name(`ref-${parts[parts.length - 1] ?? 'root'}`);
    this.refRules.set(pointer, name);
    this.rules.set(name, this.convert(target, pointer));
    return name;
  }

  private allOf(s: Schema, path: string): GrammarExpr {
    const properties = new Map<string, unknown>();
    const required = new Set<string>();
    const addObject = (member: unknown, at: string) => {
      let m = member;
      const seen = new Set<string>();
      while (isSchemaObject(m) && typeof m.$ref === 'string') {
        if (seen.has(m.$ref)) throw unsupported('$ref', at, 'a reference cycle inside allOf');
        seen.add(m.$ref);
        m = this.resolve(m.$ref, at);
      }
      if (!isSchemaObject(m)) throw unsupported('allOf', at, 'members must be object schemas');
      for (const key of Object.keys(m)) {
        if (ANNOTATIONS.has(key) || key === '$defs' || key === 'definitions' || key === 'required' || key === 'properties' || key === 'unevaluatedProperties') continue;
        if (key === 'type' && m.type === 'object') continue;
        if (key === 'allOf') {
          (m.allOf as unknown[]).forEach((sub, i) => addObject(sub, `${at}/allOf/${i}`));
          continue;
        }
        throw unsupported('allOf', at, `only objects (properties, required) can be combined, not "${key}"`);
      }
      for (const [name, sub] of Object.entries((m.properties ?? {}) as Schema)) {
        if (properties.has(name)) throw unsupported('allOf', at, `property "${name}" is declared by two members`);
        properties.set(name, sub);
      }
      for (const name of (m.required ?? []) as string[]) required.add(name);
    };
    addObject(s, path);
    return this.objectOf(properties, required, undefined, path);
  }

  private resolve(pointer: string, path: string): unknown {
    let target: unknown = this.root;
    const parts = pointer === '#' ? [] : pointer.replace(/^#\/?/, '').split('/').map((p) => decodeURIComponent(p).replaceAll('~1', '/').replaceAll('~0', '~'));
    for (const part of parts) {
      if (!(isSchemaObject(target) || Array.isArray(target)) || !Object.hasOwn(target, part)) throw unsupported('$ref', path, `${JSON.stringify(pointer)} points to nothing in the schema`);
      target = (target as Record<string, unknown>)[part];
    }
    return target;
  }

  private object(s: Schema, path: string): GrammarExpr {
    const properties = new Map(Object.entries((s.properties ?? {}) as Schema));
    const required = new Set((s.required ?? []) as string[]);
    // No properties and no additionalProperties: any object. Properties without
    // additionalProperties: no other keys (stricter than JSON Schema, as OpenAI's strict mode).
    const additional = Object.hasOwn(s, 'additionalProperties') ? s.additionalProperties : !Object.hasOwn(s, 'properties');
    return this.objectOf(properties, required, additional === false ? undefined : additional, path);
  }

  /**
   * "{" ws (kv ("," ws kv)*)? "}" with the declared properties in order. first_i: the object from
   * property i on, nothing written yet; rest_i: the same after at least one property (each then
   * begins with a comma). Required properties cannot be skipped.
   */
  private objectOf(properties: Map<string, unknown>, required: Set<string>, additional: unknown, path: string): GrammarExpr {
    for (const name of required) if (!properties.has(name)) properties.set(name, true);
    const ws = ref(this.common('ws'));
    const entries = [...properties];
    const hint = path === '#' ? 'root' : path.split('/').slice(-1)[0];
    // Each key-value pair is a rule of its own: first_i and rest_i both refer to it.
    const kvs = entries.map(([name, sub], i) => this.define(`${hint}-kv${i}`, seq(lit(JSON.stringify(name)), ws, lit(':'), ws, this.convert(sub, `${path}/properties/${escapePointer(name)}`), ws)));
    let extraKv: GrammarExpr | undefined;
    if (additional !== undefined) {
      const key = this.keyNotIn(entries.map(([name]) => name), path);
      extraKv = this.define(`${hint}-extra`, seq(key, ws, lit(':'), ws, this.convert(additional, `${path}/additionalProperties`), ws));
    }
    const n = entries.length;
    const rest: GrammarExpr[] = new Array(n + 1);
    const first: GrammarExpr[] = new Array(n + 1);
    const comma = seq(lit(','), ws);
    rest[n] = extraKv ? rep(seq(comma, extraKv), 0, Infinity) : EMPTY;
    first[n] = extraKv ? opt(seq(extraKv, rep(seq(comma, extraKv), 0, Infinity))) : EMPTY;
    for (let i = n - 1; i >= 0; i--) {
      const isRequired = required.has(entries[i][0]);
      const restNext = rest[i + 1];
      const r = seq(comma, kvs[i], restNext);
      rest[i] = this.define(`${hint}-rest${i}`, isRequired ? r : alt(r, restNext));
      const f = seq(kvs[i], restNext);
      first[i] = this.define(`${hint}-first${i}`, isRequired ? f : alt(f, first[i + 1]));
    }
    return seq(lit('{'), ws, first[0], lit('}'));
  }

  /** A key string (no escapes) that is none of `names`: a trie over their characters. */
  private keyNotIn(names: string[], path: string): GrammarExpr {
    interface Node { children: Map<number, Node>; terminal: boolean }
    const rootNode: Node = { children: new Map(), terminal: false };
    for (const name of names) {
      // A name with a character that needs an escape is never written by this rule: skip it.
      if ([...name].some((ch) => ch < ' ' || ch === '"' || ch === '\\')) continue;
      let node = rootNode;
      for (const ch of name) {
        const cp = ch.codePointAt(0)!;
        let next = node.children.get(cp);
        if (!next) node.children.set(cp, (next = { children: new Map(), terminal: false }));
        node = next;
      }
      node.terminal = true;
    }
    const plain: CodeRange[] = [[0x00, 0x1f], [0x22, 0x22], [0x5c, 0x5c]];
    const plainChar = cls(plain, true);
    const hint = `${path === '#' ? 'root' : path.split('/').slice(-1)[0]}-key`;
    const build = (node: Node): GrammarExpr => {
      const alts: GrammarExpr[] = [];
      for (const [cp, child] of node.children) alts.push(seq(lit(String.fromCodePoint(cp)), build(child)));
      alts.push(seq(cls([...plain, ...[...node.children.keys()].map((cp) => [cp, cp] as CodeRange)], true), rep(plainChar, 0, Infinity), lit('"')));
      if (!node.terminal) alts.push(lit('"'));
      return this.define(hint, alt(...alts));
    };
    return seq(lit('"'), build(rootNode));
  }

  private array(s: Schema, path: string): GrammarExpr {
    const ws = ref(this.common('ws'));
    const prefix = ((s.prefixItems ?? []) as unknown[]).map((sub, i) => seq(this.convert(sub, `${path}/prefixItems/${i}`), ws));
    const items = s.items;
    const min = (s.minItems ?? 0) as number;
    const max = (s.maxItems ?? Infinity) as number;
    if (min > max) throw unsupported('minItems', path, 'is above maxItems, so no array fits');
    // Without items, an array with prefixItems ends after them; a plain array holds any values.
    const tail = items === false || (items === undefined && prefix.length > 0) ? undefined
      : this.define(`${path === '#' ? 'root' : path.split('/').slice(-1)[0]}-item`, seq(items === undefined ? ref(this.common('value')) : this.convert(items, `${path}/items`), ws));
    const k = prefix.length;
    if (min > k && tail === undefined) throw unsupported('minItems', path, 'asks for more items than prefixItems allows');
    const comma = seq(lit(','), ws);
    // Items from index i on (i items already written).
    const from = (i: number): GrammarExpr => {
      if (i >= max) return EMPTY;
      if (i < k) {
        const here = seq(...(i > 0 ? [comma] : []), prefix[i], from(i + 1));
        return i >= min ? opt(here) : here;
      }
      if (tail === undefined) return EMPTY;
      const more = rep(seq(comma, tail), Math.max(0, min - Math.max(i, 1)), max === Infinity ? Infinity : max - Math.max(i, 1));
      if (i > 0) return more;
      const some = seq(tail, more);
      return min === 0 ? opt(some) : some;
    };
    return seq(lit('['), ws, this.define(`${path === '#' ? 'root' : path.split('/').slice(-1)[0]}-items`, from(0)), lit(']'));
  }

  private string(s: Schema, path: string): GrammarExpr {
    const has = (k: string) => Object.hasOwn(s, k);
    const kinds = [has('minLength') || has('maxLength') ? 'minLength/maxLength' : '', has('pattern') ? 'pattern' : '', has('format') ? 'format' : ''].filter(Boolean);
    if (kinds.length > 1) throw unsupported(kinds[1].split('/')[0], path, `cannot be combined with ${kinds[0]} on one string`);
    const char = ref(this.common('char'));
    const quoted = (body: GrammarExpr) => seq(lit('"'), body, lit('"'));
    if (has('pattern')) return quoted(this.define('pattern', patternGrammar(s.pattern as string, char, `${path}/pattern`)));
    if (has('format')) return quoted(ref(this.format(s.format as string)));
    if (has('minLength') || has('maxLength')) {
      const min = (s.minLength ?? 0) as number;
      const max = (s.maxLength ?? Infinity) as number;
      if (min > max) throw unsupported('minLength', path, 'is above maxLength, so no string fits');
      return quoted(rep(char, min, max));
    }
    return ref(this.common('string'));
  }

  private format(format: string): string {
    const name = `format-${format}`;
    if (this.rules.has(name)) return name;
    const d = (lo: number, hi: number): GrammarExpr => cls([[0x30 + lo, 0x30 + hi]]);
    const digits = (n: number) => rep(d(0, 9), n, n);
    const hex = cls([[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]]);
    const hexN = (n: number) => rep(hex, n, n);
    let expr: GrammarExpr;
    switch (format) {
      case 'date': {
        // Real calendar days: 31/30-day months, February to 28, and the 29th in leap years.
        const day28 = alt(seq(lit('0'), d(1, 9)), seq(lit('1'), d(0, 9)), seq(lit('2'), d(0, 8)));
        const day30 = alt(day28, lit('29'), lit('30'));
        const day31 = alt(day30, lit('31'));
        const year = digits(4);
        const leapYear = alt(
          seq(d(0, 9), d(0, 9), alt(seq(lit('0'), cls([[0x34, 0x34], [0x38, 0x38]])), seq(cls([[0x32, 0x32], [0x34, 0x34], [0x36, 0x36], [0x38, 0x38]]), cls([[0x30, 0x30], [0x34, 0x34], [0x38, 0x38]])), seq(cls([[0x31, 0x31], [0x33, 0x33], [0x35, 0x35], [0x37, 0x37], [0x39, 0x39]]), cls([[0x32, 0x32], [0x36, 0x36]])))),
          seq(alt(seq(cls([[0x30, 0x30], [0x32, 0x32], [0x34, 0x34], [0x36, 0x36], [0x38, 0x38]]), cls([[0x30, 0x30], [0x34, 0x34], [0x38, 0x38]])), seq(cls([[0x31, 0x31], [0x33, 0x33], [0x35, 0x35], [0x37, 0x37], [0x39, 0x39]]), cls([[0x32, 0x32], [0x36, 0x36]]))), lit('00')),
        );
        expr = alt(
          seq(year, lit('-'), alt(...['01', '03', '05', '07', '08', '10', '12'].map(lit)), lit('-'), day31),
          seq(year, lit('-'), alt(...['04', '06', '09', '11'].map(lit)), lit('-'), day30),
          seq(year, lit('-02-'), day28),
          seq(leapYear, lit('-02-29')),
        );
        break;
      }
      case 'time': {
        const hh = alt(seq(d(0, 1), d(0, 9)), seq(lit('2'), d(0, 3)));
        const mm = seq(d(0, 5), d(0, 9));
        expr = seq(hh, lit(':'), mm, lit(':'), mm, opt(seq(lit('.'), rep(d(0, 9), 1, 9))), alt(lit('Z'), seq(cls([[0x2b, 0x2b], [0x2d, 0x2d]]), hh, lit(':'), mm)));
        break;
      }
      case 'date-time':
        expr = seq(ref(this.format('date')), lit('T'), ref(this.format('time')));
        break;
      case 'uuid':
        expr = seq(hexN(8), lit('-'), hexN(4), lit('-'), hexN(4), lit('-'), hexN(4), lit('-'), hexN(12));
        break;
      default: { // email: dot-atom "@" domain of two to four labels
        const atext = cls([[0x41, 0x5a], [0x61, 0x7a], [0x30, 0x39], ...[...'!#$%&\'*+/=?^_`{|}~-'].map((c) => [c.charCodeAt(0), c.charCodeAt(0)] as CodeRange)]);
        const atom = rep(atext, 1, 32);
        const alnum = cls([[0x41, 0x5a], [0x61, 0x7a], [0x30, 0x39]]);
        const label = seq(rep(alnum, 1, 20), rep(seq(lit('-'), rep(alnum, 1, 20)), 0, 2));
        expr = seq(atom, rep(seq(lit('.'), atom), 0, 3), lit('@'), label, rep(seq(lit('.'), label), 1, 3));
      }
    }
    this.rules.set(name, expr);
    return name;
  }

  private integer(s: Schema, path: string): GrammarExpr {
    if (!Object.hasOwn(s, 'minimum') && !Object.hasOwn(s, 'maximum')) return ref(this.common('integer'));
    const lo = bound(Object.hasOwn(s, 'minimum') ? Math.ceil(s.minimum as number) : -Infinity);
    const hi = bound(Object.hasOwn(s, 'maximum') ? Math.floor(s.maximum as number) : Infinity);
    if (lo > hi || lo === Infinity || hi === -Infinity) throw unsupported('minimum', path, 'no integer of at most 16 digits lies between minimum and maximum');
    const parts: GrammarExpr[] = [];
    if (lo < 0) parts.push(seq(lit('-'), uintRange(hi < 0 ? -hi : 1, -lo)));
    if (hi >= 0) parts.push(uintRange(Math.max(lo, 0), hi));
    return this.define('int-range', alt(...parts));
  }

  private number(s: Schema, path: string): GrammarExpr {
    if (!Object.hasOwn(s, 'minimum') && !Object.hasOwn(s, 'maximum')) return ref(this.common('number'));
    for (const key of ['minimum', 'maximum']) {
      if (Object.hasOwn(s, key) && !Number.isInteger(s[key])) throw unsupported(key, path, 'on a number only whole-number bounds can be held by the grammar; use a whole number, or type integer');
    }
    const lo = bound((s.minimum ?? -Infinity) as number);
    const hi = bound((s.maximum ?? Infinity) as number);
    if (lo > hi || lo === Infinity || hi === -Infinity) throw unsupported('minimum', path, 'is above maximum (or past 16 digits), so no number fits');
    const fraction = opt(seq(lit('.'), rep(cls([[0x30, 0x39]]), 1, MAX_FRACTION_DIGITS)));
    const zeroFraction = opt(seq(lit('.'), rep(lit('0'), 1, MAX_FRACTION_DIGITS)));
    // A magnitude in [a, b]: whole part a..b-1 with any fraction, or exactly b with a zero fraction.
    const magnitude = (a: number, b: number): GrammarExpr =>
      b === Infinity ? seq(uintRange(a, Infinity), fraction)
        : alt(...(a <= b - 1 ? [seq(uintRange(a, b - 1), fraction)] : []), seq(lit(String(b)), zeroFraction));
    const parts: GrammarExpr[] = [];
    if (lo < 0) parts.push(seq(lit('-'), magnitude(hi < 0 ? -hi : 0, -lo)));
    if (hi >= 0) parts.push(magnitude(Math.max(lo, 0), hi));
    return this.define('num-range', alt(...parts));
  }
}

/** Bounds past 16 digits are no bound at all: integers are written with at most 16 digits. */
function bound(x: number): number {
  return Math.abs(x) >= 1e16 ? x * Infinity : x;
}

function jsonTypeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

/**
 * Decimal integers lo..hi (hi may be Infinity: up to 16 digits), without leading zeros: one
 * alternative per digit count, each split by leading digit where the bounds cut a range.
 */
export function uintRange(lo: number, hi: number): GrammarExpr {
  const maxDigits = hi === Infinity ? MAX_INT_DIGITS : String(hi).length;
  const loText = String(lo);
  const parts: GrammarExpr[] = [];
  for (let n = loText.length; n <= maxDigits; n++) {
    const a = n === loText.length ? loText : '1' + '0'.repeat(n - 1);
    const b = hi !== Infinity && n === String(hi).length ? String(hi) : '9'.repeat(n);
    if (a.length === b.length && a <= b) parts.push(fixedWidthRange(a, b));
  }
  if (parts.length === 0) throw new LanternError('UNSUPPORTED_SCHEMA', `No integer of at most ${MAX_INT_DIGITS} digits lies in ${lo}..${hi}; use smaller bounds.`);
  return alt(...parts);
}

/** Digit strings of one width from a to b (same length, a <= b). */
function fixedWidthRange(a: string, b: string): GrammarExpr {
  if (a.length === 0) return EMPTY;
  const digit = (lo: number, hi: number) => cls([[0x30 + lo, 0x30 + hi]]);
  const a0 = Number(a[0]);
  const b0 = Number(b[0]);
  const restA = a.slice(1);
  const restB = b.slice(1);
  if (a0 === b0) return seq(lit(a[0]), fixedWidthRange(restA, restB));
  const lowFull = /^0*$/.test(restA);
  const highFull = /^9*$/.test(restB);
  const alts: GrammarExpr[] = [];
  let from = a0;
  let to = b0;
  if (!lowFull) {
    alts.push(seq(lit(a[0]), fixedWidthRange(restA, '9'.repeat(restA.length))));
    from++;
  }
  if (!highFull) to--;
  if (from <= to) alts.push(seq(digit(from, to), rep(digit(0, 9), restA.length, restA.length)));
  if (!highFull) alts.push(seq(lit(b[0]), fixedWidthRange('0'.repeat(restB.length), restB)));
  return alt(...alts);
}
