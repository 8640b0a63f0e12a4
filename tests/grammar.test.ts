/**
 * Constrained decoding engine (issue 16, section 1), no GPU: GBNF parsing and matching, JSON Schema
 * to grammar (every accepted text checked by ajv, an independent validator), the token mask against
 * a brute-force mask on SmolLM2's real vocabulary, and random walks that must end in valid JSON.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { readGGUF } from '../src/model/gguf.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import { parseGbnf, printGbnf, type Grammar } from '../src/runtime/grammar/gbnf.ts';
import { grammarFromJsonSchema, jsonObjectGrammar } from '../src/runtime/grammar/json-schema.ts';
import { applyMask, maskVocabulary, TokenConstraint, TokenMasker, TokenTrie, type MaskVocabulary } from '../src/runtime/grammar/mask.ts';
import { compileGrammar, GrammarAutomaton, GrammarMatcher } from '../src/runtime/grammar/matcher.ts';
import { constraintFor } from '../src/runtime/grammar/index.ts';
import { Sampler } from '../src/runtime/sampler.ts';
import { bytesSource } from '../src/storage/source.ts';
import { SCHEMA_CASES, type SchemaCase } from './helpers/grammar-schemas.ts';
import { smollm2Vocabulary, type TestVocabulary } from './helpers/grammar-vocab.ts';
import { validates } from './helpers/json-validator.ts';
import { LLAMACPP_GRAMMARS_DIR, LLAMACPP_VOCAB_DIR } from './helpers/paths.ts';

const exampleGrammar = (name: string) => parseGbnf(readFileSync(resolve(LLAMACPP_GRAMMARS_DIR, `${name}.gbnf`), 'utf8'));

/** Whether the whole text is a sentence of the grammar. */
function matches(grammar: Grammar | GrammarMatcher, text: string | Uint8Array): boolean {
  const m = grammar instanceof GrammarMatcher ? grammar.clone() : GrammarMatcher.of(grammar);
  return m.advance(text) && m.isComplete();
}

function errorOf(f: () => unknown): LanternError {
  try {
    f();
  } catch (e) {
    if (e instanceof LanternError) return e;
    throw e;
  }
  throw new Error('expected a LanternError');
}

const grammarOf = (c: SchemaCase) => (c.schema === undefined ? jsonObjectGrammar() : grammarFromJsonSchema(c.schema));

// ─── GBNF ───

