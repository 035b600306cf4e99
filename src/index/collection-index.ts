/**
 * One collection's bag-of-tokens index: term dictionary, postings with tf tiers, document lengths,
 * tombstones, metadata filters, forward store and documents. In memory for reading, LMDB for
 * durability; every write is one LMDB transaction and becomes visible only after it commits.
 * Knows nothing of scoring models: `search/` reads it.
 */
import { createError } from '../errors.ts';
import type { DocId, DocumentInput, TermId } from '../types.ts';
import {
  RoaringBitmap32,
  bytesU32,
  deserializeBitmap,
  serializeBitmap,
  sliceBitmap,
  u32Bytes,
  type Bitmap,
} from './codec.ts';
import type { CollectionDbs, StoredDocument } from './store.ts';

/**
 * Term-frequency tiers: tier t holds the documents with tf ≥ TF_TIERS[t]. Geometric steps keep the
 * tier count small while BM25's saturation makes the lost precision negligible (at k1 = 1.2 the
 * saturation of tf 24 and 31 differ by under 0.5%).
 */
export const TF_TIERS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32] as const;
/** Storage chunk of postings and lengths: 2^16 DocIds, so an append rewrites only the tail chunk. */
export const CHUNK_BITS = 16;
const CHUNK_SIZE = 1 << CHUNK_BITS;
/** Exclusive upper bound for `removeRange` over the whole uint32 space. */
const UINT32_END = 2 ** 32;

/** A document after analysis (done off the event loop). */
/** Distinct terms of an analysed batch, with the first surface form and stop flag of each. */
export interface BatchVocabulary {
  terms: string[];
  surfaces: string[];
  stops: Uint8Array;
}

/**
 * A document after analysis (done off the event loop): either its tokens spelled out, or — as
 * the analysis workers send them — indices into its batch's vocabulary, so that only distinct
 * terms are looked up in the dictionary.
 */
export type AnalyzedDocument = { input: DocumentInput } & (
  | { terms: string[]; surfaces: string[]; stops: Uint8Array }
  | { vocab: BatchVocabulary; local: Uint32Array }
);

/** What a write reports. */
export interface WriteResult {
  inserted: number;
  replaced: number;
}

interface Meta {
  nextDocId: number;
  totalLen: number;
  tombstones?: Buffer;
}

/**
 * Longest metadata field name and string value (in UTF-8 bytes) that get a filter bitmap. LMDB
 * keys hold at most 1,978 bytes; longer values are stored with the document but not filterable.
 */
export const MAX_FILTER_FIELD_BYTES = 128;
export const MAX_FILTER_VALUE_BYTES = 512;

function filterKey(field: string, value: unknown): string | undefined {
  if (field.includes('\u0000') || Buffer.byteLength(field) > MAX_FILTER_FIELD_BYTES) return undefined;
  if (typeof value === 'string') return Buffer.byteLength(value) > MAX_FILTER_VALUE_BYTES ? undefined : `${field}\u0000s:${value}`;
  if (typeof value === 'number' && Number.isFinite(value)) return `${field}\u0000n:${value}`;
  if (typeof value === 'boolean') return `${field}\u0000b:${value}`;
  return undefined;
}

/** The members of `bitmap` in chunk [lo, hi): the bitmap itself when it lies wholly inside. */
function chunkOf(bitmap: Bitmap, lo: number, hi: number): Bitmap {
  return bitmap.minimum() >= lo && bitmap.maximum() < hi ? bitmap : sliceBitmap(bitmap, lo, hi);
}

/** Documents analysed into postings between two yields to the event loop. */
const YIELD_EVERY_DOCS = 50;
/** Bitmaps serialised between two yields to the event loop. */
const YIELD_EVERY_BITMAPS = 4_000;

