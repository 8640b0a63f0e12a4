import { del, get, set } from 'idb-keyval';
import { LanternError } from '../errors.ts';
import {
  type CacheStores,
  type ChunkRecord,
  type DownloadRecord,
  type ModelManifest,
  deleteModelRecords,
  openCacheStores,
  storedChunkIndices,
} from './cache.ts';
import { Sha256, sha256Hex } from './sha256.ts';
import {
  type ByteSource,
  blobSource,
  bytesSource,
  checkRange,
  fetchOrThrow as fetchChecked,
  identityLength,
  joinedSource,
  probeFile,
  splitName,
  urlSource,
} from './source.ts';

/**
 * openModel(): a model file from a URL, a File/Blob or bytes, delivered through the IndexedDB
 * cache (cache.ts). A URL is downloaded once, chunk by chunk, into IndexedDB; later visits read
 * it from there without touching the network. Every chunk is checked against its SHA-256 when it
 * is stored and again when it is read back; a bad or missing chunk is fetched again on its own.
 * The JS heap holds a few chunks at a time, whatever the model's size.
 *
 * A split GGUF (llama.cpp's gguf-split: NAME-00001-of-0000N.gguf ...) is opened from its first
 * part's URL, or from all its Files at once: every part goes through the cache as a model of its
 * own, and the source joins them end to end, with `parts` saying where each begins (readGGUF
 * merges their headers). Progress counts the bytes of all parts together.
 *
 * Servers are taken as they are: one that compresses the file (gzip, br, zstd, chunked, with no
 * Content-Length) has the size asked by a Range request or HEAD (probeFile), and where neither
 * says, the body is stored as it streams and its end gives the size; one without Range support
 * has the stored part of its body skipped on a resume; redirects (a hub's `resolve` URL to a CDN
 * on another origin) are followed, and the cache key stays the URL that was asked for.
 */

export type LoadPhase = 'download' | 'verify' | 'cache' | 'upload';

/**
 * Monotonic within a phase; `totalBytes` is the model file's size (of all its parts, when split),
 * or undefined while it is not known: a server that compresses the file and will not say its size
 * (show an indeterminate bar). The phase's last event carries it.
 */
export interface LoadProgress {
  phase: LoadPhase;
  loadedBytes: number;
  totalBytes: number | undefined;
}

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

export interface OpenModelOptions {
  /** The file's SHA-256 in hex; a file that does not match fails with CHECKSUM_MISMATCH. */
  expectedSha256?: string;
  /** May return a promise (a comlink proxy across the worker boundary); it is not awaited. */
  onProgress?(progress: LoadProgress): void | Promise<void>;
  /** Called once, with the reason, when the model cannot be cached (no usable IndexedDB). */
  onCacheUnavailable?(reason: string): void;
  /** false: read the input directly and store nothing. Default true. */
  cache?: boolean;
  /**
   * The cache key. Defaults to the URL, or to a File's name, size and modification time; a plain
   * Blob or bytes are cached only when given an id.
   */
  id?: string;
  /** Bytes per stored chunk for a new download. Default 4 MiB. */
  chunkSize?: number;
  /** Network failures retried within this call, each resuming where the last stopped. Default 3. */
  retries?: number;
  signal?: AbortSignal;
}

/** The model file, ready for Runtime.load(); reads count towards the 'upload' phase. */
export interface ModelSource extends ByteSource {
  /** The cache key, or undefined when uncached. */
  readonly id: string | undefined;
  /** True when reads come from IndexedDB. */
  readonly cached: boolean;
  /** Why the model is not cached, when it is not. */
  readonly uncachedReason: string | undefined;
  /** Reports the 'upload' phase complete: call it once the runtime has loaded the weights. */
  uploadDone(): void;
}

export const DEFAULT_CHUNK_SIZE = 4 << 20;
const DEFAULT_RETRIES = 3;
/** Progress events come every 256 KiB or 1% of the file, whichever is less, and for every stored chunk. */
const PROGRESS_STEP = 1 << 18;

export async function openModel(input: ModelInput, options: OpenModelOptions = {}): Promise<ModelSource> {
  const origins = describeParts(input);
  const expected = checkExpectedSha256(options.expectedSha256);
  const report = progressReporter(options.onProgress);
  if (origins.length > 1) return openSplit(origins, expected, report, options);
  const origin = origins[0];
  const id = options.id ?? origin.defaultId;

  const { stores, uncachedReason } = await cacheStores(id, options);
  if (!stores || id === undefined) return openUncached(origin, expected, report, uncachedReason!, options.signal);

  const cache = new ModelCache(stores, id, origin, report, options);
  const manifest = await cache.complete(expected);
  return cachedSource(cache, manifest, report);
}

