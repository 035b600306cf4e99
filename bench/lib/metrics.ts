/**
 * Ranking metrics with BEIR / pytrec_eval (trec_eval) conventions — nDCG@k, recall@k, MRR@k —
 * plus percentiles and a per-query mean aggregator. Pure functions over ids; no I/O.
 * Callers skip queries whose qrel has no relevant document (grade > 0), as BEIR does.
 */

/** One query's judgements: document id → integer grade. Grade > 0 means relevant. */
export type Qrel = ReadonlyMap<string, number>;

/**
 * Gain of a judged grade. We use the grade itself (linear gain), not 2^rel − 1: BEIR scores with
 * pytrec_eval's `ndcg_cut`, and trec_eval's nDCG uses the relevance level as the gain. For
 * binary qrels (SciFact, SQuAD here) the two coincide. Grades ≤ 0 gain nothing.
 */
function gainOf(grade: number | undefined): number {
  return grade !== undefined && grade > 0 ? grade : 0;
}

/** Number of relevant (grade > 0) documents in a qrel. */
export function relevantCount(qrel: Qrel): number {
  let n = 0;
  for (const g of qrel.values()) if (g > 0) n++;
  return n;
}

/**
 * The first `k` distinct ids of a ranking. trec_eval reads a run as a set of (doc, score) pairs,
 * so a document listed twice counts once; we keep its best (first) rank.
 */
function topDistinct(k: number, rankedIds: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const id of rankedIds) {
    if (out.length >= k) break;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

/**
 * nDCG@k = DCG@k / IDCG@k with DCG@k = Σ_{r=1..k} gain(d_r) / log2(r + 1) (trec_eval
 * `m_ndcg_cut.c`); the ideal ranking sorts all judged gains of the qrel descending. Returns 0 when
 * the qrel has no relevant document.
 */
export function ndcgAt(k: number, rankedIds: readonly string[], qrel: Qrel): number {
  const top = topDistinct(k, rankedIds);
  let dcg = 0;
  for (let r = 0; r < top.length; r++) dcg += gainOf(qrel.get(top[r])) / Math.log2(r + 2);
  const ideal = [...qrel.values()].map(gainOf).filter((g) => g > 0).sort((a, b) => b - a);
  let idcg = 0;
  for (let r = 0; r < Math.min(k, ideal.length); r++) idcg += ideal[r] / Math.log2(r + 2);
  return idcg > 0 ? dcg / idcg : 0;
}

/** recall@k = |relevant ∩ top k| / |relevant| (pytrec_eval `recall_k`). 0 when nothing is relevant. */
export function recallAt(k: number, rankedIds: readonly string[], qrel: Qrel): number {
  const total = relevantCount(qrel);
  if (total === 0) return 0;
  let hit = 0;
  for (const id of topDistinct(k, rankedIds)) if (gainOf(qrel.get(id)) > 0) hit++;
  return hit / total;
}

/** MRR@k = 1 / rank of the first relevant document within the top k, else 0 (BEIR `mrr`). */
export function mrrAt(k: number, rankedIds: readonly string[], qrel: Qrel): number {
  const top = topDistinct(k, rankedIds);
  for (let r = 0; r < top.length; r++) if (gainOf(qrel.get(top[r])) > 0) return 1 / (r + 1);
  return 0;
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) by linear interpolation between closest ranks, as numpy's
 * default `percentile(..., method="linear")`. NaN for an empty input. Does not modify `values`.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile p must be in [0, 100], got ${p}`);
  const n = values.length;
  if (n === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * The standard per-query metric set for cut-offs `ks`: `ndcg@k`, `recall@k`, `mrr@k` for each k.
 * Call only for queries with at least one relevant document.
 */
export function evaluateRanking(rankedIds: readonly string[], qrel: Qrel, ks: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ks) {
    out[`ndcg@${k}`] = ndcgAt(k, rankedIds, qrel);
    out[`recall@${k}`] = recallAt(k, rankedIds, qrel);
    out[`mrr@${k}`] = mrrAt(k, rankedIds, qrel);
  }
  return out;
}

/** Averages per-query metric records (macro average, as BEIR reports). */
export interface MetricAggregator {
  /** Adds one query's metrics. Keys may differ between queries; each key averages over its own count. */
  add(perQuery: Readonly<Record<string, number>>): void;
  /** Mean of each metric over the queries that reported it. */
  means(): Record<string, number>;
  /** Number of queries added. */
  readonly count: number;
}

/** Creates an empty aggregator. */
export function createAggregator(): MetricAggregator {
  const sums = new Map<string, { sum: number; n: number }>();
  let count = 0;
  return {
    add(perQuery) {
      count++;
      for (const [key, value] of Object.entries(perQuery)) {
        const s = sums.get(key) ?? { sum: 0, n: 0 };
        s.sum += value;
        s.n++;
        sums.set(key, s);
      }
    },
    means() {
      const out: Record<string, number> = {};
      for (const [key, { sum, n }] of sums) out[key] = sum / n;
      return out;
    },
    get count() {
      return count;
    },
  };
}
