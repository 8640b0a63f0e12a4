import { createStore, get, promisifyRequest, type UseStore } from 'idb-keyval';

/**
 * Where models live in the browser: three IndexedDB databases, one object store each (idb-keyval
 * creates a store only when it creates its database, so stores that share a database would not
 * all exist).
 *
 *   lantern-model-chunks / chunks      [id, index] → ChunkRecord: the file in fixed-size pieces
 *   lantern-model-downloads / downloads id → DownloadRecord: a download under way, for resuming
 *   lantern-models / manifests         id → ModelManifest: written last, so it means "complete"
 */
const CHUNKS_DB = 'lantern-model-chunks';
const DOWNLOADS_DB = 'lantern-model-downloads';
const MANIFESTS_DB = 'lantern-models';

export interface ChunkRecord {
  /** SHA-256 of `bytes`, hex; checked again whenever the chunk is read back. */
  sha256: string;
  bytes: ArrayBuffer;
}

/** What a download needs to resume: the file's identity when it started. */
export interface DownloadRecord {
  id: string;
  url?: string;
  /** Undefined until the body ends, when the server would not say (a compressed response). */
  size?: number;
  chunkSize: number;
  etag?: string;
  lastModified?: string;
  startedAt: number;
}

export interface ModelManifest {
  id: string;
  url?: string;
  size: number;
  chunkSize: number;
  /** One hex SHA-256 per chunk, in order. */
  chunkSha256: string[];
  /** The whole file's SHA-256 when it was checked against an expected one. */
  sha256?: string;
  etag?: string;
  lastModified?: string;
  createdAt: number;
  lastUsed: number;
}

/** A complete model in the cache, as listCachedModels() reports it. */
export interface CachedModel {
  id: string;
  /** Bytes of the model file. */
  size: number;
  /** When it was last opened, in ms since the epoch. */
  lastUsed: number;
}

export interface CacheStores {
  chunks: UseStore;
  downloads: UseStore;
  manifests: UseStore;
}

let stores: Promise<CacheStores> | undefined;

/**
 * The three stores, or a rejection saying why IndexedDB cannot be used (a private window, storage
 * blocked by the user, or no IndexedDB at all). The stores are created on first use, so that
 * merely importing this module never touches IndexedDB.
 */
export function openCacheStores(): Promise<CacheStores> {
  stores ??= (async () => {
    if (typeof indexedDB === 'undefined') throw new Error('this context has no IndexedDB');
    const opened: CacheStores = {
      chunks: createStore(CHUNKS_DB, 'chunks'),
      downloads: createStore(DOWNLOADS_DB, 'downloads'),
      manifests: createStore(MANIFESTS_DB, 'manifests'),
    };
    // Firefox's private windows fail at open(), older Safari at the first write: a probe read
    // of each store surfaces the first kind here, and writes are guarded where they happen.
    await Promise.all([get('', opened.chunks), get('', opened.downloads), get('', opened.manifests)]);
    return opened;
  })();
  stores.catch(() => (stores = undefined));
  return stores;
}

/** The keys [id, 0] … [id, ∞) of one model's chunks. */
export function chunkRange(id: string): IDBKeyRange {
  return IDBKeyRange.bound([id, 0], [id, Infinity]);
}

/** Indices of the chunks stored for `id`, ascending, without reading their bytes. */
export async function storedChunkIndices(s: CacheStores, id: string): Promise<number[]> {
  const keys = await s.chunks('readonly', (store) => promisifyRequest(store.getAllKeys(chunkRange(id))));
  return keys.map((key) => (key as [string, number])[1]);
}

/** Removes everything stored for `id`: the manifest first, so a half-deleted model is never "complete". */
export async function deleteModelRecords(s: CacheStores, id: string): Promise<void> {
  await s.manifests('readwrite', (store) => (store.delete(id), promisifyRequest(store.transaction)));
  await s.downloads('readwrite', (store) => (store.delete(id), promisifyRequest(store.transaction)));
  await s.chunks('readwrite', (store) => (store.delete(chunkRange(id)), promisifyRequest(store.transaction)));
}

/**
 * The complete models in the cache, most recently used first.
 *
 * @example
 * ```ts
 * import { listCachedModels } from 'lantern';
 *
 * for (const { id, size, lastUsed } of await listCachedModels()) console.log(id, size, new Date(lastUsed));
 * ```
 */
export async function listCachedModels(): Promise<CachedModel[]> {
  const s = await openCacheStores();
  const manifests = await s.manifests('readonly', (store) => promisifyRequest(store.getAll() as IDBRequest<ModelManifest[]>));
  return manifests.map(({ id, size, lastUsed }) => ({ id, size, lastUsed })).sort((a, b) => b.lastUsed - a.lastUsed);
}

/**
 * Deletes one model from the cache, complete or half-downloaded; unknown ids are ignored.
 *
 * @example
 * ```ts
 * import { deleteCachedModel, listCachedModels } from 'lantern';
 *
 * const [oldest] = (await listCachedModels()).reverse();
 * if (oldest) await deleteCachedModel(oldest.id);
 * ```
 */
export async function deleteCachedModel(id: string): Promise<void> {
  await deleteModelRecords(await openCacheStores(), id);
}

/**
 * Deletes every cached model and every half-finished download.
 *
 * @example
 * ```ts
 * import { deleteAllCachedModels } from 'lantern';
 *
 * clearButton.onclick = () => deleteAllCachedModels();
 * ```
 */
export async function deleteAllCachedModels(): Promise<void> {
  const s = await openCacheStores();
  for (const store of [s.manifests, s.downloads, s.chunks]) {
    await store('readwrite', (objectStore) => (objectStore.clear(), promisifyRequest(objectStore.transaction)));
  }
}
