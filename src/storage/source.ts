import { LanternError } from '../errors.ts';

/**
 * Random access to a model file. The GGUF reader asks for the header first and then for tensor
 * data by byte range, so a file never has to sit whole in JS memory.
 */
export interface ByteSource {
  readonly size: number;
  /** Reads `length` bytes at `offset`; fails with TRUNCATED_FILE when the file is shorter. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Where each file lies when the source joins several (the parts of a split GGUF), in order. */
  readonly parts?: readonly SourcePart[];
}

/** One file of a joined source: its first byte's offset in the source, and its length. */
export interface SourcePart {
  offset: number;
  size: number;
}

/**
 * A file already in memory.
 *
 * @example
 * ```ts
 * import { bytesSource } from 'lantern';
 *
 * const source = bytesSource(new Uint8Array(await (await fetch('/models/model.gguf')).arrayBuffer()));
 * ```
 */
export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(offset, length, bytes.byteLength);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/**
 * A File or Blob, read slice by slice (e.g. from `<input type="file">`), never whole.
 *
 * @example
 * ```ts
 * import { blobSource } from 'lantern';
 *
 * const source = blobSource(fileInput.files![0]);
 * ```
 */
export function blobSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    async read(offset, length) {
      checkRange(offset, length, blob.size);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

/** "00002-of-00003" for index 1 of 3, as llama.cpp's gguf-split numbers the files of a split GGUF. */
export function splitName(k: number, count: number): string {
  return `${String(k + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}`;
}

/**
 * Several files read as one, end to end: the parts of a split GGUF. A read that crosses a part
 * boundary is assembled from both parts; `parts` says where each file begins.
 */
export function joinedSource(sources: readonly ByteSource[]): ByteSource {
  const parts: SourcePart[] = [];
  let size = 0;
  for (const source of sources) {
    parts.push({ offset: size, size: source.size });
    size += source.size;
  }
  return {
    size,
    parts,
    async read(offset, length) {
      checkRange(offset, length, size);
      const pieces: Uint8Array[] = [];
      for (let k = 0; k < parts.length && length > 0; k++) {
        const { offset: start, size: partSize } = parts[k];
        if (offset >= start + partSize) continue;
        const take = Math.min(length, start + partSize - offset);
        pieces.push(await sources[k].read(offset - start, take));
        offset += take;
        length -= take;
      }
      if (pieces.length === 1) return pieces[0];
      // [length] u8, from the end of one part and the start of the next.
      const out = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const piece of pieces) {
        out.set(piece, at);
        at += piece.byteLength;
      }
      return out;
    },
  };
}

/**
 * A file behind HTTP(S), read with Range requests; the size comes from probeFile(). A server
 * without Range support, or one that will not tell the size before the body, is read once, whole,
 * and held in memory: the only way to read such a file at random without a cache.
 *
 * @example
 * ```ts
 * import { urlSource } from 'lantern';
 *
 * const source = await urlSource('https://huggingface.co/…/resolve/main/model.gguf');
 * console.log(source.size);
 * ```
 */