describe('GBNF', () => {
  test("llama.cpp's json.gbnf accepts JSON objects and refuses the rest", () => {
    const g = exampleGrammar('json');
    for (const t of ['{}', '{"a": [1, 2.5e3, "x\\u00e9y", true, null]}', '{"é漢😀": {"b": -0.5}}', '{\n  "k": "v"\n}']) expect(matches(g, t), t).toBe(true);
    for (const t of ['', '[]', '{"a":}', '{"a" 1}', '{"a": tru}', '{"a": "\u0001"}', '{"a":01}']) expect(matches(g, t), t).toBe(false);
  });

  test('arithmetic and list grammars', () => {
    const arithmetic = exampleGrammar('arithmetic');
    for (const t of ['1+2=3\n', 'x = (a*b -4)\n', 'abc=(1+(2/z))\n1=1\n']) expect(matches(arithmetic, t), t).toBe(true);
    for (const t of ['1+2=3', '=3\n', '1+=2\n', 'A=1\n']) expect(matches(arithmetic, t), t).toBe(false);
    const list = exampleGrammar('list');
    for (const t of ['- one\n', '- one\n- two thousand\n- ü 漢\n']) expect(matches(list, t), t).toBe(true);
    for (const t of ['- \n', 'one\n', '- one', '- a\u2028b\n', '- a\x85b\n']) expect(matches(list, t), t).toBe(false);
  });

  test('the other example grammars parse and compile', () => {
    for (const name of ['c', 'chess', 'english', 'japanese', 'json_arr']) {
      expect(() => compileGrammar(exampleGrammar(name)), name).not.toThrow();
    }
    expect(matches(exampleGrammar('chess'), '1. e4 e5\n2. Nf3 Nc6\n')).toBe(true);
    expect(matches(exampleGrammar('japanese'), 'こんにちは')).toBe(true);
  });

  test('repetitions, classes, escapes, any-char and comments', () => {
    const g = parseGbnf([
      '# a comment line',
      'root ::= ab{2,3} x? y+ "\\x41\\u00e9\\t\\"" [^a-c\\]] . z{2} w{1,} # trailing comment',
      'ab ::= "a" | "b"',
      'x ::= [0-9a-fA-F]',
      'y ::= "-"',
      'z ::= [ぁ-ゟ]',
      'w ::= (',
      '  "(" ")"',
      '  | "!"',
      ')',
    ].join('\n'));
    expect(matches(g, 'ab-Aé\t"d😀ぁゟ!')).toBe(true);
    expect(matches(g, 'aba5--Aé\t"exぁぁ()!')).toBe(true);
    expect(matches(g, 'a-Aé\t"dxぁぁ!')).toBe(false); // ab{2,3}: one is too few
    expect(matches(g, 'ababa-Aé\t"dxぁぁ!')).toBe(false); // four, and a hex digit, are too many
    expect(matches(g, 'ab-Aé\t"cxぁぁ!')).toBe(false); // [^a-c]
    expect(matches(g, 'ab-Aé\t"dxぁa!')).toBe(false); // z is hiragana
    // a multi-byte character is matched one byte at a time: a prefix of its bytes is a valid prefix
    const m = GrammarMatcher.of(parseGbnf('root ::= [ぁ-ゟ]+'));
    const bytes = new TextEncoder().encode('ぁ');
    expect(m.advance(bytes.subarray(0, 1))).toBe(true);
    expect(m.isComplete()).toBe(false);
    expect(m.accepts(new Uint8Array([0x41]))).toBe(false);
    expect(m.advance(bytes.subarray(1))).toBe(true);
    expect(m.isComplete()).toBe(true);
  });

  test('printing as GBNF and parsing again gives the same language', () => {
    for (const name of ['json', 'arithmetic', 'list']) {
      const g = exampleGrammar(name);
      const again = parseGbnf(printGbnf(g));
      const samples = name === 'json' ? ['{"a": [1, "b\\n"]}', '{"a":]'] : name === 'list' ? ['- x\n', '-x\n'] : ['a=1\n', 'a=\n'];
      for (const t of samples) expect(matches(again, t), `${name}: ${t}`).toBe(matches(g, t));
    }
    const schemaGrammar = grammarFromJsonSchema(SCHEMA_CASES.find((c) => c.name.startsWith('format date'))!.schema);
    const reparsed = parseGbnf(printGbnf(schemaGrammar));
    const ok = '{"d":"2024-02-29","t":"23:59:59Z","dt":"1999-12-31T00:00:00.123+05:30"}';
    expect(matches(reparsed, ok)).toBe(true);
    expect(matches(reparsed, ok.replace('2024', '2023'))).toBe(false);
  });

  test('syntax errors are BAD_GRAMMAR with line and column', () => {
    const cases: [string, number, number][] = [
      ['root ::= "a"\nx ::= "b" (c\n', 3, 1],
      ['root ::= "a"\nfoo "b"\n', 2, 5],
      ['root ::= [a-\n', 1, 10],
      ['root ::= "\\q"\n', 1, 11],
      ['root ::= "a"{3,1}\n', 1, 13],
      ['root ::= <think>\n', 1, 10],
      ['root ::= * "a"\n', 1, 10],
    ];
    for (const [text, line, column] of cases) {
      const e = errorOf(() => parseGbnf(text));
      expect(e.code, text).toBe('BAD_GRAMMAR');
      expect(e.details, text).toEqual({ line, column });
      expect(e.message).toMatch(new RegExp(`line ${line} column ${column}`));
    }
    expect(errorOf(() => parseGbnf('root ::= missing\n')).message).toMatch(/"missing" is used but never defined/);
    expect(errorOf(() => parseGbnf('start ::= "a"\n')).message).toMatch(/no "root" rule/);
    expect(errorOf(() => parseGbnf('root ::= "a"\nroot ::= "b"\n')).message).toMatch(/defined twice/);
  });

  test('left recursion is refused with BAD_GRAMMAR', () => {
    for (const text of ['root ::= root "x" | "y"\n', 'root ::= a\na ::= b? a "x" | "y"\nb ::= "b"\n', 'root ::= a\na ::= b\nb ::= a | "z"\n']) {
      const e = errorOf(() => compileGrammar(parseGbnf(text)));
      expect(e.code).toBe('BAD_GRAMMAR');
      expect(e.message).toMatch(/left-recursive/);
    }
    // right recursion is fine, and deep nesting works
    const g = parseGbnf('root ::= "(" root ")" | ""\n');
    expect(matches(g, '('.repeat(200) + ')'.repeat(200))).toBe(true);
    expect(matches(g, '('.repeat(200) + ')'.repeat(199))).toBe(false);
  });

  test('equal states are interned: a long string stays in a few states', () => {
    const m = GrammarMatcher.of(exampleGrammar('json'));
    m.advance('{"k": "');
    const before = m.automaton.stateCount;
    m.advance('x'.repeat(5000));
    expect(m.automaton.stateCount - before).toBeLessThan(3);
    expect(m.advance('"}')).toBe(true);
    expect(m.isComplete()).toBe(true);
  });
});

