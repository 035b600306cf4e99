/**
 * Does training stall search? Starts a real server process, loads a data folder, measures
 * `/search` (late) latency one request at a time while idle, then again while `/rcl/step` runs
 * back to back, and prints both with their ratio as one JSON line.
 *
 *   npx tsx bench/rcl-load.ts --data <folder> [--seconds 30] [--batch 32]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readQrels, readQueries, resolveDataFile } from './lib/dataset.ts';
import { parseFlags } from './lib/harness.ts';
import { startServer } from './lib/server.ts';
import { percentile } from './lib/metrics.ts';
import { round } from './lib/bench-env.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/rcl-load.ts --data <folder> [--seconds 30] [--batch 32]');
  process.exit(2);
}
const seconds = Number(flags.seconds ?? 30);
const batch = Number(flags.batch ?? 32);

const dataDir = mkdtempSync(join(tmpdir(), 'r3load-'));
const server = await startServer(dataDir, { args: [] });

async function call(path: string, body?: unknown, type = 'application/json'): Promise<any> {
  const r = await server.call(path, body, type);
  if (r.status >= 400) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
}

try {
  const corpus = await resolveDataFile(flags.data, 'corpus.jsonl');
  if (corpus.gzip) throw new Error('gzipped corpora: load them with bench/eval.ts');
  await call('/documents', readFileSync(corpus.path, 'utf8'), 'application/x-ndjson');
  await call('/collections/default/checkpoint', {}); // not left to fire inside a measured window
  const testQueries = await readQueries(flags.data, 'test');
  const trainQueries = await readQueries(flags.data, 'train').catch(() => undefined);
  const train = (trainQueries ?? testQueries).slice(0, 512);
  const qrels = await readQrels(flags.data, trainQueries ? 'train' : 'test');
  const probe = testQueries.slice(0, 200);
  const withAnswers = train.some((q) => q.answers?.length);
  if (withAnswers) {
    await call('/rcl/offline', { queries: train.map((q) => ({ id: q.id, text: q.text, answers: q.answers })), environment: 'contains' });
  } else {
    const scores = [];
    for (const q of train) {
      const hits = (await call('/search', { query: q.text, k: 100, includeDocuments: false })).hits as Array<{ id: string }>;
      const rel = qrels.get(q.id) ?? new Map();
      for (const h of hits) if (!((rel.get(h.id) ?? 0) > 0)) scores.push({ queryId: q.id, docId: h.id, score: 0, label: 0 });
      for (const [d, g] of rel) if (g > 0) scores.push({ queryId: q.id, docId: d, score: 1, label: 1 });
    }
    await call('/rcl/offline', { queries: train.map((q) => ({ id: q.id, text: q.text })), scores });
  }

  async function measure(ms: number): Promise<number[]> {
    const times: number[] = [];
    const end = performance.now() + ms;
    for (let i = 0; performance.now() < end; i++) {
      const t0 = performance.now();
      await call('/search', { query: probe[i % probe.length].text, k: 10, mode: 'late' });
      times.push(performance.now() - t0);
    }
    return times;
  }

  await measure(3_000); // warm-up
  const idle = await measure(seconds * 1000);
  let training = true;
  let steps = 0;
  let stepMs = 0;
  const trainer = (async () => {
    for (let i = 0; training; i = (i + batch) % train.length) {
      const queries = train.slice(i, i + batch).map((q) => ({ id: q.id }));
      const t0 = performance.now();
      try {
        if (withAnswers) await call('/rcl/step', { queries, environment: 'contains' });
        else {
          const ro = await call('/rcl/rollouts', { queries, includeDocuments: false });
          const scores = (ro.queries as Array<{ id: string; candidates: Array<{ docId: string }> }>).flatMap((q) =>
            q.candidates.map((c) => ({ queryId: q.id, docId: c.docId, score: (qrels.get(q.id)?.get(c.docId) ?? 0) > 0 ? 1 : 0 })),
          );
          await call('/rcl/step', { queries, rollout: ro.rollout, scores });
        }
        steps++;
        stepMs += performance.now() - t0;
      } catch (err) {
        if (!String(err).includes('RCL_NO_POOLS')) throw err;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 1_000)); // let the first step start
  const busy = await measure(seconds * 1000);
  training = false;
  await trainer;
  const s = (t: number[]) => ({ requests: t.length, p50_ms: round(percentile(t, 50), 3), p99_ms: round(percentile(t, 99), 3) });
  console.log(JSON.stringify({
    data: flags.data.split('/').filter(Boolean).pop(),
    idle: s(idle),
    training: s(busy),
    p99_ratio: round(percentile(busy, 99) / percentile(idle, 99), 3),
    steps,
    step_ms_mean: round(stepMs / Math.max(1, steps), 3),
  }));
} finally {
  await server.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
