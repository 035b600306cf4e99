/**
 * Retrieval quality and speed on any data folder in the shared layout (corpus.jsonl,
 * queries.jsonl, qrels.tsv): loads the corpus through `POST /documents` into a temporary data
 * directory, runs every query through `POST /search`, prints one JSON object as its last line.
 *
 *   npx tsx bench/eval.ts --data <folder> [--mode lexical|beta|late[,…]] [--k 100] [--split test|train]
 *                         [--limit-queries N] [--data-dir DIR (kept)] [--no-documents]
 */
import { createAnswerMatcher } from './lib/answers.ts';
import { readQrels, readQueries } from './lib/dataset.ts';
import { ingestCorpus, openHarness, parseFlags, search } from './lib/harness.ts';
import { createAggregator, evaluateRanking, percentile } from './lib/metrics.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/eval.ts --data <folder> [--mode lexical|beta|late] [--k 100]');
  process.exit(2);
}
const modes = (flags.mode ?? 'lexical').split(',');
const k = Number(flags.k ?? 100);
const split = (flags.split ?? 'test') as 'test' | 'train';

const harness = await openHarness({ dataDir: flags['data-dir'] });
const { app } = harness;
try {
  const count = (app.engine.collections.get('default').index.liveCount);
  const ingest = count > 0 && flags['data-dir'] ? { docs: count, seconds: 0, docsPerSecond: NaN } : await ingestCorpus(app, flags.data);
  const queries = await readQueries(flags.data, split);
  const qrels = await readQrels(flags.data, split).catch(() => new Map());
  const limited = flags['limit-queries'] ? queries.slice(0, Number(flags['limit-queries'])) : queries;
  const hasAnswers = limited.some((q) => q.answers && q.answers.length > 0);
  const results: Record<string, Record<string, number>> = {};
  for (const mode of modes) {
    const agg = createAggregator();
    const latencies: number[] = [];
    // Warm-up: JIT, caches and page faults should not count against the first queries.
    for (const q of limited.slice(0, 20)) await search(app, { query: q.text, k, mode, includeDocuments: false });
    for (const q of limited) {
      const t0 = performance.now();
      const r = await search(app, { query: q.text, k, mode, includeDocuments: hasAnswers });
      latencies.push(performance.now() - t0);
      const ids = r.hits.map((h) => h.id);
      const perQuery: Record<string, number> = {};
      const qrel = qrels.get(q.id);
      if (qrel && [...qrel.values()].some((g) => g > 0)) {
        const m = evaluateRanking(ids, qrel, [10, 20, 100]);
        perQuery['ndcg@10'] = m['ndcg@10'];
        perQuery['recall@20'] = m['recall@20'];
        perQuery['recall@100'] = m['recall@100'];
        perQuery['mrr@10'] = m['mrr@10'];
      }
      if (q.answers && q.answers.length > 0) {
        let first = Infinity;
        for (let i = 0; i < r.hits.length && i < 20; i++) {
          const matches = createAnswerMatcher(r.hits[i].text ?? '');
          if (q.answers.some(matches)) {
            first = i;
            break;
          }
        }
        for (const at of [1, 5, 20]) perQuery[`answer_recall@${at}`] = first < at ? 1 : 0;
      }
      agg.add(perQuery);
    }
    results[mode] = {
      ...agg.means(),
      search_p50_ms: percentile(latencies, 50),
      search_p99_ms: percentile(latencies, 99),
    };
  }
  const round = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).map(([key, v]) => [key, Number.isFinite(v) ? Math.round(v * 10000) / 10000 : v]));
  const summary: Record<string, unknown> = {
    data: flags.data.split('/').filter(Boolean).pop(),
    split,
    docs: ingest.docs,
    queries: limited.length,
    ingest_docs_per_s: Math.round(ingest.docsPerSecond),
    ingest_seconds: Math.round(ingest.seconds * 100) / 100,
  };
  if (modes.length === 1) Object.assign(summary, { mode: modes[0] }, round(results[modes[0]]));
  else summary.modes = Object.fromEntries(Object.entries(results).map(([m, r]) => [m, round(r)]));
  console.log(JSON.stringify(summary));
} finally {
  await harness.close();
}
