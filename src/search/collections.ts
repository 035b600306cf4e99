/**
 * The collections of one data directory: create, open, list, drop, ingest and delete. Composes
 * the store, the analysis pool, each collection's index and its searcher. Plain values in and
 * out; the HTTP layer only maps them.
 */
import { resolve } from 'node:path';
import { createError } from '../errors.ts';
import type { AnalyzerInput, AnalyzerOptions, WinkAnalyzerOptions } from '../analysis/index.ts';
import { createAnalyzer, resolveAnalyzerOptions } from '../analysis/index.ts';
import type { AnalysisPool, AnalyzedText } from '../analysis/pool.ts';
import { openCollectionIndex, type CollectionIndex, type WriteResult } from '../index/collection-index.ts';
import { MAX_COLLECTIONS, type Store } from '../index/store.ts';
import type { DocumentInput } from '../types.ts';
import type { Bm25Params } from './bm25.ts';
import { Searcher, type LateRetriever } from './searcher.ts';

/** Options fixed when a collection is created (they decide its on-disk format). */
export interface CollectionOptions {
  analyzer: AnalyzerOptions;
  retriever: { kind: 'sidr-glove' | 'bm25' | 'onnx'; [key: string]: unknown };
}

export interface Collection {
  readonly name: string;
  readonly options: CollectionOptions;
  readonly index: CollectionIndex;
  readonly searcher: Searcher;
  createdAt: string;
}

/** Builds the parametric retriever of a collection (undefined: lexical/beta only). */
export type RetrieverFactory = (collection: Collection, store: Store) => Promise<LateRetriever | undefined>;

