/**
 * Split GGUFs (llama.cpp's gguf-split: NAME-00001-of-0000N.gguf ...) load as one model: the parts
 * written by scripts/lib/gguf-writer.ts splitGGUF read back as the unsplit file (Node), llama.cpp
 * loads them from the first part (proof that the layout is gguf-split's), and in Chromium they
 * download through the IndexedDB cache from the first part's URL and generate the reference tokens.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { splitGGUF } from '../scripts/lib/gguf-writer.ts';
import { restoreModel } from '../scripts/lib/model-writer.ts';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { LanternError } from '../src/errors.ts';
import { GGMLType, type GGUFFile, readGGUF } from '../src/model/gguf.ts';
import { openModel } from '../src/storage/open.ts';
import { type ByteSource, bytesSource, joinedSource } from '../src/storage/source.ts';
import { startModelServer, type ModelServer } from './helpers/model-server.ts';
import { STORIES_GGUF, STORIES_REFERENCE } from './helpers/paths.ts';
import { disposeLlamaCpp, llamaCppGreedy } from './oracle/llamacpp.ts';

const STORIES = new Uint8Array(readFileSync(STORIES_GGUF));
const REFERENCE = JSON.parse(readFileSync(STORIES_REFERENCE, 'utf8')) as { prompt_ids: number[]; generated_ids: number[] };
const GREEDY_TOKENS = 16;
const CHUNK = 64 << 10;

let stories: GGUFFile;
/** stories260K re-stored as Q8_0 (so the parts hold more than one tensor type), and its 3 parts. */
let q8: Uint8Array;
let q8Parts: Uint8Array[];
/** stories260K as it is (F32, whose greedy tokens the reference gives), in 3 parts. */
let storiesParts: Uint8Array[];
let dir: string;

beforeAll(async () => {
  stories = await readGGUF(bytesSource(STORIES));
  q8 = restoreModel(stories, STORIES, GGMLType.Q8_0);
  q8Parts = await splitGGUF(q8, 3);
  storiesParts = await splitGGUF(STORIES, 3);
  dir = mkdtempSync(join(tmpdir(), 'lantern-split-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await disposeLlamaCpp();
});

async function caught(work: Promise<unknown>): Promise<LanternError> {
  try {
    await work;
  } catch (e) {
    if (e instanceof LanternError) return e;
    throw e;
  }
  throw new Error('expected a LanternError');
}

async function tensorBytes(source: ByteSource, file: GGUFFile): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const t of file.tensors) out.set(t.name, new Uint8Array(await source.read(t.offset, t.nBytes)));
  return out;
}

