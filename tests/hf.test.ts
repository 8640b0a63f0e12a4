// @vitest-environment node
/**
 * Hugging Face checkpoints run as published: the trained GPT-Neo in ../shared/models (F32 and F16,
 * the hub's exact layout) against its float64 reference (reference.json: greedy ids and next-token
 * logits), converted on load (src/model/hf/convert.ts), from a folder in the CLI and from a local
 * stand-in for the hub in Chromium (Range requests, shards, a dropped connection, the cache).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openGpuPage, type GpuPage } from '../src/cli/chromium-host.ts';
import { folderFiles, openCliModel } from '../src/cli/model-source.ts';
import { openSession, type ModelSession } from '../src/cli/session.ts';
import { LanternError } from '../src/errors.ts';
import { readGGUF } from '../src/model/gguf.ts';
import { convertCheckpoint } from '../src/model/hf/convert.ts';
import { tokenizerFromGGUF } from '../src/model/tokenizer/index.ts';
import type { NamedFiles } from '../src/storage/files.ts';
import { bytesSource } from '../src/storage/source.ts';
import { startModelServer, type ModelServer } from './helpers/model-server.ts';
import { SHARED_MODELS_DIR } from './helpers/paths.ts';

const NEO = join(SHARED_MODELS_DIR, 'tinystories-gptneo');
const NEO_F16 = join(SHARED_MODELS_DIR, 'tinystories-gptneo-f16');
/** |Δlogit| allowed against the float64 reference (logits there reach about 18). */
const LOGIT_TOLERANCE = 1e-3;

interface ReferencePrompt {
  name: string;
  prompt_text: string;
  prompt_ids: number[];
  next_token_top10: [number, number][];
  greedy_ids: number[];
}
const reference = (dir: string): ReferencePrompt[] => JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')).prompts;

/** Files from memory, by name, standing in for a repository. */
function memoryFiles(files: Record<string, Uint8Array | string>): NamedFiles {
  return {
    id: 'memory',
    where: 'the test repository',
    async has(name) {
      return Object.hasOwn(files, name);
    },
    async open(name) {
      if (!Object.hasOwn(files, name)) throw new LanternError('BAD_MODEL_FILE', `no ${name}`);
      const f = files[name];
      return bytesSource(typeof f === 'string' ? new TextEncoder().encode(f) : f);
    },
  };
}

