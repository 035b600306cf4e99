/**
 * Query-time composition: analyse the query, weight it (idf for `lexical`/`beta`, E_θ(q) for
 * `late`), run the first stage, optionally re-rank the top m, and hydrate hits. Plain values in
 * and out; no HTTP here.
 */
import { createError } from '../errors.ts';
import type { Bitmap } from '../index/codec.ts';
import type { CollectionIndex } from '../index/collection-index.ts';
import type { Analyzer, DocId, SparseVector, Token } from '../types.ts';
import { explainScore, idf, saturation, type Bm25Params } from './bm25.ts';
import { FirstStage } from './first-stage.ts';
import { ExactForms, type ExactFormsOptions } from './exact-forms.ts';
import { DEFAULT_PROXIMITY_WINDOW, type LexicalFeatures, type ProximitySetting } from './proximity.ts';
import { TF_TIERS } from '../index/collection-index.ts';

export type SearchMode = 'late' | 'beta' | 'lexical';

/** A retriever with a parametric side (sidr-glove, onnx): supplies E_θ(q) and f_θ. */
export interface LateRetriever {
  readonly kind: string;
  /** The version serving now (reading it pins nothing and syncs nothing). */
  readonly version: number;
  /** Version of θ pinned for one request; `settings` override serving settings for it. */
  pin(settings?: ServingSettings): PinnedRetriever;
  /** Releases workers and sessions. */
  close?(): Promise<void>;
}

/** Serving settings a request (or calibration) may override for itself. */
export interface ServingSettings {
  /** Multiplier on expansion weights in the query vector. */
  expansionScale?: number;
  /** Final-score mix γ. */
  gamma?: number;
  /** Weight π of term proximity in the final mix (0: off). */
  proximity?: number;
  /** Proximity window, in term positions. */
  proximityWindow?: number;
  /** Weight λ of the lexical term (BM25 of the query's own non-stop terms) in the final mix (0: off). */
  lexical?: number;
}

/** A value, or a promise of it when the retriever's encoder runs asynchronously (onnx). */
export type MaybePromise<T> = T | Promise<T>;

/** θ of one version, stable for the duration of one request. */
export interface PinnedRetriever {
  readonly version: number;
  /** Final-score mix γ: f_β/max f_β + γ·f_θ/max f_θ. */
  readonly gamma: number;
  /** Term proximity's weight π and window in the final mix (absent: off). */
  readonly proximity?: ProximitySetting;
  /** Weight λ of the lexical term in the final mix (absent or 0: off). */
  readonly lexical?: number;
  /**
   * E_θ(q) as first-stage weights (present terms ∪ expansions). `text` is the raw query, for
   * encoders that tokenize it themselves (onnx); `termIds` are the analyzer's terms the index knows;
   * `outside` the surfaces of query words the index has never seen (they may still expand).
   */
  encodeQuery(termIds: Uint32Array, text?: string, outside?: string[]): MaybePromise<SparseVector & { expanded?: Uint8Array }>;
  /** f_θ(q, d) for each document; `query` is what encodeQuery returned. */
  rerank(query: SparseVector, docIds: Uint32Array): MaybePromise<Float32Array>;
  /** Called once when the request is done with this pin (lets a swapped-out model be freed). */
  release?(): void;
}

export interface SearchRequest {
  query: string;
  k: number;
  m: number;
  mode: SearchMode;
  explain?: boolean;
  filter?: Record<string, unknown>;
  /** Return title/text/metadata with each hit. Default true. */
  includeDocuments?: boolean;
  /** Per-request serving overrides (late mode). */
  settings?: ServingSettings;
}

export interface MatchedTerm {
  term: string;
  queryWeight: number;
  expansion: boolean;
  tf: number;
  contribution: number;
  formula: string;
}

export interface SearchHit {
  id: string;
  docId: DocId;
  score: number;
  firstStageScore: number;
  parametricScore?: number;
  /** The best window's idf mass of the query's terms (late search with proximity on). */
  proximityScore?: number;
  /** BM25 of the query's non-stop terms over the document's exact term frequencies (late search with the lexical term on). */
  lexicalScore?: number;
  title?: string;
  text?: string;
  metadata?: Record<string, unknown>;
  explain?: { matched: MatchedTerm[] };
}

