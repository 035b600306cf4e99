/**
 * The `onnx` retriever of a collection (DESIGN §3.2): a frozen transformer backbone (SiDR, SPLADE
 * or dense) from a model directory, bound to the collection's WordPiece vocabulary through token
 * strings, with a trainable per-dimension head θ versioned in the collection's lineage. Models are
 * hot-swapped without touching the index: T(D) is the tokenizer's, not the model's.
 */
import { resolve } from 'node:path';
import type { AnalyzerOptions } from '../analysis/index.ts';
import type { WordPieceTokenizer } from '../analysis/wordpiece.ts';
import { createError } from '../errors.ts';
import { applyDenseHead, applySparseHead } from '../encoder/heads.ts';
import { availableProviders, type EncoderLogger, type ProviderName } from '../encoder/onnx.ts';
import { createBackboneCache, isDense, type BackboneCache, type BackboneOutput, type PassageInput } from '../encoder/onnx-encoder.ts';
import type { AdamW, AdamWState } from '../encoder/optimizer.ts';
import type { CollectionIndex } from '../index/collection-index.ts';
import { RetrieverStore, type VersionRecord } from '../index/retriever-store.ts';
import type { Store } from '../index/store.ts';
import type { DocId, SparseVector } from '../types.ts';
import { idf } from './bm25.ts';
import { PROXIMITY_OFF, proximityTensor } from './proximity.ts';
import type { Collection } from './collections.ts';
import {
  identityHead,
  loadModel,
  materialise,
  meta,
  modelInfo,
  onnxOptionsFrom,
  type LoadedModel,
  type OnnxRetrieverOptions,
  type Served,
} from './onnx-models.ts';
import { bagOf, createHeadOptimizer, headLoss, stepHead, type HeadTriple } from './onnx-train.ts';
import type { PinnedRetriever } from './searcher.ts';
import type { CalibratedSettings, TrainableRetriever, TrainOptions, TrainResult, TrainTriple, VersionMeta } from './trainable.ts';

export { onnxOptionsFrom, type OnnxRetrieverOptions } from './onnx-models.ts';

/** Keep a swapped-out model at most this long for searches that pinned it and never released. */
export const RETIRED_MODEL_GRACE_MS = 60_000;

/** The model-vocabulary side of a query, kept for `rerank` (keyed by the vector encodeQuery returned). */
interface QueryState {
  sparse?: SparseVector;
  dense?: Float32Array;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Σ a_v·b_v over two ascending sparse vectors. */
function sparseDot(a: SparseVector, b: SparseVector): number {
  let i = 0;
  let j = 0;
  let s = 0;
  while (i < a.ids.length && j < b.ids.length) {
    if (a.ids[i] < b.ids[j]) i++;
    else if (a.ids[i] > b.ids[j]) j++;
    else s += a.weights[i++] * b.weights[j++];
  }
  return s;
}

/** True for retrievers whose backbone can be hot-swapped (`POST /retriever/model`). */
export function isModelSwappable(r: unknown): r is OnnxRetriever {
  return r instanceof OnnxRetriever;
}

export class OnnxRetriever implements TrainableRetriever {
  readonly kind = 'onnx';
  readonly index: CollectionIndex;
  readonly store: RetrieverStore;
  readonly options: OnnxRetrieverOptions;
  /** {@link vocabularyHash} of the collection's analyzer: every model must match it. */
  readonly vocabHash: string;
  private served: Served;
  private readonly cache: BackboneCache | null;
  private readonly queries = new WeakMap<SparseVector, QueryState>();
  /** Train, swap and rollback run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private optimizer: { version: number; opt: AdamW } | undefined;
  /** Swapped-out models not yet disposed (pinned by searches in flight). */
  private readonly retired = new Set<LoadedModel>();
  private closed = false;

