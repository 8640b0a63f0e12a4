/**
 * Vocabulary-only GGUF files for tokenizer tests, written with scripts/lib/gguf-writer.ts: a copy of
 * one of llama.cpp's ggml-vocab-*.gguf files with some metadata changed (tokenizer.ggml.pre, the
 * SentencePiece flags) and tokens appended, so that Lantern and llama.cpp can tokenize the same file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGGUF, type MetaValue } from '../../scripts/lib/gguf-writer.ts';
import { vocabularyOf } from '../../scripts/lib/model-writer.ts';
import { readGGUF, type GGUFValue } from '../../src/model/gguf.ts';
import { bytesSource } from '../../src/storage/source.ts';

/** A token added at the end of the vocabulary; `type` is tokenizer.ggml.token_type (3 control, 4 user-defined). */
export interface ExtraToken { text: string; type: 1 | 3 | 4; score?: number }

export interface VocabEdit {
  /** Keys to set; `null` removes the key. */
  metadata?: Record<string, MetaValue | null>;
  extraTokens?: ExtraToken[];
  /**
   * BPE merges appended after the file's own, lowest rank, each as "left right" in the vocabulary's
   * byte alphabet; the merged token is appended too when the vocabulary lacks it.
   */
  extraMerges?: string[];
}

let dir: string | undefined;
const bases = new Map<string, Promise<Readonly<Record<string, MetaValue>>>>();

/** The source file's metadata as the writer takes it, read once per source. */
function baseMetadata(source: string): Promise<Readonly<Record<string, MetaValue>>> {
  let base = bases.get(source);
  if (!base) {
    base = readGGUF(bytesSource(new Uint8Array(readFileSync(source)))).then((file) => {
      const metadata: Record<string, MetaValue> = {};
      for (const [key, value] of file.metadata) {
        const meta = key.startsWith('tokenizer.') ? undefined : scalarMeta(key, value);
        if (meta !== undefined) metadata[key] = meta;
      }
      return Object.assign(metadata, vocabularyOf(file));
    });
    bases.set(source, base);
  }
  return base;
}

/** Writes `source` with `edit` applied to a temporary file and returns its path. */
export async function writeVocabGGUF(source: string, name: string, edit: VocabEdit = {}): Promise<string> {
  // A shallow copy: edits below replace entries, never change the cached arrays in place.
  const metadata: Record<string, MetaValue> = { ...(await baseMetadata(source)) };

  const extra = [...(edit.extraTokens ?? [])];
  if (edit.extraMerges?.length) {
    const merges = metadata['tokenizer.ggml.merges'];
    const tokens = metadata['tokenizer.ggml.tokens'];
    if (merges?.type !== 'array' || tokens?.type !== 'array') throw new Error(`${source} is not a BPE vocabulary`);
    metadata['tokenizer.ggml.merges'] = { ...merges, value: [...merges.value, ...edit.extraMerges] };
    const known = new Set(tokens.value);
    for (const merge of edit.extraMerges) {
      const text = merge.replace(' ', '');
      if (!known.has(text)) extra.push({ text, type: 1 });
      known.add(text);
    }
  }
  if (extra.length > 0) {
    const tokens = metadata['tokenizer.ggml.tokens'];
    if (tokens?.type !== 'array') throw new Error(`${source} has no tokenizer.ggml.tokens`);
    const n = tokens.value.length;
    metadata['tokenizer.ggml.tokens'] = { ...tokens, value: [...tokens.value, ...extra.map((t) => t.text)] };
    const types = metadata['tokenizer.ggml.token_type'];
    const scores = metadata['tokenizer.ggml.scores'];
    metadata['tokenizer.ggml.token_type'] = {
      type: 'array', itemType: 'i32',
      value: [...(types?.type === 'array' ? types.value : new Array(n).fill(1)), ...extra.map((t) => t.type)],
    };
    if (scores?.type === 'array') {
      metadata['tokenizer.ggml.scores'] = { ...scores, value: [...scores.value, ...extra.map((t) => t.score ?? 0)] };
    }
  }

  for (const [key, value] of Object.entries(edit.metadata ?? {})) {
    if (value === null) delete metadata[key];
    else metadata[key] = value;
  }

  dir ??= mkdtempSync(join(tmpdir(), 'lantern-vocab-'));
  const path = join(dir, `${name}.gguf`);
  writeFileSync(path, writeGGUF({ metadata, tensors: [] }));
  return path;
}

/** Deletes the files writeVocabGGUF wrote (call in afterAll, after llama.cpp has let go of them). */
export function removeVocabFiles(): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}

/** The model's other keys, which llama.cpp reads even for a vocabulary-only load: all scalars. */
function scalarMeta(key: string, value: GGUFValue): MetaValue | undefined {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value === 'boolean') return { type: 'bool', value };
  if (typeof value !== 'number') return undefined;
  // llama.cpp reads epsilons and rope bases as f32, whole or not.
  if (!Number.isInteger(value) || /epsilon|freq_base|scale/.test(key)) return { type: 'f32', value };
  return value < 0 ? { type: 'i32', value } : { type: 'u32', value };
}
