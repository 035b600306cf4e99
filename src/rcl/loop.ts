/**
 * Reinforced contrastive learning (R3, DESIGN §1; research-notes §3.4–§3.8) as a service:
 * offline pools and thresholds, on-policy rollouts, and the online step — retrieve with the
 * current θ, score uncached documents, label against the thresholds, stop at the first negative,
 * draw the positive, fall back to offline pools, then one optimizer step. Never touches the index.
 */
// Lets queued I/O (incoming searches) run. Awaiting a synchronous search only queues a microtask,
// so a loop over a batch's queries would otherwise hold the event loop for the whole batch.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { createError } from '../errors.ts';
import { RetrieverStore } from '../index/retriever-store.ts';
import type { Store } from '../index/store.ts';
import type { Collection, Collections } from '../search/collections.ts';
import { PROXIMITY_OFF, type ProximitySetting } from '../search/proximity.ts';
import { isTrainable, type TrainableRetriever, type TrainResult, type TrainTriple } from '../search/trainable.ts';
import type { AnswerScore, Environment } from './environments/types.ts';
import { createRng } from './rng.ts';
import { RclState, type LabelTally, type QueryRecord } from './state.ts';
import { computeThresholds, labelClosedSet, labelDocument, type AnswerPool } from './thresholds.ts';
import { Rollouts, type Rollout } from './rollouts.ts';

/** Name of the environment whose scores the trainer posts (`/rcl/rollouts` then `/rcl/step`). */
export const CLIENT_ENVIRONMENT = 'client';
/** Documents retrieved per query when the server computes offline pools (R3: top 100). */
export const OFFLINE_DEPTH = 100;
/** On-policy candidates per query (R3: m = k = 20). */
export const ONLINE_DEPTH = 20;
/** Uncached documents scored together while walking a ranking (bounded LLM work per round). */
const SCORE_CHUNK = 5;

export interface QueryInput {
  id: string;
  text?: string;
  answers?: string[];
  choices?: string[];
  gold?: number;
}

export interface PostedScore {
  queryId: string;
  docId: string;
  answer?: string;
  score: number;
  label?: 0 | 1;
}

export interface OfflineRequest {
  queries: QueryInput[];
  /** Posted pools; when absent the server scores the top 100 with `environment`. */
  scores?: PostedScore[];
  environment?: string;
  depth?: number;
}

export interface OfflineResult {
  environment: string;
  registered: number;
  dropped: Array<{ queryId: string; reason: string }>;
  scored: number;
  ms: number;
}

export interface StepRequest {
  queries: QueryInput[];
  rollout?: string;
  scores?: PostedScore[];
  environment?: string;
  learningRate?: number;
}

export interface StepResult extends LabelTally {
  version: number;
  loss: number;
  lossParts: TrainResult['lossParts'];
  triples: number;
  skipped: Array<{ queryId: string; reason: string }>;
  ms: number;
}

/** One setting of the serving mix that calibration tried, and its MRR. */
export interface CalibratePoint {
  gamma: number;
  expansionScale?: number;
  /** Term proximity's weight π (0: off) and window. */
  proximity: number;
  proximityWindow: number;
  /** Weight λ of the lexical term (0: off). */
  lexical: number;
  mrr: number;
}

/**
 * The paired test of the fitted mix: the held-out MRR of the best mix with the lexical term or
 * proximity on, the best MRR of γ alone, and the standard error of the per-query difference. The
 * mix is kept only when its gain exceeds twice that error.
 */
export interface MixCheck {
  mrrWith: number;
  mrrWithout: number;
  standardError: number;
  kept: boolean;
}

export interface CalibrateResult {
  version: number;
  gamma: number;
  expansionScale?: number;
  proximity: ProximitySetting;
  /** Weight λ of the lexical term. */
  lexical: number;
  /** When the best mix has the lexical term or proximity on: its test against γ alone. */
  mixCheck?: MixCheck;
  mrrBefore: number;
  mrrAfter: number;
  queries: number;
  grid: CalibratePoint[];
  ms: number;
}