export interface CollectionsOptions {
  bm25: Bm25Params;
  maxForwardTokens: number;
  defaultStem: boolean;
  maxDocumentChars: number;
  /** Log progress every this many documents of one ingest call. */
  progressEvery?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export const DEFAULT_COLLECTION = 'default';
/** Documents per LMDB transaction when a request brings more (bounds event-loop pauses). */
const COMMIT_SLICE_DOCS = 250;
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export class Collections {
  private readonly open = new Map<string, Collection>();
  private readonly store: Store;
  private readonly pool: AnalysisPool;
  private readonly options: CollectionsOptions;
  private readonly retrieverFactory?: RetrieverFactory;

  constructor(store: Store, pool: AnalysisPool, options: CollectionsOptions, retrieverFactory?: RetrieverFactory) {
    this.store = store;
    this.pool = pool;
    this.options = options;
    this.retrieverFactory = retrieverFactory;
  }

  /** Default options of a new collection. */
  defaults(): CollectionOptions {
    return { analyzer: { name: 'wink', stem: this.options.defaultStem }, retriever: { kind: 'sidr-glove' } };
  }

  /** Opens every collection in the catalog and creates `default` when missing. */
  async openAll(): Promise<void> {
    for (const { name, options } of this.store.listCollections()) await this.attach(name, options as unknown as CollectionOptions & { createdAt: string });
    if (!this.open.has(DEFAULT_COLLECTION)) await this.create(DEFAULT_COLLECTION, {});
  }

  private async attach(name: string, options: CollectionOptions & { createdAt?: string }): Promise<Collection> {
    const index = openCollectionIndex(name, this.store.collectionDbs(name), { maxForwardTokens: this.options.maxForwardTokens });
    const searcher = new Searcher(index, createAnalyzer(options.analyzer), { bm25: this.options.bm25 });
    const collection: Collection = {
      name,
      options: { analyzer: options.analyzer, retriever: options.retriever },
      index,
      searcher,
      createdAt: options.createdAt ?? new Date().toISOString(),
    };
    if (this.retrieverFactory) searcher.retriever = await this.retrieverFactory(collection, this.store);
    this.open.set(name, collection);
    return collection;
  }

  /** Creates a collection; idempotent when it exists with the same options (409 otherwise). */
  async create(name: string, partial: { analyzer?: AnalyzerInput; retriever?: Partial<CollectionOptions['retriever']> }): Promise<{ collection: Collection; created: boolean }> {
    if (!NAME_PATTERN.test(name)) throw createError('COLLECTION_NAME_INVALID', { name });
    const options = this.resolveOptions(partial);
    const existing = this.open.get(name);
    if (existing) {
      if (JSON.stringify(existing.options) !== JSON.stringify(options) && (partial.analyzer || partial.retriever)) {
        throw createError('COLLECTION_EXISTS', { name });
      }
      return { collection: existing, created: false };
    }
    // Checked before anything is written: a catalog entry without its databases would fail every start.
    if (this.open.size >= MAX_COLLECTIONS) throw createError('COLLECTIONS_TOO_MANY', { limit: MAX_COLLECTIONS });
    const createdAt = new Date().toISOString();
    await this.store.putCollection(name, { ...options, createdAt });
    try {
      return { collection: await this.attach(name, { ...options, createdAt }), created: true };
    } catch (err) {
      // A retriever that cannot be built (bad model directory, vocabulary mismatch) must not
      // leave a collection in the catalog that would fail again on every start.
      this.open.delete(name);
      await this.store.dropCollection(name);
      throw err;
    }
  }

  /**
   * Completes partial options. An `onnx` retriever given without an analyzer gets the wordpiece
   * analyzer of its model's vocabulary; model and vocabulary paths become absolute.
   */
  private resolveOptions(partial: { analyzer?: AnalyzerInput; retriever?: Partial<CollectionOptions['retriever']> }): CollectionOptions {
    const d = this.defaults();
    const retriever = { ...d.retriever, ...partial.retriever } as CollectionOptions['retriever'];
    if (typeof retriever.model === 'string') retriever.model = resolve(retriever.model);
    const analyzer: AnalyzerInput | undefined =
      partial.analyzer ?? (retriever.kind === 'onnx' && typeof retriever.model === 'string' ? { name: 'wordpiece', model: retriever.model } : undefined);
    return { analyzer: resolveAnalyzerOptions(analyzer, d.analyzer as WinkAnalyzerOptions), retriever };
  }

  get(name: string): Collection {
    const c = this.open.get(name);
    if (!c) throw createError('COLLECTION_NOT_FOUND', { name });
    return c;
  }

  has(name: string): boolean {
    return this.open.has(name);
  }

  list(): Collection[] {
    return [...this.open.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async drop(name: string): Promise<void> {
    const c = this.get(name);
    this.open.delete(name);
    await c.index.drain();
    await c.searcher.retriever?.close?.();
    await this.store.dropCollection(name);
  }

  /** Checks a batch before any analysis: ids unique, fields well-typed. */
  validate(docs: DocumentInput[]): void {
    const seen = new Set<string>();
    docs.forEach((doc, index) => {
      if (typeof doc !== 'object' || doc === null) throw createError('DOCUMENT_INVALID', { index, reason: 'not an object' });
      if (typeof doc.id !== 'string' || doc.id.length === 0 || doc.id.length > 512) throw createError('DOCUMENT_INVALID', { index, reason: '"id" must be a string of 1-512 characters' });
      if (typeof doc.text !== 'string') throw createError('DOCUMENT_INVALID', { index, reason: '"text" must be a string' });
      if (doc.text.length > this.options.maxDocumentChars) throw createError('DOCUMENT_INVALID', { index, reason: `"text" exceeds ${this.options.maxDocumentChars} characters` });
      if (doc.title !== undefined && typeof doc.title !== 'string') throw createError('DOCUMENT_INVALID', { index, reason: '"title" must be a string' });
      if (doc.metadata !== undefined && (typeof doc.metadata !== 'object' || doc.metadata === null || Array.isArray(doc.metadata))) {
        throw createError('DOCUMENT_INVALID', { index, reason: '"metadata" must be an object' });
      }
      if (seen.has(doc.id)) throw createError('DOCUMENTS_DUPLICATE_ID', { id: doc.id }, { details: { index } });
      seen.add(doc.id);
    });
  }

  /** Analyses (off the event loop) and upserts a batch; resolves once durable. */
  async ingest(name: string, docs: DocumentInput[]): Promise<WriteResult> {
    const c = this.get(name);
    this.validate(docs);
    const texts = docs.map((d) => (d.title ? `${d.title}\n${d.text}` : d.text));
    // Commit in slices: each transaction's callback runs on the event loop, and a slice keeps it
    // short enough for searches arriving meanwhile. Every slice is handed to the analysis workers
    // at once and committed as soon as it (and those before it) are analysed, so committing one
    // overlaps analysing the next. Every slice is durable before the answer.
    const analyses: Array<Promise<AnalyzedText[]>> = [];
    for (let i = 0; i < docs.length; i += COMMIT_SLICE_DOCS) {
      const analysis = this.pool.analyze(c.options.analyzer, texts.slice(i, i + COMMIT_SLICE_DOCS));
      analysis.catch(() => undefined); // awaited below, in order; a failure stops the loop there
      analyses.push(analysis);
    }
    const total: WriteResult = { inserted: 0, replaced: 0 };
    for (let s = 0; s < analyses.length; s++) {
      const analyzed = await analyses[s];
      const at = s * COMMIT_SLICE_DOCS;
      const r = await c.index.upsert(analyzed.map((a, j) => ({ input: docs[at + j], ...a })));
      total.inserted += r.inserted;
      total.replaced += r.replaced;
    }
    return total;
  }

  /** Deletes documents; returns the ids that existed. */
  async deleteDocuments(name: string, ids: string[]): Promise<string[]> {
    return this.get(name).index.delete(ids);
  }

  async close(): Promise<void> {
    for (const c of this.open.values()) {
      await c.index.close();
      await c.searcher.retriever?.close?.();
    }
  }
}