export interface SearchResult {
  hits: SearchHit[];
  mode: SearchMode;
  retrieverVersion: number | null;
  timings: { analyzeMs: number; firstStageMs: number; rerankMs: number; totalMs: number };
}

/** One request's state between the steps of {@link Searcher.search} / {@link Searcher.searchAsync}. */
interface SearchState {
  req: SearchRequest;
  /** The query's tokens, as the analyzer gave them (the late lexical terms read their forms). */
  tokens: Token[];
  termIds: Uint32Array;
  outside: string[];
  filter: Bitmap | undefined | null;
  pinned: PinnedRetriever | undefined;
  params: Bm25Params;
  t0: number;
  t1: number;
  /** End of the first stage (query encoding included). */
  t2: number;
}

export interface SearcherOptions {
  bm25: Bm25Params;
  /** Bounds of the exact forms the late lexical terms read (defaults: `EXACT_FORMS_DEFAULTS`). */
  exactForms?: Partial<ExactFormsOptions>;
}

/** Per-collection searcher; holds the first-stage scratch space. */
export class Searcher {
  private readonly firstStage: FirstStage;
  readonly index: CollectionIndex;
  readonly analyzer: Analyzer;
  readonly options: SearcherOptions;
  /** The documents' exact word forms, which the late lexical terms read (shared with training). */
  readonly exactForms: ExactForms;
  retriever: LateRetriever | undefined;

  constructor(index: CollectionIndex, analyzer: Analyzer, options: SearcherOptions, retriever?: LateRetriever) {
    this.index = index;
    this.analyzer = analyzer;
    this.options = options;
    this.retriever = retriever;
    this.firstStage = new FirstStage(index);
    this.exactForms = new ExactForms(index, analyzer, options.exactForms);
  }

  /** Term ids of the query's tokens that the index knows (in order, with repeats). */
  queryTerms(text: string): Uint32Array {
    return this.queryTokens(text).termIds;
  }

  /** The query's known term ids, and the surfaces of its non-stop words the index has never seen. */
  queryTokens(text: string): { tokens: Token[]; termIds: Uint32Array; outside: string[] } {
    const tokens = this.analyzer.analyze(text);
    if (tokens.length === 0) throw createError('QUERY_EMPTY');
    const ids: number[] = [];
    const outside: string[] = [];
    for (const t of tokens) {
      const id = this.index.termId(t.term);
      if (id !== undefined) ids.push(id);
      else if (!t.stop) outside.push(t.surface);
    }
    return { tokens, termIds: Uint32Array.from(ids), outside };
  }

  /** idf-weighted query vector (query tf multiplies, as BM25 sums over query terms). */
  lexicalQuery(termIds: Uint32Array): SparseVector {
    const counts = new Map<number, number>();
    for (const id of termIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    const ids = Uint32Array.from([...counts.keys()].sort((a, b) => a - b));
    const n = this.index.liveCount;
    const weights = Float32Array.from(ids, (id) => idf(this.index.df(id), n) * counts.get(id)!);
    return { ids, weights };
  }

  private filterBitmap(filter: Record<string, unknown> | undefined): Bitmap | undefined | null {
    if (!filter || Object.keys(filter).length === 0) return undefined;
    let out: Bitmap | undefined;
    for (const [field, value] of Object.entries(filter)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) throw createError('FILTER_INVALID', { field });
      const b = this.index.filter(field, value);
      if (!b) return null;
      out = out ? out.clone() : b.clone();
      if (out !== b) out.andInPlace(b);
    }
    return out;
  }

  /**
   * Runs one query with a synchronous retriever (bm25, sidr-glove). A retriever whose encoder is
   * asynchronous (onnx) fails here with `RETRIEVER_UNSUPPORTED`: use {@link Searcher.searchAsync}.
   */
  search(req: SearchRequest): SearchResult {
    const s = this.begin(req);
    try {
      const qv = s.pinned ? this.settled(s.pinned.encodeQuery(s.termIds, req.query, s.outside)) : this.lexicalQuery(s.termIds);
      const ranked = this.rank(s, qv);
      const parametric = s.pinned && ranked.ids.length > 0 ? this.settled(s.pinned.rerank(qv, ranked.ids.subarray(0, Math.min(req.m, ranked.ids.length)))) : undefined;
      return this.finish(s, qv, ranked, parametric);
    } finally {
      s.pinned?.release?.();
    }
  }