// ─── JSON Schema ───

describe('JSON Schema to grammar', () => {
  for (const c of SCHEMA_CASES) {
    test(c.name, () => {
      const g = grammarOf(c);
      const matcher = GrammarMatcher.of(g);
      for (const text of c.accept) {
        expect(validates(c.schema, text), `ajv should accept ${text}`).toBe(true);
        expect(matches(matcher, text), `grammar should accept ${text}`).toBe(true);
      }
      for (const text of c.reject) {
        expect(validates(c.schema, text), `ajv should reject ${text}`).toBe(false);
        expect(matches(matcher, text), `grammar should reject ${text}`).toBe(false);
      }
      for (const text of c.stricter ?? []) {
        expect(validates(c.schema, text), `ajv should accept ${text}`).toBe(true);
        expect(matches(matcher, text), `grammar is stricter than the schema on ${text}`).toBe(false);
      }
    });
  }

  test('integer ranges: every value in a window, and none outside', () => {
    for (const [lo, hi] of [[-1234, 567], [0, 0], [7, 7], [95, 1203], [-99, -10], [1, 100000]]) {
      const g = GrammarMatcher.of(grammarFromJsonSchema({ type: 'integer', minimum: lo, maximum: hi }));
      for (let x = lo - 30; x <= Math.min(hi + 30, lo + 2500); x++) expect(matches(g, String(x)), `${x} in ${lo}..${hi}`).toBe(x >= lo && x <= hi);
      expect(matches(g, String(hi))).toBe(true);
      expect(matches(g, String(hi + 1))).toBe(false);
      expect(matches(g, '0' + String(Math.abs(hi)))).toBe(false);
    }
  });

  test('unsupported keywords are UNSUPPORTED_SCHEMA with the keyword and its path', () => {
    const cases: [unknown, string, string][] = [
      [{ type: 'string', minLength: 1, foo: 1 }, 'foo', '#'],
      [{ properties: { a: { type: 'array', items: { type: 'string', contentEncoding: 'base64' } } } }, 'contentEncoding', '#/properties/a/items'],
      [{ type: 'number', exclusiveMinimum: 0 }, 'exclusiveMinimum', '#'],
      [{ type: 'object', $defs: { unused: { not: {} } } }, 'not', '#/$defs/unused'],
      [{ anyOf: [{ type: 'string' }, { type: 'object', patternProperties: {} }] }, 'patternProperties', '#/anyOf/1'],
      [{ type: 'string', format: 'ipv4' }, 'format', '#'],
      [{ type: 'number', minimum: 0.5 }, 'minimum', '#'],
      [{ type: 'string', pattern: '^(?=a)b$' }, 'pattern', '#/pattern'],
      [{ type: 'string', pattern: '(a)\\1' }, 'pattern', '#/pattern'],
      [{ $ref: 'https://example.com/s.json' }, '$ref', '#'],
      [{ $ref: '#/$defs/missing' }, '$ref', '#'],
      [{ type: 'date' }, 'type', '#'],
      [{ type: 'object', unevaluatedProperties: true }, 'unevaluatedProperties', '#'],
      [{ type: 'string', pattern: '^a$', maxLength: 3 }, 'pattern', '#'],
    ];
    for (const [schema, keyword, path] of cases) {
      const e = errorOf(() => grammarFromJsonSchema(schema));
      expect(e.code, JSON.stringify(schema)).toBe('UNSUPPORTED_SCHEMA');
      expect(e.details, JSON.stringify(schema)).toMatchObject({ keyword, path });
      expect(e.message).toContain(keyword);
    }
    expect(errorOf(() => grammarFromJsonSchema([1])).code).toBe('UNSUPPORTED_SCHEMA');
  });
});

// ─── Token masks ───