function yieldNow(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A zeroed counter array of at least `size` entries holding `a`'s counts. */
function growCounts(a: Uint32Array, size: number): Uint32Array {
  const next = new Uint32Array(Math.max(size, a.length * 2));
  next.set(a);
  return next;
}

/** Growable Uint32Array. */
function ensureU32(a: Uint32Array, size: number): Uint32Array {
  if (size <= a.length) return a;
  const next = new Uint32Array(Math.max(size, a.length * 2, 1024));
  next.set(a);
  return next;
}

function ensureU8(a: Uint8Array, size: number): Uint8Array {
  if (size <= a.length) return a;
  const next = new Uint8Array(Math.max(size, a.length * 2, 1024));
  next.set(a);
  return next;
}

/** The in-memory view and the writer of one collection. Create with `openCollectionIndex`. */
export class CollectionIndex {
  readonly name: string;
  readonly dbs: CollectionDbs;
  readonly maxForwardTokens: number;
  private readonly termIds = new Map<string, TermId>();
  private readonly termList: string[] = [];
  private readonly surfaceList: string[] = [];
  private stopFlags: Uint8Array = new Uint8Array(1024);
  /** postings[termId][tierIndex]: tier 0 is every document containing the term. */
  private readonly postings: Bitmap[][] = [];
  private readonly filters = new Map<string, Bitmap>();
  private lengths: Uint32Array = new Uint32Array(1024);
  private tombstoneSet: Bitmap = new RoaringBitmap32();
  private next = 0;
  private total = 0;
  /** DocIds below this are committed and visible. */
  private visible = 0;
  /** DocIds below this may appear in in-memory postings (a write in flight reserves its range). */
  private reserved = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Scratch tf counters by TermId (all zero between writes). */
  private tfCounts: Uint32Array = new Uint32Array(1024);
  /** Bumped after every committed write; caches keyed on it stay valid until then. */
  generation = 0;

  constructor(name: string, dbs: CollectionDbs, maxForwardTokens: number) {
    this.name = name;
    this.dbs = dbs;
    this.maxForwardTokens = maxForwardTokens;
  }

  // ---- reading -------------------------------------------------------------------------

  /** Number of live (visible, not deleted) documents. */
  get liveCount(): number {
    return this.visible - this.tombstoneSet.size;
  }
  /** Mean length of live documents (1 when empty). */
  get avgLength(): number {
    const n = this.liveCount;
    return n > 0 ? this.total / n : 1;
  }
  /** One past the highest visible DocId. */
  get docIdLimit(): number {
    return this.visible;
  }
  /** One past the highest DocId that may appear in a posting (accumulators must be this long). */
  get docIdCapacity(): number {
    return Math.max(this.reserved, this.next);
  }
  get vocabularySize(): number {
    return this.termList.length;
  }
  get tombstones(): Bitmap {
    return this.tombstoneSet;
  }
  /** Per-DocId lengths (indexed by DocId; entries past docIdLimit are meaningless). */
  get docLengths(): Uint32Array {
    return this.lengths;
  }
  termId(term: string): TermId | undefined {
    return this.termIds.get(term);
  }
  term(id: TermId): string {
    return this.termList[id];
  }
  /** The surface form first seen for a term (the GloVe lookup key of a stemmed term). */
  surface(id: TermId): string {
    return this.surfaceList[id];
  }
  isStop(id: TermId): boolean {
    return this.stopFlags[id] === 1;
  }
  /** Posting bitmap of tier `tier` (0 = all documents containing the term). May include deleted/invisible ids. */
  posting(id: TermId, tier = 0): Bitmap | undefined {
    return this.postings[id]?.[tier];
  }
  /** Number of tiers stored for a term. */
  tierCount(id: TermId): number {
    return this.postings[id]?.length ?? 0;
  }
  /** Live document frequency of a term. */
  df(id: TermId): number {
    const p = this.postings[id]?.[0];
    if (!p) return 0;
    let n = p.size - p.andCardinality(this.tombstoneSet);
    // A write in flight has added DocIds ≥ visible to the postings: they do not count yet.
    if (this.docIdCapacity > this.visible) n -= p.rangeCardinality(this.visible, UINT32_END);
    return n;
  }
  /** Bitmap of live documents whose metadata `field` equals `value`; undefined when none. */
  filter(field: string, value: unknown): Bitmap | undefined {
    const key = filterKey(field, value);
    return key === undefined ? undefined : this.filters.get(key);
  }
  /** Term-id sequence of a document (truncated to maxForwardTokens). */
  forward(docId: DocId): Uint32Array | undefined {
    const bytes = this.dbs.forward.getBinary(docId);
    return bytes ? bytesU32(bytes) : undefined;
  }
  externalId(docId: DocId): string | undefined {
    return this.dbs.ids.get(docId);
  }
  /** A stored document (LMDB readers see committed data only, so a write in flight never shows). */
  getDocument(id: string): StoredDocument | undefined {
    return this.dbs.docs.get(id);
  }
  /** Stable snapshot of the words of the vocabulary for encoders: [term, surface, stop]. */
  vocabulary(from = 0): Array<[string, string, boolean]> {
    const out: Array<[string, string, boolean]> = [];
    for (let i = from; i < this.termList.length; i++) out.push([this.termList[i], this.surfaceList[i], this.stopFlags[i] === 1]);
    return out;
  }

  // ---- loading -------------------------------------------------------------------------

  /** Reads the whole collection state from LMDB. */
  load(): void {
    const meta = this.dbs.meta.get('counters') as Meta | undefined;
    for (const { key, value } of this.dbs.terms.getRange()) {
      if (key !== this.termList.length) throw createError('INDEX_CORRUPT', { path: `collection ${this.name} terms` });
      this.addTermInMemory(value[0], value[1], value[2]);
    }
    for (const { key, value } of this.dbs.postings.getRange()) {
      const [termId, tier] = key as [number, number, number];
      const tiers = (this.postings[termId] ??= []);
      const chunk = deserializeBitmap(value);
      if (tiers[tier]) tiers[tier].orInPlace(chunk);
      else tiers[tier] = chunk;
    }
    for (const { key, value } of this.dbs.filters.getRange()) {
      const [field, valueKey] = key as [string, string, number];
      const k = `${field}\u0000${valueKey}`;
      const chunk = deserializeBitmap(value);
      const existing = this.filters.get(k);
      if (existing) existing.orInPlace(chunk);
      else this.filters.set(k, chunk);
    }
    this.next = meta?.nextDocId ?? 0;
    this.total = meta?.totalLen ?? 0;
    this.lengths = ensureU32(this.lengths, this.next);
    for (const { key, value } of this.dbs.lengths.getRange()) {
      this.lengths.set(bytesU32(value).subarray(0, Math.max(0, this.next - key * CHUNK_SIZE)), key * CHUNK_SIZE);
    }
    if (meta?.tombstones) this.tombstoneSet = deserializeBitmap(meta.tombstones);
    // Drop anything past the committed counter (cannot happen with atomic commits; cheap to enforce).
    for (const tiers of this.postings) for (const b of tiers ?? []) b?.removeRange(this.next, UINT32_END);
    this.visible = this.next;
  }

  private addTermInMemory(term: string, surface: string, stop: boolean): TermId {
    const id = this.termList.length;
    this.termIds.set(term, id);
    this.termList.push(term);
    this.surfaceList.push(surface);
    this.stopFlags = ensureU8(this.stopFlags, id + 1);
    this.stopFlags[id] = stop ? 1 : 0;
    return id;
  }

  // ---- writing -------------------------------------------------------------------------

  /** Runs writes one at a time (the writer queue). */
  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Upserts analysed documents in one transaction. Resolves once durable. A document whose id
   * exists gets a new DocId; the old one is tombstoned in the same transaction.
   */
  upsert(docs: AnalyzedDocument[]): Promise<WriteResult> {
    return this.enqueue(() => this.upsertNow(docs));
  }

  private async upsertNow(docs: AnalyzedDocument[]): Promise<WriteResult> {
    if (docs.length === 0) return { inserted: 0, replaced: 0 };
    const firstId = this.next;
    const firstTerm = this.termList.length;
    const byTerm = new Map<number, number[]>(); // (termId * TIERS + tier) → DocIds
    const byFilter = new Map<string, number[]>();
    const replaced: number[] = [];
    const forward: Array<[number, Buffer]> = [];
    let lengthDelta = 0;
    const nTiers = TF_TIERS.length;
    let counts: Uint32Array = this.tfCounts;
    const distinctTerms: number[] = [];
    const vocabIds = new Map<BatchVocabulary, Uint32Array>();
    this.lengths = ensureU32(this.lengths, firstId + docs.length);
    for (let i = 0; i < docs.length; i++) {
      // Let searches in: a large batch is long work for the event loop (they ignore DocIds ≥ visible).
      if (i > 0 && i % YIELD_EVERY_DOCS === 0) await yieldNow();
      const doc = docs[i];
      const docId = firstId + i;
      const old = this.dbs.docs.get(doc.input.id);
      if (old && !this.tombstoneSet.has(old.docId)) {
        replaced.push(old.docId);
        lengthDelta -= this.lengths[old.docId];
      }
      const tokenIds = this.tokenIds(doc, vocabIds);
      const n = Math.min(tokenIds.length, this.maxForwardTokens);
      const seq = tokenIds.slice(0, n);
      // Count tf with a reusable per-term counter and a list of the terms touched by this doc.
      distinctTerms.length = 0;
      for (let j = 0; j < tokenIds.length; j++) {
        const id = tokenIds[j];
        if (id >= counts.length) counts = growCounts(counts, id + 1);
        if (counts[id]++ === 0) distinctTerms.push(id);
      }
      for (const id of distinctTerms) {
        const count = counts[id];
        counts[id] = 0;
        for (let t = 0; t < nTiers && count >= TF_TIERS[t]; t++) {
          const key = id * nTiers + t;
          const list = byTerm.get(key);
          if (list) list.push(docId);
          else byTerm.set(key, [docId]);
        }
      }
      for (const [field, value] of Object.entries(doc.input.metadata ?? {})) {
        const key = filterKey(field, value);
        if (key === undefined) continue;
        const list = byFilter.get(key);
        if (list) list.push(docId);
        else byFilter.set(key, [docId]);
      }
      this.lengths[docId] = tokenIds.length;
      lengthDelta += tokenIds.length;
      forward.push([docId, u32Bytes(seq)]);
    }
    this.tfCounts = counts;
    const lastId = firstId + docs.length - 1;
    const chunkLo = firstId >>> CHUNK_BITS;
    const chunkHi = lastId >>> CHUNK_BITS;
    // Mutate in-memory postings now: the new DocIds stay invisible until the commit below.
    this.reserved = lastId + 1;
    const touched: Array<[number, number, Bitmap, number, number]> = []; // termId, tier, bitmap, first, last DocId added
    for (const [key, ids] of byTerm) {
      const termId = Math.floor(key / nTiers);
      const tier = key - termId * nTiers;
      const tiers = (this.postings[termId] ??= []);
      const bitmap = (tiers[tier] ??= new RoaringBitmap32());
      bitmap.addMany(ids);
      touched.push([termId, tier, bitmap, ids[0], ids[ids.length - 1]]);
    }
    const touchedFilters: Array<[string, Bitmap]> = [];
    for (const [key, ids] of byFilter) {
      let bitmap = this.filters.get(key);
      if (!bitmap) this.filters.set(key, (bitmap = new RoaringBitmap32()));
      bitmap.addMany(ids);
      touchedFilters.push([key, bitmap]);
    }
    const tombstones = this.tombstoneSet.clone();
    tombstones.addMany(replaced);
    const meta: Meta = { nextDocId: lastId + 1, totalLen: this.total + lengthDelta, tombstones: serializeBitmap(tombstones) };
    // Serialise outside the transaction, yielding now and then, so that the transaction callback
    // (which runs on this thread) only copies bytes.
    const postingWrites: Array<[number[], Buffer]> = [];
    const filterWrites: Array<[Array<string | number>, Buffer]> = [];
    const lengthWrites: Array<[number, Buffer]> = [];
    for (let c = chunkLo; c <= chunkHi; c++) {
      const lo = c * CHUNK_SIZE;
      const hi = lo + CHUNK_SIZE;
      for (const [termId, tier, bitmap, first, last] of touched) {
        if (last < lo || first >= hi) continue;
        postingWrites.push([[termId, tier, c], serializeBitmap(chunkOf(bitmap, lo, hi))]);
        if (postingWrites.length % YIELD_EVERY_BITMAPS === 0) await yieldNow();
      }
      for (const [key, bitmap] of touchedFilters) {
        if (bitmap.rangeCardinality(Math.max(lo, firstId), Math.min(hi, lastId + 1)) === 0) continue;
        const cut = key.indexOf('\u0000');
        filterWrites.push([[key.slice(0, cut), key.slice(cut + 1), c], serializeBitmap(chunkOf(bitmap, lo, hi))]);
      }
      lengthWrites.push([c, Buffer.from(u32Bytes(this.lengths.subarray(lo, Math.min(hi, lastId + 1))))]);
    }
    try {
      await this.dbs.docs.transaction(() => {
        const d = this.dbs;
        for (let t = firstTerm; t < this.termList.length; t++) {
          void d.terms.put(t, [this.termList[t], this.surfaceList[t], this.stopFlags[t] === 1]);
        }
        for (const [key, bytes] of postingWrites) void d.postings.put(key, bytes);
        for (const [key, bytes] of filterWrites) void d.filters.put(key, bytes);
        for (const [key, bytes] of lengthWrites) void d.lengths.put(key, bytes);
        for (let i = 0; i < docs.length; i++) {
          const { input } = docs[i];
          const stored: StoredDocument = { docId: firstId + i, text: input.text };
          if (input.title !== undefined) stored.title = input.title;
          if (input.metadata !== undefined) stored.metadata = input.metadata;
          void d.docs.put(input.id, stored);
          void d.ids.put(firstId + i, input.id);
          void d.forward.put(forward[i][0], forward[i][1]);
        }
        for (const old of replaced) {
          void d.ids.remove(old);
          void d.forward.remove(old);
        }
        void d.meta.put('counters', meta);
      });
    } catch (cause) {
      this.rollback(firstId, firstTerm, touched, touchedFilters);
      throw createError('STORE_WRITE_FAILED', { reason: (cause as Error).message }, { cause });
    }
    this.next = lastId + 1;
    this.total = meta.totalLen;
    this.tombstoneSet = tombstones;
    this.visible = this.next;
    this.generation++;
    return { inserted: docs.length - replaced.length, replaced: replaced.length };
  }

  /** TermIds of a document's tokens, adding new terms to the dictionary (in memory). */
  private tokenIds(doc: AnalyzedDocument, vocabIds: Map<BatchVocabulary, Uint32Array>): Uint32Array {
    if ('local' in doc) {
      let map = vocabIds.get(doc.vocab);
      if (!map) {
        const v = doc.vocab;
        map = new Uint32Array(v.terms.length);
        for (let k = 0; k < v.terms.length; k++) map[k] = this.termIds.get(v.terms[k]) ?? this.addTermInMemory(v.terms[k], v.surfaces[k], v.stops[k] === 1);
        vocabIds.set(v, map);
      }
      const ids = new Uint32Array(doc.local.length);
      for (let j = 0; j < ids.length; j++) ids[j] = map[doc.local[j]];
      return ids;
    }
    const ids = new Uint32Array(doc.terms.length);
    for (let j = 0; j < ids.length; j++) ids[j] = this.termIds.get(doc.terms[j]) ?? this.addTermInMemory(doc.terms[j], doc.surfaces[j], doc.stops[j] === 1);
    return ids;
  }

  private rollback(firstId: number, firstTerm: number, touched: Array<[number, number, Bitmap, number, number]>, filters: Array<[string, Bitmap]>): void {
    this.reserved = firstId;
    for (const [, , bitmap] of touched) bitmap.removeRange(firstId, UINT32_END);
    for (const [, bitmap] of filters) bitmap.removeRange(firstId, UINT32_END);
    for (let t = firstTerm; t < this.termList.length; t++) this.termIds.delete(this.termList[t]);
    this.postings.length = Math.min(this.postings.length, firstTerm);
    this.termList.length = firstTerm;
    this.surfaceList.length = firstTerm;
  }

  /** Deletes documents by external id; resolves with the ids that existed, once durable. */
  delete(ids: string[]): Promise<string[]> {
    return this.enqueue(async () => {
      const found: Array<[string, number]> = [];
      for (const id of new Set(ids)) {
        const doc = this.dbs.docs.get(id);
        if (doc && !this.tombstoneSet.has(doc.docId) && doc.docId < this.visible) found.push([id, doc.docId]);
      }
      if (found.length === 0) return [];
      const tombstones = this.tombstoneSet.clone();
      let total = this.total;
      for (const [, docId] of found) {
        tombstones.add(docId);
        total -= this.lengths[docId];
      }
      const meta: Meta = { nextDocId: this.next, totalLen: total, tombstones: serializeBitmap(tombstones) };
      try {
        await this.dbs.docs.transaction(() => {
          for (const [id, docId] of found) {
            void this.dbs.docs.remove(id);
            void this.dbs.ids.remove(docId);
            void this.dbs.forward.remove(docId);
          }
          void this.dbs.meta.put('counters', meta);
        });
      } catch (cause) {
        throw createError('STORE_WRITE_FAILED', { reason: (cause as Error).message }, { cause });
      }
      this.tombstoneSet = tombstones;
      this.total = total;
      this.generation++;
      return found.map(([id]) => id);
    });
  }

  /** Waits for queued writes (used before close). */
  async drain(): Promise<void> {
    await this.queue;
  }
}

/** Opens a collection's index from its databases. */
export function openCollectionIndex(name: string, dbs: CollectionDbs, opts: { maxForwardTokens: number }): CollectionIndex {
  const index = new CollectionIndex(name, dbs, opts.maxForwardTokens);
  try {
    index.load();
  } catch (cause) {
    if ((cause as { code?: string }).code === 'INDEX_CORRUPT') throw cause;
    throw createError('INDEX_CORRUPT', { path: `collection ${name}` }, { cause });
  }
  return index;
}