/** The IndexedDB stores, or the reason the model loads without them. */
async function cacheStores(id: string | undefined, options: OpenModelOptions): Promise<{ stores?: CacheStores; uncachedReason?: string }> {
  if (options.cache === false) return { uncachedReason: 'caching was turned off (cache: false)' };
  if (id === undefined) return { uncachedReason: 'a Blob or bytes are cached only when given an id' };
  try {
    return { stores: await openCacheStores() };
  } catch (e) {
    const uncachedReason = `IndexedDB is not available (${(e as Error).message || (e as Error).name}); the model loads without a cache`;
    options.onCacheUnavailable?.(uncachedReason);
    return { uncachedReason };
  }
}

// ---- Inputs --------------------------------------------------------------------------------

/** Where the file's bytes come from: a server, or something already in memory or on disk. */
type Origin =
  | { kind: 'url'; url: string; defaultId: string }
  | { kind: 'made'; open: () => Promise<ByteSource>; defaultId: string }
  | { kind: 'blob'; blob: Blob; defaultId: string | undefined; bytes?: Uint8Array };

const SPLIT_GGUF = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** The origins of a model's files, in order: one, or every part of a split GGUF. */
function describeParts(input: ModelInput): Origin[] {
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

function checkExpectedSha256(hex: string | undefined): string | undefined {
  if (hex === undefined) return undefined;
  const normalized = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(normalized)) {
    throw new LanternError('BAD_ARGUMENT', `expectedSha256 must be 64 hex digits, not "${hex}"; copy it from the model's page.`);
  }
  return normalized;
}

type Report = (phase: LoadPhase, loadedBytes: number, totalBytes: number | undefined, force?: boolean) => void;

/**
 * Drops events that would go backwards, and thins out ones that move less than a step. An event
 * that brings the total, learnt at the end of a body, passes with the bytes of the one before.
 */
function progressReporter(onProgress: OpenModelOptions['onProgress']): Report {
  const last = new Map<LoadPhase, { loaded: number; total: number | undefined }>();
  return (phase, loadedBytes, totalBytes, force = false) => {
    if (!onProgress) return;
    const previous = last.get(phase);
    const done = totalBytes !== undefined && loadedBytes >= totalBytes;
    const learnt = previous !== undefined && previous.total === undefined && totalBytes !== undefined;
    if (previous !== undefined && (loadedBytes < previous.loaded || (loadedBytes === previous.loaded && !learnt))) return;
    const step = totalBytes === undefined ? PROGRESS_STEP : Math.min(PROGRESS_STEP, totalBytes / 100);
    if (previous !== undefined && !force && !done && !learnt && loadedBytes - previous.loaded < step) return;
    last.set(phase, { loaded: loadedBytes, total: totalBytes });
    void Promise.resolve(onProgress({ phase, loadedBytes, totalBytes })).catch(() => {});
  };
}

// ---- Without a cache -----------------------------------------------------------------------

async function openUncached(origin: Origin, expected: string | undefined, report: Report, reason: string, signal?: AbortSignal): Promise<ModelSource> {
  let source: ByteSource;
  if (origin.kind === 'made') {
    source = await origin.open();
    if (expected) await checkStream(new Response(sourceStream(source, 0, DEFAULT_CHUNK_SIZE)), expected, report);
  } else if (origin.kind === 'url') {
    // Checking a whole-file hash needs the whole file once; the runtime then reads it again by range.
    if (expected) await checkStream(await fetchOrThrow(origin.url, {}, signal), expected, report);
    source = await urlSource(origin.url);
  } else {
    if (expected) await checkStream(new Response(origin.blob), expected, report);
    source = origin.bytes ? bytesSource(origin.bytes) : blobSource(origin.blob);
  }
  return countingSource(source, { id: undefined, cached: false, uncachedReason: reason }, report, origin.kind !== 'blob');
}

async function checkStream(response: Response, expected: string, report: Report): Promise<void> {
  const size = identityLength(response.headers);
  const hasher = new Sha256();
  let seen = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hasher.update(value);
    seen += value.byteLength;
    report('verify', seen, size !== undefined && size >= seen ? size : undefined);
  }
  report('verify', seen, seen, true);
  const actual = hasher.hex();
  if (actual !== expected) throw checksumError(actual, expected);
}

// ---- A split model --------------------------------------------------------------------------

/**
 * Opens every part of a split GGUF, one after the other, each through the cache under an id of
 * its own, and joins them. Parts not yet cached have their size asked first (probeFile), so that
 * progress can count towards the size of the whole model from the first byte.
 */