/** The allowed tokens by trying every token's bytes on a fresh automaton advanced over `text`. */
function bruteForceMask(grammar: Grammar, text: Uint8Array, vocab: MaskVocabulary): Uint32Array {
  const m = GrammarMatcher.of(grammar);
  expect(m.advance(text)).toBe(true);
  const mask = new Uint32Array(Math.ceil(vocab.bytes.length / 32));
  vocab.bytes.forEach((bytes, id) => {
    const allowed = vocab.eog.includes(id) ? m.isComplete() : bytes !== undefined && bytes.length > 0 && m.accepts(bytes);
    if (allowed) mask[id >>> 5] |= 1 << (id & 31);
  });
  return mask;
}

function allowedIds(mask: Uint32Array, size: number): number[] {
  const ids: number[] = [];
  for (let id = 0; id < size; id++) if ((mask[id >>> 5] >>> (id & 31)) & 1) ids.push(id);
  return ids;
}

/** Bytes that complete the text soonest from a state (breadth first over the automaton). */
function shortestCompletion(a: GrammarAutomaton, from: number, usable: (byte: number) => boolean): number[] {
  const previous = new Map<number, [number, number]>([[from, [-1, -1]]]);
  let frontier = [from];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const s of frontier) {
      if (a.isComplete(s)) {
        const path: number[] = [];
        for (let at = s; at !== from;) {
          const [prev, byte] = previous.get(at)!;
          path.push(byte);
          at = prev;
        }
        return path.reverse();
      }
      for (let b = 0; b < 256; b++) {
        if (!usable(b)) continue;
        const t = a.step(s, b);
        if (t !== GrammarAutomaton.DEAD && !previous.has(t)) {
          previous.set(t, [s, b]);
          next.push(t);
        }
      }
    }
    frontier = next;
  }
  throw new Error('no completion');
}

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random walk: `randomSteps` tokens chosen uniformly among the allowed ones (stopping at an
 * end-of-generation token), then the shortest completion, byte token by byte token, each checked
 * against the mask. Returns the text and the masks it saw (for the brute-force comparison).
 */
function randomWalk(grammar: Grammar, vocab: TestVocabulary, seed: number, randomSteps: number, onState?: (text: Uint8Array, mask: Uint32Array) => void) {
  const automaton = new GrammarAutomaton(compileGrammar(grammar));
  const masker = new TokenMasker(automaton, trieOf(vocab));
  const constraint = new TokenConstraint(masker, vocab);
  const random = seeded(seed);
  const out: number[] = [];
  let ended = false;
  for (let step = 0; step < randomSteps && !ended; step++) {
    const mask = constraint.mask();
    onState?.(Uint8Array.from(out), mask);
    const ids = allowedIds(mask, vocab.bytes.length);
    expect(ids.length).toBeGreaterThan(0);
    const id = ids[Math.floor(random() * ids.length)];
    expect(constraint.advance(id)).toBe(true);
    if (vocab.eog.includes(id)) ended = true;
    else out.push(...vocab.bytes[id]!);
  }
  if (!ended) {
    for (const byte of shortestCompletion(automaton, constraint.state, (b) => vocab.byteToken[b] >= 0)) {
      const id = vocab.byteToken[byte];
      expect(constraint.allows(id), `byte ${byte} after ${new TextDecoder().decode(Uint8Array.from(out))}`).toBe(true);
      expect(constraint.advance(id)).toBe(true);
      out.push(byte);
    }
    const eos = vocab.eog[0];
    expect(constraint.allows(eos)).toBe(true);
  }
  expect(constraint.isComplete()).toBe(true);
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(out));
}

const tries = new WeakMap<MaskVocabulary, TokenTrie>();
const trieOf = (v: MaskVocabulary) => {
  let t = tries.get(v);
  if (!t) tries.set(v, (t = new TokenTrie(v)));
  return t;
};

