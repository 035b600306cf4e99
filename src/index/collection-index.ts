/**
 * One collection's bag-of-tokens index: term dictionary, postings with tf tiers, document lengths,
 * tombstones, metadata filters, forward store and documents. In memory for reading, LMDB for
 * durability; every write is one LMDB transaction and becomes visible only after it commits.
 * Knows nothing of scoring models: `search/` reads it.
 */
import { setImmediate as yieldNow } from 'node:timers/promises';
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
import type { Database, Key } from 'lmdb';
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
  /**
   * DocIds below this have their postings, filter bits and lengths in LMDB; those from here to
   * nextDocId are rebuilt on open from the forward store (and `tails`). Absent: all stored.
   */
  indexedTo?: number;
}

/** Checkpoint postings once this many committed documents are not in them (bounds replay on open). */
export const CHECKPOINT_EVERY_DOCS = 50_000;
/** Checkpoint postings once the writer has been idle this long with documents not in them. */
export const CHECKPOINT_IDLE_MS = 1_000;
/** Chunk writes per checkpoint transaction (bounds each transaction callback on the event loop). */
const CHECKPOINT_WRITES_PER_TXN = 4_000;

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

/** Adds `docId` to the list of each filterable metadata value (filter key → DocIds). */
function collectFilters(metadata: Record<string, unknown> | undefined, docId: number, byFilter: Map<string, number[]>): void {
  for (const [field, value] of Object.entries(metadata ?? {})) {
    const key = filterKey(field, value);
    if (key === undefined) continue;
    const list = byFilter.get(key);
    if (list) list.push(docId);
    else byFilter.set(key, [docId]);
  }
}

/** The members of `bitmap` in chunk [lo, hi): the bitmap itself when it lies wholly inside. */
function chunkOf(bitmap: Bitmap, lo: number, hi: number): Bitmap {
  return bitmap.minimum() >= lo && bitmap.maximum() < hi ? bitmap : sliceBitmap(bitmap, lo, hi);
}

/** Documents analysed into postings between two yields to the event loop. */
const YIELD_EVERY_DOCS = 50;
/** Bitmaps serialised between two yields to the event loop. */
const YIELD_EVERY_BITMAPS = 4_000;

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

/** Triples buffered by replay before they reach the bitmaps (bounds its memory). */
const REPLAY_PAIRS = 4_000_000;

/** (TermId, DocId, tf) triples of one write, before they are grouped by term. tf saturates at 255. */
class TermDocPairs {
  terms: Uint32Array = new Uint32Array(4096);
  docs: Uint32Array = new Uint32Array(4096);
  tfs: Uint8Array = new Uint8Array(4096);
  length = 0;

  push(term: number, doc: number, tf: number): void {
    if (this.length === this.terms.length) {
      this.terms = ensureU32(this.terms, this.length + 1);
      this.docs = ensureU32(this.docs, this.length + 1);
      this.tfs = ensureU8(this.tfs, this.length + 1);
    }
    this.terms[this.length] = term;
    this.docs[this.length] = doc;
    this.tfs[this.length++] = tf > 255 ? 255 : tf;
  }
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
  /** Scratch per-TermId offsets for grouping a write's postings by term. */
  private termOffsets: Uint32Array = new Uint32Array(1024);
  /** DocIds below this have their postings, filters and lengths stored (see Meta.indexedTo). */
  private indexedTo = 0;
  /** Terms (1 per TermId) and filters whose bitmaps gained DocIds ≥ indexedTo. */
  private dirtyTerm: Uint8Array = new Uint8Array(1024);
  private dirtyTerms: number[] = [];
  private readonly dirtyFilters = new Set<string>();
  private checkpointTimer: NodeJS.Timeout | undefined;
  private checkpointQueued = false;
  private closed = false;
  /** Bumped after every committed write; caches keyed on it stay valid until then. */
  generation = 0;

  constructor(name: string, dbs: CollectionDbs, maxForwardTokens: number) {
    this.name = name;
    this.dbs = dbs;
    this.maxForwardTokens = maxForwardTokens;
  }

  // ---- reading -------------------------------------------------------------------------