export async function urlSource(url: string): Promise<ByteSource> {
  const { size, ranges } = await probeFile(url);
  if (size === undefined || !ranges) {
    const res = await fetchOrThrow(url, { cache: 'no-store' });
    return bytesSource(new Uint8Array(await res.arrayBuffer()));
  }
  if (size <= 0) throw new LanternError('FETCH_FAILED', `${url} is an empty file; check the address.`);
  return {
    size,
    async read(offset, length) {
      checkRange(offset, length, size);
      if (length === 0) return new Uint8Array(0);
      const res = await fetchOrThrow(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      let body: Uint8Array;
      try {
        body = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        // The connection broke during the body: worth another try, from the same range.
        throw new LanternError('FETCH_FAILED', `The connection to ${url} broke off while reading ${length} bytes at ${offset} (${(e as Error).message}); try again.`, { retryable: true });
      }
      // A server that ignores Range answers 200 with the whole file.
      if (res.status === 200 && body.byteLength === size) return body.subarray(offset, offset + length);
      if (body.byteLength !== length) {
        throw new LanternError('FETCH_FAILED', `Asked ${url} for ${length} bytes at ${offset} and got ${body.byteLength}; check that the server supports Range requests.`);
      }
      return body;
    },
  };
}

/** What a server says of a file before its body is read. */
export interface RemoteFile {
  /** The file's length in bytes; undefined when the server would not say. */
  size: number | undefined;
  /** Whether the server answers Range requests with the range (206). */
  ranges: boolean;
}

/**
 * How large the file at `url` is, asked without reading its body: first a one-byte Range request,
 * whose Content-Range ends in the length (Chromium asks for a range with Accept-Encoding: identity,
 * so a server that compresses whole files sends the range as it is), then HEAD. Either may come
 * back without a length, and HEAD with 405 or 501 or not at all: the size is then undefined, and
 * is learnt at the end of the body. A 404 or 410 fails with FETCH_FAILED and details.status.
 */
export async function probeFile(url: string, signal?: AbortSignal): Promise<RemoteFile> {
  const byRange = await rangeProbe(url, signal);
  if (byRange?.size !== undefined) return byRange;
  return { size: await headSize(url, signal), ranges: byRange?.ranges ?? false };
}

async function rangeProbe(url: string, signal: AbortSignal | undefined): Promise<RemoteFile | undefined> {
  const controller = new AbortController();
  let res: Response;
  try {
    res = await fetch(url, { headers: { Range: 'bytes=0-0' }, cache: 'no-store', signal: signal ? AbortSignal.any([signal, controller.signal]) : controller.signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    return undefined; // a CORS preflight that does not allow Range, say; HEAD may still answer
  }
  try {
    if (res.status === 206 || res.status === 416) {
      const total = /\/(\d+)$/.exec(res.headers.get('content-range')?.trim() ?? '');
      return { size: total ? Number(total[1]) : undefined, ranges: true };
    }
    if (res.ok) return { size: identityLength(res.headers), ranges: false };
    if (res.status === 404 || res.status === 410) throw httpError(url, res.status);
    return undefined;
  } finally {
    // The body is not wanted: one byte, or the whole file from a server that ignores Range.
    controller.abort();
  }
}

async function headSize(url: string, signal: AbortSignal | undefined): Promise<number | undefined> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'HEAD', cache: 'no-store', signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    return undefined; // some servers drop HEAD
  }
  if (res.status === 404 || res.status === 410) throw httpError(url, res.status);
  return res.ok ? identityLength(res.headers) : undefined; // 405 or 501: HEAD is not served
}

/**
 * Content-Length when it is the file's length: a body sent with Content-Encoding (gzip, br, zstd)
 * is decoded by the browser, and its Content-Length is that of the encoded bytes.
 */
export function identityLength(headers: Headers): number | undefined {
  const encoding = headers.get('content-encoding');
  const length = headers.get('content-length');
  if ((encoding !== null && encoding.trim().toLowerCase() !== 'identity') || length === null) return undefined;
  const n = Number(length);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * fetch that fails as a LanternError FETCH_FAILED: with details.retryable when the network failed,
 * with details.status when the server answered an error. When init.signal was aborted, fetch's
 * own AbortError passes through for the caller to report.
 */
export async function fetchOrThrow(url: string, init: RequestInit = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (init.signal?.aborted) throw e;
    throw new LanternError('FETCH_FAILED', `Could not reach ${url} (${(e as Error).message}); check the address and your connection, then try again.`, { retryable: true });
  }
  if (!res.ok) throw httpError(url, res.status);
  return res;
}

function httpError(url: string, status: number): LanternError {
  return new LanternError('FETCH_FAILED', `${url} answered HTTP ${status}; check the address, then try again.`, { status });
}

/** Fails with TRUNCATED_FILE when [offset, offset + length) does not lie inside a file of `size` bytes. */
export function checkRange(offset: number, length: number, size: number): void {
  if (offset < 0 || length < 0 || offset + length > size) {
    throw new LanternError(
      'TRUNCATED_FILE',
      `The model file ends at byte ${size} but ${offset + length} bytes were needed; the file is truncated, download it again.`,
      { offset, length, size },
    );
  }
}
