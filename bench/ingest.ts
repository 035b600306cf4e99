/**
 * Bulk ingest over HTTP into a real server process, with `/search` probed throughout: docs/s
 * through `POST /documents` (JSON batches, a few in flight; the postings checkpoint that follows
 * is timed apart) and the latency of searches that
 * arrive during the load (analysis runs off the event loop, so they must stay fast).
 *
 *   npx tsx bench/ingest.ts --data <folder> [--batch 1000] [--concurrency 2] [--workers N] [--repeat 1]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCorpus, type CorpusDoc } from './lib/dataset.ts';
import { parseFlags } from './lib/harness.ts';
import { startServer } from './lib/server.ts';
import { percentile } from './lib/metrics.ts';
import { round } from './lib/bench-env.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/ingest.ts --data <folder> [--batch 1000] [--concurrency 2] [--workers N]');
  process.exit(2);
}
const batchSize = Number(flags.batch ?? 1000);
const concurrency = Number(flags.concurrency ?? 2);
const repeat = Number(flags.repeat ?? 1);

const dataDir = mkdtempSync(join(tmpdir(), 'r3ingest-'));
const server = await startServer(dataDir, { args: flags.workers ? ['--workers', flags.workers] : [] });
const base = server.base;

try {
  const docs: CorpusDoc[] = [];
  for await (const d of readCorpus(flags.data)) docs.push(d);
  const bodies: string[] = [];
  for (let r = 0; r < repeat; r++) {
    for (let i = 0; i < docs.length; i += batchSize) {
      const documents = docs.slice(i, i + batchSize).map((d) => ({ ...d, id: repeat > 1 ? `${r}:${d.id}` : d.id }));
      bodies.push(JSON.stringify({ documents }));
    }
  }
  // A few searches first so the probe measures steady state, not first-use costs.
  const probeQuery = () => fetch(`${base}/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: 'protein expression in cancer cells', mode: 'lexical', k: 10 }) });
  for (let i = 0; i < 5; i++) await probeQuery();

  let loading = true;
  const probe: number[] = [];
  const prober = (async () => {
    while (loading) {
      const t0 = performance.now();
      const r = await probeQuery();
      await r.arrayBuffer();
      probe.push(performance.now() - t0);
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const r = await fetch(`${base}/documents`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        if (r.status !== 200) throw new Error(`ingest: ${r.status} ${await r.text()}`);
        await r.arrayBuffer();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  loading = false;
  await prober;
  // Postings reach LMDB at a checkpoint after the load (the documents were durable before each
  // answer): time what is left of it, so the rate including it is reported too.
  const tc = performance.now();
  const checkpoint = await fetch(`${base}/collections/default/checkpoint`, { method: 'POST' });
  if (checkpoint.status !== 200) throw new Error(`checkpoint: ${checkpoint.status} ${await checkpoint.text()}`);
  await checkpoint.arrayBuffer();
  const checkpointSeconds = (performance.now() - tc) / 1000;
  const total = docs.length * repeat;
  console.log(
    JSON.stringify({
      data: flags.data.split('/').filter(Boolean).pop(),
      docs: total,
      seconds: Math.round(seconds * 100) / 100,
      docs_per_s: Math.round(total / seconds),
      checkpoint_ms: Math.round(checkpointSeconds * 1000),
      docs_per_s_with_checkpoint: Math.round(total / (seconds + checkpointSeconds)),
      batch: batchSize,
      concurrency,
      search_during_ingest: { requests: probe.length, p50_ms: round(percentile(probe, 50), 3), p99_ms: round(percentile(probe, 99), 3), max_ms: round(Math.max(...probe), 3) },
    }),
  );
} finally {
  await server.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