describe('split GGUF, read in Node', () => {
  it('3 parts read back as the unsplit file: the same tensors, types, dims and bytes', async () => {
    const whole = await readGGUF(bytesSource(q8));
    const source = joinedSource(q8Parts.map(bytesSource));
    const split = await readGGUF(source);
    expect(q8Parts).toHaveLength(3);
    expect(split.metadata.get('split.count')).toBe(3);
    // Each part holds a third of the tensors, as `llama-gguf-split --split-max-tensors 16` makes them.
    const perPart = source.parts!.map(({ offset, size }) => split.tensors.filter((t) => t.offset >= offset && t.offset + t.nBytes <= offset + size).length);
    expect(perPart).toEqual([16, 16, whole.tensors.length - 32]);
    expect(split.tensors.map(({ name, type, dims, nBytes }) => ({ name, type, dims, nBytes }))).toEqual(
      whole.tensors.map(({ name, type, dims, nBytes }) => ({ name, type, dims, nBytes })),
    );
    // Q8_0 weights, F16 where rows are not whole blocks, F32 norms: the parts mix types.
    expect([...new Set(split.tensors.map((t) => t.type))].sort()).toEqual([GGMLType.F32, GGMLType.F16, GGMLType.Q8_0]);
    expect(await tensorBytes(source, split)).toEqual(await tensorBytes(bytesSource(q8), whole));
    // The model's metadata is the first part's; only the split keys are added.
    const added = [...split.metadata.keys()].filter((k) => !whole.metadata.has(k));
    expect(added).toEqual(['split.no', 'split.count', 'split.tensors.count']);
    for (const [key, value] of whole.metadata) expect(split.metadata.get(key)).toEqual(value);
  });

  it('a missing part, parts out of order, or a lone first part: BAD_MODEL_FILE naming the part', async () => {
    const missing = await caught(readGGUF(joinedSource(q8Parts.slice(0, 2).map(bytesSource))));
    expect(missing.code).toBe('BAD_MODEL_FILE');
    expect(missing.message).toContain('part 00003-of-00003 is missing');
    const swapped = await caught(readGGUF(joinedSource([q8Parts[0], q8Parts[2], q8Parts[1]].map(bytesSource))));
    expect(swapped.code).toBe('BAD_MODEL_FILE');
    expect(swapped.message).toContain('should be part 00002-of-00003');
    const lone = await caught(readGGUF(bytesSource(q8Parts[0])));
    expect(lone.code).toBe('BAD_MODEL_FILE');
    expect(lone.message).toContain('only 1 was given');
  });

  it('openModel takes all the Files of a split model in any order, and names a missing one', async () => {
    const files = q8Parts.map((p, k) => new File([p as Uint8Array<ArrayBuffer>], `stories-q8-0000${k + 1}-of-00003.gguf`));
    // Node has no IndexedDB: the parts are read directly.
    const source = await openModel([files[2], files[0], files[1]]);
    expect(source.cached).toBe(false);
    expect(source.parts).toEqual([
      { offset: 0, size: q8Parts[0].byteLength },
      { offset: q8Parts[0].byteLength, size: q8Parts[1].byteLength },
      { offset: q8Parts[0].byteLength + q8Parts[1].byteLength, size: q8Parts[2].byteLength },
    ]);
    const split = await readGGUF(source);
    expect(await tensorBytes(source, split)).toEqual(await tensorBytes(bytesSource(q8), await readGGUF(bytesSource(q8))));

    const missing = await caught(openModel([files[0], files[2]]));
    expect(missing.code).toBe('BAD_MODEL_FILE');
    expect(missing.message).toContain('Part 00002-of-00003');
    const notFirst = await caught(openModel('http://127.0.0.1:9/m-00002-of-00003.gguf'));
    expect(notFirst.code).toBe('BAD_ARGUMENT');
    expect(notFirst.message).toContain('load the first part');
  });
});

describe('split GGUF in llama.cpp', () => {
  it('llama.cpp loads the parts from the first and decodes the reference tokens', async () => {
    storiesParts.forEach((p, k) => writeFileSync(join(dir, `stories260K-0000${k + 1}-of-00003.gguf`), p));
    const ids = await llamaCppGreedy(join(dir, 'stories260K-00001-of-00003.gguf'), REFERENCE.prompt_ids, GREEDY_TOKENS);
    expect(ids).toEqual(REFERENCE.generated_ids.slice(0, GREEDY_TOKENS));
  });
});

