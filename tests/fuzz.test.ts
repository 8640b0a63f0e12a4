import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LanternError } from '../src/errors.ts';
import { Graph } from '../src/runtime/graph.ts';
import { modelConfig } from '../src/runtime/models/index.ts';
import { GGMLType, type GGUFFile, type GGUFValue, MAX_HEADER_BYTES, readGGUF } from '../src/model/gguf.ts';
import { BYTE_TO_CHAR } from '../src/model/tokenizer/bpe.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import { openFileSource } from '../src/cli/file-source.ts';
import { bytesSource, type ByteSource } from '../src/storage/source.ts';
import { type MetaValue, writeGGUF } from '../scripts/lib/gguf-writer.ts';
import {
  byteFlips, declaring, fieldEdit, filledArrayValue, layoutOf, type Mutant, nestedArrays, pick, seeded, type SeedLayout,
  stringArrayValue, truncation, typeConfusion, withMetadata,
} from './helpers/gguf-fuzz.ts';
import { LLAMACPP_VOCAB_DIR, REPO_ROOT, STORIES_GGUF } from './helpers/paths.ts';

/** The family's config, then its graph's plan (every tensor's shape and type), as Forward.create checks a file before allocating. */
async function planModel(file: GGUFFile): Promise<void> {
  const { family, config } = modelConfig(file);
  await family.build(new Graph(config, file, config.windows.map(() => config.contextLength)));
}

/**
 * A seeded, bounded fuzz campaign: mutants of real GGUF files (stories260K, an SPM and a BPE
 * vocabulary from llama.cpp's tests) and of a small file written with gguf-writer go through the
 * reader, the model config and the tokenizer, as a user's file would. Every outcome must be a
 * parse or a LanternError, each mutant must finish in bounded time, and memory must stay bounded.
 * The outcome counts are printed and written to test-results/fuzz-outcomes.json.
 */


/** Some text that meets every path of the tokenizers: specials, prototype names, bytes, emoji. */
const TEXT = 'Hello <s> world</s> <|im_end|> __proto__ constructor toString 123 ünïcödé 🦙\n\t  end';

/** How long one mutant may take, and how far the process may grow, before the campaign fails. */
const MUTANT_MS = 5_000;
const RSS_GROWTH_BYTES = 512 << 20;

type Stage = 'reader' | 'config' | 'tokenizer';
interface Failure { label: string; stage: Stage; error: string }

/**
 * Runs mutants and tallies their outcomes by stage ("reader parsed", "reader BAD_MODEL_FILE",
 * "tokenizer ok", ...), overall and by seed. FUZZ_TRACE=FILE appends each mutant's label, outcome
 * and time to FILE, to find one again.
 */
class Campaign {
  readonly counts = new Map<string, number>();
  readonly bySeed = new Map<string, Map<string, number>>();
  readonly failures: Failure[] = [];
  mutants = 0;
  slowest = { label: '', ms: 0 };
  private readonly cpuStart = process.cpuUsage();
  private readonly wallStart = performance.now();
  readonly rssStart = process.memoryUsage().rss;
  rssPeak = this.rssStart;

  private tally(seed: string, outcome: string): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
    const counts = this.bySeed.get(seed) ?? new Map<string, number>();
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    this.bySeed.set(seed, counts);
  }

  /** Runs one stage: a LanternError is an outcome; anything else fails the campaign. */
  private async stage<T>(label: string, stage: Stage, outcomes: string[], work: () => T | Promise<T>): Promise<T | undefined> {
    try {
      const value = await work();
      outcomes.push(`${stage} ${stage === 'reader' ? 'parsed' : 'ok'}`);
      return value;
    } catch (e) {
      if (e instanceof LanternError) outcomes.push(`${stage} ${e.code}`);
      else this.failures.push({ label, stage, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      return undefined;
    }
  }

  async run(seed: string, { label, bytes }: Mutant): Promise<void> {
    this.mutants++;
    const start = performance.now();
    const outcomes: string[] = [];
    const file = await this.stage(label, 'reader', outcomes, () => readGGUF(bytesSource(bytes)));
    if (file) {
      await this.stage(label, 'config', outcomes, () => planModel(file));
      await this.stage(label, 'tokenizer', outcomes, () => exercise(file));
    }
    const ms = performance.now() - start;
    for (const outcome of outcomes) this.tally(seed, outcome);
    if (ms > this.slowest.ms) this.slowest = { label: `${seed}: ${label}`, ms };
    this.rssPeak = Math.max(this.rssPeak, process.memoryUsage().rss);
    if (process.env.FUZZ_TRACE) writeFileSync(process.env.FUZZ_TRACE, `${seed}: ${label} -> ${outcomes.join(', ') || 'FAILED'} (${ms.toFixed(1)} ms)\n`, { flag: 'a' });
  }

  summary(): Record<string, unknown> {
    const sorted = (counts: Map<string, number>) => Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      mutants: this.mutants,
      outcomes: sorted(this.counts),
      bySeed: Object.fromEntries([...this.bySeed].map(([seed, counts]) => [seed, sorted(counts)])),
      failures: this.failures.length,
      slowestMs: Math.round(this.slowest.ms),
      slowest: this.slowest.label,
      wallMs: Math.round(performance.now() - this.wallStart),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      rssGrowthMiB: Math.round((this.rssPeak - this.rssStart) / (1 << 20)),
    };
  }
}