  private constructor(index: CollectionIndex, store: RetrieverStore, options: OnnxRetrieverOptions, vocabHash: string, served: Served, cache: BackboneCache | null) {
    this.index = index;
    this.store = store;
    this.options = options;
    this.vocabHash = vocabHash;
    this.served = served;
    this.cache = cache;
  }

  /**
   * Opens the retriever on the collection's current version: the model named by the version's
   * lineage (or `model` for a new collection, recorded as version 0 'init'), the head from the
   * lineage's row deltas. The collection's analyzer must be `wordpiece` with the model's vocabulary.
   */
  static async open(args: { index: CollectionIndex; store: RetrieverStore; analyzer: AnalyzerOptions; model: unknown; options: OnnxRetrieverOptions }): Promise<OnnxRetriever> {
    const { index, store, analyzer, options } = args;
    if (analyzer.name !== 'wordpiece' || !analyzer.vocabHash) {
      throw createError('MODEL_VOCABULARY_MISMATCH', { reason: `the collection's analyzer is "${analyzer.name}"; an onnx retriever needs the wordpiece analyzer of its model's vocabulary` });
    }
    const cache = options.cacheEntries > 0 ? createBackboneCache(options.cacheEntries) : null;
    const current = store.current();
    let served: Served;
    if (current === undefined) {
      if (typeof args.model !== 'string' || args.model === '') throw createError('MODEL_NOT_FOUND', { dir: '', reason: 'retriever.model must name a model directory' });
      const model = await loadModel(resolve(args.model), analyzer.vocabHash, options, cache);
      const record: VersionRecord = {
        version: 0,
        parent: null,
        createdAt: new Date().toISOString(),
        origin: 'init',
        info: { ...modelInfo(model), note: 'head g = 1, b = 0 (the backbone as published)' },
        tensors: {},
        rows: {},
      };
      try {
        await store.publish(record, { makeCurrent: true });
      } catch (err) {
        await model.encoder.dispose();
        throw err;
      }
      served = { record: meta(record), model, head: identityHead(model.encoder) };
    } else {
      served = await materialise(store, current, analyzer.vocabHash, options, cache, undefined);
    }
    return new OnnxRetriever(index, store, options, analyzer.vocabHash, served, cache);
  }

  /** Execution provider of the serving model's sessions. */
  get provider(): ProviderName {
    return this.served.model.encoder.provider;
  }

  /** The serving model: directory, hash and kind. */
  get model(): { dir: string; hash: string; kind: string; provider: ProviderName } {
    const e = this.served.model.encoder;
    return { dir: this.served.model.dir, hash: e.hash, kind: e.kind, provider: e.provider };
  }

  // ---- serving ---------------------------------------------------------------------------

  get version(): number {
    return this.served.record.version;
  }

  pin(): PinnedRetriever {
    const s = this.served;
    let held = false;
    let released = false;
    // A pin holds its model only once it encodes: `pin().version` alone holds nothing.
    const hold = (): void => {
      if (held || released) return;
      held = true;
      s.model.pins++;
    };
    return {
      version: s.record.version,
      gamma: s.gamma ?? this.options.gamma,
      proximity: s.proximity,
      lexical: s.lexical,
      encodeQuery: (termIds, text) => {
        hold();
        return this.encodeQuery(s, termIds, text);
      },
      rerank: (query, docIds) => {
        hold();
        return this.rerank(s, query, docIds);
      },
      release: () => {
        if (released) return;
        released = true;
        if (held) {
          s.model.pins--;
          this.maybeDispose(s.model);
        }
      },
    };
  }

