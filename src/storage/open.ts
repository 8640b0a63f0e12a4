import { get } from 'idb-keyval';
import { LanternError } from '../errors.ts';
import { type CacheStores, type DownloadRecord, type ModelManifest, openCacheStores } from './cache.ts';
import { abortError, checksumError, DEFAULT_CHUNK_SIZE, fetchOrThrow, ModelCache, sourceStream } from './chunk-cache.ts';
import { describeParts, type ModelInput, type Origin } from './inputs.ts';
import { type LoadProgress, progressReporter, type Report, summedReporter } from './progress.ts';
import { Sha256 } from './sha256.ts';
import { type ByteSource, blobSource, bytesSource, checkRange, identityLength, joinedSource, probeFile, splitName, urlSource } from './source.ts';

export { DEFAULT_CHUNK_SIZE } from './chunk-cache.ts';
export type { MadeFile, ModelInput } from './inputs.ts';
export type { LoadPhase, LoadProgress } from './progress.ts';

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

function checkExpectedSha256(hex: string | undefined): string | undefined {
  if (hex === undefined) return undefined;
  const normalized = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(normalized)) {
    throw new LanternError('BAD_ARGUMENT', `expectedSha256 must be 64 hex digits, not "${hex}"; copy it from the model's page.`);
  }
  return normalized;
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