describe('token masks on SmolLM2 (49,152 tokens)', () => {
  test('the trie holds every token once', () => {
    const vocab = smollm2Vocabulary();
    const trie = trieOf(vocab);
    expect(vocab.bytes.length).toBe(49152);
    const plain = vocab.bytes.filter((b) => b !== undefined).length;
    expect(trie.ids.length).toBe(plain);
    expect(new Set(trie.ids).size).toBe(plain);
    // every printable ASCII byte, newline, tab and UTF-8 continuation byte is a token of its own
    for (const b of [9, 10, ...Array.from({ length: 95 }, (_, i) => 0x20 + i), ...Array.from({ length: 64 }, (_, i) => 0x80 + i)]) {
      expect(vocab.byteToken[b], `byte ${b}`).toBeGreaterThanOrEqual(0);
    }
  });

  const maskCases = ['object: properties, required, order', 'format date, time, date-time', '$ref recursion through $defs', 'pattern: groups, alternation, escapes', 'json_object mode', 'number minimum/maximum (whole-number bounds)', 'object: additionalProperties schema'];
  for (const name of maskCases) {
    test(`mask equals the brute-force mask along random walks: ${name}`, () => {
      const c = SCHEMA_CASES.find((x) => x.name === name)!;
      const grammar = grammarOf(c);
      const vocab = smollm2Vocabulary();
      let compared = 0;
      for (const seed of [1, 2]) {
        randomWalk(grammar, vocab, seed, 8, (text, mask) => {
          expect(Array.from(mask), `state after ${JSON.stringify(new TextDecoder().decode(text))}`).toEqual(Array.from(bruteForceMask(grammar, text, vocab)));
          compared++;
        });
      }
      expect(compared).toBeGreaterThan(2);
    });
  }

  test('special tokens are never allowed; end of generation only when complete', () => {
    const vocab = smollm2Vocabulary();
    const c = new TokenConstraint(new TokenMasker(new GrammarAutomaton(compileGrammar(parseGbnf('root ::= "ab" | "abc"\n'))), trieOf(vocab)), vocab);
    const specials = vocab.bytes.flatMap((b, id) => (b === undefined ? [id] : []));
    expect(specials.length).toBe(17);
    for (const id of specials) expect(c.allows(id)).toBe(false);
    expect(c.advance(vocab.byteToken[0x61])).toBe(true);
    for (const id of vocab.eog) expect(c.allows(id)).toBe(false);
    expect(c.advance(vocab.byteToken[0x62])).toBe(true);
    for (const id of vocab.eog) expect(c.allows(id)).toBe(true);
    expect(allowedIds(c.mask(), vocab.bytes.length).filter((id) => !vocab.eog.includes(id)).map((id) => new TextDecoder().decode(vocab.bytes[id]))).toEqual(['c']);
    expect(c.advance(vocab.byteToken[0x78])).toBe(false);
  });

  test('random walks always end in JSON that parses and validates', () => {
    const vocab = smollm2Vocabulary();
    let walks = 0;
    for (const c of SCHEMA_CASES) {
      const grammar = grammarOf(c);
      for (const seed of [11, 12, 13]) {
        const text = randomWalk(grammar, vocab, seed * 7919 + walks, 24);
        expect(validates(c.schema, text), `${c.name}, seed ${seed}: ${text}`).toBe(true);
        walks++;
      }
    }
    expect(walks).toBe(SCHEMA_CASES.length * 3);
  });

  test('GBNF random walks end in sentences of the grammar', () => {
    const vocab = smollm2Vocabulary();
    for (const name of ['arithmetic', 'list', 'json']) {
      const grammar = exampleGrammar(name);
      for (const seed of [1, 2, 3]) {
        const text = randomWalk(grammar, vocab, seed, 20);
        expect(matches(grammar, text), `${name}: ${text}`).toBe(true);
        if (name === 'json') expect(typeof JSON.parse(text)).toBe('object');
      }
    }
  });

  test('applyMask sets disallowed logits to -Infinity', () => {
    const vocab = smollm2Vocabulary();
    const c = new TokenConstraint(new TokenMasker(new GrammarAutomaton(compileGrammar(grammarFromJsonSchema({ type: 'boolean' }))), trieOf(vocab)), vocab);
    const logits = new Float32Array(vocab.bytes.length).fill(1);
    applyMask(logits, c.mask());
    const kept = [...logits.keys()].filter((i) => logits[i] === 1).map((i) => new TextDecoder().decode(vocab.bytes[i]));
    expect(kept.length).toBeGreaterThan(2);
    for (const t of kept) expect('true'.startsWith(t) || 'false'.startsWith(t), t).toBe(true);
    expect(logits.filter((x) => x === -Infinity).length).toBe(vocab.bytes.length - kept.length);
  });
});

