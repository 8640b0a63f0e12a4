import { existsSync, statSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LanternError } from '../errors.ts';
import { type ConvertedModel, convertCheckpoint, type QuantizeChoice } from '../model/hf/convert.ts';
import { type NamedFiles, isFileSetInput, openFileSet } from '../storage/files.ts';
import type { ByteSource } from '../storage/source.ts';
import { type FileSource, openFileSource } from './file-source.ts';

/**
 * What `--model` names, for the commands: a .gguf file as it is, or a Hugging Face model (a
 * folder holding config.json, or a hub address) converted into a GGUF in a temporary folder that
 * `dispose` removes. Node only.
 */
export interface CliModel {
  /** A GGUF file on disk. */
  path: string;
  /** Set when the model was converted from a Hugging Face checkpoint. */
  converted?: Omit<ConvertedModel, 'source'>;
  dispose(): Promise<void>;
}

/** Whether `--model` names a Hugging Face model rather than a GGUF file. */
export function isCheckpoint(model: string): boolean {
  return isFileSetInput(model) || (existsSync(model) && statSync(model).isDirectory());
}

/** Opens the checkpoint `--model` names and plans its conversion (nothing is converted yet). */
export async function convertCliModel(model: string, quantize: QuantizeChoice | 'auto' | undefined): Promise<ConvertedModel & { close(): Promise<void> }> {
  const files = isFileSetInput(model) ? openFileSet(model, { hubEndpoint: process.env.HF_ENDPOINT }) : folderFiles(model);
  try {
    return { ...(await convertCheckpoint(files, { quantize })), close: async () => files.close?.() };
  } catch (e) {
    await files.close?.();
    throw e;
  }
}

export async function openCliModel(model: string, quantize?: QuantizeChoice | 'auto'): Promise<CliModel> {
  if (!isCheckpoint(model)) return { path: model, dispose: async () => {} };
  const converted = await convertCliModel(model, quantize);
  const dir = await mkdtemp(join(tmpdir(), 'lantern-'));
  const path = join(dir, 'model.gguf');
  try {
    await writeSource(converted.source, path);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  } finally {
    await converted.close();
  }
  const { source: _, close: __, ...about } = converted;
  return { path, converted: about, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a source to a file, a few MiB at a time. */
export async function writeSource(source: ByteSource, path: string, onBytes?: (written: number) => void): Promise<void> {
  const file = await open(path, 'w');
  try {
    const piece = 4 << 20;
    for (let at = 0; at < source.size; at += piece) {
      const bytes = await source.read(at, Math.min(piece, source.size - at));
      await file.write(bytes, 0, bytes.byteLength, at);
      onBytes?.(at + bytes.byteLength);
    }
  } finally {
    await file.close();
  }
}

/** The files of a folder on disk, read by range. */
export function folderFiles(dir: string): NamedFiles {
  const opened = new Map<string, Promise<FileSource>>();
  return {
    id: `folder:${dir}`,
    where: dir,
    async has(name) {
      return existsSync(join(dir, name)) && statSync(join(dir, name)).isFile();
    },
    async open(name) {
      if (!existsSync(join(dir, name))) {
        throw new LanternError('BAD_MODEL_FILE', `${dir} has no ${name}; the model needs it. Check the folder holds all of the repository's files.`, { file: name });
      }
      let source = opened.get(name);
      if (!source) opened.set(name, (source = openFileSource(join(dir, name))));
      return source;
    },
    async close() {
      for (const source of opened.values()) await (await source).close();
      opened.clear();
    },
  };
}