  /** Model-vocabulary vector → index term ids (terms absent from the index are dropped). */
  private toTermIds(v: SparseVector): SparseVector {
    const tok = this.served.model.encoder.tokenizer;
    const pairs: Array<[number, number]> = [];
    for (let k = 0; k < v.ids.length; k++) {
      const token = tok.idToToken(v.ids[k]);
      const t = token === undefined ? undefined : this.index.termId(token);
      if (t !== undefined) pairs.push([t, v.weights[k]]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    return { ids: Uint32Array.from(pairs, (p) => p[0]), weights: Float32Array.from(pairs, (p) => p[1]) };
  }

  /** idf-weighted present terms: the dense kinds' first stage (a dense vector has no term side). */
  private presentTerms(termIds: Uint32Array): SparseVector {
    const counts = new Map<number, number>();
    for (const id of termIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    const ids = Uint32Array.from([...counts.keys()].sort((a, b) => a - b));
    const n = this.index.liveCount;
    return { ids, weights: Float32Array.from(ids, (id) => idf(this.index.df(id), n) * counts.get(id)!) };
  }

  private async encodeQuery(s: Served, termIds: Uint32Array, text: string | undefined): Promise<SparseVector> {
    const q = text ?? Array.from(termIds, (t) => this.index.term(t)).join(' ').replace(/ ##/g, '');
    const [e] = await s.model.encoder.encodeQueries([q]);
    if (isDense(e)) {
      const out = this.presentTerms(termIds);
      this.queries.set(out, { dense: applyDenseHead(s.head, e) });
      return out;
    }
    const sparse = applySparseHead(s.head, e, s.model.encoder.vocabShift);
    const out = this.toTermIds(sparse);
    this.queries.set(out, { sparse });
    return out;
  }

  /** Stored text of a document as it was analysed at ingest (title, newline, text). */
  private passage(docId: DocId): PassageInput | undefined {
    const id = this.index.externalId(docId);
    const doc = id === undefined ? undefined : this.index.getDocument(id);
    if (!doc) return undefined;
    // DocIds are never reused (an upsert gets a new one), so the DocId keys the cache safely.
    return { key: String(docId), text: doc.title ? `${doc.title}\n${doc.text}` : doc.text };
  }

  private async rerank(s: Served, query: SparseVector, docIds: Uint32Array): Promise<Float32Array> {
    const scores = new Float32Array(docIds.length);
    const state = this.queries.get(query);
    const items: PassageInput[] = [];
    const slots: number[] = [];
    docIds.forEach((d, i) => {
      const p = this.passage(d);
      if (p) {
        items.push(p);
        slots.push(i);
      }
    });
    // One call, so every uncached passage of the request goes through one padded batch.
    const outputs = await s.model.encoder.encodePassages(items);
    const shift = s.model.encoder.vocabShift;
    const qSparse = state?.sparse ?? (state?.dense ? undefined : this.toVocabIds(query));
    outputs.forEach((e: BackboneOutput, k) => {
      if (isDense(e)) scores[slots[k]] = state?.dense ? dot(state.dense, applyDenseHead(s.head, e)) : 0;
      else scores[slots[k]] = qSparse ? sparseDot(qSparse, applySparseHead(s.head, e, shift)) : 0;
    });
    return scores;
  }

  /** Index term ids → model vocabulary ids (for a query vector this retriever did not encode). */
  private toVocabIds(v: SparseVector): SparseVector {
    const tok = this.served.model.encoder.tokenizer;
    const pairs: Array<[number, number]> = [];
    for (let k = 0; k < v.ids.length; k++) {
      const id = tok.tokenToId(this.index.term(v.ids[k]));
      if (id !== undefined) pairs.push([id, v.weights[k]]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    return { ids: Uint32Array.from(pairs, (p) => p[0]), weights: Float32Array.from(pairs, (p) => p[1]) };
  }

  // ---- versions --------------------------------------------------------------------------

  /** Runs train / swap / rollback one at a time. */
  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Serves `next`, retiring the previous model when it changed. */
  private adopt(next: Served): void {
    const prev = this.served;
    this.served = next;
    if (prev.model !== next.model) this.retire(prev.model);
  }

  /** Disposes a swapped-out model once no pin uses it (or after {@link RETIRED_MODEL_GRACE_MS}). */
  private retire(m: LoadedModel): void {
    m.retired = true;
    this.retired.add(m);
    m.timer = setTimeout(() => {
      m.pins = 0;
      this.maybeDispose(m);
    }, RETIRED_MODEL_GRACE_MS);
    m.timer.unref();
    this.maybeDispose(m);
  }

  private maybeDispose(m: LoadedModel): void {
    if (!m.retired || m.pins > 0) return;
    clearTimeout(m.timer);
    m.retired = false; // dispose once
    this.retired.delete(m);
    void m.encoder.dispose();
  }

  /**
   * One RCL step on the head: backbone outputs of the batch (passages through the cache), the R3
   * loss, AdamW, then a new version durable in the lineage and serving at once.
   */
  train(batch: TrainTriple[], opts: TrainOptions = {}): Promise<TrainResult> {
    return this.serial(async () => {
      const t0 = performance.now();
      if (batch.length === 0) throw createError('RCL_INPUT_INVALID', { reason: 'the batch is empty' });
      const s = this.served;
      const encoder = s.model.encoder;
      s.model.pins++;
      try {
        const texts = [...new Set(batch.map((t) => t.query.text))];
        const docs = [...new Set(batch.flatMap((t) => [t.positive, t.negative]))];
        const items = docs.map((d) => this.passage(d));
        const missing = docs.filter((_, i) => !items[i]);
        if (missing.length > 0) throw createError('RCL_INPUT_INVALID', { reason: `documents not found: DocIds ${missing.join(', ')}` });
        const qOut = await encoder.encodeQueries(texts);
        const dOut = await encoder.encodePassages(items as PassageInput[]);
        const qBy = new Map(texts.map((t, i) => [t, qOut[i]]));
        const dBy = new Map(docs.map((d, i) => [d, dOut[i]]));
        const sparse = encoder.kind !== 'dense';
        const tok = encoder.tokenizer;
        const triples: HeadTriple[] = batch.map((t) => ({
          query: qBy.get(t.query.text)!,
          positive: dBy.get(t.positive)!,
          negative: dBy.get(t.negative)!,
          ...(sparse ? { bags: { query: bagOf(tok.tokenizeToIds(t.query.text), tok.specialIds), positive: this.bagOfDoc(t.positive, tok), negative: this.bagOfDoc(t.negative, tok) } } : {}),
        }));
        const lr = opts.learningRate ?? this.options.learningRate;
        const loss = headLoss(s.head, triples, { temperature: this.options.temperature, vocabShift: encoder.vocabShift });
        const optimizer = this.optimizerFor(s, lr);
        let stepped;
        try {
          stepped = stepHead(s.head, loss, optimizer, lr);
        } catch (err) {
          this.optimizer = undefined; // its params now alias copies that were never published
          throw err;
        }
        const values = (a: Float32Array) => Float32Array.from(stepped.changed, (v) => a[v]);
        const record: VersionRecord = {
          version: this.store.nextVersion(),
          parent: s.record.version,
          createdAt: new Date().toISOString(),
          origin: 'rcl-step',
          info: { ...opts.info, loss: loss.loss, lossParts: loss.parts, batch: batch.length, learningRate: lr, modelHash: encoder.hash, changedDims: stepped.changed.length },
          tensors: {},
          rows: {
            g: { rows: stepped.changed, values: values(stepped.head.g), rowSize: 1 },
            b: { rows: stepped.changed, values: values(stepped.head.b), rowSize: 1 },
          },
        };
        const state = optimizer.getState();
        await this.store.publish(record, { makeCurrent: true, checkpoint: { version: record.version, modelHash: encoder.hash, state } });
        this.optimizer = { version: record.version, opt: optimizer };
        this.adopt({ record: meta(record), model: s.model, head: stepped.head, gamma: s.gamma, proximity: s.proximity, lexical: s.lexical });
        return { version: record.version, loss: loss.loss, lossParts: loss.parts, ms: performance.now() - t0 };
      } finally {
        s.model.pins--;
        this.maybeDispose(s.model);
      }
    });
  }

  /** T(d) in vocabulary ids, from the forward store (the analyzer is not re-run). */
  private bagOfDoc(docId: DocId, tok: WordPieceTokenizer): SparseVector {
    const terms = this.index.forward(docId) ?? new Uint32Array(0);
    return bagOf(Array.from(terms, (t) => tok.tokenToId(this.index.term(t)) ?? -1), tok.specialIds);
  }

  /** The optimizer of the serving version: kept across steps, else resumed from the checkpoint, else fresh. */
  private optimizerFor(s: Served, lr: number): AdamW {
    if (this.optimizer?.version === s.record.version) return this.optimizer.opt;
    const saved = this.store.checkpoint() as { version?: number; modelHash?: string; state?: AdamWState } | undefined;
    const resume = saved?.version === s.record.version && saved.modelHash === s.model.encoder.hash ? saved.state : undefined;
    try {
      return createHeadOptimizer(s.head, lr, resume);
    } catch {
      return createHeadOptimizer(s.head, lr); // a checkpoint of other sizes: start the moments afresh
    }
  }

  /**
   * Publishes a version that changes only the serving mix γ (e.g. fitted on held-out training
   * queries); the head and the model are inherited, and so is the optimizer state.
   */
  calibrate(settings: CalibratedSettings, info: Record<string, unknown>): Promise<VersionMeta> {
    return this.serial(async () => {
      if (!(settings.gamma >= 0) || !Number.isFinite(settings.gamma)) throw createError('RCL_INPUT_INVALID', { reason: `gamma must be a finite number ≥ 0, got ${settings.gamma}` });
      const s = this.served;
      const record: VersionRecord = {
        version: this.store.nextVersion(),
        parent: s.record.version,
        createdAt: new Date().toISOString(),
        origin: 'calibrate',
        info: { ...info, gamma: settings.gamma, ...(settings.proximity ? { proximity: settings.proximity } : {}), ...(settings.lexical === undefined ? {} : { lexical: settings.lexical }) },
        tensors: {
          gamma: Float32Array.of(settings.gamma),
          ...(settings.proximity ? { proximity: proximityTensor(settings.proximity) } : {}),
          ...(settings.lexical === undefined ? {} : { lexical: Float32Array.of(settings.lexical) }),
        },
        rows: {},
      };
      const cp = this.store.checkpoint() as { version?: number } | undefined;
      await this.store.publish(record, { makeCurrent: true, checkpoint: cp && cp.version === record.parent ? { ...cp, version: record.version } : undefined });
      if (this.optimizer?.version === record.parent) this.optimizer = { ...this.optimizer, version: record.version };
      this.adopt({ ...s, record: meta(record), gamma: settings.gamma, proximity: settings.proximity ?? s.proximity, lexical: settings.lexical ?? s.lexical });
      return this.served.record;
    });
  }

  /**
   * Hot swap (`POST /retriever/model`): loads `dir`, checks its vocabulary equals the collection's
   * (`MODEL_VOCABULARY_MISMATCH`, 409, otherwise), opens its sessions, records a 'model-swap'
   * version (head reset to the identity) and serves it. Searches that pinned the old model finish
   * on it; it is disposed after the last one. The index is not touched.
   */
  swapModel(dir: string): Promise<{ version: number; ms: number; model: OnnxRetriever['model']; previous: OnnxRetriever['model'] }> {
    return this.serial(async () => {
      const t0 = performance.now();
      const previous = this.model;
      const model = await loadModel(resolve(dir), this.vocabHash, this.options, this.cache);
      const record: VersionRecord = {
        version: this.store.nextVersion(),
        parent: this.served.record.version,
        createdAt: new Date().toISOString(),
        origin: 'model-swap',
        info: { ...modelInfo(model), previousModelHash: previous.hash, note: 'head reset to g = 1, b = 0; index untouched' },
        tensors: {},
        rows: {},
      };
      try {
        await this.store.publish(record, { makeCurrent: true });
      } catch (err) {
        await model.encoder.dispose();
        throw err;
      }
      this.optimizer = undefined;
      this.adopt({ record: meta(record), model, head: identityHead(model.encoder) });
      return { version: record.version, ms: performance.now() - t0, model: this.model, previous };
    });
  }

  /** Makes a stored version current again, loading its model when it is not the serving one. */
  rollback(version: number): Promise<void> {
    return this.serial(async () => {
      const next = await materialise(this.store, version, this.vocabHash, this.options, this.cache, this.served.model);
      try {
        await this.store.setCurrent(version);
      } catch (err) {
        if (next.model !== this.served.model) await next.model.encoder.dispose();
        throw err;
      }
      this.optimizer = undefined;
      this.adopt(next);
    });
  }

  describe(): { kind: string; current: VersionMeta; versions: VersionMeta[]; config: Record<string, unknown> } {
    const e = this.served.model.encoder;
    return {
      kind: this.kind,
      current: this.served.record,
      versions: this.store.list(),
      config: {
        model: this.served.model.dir,
        modelHash: e.hash,
        modelKind: e.kind,
        provider: e.provider,
        vocabulary: e.tokenizer.vocabSize,
        vocabularyHash: this.vocabHash,
        headDims: e.dim,
        head: 'per-dimension gain g and bias b on the frozen backbone output (sparse: relu(g·w + b) on the support)',
        firstStage:
          e.kind === 'dense'
            ? 'dense model: the first stage falls back to the query\'s present tokens weighted by idf (a dense vector has no token side); re-rank is E(q)·E(d)'
            : 'E_θ(q) mapped to the index by token string (tokens absent from the index dropped); re-rank is E(q)·E(d)',
        gamma: this.served.gamma ?? this.options.gamma,
        proximity: this.served.proximity ?? PROXIMITY_OFF,
        lexical: this.served.lexical ?? 0,
        learningRate: this.options.learningRate,
        temperature: this.options.temperature,
        loss: e.kind === 'dense' ? 'L(E(q),E(d)) (T(·) is not in the dense space)' : 'L(E(q),E(d)) + ½L(E(q),T(d)) + ½L(T(q),E(d))',
        sessionsInWorkerThread: this.options.inThread,
        cache: this.cache ? { entries: this.cache.size, ...this.cache.stats } : null,
      },
    };
  }

  /** Releases the serving model's sessions (and its worker thread). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    for (const m of [...this.retired]) {
      clearTimeout(m.timer);
      await m.encoder.dispose();
    }
    this.retired.clear();
    await this.served.model.encoder.dispose();
  }
}

/** Execution providers for `/health`: those this build can use here, and the one each onnx collection runs on. */
export function executionProviders(collections: ReadonlyArray<{ name: string; searcher: { retriever?: unknown } }>): { available: ProviderName[]; inUse: Record<string, ProviderName> } {
  const inUse: Record<string, ProviderName> = {};
  for (const c of collections) if (isModelSwappable(c.searcher.retriever)) inUse[c.name] = c.searcher.retriever.provider;
  return { available: availableProviders(), inUse };
}

/** The `onnx` branch of the retriever factory: opens a collection's retriever on its lineage. */
export function openOnnxRetrieverFor(collection: Collection, store: Store, logger?: EncoderLogger): Promise<OnnxRetriever> {
  const options = collection.options.retriever;
  return OnnxRetriever.open({
    index: collection.index,
    store: new RetrieverStore(store.collectionDbs(collection.name)),
    analyzer: collection.options.analyzer,
    model: options.model,
    options: onnxOptionsFrom(options, logger),
  });
}