  /**
   * Runs one query with any retriever, awaiting encoders that run off the event loop (onnx
   * sessions in a worker thread). The pinned version serves the whole request, even if the
   * retriever is trained or its model swapped meanwhile.
   */
  async searchAsync(req: SearchRequest): Promise<SearchResult> {
    const s = this.begin(req);
    try {
      const qv = s.pinned ? await s.pinned.encodeQuery(s.termIds, req.query, s.outside) : this.lexicalQuery(s.termIds);
      const ranked = this.rank(s, qv);
      const parametric = s.pinned && ranked.ids.length > 0 ? await s.pinned.rerank(qv, ranked.ids.subarray(0, Math.min(req.m, ranked.ids.length))) : undefined;
      return this.finish(s, qv, ranked, parametric);
    } finally {
      s.pinned?.release?.();
    }
  }

  /** A synchronous retriever's value; a promise means the caller needed {@link Searcher.searchAsync}. */
  private settled<T>(value: MaybePromise<T>): T {
    if (!(value instanceof Promise)) return value;
    value.catch(() => undefined); // nobody awaits it: keep a late rejection from going unhandled
    throw createError('RETRIEVER_UNSUPPORTED', { retriever: this.retriever?.kind ?? 'unknown', reason: 'its encoder runs asynchronously; call searchAsync' });
  }

  /** Analyse, filter and pin: everything before the query vector. */
  private begin(req: SearchRequest): SearchState {
    const t0 = performance.now();
    const { tokens, termIds, outside } = this.queryTokens(req.query);
    const t1 = performance.now();
    const filter = this.filterBitmap(req.filter);
    let pinned: PinnedRetriever | undefined;
    if (req.mode === 'late') {
      if (!this.retriever) throw createError('MODE_UNSUPPORTED', { mode: req.mode, retriever: 'bm25' });
      pinned = this.retriever.pin(req.settings);
    }
    const params = req.mode === 'beta' ? { k1: 0, b: 0 } : this.options.bm25;
    return { req, tokens, termIds, outside, filter, pinned, params, t0, t1, t2: t1 };
  }

  /** The first stage over the frozen index (top max(m, k) when re-ranking). */
  private rank(s: SearchState, qv: SparseVector): { ids: Uint32Array; scores: Float32Array } {
    const m = s.pinned ? Math.max(s.req.m, s.req.k) : s.req.k;
    const ranked = s.filter === null || qv.ids.length === 0 ? { ids: new Uint32Array(0), scores: new Float32Array(0) } : this.firstStage.run(qv, m, s.params, s.filter);
    s.t2 = performance.now();
    return ranked;
  }

  /** Mix the re-ranked scores in, order, hydrate and explain. */
  private finish(s: SearchState, qv: SparseVector, ranked: { ids: Uint32Array; scores: Float32Array }, parametric: Float32Array | undefined): SearchResult {
    const { req, pinned, params, termIds } = s;
    let order = Array.from(ranked.ids.keys());
    let final = Array.from(ranked.scores);
    let prox: { weight: number; scores: Float64Array } | undefined;
    let lex: { weight: number; scores: Float64Array } | undefined;
    if (pinned && parametric) {
      const reranked = parametric.length;
      const maxBeta = ranked.scores[0] || 1;
      let maxTheta = 0;
      for (const x of parametric) maxTheta = Math.max(maxTheta, x);
      maxTheta ||= 1;
      ({ prox, lex } = this.lexicalTerms(s, ranked.ids.subarray(0, reranked)));
      const maxProx = prox ? Math.max(...prox.scores) || 1 : 1;
      const maxLex = lex ? Math.max(...lex.scores) || 1 : 1;
      final = order.map((i) =>
        i < reranked
          ? ranked.scores[i] / maxBeta +
            (pinned.gamma * parametric[i]) / maxTheta +
            (prox ? (prox.weight * prox.scores[i]) / maxProx : 0) +
            (lex ? (lex.weight * lex.scores[i]) / maxLex : 0)
          : ranked.scores[i] / maxBeta - 1,
      );
      order = order.sort((a, b) => final[b] - final[a] || a - b);
    }
    const t3 = performance.now();
    const hits: SearchHit[] = [];
    for (const i of order.slice(0, req.k)) {
      const docId = ranked.ids[i];
      const hit = this.hydrate(docId, req.includeDocuments !== false);
      if (!hit) continue;
      hit.score = final[i];
      hit.firstStageScore = ranked.scores[i];
      if (parametric && i < parametric.length) hit.parametricScore = parametric[i];
      if (prox && i < prox.scores.length) hit.proximityScore = prox.scores[i];
      if (lex && i < lex.scores.length) hit.lexicalScore = lex.scores[i];
      if (req.explain) hit.explain = { matched: this.explain(qv, docId, params, termIds) };
      hits.push(hit);
    }
    const t4 = performance.now();
    return {
      hits,
      mode: req.mode,
      retrieverVersion: pinned ? pinned.version : null,
      timings: { analyzeMs: s.t1 - s.t0, firstStageMs: s.t2 - s.t1, rerankMs: t3 - s.t2, totalMs: t4 - s.t0 },
    };
  }