export interface CalibrateRequest {
  queries?: string[];
  environment?: string;
  grid?: number[];
  expansionScales?: number[];
  proximityWeights?: number[];
  proximityWindows?: number[];
  lexicalWeights?: number[];
}

/** γ values tried by calibration (1,000 ≈ f_θ alone, 0 = first stage alone). */
const GAMMA_GRID = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1, 1.25, 1.5, 2, 3, 5, 10, 1000];
/** Proximity weights π tried by calibration (0: off). */
const PROXIMITY_WEIGHTS = [0, 0.1, 0.2, 0.3, 0.5, 0.7, 1];
/** Proximity windows tried by calibration, in term positions. */
const PROXIMITY_WINDOWS = [4, 8, 16, 32];
/** Weights λ of the lexical term tried by calibration (0: off). */
const LEXICAL_WEIGHTS = [0, 0.1, 0.2, 0.3, 0.5, 0.7, 1];
/** Most mix settings one calibration scores (the default grid has 2,975). */
const MAX_CALIBRATE_POINTS = 50_000;

/**
 * One query's retrieved candidates as calibration mixes them: each score part divided by its
 * maximum over the candidates (as late search normalises them), and the offline labels.
 */
interface CalibrateRun {
  beta: Float64Array;
  theta: Float64Array;
  /** Proximity per window scored (the windows tried, then the current one). */
  prox: Float64Array[];
  /** The lexical term. */
  lex: Float64Array;
  positive: Uint8Array;
}

/** A {@link CalibrateRun} from the candidates' first-stage and parametric scores and lexical features. */
function calibrateRun(scores: Array<[number, number]>, terms: { proximity: Float64Array[]; lexical?: Float64Array }, positive: boolean[]): CalibrateRun {
  const normalised = (xs: ArrayLike<number>) => {
    let max = 0;
    for (let i = 0; i < xs.length; i++) max = Math.max(max, xs[i]);
    return Float64Array.from(xs, (x) => x / (max || 1));
  };
  return {
    beta: normalised(scores.map((s) => s[0])),
    theta: normalised(scores.map((s) => s[1])),
    prox: terms.proximity.map(normalised),
    lex: normalised(terms.lexical ?? new Float64Array(scores.length)),
    positive: Uint8Array.from(positive, Number),
  };
}

/**
 * Chooses the serving mix among scored grid points (each point's MRR set; on equal MRR the earlier
 * point, the simpler mix, wins): the best point of the whole grid, kept only when it beats the best
 * γ alone by more than twice the standard error of the per-query difference of reciprocal ranks
 * (`ranksOf`), a paired test, so that a small held-out set does not switch the lexical term or
 * proximity on by chance. The whole mix is tested at once: two terms that each add less than the
 * noise can together add more, and testing them one after the other would reject both.
 */
export function chooseMix(points: readonly CalibratePoint[], ranksOf: (p: CalibratePoint) => Float64Array): { best: CalibratePoint; mixCheck?: MixCheck } {
  const bestOf = (candidates: readonly CalibratePoint[]) => candidates.reduce((a, b) => (b.mrr > a.mrr + 1e-9 ? b : a));
  const plain = bestOf(points.filter((p) => p.proximity === 0 && p.lexical === 0));
  const fitted = bestOf(points);
  if (!(fitted.mrr > plain.mrr + 1e-9)) return { best: plain };
  const a = ranksOf(fitted);
  const b = ranksOf(plain);
  const diff = a.map((x, i) => x - b[i]);
  const m = diff.reduce((acc, d) => acc + d, 0) / diff.length;
  const sd = Math.sqrt(diff.reduce((acc, d) => acc + (d - m) ** 2, 0) / Math.max(1, diff.length - 1));
  const standardError = sd / Math.sqrt(diff.length);
  const mixCheck = { mrrWith: fitted.mrr, mrrWithout: plain.mrr, standardError, kept: m > 2 * standardError };
  return { best: mixCheck.kept ? fitted : plain, mixCheck };
}

export interface RclOptions {
  seed: number;
  rolloutTtlMs: number;
}

export class RclService {
  private readonly collections: Collections;
  private readonly store: Store;
  private readonly environments: Map<string, Environment>;
  private readonly options: RclOptions;
  private readonly queues = new Map<string, Promise<unknown>>();
  readonly rollouts: Rollouts;

