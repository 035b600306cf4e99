/**
 * Retrieval quality and speed on any data folder in the shared layout (corpus.jsonl,
 * queries.jsonl, qrels.tsv): loads the corpus through `POST /documents` into a temporary data
 * directory, runs every query through `POST /search`, prints one JSON object as its last line.
 *
 *   npx tsx bench/eval.ts --data <folder> [--mode lexical|beta|late[,…]] [--k 100] [--split test|train]
 *                         [--limit-queries N] [--data-dir DIR (kept)] [--no-documents]
 */
import { readQrels, readQueries } from './lib/dataset.ts';
import { evaluate, round4 } from './lib/evaluate.ts';
import { ingestCorpus, openHarness, parseFlags } from './lib/harness.ts';

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
  const results: Record<string, Record<string, number>> = {};
  for (const mode of modes) results[mode] = await evaluate(app, limited, qrels, { mode, k });
  const summary: Record<string, unknown> = {
    data: flags.data.split('/').filter(Boolean).pop(),
    split,
    docs: ingest.docs,
    queries: limited.length,
    ingest_docs_per_s: Math.round(ingest.docsPerSecond),
    ingest_seconds: Math.round(ingest.seconds * 100) / 100,
  };
  if (modes.length === 1) Object.assign(summary, { mode: modes[0] }, round4(results[modes[0]]));
  else summary.modes = Object.fromEntries(Object.entries(results).map(([m, r]) => [m, round4(r)]));
  console.log(JSON.stringify(summary));
} finally {
  await harness.close();
}