async function openSplit(origins: Origin[], expected: string | undefined, report: Report, options: OpenModelOptions): Promise<ModelSource> {
  const count = origins.length;
  if (expected) {
    throw new LanternError('BAD_ARGUMENT', `expectedSha256 names one file, but this model is split into ${count}; leave it out (every chunk of every part is still checked against its stored SHA-256).`);
  }
  const ids = origins.map((origin, k) => (options.id === undefined ? origin.defaultId : `${options.id}#${splitName(k, count)}`));
  const { stores, uncachedReason } = await cacheStores(ids[0], options);
  /** A part the server does not have is a missing part of the model, not a network failure. */
  const missingPart = (e: unknown, k: number, origin: Origin) =>
    e instanceof LanternError && e.code === 'FETCH_FAILED' && e.details?.status === 404 && origin.kind === 'url'
      ? new LanternError(
          'BAD_MODEL_FILE',
          `Part ${splitName(k, count)} of this split model is not at ${origin.url} (HTTP 404); put all ${count} parts beside the first, named as llama-gguf-split wrote them, then load it again.`,
          { part: k + 1, parts: count, url: origin.url },
        )
      : e;

  const sources: ByteSource[] = [];
  if (!stores) {
    for (const [k, origin] of origins.entries()) {
      try {
        sources.push(origin.kind === 'made' ? await origin.open() : origin.kind === 'url' ? await urlSource(origin.url) : origin.bytes ? bytesSource(origin.bytes) : blobSource(origin.blob));
      } catch (e) {
        throw missingPart(e, k, origin);
      }
    }
    return countingSource(joinedSource(sources), { id: undefined, cached: false, uncachedReason }, report, origins[0].kind === 'url');
  }

  const sizes: (number | undefined)[] = [];
  for (const [k, origin] of origins.entries()) {
    try {
      sizes.push(await knownSize(origin, stores, ids[k]!, options.signal));
    } catch (e) {
      throw missingPart(e, k, origin);
    }
  }
  const partReport = summedReporter(report, sizes);
  for (const [k, origin] of origins.entries()) {
    const cache = new ModelCache(stores, ids[k]!, origin, partReport(k), options);
    try {
      sources.push(chunkSource(cache, await cache.complete(undefined)));
    } catch (e) {
      throw missingPart(e, k, origin);
    }
  }
  return countingSource(joinedSource(sources), { id: ids[0], cached: true, uncachedReason: undefined }, report);
}

/** A part's size: from the cache when it is there (no request), else from the origin; undefined when it will not say. */
async function knownSize(origin: Origin, stores: CacheStores, id: string, signal: AbortSignal | undefined): Promise<number | undefined> {
  if (origin.kind === 'blob') return origin.blob.size;
  const known = (await get<ModelManifest>(id, stores.manifests)) ?? (await get<DownloadRecord>(id, stores.downloads));
  if (known?.size !== undefined) return known.size;
  if (origin.kind === 'made') return (await origin.open()).size;
  return (await probeFile(origin.url, signal).catch((e: unknown) => {
    throw signal?.aborted ? abortError() : e;
  })).size;
}

/**
 * One reporter per part; each event reports the sum over all parts, against the whole model's
 * size once every part's size is known (a part that would not say reports it at its end).
 */
function summedReporter(report: Report, sizes: (number | undefined)[]): (part: number) => Report {
  const loaded = new Map<LoadPhase, number[]>();
  return (part) => (phase, loadedBytes, partTotal, force) => {
    if (partTotal !== undefined) sizes[part] = partTotal;
    const perPart = loaded.get(phase) ?? sizes.map(() => 0);
    loaded.set(phase, perPart);
    perPart[part] = loadedBytes;
    const total = sizes.every((size) => size !== undefined) ? sizes.reduce((a: number, b) => a + b!, 0) : undefined;
    report(phase, perPart.reduce((a, b) => a + b, 0), total, force);
  };
}

// ---- Reading ---------------------------------------------------------------------------------

/** Counts bytes read as 'upload' (and as 'download' when every read goes to the network). */
function countingSource(
  source: ByteSource,
  facts: Pick<ModelSource, 'id' | 'cached' | 'uncachedReason'>,
  report: Report,
  readsAreDownloads = false,
): ModelSource {
  let read = 0;
  const count = (n: number) => {
    read = Math.min(source.size, read + n);
    report('upload', read, source.size);
    if (readsAreDownloads) report('download', read, source.size);
  };
  return {
    ...facts,
    size: source.size,
    ...(source.parts && { parts: source.parts }),
    async read(offset, length) {
      const bytes = await source.read(offset, length);
      count(length);
      return bytes;
    },
    uploadDone() {
      report('upload', source.size, source.size, true);
      if (readsAreDownloads) report('download', source.size, source.size, true);
    },
  };
}

function cachedSource(cache: ModelCache, manifest: ModelManifest, report: Report): ModelSource {
  return countingSource(chunkSource(cache, manifest), { id: manifest.id, cached: true, uncachedReason: undefined }, report);
}

/**
 * Reads a complete cached file. Each chunk is checked against the manifest when it comes out of
 * IndexedDB; the last two are kept, because the runtime reads consecutive small tensors.
 */
