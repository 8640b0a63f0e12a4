/**
 * A static file server for built output (vite build) on 127.0.0.1, as a CDN or a plain web host
 * would serve it: content types, HEAD and Range requests (the model loader reads by range), and,
 * when asked, CORS headers so pages on other origins can load modules and models from it.
 */
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, resolve, sep } from 'node:path';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.gguf': 'application/octet-stream',
};

export interface StaticServer {
  /** e.g. http://127.0.0.1:41235 */
  origin: string;
  /** Paths of every GET and HEAD so far, oldest first. */
  requests: string[];
  /** Serves `body` at `path` instead of a file (a host page, or a changed file). */
  override(path: string, body: string | ((original: string) => string)): void;
  /** Serves the file at `path` again. */
  restore(path: string): void;
  close(): Promise<void>;
}

export async function startStaticServer(folder: string, options: { cors?: boolean } = {}): Promise<StaticServer> {
  const root = resolve(folder);
  const overrides = new Map<string, string | ((original: string) => string)>();
  const requests: string[] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (options.cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges');
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD');
        res.setHeader('Access-Control-Allow-Headers', 'Range');
        res.writeHead(204).end();
        return;
      }
    }
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const file = resolve(root, `.${path.endsWith('/') ? `${path}index.html` : path}`);
    if (file !== root && !file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return;
    }
    const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
    // Built files have hashed names; sw.js and index.html must be revalidated, as on a real host.
    res.setHeader('Cache-Control', 'no-cache');

    let body: Buffer;
    const override = overrides.get(path);
    try {
      if (typeof override === 'string') body = Buffer.from(override);
      else if (override) body = Buffer.from(override(await readFile(file, 'utf8')));
      else if ((await stat(file)).isFile()) body = await readFile(file);
      else throw new Error('not a file');
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }

    res.setHeader('Content-Type', type);
    res.setHeader('Accept-Ranges', 'bytes');
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = Math.min(range[2] ? Number(range[2]) : body.length - 1, body.length - 1);
      if (start > end) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': end - start + 1 });
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => res.writeHead(500).end(error.message));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    override: (path, body) => void overrides.set(path, body),
    restore: (path) => void overrides.delete(path),
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