describe('split GGUF in the browser, through the cache', () => {
  let gpu: GpuPage;
  let server: ModelServer;
  /** Console errors other than the 404 of the part that is missing on purpose. */
  let pageErrors: string[] = [];
  const paths = [1, 2, 3].map((k) => `/models/split/stories260K-0000${k}-of-00003.gguf`);
  const total = () => storiesParts.reduce((n, p) => n + p.byteLength, 0);

  beforeAll(async () => {
    server = await startModelServer();
    gpu = await openGpuPage();
    // Chromium logs a 404 as a console error, which openGpuPage treats as fatal; one is expected here.
    gpu.page.removeAllListeners('console');
    gpu.page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 404/.test(message.text())) pageErrors.push(message.text());
    });
  });
  afterEach(() => {
    expect(pageErrors).toEqual([]);
    pageErrors = [];
  });
  afterAll(async () => {
    await gpu?.close();
    await server?.close();
  });

  interface Progress {
    phase: string;
    loadedBytes: number;
    totalBytes: number;
  }

  /** openModel() from the first part's URL, then Runtime.load and greedy tokens, in the page. */
  function loadAndGenerate(url: string): Promise<{ ids: number[]; events: Progress[]; cached: boolean; parts: number }> {
    return gpu.evaluate(
      async ([url, chunkSize, promptIds, n]) => {
        const { openModel } = await window.lanternImport('/src/storage/open.ts');
        const { Runtime } = await window.lanternImport('/src/runtime/runtime.ts');
        const events: Progress[] = [];
        const source = await openModel(url, { chunkSize, onProgress: (p: Progress) => events.push(p) });
        const runtime = await Runtime.load(navigator.gpu, source, { contextLength: 32 });
        source.uploadDone();
        const ids: number[] = [];
        for await (const token of runtime.generate(promptIds, { maxTokens: n, temperature: 0 })) if (token.id >= 0) ids.push(token.id);
        return { ids, events, cached: source.cached, parts: source.parts?.length ?? 1 };
      },
      [url, CHUNK, REFERENCE.prompt_ids, GREEDY_TOKENS] as const,
    );
  }

  it('loads from the first part, with progress summed over the parts, and generates the reference tokens', async () => {
    const urls = paths.map((path, k) => server.serve(path, storiesParts[k]));
    // One part missing on the server: BAD_MODEL_FILE that names it, before any byte is stored.
    server.serve('/models/gap/stories260K-00001-of-00003.gguf', storiesParts[0]);
    server.serve('/models/gap/stories260K-00002-of-00003.gguf', storiesParts[1]);
    const gap = await gpu.evaluate(async (url) => {
      const { openModel } = await window.lanternImport('/src/storage/open.ts');
      try {
        await openModel(url);
        return undefined;
      } catch (e) {
        return { code: (e as { code: string }).code, message: (e as Error).message };
      }
    }, urls[0].replace('/split/', '/gap/'));
    expect(gap?.code).toBe('BAD_MODEL_FILE');
    expect(gap?.message).toContain('Part 00003-of-00003');

    const result = await loadAndGenerate(urls[0]);
    expect(result.cached).toBe(true);
    expect(result.parts).toBe(3);
    expect(result.ids).toEqual(REFERENCE.generated_ids.slice(0, GREEDY_TOKENS));
    // Each part: its size asked once (a one-byte range), then downloaded once, whole.
    for (const path of paths) {
      expect(server.requestsFor(path)).toEqual([
        { method: 'GET', path, range: 'bytes=0-0', status: 206 },
        { method: 'GET', path, range: undefined, status: 200 },
      ]);
    }
    for (const phase of ['download', 'cache', 'upload']) {
      const events = result.events.filter((e) => e.phase === phase);
      expect(events.every((e) => e.totalBytes === total())).toBe(true);
      for (let i = 1; i < events.length; i++) expect(events[i].loadedBytes).toBeGreaterThan(events[i - 1].loadedBytes);
      expect(events.at(-1)?.loadedBytes).toBe(total());
    }
    // Progress passes each part boundary: the download events span all three parts.
    const downloads = result.events.filter((e) => e.phase === 'download').map((e) => e.loadedBytes);
    expect(downloads.some((n) => n > storiesParts[0].byteLength && n < storiesParts[0].byteLength + storiesParts[1].byteLength)).toBe(true);
  });

  it('a reload reads every part from IndexedDB with zero requests', async () => {
    await gpu.page.reload();
    const before = server.requests.length;
    const result = await loadAndGenerate(server.origin + paths[0]);
    expect(result.cached).toBe(true);
    expect(result.ids).toEqual(REFERENCE.generated_ids.slice(0, GREEDY_TOKENS));
    expect(server.requests.slice(before)).toEqual([]);
    expect(result.events.filter((e) => e.phase === 'download')).toEqual([]);
  });
});
