import { del, get, set } from 'idb-keyval';
import { LanternError } from '../errors.ts';
import { type CacheStores, type ChunkRecord, type DownloadRecord, type ModelManifest, deleteModelRecords, storedChunkIndices } from './cache.ts';
import type { Origin } from './inputs.ts';
import type { OpenModelOptions } from './open.ts';
import type { Report } from './progress.ts';
import { Sha256, sha256Hex } from './sha256.ts';
import { type ByteSource, fetchOrThrow as fetchChecked, identityLength, probeFile } from './source.ts';

/**
 * The chunk cache of one model in IndexedDB: a download (or a made file) stored in chunks, each
 * with its SHA-256, resumed from the first missing chunk, and read back checked.
 */

export const DEFAULT_CHUNK_SIZE = 4 << 20;
const DEFAULT_RETRIES = 3;

/** One model's records in IndexedDB, and the origin to fetch its bytes from. */
export class ModelCache {
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
export function sourceStream(source: ByteSource, start: number, pieceSize: number): ReadableStream<Uint8Array> {
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

export async function fetchOrThrow(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
  // no-store: the HTTP cache would keep a second copy of a file that is already chunked in IndexedDB.
  return fetchChecked(url, { ...init, signal, cache: 'no-store' }).catch((e: unknown) => {
    throw signal?.aborted ? abortError() : e;
  });
}

export function chunkLength(index: number, size: number, chunkSize: number): number {
  return Math.max(0, Math.min(chunkSize, size - index * chunkSize));
}

/**
 * Chrome's estimate() reports a fixed headroom (about 10 GiB) whatever the real limit, to resist
 * fingerprinting, so the browser refusing a write is the check that counts there; both say so.
 */
export function quotaError(id: string, needed: number | undefined, estimate: StorageEstimate | undefined): LanternError {
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

export function checksumError(actual: string, expected: string): LanternError {
  return new LanternError(
    'CHECKSUM_MISMATCH',
    `The model file's SHA-256 is ${actual}, not the expected ${expected}; the download is damaged or the file is another version. Check the address and the expected hash, then load it again.`,
    { actual, expected },
  );
}

export function abortError(): LanternError {
  return new LanternError('ABORTED', 'Loading the model was cancelled; the part already downloaded stays cached and the next load resumes from it.');
}
