/**
 * R3/OpenRAG labelling rules: per-query, per-answer-entry thresholds T⁺ and T⁻ computed once from
 * the offline pools, the online label of a newly scored document, the multi-answer combination and
 * the closed-set (choice) rule. Pure functions; no LLM calls, no storage. Section numbers (§) refer
 * to `research-notes.md`, DESIGN §1 step 1–2 summarises the same rules.
 */
import { createError } from '../errors.ts';

/** An offline label: 1 if the LLM's generation with this document contained the answer (§3.3). */
export type Label = 0 | 1;
/** An online label: 1 positive, 0 negative, null excluded (§3.5). */
export type OnlineLabel = 0 | 1 | null;

/** One offline-scored document for one answer entry: S_q(d) and L_q(d). */
export interface ScoredDoc {
  docId: string;
  /** RAG score S_q(d) = P_LLM(answer | prompt(q, d)), a raw product of token probabilities. */
  score: number;
  /** RAG label L_q(d). */
  label: Label;
}

/** The offline pool of one answer entry of one query (the top-100 of θ₀, §3.4 step 1–2). */
export interface AnswerPool {
  /** The gold answer string; `''` for a query given a single unnamed entry. */
  answer: string;
  docs: readonly ScoredDoc[];
}

/** Thresholds of one usable answer entry. */
export interface EntryThresholds {
  answer: string;
  /** T⁺ = max S over the entry's offline negatives (§3.5). */
  tPlus: number;
  /** T⁻ = min S over the entry's offline positives (§3.5). */
  tMinus: number;
  /** Offline positives and negatives behind the thresholds. */
  positives: number;
  negatives: number;
}

/** Why an answer entry or a query cannot be used. */
export type PoolGap = 'no-pool' | 'no-positive' | 'no-negative';

/** Everything RCL keeps per query from its offline stage. */
export interface QueryThresholds {
  /** Entries with both an offline positive and an offline negative: the ones used online. */
  entries: EntryThresholds[];
  /** Entries lacking a positive or a negative pool (reported, not used to label online). */
  skipped: Array<{ answer: string; reason: PoolGap }>;
  /** Document-level offline pools D⁺_q and D⁻_q, for warm-up pairs and online fallbacks (§3.6 step 4). */
  positives: string[];
  negatives: string[];
  /** False when the query must be dropped: D⁺_q or D⁻_q is empty (§3.4 step 4). */
  usable: boolean;
  /** Set when `usable` is false. */
  reason?: PoolGap;
}

function invalid(reason: string, details?: Record<string, unknown>): Error {
  return createError('RCL_INPUT_INVALID', { reason }, { details });
}

/**
 * Document-level offline pools from per-entry labels (§3.3 "multiple gold answers"): a document is
 * positive if it succeeds on at least one entry and negative if it fails on all entries it was
 * scored for. Order follows first appearance.
 */
export function docPools(pools: readonly AnswerPool[]): { positives: string[]; negatives: string[] } {
  const label = new Map<string, Label>();
  for (const pool of pools) {
    for (const d of pool.docs) if (label.get(d.docId) !== 1) label.set(d.docId, d.label);
  }
  const positives: string[] = [];
  const negatives: string[] = [];
  for (const [docId, l] of label) (l === 1 ? positives : negatives).push(docId);
  return { positives, negatives };
}

/** T⁺/T⁻ of one entry, or the gap that makes it unusable. Rejects non-finite scores and label conflicts. */
function entryThresholds(pool: AnswerPool): EntryThresholds | PoolGap {
  if (pool.docs.length === 0) return 'no-pool';
  let tPlus = -Infinity;
  let tMinus = Infinity;
  let positives = 0;
  let negatives = 0;
  const seen = new Map<string, Label>();
  for (const d of pool.docs) {
    if (!Number.isFinite(d.score)) throw invalid(`non-finite RAG score for document "${d.docId}"`, { answer: pool.answer });
    if (d.label !== 0 && d.label !== 1) throw invalid(`label must be 0 or 1 for document "${d.docId}"`, { answer: pool.answer });
    const prev = seen.get(d.docId);
    if (prev !== undefined && prev !== d.label) {
      throw invalid(`document "${d.docId}" is both positive and negative for one answer`, { answer: pool.answer });
    }
    seen.set(d.docId, d.label);
    // §3.5: T⁺_q = max{S : d ∈ D⁻_q}, T⁻_q = min{S : d ∈ D⁺_q}.
    if (d.label === 1) {
      positives++;
      tMinus = Math.min(tMinus, d.score);
    } else {
      negatives++;
      tPlus = Math.max(tPlus, d.score);
    }
  }
  if (positives === 0) return 'no-positive';
  if (negatives === 0) return 'no-negative';
  return { answer: pool.answer, tPlus, tMinus, positives, negatives };
}

/**
 * Computes one query's thresholds, per answer entry (§3.5, and §5.6: "probabilities are … not
 * comparable across answer entries of different lengths. Keep thresholds per entry").
 *
 * An entry lacking offline positives or negatives has no T⁻ or T⁺; it is listed in `skipped` and
 * ignored when labelling online (our choice: the notes leave per-entry gaps open, §3.3; treating it
 * as "excluded" instead would forbid every online negative for the query). The query is usable iff
 * its document-level D⁺_q and D⁻_q are both non-empty (§3.4 step 4) and at least one entry is
 * usable (always the case when every entry was scored on the same documents).
 */
