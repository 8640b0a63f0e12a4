import { LanternError } from '../errors.ts';
import { blobSource, type ByteSource, probeFile, urlSource } from './source.ts';

/**
 * A model as a set of named files: a Hugging Face repository (config.json, model.safetensors or
 * its shards, tokenizer.json, ...) on the hub, in a folder a server serves, or picked from disk.
 * The converter (src/model/hf/convert.ts) asks for files by name and reads them by range; nothing
 * here reads a whole weight file.
 */
export interface NamedFiles {
  /** Stable across visits: the cache key of what is made from these files. */
  readonly id: string;
  /** Where the files are, for messages: a repository, a folder URL, or "the files chosen". */
  readonly where: string;
  /** Whether the set has the file; a remote set asks the server (once per name). */
  has(name: string): Promise<boolean>;
  /** The file, read by range; fails with BAD_MODEL_FILE naming it when it is not there. */
  open(name: string): Promise<ByteSource>;
  /** Lets go of open files (a folder on disk); sources opened before are unusable after. */
  close?(): Promise<void>;
}

/** A hub repository as a URL names it. */
export interface HubRepo {
  /** "ORG/NAME" */
  repo: string;
  /** A branch, tag, commit or "refs/pr/N"; "main" when not given. */
  revision: string;
}

/** The hub the hub URLs and hf: names point at; tests and mirrors give another (as HF_ENDPOINT does). */
export const DEFAULT_HUB = 'https://huggingface.co';

const REPO_PART = '[A-Za-z0-9][A-Za-z0-9._-]*';
/** hf:ORG/NAME, hf:ORG/NAME@REV, https://huggingface.co/ORG/NAME[@REV] or .../tree/REV. */
const HUB_URL = new RegExp(`^(?:hf:|https?://(?:www\\.)?huggingface\\.co/)(${REPO_PART}/${REPO_PART})(?:@([^/?#]+(?:/[^/?#]+)*)|/tree/([^?#]+))?/?$`);

/** The repository a hub URL or `hf:` name points at; undefined for anything else. */
export function parseHubUrl(input: string): HubRepo | undefined {
  const match = HUB_URL.exec(input.trim());
  if (!match) return undefined;
  const revision = decodeURIComponent(match[2] ?? match[3] ?? 'main');
  return { repo: match[1], revision };
}

/**
 * Whether a model input names a set of files rather than one GGUF: a hub repository, a folder URL
 * (ending in "/"), or files picked together that include a config.json.
 */
export function isFileSetInput(input: unknown): boolean {
  if (typeof input === 'string' || input instanceof URL) {
    const text = String(input);
    return parseHubUrl(text) !== undefined || /^https?:\/\/[^?#]*\/(?:[?#].*)?$/.test(text) && !/\/resolve\/[^/]+\/$/.test(text);
  }
  return Array.isArray(input) && input.some((f) => typeof File !== 'undefined' && f instanceof File && baseName(f) === 'config.json');
}

export interface FileSetOptions {
  /** The hub's address for hub URLs (default https://huggingface.co). */
  hubEndpoint?: string;
  signal?: AbortSignal;
}

/** The named files a model input points at (isFileSetInput). */
export function openFileSet(input: string | URL | readonly File[], options: FileSetOptions = {}): NamedFiles {
  if (Array.isArray(input)) return pickedFiles(input as readonly File[]);
  const text = String(input);
  const hub = parseHubUrl(text);
  if (hub) {
    const endpoint = (options.hubEndpoint ?? DEFAULT_HUB).replace(/\/+$/, '');
    const base = `${endpoint}/${hub.repo}/resolve/${encodeURIComponent(hub.revision)}/`;
    return remoteFiles(base, `hf:${hub.repo}@${hub.revision}`, `${hub.repo} (revision ${hub.revision})`);
  }
  if (!text.endsWith('/')) throw new LanternError('BAD_ARGUMENT', `${text} is neither a hub repository nor a folder URL; give https://huggingface.co/ORG/NAME, or a folder address ending in "/".`);
  return remoteFiles(text, text, text);
}

/** Files under a base URL, asked for by name; what exists is learnt from the server. */
function remoteFiles(base: string, id: string, where: string): NamedFiles {
  const known = new Map<string, Promise<number | undefined>>();
  /** The file's size, or undefined when the server says it has no such file (404/410). */
  const probe = (name: string): Promise<number | undefined> => {
    let found = known.get(name);
    if (!found) {
      found = probeFile(base + name).then(
        (file) => file.size ?? -1,
        (e) => {
          if (e instanceof LanternError && (e.details?.status === 404 || e.details?.status === 410)) return undefined;
          throw e;
        },
      );
      known.set(name, found);
    }
    return found;
  };
  return {
    id,
    where,
    async has(name) {
      return (await probe(name)) !== undefined;
    },
    async open(name) {
      if ((await probe(name)) === undefined) throw missingFile(name, where);
      return urlSource(base + name);
    },
  };
}

/** Files picked or dropped together (a folder's contents); their id is their names, sizes and dates. */
function pickedFiles(files: readonly File[]): NamedFiles {
  const byName = new Map<string, File>();
  for (const file of files) {
    const name = baseName(file);
    if (byName.has(name)) throw new LanternError('BAD_ARGUMENT', `Two of the files chosen are named ${name}; choose the files of one model folder.`);
    byName.set(name, file);
  }
  const id = `files:${[...byName.values()].map((f) => `${baseName(f)}:${f.size}:${f.lastModified}`).sort().join('|')}`;
  return {
    id,
    where: 'the files chosen',
    async has(name) {
      return byName.has(name);
    },
    async open(name) {
      const file = byName.get(name);
      if (!file) throw missingFile(name, 'the files chosen');
      return blobSource(file);
    },
  };
}

/** A picked file's name without its folder (webkitRelativePath keeps "folder/config.json"). */
function baseName(file: File): string {
  return file.name.split('/').pop()!;
}

function missingFile(name: string, where: string): LanternError {
  return new LanternError('BAD_MODEL_FILE', `${where} has no ${name}; the model needs it. Check the repository or folder, or choose all of its files.`, { file: name });
}

/** A small file's text (config.json, tokenizer.json), refused above `maxBytes`. */
export async function readText(files: NamedFiles, name: string, maxBytes = 64 << 20): Promise<string> {
  const source = await files.open(name);
  if (source.size > maxBytes) {
    throw new LanternError('BAD_MODEL_FILE', `${name} in ${files.where} is ${source.size} bytes, more than the ${maxBytes} Lantern reads for it; the file is damaged or not what its name says.`, { file: name, size: source.size });
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(await source.read(0, source.size));
}
