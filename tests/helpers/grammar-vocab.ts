/**
 * Real vocabularies as the grammar masker sees them, for tests/grammar.test.ts and
 * scripts/bench-grammar.ts: SmolLM2's 49,152 tokens from its tokenizer.json (GPT-2 byte-level
 * strings decoded to bytes here, independently of src/model/tokenizer), and a 151,936-token
 * Qwen-sized vocabulary built from it and llama.cpp's BPE vocabularies.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readGGUF } from '../../src/model/gguf.ts';
import { tokenizerFromGGUF } from '../../src/model/tokenizer/index.ts';
import type { MaskVocabulary } from '../../src/runtime/grammar/mask.ts';
import { bytesSource } from '../../src/storage/source.ts';
import { LLAMACPP_VOCAB_DIR, SMOLLM2_TOKENIZER_DIR } from './paths.ts';

/** GPT-2's bytes_to_unicode, inverted: the character that stands for each byte → the byte. */
function gpt2ByteOfChar(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Map<string, number>();
  for (const b of printable) map.set(String.fromCodePoint(b), b);
  let next = 0;
  for (let b = 0; b < 256; b++) if (!printable.includes(b)) map.set(String.fromCodePoint(256 + next++), b);
  return map;
}

export interface TestVocabulary extends MaskVocabulary {
  /** Token id of each single byte, for walking a text byte by byte. */
  byteToken: Int32Array;
}

let smollm2: TestVocabulary | undefined;

export function smollm2Vocabulary(): TestVocabulary {
  if (smollm2) return smollm2;
  const json = JSON.parse(readFileSync(resolve(SMOLLM2_TOKENIZER_DIR, 'tokenizer.json'), 'utf8')) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number; content: string; special: boolean }[];
  };
  const byteOf = gpt2ByteOfChar();
  const size = Math.max(...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)) + 1;
  const bytes: (Uint8Array | undefined)[] = new Array(size).fill(undefined);
  for (const [text, id] of Object.entries(json.model.vocab)) {
    bytes[id] = Uint8Array.from([...text].map((ch) => {
      const b = byteOf.get(ch);
      if (b === undefined) throw new Error(`token ${id} has a character outside GPT-2's byte alphabet`);
      return b;
    }));
  }
  const eog: number[] = [];
  for (const t of json.added_tokens) {
    if (t.special) bytes[t.id] = undefined;
    if (t.content === '<|endoftext|>' || t.content === '<|im_end|>') eog.push(t.id);
  }
  smollm2 = { bytes, eog, byteToken: byteTokens(bytes) };
  return smollm2;
}

function byteTokens(bytes: readonly (Uint8Array | undefined)[]): Int32Array {
  const out = new Int32Array(256).fill(-1);
  bytes.forEach((b, id) => { if (b?.length === 1 && out[b[0]] < 0) out[b[0]] = id; });
  return out;
}

/**
 * 151,936 tokens (Qwen2.5's vocabulary size): SmolLM2's, then every distinct token of llama.cpp's
 * GPT-2, GPT-NeoX, MPT, Refact and DeepSeek-Coder vocabularies (read through Lantern's GGUF
 * tokenizer), then synthetic joins of two tokens until the size is reached.
 */
export async function qwenSizedVocabulary(): Promise<TestVocabulary> {
  const base = smollm2Vocabulary();
  const bytes = [...base.bytes];
  const seen = new Set(bytes.filter((b) => b !== undefined).map((b) => Buffer.from(b!).toString('latin1')));
  const add = (b: Uint8Array | undefined) => {
    if (b === undefined || b.length === 0) return;
    const key = Buffer.from(b).toString('latin1');
    if (seen.has(key)) return;
    seen.add(key);
    bytes.push(b);
  };
  for (const name of ['gpt-2', 'gpt-neox', 'mpt', 'refact', 'deepseek-coder']) {
    const file = await readGGUF(bytesSource(new Uint8Array(readFileSync(resolve(LLAMACPP_VOCAB_DIR, `ggml-vocab-${name}.gguf`)))));
    const tok = tokenizerFromGGUF(file);
    for (let id = 0; id < tok.vocabSize && bytes.length < 151_936; id++) add(tok.tokenBytes(id));
  }
  let a = 12345;
  const rand = () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pool = bytes.filter((b): b is Uint8Array => b !== undefined && b.length <= 6);
  while (bytes.length < 151_936) {
    const x = pool[Math.floor(rand() * pool.length)];
    const y = pool[Math.floor(rand() * pool.length)];
    const joined = new Uint8Array(x.length + y.length);
    joined.set(x);
    joined.set(y, x.length);
    add(joined);
  }
  return { bytes, eog: base.eog, byteToken: base.byteToken };
}
