/**
 * Models load from servers as they are (src/storage/open.ts, source.ts), in Chromium against the
 * model host (tests/helpers/model-server.ts) switched into each behaviour: compressed bodies with
 * no Content-Length (gzip, br, and zstd where this Node can compress it), HEAD without a length or
 * refused or dropped, no Range support, a stated length that is the compressed one, redirect
 * chains to another origin, and a connection dropped mid-body. Every load must hash right, and
 * what was requested is checked: the size is asked once, and a resume asks only for what is missing.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { ENCODINGS, startModelServer, type HeadBehaviour, type ModelServer } from './helpers/model-server.ts';
import { STORIES_GGUF } from './helpers/paths.ts';

const CHUNK = 64 << 10;
const STORIES = new Uint8Array(readFileSync(STORIES_GGUF));
const SIZE = STORIES.byteLength;
const STORIES_SHA256 = createHash('sha256').update(STORIES).digest('hex');
const CHUNKS = Math.ceil(SIZE / CHUNK);

let gpu: GpuPage;
let host: ModelServer;
/** A second origin: the CDN that the hub's URLs redirect to. */
let cdn: ModelServer;
/** Console errors other than the failures these tests cause on purpose. */
let pageErrors: string[] = [];

beforeAll(async () => {
  host = await startModelServer();
  cdn = await startModelServer();
  gpu = await openGpuPage();
  // Chromium logs refused HEADs and dropped connections as console errors, which openGpuPage
  // treats as fatal; here they are expected, and every other console error fails the test.
  gpu.page.removeAllListeners('console');
  gpu.page.on('console', (message) => {
    const expected = /net::ERR_(CONTENT_LENGTH_MISMATCH|INCOMPLETE_CHUNKED_ENCODING|EMPTY_RESPONSE|CONNECTION_CLOSED)|status of (405|501)/;
    if (message.type() === 'error' && !expected.test(message.text())) pageErrors.push(message.text());
  });
  if (!ENCODINGS.includes('zstd')) console.log(`node:zlib in Node ${process.versions.node} has no zstd: compressed downloads are tested with gzip and br`);
});
afterAll(async () => {
  await gpu?.close();
  await host?.close();
  await cdn?.close();
});
beforeEach(() => {
  for (const server of [host, cdn]) Object.assign(server, { ignoreRanges: false, compress: undefined, hideHeaders: false, compressedLength: false, head: 'normal' });
});
afterEach(() => {
  const errors = pageErrors;
  pageErrors = [];
  expect(errors).toEqual([]);
});

interface Progress {
  phase: string;
  loadedBytes: number;
  totalBytes: number | undefined;
}

interface Opened {
  error?: { code: string; message: string };
  events: Progress[];
  cached?: boolean;
  size?: number;
  /** SHA-256 of everything read through the source. */
  sha256?: string;
}

/** openModel() in the page, then the whole file read through the source in 256 KiB reads. */
function openAndRead(url: string, options: { retries?: number; cache?: boolean } = {}): Promise<Opened> {
  return gpu.evaluate(
    async ([url, options]) => {
      const { openModel } = await window.lanternImport('/src/storage/open.ts');
      const { Sha256 } = await window.lanternImport('/src/storage/sha256.ts');
      const events: Progress[] = [];
      try {
        const source = await openModel(url, { ...options, onProgress: (p: Progress) => events.push(p) });
        const hasher = new Sha256();
        for (let at = 0; at < source.size; at += 1 << 18) hasher.update(await source.read(at, Math.min(1 << 18, source.size - at)));
        return { events, cached: source.cached, size: source.size, sha256: hasher.hex() };
      } catch (e) {
        const { code, message } = e as { code: string; message: string };
        return { events, error: { code, message } };
      }
    },
    [url, { chunkSize: CHUNK, ...options }] as const,
  );
}

/** Chunk indices stored for `id`, and whether its download record and manifest exist. */
function storedFor(id: string): Promise<{ chunks: number[]; download: boolean; manifest: boolean }> {
  return gpu.evaluate(async (id) => {
    const cache = await window.lanternImport('/src/storage/cache.ts');
    const { get } = await window.lanternImport('/node_modules/idb-keyval/dist/index.js');
    const stores = await cache.openCacheStores();
    return {
      chunks: await cache.storedChunkIndices(stores, id),
      download: (await get(id, stores.downloads)) !== undefined,
      manifest: (await get(id, stores.manifests)) !== undefined,
    };
  }, id);
}