/** Builds the tokenizer and uses it as the runtime would; ids it gives must be in the vocabulary. */
function exercise(file: GGUFFile): void {
  const tok = tokenizerFromGGUF(file);
  const ids = [...tok.encode(TEXT, { addSpecial: true, parseSpecial: true }), ...tok.encode(TEXT)];
  const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
  if (bad !== undefined) throw new Error(`encode gave id ${bad}, outside the vocabulary of ${tok.vocabSize}`);
  tok.decode(ids);
  tok.decode([...ids, -1, tok.vocabSize, 0, tok.vocabSize - 1], { special: true });
  const stream = tok.decoder();
  for (const id of ids.slice(0, 16)) stream.push(id);
  stream.flush();
  for (const id of [0, ids[0] ?? 0, tok.vocabSize - 1]) {
    tok.isEndOfGeneration(id);
    tok.tokenText(id);
  }
}

// ---- seeds ----------------------------------------------------------------------------------

const read = (path: string) => new Uint8Array(readFileSync(path));

/** `head` followed by `pad` zero bytes: a file with room for some declared sizes. */
function padded(head: Uint8Array, pad: number): Uint8Array {
  const bytes = new Uint8Array(head.byteLength + pad);
  bytes.set(head);
  return bytes;
}

/**
 * A small llama model written with gguf-writer: a byte-level BPE vocabulary (the 256 byte symbols,
 * a few merges, three control tokens), a chat template, and tensors of three types.
 */
function writerSeed(): Uint8Array {
  const merged = ['Ġt', 'he', 'Ġthe', 'in', 'Ġw', 'or', 'ld', 'Ġwor', 'Ġworld'];
  const merges = ['Ġ t', 'h e', 'Ġt he', 'i n', 'Ġ w', 'o r', 'l d', 'Ġw or', 'Ġwor ld'];
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const tokens = [...BYTE_TO_CHAR, ...merged, ...specials];
  const nVocab = tokens.length;
  const nEmbd = 32;
  const str = (value: string): MetaValue => ({ type: 'string', value });
  const u32 = (value: number): MetaValue => ({ type: 'u32', value });
  return writeGGUF({
    metadata: {
      'general.architecture': str('llama'),
      'general.name': str('fuzz seed'),
      'llama.block_count': u32(1),
      'llama.context_length': u32(64),
      'llama.embedding_length': u32(nEmbd),
      'llama.feed_forward_length': u32(64),
      'llama.attention.head_count': u32(2),
      'llama.attention.head_count_kv': u32(1),
      'llama.rope.freq_base': { type: 'f32', value: 10000 },
      'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
      'tokenizer.ggml.model': str('gpt2'),
      'tokenizer.ggml.pre': str('qwen2'),
      'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: tokens },
      'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: tokens.map((t) => (specials.includes(t) ? 3 : 1)) },
      'tokenizer.ggml.merges': { type: 'array', itemType: 'string', value: merges },
      'tokenizer.ggml.bos_token_id': u32(nVocab - 3),
      'tokenizer.ggml.eos_token_id': u32(nVocab - 1),
      'tokenizer.ggml.padding_token_id': u32(0xffffffff),
      'tokenizer.chat_template': str("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"),
    },
    tensors: [
      { name: 'token_embd.weight', type: GGMLType.F32, dims: [nEmbd, nVocab], data: new Uint8Array(nEmbd * nVocab * 4) },
      { name: 'blk.0.attn_q.weight', type: GGMLType.Q8_0, dims: [nEmbd, nEmbd], data: new Uint8Array(nEmbd * 34) },
      { name: 'output_norm.weight', type: GGMLType.F16, dims: [nEmbd], data: new Uint8Array(nEmbd * 2) },
    ],
  });
}