  constructor(collections: Collections, store: Store, environments: Map<string, Environment>, options: RclOptions) {
    this.collections = collections;
    this.store = store;
    this.environments = environments;
    this.options = options;
    this.rollouts = new Rollouts(options.rolloutTtlMs);
  }

  /** Environments a request may name. */
  environmentNames(): string[] {
    return [CLIENT_ENVIRONMENT, ...this.environments.keys()];
  }

  /** Training counters of a collection (404 for an unknown one), without the RNG state. */
  counters(collection: string): Omit<ReturnType<RclState['counters']>, 'rngState'> {
    const { rngState: _r, ...counters } = this.state(this.collections.get(collection).name).counters();
    return counters;
  }

  private environment(name: string): Environment {
    const env = this.environments.get(name);
    if (!env) throw createError('RCL_ENVIRONMENT_UNSUPPORTED', { environment: name }, { details: { available: this.environmentNames() } });
    return env;
  }

  private state(collection: string): RclState {
    return new RclState(new RetrieverStore(this.store.collectionDbs(collection)));
  }

  private trainable(c: Collection): TrainableRetriever {
    const r = c.searcher.retriever;
    if (!isTrainable(r)) throw createError('RETRIEVER_UNSUPPORTED', { retriever: r?.kind ?? 'bm25', reason: 'it has no trainable parameters' });
    return r;
  }

  /** Steps and offline jobs of one collection run one at a time. */
  private serial<T>(collection: string, work: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(collection) ?? Promise.resolve();
    const next = prev.then(work, work);
    this.queues.set(collection, next.catch(() => undefined));
    return next;
  }

  /** Ranked external ids under the current θ (late mode). */
  private async retrieve(c: Collection, text: string, depth: number): Promise<string[]> {
    const r = await c.searcher.searchAsync({ query: text, k: depth, m: Math.max(depth, ONLINE_DEPTH), mode: c.searcher.retriever ? 'late' : 'lexical', includeDocuments: false });
    return r.hits.map((h) => h.id);
  }

  /** Scores documents with an environment, using and filling the cache. */
  private async scoreDocs(c: Collection, st: RclState, env: Environment, q: { id: string; text: string; answers: string[]; choices?: string[] }, docIds: string[], labels: boolean): Promise<{ scores: Map<string, AnswerScore[]>; newly: number }> {
    const scores = new Map<string, AnswerScore[]>();
    const todo: string[] = [];
    for (const id of docIds) {
      const hit = st.cached(env.fingerprint, q.id, id);
      if (hit && (!labels || hit.every((a) => a.label !== null))) scores.set(id, hit);
      else todo.push(id);
    }
    if (todo.length > 0) {
      const docs = todo.flatMap((id) => {
        const d = c.index.getDocument(id);
        return d ? [{ id, title: d.title, text: d.text }] : [];
      });
      let results;
      try {
        results = await env.score({ query: q.text, answers: q.answers, docs, choices: q.choices, labels });
      } catch (cause) {
        if ((cause as { code?: string }).code) throw cause;
        throw createError('RCL_ENVIRONMENT_FAILED', { reason: (cause as Error).message }, { cause });
      }
      await st.putScores(env.fingerprint, results.map((r) => ({ queryId: q.id, docId: r.docId, perAnswer: r.perAnswer })));
      for (const r of results) scores.set(r.docId, r.perAnswer);
    }
    return { scores, newly: todo.length };
  }