const COMPLETE = { chunks: Array.from({ length: CHUNKS }, (_, i) => i), download: false, manifest: true };

/**
 * A phase's events rise; every one states `total`, or, when it is 'learnt', none does until the
 * last, which may repeat the bytes of the one before to bring the size.
 */
function expectProgress(events: Progress[], phase: string, total: number | 'learnt'): void {
  const ofPhase = events.filter((e) => e.phase === phase);
  expect(ofPhase.length).toBeGreaterThanOrEqual(3);
  const rising = total === 'learnt' && ofPhase.at(-1)!.loadedBytes === ofPhase.at(-2)!.loadedBytes ? ofPhase.slice(0, -1) : ofPhase;
  for (let i = 1; i < rising.length; i++) expect(rising[i].loadedBytes).toBeGreaterThan(rising[i - 1].loadedBytes);
  expect(ofPhase.at(-1)).toEqual({ phase, loadedBytes: SIZE, totalBytes: SIZE });
  if (total === 'learnt') expect(ofPhase.slice(0, -1).every((e) => e.totalBytes === undefined)).toBe(true);
  else expect(ofPhase.every((e) => e.totalBytes === total)).toBe(true);
}

describe('a server that compresses the file', () => {
  it.each(ENCODINGS)('%s, chunked with no Content-Length: the size from a one-byte Range request, the body decoded and stored', async (encoding) => {
    host.compress = encoding;
    const path = `/compressed/${encoding}.gguf`;
    const opened = await openAndRead(host.serve(path, STORIES));
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    // The body came compressed; the probe's range came as it is (Chromium asks for identity).
    expect(host.requestsFor(path)).toEqual([
      { method: 'GET', path, range: undefined, status: 200, encoding },
      { method: 'GET', path, range: 'bytes=0-0', status: 206 },
    ]);
    expectProgress(opened.events, 'download', SIZE);
    expectProgress(opened.events, 'cache', SIZE);
    expect(await storedFor(host.origin + path)).toEqual(COMPLETE);
  });

  it('a connection dropped mid-body resumes with a Range request for the missing chunks only', async () => {
    host.compress = 'gzip';
    const path = '/compressed/dropped.gguf';
    const url = host.serve(path, STORIES);
    host.dropNext(path, 300_000);
    const failed = await openAndRead(url, { retries: 0 });
    expect(failed.error?.code).toBe('FETCH_FAILED');
    const kept = (await storedFor(url)).chunks.length;
    expect(kept).toBeGreaterThanOrEqual(1);
    expect(kept * CHUNK).toBeLessThanOrEqual(300_000);

    const opened = await openAndRead(url);
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(host.requestsFor(path).map((r) => [r.range, r.status])).toEqual([
      [undefined, 200],
      ['bytes=0-0', 206],
      [`bytes=${kept * CHUNK}-`, 206],
    ]);
    expect(opened.events.find((e) => e.phase === 'download')).toMatchObject({ loadedBytes: kept * CHUNK, totalBytes: SIZE });
  });

  it('and without Range support: the resume skips the stored part of the whole body; uncached, the file is read once', async () => {
    Object.assign(host, { compress: 'gzip', ignoreRanges: true });
    const path = '/compressed/no-ranges.gguf';
    const url = host.serve(path, STORIES);
    host.dropNext(path, 300_000);
    expect((await openAndRead(url, { retries: 0 })).error?.code).toBe('FETCH_FAILED');
    const kept = (await storedFor(url)).chunks.length;
    expect(kept).toBeGreaterThanOrEqual(1);
    const opened = await openAndRead(url);
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    // The compressed body is followed by the size probe, answered with the whole file as it is
    // (cut short); the resume asks with a Range header, so it too gets the file as it is, with its length.
    expect(host.requestsFor(path).map((r) => [r.range, r.status, r.encoding])).toEqual([
      [undefined, 200, 'gzip'],
      ['bytes=0-0', 200, undefined],
      [`bytes=${kept * CHUNK}-`, 200, undefined],
    ]);
    expect(opened.events.find((e) => e.phase === 'cache')).toEqual({ phase: 'cache', loadedBytes: kept * CHUNK, totalBytes: SIZE });
    expect(await storedFor(url)).toEqual(COMPLETE);

    const uncachedPath = '/compressed/no-ranges-uncached.gguf';
    const uncached = await openAndRead(host.serve(uncachedPath, STORIES), { cache: false });
    expect(uncached.sha256).toBe(STORIES_SHA256);
    expect(host.requestsFor(uncachedPath).map((r) => [r.range, r.status, r.encoding])).toEqual([
      ['bytes=0-0', 200, undefined],
      [undefined, 200, 'gzip'],
    ]);
  });

  it('a stated Content-Length that is the compressed one: the body runs past it and its end gives the size', async () => {
    // A host of pre-compressed files, whose Content-Encoding another origin cannot see.
    Object.assign(host, { compress: 'br', compressedLength: true });
    const path = '/compressed/stated.gguf';
    const opened = await openAndRead(host.serve(path, STORIES));
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(opened.size).toBe(SIZE);
    expect(host.requestsFor(path)).toEqual([{ method: 'GET', path, range: undefined, status: 200, encoding: 'br' }]);
    expect(opened.events.filter((e) => e.phase === 'download').at(-1)).toEqual({ phase: 'download', loadedBytes: SIZE, totalBytes: SIZE });
    expect(await storedFor(host.origin + path)).toEqual(COMPLETE);
  });

  it('without a cache, the file is read by range after a one-byte request gave its size', async () => {
    host.compress = 'gzip';
    const path = '/compressed/uncached.gguf';
    const opened = await openAndRead(host.serve(path, STORIES), { cache: false });
    expect(opened.error).toBeUndefined();
    expect(opened.cached).toBe(false);
    expect(opened.sha256).toBe(STORIES_SHA256);
    const requests = host.requestsFor(path);
    expect(requests[0]).toEqual({ method: 'GET', path, range: 'bytes=0-0', status: 206 });
    expect(requests.slice(1).every((r) => r.status === 206 && r.range !== undefined && r.encoding === undefined)).toBe(true);
    expect(requests.length - 1).toBe(Math.ceil(SIZE / (1 << 18)));
  });
});