function chunkSource(cache: ModelCache, manifest: ModelManifest): ByteSource {
  const { size, chunkSize } = manifest;
  const recent = new Map<number, Promise<Uint8Array>>();
  const chunk = (index: number): Promise<Uint8Array> => {
    let bytes = recent.get(index);
    if (bytes) {
      recent.delete(index);
    } else {
      bytes = cache.readVerified(index, manifest.chunkSha256[index], chunkSize, size);
      bytes.catch(() => recent.delete(index));
    }
    recent.set(index, bytes);
    if (recent.size > 2) recent.delete(recent.keys().next().value!);
    return bytes;
  };
  const source: ByteSource = {
    size,
    async read(offset, length) {
      checkRange(offset, length, size);
      if (length === 0) return new Uint8Array(0);
      const first = Math.floor(offset / chunkSize);
      const last = Math.floor((offset + length - 1) / chunkSize);
      if (first === last) {
        const start = offset - first * chunkSize;
        return (await chunk(first)).subarray(start, start + length);
      }
      // [length] u8, assembled from the chunks it spans.
      const out = new Uint8Array(length);
      for (let index = first; index <= last; index++) {
        const bytes = await chunk(index);
        const from = Math.max(offset, index * chunkSize);
        const to = Math.min(offset + length, index * chunkSize + bytes.byteLength);
        out.set(bytes.subarray(from - index * chunkSize, to - index * chunkSize), from - offset);
      }
      return out;
    },
  };
  return source;
}

// ---- The cache -----------------------------------------------------------------------------

/** One model's records in IndexedDB, and the origin to fetch its bytes from. */
class ModelCache {
  /** Bytes the download still had to store when it started, for a QUOTA_EXCEEDED message. */
  private neededBytes: number | undefined;

  constructor(
    private readonly stores: CacheStores,
    private readonly id: string,
    private readonly origin: Origin,
    private readonly report: Report,
    private readonly options: OpenModelOptions,
  ) {}

  /** The manifest of the complete, checked model: from the cache, or after downloading it. */
  async complete(expected: string | undefined): Promise<ModelManifest> {
    const found = await get<ModelManifest>(this.id, this.stores.manifests);
    if (found && (!expected || found.sha256 === expected || (!found.sha256 && (await this.wholeFileMatches(found, expected))))) {
      const manifest = { ...found, sha256: found.sha256 ?? expected, lastUsed: Date.now() };
      await set(this.id, manifest, this.stores.manifests).catch(() => {}); // lastUsed is best effort, even with the disk full
      return manifest;
    }
    // A cached file with another hash is a different version: replace it.
    if (found) await deleteModelRecords(this.stores, this.id);
    return this.download(expected);
  }

