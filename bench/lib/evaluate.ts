/**
 * Runs a query set through `POST /search` and aggregates the standard metrics: nDCG@10,
 * recall@20/100 and MRR@10 against qrels, answer recall@1/5/20 (DPR has_answer) when queries
 * carry answers, and latency percentiles. Shared by eval.ts and rcl.ts.
 */
import type { FastifyInstance } from 'fastify';
import { createAnswerMatcher } from './answers.ts';
import type { EvalQuery, Qrels } from './dataset.ts';
import { search } from './harness.ts';
import { createAggregator, evaluateRanking, percentile } from './metrics.ts';

export interface EvaluateOptions {
  mode: string;
  k?: number;
  collection?: string;
  /** Queries run before timing starts. Default 20. */
  warmup?: number;
}

/** Mean metrics over `queries` plus search p50/p99 in ms. */
export async function evaluate(app: FastifyInstance, queries: readonly EvalQuery[], qrels: Qrels, opts: EvaluateOptions): Promise<Record<string, number>> {
  const k = opts.k ?? 100;
  const hasAnswers = queries.some((q) => q.answers && q.answers.length > 0);
  const body = (text: string, includeDocuments: boolean) => ({ collection: opts.collection, query: text, k, mode: opts.mode, includeDocuments });
  for (const q of queries.slice(0, opts.warmup ?? 20)) await search(app, body(q.text, false));
  const agg = createAggregator();
  const latencies: number[] = [];
  for (const q of queries) {
    const t0 = performance.now();
    const r = await search(app, body(q.text, hasAnswers));
    latencies.push(performance.now() - t0);
    const perQuery: Record<string, number> = {};
    const qrel = qrels.get(q.id);
    if (qrel && [...qrel.values()].some((g) => g > 0)) {
      const m = evaluateRanking(r.hits.map((h) => h.id), qrel, [10, 20, 100]);
      for (const key of ['ndcg@10', 'recall@20', 'recall@100', 'mrr@10']) perQuery[key] = m[key];
    }
    if (q.answers && q.answers.length > 0) {
      let first = Infinity;
      for (let i = 0; i < r.hits.length && i < 20; i++) {
        if (q.answers.some(createAnswerMatcher(r.hits[i].text ?? ''))) {
          first = i;
          break;
        }
      }
      for (const at of [1, 5, 20]) perQuery[`answer_recall@${at}`] = first < at ? 1 : 0;
    }
    agg.add(perQuery);
  }
  return { ...agg.means(), search_p50_ms: percentile(latencies, 50), search_p99_ms: percentile(latencies, 99) };
}

/** Rounds every number to 4 decimals for printing. */
export function round4(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([key, v]) => [key, Number.isFinite(v) ? Math.round(v * 10000) / 10000 : v]));
}
