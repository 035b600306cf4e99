/**
 * The exact word forms that the late lexical terms (term proximity and the lexical term) read:
 * each document's `text` as the analyzer's surface forms (lower-cased, before stemming), in
 * order. The first stage stems for recall; the late terms reward the query's own wording, and
 * they leave the title out, since a title is shared by every passage of one source and a window
 * that runs from the title into the text measures nothing about the text.
 *
 * Sequences are analysed from the stored documents on first use and kept in a bounded cache; a
 * DocId names one version of one document for the life of the process, and an entry whose
 * version was deleted or replaced since is dropped when next asked for.
 */
import type { CollectionIndex } from '../index/collection-index.ts';
import type { Analyzer, DocId, Token } from '../types.ts';
import { idf, type Bm25Params } from './bm25.ts';
import { lexicalFeaturesOf, type LexicalFeatures } from './proximity.ts';

/** Defaults of {@link ExactForms} (forms kept per document default to the forward store's bound). */
export const EXACT_FORMS_DEFAULTS = {
  /** Forms kept in the cache over all documents (4 bytes each). */
  cacheTokens: 8_000_000,
  /** Distinct forms interned before the table (and the cache) start over, at the next call. */
  maxForms: 4_000_000,
};

export interface ExactFormsOptions {
  /** Forms kept per document: a longer text is cut there, as the forward store cuts it. */
  maxTokens: number;
  cacheTokens: number;
  maxForms: number;
}

export class ExactForms {
  private readonly index: CollectionIndex;
  private readonly analyzer: Analyzer;
  private readonly options: ExactFormsOptions;
  /** Surface form → form id (the ids the cached sequences hold). */
  private forms = new Map<string, number>();
  /** DocId → its text's form ids; Map order is least recently used first. */
  private readonly cache = new Map<DocId, Uint32Array>();
  private cachedTokens = 0;

  constructor(index: CollectionIndex, analyzer: Analyzer, options: Partial<ExactFormsOptions> = {}) {
    this.index = index;
    this.analyzer = analyzer;
    this.options = { ...EXACT_FORMS_DEFAULTS, maxTokens: index.maxForwardTokens, ...options };
  }

  /** The form ids of a document's text (empty when the document is gone). */
  document(docId: DocId): Uint32Array {
    const id = this.index.externalId(docId);
    const hit = this.cache.get(docId);
    if (hit) {
      // Re-inserted to mark it recently used, unless its version is gone.
      this.cache.delete(docId);
      if (id !== undefined) this.cache.set(docId, hit);
      else this.cachedTokens -= hit.length;
      return id === undefined ? new Uint32Array(0) : hit;
    }
    const doc = id === undefined ? undefined : this.index.getDocument(id);
    if (!doc || doc.docId !== docId) return new Uint32Array(0);
    const tokens = this.analyzer.analyze(doc.text);
    const n = Math.min(tokens.length, this.options.maxTokens);
    const seq = new Uint32Array(n);
    for (let i = 0; i < n; i++) seq[i] = this.intern(tokens[i].surface);
    this.cache.set(docId, seq);
    this.cachedTokens += n;
    for (const [old, s] of this.cache) {
      if (this.cachedTokens <= this.options.cacheTokens || old === docId) break;
      this.cache.delete(old);
      this.cachedTokens -= s.length;
    }
    return seq;
  }

  /**
   * The query's non-stop words as form id → weight: the idf of the word's index term (its stem),
   * so that an exact form weighs what its term weighs in the first stage. Words in none of the
   * documents read so far are left out: no sequence can hold them. `query` is its text, or the
   * tokens the analyzer already gave for it.
   */
  queryWeights(query: string | readonly Token[]): Map<number, number> {
    const weights = new Map<number, number>();
    for (const t of typeof query === 'string' ? this.analyzer.analyze(query) : query) {
      if (t.stop) continue;
      const form = this.forms.get(t.surface);
      const term = this.index.termId(t.term);
      if (form === undefined || term === undefined) continue;
      weights.set(form, idf(this.index.df(term), this.index.liveCount));
    }
    return weights;
  }

  /**
   * Both late lexical terms of each document for one query (see `proximity.ts`): proximity for
   * each of `windows`, and the lexical term when `lexical` gives BM25's parameters (the length
   * normalisation uses the collection's average length).
   */
  features(query: string | readonly Token[], docIds: ArrayLike<DocId>, windows: readonly number[], lexical?: Bm25Params): LexicalFeatures {
    // The table starts over only between calls, so that one call's ids never mix two tables.
    if (this.forms.size >= this.options.maxForms) this.clear();
    // Documents first: their forms must be interned before the query's are looked up.
    const docs = Array.from(docIds, (d) => this.document(d));
    return lexicalFeaturesOf(docs, this.queryWeights(query), windows, lexical ? { avgdl: this.index.avgLength, params: lexical } : undefined);
  }

  private intern(surface: string): number {
    let id = this.forms.get(surface);
    if (id === undefined) this.forms.set(surface, (id = this.forms.size));
    return id;
  }

  private clear(): void {
    this.forms = new Map();
    this.cache.clear();
    this.cachedTokens = 0;
  }
}