  /** A chunk from IndexedDB, checked; fetched again from the origin when missing or corrupt. */
  async readVerified(index: number, sha256: string, chunkSize: number, size: number): Promise<Uint8Array> {
    const length = chunkLength(index, size, chunkSize);
    const record = await get<ChunkRecord>([this.id, index], this.stores.chunks);
    if (record) {
      const bytes = new Uint8Array(record.bytes);
      if (bytes.byteLength === length && (await sha256Hex(bytes)) === sha256) return bytes;
    }
    const bytes = await this.fetchChunk(index * chunkSize, length);
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) {
      throw new LanternError(
        'CHECKSUM_MISMATCH',
        `Chunk ${index} of ${this.id} was damaged in the browser's storage and the copy fetched again differs from the one cached; the file has changed at its source. Delete the cached model (deleteCachedModel) and load it again.`,
        { id: this.id, chunk: index },
      );
    }
    // The bytes are checked, so they are handed on even if storing the repair fails (a full disk).
    await set([this.id, index], { sha256, bytes: bytes.buffer as ArrayBuffer } satisfies ChunkRecord, this.stores.chunks).catch(() => {});
    return bytes;
  }

  /** Checks a cached model, chunk by chunk, against a whole-file hash. */
  private async wholeFileMatches(manifest: ModelManifest, expected: string): Promise<boolean> {
    const hasher = new Sha256();
    for (let index = 0; index < manifest.chunkSha256.length; index++) {
      hasher.update(await this.readVerified(index, manifest.chunkSha256[index], manifest.chunkSize, manifest.size));
      this.report('verify', Math.min(manifest.size, (index + 1) * manifest.chunkSize), manifest.size);
    }
    return hasher.hex() === expected;
  }

  /**
   * Downloads the file into chunks, resuming a download an earlier call or page left unfinished,
   * then writes the manifest.
   */
  private async download(expected: string | undefined): Promise<ModelManifest> {
    let pending = await get<DownloadRecord>(this.id, this.stores.downloads);
    const stored = pending ? await storedChunkIndices(this.stores, this.id) : [];
    // Chunks are written in order, so the first gap is where the download stopped.
    let next = 0;
    while (stored[next] === next) next++;
    const hashes: (string | undefined)[] = [];

    const retries = this.options.retries ?? DEFAULT_RETRIES;
    // Every chunk may be stored already, when a page closed just before the manifest was written.
    const allStored = pending?.size !== undefined && next >= Math.ceil(pending.size / pending.chunkSize);
    for (let attempt = 0; !allStored; attempt++) {
      try {
        const opened = await this.openOrigin(pending, next);
        if (opened.restart) hashes.length = 0;
        pending = await this.storeChunks(opened, hashes);
        break;
      } catch (e) {
        const retryable = e instanceof LanternError && e.code === 'FETCH_FAILED' && e.details?.retryable === true;
        if (!retryable || attempt >= retries || this.options.signal?.aborted) throw e;
        // A dropped connection: the chunks stored so far stay, the next attempt asks for the rest.
        pending = (await get<DownloadRecord>(this.id, this.stores.downloads)) ?? pending;
        const stored = await storedChunkIndices(this.stores, this.id);
        for (next = 0; stored[next] === next; ) next++;
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
      }
    }
    // Every chunk is stored, so the size is known: from the server, or from where the body ended.
    const record = pending as DownloadRecord & { size: number };
    const chunkSha256 = await this.sealChunks(record, hashes, expected);
    const now = Date.now();
    const manifest: ModelManifest = {
      id: this.id,
      url: record.url,
      size: record.size,
      chunkSize: record.chunkSize,
      chunkSha256,
      sha256: expected,
      etag: record.etag,
      lastModified: record.lastModified,
      createdAt: now,
      lastUsed: now,
    };
    await this.write(() => set(this.id, manifest, this.stores.manifests));
    await del(this.id, this.stores.downloads);
    return manifest;
  }

  /**
   * Starts reading the file at chunk `next`: a Range request for a URL that already has chunks
   * stored, the whole file otherwise. Checks the quota before any byte is stored.
   */
  private async openOrigin(pending: DownloadRecord | undefined, next: number): Promise<OpenedOrigin> {
    const chunkSize = pending?.chunkSize ?? this.options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!(Number.isInteger(chunkSize) && chunkSize >= 1024)) {
      throw new LanternError('BAD_ARGUMENT', `chunkSize must be a whole number of bytes, at least 1024, not ${chunkSize}.`);
    }
    if (this.origin.kind === 'made') {
      // Made as it is read: what is stored stays valid while the made file has the same size.
      const source = await this.origin.open();
      const restart = pending !== undefined && pending.size !== source.size;
      const record = restart || !pending ? { id: this.id, size: source.size, chunkSize, startedAt: Date.now() } : pending;
      const start = restart ? 0 : next * chunkSize;
      if (restart) await deleteModelRecords(this.stores, this.id);
      await this.prepareStorage(record, start, restart || !pending);
      return { record, restart, skip: 0, start, body: sourceStream(source, start, chunkSize), fromNetwork: true };
    }
    if (this.origin.kind === 'blob') {
      const { blob } = this.origin;
      const restart = pending !== undefined && pending.size !== blob.size;
      const record = restart || !pending ? { id: this.id, size: blob.size, chunkSize, startedAt: Date.now() } : pending;
      const start = restart ? 0 : next * chunkSize;
      // A different file under the same id: what is stored is of no use.
      if (restart) await deleteModelRecords(this.stores, this.id);
      await this.prepareStorage(record, start, restart || !pending);
      return { record, restart, skip: 0, start, body: blob.slice(start).stream(), fromNetwork: false };
    }

    const url = this.origin.url;
    const start = pending ? next * chunkSize : 0;
    const controller = new AbortController();
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, controller.signal]) : controller.signal;
    const response = await fetchOrThrow(url, start > 0 ? { headers: { Range: `bytes=${start}-` } } : {}, signal);
    try {
      const etag = response.headers.get('etag') ?? undefined;
      const lastModified = response.headers.get('last-modified') ?? undefined;
      /** The file's length as the server states it; undefined until the body ends, when it will not. */
      let size: number | undefined;
      let skip = 0;
      let restart = false;
      const contentRange = response.headers.get('content-range')?.trim();
      if (response.status === 206 && contentRange === undefined) {
        // Another origin that exposes no headers: the range is the one asked for, and its length is safelisted.
        const length = identityLength(response.headers);
        size = length === undefined ? undefined : start + length;
      } else if (response.status === 206) {
        const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(contentRange ?? '');
        if (!match || Number(match[1]) !== start) {
          throw new LanternError('FETCH_FAILED', `${url} answered a Range request from byte ${start} with "${contentRange}"; check the server's Range support.`);
        }
        size = match[2] === '*' ? undefined : Number(match[2]);
      } else {
        // A compressed body (gzip, br, zstd) comes without a length, or with the encoded one: ask.
        size = identityLength(response.headers) ?? (await probeFile(url, signal).catch(() => {
          if (signal.aborted) throw abortError();
          return { size: undefined };
        })).size;
        // Asked for a range and got the whole file: a server without Range support; skip what is stored.
        skip = start;
      }
      if (size === 0) throw new LanternError('FETCH_FAILED', `${url} is an empty file; check the address.`);
      const sizeChanged = pending?.size !== undefined && size !== undefined && pending.size !== size;
      if (pending && (sizeChanged || (pending.etag && etag && pending.etag !== etag) || (!pending.etag && pending.lastModified && lastModified && pending.lastModified !== lastModified))) {
        restart = true;
      }
      if (restart && response.status === 206) {
        // Changed at the source: the rest of this response belongs to the new file; start over.
        controller.abort();
        await deleteModelRecords(this.stores, this.id);
        return { ...(await this.openOrigin(undefined, 0)), restart: true };
      }
      const isNew = !pending || restart;
      // A download that began without a size learns it from this response.
      const record: DownloadRecord = isNew ? { id: this.id, url, size, chunkSize, etag, lastModified, startedAt: Date.now() } : { ...pending, size: pending.size ?? size };
      const from = restart ? 0 : start;
      // The file changed since the download started: what is stored is of no use.
      if (restart) await deleteModelRecords(this.stores, this.id);
      await this.prepareStorage(record, from, isNew || record.size !== pending?.size);
      return { record, restart, skip: restart ? 0 : skip, start: from, body: response.body!, fromNetwork: true };
    } catch (e) {
      controller.abort();
      throw e;
    }
  }

  /** Quota check (when the size is known), persistence request, and the download record written before the first chunk. */
  private async prepareStorage(record: DownloadRecord, start: number, changed: boolean): Promise<void> {
    const needed = record.size === undefined ? undefined : record.size - start;
    const estimate = needed === undefined ? undefined : await navigator.storage?.estimate?.().catch(() => undefined);
    if (needed !== undefined && estimate?.quota !== undefined && estimate.usage !== undefined) {
      const available = estimate.quota - estimate.usage;
      if (available < needed) {
        // Leave nothing behind; other models stay, deleting them is the user's call.
        await deleteModelRecords(this.stores, this.id);
        throw quotaError(this.id, needed, estimate);
      }
    }
    // Without persistence the browser may evict the cache under storage pressure; the answer
    // (often "no" until the site is bookmarked or installed) changes nothing here.
    if (!(await navigator.storage?.persisted?.().catch(() => false))) await navigator.storage?.persist?.().catch(() => false);
    this.neededBytes = needed;
    if (changed) await this.write(() => set(this.id, record, this.stores.downloads));
  }

  /**
   * Streams the body into chunks of record.chunkSize, hashes and stores each, one write in flight
   * while the next chunk fills. The body's end is the file's end: it gives the size when the server
   * did not, and corrects a stated one that was the length of an encoding. Returns the record,
   * with the size.
   */
  private async storeChunks(opened: OpenedOrigin, hashes: (string | undefined)[]): Promise<DownloadRecord> {
    let { record } = opened;
    const { chunkSize } = record;
    let size = record.size;
    const body = new PieceReader(opened.body);
    let index = opened.start / chunkSize;
    let received = opened.start;
    let writing: Promise<void> = Promise.resolve();
    /** The size while it is known and not yet passed. */
    const total = () => (size !== undefined && received <= size ? size : undefined);
    const onBytes = (n: number) => {
      received += n;
      if (opened.fromNetwork) this.report('download', received, total());
    };
    this.report('cache', received, size);
    if (opened.fromNetwork) this.report('download', received, size);
    try {
      // Body bytes that are stored already (a server that ignored the Range header), read and dropped.
      for (let skip = opened.skip; skip > 0; ) {
        const dropped = await this.readPiece(body, Math.min(skip, chunkSize), received, () => {});
        if (dropped.byteLength === 0) break;
        skip -= dropped.byteLength;
      }
      for (;;) {
        const bytes = await this.readPiece(body, chunkSize, received, onBytes);
        const ended = bytes.byteLength < chunkSize;
        // Short of a stated size, an ended body is a connection cut cleanly: keep only whole chunks.
        if (ended && size !== undefined && received < size) break;
        if (ended) size = received;
        if (bytes.byteLength > 0) {
          await writing; // at most one chunk waits for IndexedDB while the next arrives
          writing = this.storeChunk(index++, bytes, hashes, chunkSize, total());
          writing.catch(() => {});
        }
        if (ended) break;
      }
      await writing;
    } catch (e) {
      await writing; // the chunk being written still counts for the next attempt (or fails first)
      throw e;
    } finally {
      body.cancel();
    }
    if (size === undefined || received < size) {
      throw new LanternError(
        'FETCH_FAILED',
        `The download of ${this.id} ended at byte ${received}${size === undefined ? '' : ` of ${size}`}; loading it again resumes from there.`,
        { retryable: true, received },
      );
    }
    if (size === 0) throw new LanternError('FETCH_FAILED', `${this.id} is an empty file; check the address.`);
    if (opened.fromNetwork) this.report('download', received, size, true);
    if (record.size !== size) {
      record = { ...record, size };
      await this.write(() => set(this.id, record, this.stores.downloads));
    }
    return record;
  }

  private async readPiece(body: PieceReader, length: number, received: number, onBytes: (n: number) => void): Promise<Uint8Array> {
    try {
      return await body.read(length, onBytes);
    } catch (e) {
      if (this.options.signal?.aborted) throw abortError();
      throw new LanternError('FETCH_FAILED', `The download of ${this.id} broke off near byte ${received} (${(e as Error).message}); loading it again resumes from there.`, { retryable: true, received });
    }
  }

  /** `total` is the file's size, or undefined while the body has not ended. */
  private async storeChunk(index: number, bytes: Uint8Array, hashes: (string | undefined)[], chunkSize: number, total: number | undefined): Promise<void> {
    const sha256 = await sha256Hex(bytes);
    await this.write(() => set([this.id, index], { sha256, bytes: bytes.buffer as ArrayBuffer } satisfies ChunkRecord, this.stores.chunks));
    hashes[index] = sha256;
    this.report('cache', index * chunkSize + bytes.byteLength, total, true);
  }

  /**
   * The per-chunk hashes for the manifest. Chunks stored by an earlier visit are read back and
   * checked (refetched alone when bad); with an expected whole-file hash every chunk is read.
   */
  private async sealChunks(record: DownloadRecord & { size: number }, hashes: (string | undefined)[], expected: string | undefined): Promise<string[]> {
    const { size, chunkSize } = record;
    const count = Math.ceil(size / chunkSize);
    const hasher = expected ? new Sha256() : undefined;
    const sealed: string[] = [];
    for (let index = 0; index < count; index++) {
      const length = chunkLength(index, size, chunkSize);
      let sha256 = hashes[index];
      if (sha256 === undefined || hasher) {
        const chunk = await get<ChunkRecord>([this.id, index], this.stores.chunks);
        let bytes: Uint8Array | undefined = chunk && new Uint8Array(chunk.bytes);
        const actual = bytes && bytes.byteLength === length ? await sha256Hex(bytes) : undefined;
        if (actual === undefined || actual !== (sha256 ?? chunk!.sha256)) {
          bytes = await this.fetchChunk(index * chunkSize, length);
          await this.storeChunk(index, bytes, hashes, chunkSize, size);
        }
        sha256 = hashes[index] ?? actual!;
        hasher?.update(bytes!);
        if (hasher) this.report('verify', Math.min(size, (index + 1) * chunkSize), size);
      }
      sealed.push(sha256);
    }
    const actual = hasher?.hex();
    if (expected && actual !== expected) {
      await deleteModelRecords(this.stores, this.id);
      throw checksumError(actual!, expected);
    }
    return sealed;
  }

  /** One chunk from the origin: a Range request (or the whole file, sliced, without Range support). */
  private async fetchChunk(start: number, length: number): Promise<Uint8Array> {
    if (this.origin.kind === 'blob') return new Uint8Array(await this.origin.blob.slice(start, start + length).arrayBuffer());
    if (this.origin.kind === 'made') return (await this.origin.open()).read(start, length);
    const source = await rangeReader(this.origin.url, this.options.signal);
    return source(start, length);
  }

  /** An IndexedDB write; running out of space there is QUOTA_EXCEEDED, with this model removed. */
  private async write(put: () => Promise<unknown>): Promise<void> {
    try {
      await put();
    } catch (e) {
      if ((e as DOMException)?.name !== 'QuotaExceededError') throw e;
      await deleteModelRecords(this.stores, this.id).catch(() => {});
      throw quotaError(this.id, this.neededBytes, await navigator.storage?.estimate?.().catch(() => undefined));
    }
  }
}

