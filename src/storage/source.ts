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

export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(offset, length, bytes.byteLength);
      return bytes.subarray(offset, offset + length);
    },
  };
}

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

/** A file behind HTTP(S), read with Range requests; the size comes from a HEAD request. */
export async function urlSource(url: string): Promise<ByteSource> {
  const head = await fetchOrThrow(url, { method: 'HEAD' });
  const size = Number(head.headers.get('content-length'));
  if (!Number.isFinite(size) || size <= 0) {
    throw new LanternError('FETCH_FAILED', `The server for ${url} did not report the file's size; serve it with a Content-Length header.`);
  }
  return {
    size,
    async read(offset, length) {
      checkRange(offset, length, size);
      if (length === 0) return new Uint8Array(0);
      const res = await fetchOrThrow(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      const body = new Uint8Array(await res.arrayBuffer());
      // A server that ignores Range answers 200 with the whole file.
      if (res.status === 200 && body.byteLength === size) return body.subarray(offset, offset + length);
      if (body.byteLength !== length) {
        throw new LanternError('FETCH_FAILED', `Asked ${url} for ${length} bytes at ${offset} and got ${body.byteLength}; check that the server supports Range requests.`);
      }
      return body;
    },
  };
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
  if (!res.ok) throw new LanternError('FETCH_FAILED', `${url} answered HTTP ${res.status}; check the address, then try again.`, { status: res.status });
  return res;
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