const neoFiles = (dir: string) =>
  Object.fromEntries(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'].map((n) => [n, new Uint8Array(readFileSync(join(dir, n)))]));

/** A checkpoint's safetensors split in two shards, with the index that names them. */
function shard(bytes: Uint8Array): Record<string, Uint8Array | string> {
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  delete (header as Record<string, unknown>).__metadata__;
  const names = Object.keys(header);
  const halves = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const files: Record<string, Uint8Array | string> = {};
  const weightMap: Record<string, string> = {};
  halves.forEach((part, k) => {
    const fileName = `model-0000${k + 1}-of-00002.safetensors`;
    const entries: Record<string, unknown> = {};
    const datas: Uint8Array[] = [];
    let at = 0;
    for (const name of part) {
      const { dtype, shape, data_offsets: [b, e] } = header[name];
      entries[name] = { dtype, shape, data_offsets: [at, at + e - b] };
      datas.push(bytes.subarray(8 + headerLength + b, 8 + headerLength + e));
      at += e - b;
      weightMap[name] = fileName;
    }
    let json = JSON.stringify(entries);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const out = new Uint8Array(8 + json.length + at);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(new TextEncoder().encode(json), 8);
    let o = 8 + json.length;
    for (const d of datas) {
      out.set(d, o);
      o += d.byteLength;
    }
    files[fileName] = out;
  });
  files['model.safetensors.index.json'] = JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
  return files;
}

async function refusal(work: () => Promise<unknown>): Promise<LanternError> {
  try {
    await work();
  } catch (e) {
    expect(e).toBeInstanceOf(LanternError);
    return e as LanternError;
  }
  throw new Error('expected a refusal');
}

describe('conversion, without a GPU', () => {
  it('tinystories-gptneo converts to a gpt-neo GGUF whose tokenizer gives the reference prompt ids', async () => {
    const converted = await convertCheckpoint(folderFiles(NEO), { quantize: 'none' });
    expect(converted.architecture).toBe('gpt-neo');
    const file = await readGGUF(converted.source);
    expect(file.metadata.get('gpt-neo.attention.sliding_window')).toBe(32);
    expect(file.metadata.get('gpt-neo.attention.sliding_window_pattern')).toEqual([false, true, false, true]);
    const tokenizer = tokenizerFromGGUF(file);
    for (const p of reference(NEO)) expect(tokenizer.encode(p.prompt_text, { addSpecial: true, parseSpecial: false }), p.name).toEqual(p.prompt_ids);
  });

  it('quantize auto: q8_0 for an F32 checkpoint, the F16 one kept as stored; shards give the same bytes as one file', async () => {
    const f32 = await convertCheckpoint(memoryFiles(neoFiles(NEO)));
    const f16 = await convertCheckpoint(memoryFiles(neoFiles(NEO_F16)));
    expect([f32.quantize, f16.quantize]).toEqual(['q8_0', 'none']);
    expect(f32.source.size).toBeLessThan(f32.checkpointBytes / 2);
    const files = neoFiles(NEO);
    const single = await convertCheckpoint(memoryFiles(files), { quantize: 'q8_0' });
    const { 'model.safetensors': weights, ...rest } = files;
    const sharded = await convertCheckpoint(memoryFiles({ ...rest, ...shard(weights) }), { quantize: 'q8_0' });
    const a = await single.source.read(0, single.source.size);
    const b = await sharded.source.read(0, sharded.source.size);
    // The same GGUF but for general.source.url? Both are 'memory': byte for byte.
    expect(b.byteLength).toBe(a.byteLength);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
  });

  it('reads the checkpoint by range, a few rows at a time: no read is much larger than what was asked of the converted file', async () => {
    let largest = 0;
    let total = 0;
    const inner = memoryFiles(neoFiles(NEO));
    const watched: NamedFiles = {
      ...inner,
      async open(name) {
        const source = await inner.open(name);
        if (!name.endsWith('.safetensors')) return source;
        return {
          size: source.size,
          read: (offset: number, length: number) => {
            largest = Math.max(largest, length);
            total += length;
            return source.read(offset, length);
          },
        };
      },
    };
    const converted = await convertCheckpoint(watched, { quantize: 'q8_0' });
    const piece = 256 << 10;
    for (let at = 0; at < converted.source.size; at += piece) await converted.source.read(at, Math.min(piece, converted.source.size - at));
    // 256 KiB of Q8_0 is 241 K weights: 964 KB of F32, and a row more at each end.
    expect(largest).toBeLessThan(piece * (4 * 32 / 34) + 2 * 64 * 4 + 1);
    expect(largest).toBeGreaterThan(0);
    // The whole checkpoint about once (the embedding's rows at piece boundaries twice).
    const weights = neoFiles(NEO)['model.safetensors'].byteLength;
    expect(total).toBeGreaterThan(weights * 0.9);
    expect(total).toBeLessThan(weights * 1.1);
  });

  it('refuses a pickle-only repository, a missing or climbing shard, a truncated header, an integer weight, bad JSON and a missing config.json', async () => {
    const { 'model.safetensors': weights, ...rest } = neoFiles(NEO);
    const pickle = await refusal(() => convertCheckpoint(memoryFiles({ ...rest, 'pytorch_model.bin': new Uint8Array(16) })));
    expect(pickle.code).toBe('UNSUPPORTED_FORMAT');
    expect(pickle.message).toMatch(/refs\/pr/);
    const shards = shard(weights);
    delete shards['model-00002-of-00002.safetensors'];
    const missing = await refusal(() => convertCheckpoint(memoryFiles({ ...rest, ...shards })));
    expect([missing.code, missing.details?.file]).toEqual(['BAD_MODEL_FILE', 'model-00002-of-00002.safetensors']);
    const climbing = await refusal(() =>
      convertCheckpoint(memoryFiles({ ...rest, 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'transformer.wte.weight': '../secret.safetensors' } }) })),
    );
    expect(climbing.code).toBe('BAD_MODEL_FILE');
    const badJson = await refusal(() => convertCheckpoint(memoryFiles({ ...rest, 'model.safetensors': weights, 'config.json': '{"architectures": [' })));
    expect([badJson.code, badJson.details?.file]).toEqual(['BAD_MODEL_FILE', 'config.json']);
    const truncated = await refusal(() => convertCheckpoint(memoryFiles({ ...rest, 'model.safetensors': weights.subarray(0, 200) })));
    expect(['TRUNCATED_FILE', 'BAD_MODEL_FILE']).toContain(truncated.code);
    // A dtype Lantern cannot read as weights: the final LayerNorm's bias declared as I32 (same width, so the header stays consistent).
    const headerLength = Number(new DataView(weights.buffer, weights.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(weights.subarray(8, 8 + headerLength));
    const retyped = header.replace(/("transformer\.ln_f\.bias":\{"dtype":")F32/, '$1I32');
    expect(retyped).not.toBe(header);
    const intWeights = weights.slice();
    intWeights.set(new TextEncoder().encode(retyped), 8);
    const dtype = await refusal(() => convertCheckpoint(memoryFiles({ ...rest, 'model.safetensors': intWeights })));
    expect(dtype.code).toBe('UNSUPPORTED_TENSOR_TYPE');
    expect(dtype.message).toMatch(/transformer\.ln_f\.bias/);
    const { 'config.json': _, ...noConfig } = rest;
    const none = await refusal(() => convertCheckpoint(memoryFiles({ ...noConfig, 'model.safetensors': weights })));
    expect(none.code).toBe('BAD_MODEL_FILE');
    expect(none.message).toMatch(/config\.json/);
  });
});

describe('tinystories-gptneo against its float64 reference, from a folder in the CLI', () => {
  for (const [label, dir] of [['F32', NEO], ['F16', NEO_F16]] as const) {
    it(`${label}: greedy ids equal the reference and next-token logits are within ${LOGIT_TOLERANCE}`, async () => {
      const model = await openCliModel(dir, 'none');
      let session: ModelSession | undefined;
      try {
        // An f32 KV cache, like the float64 reference (the default f16 cache rounds keys and values).
        session = await openSession(model.path, { kvCache: 'f32' });
        expect(session.info.architecture).toBe('gpt-neo');
        for (const p of reference(dir)) {
          const logits = await session.logits(p.prompt_ids);
          for (const [id, value] of p.next_token_top10) expect(Math.abs(logits[id] - value), `${p.name} token ${id}`).toBeLessThan(LOGIT_TOLERANCE);
          const ids: number[] = [];
          await session.generate(p.prompt_ids, { maxTokens: p.greedy_ids.length, temperature: 0 }, (t) => ids.push(t.id));
          expect(ids, p.name).toEqual(p.greedy_ids);
        }
      } finally {
        await session?.close();
        await model.dispose();
      }
    });
  }
});

describe('from a stand-in hub in Chromium, through the engine and its cache', () => {
  let gpu: GpuPage;
  let hub: ModelServer;
  const pageErrors: string[] = [];
  beforeAll(async () => {
    hub = await startModelServer();
    const files = neoFiles(NEO);
    for (const [name, bytes] of Object.entries(files)) hub.serve(`/test/neo/resolve/main/${name}`, bytes);
    const { 'model.safetensors': weights, ...rest } = files;
    for (const [name, bytes] of Object.entries({ ...rest, ...shard(weights) })) {
      hub.serve(`/test/neo-sharded/resolve/main/${name}`, typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes);
    }
    gpu = await openGpuPage({ warmup: ['./src/index.ts'] });
    // Chromium logs every 404 as a console error, which openGpuPage treats as fatal; asking for a
    // file the repository may not have (tokenizer_config.json, the shard index) is how the loader
    // learns what is there. Those are collected, and every other console error fails the test.
    gpu.page.removeAllListeners('console');
    gpu.page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 404|net::ERR_INTERNET_DISCONNECTED/.test(message.text())) pageErrors.push(message.text());
    });
  });
  afterEach(() => {
    expect(pageErrors).toEqual([]);
  });
  afterAll(async () => {
    await gpu?.close();
    await hub?.close();
  });

  it('loads hf:test/neo (one file, none) and hf:test/neo-sharded (q8_0 by default); a second load reads the compressed form from the cache alone', async () => {
    const [p] = reference(NEO);
    const run = (repo: string, quantize: 'none' | 'auto') =>
      gpu.evaluate(
        async ({ repo, quantize, hubEndpoint, prompt, n }) => {
          const { createEngine, listCachedModels }: typeof import('../src/index.ts') = await window.lanternImport('/src/index.ts');
          const engine = createEngine({ worker: 'none' });
          const info = await engine.load(`hf:${repo}`, { hubEndpoint, quantize, kvCache: 'f32' });
          const ids: number[] = [];
          for await (const chunk of engine.generate(prompt, { maxTokens: n, temperature: 0 })) ids.push(...chunk.tokens);
          engine.terminate();
          const cached = (await listCachedModels()).map((m) => ({ id: m.id, size: m.size }));
          return { info, ids, cached };
        },
        { repo, quantize, hubEndpoint: hub.origin, prompt: p.prompt_text, n: 24 },
      );
    const first = await run('test/neo', 'none');
    expect(first.info.architecture).toBe('gpt-neo');
    expect(first.ids).toEqual(p.greedy_ids.slice(0, 24));
    expect(hub.requestsFor('/test/neo/resolve/main/model.safetensors').some((r) => r.range !== undefined)).toBe(true);

    const sharded = await run('test/neo-sharded', 'auto');
    expect(hub.requestsFor('/test/neo-sharded/resolve/main/model-00002-of-00002.safetensors').length).toBeGreaterThan(0);
    // The cache keeps each converted form under its repository, revision and choice; q8_0 is the smaller.
    const size = (id: string) => sharded.cached.find((m) => m.id === id)?.size;
    const full = size('hf:test/neo@main#quantize=none');
    const small = size('hf:test/neo-sharded@main#quantize=auto');
    expect(full).toBeGreaterThan(0);
    expect(small).toBeLessThan(full! * 0.5);
    // q8_0 weights may turn greedy decoding elsewhere later on; its first tokens are the reference's.
    expect(sharded.ids.slice(0, 4)).toEqual(p.greedy_ids.slice(0, 4));

    const before = hub.requests.length;
    const again = await run('test/neo-sharded', 'auto');
    expect(again.ids).toEqual(sharded.ids);
    expect(hub.requests.slice(before)).toEqual([]);
    // What was asked for and not there: only optional files, never a weight file.
    const missing = new Set(hub.requests.filter((r) => r.status === 404).map((r) => r.path.split('/').pop()));
    expect([...missing].every((name) => ['model.safetensors', 'model.safetensors.index.json', 'added_tokens.json'].includes(name!) || !name!.includes('safetensors'))).toBe(true);
  });

  it('a conversion cut off by the network resumes: the second load converts only the chunks the cache lacks', async () => {
    const [p] = reference(NEO);
    const repo = '/test/neo-resume/resolve/main';
    for (const [name, bytes] of Object.entries(neoFiles(NEO))) hub.serve(`${repo}/${name}`, bytes);
    const weights = `${hub.origin}${repo}/model.safetensors`;
    const total = readFileSync(join(NEO, 'model.safetensors')).byteLength;
    const rangeBytes = (range: string | undefined) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
      return m ? Number(m[2]) - Number(m[1]) + 1 : total;
    };
    // The network goes away once 9 MiB of the weights have been read (the retries fail too): by
    // then at least two 4 MiB chunks of the converted file are made and stored.
    let read = 0;
    await gpu.page.route(weights, (route) => {
      if (read > 9 << 20) return route.abort('internetdisconnected');
      read += rangeBytes(route.request().headers()['range']);
      return route.continue();
    });
    const load = () =>
      gpu.evaluate(
        async ({ hubEndpoint, prompt }) => {
          const { createEngine }: typeof import('../src/index.ts') = await window.lanternImport('/src/index.ts');
          const engine = createEngine({ worker: 'none' });
          try {
            await engine.load('hf:test/neo-resume', { hubEndpoint, quantize: 'none', kvCache: 'f32' });
            const ids: number[] = [];
            for await (const chunk of engine.generate(prompt, { maxTokens: 8, temperature: 0 })) ids.push(...chunk.tokens);
            return { ids };
          } catch (e) {
            return { code: (e as { code?: string }).code, message: String((e as Error).message) };
          } finally {
            engine.terminate();
          }
        },
        { hubEndpoint: hub.origin, prompt: p.prompt_text },
      );
    const cut = await load();
    expect(cut.code, cut.message).toBe('FETCH_FAILED');
    await gpu.page.unroute(weights);

    const before = hub.requestsFor(`${repo}/model.safetensors`).length;
    const resumed = await load();
    expect(resumed.ids).toEqual(p.greedy_ids.slice(0, 8));
    const again = hub.requestsFor(`${repo}/model.safetensors`).slice(before).reduce((n, r) => n + rangeBytes(r.range), 0);
    expect(again).toBeGreaterThan(0);
    expect(again).toBeLessThanOrEqual(total - (8 << 20));
  });
});