test("maskVocabulary reads a GGUF vocabulary through Lantern's tokenizer", async () => {
  const file = await readGGUF(bytesSource(new Uint8Array(readFileSync(resolve(LLAMACPP_VOCAB_DIR, 'ggml-vocab-gpt-2.gguf')))));
  const tokenizer = tokenizerFromGGUF(file);
  const vocab = maskVocabulary(tokenizer);
  expect(vocab.bytes.length).toBe(tokenizer.vocabSize);
  const eot = tokenizer.encode('<|endoftext|>', { parseSpecial: true });
  expect(eot.length).toBe(1);
  expect(vocab.eog).toContain(eot[0]);
  expect(vocab.bytes[eot[0]]).toBeUndefined();
  const hello = tokenizer.encode(' Hello');
  expect(new TextDecoder().decode(vocab.bytes[hello[0]])).toBe(' Hello');
  const grammar = grammarFromJsonSchema({ type: 'object', properties: { greeting: { enum: ['Hello world', 'Hi'] } }, required: ['greeting'] });
  const masker = new TokenMasker(new GrammarAutomaton(compileGrammar(grammar)), new TokenTrie(vocab));
  const c = new TokenConstraint(masker, vocab);
  const text = '{"greeting": "Hello world"}';
  const seen: number[] = [];
  for (const id of tokenizer.encode(text)) {
    expect(Array.from(c.mask())).toEqual(Array.from(bruteForceMask(grammar, Uint8Array.from(seen), vocab)));
    expect(c.allows(id)).toBe(true);
    expect(c.advance(id)).toBe(true);
    seen.push(...vocab.bytes[id]!);
  }
  expect(c.isComplete()).toBe(true);
});

// ─── Wiring: the sampler's mask and a request's constraint ───

describe('constrained sampling', () => {
  test('the sampler only picks allowed tokens, greedy and sampled, with bias and penalties', () => {
    const logits = Float32Array.from({ length: 70 }, (_, i) => Math.sin(i * 1.7) * 3);
    const mask = new Uint32Array(3);
    for (const id of [3, 40, 41, 66]) mask[id >>> 5] |= 1 << (id & 31);
    const best = [3, 40, 41, 66].reduce((a, b) => (logits[b] > logits[a] ? b : a));
    expect(new Sampler({ temperature: 0 }).sample(logits, [], mask)).toBe(best);
    expect(new Sampler({ temperature: 0, logitBias: { 5: 100 } }).sample(logits, [], mask)).toBe(best);
    const sampler = new Sampler({ temperature: 1.5, topK: 50, repetitionPenalty: 1.3, seed: 3 });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sampler.sample(logits, [40, 41], mask));
    expect([...seen].sort((a, b) => a - b)).toEqual([3, 40, 41, 66]);
    expect(logits[0]).toBe(0); // the caller's logits are left as they were
    expect(errorOf(() => new Sampler({}).sample(logits, [], new Uint32Array(3))).code).toBe('BAD_GRAMMAR');
  });

  test('constraintFor: json_schema, json_object and GBNF on a GGUF tokenizer; errors before any token', async () => {
    const file = await readGGUF(bytesSource(new Uint8Array(readFileSync(resolve(LLAMACPP_VOCAB_DIR, 'ggml-vocab-gpt-2.gguf')))));
    const tokenizer = tokenizerFromGGUF(file);
    expect(constraintFor(tokenizer, {})).toBeUndefined();
    expect(constraintFor(tokenizer, { responseFormat: { type: 'text' } })).toBeUndefined();
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] };
    const follow = (c: TokenConstraint, text: string) => tokenizer.encode(text).every((id) => c.allows(id) && c.advance(id)) && c.isComplete();
    expect(follow(constraintFor(tokenizer, { responseFormat: { type: 'json_schema', json_schema: { name: 'r', schema, strict: true } } })!, '{"ok": true}')).toBe(true);
    expect(follow(constraintFor(tokenizer, { responseFormat: { type: 'json_schema', json_schema: { name: 'r', schema } } })!, '{"ok": 1}')).toBe(false);
    expect(follow(constraintFor(tokenizer, { responseFormat: { type: 'json_object' } })!, '{"any": [1, 2]}')).toBe(true);
    expect(follow(constraintFor(tokenizer, { grammar: 'root ::= "yes" | "no"\n' })!, 'no')).toBe(true);
    // a fresh constraint starts at the beginning, even when the compiled grammar is reused
    expect(constraintFor(tokenizer, { grammar: 'root ::= "yes" | "no"\n' })!.isComplete()).toBe(false);
    expect(errorOf(() => constraintFor(tokenizer, { responseFormat: { type: 'json_schema', json_schema: { name: 'r', schema: { type: 'string', format: 'hostname' } } } })).code).toBe('UNSUPPORTED_SCHEMA');
    expect(errorOf(() => constraintFor(tokenizer, { grammar: 'root ::= (\n' })).code).toBe('BAD_GRAMMAR');
    expect(errorOf(() => constraintFor(tokenizer, { grammar: 'root ::= "a"\n', responseFormat: { type: 'json_object' } })).code).toBe('BAD_ARGUMENT');
  });
});
