/**
 * A model host for storage tests: serves files from memory on its own origin (so the page's
 * requests are cross-origin, as with Hugging Face), with Range support and CORS, records every
 * request, and can be told to drop a connection partway through a body or to ignore Range. It can
 * also behave as servers do in the wild: compress bodies (gzip, br, zstd where Node has it) with no
 * Content-Length, answer HEAD without a length or not at all, and redirect, to another origin too.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

export type Encoding = 'gzip' | 'br' | 'zstd';

/** The encodings this Node can compress with: zstd came to node:zlib in Node 22.15 and 23.8. */
export const ENCODINGS: Encoding[] = ['gzip', 'br', ...(typeof zlib.createZstdCompress === 'function' ? (['zstd'] as const) : [])];

/** Brotli's default quality (11) takes seconds per megabyte; web servers compress on the fly at about 4. */
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } };

/** How HEAD is answered: as GET without a body, without a Content-Length, with 405 or 501, or by closing the connection. */
export type HeadBehaviour = 'normal' | 'no-length' | 405 | 501 | 'drop';

export interface ServedRequest {
  method: string;
  path: string;
  /** The Range header, when the request had one. */
  range?: string;
  status: number;
  /** The Content-Encoding the answer was sent with, when compressed. */
  encoding?: Encoding;
}

export interface ModelServer {
  /** e.g. http://127.0.0.1:41235 */
  origin: string;
  /** Serves `bytes` at `path` (e.g. '/stories.gguf') with a strong ETag; returns its URL. */
  serve(path: string, bytes: Uint8Array): string;
  /** Every GET and HEAD so far (preflight OPTIONS are not counted), oldest first. */
  requests: ServedRequest[];
  /** GET and HEAD requests for one path. */
  requestsFor(path: string): ServedRequest[];
  /** The next GET of `path` sends `afterBytes` bytes of its body, then drops the connection. */
  dropNext(path: string, afterBytes: number): void;
  /** Answer Range requests with the whole file (status 200), as some servers do. */
  ignoreRanges: boolean;
  /**
   * Compress every GET body of 1 KiB or more whose request accepts this encoding (as Vite's preview
   * and most web servers do): chunked, with no Content-Length, and Content-Encoding not exposed to
   * other origins. Chromium asks for ranges with Accept-Encoding: identity, so those go as they are.
   */
  compress: Encoding | undefined;
  /** Expose no response headers to other origins (no Access-Control-Expose-Headers), as many hosts do. */
  hideHeaders: boolean;
  /** With `compress`: send the Content-Length of the compressed bytes, as a host of pre-compressed files does. */
  compressedLength: boolean;
  head: HeadBehaviour;
  /** GET and HEAD of `path` answer `status` with Location `to` (a path here, or a URL elsewhere). */
  redirect(path: string, to: string, status?: 301 | 302 | 303 | 307 | 308): void;
  close(): Promise<void>;
}

export async function startModelServer(): Promise<ModelServer> {
  const files = new Map<string, { bytes: Uint8Array; etag: string }>();
  const drops = new Map<string, number>();
  const requests: ServedRequest[] = [];
  const server = createServer((req, res) => handle(req, res));
  const redirects = new Map<string, { to: string; status: number }>();
  /** What the test switches; the returned object is this one, so handle() sees each change. */
  const state: Pick<ModelServer, 'ignoreRanges' | 'compress' | 'hideHeaders' | 'compressedLength' | 'head'> = {
    ignoreRanges: false,
    compress: undefined,
    hideHeaders: false,
    compressedLength: false,
    head: 'normal',
  };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('Access-Control-Allow-Origin', '*');
    // Without these the page cannot read the size, the range, or the file's identity.
    if (!state.hideHeaders) res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD');
      res.setHeader('Access-Control-Allow-Headers', 'Range, If-Range');
      res.statusCode = 204;
      res.end();
      return;
    }
    const record = (status: number, encoding?: Encoding) =>
      requests.push({ method: req.method ?? '?', path, range: req.headers.range, status, ...(encoding && { encoding }) });
    const redirect = redirects.get(path);
    if (redirect) {
      record(redirect.status);
      res.writeHead(redirect.status, { Location: redirect.to }).end();
      return;
    }
    if (req.method === 'HEAD' && state.head !== 'normal' && files.has(path)) {
      record(typeof state.head === 'number' ? state.head : 200);
      if (state.head === 'drop') req.socket.destroy();
      else if (state.head === 'no-length') res.writeHead(200, { 'Transfer-Encoding': 'chunked' }).end();
      else res.writeHead(state.head).end();
      return;
    }
    const file = files.get(path);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      record(404);
      res.statusCode = 404;
      res.end();
      return;
    }
    const size = file.bytes.byteLength;
    let start = 0;
    let end = size - 1;
    const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (match && !state.ignoreRanges) {
      start = Number(match[1]);
      if (match[2]) end = Math.min(Number(match[2]), size - 1);
      if (start > end) {
        record(416);
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    } else {
      res.statusCode = 200;
    }
    const body = file.bytes.subarray(start, end + 1);
    const accepted = String(req.headers['accept-encoding'] ?? '').split(',').map((e) => e.trim().split(';')[0]);
    const encoding = req.method === 'GET' && state.compress && accepted.includes(state.compress) && body.byteLength >= 1024 ? state.compress : undefined;
    record(res.statusCode, encoding);
    res.setHeader('Accept-Ranges', state.ignoreRanges ? 'none' : 'bytes');
    res.setHeader('ETag', file.etag);
    res.setHeader('Last-Modified', 'Sat, 01 Nov 2025 00:00:00 GMT');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    const drop = drops.get(path);
    if (drop !== undefined && req.method === 'GET') drops.delete(path);
    if (encoding) {
      res.setHeader('Content-Encoding', encoding);
      sendCompressed(res, body, encoding, drop);
      return;
    }
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (drop !== undefined) {
      // The close waits a little: an errored stream discards what the page has not read yet, and
      // the test wants the bytes sent to arrive.
      res.write(body.subarray(0, drop), () => setTimeout(() => res.destroy(), 500));
      return;
    }
    res.end(body);
  }

  /** The body compressed; with `drop`, only that many bytes of it (before compression), then the connection closes. */
  function sendCompressed(res: ServerResponse, body: Uint8Array, encoding: Encoding, drop: number | undefined): void {
    if (state.compressedLength && drop === undefined) {
      const compressed = encoding === 'gzip' ? zlib.gzipSync(body) : encoding === 'br' ? zlib.brotliCompressSync(body, BROTLI) : zlib.zstdCompressSync(body);
      res.setHeader('Content-Length', String(compressed.byteLength));
      res.end(compressed);
      return;
    }
    const compressor = encoding === 'gzip' ? zlib.createGzip() : encoding === 'br' ? zlib.createBrotliCompress(BROTLI) : zlib.createZstdCompress();
    compressor.pipe(res); // no Content-Length: Node sends it chunked
    if (drop === undefined) {
      compressor.end(body);
      return;
    }
    compressor.write(body.subarray(0, drop));
    compressor.flush(() => setTimeout(() => res.destroy(), 500));
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    origin,
    serve(path: string, bytes: Uint8Array) {
      files.set(path, { bytes, etag: `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"` });
      return origin + path;
    },
    requests,
    requestsFor: (path: string) => requests.filter((r) => r.path === path),
    dropNext: (path: string, afterBytes: number) => void drops.set(path, afterBytes),
    redirect: (path: string, to: string, status = 302) => void redirects.set(path, { to, status }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) satisfies ModelServer;
}