interface OpenedOrigin {
  record: DownloadRecord;
  /** The file changed since the download began; stored chunks were discarded. */
  restart: boolean;
  /** Leading body bytes that are already stored (a server that ignored the Range header). */
  skip: number;
  /** File offset of the first byte stored from this body: a chunk boundary. */
  start: number;
  body: ReadableStream<Uint8Array>;
  fromNetwork: boolean;
}

/**
 * Reads a body in pieces of an exact size, each in a buffer of its own. A byte stream (a fetch
 * body in Chromium) is read with a BYOB reader straight into that buffer, so the stream pulls only
 * as fast as chunks are stored and no queue of network buffers builds up while IndexedDB writes.
 */
class PieceReader {
  private readonly byob: ReadableStreamBYOBReader | undefined;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** Bytes a default reader delivered beyond the last piece. */
  private carry: Uint8Array<ArrayBuffer> = new Uint8Array(0);

  constructor(private readonly stream: ReadableStream<Uint8Array>) {
    try {
      this.byob = stream.getReader({ mode: 'byob' });
    } catch {
      this.reader = stream.getReader(); // not a byte stream
    }
  }

  /** `length` bytes, or fewer where the body ends. */
  async read(length: number, onBytes: (n: number) => void): Promise<Uint8Array> {
    let buffer = new ArrayBuffer(length);
    let filled = 0;
    if (this.byob) {
      while (filled < length) {
        // The view's buffer is transferred to the stream and comes back in `value`.
        const { done, value } = await this.byob.read(new Uint8Array(buffer, filled, length - filled));
        if (value) buffer = value.buffer as ArrayBuffer;
        if (done || !value) break;
        filled += value.byteLength;
        onBytes(value.byteLength);
      }
      // A short piece (the body's end) gets a buffer of its own length: the buffer is what is stored.
      return filled === length ? new Uint8Array(buffer) : new Uint8Array(buffer, 0, filled).slice();
    }
    const out = new Uint8Array(buffer);
    while (filled < length) {
      if (this.carry.byteLength === 0) {
        const { done, value } = await this.reader!.read();
        if (done) break;
        this.carry = value as Uint8Array<ArrayBuffer>;
      }
      const take = Math.min(length - filled, this.carry.byteLength);
      out.set(this.carry.subarray(0, take), filled);
      this.carry = this.carry.subarray(take);
      filled += take;
      onBytes(take);
    }
    return filled === length ? out : out.slice(0, filled);
  }