  /** Registers queries with offline pools and thresholds (posted, or computed over the top 100). */
  offline(collection: string, req: OfflineRequest): Promise<OfflineResult> {
    const c = this.collections.get(collection);
    return this.serial(collection, async () => {
      const t0 = performance.now();
      const st = this.state(collection);
      const envName = req.environment ?? (req.scores ? CLIENT_ENVIRONMENT : 'contains');
      const pools = new Map<string, Map<string, AnswerPool['docs'][number][]>>();
      let scored = 0;
      if (req.scores) {
        for (const s of req.scores) {
          const q = req.queries.find((x) => x.id === s.queryId);
          const answer = s.answer ?? q?.answers?.[0] ?? '';
          const byAnswer = pools.get(s.queryId) ?? new Map();
          pools.set(s.queryId, byAnswer);
          const list = byAnswer.get(answer) ?? [];
          byAnswer.set(answer, list);
          list.push({ docId: s.docId, score: s.score, label: s.label ?? (s.score > 0 ? 1 : 0) });
        }
      } else {
        const env = this.environment(envName);
        for (const q of req.queries) {
          if (!q.text || !q.answers?.length) throw createError('RCL_INPUT_INVALID', { reason: `query "${q.id}" needs text and answers to be scored` });
          const ids = await this.retrieve(c, q.text, req.depth ?? OFFLINE_DEPTH);
          const { scores, newly } = await this.scoreDocs(c, st, env, { id: q.id, text: q.text, answers: q.answers, choices: q.choices }, ids, true);
          scored += newly;
          const byAnswer = new Map<string, AnswerPool['docs'][number][]>();
          for (const [docId, perAnswer] of scores) {
            for (const a of perAnswer) {
              const list = byAnswer.get(a.answer) ?? [];
              byAnswer.set(a.answer, list);
              list.push({ docId, score: a.score, label: a.label ?? (a.score > 0 ? 1 : 0) });
            }
          }
          pools.set(q.id, byAnswer);
          await yieldToEventLoop();
        }
      }
      const records: QueryRecord[] = [];
      const dropped: OfflineResult['dropped'] = [];
      for (const q of req.queries) {
        const byAnswer = pools.get(q.id);
        const thresholds = computeThresholds(byAnswer ? [...byAnswer].map(([answer, docs]) => ({ answer, docs })) : []);
        if (!thresholds.usable) {
          dropped.push({ queryId: q.id, reason: thresholds.reason ?? 'no-pool' });
          continue;
        }
        const prev = st.query(envName, q.id);
        const text = q.text ?? prev?.text;
        if (!text) throw createError('RCL_INPUT_INVALID', { reason: `query "${q.id}" has no text` });
        records.push({ id: q.id, text, answers: q.answers ?? prev?.answers ?? [], choices: q.choices, gold: q.gold, thresholds, updatedAt: new Date().toISOString() });
      }
      await st.putQueries(envName, records);
      return { environment: envName, registered: records.length, dropped, scored, ms: performance.now() - t0 };
    });
  }

