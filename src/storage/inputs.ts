import { LanternError } from '../errors.ts';
import { type ByteSource, splitName } from './source.ts';

/**
 * What a model input is: a URL, a File or Blob, bytes, the Files of a split GGUF, or a file made
 * as it is read; each becomes one Origin, or one per part of a split GGUF.
 */

/** A URL (any CORS-enabled host), a File or Blob, the file's bytes, all the Files of a split GGUF, or a made file. */
export type ModelInput = string | URL | Blob | Uint8Array | ArrayBuffer | readonly File[] | MadeFile;

/**
 * A GGUF file made as it is read, under a stable id: a Hugging Face checkpoint converted on load
 * (src/model/hf/convert.ts). `open` is called only when bytes are missing from the cache, so a
 * cached model is read without making (or fetching) anything.
 */
export interface MadeFile {
  readonly id: string;
  open(): Promise<ByteSource>;
}

/** Where the file's bytes come from: a server, or something already in memory or on disk. */
export type Origin =
  | { kind: 'url'; url: string; defaultId: string }
  | { kind: 'made'; open: () => Promise<ByteSource>; defaultId: string }
  | { kind: 'blob'; blob: Blob; defaultId: string | undefined; bytes?: Uint8Array };

const SPLIT_GGUF = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** The origins of a model's files, in order: one, or every part of a split GGUF. */
export function describeParts(input: ModelInput): Origin[] {
  if (Array.isArray(input)) return splitFiles(input);
  if (isMadeFile(input)) return [{ kind: 'made', open: once(input.open.bind(input)), defaultId: input.id }];
  const origin = describeInput(input as Exclude<ModelInput, readonly File[] | MadeFile>);
  if (origin.kind !== 'url') return [origin];
  const path = origin.url.split(/[?#]/)[0];
  const match = SPLIT_GGUF.exec(path);
  if (!match) return [origin];
  // The parts lie beside the first, named as gguf-split names them; a query string stays on each.
  return Array.from({ length: Number(match[2]) }, (_, k) => {
    const url = `${path.slice(0, match.index)}-${splitName(k, Number(match[2]))}.gguf${origin.url.slice(path.length)}`;
    return { kind: 'url', url, defaultId: url };
  });
}

/** All the Files of a split GGUF (a multi-select), ordered by the part numbers in their names. */
function splitFiles(files: readonly unknown[]): Origin[] {
  const isFile = (f: unknown): f is File => typeof File !== 'undefined' && f instanceof File;
  if (files.length === 0) throw new LanternError('BAD_ARGUMENT', 'An empty list of files was given; choose a .gguf file, or all the parts of a split one.');
  if (files.length === 1 && isFile(files[0])) return [describeInput(files[0])];
  const parts = files.map((file) => {
    const match = isFile(file) ? SPLIT_GGUF.exec(file.name) : null;
    if (!match) {
      throw new LanternError(
        'BAD_ARGUMENT',
        `Several files were given, but ${isFile(file) ? file.name : 'one'} is not a part of a split GGUF (NAME-00001-of-00003.gguf); choose one .gguf file, or all the parts of a split one.`,
      );
    }
    return { file: file as File, no: Number(match[1]), count: Number(match[2]) };
  });
  parts.sort((a, b) => a.no - b.no);
  const count = parts[0]?.count ?? 0;
  for (let k = 0; k < count; k++) {
    if (parts[k]?.no !== k + 1 || parts[k].count !== count) {
      throw new LanternError(
        'BAD_MODEL_FILE',
        `Part ${splitName(k, count)} of this split GGUF is missing from the files chosen; choose all ${count} parts (…-${splitName(0, count)}.gguf to …-${splitName(count - 1, count)}.gguf) together.`,
        { part: k + 1, parts: count },
      );
    }
  }
  if (parts.length !== count) {
    throw new LanternError('BAD_ARGUMENT', `${parts.length} files were chosen for a model split into ${count}; choose the ${count} parts of one model.`, { parts: count });
  }
  return parts.map(({ file }) => ({ kind: 'blob', blob: file, defaultId: `file:${file.name}:${file.size}:${file.lastModified}` }));
}

function isMadeFile(input: ModelInput): input is MadeFile {
  return typeof input === 'object' && input !== null && typeof (input as MadeFile).open === 'function' && typeof (input as MadeFile).id === 'string';
}

/** `open` called at most once; later calls share its promise. */
function once(open: () => Promise<ByteSource>): () => Promise<ByteSource> {
  let opened: Promise<ByteSource> | undefined;
  return () => (opened ??= open());
}

function describeInput(input: Exclude<ModelInput, readonly File[] | MadeFile>): Origin {
  if (typeof input === 'string' || input instanceof URL) {
    const url = String(input);
    refuseSplit(url.split(/[?#]/)[0]);
    return { kind: 'url', url, defaultId: url };
  }
  if (input instanceof Blob) {
    const file = typeof File !== 'undefined' && input instanceof File ? input : undefined;
    if (file) refuseSplit(file.name);
    return { kind: 'blob', blob: input, defaultId: file && `file:${file.name}:${file.size}:${file.lastModified}` };
  }
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    const bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : input;
    return { kind: 'blob', blob: new Blob([bytes as Uint8Array<ArrayBuffer>]), defaultId: undefined, bytes };
  }
  throw new LanternError('BAD_ARGUMENT', 'A model is a URL, a File or Blob, or a Uint8Array of the GGUF file; pass one of those.');
}

function refuseSplit(name: string): void {
  const match = SPLIT_GGUF.exec(name);
  if (match && match[1] !== '00001') {
    throw new LanternError(
      'BAD_ARGUMENT',
      `${name} is part ${match[1]} of a split GGUF; load the first part (…-00001-of-${match[2]}.gguf), and the other parts are read from beside it.`,
      { part: Number(match[1]), parts: Number(match[2]) },
    );
  }
}