  cancel(): void {
    (this.byob ?? this.reader)!.cancel().catch(() => {});
  }
}

/** A source's bytes from `start` to its end, as a stream pulled a piece of `pieceSize` at a time. */
function sourceStream(source: ByteSource, start: number, pieceSize: number): ReadableStream<Uint8Array> {
  let at = start;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (at >= source.size) return controller.close();
        const length = Math.min(pieceSize, source.size - at);
        controller.enqueue(await source.read(at, length));
        at += length;
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads [start, start + length) of a URL; tolerates servers that answer a Range request with 200. */
async function rangeReader(url: string, signal: AbortSignal | undefined) {
  return async (start: number, length: number): Promise<Uint8Array> => {
    const response = await fetchOrThrow(url, { headers: { Range: `bytes=${start}-${start + length - 1}` } }, signal);
    if (response.status === 206) {
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.byteLength === length) return bytes;
      throw new LanternError('FETCH_FAILED', `Asked ${url} for ${length} bytes at ${start} and got ${bytes.byteLength}; check the server's Range support.`);
    }
    // The whole file came back: keep only the slice, so memory stays at one chunk.
    const out = new Uint8Array(length);
    let at = 0;
    const reader = response.body!.getReader();
    try {
      while (at < start + length) {
        const { done, value } = await reader.read();
        if (done) break;
        const from = Math.max(start, at), to = Math.min(start + length, at + value.byteLength);
        if (from < to) out.set(value.subarray(from - at, to - at), from - start);
        at += value.byteLength;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    if (at < start + length) throw new LanternError('FETCH_FAILED', `${url} ended at byte ${at}, before byte ${start + length}; try again.`, { retryable: true });
    return out;
  };
}

async function fetchOrThrow(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
  // no-store: the HTTP cache would keep a second copy of a file that is already chunked in IndexedDB.
  return fetchChecked(url, { ...init, signal, cache: 'no-store' }).catch((e: unknown) => {
    throw signal?.aborted ? abortError() : e;
  });
}

function chunkLength(index: number, size: number, chunkSize: number): number {
  return Math.max(0, Math.min(chunkSize, size - index * chunkSize));
}

/**
 * Chrome's estimate() reports a fixed headroom (about 10 GiB) whatever the real limit, to resist
 * fingerprinting, so the browser refusing a write is the check that counts there; both say so.
 */
function quotaError(id: string, needed: number | undefined, estimate: StorageEstimate | undefined): LanternError {
  const mb = (n: number | undefined) => (n === undefined ? '?' : `${(n / 1e6).toFixed(1)} MB`);
  const quota = estimate?.quota;
  const usage = estimate?.usage;
  const available = quota !== undefined && usage !== undefined ? quota - usage : undefined;
  return new LanternError(
    'QUOTA_EXCEEDED',
    `${id} needs ${mb(needed)} of browser storage but the browser has less free for this site (it reports ${mb(available)} free: quota ${mb(quota)}, used ${mb(usage)}); free space by deleting cached models (deleteCachedModel) or other site data, or load it with cache: false.`,
    { id, neededBytes: needed, availableBytes: available, quotaBytes: quota, usageBytes: usage },
  );
}

function checksumError(actual: string, expected: string): LanternError {
  return new LanternError(
    'CHECKSUM_MISMATCH',
    `The model file's SHA-256 is ${actual}, not the expected ${expected}; the download is damaged or the file is another version. Check the address and the expected hash, then load it again.`,
    { actual, expected },
  );
}

function abortError(): LanternError {
  return new LanternError('ABORTED', 'Loading the model was cancelled; the part already downloaded stays cached and the next load resumes from it.');
}