  /**
   * Fits the serving mix f_β/max f_β + γ·f_θ/max f_θ + λ·lex/max lex + π·prox/max prox on
   * registered queries (a held-out slice of the training queries, DESIGN §3.1 "train what you
   * serve"): the γ, lexical weight λ, proximity weight π and window of the grid with the best MRR@m
   * of offline positives win (λ and π only past the paired check of {@link chooseMix}) and are published as a new
   * version. λ and π start off: the feedback decides whether this collection needs them.
   */
  calibrate(collection: string, req: CalibrateRequest): Promise<CalibrateResult> {
    const c = this.collections.get(collection);
    const retriever = this.trainable(c);
    const calibrate = retriever.calibrate?.bind(retriever);
    if (!calibrate) throw createError('RETRIEVER_UNSUPPORTED', { retriever: retriever.kind, reason: 'it has no serving mix to calibrate' });
    return this.serial(collection, async () => {
      const t0 = performance.now();
      const st = this.state(collection);
      const envName = req.environment ?? 'contains';
      const records = req.queries ? req.queries.flatMap((id) => st.query(envName, id) ?? []) : st.queries(envName);
      if (records.length === 0) throw createError('RCL_NO_POOLS', { ids: (req.queries ?? []).join(', ') || `(none registered for ${envName})` });
      const grid = req.grid ?? GAMMA_GRID;
      // Expansion weights change the first stage itself: each scale needs its own retrieval. Only
      // on request: on SciFact's 75 held-out queries a 2-D grid chose a scale that cost 0.9 points
      // of test nDCG@10 (too few queries to fit two settings), while γ alone generalised.
      const scales = req.expansionScales ?? [undefined];
      // Proximity and the lexical term only re-weight the re-ranked candidates: one retrieval
      // serves every window and weight.
      const weights = [...new Set([0, ...(req.proximityWeights ?? PROXIMITY_WEIGHTS)])].sort((x, y) => x - y);
      const windows = weights.length > 1 ? (req.proximityWindows ?? PROXIMITY_WINDOWS) : [];
      const lambdas = [...new Set([0, ...(req.lexicalWeights ?? LEXICAL_WEIGHTS)])].sort((x, y) => x - y);
      const points = scales.length * grid.length * lambdas.length * (1 + (weights.length - 1) * windows.length);
      if (points > MAX_CALIBRATE_POINTS) {
        throw createError('RCL_INPUT_INVALID', { reason: `the calibration grid has ${points} settings (scales × γ × λ × proximity settings), at most ${MAX_CALIBRATE_POINTS}` });
      }
      const current = retriever.pin();
      const now = current.proximity ?? PROXIMITY_OFF;
      // The current window is scored too, for the MRR before calibration.
      const scored = [...new Set([...windows, now.window])];
      /** Reciprocal rank of the first offline positive, per query, under one mix. */
      const ranksOf = (runs: CalibrateRun[], p: CalibratePoint) => {
        const w = scored.indexOf(p.proximityWindow);
        return Float64Array.from(runs, (run) => {
          const n = run.beta.length;
          const prox = run.prox[w];
          const score = (j: number) => run.beta[j] + p.gamma * run.theta[j] + (p.proximity > 0 ? p.proximity * prox[j] : 0) + (p.lexical > 0 ? p.lexical * run.lex[j] : 0);
          // The best-scored positive (the first of equals), then how many candidates rank above it.
          let top = -1;
          let topScore = -Infinity;
          for (let j = 0; j < n; j++) {
            if (!run.positive[j]) continue;
            const sj = score(j);
            if (sj > topScore) [top, topScore] = [j, sj];
          }
          if (top < 0) return 0;
          let above = 0;
          for (let j = 0; j < n; j++) {
            const sj = score(j);
            if (sj > topScore || (sj === topScore && j < top)) above++;
          }
          return 1 / (above + 1);
        });
      };
      const mean = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const retrieve = async (expansionScale: number | undefined) => {
        const runs: CalibrateRun[] = [];
        for (const rec of records) {
          const r = await c.searcher.searchAsync({ query: rec.text, k: ONLINE_DEPTH, m: ONLINE_DEPTH, mode: 'late', includeDocuments: false, settings: { expansionScale } });
          const positives = new Set(rec.thresholds.positives);
          const docIds = r.hits.map((h) => h.docId);
          const terms = c.searcher.lexicalFeatures(rec.text, docIds, scored, true);
          runs.push(calibrateRun(r.hits.map((h) => [h.firstStageScore, h.parametricScore ?? 0]), terms, r.hits.map((h) => positives.has(h.id))));
          await yieldToEventLoop();
        }
        return runs;
      };
      const served = await retrieve(undefined);
      const before = mean(ranksOf(served, { gamma: current.gamma, proximity: now.weight, proximityWindow: now.window, lexical: current.lexical ?? 0, mrr: 0 }));
      const scores: CalibratePoint[] = [];
      const runsByScale = new Map<number | undefined, CalibrateRun[]>();
      for (const expansionScale of scales) {
        const runs = expansionScale === undefined ? served : await retrieve(expansionScale);
        runsByScale.set(expansionScale, runs);
        // Off first (π = 0, λ = 0): on a tie, the simpler mix wins.
        const proxSettings = [
          { proximity: 0, proximityWindow: now.window },
          ...weights.filter((x) => x > 0).flatMap((pi) => windows.map((window) => ({ proximity: pi, proximityWindow: window }))),
        ];
        for (const prox of proxSettings) {
          await yieldToEventLoop();
          for (const lexical of lambdas) {
            for (const gamma of grid) {
              const point = { gamma, expansionScale, ...prox, lexical, mrr: 0 };
              point.mrr = mean(ranksOf(runs, point));
              scores.push(point);
            }
          }
        }
      }
      const { best, mixCheck } = chooseMix(scores, (p) => ranksOf(runsByScale.get(p.expansionScale)!, p));
      const proximity = { weight: best.proximity, window: best.proximityWindow };
      const settings = { gamma: best.gamma, proximity, lexical: best.lexical, ...(best.expansionScale === undefined ? {} : { expansionScale: best.expansionScale }) };
      const meta = await calibrate(settings, { queries: records.length, environment: envName, mrrBefore: before, mrrAfter: best.mrr });
      return { version: meta.version, gamma: best.gamma, expansionScale: best.expansionScale, proximity, lexical: best.lexical, mixCheck, mrrBefore: before, mrrAfter: best.mrr, queries: records.length, grid: scores, ms: performance.now() - t0 };
    });
  }

