/**
 * The LMDB store: one environment per data directory, a catalog of collections, and the named
 * databases of each collection. The only lmdb importer. Knows bytes and keys, not scoring.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type DatabaseOptions, type RootDatabase } from 'lmdb';
import { createError } from '../errors.ts';
import { FORMAT_VERSION, PACKR_OPTIONS, READABLE_FORMAT_VERSIONS } from './codec.ts';

export interface StoreOptions {
  dataDir: string;
  mapSizeBytes: number;
}

/** Named databases of one collection. */
export interface CollectionDbs {
  /** Counters, options, tombstones (msgpack). */
  meta: Database<unknown, string>;
  /** TermId → [term, surface, stop] (msgpack). */
  terms: Database<[string, string, boolean], number>;
  /** [termId, tier, chunk] → portable roaring bytes of that chunk. */
  postings: Database<Buffer, number[]>;
  /** [field, value, chunk] → portable roaring bytes (metadata equality filters). */
  filters: Database<Buffer, Array<string | number>>;
  /** chunk → Uint32Array bytes of 65,536 document lengths. */
  lengths: Database<Buffer, number>;
  /** DocId → term-id sequence bytes (the forward store), truncated to `maxForwardTokens`. */
  forward: Database<Buffer, number>;
  /**
   * DocId → the term ids past the forward store's truncation, kept only until the document's
   * postings are checkpointed (the forward store plus this tail replay them after a crash).
   */
  tails: Database<Buffer, number>;
  /** DocId → external id. */
  ids: Database<string, number>;
  /** External id → stored document. */
  docs: Database<StoredDocument, string>;
  /** Retriever versions, RCL state and other per-collection records (msgpack). */
  state: Database<unknown, Array<string | number>>;
}

/** A document as stored: the user's fields plus its current DocId. */
export interface StoredDocument {
  docId: number;
  title?: string;
  text: string;
  metadata?: Record<string, unknown>;
}

export const DB_NAMES = ['meta', 'terms', 'postings', 'filters', 'lengths', 'forward', 'tails', 'ids', 'docs', 'state'] as const;
/** Most collections per data directory: each takes DB_NAMES.length named databases, plus the catalog. */
export const MAX_COLLECTIONS = 100;
/** Most named databases in one environment (LMDB `maxDbs`): every collection's, the catalog, and room. */
const MAX_DBS = MAX_COLLECTIONS * DB_NAMES.length + 16;
/** File name of the environment in a data directory (a snapshot copied there is served). */
export const STORE_FILE = 'r3serve.mdb';
/** lmdb-js accepts msgpackr options as `encoder`; its typings omit the field. */
type DbOptions = DatabaseOptions & { name: string; encoder?: object };

export interface Store {
  readonly path: string;
  readonly root: RootDatabase;
  /** Collection name → its creation options, in name order. */
  listCollections(): Array<{ name: string; options: Record<string, unknown> }>;
  getCollectionOptions(name: string): Record<string, unknown> | undefined;
  putCollection(name: string, options: Record<string, unknown>): Promise<void>;
  dropCollection(name: string): Promise<void>;
  collectionDbs(name: string): CollectionDbs;
  /** Bytes used by the environment file. */
  sizeBytes(): number;
  close(): Promise<void>;
}

/** Opens (or creates) the store in `dataDir`; refuses a data directory of another format. */
export function openStore(options: StoreOptions): Store {
  mkdirSync(options.dataDir, { recursive: true });
  const path = join(options.dataDir, STORE_FILE);
  let root: RootDatabase;
  try {
    root = open({ path, maxDbs: MAX_DBS, mapSize: options.mapSizeBytes, encoder: PACKR_OPTIONS, compression: false } as DatabaseOptions & { path: string });
  } catch (cause) {
    throw createError('INDEX_CORRUPT', { path }, { cause, details: { path } });
  }
  const catalog = root.openDB<Record<string, unknown>, string>({ name: 'catalog', encoder: PACKR_OPTIONS } as DbOptions);
  const found = root.get('formatVersion') as number | undefined;
  if (found === undefined || (found !== FORMAT_VERSION && READABLE_FORMAT_VERSIONS.includes(found))) root.putSync('formatVersion', FORMAT_VERSION);
  else if (found !== FORMAT_VERSION) {
    void root.close();
    throw createError('INDEX_INCOMPATIBLE', { path, found, expected: FORMAT_VERSION }, { details: { path, found, expected: FORMAT_VERSION } });
  }
  const cache = new Map<string, CollectionDbs>();

  function collectionDbs(name: string): CollectionDbs {
    let dbs = cache.get(name);
    if (dbs) return dbs;
    const p = (n: string) => `c/${name}/${n}`;
    dbs = {
      meta: root.openDB({ name: p('meta'), encoder: PACKR_OPTIONS } as DbOptions),
      terms: root.openDB({ name: p('terms'), keyEncoding: 'uint32', encoder: PACKR_OPTIONS } as DbOptions),
      postings: root.openDB({ name: p('postings'), encoding: 'binary' }),
      filters: root.openDB({ name: p('filters'), encoding: 'binary' }),
      lengths: root.openDB({ name: p('lengths'), keyEncoding: 'uint32', encoding: 'binary' }),
      forward: root.openDB({ name: p('forward'), keyEncoding: 'uint32', encoding: 'binary' }),
      tails: root.openDB({ name: p('tails'), keyEncoding: 'uint32', encoding: 'binary' }),
      ids: root.openDB({ name: p('ids'), keyEncoding: 'uint32', encoding: 'string' }),
      docs: root.openDB({ name: p('docs'), encoder: PACKR_OPTIONS } as DbOptions),
      state: root.openDB({ name: p('state'), encoder: PACKR_OPTIONS } as DbOptions),
    } as CollectionDbs;
    cache.set(name, dbs);
    return dbs;
  }

  return {
    path,
    root,
    listCollections() {
      return [...catalog.getRange()].map(({ key, value }) => ({ name: key, options: value }));
    },
    getCollectionOptions(name) {
      return catalog.get(name);
    },
    async putCollection(name, opts) {
      await catalog.put(name, opts);
    },
    async dropCollection(name) {
      const dbs = collectionDbs(name);
      await root.transaction(() => {
        for (const n of DB_NAMES) void dbs[n].drop();
        void catalog.remove(name);
      });
      cache.delete(name);
    },
    collectionDbs,
    sizeBytes() {
      const stat = root.getStats() as { pageSize: number; treeDepth: number; lastPageNumber?: number; mapSize?: number };
      return (stat.lastPageNumber ?? 0) * stat.pageSize;
    },
    async close() {
      await root.close();
    },
  };
}