  /** Committed documents whose postings are not checkpointed yet (durable through the forward store). */
  get uncheckpointed(): number {
    return this.visible - this.indexedTo;
  }
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
    // Drop anything past the committed counter (a checkpoint never holds more; cheap to enforce).
    for (const tiers of this.postings) for (const b of tiers ?? []) b?.removeRange(this.next, UINT32_END);
    this.indexedTo = Math.min(meta?.indexedTo ?? this.next, this.next);
    this.replay();
    this.visible = this.next;
    this.reserved = this.next;
    if (this.indexedTo < this.next) this.scheduleCheckpoint();
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
    const pairs = new TermDocPairs();
    const byFilter = new Map<string, number[]>();
    const replaced: number[] = [];
    const forward: Buffer[] = [];
    const tails: Array<[number, Buffer]> = [];
    let lengthDelta = 0;
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
      forward.push(Buffer.from(u32Bytes(tokenIds.subarray(0, n))));
      // Past the forward store's truncation the tokens are kept until the next checkpoint.
      if (n < tokenIds.length) tails.push([docId, Buffer.from(u32Bytes(tokenIds.subarray(n)))]);
      this.countTerms(tokenIds, docId, pairs);
      collectFilters(doc.input.metadata, docId, byFilter);
      this.lengths[docId] = tokenIds.length;
      lengthDelta += tokenIds.length;
    }
    const lastId = firstId + docs.length - 1;
    // Mutate in-memory postings now: the new DocIds stay invisible until the commit below. The
    // postings reach LMDB at the next checkpoint; until then the forward store replays them.
    this.reserved = lastId + 1;
    const touched = this.addPairs(pairs);
    const touchedFilters = this.addFilters(byFilter);
    const tombstones = this.tombstoneSet.clone();
    tombstones.addMany(replaced);
    const meta: Meta = { nextDocId: lastId + 1, totalLen: this.total + lengthDelta, tombstones: serializeBitmap(tombstones), indexedTo: this.indexedTo };
    try {
      await this.dbs.docs.transaction(() => {
        const d = this.dbs;
        for (let t = firstTerm; t < this.termList.length; t++) {
          void d.terms.put(t, [this.termList[t], this.surfaceList[t], this.stopFlags[t] === 1]);
        }
        for (let i = 0; i < docs.length; i++) {
          const { input } = docs[i];
          const stored: StoredDocument = { docId: firstId + i, text: input.text };
          if (input.title !== undefined) stored.title = input.title;
          if (input.metadata !== undefined) stored.metadata = input.metadata;
          void d.docs.put(input.id, stored);
          void d.ids.put(firstId + i, input.id);
          void d.forward.put(firstId + i, forward[i]);
        }
        for (const [docId, bytes] of tails) void d.tails.put(docId, bytes);
        for (const old of replaced) {
          void d.ids.remove(old);
          void d.forward.remove(old);
          if (old >= this.indexedTo) void d.tails.remove(old);
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
    this.scheduleCheckpoint();
    return { inserted: docs.length - replaced.length, replaced: replaced.length };
  }

  /** Appends a document's (term, DocId, tf) triples, one per distinct term. */
  private countTerms(tokenIds: Uint32Array, docId: number, pairs: TermDocPairs): void {
    let counts = this.tfCounts;
    const distinct: number[] = [];
    for (let j = 0; j < tokenIds.length; j++) {
      const id = tokenIds[j];
      if (id >= counts.length) counts = this.tfCounts = ensureU32(counts, id + 1);
      if (counts[id]++ === 0) distinct.push(id);
    }
    for (const id of distinct) {
      pairs.push(id, docId, counts[id]);
      counts[id] = 0;
    }
  }

  /**
   * Adds triples to the in-memory postings: grouped by term with a counting sort (DocIds stay in
   * the order given), then one `addMany` per touched (term, tier). Returns the touched TermIds.
   */
  private addPairs(pairs: TermDocPairs): number[] {
    const n = pairs.length;
    const off = (this.termOffsets = ensureU32(this.termOffsets, this.termList.length + 1));
    const { terms, docs, tfs } = pairs;
    const touched: number[] = [];
    for (let i = 0; i < n; i++) if (off[terms[i]]++ === 0) touched.push(terms[i]);
    let pos = 0;
    for (const t of touched) {
      const c = off[t];
      off[t] = pos;
      pos += c;
    }
    const sortedDocs = new Uint32Array(n);
    const sortedTfs = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const j = off[terms[i]]++;
      sortedDocs[j] = docs[i];
      sortedTfs[j] = tfs[i];
    }
    const scratch = new Uint32Array(n);
    const nTiers = TF_TIERS.length;
    let begin = 0;
    for (const t of touched) {
      const end = off[t];
      off[t] = 0;
      const tiers = (this.postings[t] ??= []);
      (tiers[0] ??= new RoaringBitmap32()).addMany(sortedDocs.subarray(begin, end));
      let maxTf = 0;
      for (let j = begin; j < end; j++) if (sortedTfs[j] > maxTf) maxTf = sortedTfs[j];
      for (let k = 1; k < nTiers && TF_TIERS[k] <= maxTf; k++) {
        let m = 0;
        for (let j = begin; j < end; j++) if (sortedTfs[j] >= TF_TIERS[k]) scratch[m++] = sortedDocs[j];
        (tiers[k] ??= new RoaringBitmap32()).addMany(scratch.subarray(0, m));
      }
      this.markDirty(t);
      begin = end;
    }
    return touched;
  }

  private addFilters(byFilter: Map<string, number[]>): Array<[string, Bitmap]> {
    const touched: Array<[string, Bitmap]> = [];
    for (const [key, ids] of byFilter) {
      let bitmap = this.filters.get(key);
      if (!bitmap) this.filters.set(key, (bitmap = new RoaringBitmap32()));
      bitmap.addMany(ids);
      this.dirtyFilters.add(key);
      touched.push([key, bitmap]);
    }
    return touched;
  }

  private markDirty(termId: number): void {
    this.dirtyTerm = ensureU8(this.dirtyTerm, termId + 1);
    if (this.dirtyTerm[termId] === 1) return;
    this.dirtyTerm[termId] = 1;
    this.dirtyTerms.push(termId);
  }

  /**
   * Rebuilds, on open, the postings, filter bits and lengths of DocIds [indexedTo, next) from the
   * forward store, `tails` and the stored documents (they were committed after the last
   * checkpoint). Deleted documents are skipped: their bits would be masked by the tombstones.
   */
  private replay(): void {
    let pairs = new TermDocPairs();
    const byFilter = new Map<string, number[]>();
    for (let docId = this.indexedTo; docId < this.next; docId++) {
      if (this.tombstoneSet.has(docId)) continue;
      const head = this.dbs.forward.getBinary(docId);
      if (!head) continue;
      const tail = this.dbs.tails.getBinary(docId);
      let tokenIds = bytesU32(head);
      if (tail) {
        const rest = bytesU32(tail);
        const all = new Uint32Array(tokenIds.length + rest.length);
        all.set(tokenIds);
        all.set(rest, tokenIds.length);
        tokenIds = all;
      }
      this.lengths[docId] = tokenIds.length;
      this.countTerms(tokenIds, docId, pairs);
      const id = this.dbs.ids.get(docId);
      const doc = id === undefined ? undefined : this.dbs.docs.get(id);
      if (doc?.docId === docId) collectFilters(doc.metadata, docId, byFilter);
      if (pairs.length >= REPLAY_PAIRS) {
        this.addPairs(pairs);
        pairs = new TermDocPairs();
      }
    }
    this.addPairs(pairs);
    this.addFilters(byFilter);
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /**
   * Writes the postings, filter bits and lengths of every committed document not yet in them,
   * then advances `indexedTo`. Runs in the writer queue (no write is in flight meanwhile); each
   * transaction holds at most CHECKPOINT_WRITES_PER_TXN chunks, and a crash between them is
   * harmless: replay on open adds DocIds to bitmaps, which is idempotent.
   */
  checkpoint(): Promise<void> {
    return this.enqueue(() => this.checkpointNow());
  }

  private async checkpointNow(): Promise<void> {
    this.checkpointQueued = false;
    clearTimeout(this.checkpointTimer);
    const from = this.indexedTo;
    const to = this.visible;
    if (from >= to) return;
    const terms = this.dirtyTerms;
    let batch: Array<[Database, Key, Buffer]> = [];
    const commit = async (final?: () => void) => {
      const writes = batch;
      batch = [];
      try {
        await this.dbs.postings.transaction(() => {
          for (const [db, key, bytes] of writes) void db.put(key, bytes);
          final?.();
        });
      } catch (cause) {
        throw createError('STORE_WRITE_FAILED', { reason: (cause as Error).message }, { cause });
      }
    };
    let serialised = 0;
    for (let c = from >>> CHUNK_BITS; c <= (to - 1) >>> CHUNK_BITS; c++) {
      const lo = c * CHUNK_SIZE;
      const hi = lo + CHUNK_SIZE;
      const a = Math.max(lo, from);
      const b = Math.min(hi, to);
      for (const t of terms) {
        for (const [tier, bitmap] of (this.postings[t] ?? []).entries()) {
          if (!bitmap || bitmap.rangeCardinality(a, b) === 0) continue;
          batch.push([this.dbs.postings as Database, [t, tier, c], serializeBitmap(chunkOf(bitmap, lo, hi))]);
          if (++serialised % YIELD_EVERY_BITMAPS === 0) await yieldNow();
          if (batch.length >= CHECKPOINT_WRITES_PER_TXN) await commit();
        }
      }
      for (const key of this.dirtyFilters) {
        const bitmap = this.filters.get(key);
        if (!bitmap || bitmap.rangeCardinality(a, b) === 0) continue;
        const cut = key.indexOf('\u0000');
        batch.push([this.dbs.filters as Database, [key.slice(0, cut), key.slice(cut + 1), c], serializeBitmap(chunkOf(bitmap, lo, hi))]);
      }
      batch.push([this.dbs.lengths as Database, c, Buffer.from(u32Bytes(this.lengths.subarray(lo, b)))]);
    }
    const meta: Meta = { nextDocId: this.next, totalLen: this.total, tombstones: serializeBitmap(this.tombstoneSet), indexedTo: to };
    const staleTails = [...this.dbs.tails.getKeys({ end: to })];
    await commit(() => {
      for (const docId of staleTails) void this.dbs.tails.remove(docId);
      void this.dbs.meta.put('counters', meta);
    });
    for (const t of terms) this.dirtyTerm[t] = 0;
    this.dirtyTerms = [];
    this.dirtyFilters.clear();
    this.indexedTo = to;
  }

  /** After a write: checkpoint now when enough documents wait, else once the writer is idle. */
  private scheduleCheckpoint(): void {
    if (this.closed) return;
    clearTimeout(this.checkpointTimer);
    if (this.uncheckpointed >= CHECKPOINT_EVERY_DOCS) return this.queueCheckpoint();
    this.checkpointTimer = setTimeout(() => this.queueCheckpoint(), CHECKPOINT_IDLE_MS).unref();
  }

  private queueCheckpoint(): void {
    if (this.checkpointQueued || this.closed) return;
    this.checkpointQueued = true;
    // A failed checkpoint loses nothing (the forward store still replays); the next write retries.
    this.checkpoint().catch(() => undefined);
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

  private rollback(firstId: number, firstTerm: number, touched: number[], filters: Array<[string, Bitmap]>): void {
    this.reserved = firstId;
    for (const t of touched) for (const bitmap of this.postings[t] ?? []) bitmap?.removeRange(firstId, UINT32_END);
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
      const meta: Meta = { nextDocId: this.next, totalLen: total, tombstones: serializeBitmap(tombstones), indexedTo: this.indexedTo };
      try {
        await this.dbs.docs.transaction(() => {
          for (const [id, docId] of found) {
            void this.dbs.docs.remove(id);
            void this.dbs.ids.remove(docId);
            void this.dbs.forward.remove(docId);
            if (docId >= this.indexedTo) void this.dbs.tails.remove(docId);
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

  /** Waits for queued writes and stops scheduling checkpoints (before a drop). */
  async drain(): Promise<void> {
    this.closed = true;
    clearTimeout(this.checkpointTimer);
    await this.queue;
  }

  /** Waits for queued writes and checkpoints what they left (before close: a fast next open). */
  async close(): Promise<void> {
    await this.drain();
    await this.checkpoint();
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