// ---- semantic mutants: prototype names, wrong element types, odd special ids -------------------

const PROTO_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
const str = (value: string): MetaValue => ({ type: 'string', value });
const strings = (value: readonly string[]): MetaValue => ({ type: 'array', itemType: 'string', value });

/** Edits by key of a seed's metadata; `only` keeps those whose label it matches (the large seeds' few). */
function semanticMutants(seed: SeedLayout, meta: Map<string, GGUFValue>, rand: () => number, only?: RegExp): Mutant[] {
  const out: Mutant[] = [];
  const edit = (label: string, pairs: [string, MetaValue | Uint8Array | undefined][], rename?: [string, string]) => {
    if (!only || only.test(label)) out.push({ label, bytes: withMetadata(seed, pairs, rename) });
  };
  const tokens = meta.get('tokenizer.ggml.tokens') as string[];
  const n = tokens.length;
  const merges = meta.get('tokenizer.ggml.merges') as string[] | undefined;

  for (const p of PROTO_NAMES) {
    edit(`pre=${p}`, [['tokenizer.ggml.pre', str(p)]]);
    const k = Math.floor(rand() * n);
    edit(`token ${k}=${p}`, [['tokenizer.ggml.tokens', strings(tokens.map((t, i) => (i === k ? p : t)))]]);
    edit(`key ${p}`, [[p, str('x')]]);
  }
  for (const p of PROTO_NAMES.slice(0, 3)) {
    edit(`token 0=${p}`, [['tokenizer.ggml.tokens', strings([p, ...tokens.slice(1)])]]);
    edit(`model=${p}`, [['tokenizer.ggml.model', str(p)]]);
    edit(`architecture=${p}`, [['general.architecture', str(p)], [`${p}.embedding_length`, { type: 'u32', value: 8 }]]);
    edit(`rename pre to ${p}`, [], ['tokenizer.ggml.pre', p]);
    edit(`rename tokens to ${p}`, [], ['tokenizer.ggml.tokens', p]);
    if (merges) edit(`merge "${p} ${p}"`, [['tokenizer.ggml.merges', strings([`${p} ${p}`, `${p} constructor`, ...merges])]]);
  }
  const arrayOfArrays = new Uint8Array([9, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x61]);
  const wrongTypes: [string, string, MetaValue | Uint8Array | undefined][] = [
    ['tokens as u8', 'tokenizer.ggml.tokens', { type: 'array', itemType: 'u8', value: [1, 2, 3] }],
    ['tokens as bool', 'tokenizer.ggml.tokens', { type: 'array', itemType: 'bool', value: [true] }],
    ['tokens empty', 'tokenizer.ggml.tokens', strings([])],
    ['tokens as string', 'tokenizer.ggml.tokens', str('a b c')],
    ['tokens as arrays', 'tokenizer.ggml.tokens', arrayOfArrays],
    ['tokens dropped', 'tokenizer.ggml.tokens', undefined],
    ['merges as i32', 'tokenizer.ggml.merges', { type: 'array', itemType: 'i32', value: [1, 2, 3] }],
    ['merges as bool', 'tokenizer.ggml.merges', { type: 'array', itemType: 'bool', value: [true, false] }],
    ['merges as arrays', 'tokenizer.ggml.merges', arrayOfArrays],
    ['merges as string', 'tokenizer.ggml.merges', str('Ġ t')],
    ['scores as strings', 'tokenizer.ggml.scores', strings(['a'])],
    ['scores short', 'tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: new Array(n - 1).fill(0) }],
    ['scores as i64', 'tokenizer.ggml.scores', { type: 'array', itemType: 'i64', value: new Array(n).fill(0n) }],
    ['token_type as f32', 'tokenizer.ggml.token_type', { type: 'array', itemType: 'f32', value: new Array(n).fill(1) }],
    ['token_type long', 'tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: new Array(n + 1).fill(1) }],
    ['token_type odd values', 'tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: Array.from({ length: n }, (_, i) => [99, -1, 3, 6, 2][i % 5]) }],
    ['pre as u32', 'tokenizer.ggml.pre', { type: 'u32', value: 7 }],
    ['model as array', 'tokenizer.ggml.model', strings(['llama'])],
    ['bos -1', 'tokenizer.ggml.bos_token_id', { type: 'i32', value: -1 }],
    ['bos 1.5', 'tokenizer.ggml.bos_token_id', { type: 'f32', value: 1.5 }],
    ['bos string', 'tokenizer.ggml.bos_token_id', str('1')],
    ['bos 2^40', 'tokenizer.ggml.bos_token_id', { type: 'u64', value: 2n ** 40n }],
    ['bos n', 'tokenizer.ggml.bos_token_id', { type: 'u32', value: n }],
    ['bos none', 'tokenizer.ggml.bos_token_id', { type: 'u32', value: 0xffffffff }],
    ['bos bool', 'tokenizer.ggml.bos_token_id', { type: 'bool', value: true }],
    ['eos n', 'tokenizer.ggml.eos_token_id', { type: 'u32', value: n }],
    ['unk -5', 'tokenizer.ggml.unknown_token_id', { type: 'i32', value: -5 }],
    ['pad n', 'tokenizer.ggml.padding_token_id', { type: 'u32', value: n }],
    ['eot n+7', 'tokenizer.ggml.eot_token_id', { type: 'u32', value: n + 7 }],
    ['fim_pad n', 'tokenizer.ggml.fim_pad_token_id', { type: 'u32', value: n }],
    ['add_bos string', 'tokenizer.ggml.add_bos_token', str('yes')],
    ['name phi-3', 'general.name', str('Phi-3 mini')],
    ['name array', 'general.name', strings(['a', 'b'])],
    ['alignment 2^32+2', 'general.alignment', { type: 'u64', value: 2n ** 32n + 2n }],
    ['alignment 0', 'general.alignment', { type: 'u32', value: 0 }],
    ['alignment 48', 'general.alignment', { type: 'u32', value: 48 }],
    ['alignment 2^31', 'general.alignment', { type: 'u32', value: 2 ** 31 }],
    ['alignment 32.5', 'general.alignment', { type: 'f32', value: 32.5 }],
    ['alignment string', 'general.alignment', str('32')],
    ['split.count string', 'split.count', str('two')],
    ['split.count 2', 'split.count', { type: 'u16', value: 2 }],
    ['split.count 2^60', 'split.count', { type: 'u64', value: 2n ** 60n }],
    ['architecture as array', 'general.architecture', strings(['llama'])],
    ['head_count 0', 'llama.attention.head_count', { type: 'u32', value: 0 }],
  ];
  for (const [label, key, value] of wrongTypes) edit(label, [[key, value]]);
  return out;
}

// ---- the campaign -----------------------------------------------------------------------------

/**
 * `random` mutants of each seed besides its edits by key. The real vocabularies (32k tokens) cost
 * ~100 ms of CPU per mutant that parses, so they get a few edits aimed at the tokenizer; the two
 * small models take the bulk.
 */
interface Seed { name: string; bytes: Uint8Array; random: number; only?: RegExp }

const FOR_VOCABULARIES = /^(pre=__proto__|token \d+=__proto__|token 0=constructor|merge "__proto__|tokens as u8|merges as i32|scores short|token_type as f32|bos -1|eos n)/;

const SEEDS: Seed[] = [
  { name: 'stories260K', bytes: read(STORIES_GGUF), random: 200 },
  { name: 'writer', bytes: writerSeed(), random: 200 },
  { name: 'llama-spm', bytes: read(`${LLAMACPP_VOCAB_DIR}/ggml-vocab-llama-spm.gguf`), random: 10, only: FOR_VOCABULARIES },
  { name: 'deepseek-coder', bytes: read(`${LLAMACPP_VOCAB_DIR}/ggml-vocab-deepseek-coder.gguf`), random: 10, only: FOR_VOCABULARIES },
];

function randomMutant(seed: SeedLayout, rand: () => number): Mutant {
  const r = rand();
  if (r < 0.4) return fieldEdit(seed, rand);
  if (r < 0.55) return typeConfusion(seed, rand);
  if (r < 0.8) return byteFlips(seed, rand);
  return truncation(seed, rand);
}

describe('fuzz campaign', () => {
  it('every mutant parses or fails with a LanternError, in bounded time and memory', async () => {
    const campaign = new Campaign();
    const rand = seeded(20261202);
    for (const seed of SEEDS) {
      const layout = layoutOf(seed.bytes);
      const meta = (await readGGUF(bytesSource(seed.bytes))).metadata;
      for (const m of semanticMutants(layout, meta, rand, seed.only)) await campaign.run(seed.name, m);
      for (let i = 0; i < seed.random; i++) await campaign.run(seed.name, randomMutant(layout, rand));
    }
    // Nesting and declared sizes no real file has, built from raw bytes.
    for (const depth of [1, 2, 7, 8, 9, 64, 1000, 100_000]) await campaign.run('raw', { label: `nested ${depth}`, bytes: nestedArrays(depth) });
    for (let i = 0; i < 24; i++) {
      const kind = pick(rand, ['string', 'u8 array', 'string array', 'array array'] as const);
      const declared = pick(rand, [2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 600_000_000n, 1n << 26n, 100n]);
      // Padded so that some declared sizes fit the file and others do not.
      const bytes = padded(declaring(kind, declared), pick(rand, [0, 64, 4096]));
      await campaign.run('raw', { label: `declared ${kind} of ${declared}`, bytes });
    }

    const summary = campaign.summary();
    mkdirSync(`${REPO_ROOT}/test-results`, { recursive: true });
    writeFileSync(`${REPO_ROOT}/test-results/fuzz-outcomes.json`, `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`fuzz campaign: ${JSON.stringify(summary, null, 2)}`);

    expect(campaign.failures.slice(0, 5), 'mutants that ended in something other than a LanternError').toEqual([]);
    expect(campaign.mutants).toBeGreaterThan(500);
    expect(campaign.slowest.ms, `slowest mutant: ${campaign.slowest.label}`).toBeLessThan(MUTANT_MS);
    expect(campaign.rssPeak - campaign.rssStart).toBeLessThan(RSS_GROWTH_BYTES);
    // The campaign reaches every stage: some mutants parse and tokenize, some are refused.
    expect(campaign.counts.get('reader parsed') ?? 0).toBeGreaterThan(50);
    expect(campaign.counts.get('tokenizer ok') ?? 0).toBeGreaterThan(50);
    expect(campaign.counts.get('reader BAD_MODEL_FILE') ?? 0).toBeGreaterThan(50);
    expect(campaign.counts.get('reader TRUNCATED_FILE') ?? 0).toBeGreaterThan(10);
  }, 300_000); // a few seconds alone; minutes on a machine shared by several test runs
});

// ---- hand-built hostile files, one per class the campaign found ---------------------------------

/** The LanternError `work` fails with; its code must be `code` and its message must name `name`. */
async function refusal(work: Promise<unknown> | (() => unknown), code: string, name: string): Promise<LanternError> {
  const error = await (typeof work === 'function' ? Promise.resolve().then(work) : work).then(() => undefined, (e: unknown) => e);
  expect(error, `expected a LanternError ${code}`).toBeInstanceOf(LanternError);
  const { code: got, message } = error as LanternError;
  expect(`${got}: ${message}`).toContain(`${code}: `);
  expect(message).toContain(name);
  expect(message).toMatch(/damaged|truncated/);
  return error as LanternError;
}

const parse = (bytes: Uint8Array) => readGGUF(bytesSource(bytes));

describe('the header cap', () => {
  it('a header the size of the largest real vocabularies (262,144 tokens, 151,387 merges) reads, far under the cap', async () => {
    // Real token and merge texts (GPT-2's), repeated to the counts of Gemma 3's vocabulary and Qwen2's merges.
    const gpt2 = (await readGGUF(bytesSource(read(`${LLAMACPP_VOCAB_DIR}/ggml-vocab-gpt-2.gguf`)))).metadata;
    const texts = gpt2.get('tokenizer.ggml.tokens') as string[];
    const pairs = gpt2.get('tokenizer.ggml.merges') as string[];
    const n = 262_144;
    const empty = layoutOf(writeGGUF({ metadata: {}, tensors: [] }));
    const bytes = withMetadata(empty, [
      ['tokenizer.ggml.tokens', stringArrayValue(Array.from({ length: n }, (_, i) => texts[i % texts.length]))],
      ['tokenizer.ggml.scores', filledArrayValue(6, n, -1)],
      ['tokenizer.ggml.token_type', filledArrayValue(5, n, 1)],
      ['tokenizer.ggml.merges', stringArrayValue(Array.from({ length: 151_387 }, (_, i) => pairs[i % pairs.length]))],
    ]);
    const file = await readGGUF(bytesSource(bytes));
    expect((file.metadata.get('tokenizer.ggml.tokens') as string[]).length).toBe(n);
    console.log(`header of a 262,144-token vocabulary with 151,387 merges: ${(file.dataOffset / 2 ** 20).toFixed(1)} MiB; the cap is ${MAX_HEADER_BYTES / 2 ** 20} MiB`);
    expect(file.dataOffset * 6).toBeLessThan(MAX_HEADER_BYTES);
  });
});

describe('hostile files', () => {
  const writer = layoutOf(writerSeed());
  const withMeta = (pairs: [string, MetaValue | undefined][]) => withMetadata(writer, pairs);

  it('array counts of 2^32 and more: BAD_MODEL_FILE naming the key, before anything is allocated', async () => {
    for (const kind of ['u8 array', 'string array', 'array array'] as const) {
      for (const n of [2n ** 32n, 2n ** 63n, 2n ** 64n - 1n]) await refusal(parse(padded(declaring(kind, n, 'x.count'), 64)), 'BAD_MODEL_FILE', 'x.count');
    }
    // A count that a header could hold but this file cannot: the bytes end.
    await refusal(parse(padded(declaring('u8 array', 1000n, 'x.count'), 64)), 'TRUNCATED_FILE', 'x.count');
  });

  it('arrays nested 100,000 deep: BAD_MODEL_FILE naming the key, no stack overflow; 8 deep still reads', async () => {
    await refusal(parse(nestedArrays(100_000, 'x.deep')), 'BAD_MODEL_FILE', 'x.deep');
    await refusal(parse(nestedArrays(9, 'x.deep')), 'BAD_MODEL_FILE', 'x.deep');
    const file = await parse(nestedArrays(3, 'x.deep'));
    expect(file.metadata.get('x.deep')).toEqual([[new Uint8Array([1, 2, 3])]]);
    expect(((await parse(nestedArrays(8))).metadata.get('fuzz.nested') as unknown[]).length).toBe(1);
  });

  it('a 600 MB string: BAD_MODEL_FILE naming the key; a string past the end of the file: TRUNCATED_FILE', async () => {
    const huge = await refusal(parse(padded(declaring('string', 600_000_000n, 'x.template'), 4096)), 'BAD_MODEL_FILE', 'x.template');
    expect(huge.message).toContain('64 MiB');
    await refusal(parse(padded(declaring('string', 5000n, 'x.template'), 4096)), 'TRUNCATED_FILE', 'x.template');
  });

  it('tokenizer.ggml.pre of __proto__, constructor or toString: refused as any unknown name is (BAD_TOKENIZER), as llama.cpp refuses it', async () => {
    for (const pre of ['no-such-pre', ...PROTO_NAMES]) {
      const file = await parse(withMeta([['tokenizer.ggml.pre', str(pre)]]));
      expect(() => tokenizerFromGGUF(file), pre).toThrowError(expect.objectContaining({ code: 'BAD_TOKENIZER', message: expect.stringContaining(`"${pre}"`) }));
    }
  });

  it('prototype names as token texts, merges and keys are plain strings', async () => {
    const file = await parse(withMetadata(writer, [
      ['tokenizer.ggml.tokens', strings([...BYTE_TO_CHAR, '__proto__', 'constructor', 'toString'])],
      ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: new Array(259).fill(1) }],
      ['tokenizer.ggml.merges', strings(['__proto__ constructor', 'c o', 't o'])],
      ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 256 }],
      ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 257 }],
      ['__proto__', str('x')],
      ['constructor', { type: 'u32', value: 1 }],
    ]));
    expect(file.metadata.get('__proto__')).toBe('x');
    expect(file.metadata.get('constructor')).toBe(1);
    const tok = tokenizerFromGGUF(file);
    expect(tok.tokenText(256)).toBe('__proto__');
    expect(tok.decode(tok.encode('constructor toString __proto__'))).toBe('constructor toString __proto__');
  });

  it('merges, tokens, scores and token types of the wrong element type or length: BAD_MODEL_FILE naming the key', async () => {
    const n = 256 + 12;
    const cases: [string, MetaValue][] = [
      ['tokenizer.ggml.merges', { type: 'array', itemType: 'i32', value: [1, 2, 3] }],
      ['tokenizer.ggml.merges', str('Ġ t')],
      ['tokenizer.ggml.merges', { type: 'array', itemType: 'bool', value: [true, false] }],
      ['tokenizer.ggml.tokens', { type: 'array', itemType: 'u8', value: [1, 2, 3] }],
      ['tokenizer.ggml.scores', strings(['a'])],
      ['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: new Array(n - 1).fill(0) }],
      ['tokenizer.ggml.token_type', { type: 'array', itemType: 'f32', value: new Array(n).fill(1) }],
      ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: new Array(n + 1).fill(1) }],
      ['tokenizer.ggml.pre', { type: 'u32', value: 7 }],
    ];
    for (const [key, value] of cases) {
      const file = await parse(withMeta([[key, value]]));
      await refusal(() => tokenizerFromGGUF(file), 'BAD_MODEL_FILE', key);
    }
  });

  it('general.alignment of 2^32 + 2, 0, 48 or 32.5: BAD_MODEL_FILE naming it', async () => {
    const values: MetaValue[] = [
      { type: 'u64', value: 2n ** 32n + 2n }, { type: 'u32', value: 0 }, { type: 'u32', value: 48 }, { type: 'f32', value: 32.5 }, str('32'),
    ];
    for (const value of values) await refusal(parse(withMeta([['general.alignment', value]])), 'BAD_MODEL_FILE', 'general.alignment');
    expect((await parse(withMeta([['general.alignment', { type: 'u32', value: 32 }]]))).alignment).toBe(32);
  });

  it('special-token ids: negative, fractional or not numbers refused; out of range refused for the ids Lantern uses, ignored for padding', async () => {
    const n = 256 + 12;
    const bos = 'tokenizer.ggml.bos_token_id';
    for (const value of [{ type: 'i32', value: -1 }, { type: 'f32', value: 1.5 }, str('1'), { type: 'u32', value: n }, { type: 'u64', value: 2n ** 40n }] as MetaValue[]) {
      const file = await parse(withMeta([[bos, value]]));
      await refusal(() => tokenizerFromGGUF(file), 'BAD_MODEL_FILE', bos);
    }
    for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
      const file = await parse(withMeta([[key, { type: 'u32', value: n + 5 }]]));
      await refusal(() => tokenizerFromGGUF(file), 'BAD_MODEL_FILE', key);
    }
    const padding = await parse(withMeta([['tokenizer.ggml.padding_token_id', { type: 'i32', value: -1 }]]));
    await refusal(() => tokenizerFromGGUF(padding), 'BAD_MODEL_FILE', 'tokenizer.ggml.padding_token_id');
    // A padding id one past the vocabulary (as fine-tunes often write) and 0xFFFFFFFF ("none") pass.
    const lenient = tokenizerFromGGUF(await parse(withMeta([['tokenizer.ggml.padding_token_id', { type: 'u32', value: n }], [bos, { type: 'u32', value: 0xffffffff }]])));
    expect(lenient.vocabSize).toBe(n);
    expect(lenient.bos).toBe(11); // "none": llama.cpp's default BOS for BPE, as when the key is absent
  });

  it('duplicate keys, duplicate tensor names and an empty key: BAD_MODEL_FILE naming them', async () => {
    const twoKeys = writeGGUF({ metadata: { 'a.x': str('1'), 'a.y': str('2') }, tensors: [] });
    const keys = layoutOf(twoKeys).kvs;
    twoKeys.set(new TextEncoder().encode('a.x'), keys[1].at + 8);
    await refusal(parse(twoKeys), 'BAD_MODEL_FILE', 'a.x');

    const f32 = (name: string) => ({ name, type: GGMLType.F32, dims: [4], data: new Uint8Array(16) });
    const twoTensors = writeGGUF({ metadata: {}, tensors: [f32('w1'), f32('w2')] });
    const names = layoutOf(twoTensors).byKind.get('nameLength')!;
    twoTensors.set(new TextEncoder().encode('w1'), names[1].at + 8);
    await refusal(parse(twoTensors), 'BAD_MODEL_FILE', '"w1"');

    await refusal(parse(withMeta([['', str('x')]])), 'BAD_MODEL_FILE', 'empty key');
  });

  it('tensor infos: a zero or huge dimension, 5 dimensions, a misaligned offset, rows not whole blocks: BAD_MODEL_FILE naming the tensor', async () => {
    const one = () => writeGGUF({ metadata: {}, tensors: [{ name: 'blk.0.w', type: GGMLType.F32, dims: [4, 2], data: new Uint8Array(32) }] });
    const patch = (edit: (view: DataView, fields: SeedLayout['byKind']) => void) => {
      const bytes = one();
      edit(new DataView(bytes.buffer), layoutOf(bytes).byKind);
      return bytes;
    };
    const dims = (f: SeedLayout['byKind']) => f.get('dim')!;
    await refusal(parse(patch((v, f) => v.setBigUint64(dims(f)[1].at, 0n, true))), 'BAD_MODEL_FILE', '"blk.0.w"');
    await refusal(parse(patch((v, f) => { v.setBigUint64(dims(f)[0].at, 2n ** 30n, true); v.setBigUint64(dims(f)[1].at, 2n ** 30n, true); })), 'BAD_MODEL_FILE', '"blk.0.w"');
    await refusal(parse(patch((v, f) => v.setUint32(f.get('nDims')![0].at, 5, true))), 'BAD_MODEL_FILE', '"blk.0.w"');
    await refusal(parse(patch((v, f) => v.setBigUint64(f.get('offset')![0].at, 4n, true))), 'BAD_MODEL_FILE', '"blk.0.w"');
    const q8 = writeGGUF({ metadata: {}, tensors: [{ name: 'blk.0.q', type: GGMLType.Q8_0, dims: [16, 2], data: new Uint8Array(34) }] });
    await refusal(parse(q8), 'BAD_MODEL_FILE', '"blk.0.q"');
    // Past the end of the file: the truncated case, as before.
    await refusal(parse(patch((v, f) => v.setBigUint64(f.get('offset')![0].at, 1024n, true))), 'TENSOR_OUT_OF_BOUNDS', '"blk.0.w"');
  });
});

// ---- the CLI's file reading: a declared size is checked before it is read ----------------------

describe("the CLI's file reading", () => {
  const dir = mkdtempSync(join(tmpdir(), 'lantern-hostile-'));

  /** A sparse file of `size` bytes holding `pieces` at their offsets: no hundreds of MB on disk. */
  function sparseFile(name: string, size: number, pieces: [offset: number, bytes: Uint8Array][]): string {
    const path = join(dir, name);
    const fd = openSync(path, 'w');
    for (const [offset, bytes] of pieces) writeSync(fd, bytes, 0, bytes.byteLength, offset);
    closeSync(fd);
    truncateSync(path, size);
    return path;
  }

  /** Reads `path` through the CLI's FileSource, recording the length of every read. */
  async function readCounted(path: string): Promise<{ error: unknown; reads: number[]; rssGrowth: number }> {
    const file = await openFileSource(path);
    const reads: number[] = [];
    const counted: ByteSource = { size: file.size, read: (offset, length) => (reads.push(length), file.read(offset, length)) };
    const rss = process.memoryUsage().rss;
    try {
      const error = await readGGUF(counted).then(() => undefined, (e: unknown) => e);
      return { error, reads, rssGrowth: process.memoryUsage().rss - rss };
    } finally {
      await file.close();
    }
  }

  // The case of the report: a 700 MB file whose header declares a 600 MB chat template.
  const hugeString = () => sparseFile('huge-string.gguf', 700_000_000, [[0, declaring('string', 600_000_000n, 'tokenizer.chat_template')]]);

  it('a 700 MB file declaring a 600 MB string: BAD_MODEL_FILE after reading 1 MiB, memory flat', async () => {
    const { error, reads, rssGrowth } = await readCounted(hugeString());
    await refusal(Promise.reject(error), 'BAD_MODEL_FILE', 'tokenizer.chat_template');
    expect(reads).toEqual([1 << 20]);
    expect(rssGrowth).toBeLessThan(64 << 20);
  });

  it('a header that goes on past 64 MiB (4 MiB strings in an 80 MiB file): refused at the cap', async () => {
    const pieces: [number, Uint8Array][] = [];
    const value = 4 << 20;
    let at = 24;
    for (let i = 0; i < 20; i++) {
      const pair = declaring('string', BigInt(value), `x.key${String(i).padStart(2, '0')}`).subarray(24);
      pieces.push([at, pair]);
      at += pair.byteLength + value;
    }
    const head = declaring('string', 0n).subarray(0, 24);
    new DataView(head.buffer, head.byteOffset).setBigUint64(16, 20n, true);
    pieces.push([0, head]);
    const { error, reads, rssGrowth } = await readCounted(sparseFile('long-header.gguf', 80 << 20, pieces));
    const refused = await refusal(Promise.reject(error), 'BAD_MODEL_FILE', 'x.key15');
    expect(refused.message).toContain('64 MiB');
    expect(Math.max(...reads)).toBe(MAX_HEADER_BYTES);
    expect(reads.length).toBeLessThanOrEqual(4);
    expect(rssGrowth).toBeLessThan(512 << 20);
  });

  it('lantern tokenize on the 700 MB file exits 1 with BAD_MODEL_FILE naming the key', async () => {
    const path = hugeString();
    const root = new URL('..', import.meta.url).pathname;
    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [join(root, 'bin/lantern.mjs'), 'tokenize', '--model', path, '--text', 'hi', '--json'], { cwd: root, timeout: 110_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
      });
    });
    expect(run.code, run.stderr).toBe(1);
    const { error } = JSON.parse(run.stdout.trim());
    expect(error.code).toBe('BAD_MODEL_FILE');
    expect(error.message).toContain('tokenizer.chat_template');
  });
});
