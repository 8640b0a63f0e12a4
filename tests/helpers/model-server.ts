/**
 * A model host for storage tests: serves files from memory on its own origin (so the page's
 * requests are cross-origin, as with Hugging Face), with Range support and CORS, records every
 * request, and can be told to drop a connection partway through a body or to ignore Range.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedRequest {
  method: string;
  path: string;
  /** The Range header, when the request had one. */
  range?: string;
  status: number;
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
  close(): Promise<void>;
}

export async function startModelServer(): Promise<ModelServer> {
  const files = new Map<string, { bytes: Uint8Array; etag: string }>();
  const drops = new Map<string, number>();
  const requests: ServedRequest[] = [];
  const server = createServer((req, res) => handle(req, res));
  const state = { ignoreRanges: false };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    res.setHeader('Access-Control-Allow-Origin', '*');
    // Without these the page cannot read the size, the range, or the file's identity.
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD');
      res.setHeader('Access-Control-Allow-Headers', 'Range, If-Range');
      res.statusCode = 204;
      res.end();
      return;
    }
    const record = (status: number) => requests.push({ method: req.method ?? '?', path, range: req.headers.range, status });
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
    record(res.statusCode);
    res.setHeader('Accept-Ranges', state.ignoreRanges ? 'none' : 'bytes');
    res.setHeader('ETag', file.etag);
    res.setHeader('Last-Modified', 'Sat, 01 Nov 2025 00:00:00 GMT');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = file.bytes.subarray(start, end + 1);
    const drop = drops.get(path);
    if (drop !== undefined) {
      drops.delete(path);
      // The close waits a little: an errored stream discards what the page has not read yet, and
      // the test wants the bytes sent to arrive.
      res.write(body.subarray(0, drop), () => setTimeout(() => res.destroy(), 500));
      return;
    }
    res.end(body);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    serve(path, bytes) {
      files.set(path, { bytes, etag: `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"` });
      return origin + path;
    },
    requests,
    requestsFor: (path) => requests.filter((r) => r.path === path),
    dropNext: (path, afterBytes) => drops.set(path, afterBytes),
    get ignoreRanges() {
      return state.ignoreRanges;
    },
    set ignoreRanges(value: boolean) {
      state.ignoreRanges = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