  /**
   * Proximity and the lexical term of the re-ranked documents, each when the request or the pinned
   * version turns it on.
   */
  private lexicalTerms(s: SearchState, docIds: Uint32Array): { prox?: { weight: number; scores: Float64Array }; lex?: { weight: number; scores: Float64Array } } {
    const pi = s.req.settings?.proximity ?? s.pinned?.proximity?.weight ?? 0;
    const lambda = s.req.settings?.lexical ?? s.pinned?.lexical ?? 0;
    if (!(pi > 0) && !(lambda > 0)) return {};
    const window = s.req.settings?.proximityWindow ?? s.pinned?.proximity?.window ?? DEFAULT_PROXIMITY_WINDOW;
    const terms = this.lexicalFeatures(s.tokens, docIds, pi > 0 ? [window] : [], lambda > 0);
    return { ...(pi > 0 ? { prox: { weight: pi, scores: terms.proximity[0] } } : {}), ...(terms.lexical ? { lex: { weight: lambda, scores: terms.lexical } } : {}) };
  }

  /**
   * The parameter-free lexical features of each document (see `proximity.ts`), over the exact
   * word forms of its text: term proximity for each window (the idf mass of the query's non-stop
   * words that its best stretch of `window` positions holds) and, with `lexical`, the lexical term
   * (BM25 of those words over their exact frequencies in the text).
   */
  lexicalFeatures(query: string | readonly Token[], docIds: ArrayLike<DocId>, windows: readonly number[], lexical: boolean): LexicalFeatures {
    return this.exactForms.features(query, docIds, windows, lexical ? this.options.bm25 : undefined);
  }

  private hydrate(docId: DocId, withDocument: boolean): SearchHit | undefined {
    const id = this.index.externalId(docId);
    if (id === undefined) return undefined;
    const hit: SearchHit = { id, docId, score: 0, firstStageScore: 0 };
    if (withDocument) {
      const doc = this.index.getDocument(id);
      if (doc) {
        if (doc.title !== undefined) hit.title = doc.title;
        hit.text = doc.text;
        if (doc.metadata !== undefined) hit.metadata = doc.metadata;
      }
    }
    return hit;
  }

  /** Matched terms of one hit with their first-stage contributions. */
  private explain(qv: SparseVector, docId: DocId, params: Bm25Params, present: Uint32Array): MatchedTerm[] {
    const presentSet = new Set(present);
    const dl = this.index.docLengths[docId];
    const avgdl = this.index.avgLength;
    const out: MatchedTerm[] = [];
    for (let i = 0; i < qv.ids.length; i++) {
      const termId = qv.ids[i];
      let tf = 0;
      const tiers = this.index.tierCount(termId);
      for (let t = 0; t < tiers; t++) {
        if (this.index.posting(termId, t)?.has(docId)) tf = TF_TIERS[t];
        else break;
      }
      if (tf === 0) continue;
      out.push({
        term: this.index.term(termId),
        queryWeight: qv.weights[i],
        expansion: !presentSet.has(termId),
        tf,
        contribution: qv.weights[i] * saturation(tf, dl, avgdl, params),
        formula: explainScore(qv.weights[i], tf, dl, avgdl, params),
      });
    }
    return out.sort((a, b) => b.contribution - a.contribution);
  }
}