export function computeThresholds(pools: readonly AnswerPool[]): QueryThresholds {
  const entries: EntryThresholds[] = [];
  const skipped: QueryThresholds['skipped'] = [];
  for (const pool of pools) {
    const t = entryThresholds(pool);
    if (typeof t === 'string') skipped.push({ answer: pool.answer, reason: t });
    else entries.push(t);
  }
  const { positives, negatives } = docPools(pools);
  const result: QueryThresholds = { entries, skipped, positives, negatives, usable: true };
  let reason: PoolGap | undefined;
  if (positives.length + negatives.length === 0) reason = 'no-pool';
  else if (positives.length === 0) reason = 'no-positive';
  else if (negatives.length === 0) reason = 'no-negative';
  else if (entries.length === 0) reason = skipped[0].reason; // entries scored on disjoint documents
  if (reason !== undefined) {
    result.usable = false;
    result.reason = reason;
  }
  return result;
}

/**
 * Thresholds for many queries. Queries listed in `queryIds` without any pool, and queries whose
 * pools are one-sided, are reported in `dropped` (§3.4 step 4: "discard the query if either pool
 * is empty") and left out of `thresholds`.
 */
export function computeAllThresholds(
  pools: ReadonlyMap<string, readonly AnswerPool[]>,
  queryIds: Iterable<string> = pools.keys(),
): { thresholds: Map<string, QueryThresholds>; dropped: Array<{ queryId: string; reason: PoolGap }> } {
  const thresholds = new Map<string, QueryThresholds>();
  const dropped: Array<{ queryId: string; reason: PoolGap }> = [];
  for (const queryId of queryIds) {
    const q = pools.get(queryId);
    if (q === undefined || q.length === 0) {
      dropped.push({ queryId, reason: 'no-pool' });
      continue;
    }
    const t = computeThresholds(q);
    if (t.usable) thresholds.set(queryId, t);
    else dropped.push({ queryId, reason: t.reason ?? 'no-pool' });
  }
  return { thresholds, dropped };
}

/**
 * The online label of a newly scored document for one answer entry (§3.5):
 * positive if S > T⁺; otherwise negative if S < T⁻; otherwise excluded (T⁻ ≤ S ≤ T⁺, possible only
 * when the offline pools overlap). The order is deliberate: when the pools separate perfectly
 * (T⁻ > T⁺), a score in (T⁺, T⁻) passes both tests and the paper's case order makes it positive.
 * A NaN score fails both tests and is excluded.
 */
export function labelOnline(score: number, tPlus: number, tMinus: number): OnlineLabel {
  if (score > tPlus) return 1;
  if (score < tMinus) return 0;
  return null;
}

/**
 * Combines per-entry labels (§3.3, §3.5 "multiple answers"): positive if any entry is positive,
 * negative if all are negative, otherwise (no positive, at least one excluded) excluded — the last
 * case is the notes' inference. An empty list is excluded.
 */
export function combineEntryLabels(labels: readonly OnlineLabel[]): OnlineLabel {
  if (labels.length === 0) return null;
  let allNegative = true;
  for (const l of labels) {
    if (l === 1) return 1;
    if (l !== 0) allNegative = false;
  }
  return allNegative ? 0 : null;
}

/**
 * Labels a document online from its per-answer scores, using each usable entry's own thresholds
 * and combining with {@link combineEntryLabels}. Entries are matched by answer string; a usable
 * entry with no score in `perAnswer` counts as excluded. Skipped entries are ignored.
 */
export function labelDocument(
  perAnswer: ReadonlyArray<{ answer: string; score: number }>,
  thresholds: Pick<QueryThresholds, 'entries'>,
): OnlineLabel {
  const scoreOf = new Map<string, number>();
  for (const a of perAnswer) scoreOf.set(a.answer, a.score);
  const labels = thresholds.entries.map((e) => {
    const s = scoreOf.get(e.answer);
    return s === undefined ? null : labelOnline(s, e.tPlus, e.tMinus);
  });
  return combineEntryLabels(labels);
}

/**
 * Closed-set label (§3.3, DESIGN §1): positive iff the gold choice is strictly more probable than
 * every other choice (P('true') = 0.116 vs P('false') = 0.109 → positive); ties are negative.
 * No thresholds are involved, online or offline.
 */
export function labelClosedSet(choiceScores: readonly number[], goldIndex: number): Label {
  if (!Number.isInteger(goldIndex) || goldIndex < 0 || goldIndex >= choiceScores.length) {
    throw invalid(`gold choice index ${goldIndex} is outside the ${choiceScores.length} choices`);
  }
  const gold = choiceScores[goldIndex];
  for (let i = 0; i < choiceScores.length; i++) {
    if (i !== goldIndex && !(gold > choiceScores[i])) return 0;
  }
  return Number.isNaN(gold) ? 0 : 1;
}