  /** On-policy candidates under the current θ, for trainers that score with their own LLM. */
  async createRollout(collection: string, queries: QueryInput[], k = ONLINE_DEPTH): Promise<Rollout> {
    const c = this.collections.get(collection);
    const retriever = this.trainable(c);
    const version = retriever.version;
    const st = this.state(collection);
    const out: Array<{ id: string; text: string; docs: string[] }> = [];
    for (const q of queries) {
      const text = q.text ?? st.query(CLIENT_ENVIRONMENT, q.id)?.text;
      if (!text) throw createError('RCL_INPUT_INVALID', { reason: `query "${q.id}" has no text and is not registered` });
      out.push({ id: q.id, text, docs: await this.retrieve(c, text, k) });
      await yieldToEventLoop();
    }
    return this.rollouts.create(collection, version, out);
  }

  /** One RCL step over a batch of queries. */
  step(collection: string, req: StepRequest): Promise<StepResult> {
    const c = this.collections.get(collection);
    const retriever = this.trainable(c);
    return this.serial(collection, async () => {
      const t0 = performance.now();
      const st = this.state(collection);
      const counters = await Promise.resolve(st.counters());
      const rng = createRng(this.options.seed, counters.rngState || undefined);
      const rollout = req.rollout ? this.rollouts.get(req.rollout, collection) : undefined;
      const envName = req.environment ?? (req.rollout || req.scores ? CLIENT_ENVIRONMENT : 'contains');
      const env = envName === CLIENT_ENVIRONMENT ? undefined : this.environment(envName);
      if (req.scores?.length) {
        // Posted scores join the cache under the client fingerprint: scored once, kept.
        const grouped = new Map<string, AnswerScore[]>();
        for (const s of req.scores) {
          const key = `${s.queryId}\u0000${s.docId}`;
          const list = grouped.get(key) ?? [];
          grouped.set(key, list);
          list.push({ answer: s.answer ?? '', score: s.score, label: s.label ?? null });
        }
        await st.putScores(CLIENT_ENVIRONMENT, [...grouped].map(([key, perAnswer]) => {
          const [queryId, docId] = key.split('\u0000');
          return { queryId, docId, perAnswer };
        }));
      }
      const tally: LabelTally = { positives: 0, negatives: 0, excluded: 0, fallbacks: 0, newlyScored: 0 };
      const skipped: StepResult['skipped'] = [];
      const triples: TrainTriple[] = [];
      for (const q of req.queries) {
        const rec = st.query(envName, q.id);
        if (!rec) {
          skipped.push({ queryId: q.id, reason: 'not registered: POST /rcl/offline first' });
          continue;
        }
        const text = q.text ?? rec.text;
        const ranked = rollout ? rollout.queries.get(q.id)?.docs : await this.retrieve(c, text, ONLINE_DEPTH);
        if (!ranked) {
          skipped.push({ queryId: q.id, reason: `not in rollout ${req.rollout}` });
          continue;
        }
        const online = await this.walk(c, st, env, rec, text, ranked, tally);
        let positive = online.positives.length ? rng.pick(online.positives) : undefined;
        let negative = online.negative;
        if (positive === undefined) {
          positive = pickLive(c, rec.thresholds.positives, rng);
          tally.fallbacks++;
        }
        if (negative === undefined) {
          negative = pickLive(c, rec.thresholds.negatives.filter((d) => d !== positive), rng);
          tally.fallbacks++;
        }
        const pos = positive === undefined ? undefined : c.index.getDocument(positive);
        const neg = negative === undefined ? undefined : c.index.getDocument(negative);
        if (!pos || !neg) {
          skipped.push({ queryId: q.id, reason: 'no live positive or negative document' });
          continue;
        }
        triples.push({ query: { text, termIds: c.searcher.queryTerms(text) }, positive: pos.docId, negative: neg.docId });
        await yieldToEventLoop();
      }
      if (triples.length === 0) throw createError('RCL_NO_POOLS', { ids: skipped.map((s) => s.queryId).join(', ') }, { details: { skipped } });
      const r = await retriever.train(triples, { learningRate: req.learningRate, info: { environment: envName, rollout: req.rollout ?? null, queries: triples.length } });
      await st.putCounters({
        steps: counters.steps + 1,
        triples: counters.triples + triples.length,
        positives: counters.positives + tally.positives,
        negatives: counters.negatives + tally.negatives,
        excluded: counters.excluded + tally.excluded,
        fallbacks: counters.fallbacks + tally.fallbacks,
        newlyScored: counters.newlyScored + tally.newlyScored,
        rngState: rng.getState(),
      });
      return { version: r.version, loss: r.loss, lossParts: r.lossParts, triples: triples.length, ...tally, skipped, ms: performance.now() - t0 };
    });
  }