describe('a server that will not say the size before the body', () => {
  // Compressed, and no headers exposed to other origins: neither the first body nor the one-byte
  // range gives a length (Content-Range is hidden), so the size comes from HEAD, or, where HEAD
  // does not give it, from the end of the body.
  const unsized = (head: HeadBehaviour) => Object.assign(host, { compress: 'gzip', hideHeaders: true, head });

  it('HEAD gives it', async () => {
    unsized('normal');
    const path = '/unsized/head.gguf';
    const opened = await openAndRead(host.serve(path, STORIES));
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(host.requestsFor(path).map((r) => [r.method, r.range, r.status])).toEqual([
      ['GET', undefined, 200],
      ['GET', 'bytes=0-0', 206],
      ['HEAD', undefined, 200],
    ]);
    expectProgress(opened.events, 'download', SIZE);
  });

  it.each<HeadBehaviour>(['no-length', 405, 501, 'drop'])('HEAD answers %s: stored as it streams, progress without a total until the end', async (head) => {
    unsized(head);
    const path = `/unsized/${head}.gguf`;
    const url = host.serve(path, STORIES);
    const opened = await openAndRead(url);
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(opened.size).toBe(SIZE);
    const requests = host.requestsFor(path).map((r) => [r.method, r.range, r.status]);
    expect(requests.filter(([method]) => method === 'GET')).toEqual([
      ['GET', undefined, 200],
      ['GET', 'bytes=0-0', 206],
    ]);
    // Chromium sends a request again (a few times) when a connection closes without an answer.
    const heads = requests.filter(([method]) => method === 'HEAD');
    if (head === 'drop') expect(heads.length).toBeGreaterThanOrEqual(1);
    else expect(heads.length).toBe(1);
    expect(heads.every(([, , status]) => status === (typeof head === 'number' ? head : 200))).toBe(true);
    expectProgress(opened.events, 'download', 'learnt');
    expectProgress(opened.events, 'cache', 'learnt');
    expect(await storedFor(url)).toEqual(COMPLETE);
    // Cached: the next load needs no request and knows the size from the start.
    const before = host.requests.length;
    const again = await openAndRead(url);
    expect(again.sha256).toBe(STORIES_SHA256);
    expect(host.requests.length).toBe(before);
    expect(again.events.every((e) => e.totalBytes === SIZE)).toBe(true);
  });

  it("a dropped connection: the retry asks for the missing chunks only, and the range's length gives the size", async () => {
    unsized(405);
    const path = '/unsized/dropped.gguf';
    const url = host.serve(path, STORIES);
    host.dropNext(path, 400_000);
    const failed = await openAndRead(url, { retries: 0 });
    expect(failed.error?.code).toBe('FETCH_FAILED');
    expect(failed.events.every((e) => e.totalBytes === undefined)).toBe(true);
    const stored = await storedFor(url);
    const kept = stored.chunks.length;
    expect(kept).toBeGreaterThanOrEqual(1);
    expect(kept * CHUNK).toBeLessThanOrEqual(400_000);
    expect(stored).toEqual({ chunks: Array.from({ length: kept }, (_, i) => i), download: true, manifest: false });

    const opened = await openAndRead(url);
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(host.requestsFor(path).map((r) => [r.method, r.range, r.status])).toEqual([
      ['GET', undefined, 200],
      ['GET', 'bytes=0-0', 206],
      ['HEAD', undefined, 405],
      ['GET', `bytes=${kept * CHUNK}-`, 206],
    ]);
    expect(opened.events.find((e) => e.phase === 'cache')).toEqual({ phase: 'cache', loadedBytes: kept * CHUNK, totalBytes: SIZE });
    expect(await storedFor(url)).toEqual(COMPLETE);
  });

  it('without a cache, the file is read once, whole', async () => {
    unsized('no-length');
    const path = '/unsized/uncached.gguf';
    const opened = await openAndRead(host.serve(path, STORIES), { cache: false });
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(host.requestsFor(path).map((r) => [r.method, r.range, r.status])).toEqual([
      ['GET', 'bytes=0-0', 206],
      ['HEAD', undefined, 200],
      ['GET', undefined, 200],
    ]);
  });
});

describe('a redirecting CDN', () => {
  it('a hub URL that redirects twice, to another origin: downloads, repairs and resumes through it, cached under the hub URL', async () => {
    // As the Hugging Face hub: resolve/main/… answers 302 to a signed URL, here 307 on to the CDN.
    const file = '/xet/stories260K.gguf';
    const resolve = '/user/model/resolve/main/stories260K.gguf';
    cdn.serve(file, STORIES);
    host.redirect(resolve, '/signed/stories260K.gguf?sig=1', 302);
    host.redirect('/signed/stories260K.gguf', `${cdn.origin}${file}?sig=2`, 307);
    const url = host.origin + resolve;
    cdn.dropNext(file, 500_000);
    const opened = await openAndRead(url);
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    // The retry after the drop asks the CDN, through the hub, for the missing part only.
    const ranges = cdn.requestsFor(file).map((r) => r.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[0]).toBeUndefined();
    const resumeAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    expect(resumeAt % CHUNK).toBe(0);
    expect(resumeAt).toBeGreaterThanOrEqual(CHUNK);
    expect(resumeAt).toBeLessThanOrEqual(500_000);
    expect(host.requestsFor(resolve).map((r) => r.status)).toEqual([302, 302]);
    expect(await storedFor(url)).toEqual(COMPLETE);

    // A chunk lost from IndexedDB is fetched again alone, through the redirects.
    await gpu.evaluate(async (id) => {
      const cache = await window.lanternImport('/src/storage/cache.ts');
      const { del } = await window.lanternImport('/node_modules/idb-keyval/dist/index.js');
      await del([id, 5], (await cache.openCacheStores()).chunks);
    }, url);
    const before = cdn.requests.length;
    const repaired = await openAndRead(url);
    expect(repaired.sha256).toBe(STORIES_SHA256);
    expect(cdn.requests.slice(before)).toEqual([{ method: 'GET', path: file, range: `bytes=${5 * CHUNK}-${6 * CHUNK - 1}`, status: 206 }]);
  });

  it('without a cache, and to a CDN that compresses: read by range through the redirect', async () => {
    cdn.compress = 'br';
    const file = '/xet/uncached.gguf';
    const resolve = '/user/model/resolve/main/uncached.gguf';
    cdn.serve(file, STORIES);
    host.redirect(resolve, `${cdn.origin}${file}`, 302);
    const opened = await openAndRead(host.origin + resolve, { cache: false });
    expect(opened.error).toBeUndefined();
    expect(opened.sha256).toBe(STORIES_SHA256);
    expect(cdn.requestsFor(file).every((r) => r.status === 206)).toBe(true);
  });
});