  /**
   * Walks a ranking in order: scores uncached documents (in small chunks), labels each against
   * the query's thresholds, collects positives, and stops at the first negative (the hard negative).
   */
  private async walk(
    c: Collection,
    st: RclState,
    env: Environment | undefined,
    rec: QueryRecord,
    text: string,
    ranked: string[],
    tally: LabelTally,
  ): Promise<{ positives: string[]; negative?: string }> {
    const positives: string[] = [];
    const fingerprint = env?.fingerprint ?? CLIENT_ENVIRONMENT;
    for (let i = 0; i < ranked.length; i += SCORE_CHUNK) {
      const chunk = ranked.slice(i, i + SCORE_CHUNK);
      let scores: Map<string, AnswerScore[]>;
      if (env) {
        const r = await this.scoreDocs(c, st, env, { id: rec.id, text, answers: rec.answers, choices: rec.choices }, chunk, false);
        scores = r.scores;
        tally.newlyScored += r.newly;
      } else {
        scores = new Map(chunk.flatMap((d) => {
          const s = st.cached(fingerprint, rec.id, d);
          return s ? [[d, s] as [string, AnswerScore[]]] : [];
        }));
      }
      for (const docId of chunk) {
        const perAnswer = scores.get(docId);
        const label = perAnswer === undefined ? null : labelOf(rec, perAnswer);
        if (label === 1) {
          positives.push(docId);
          tally.positives++;
        } else if (label === 0) {
          tally.negatives++;
          return { positives, negative: docId };
        } else tally.excluded++;
      }
    }
    return { positives };
  }
}

/** A document's online label: closed-set by the gold choice, else by thresholds (posted labels when no thresholds apply). */
function labelOf(rec: QueryRecord, perAnswer: AnswerScore[]): 0 | 1 | null {
  if (rec.choices && rec.gold !== undefined) {
    const scores = perAnswer.map((a) => a.score);
    return scores.length === rec.choices.length ? labelClosedSet(scores, rec.gold) : null;
  }
  const matching = perAnswer.filter((a) => rec.thresholds.entries.some((e) => e.answer === a.answer));
  if (matching.length > 0) return labelDocument(matching, rec.thresholds);
  // Scores posted without an answer entry: fall back to the single entry's thresholds.
  if (rec.thresholds.entries.length === 1 && perAnswer.length === 1) {
    return labelDocument([{ answer: rec.thresholds.entries[0].answer, score: perAnswer[0].score }], rec.thresholds);
  }
  return null;
}

/** A random document of `ids` that still exists. */
function pickLive(c: Collection, ids: string[], rng: { int(n: number): number }): string | undefined {
  const live = ids.filter((id) => c.index.getDocument(id) !== undefined);
  return live.length ? live[rng.int(live.length)] : undefined;
}
