/**
 * The `onnx` retriever end to end on a data folder: a wordpiece collection from tiny generated
 * models, ingest through `POST /documents`, late search, head training steps, a hot model swap,
 * search again; then the cold re-rank latency of m = 20 for every tiny model. Prints one JSON line
 * last: index fingerprints before/after training and swap, swap ms, re-rank ms, quality figures.
 *
 *   npx tsx bench/onnx-swap.ts --data <folder> [--limit N] [--kind sidr|splade|dense] [--steps 20]
 *                              [--batch 16] [--lr 0.01] [--queries 100] [--models <dir> | --generate]
 *                              [--latency-docs 300] [--latency-queries 30] [--threads 1] [--temperature 1]
 * The tiny models are random: quality figures only show that nothing breaks, not that anything helps.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config/load.ts';
import { indexFingerprint } from '../src/index/fingerprint.ts';
import type { RetrieverFactory } from '../src/search/collections.ts';
import { isModelSwappable } from '../src/search/onnx-retriever.ts';
import { createRetrieverFactory } from '../src/search/retrievers.ts';
import type { TrainTriple } from '../src/search/trainable.ts';
import { readCorpus, readQrels, readQueries, type EvalQuery, type Qrels } from './lib/dataset.ts';
import { evaluate, round4 } from './lib/evaluate.ts';
import { ingestCorpus, parseFlags } from './lib/harness.ts';
import { percentile } from './lib/metrics.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/onnx-swap.ts --data <folder> [--limit N] [--kind sidr|splade|dense] [--steps N] [--models dir | --generate]');
  process.exit(2);
}
const dir = flags.data;
const limit = flags.limit ? Number(flags.limit) : undefined;
const kind = flags.kind ?? 'sidr';
const steps = Number(flags.steps ?? 20);
const batchSize = Number(flags.batch ?? 16);
const lr = Number(flags.lr ?? 0.01);
const maxQueries = Number(flags.queries ?? 100);
const latencyDocs = Number(flags['latency-docs'] ?? 300);
const latencyQueries = Number(flags['latency-queries'] ?? 30);
const runtime = { providers: ['cpu'], threads: Number(flags.threads ?? 1), temperature: Number(flags.temperature ?? 1) };
const MODEL_NAMES = ['sidr-a', 'sidr-b', 'splade-a', 'splade-b', 'dense-a', 'dense-b'];

let generated: string | undefined;
let models = flags.models ?? fileURLToPath(new URL('../test/fixtures/models/', import.meta.url));
if (flags.generate === 'true') {
  generated = mkdtempSync(join(tmpdir(), 'r3models-'));
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../scripts/make-tiny-models.ts', import.meta.url)), generated], { stdio: 'inherit' });
  models = generated;
}
const modelA = join(models, `${kind}-a`);
const modelB = join(models, `${kind}-b`);

// Only onnx collections get a retriever here: the default collection stays lexical (no GloVe load).
const dataDir = mkdtempSync(join(tmpdir(), 'r3bench-'));
const config = loadConfig({ overrides: { store: { dataDir }, server: { logLevel: 'warn' } } });
const serverFactory = createRetrieverFactory(config);
const factory: RetrieverFactory = (c, store) => (c.options.retriever.kind === 'onnx' ? serverFactory(c, store) : Promise.resolve(undefined));
const app: FastifyInstance = await buildApp(config, { retrieverFactory: factory });

async function call(method: 'GET' | 'POST' | 'PUT', url: string, payload?: object): Promise<Record<string, any>> {
  const r = await app.inject({ method, url, ...(payload ? { payload } : {}) });
  if (r.statusCode >= 300) throw Object.assign(new Error(`${method} ${url}: ${r.statusCode} ${r.body.slice(0, 400)}`), { code: r.json().code });
  return r.json();
}

/** Queries with at least one relevant document in the ingested corpus (all of them without --limit). */
async function usableQueries(split: 'test' | 'train', ids: Set<string>): Promise<{ queries: EvalQuery[]; qrels: Qrels }> {
  const queries = await readQueries(dir, split);
  const qrels = await readQrels(dir, split);
  const ok = queries.filter((q) => [...(qrels.get(q.id) ?? new Map()).entries()].some(([d, g]) => g > 0 && ids.has(d)));
  return { queries: ok, qrels };
}

/** Hard negatives from late search under the current θ; positives from the qrels. */
async function buildTriples(collection: string, queries: EvalQuery[], qrels: Qrels): Promise<TrainTriple[]> {
  const c = app.engine.collections.get(collection);
  const out: TrainTriple[] = [];
  for (const q of queries) {
    const rel = qrels.get(q.id) ?? new Map<string, number>();
    const pos = [...rel.entries()].find(([d, g]) => g > 0 && c.index.getDocument(d));
    if (!pos) continue;
    const hits = (await call('POST', '/search', { collection, query: q.text, k: 20, mode: 'late', includeDocuments: false })).hits as Array<{ id: string }>;
    const neg = hits.find((h) => !((rel.get(h.id) ?? 0) > 0));
    if (!neg) continue;
    out.push({ query: { text: q.text, termIds: c.searcher.queryTerms(q.text) }, positive: c.index.getDocument(pos[0])!.docId, negative: c.index.getDocument(neg.id)!.docId });
  }
  return out;
}

/**
 * Re-rank ms (server-side `timings.rerankMs`) of late searches with m = 20, and the longest
 * event-loop stall meanwhile (what every other request would have waited).
 */
async function rerankTimes(collection: string, queries: EvalQuery[]): Promise<{ p50: number; p99: number; mean: number; n: number; eventLoopMaxMs: number }> {
  const times: number[] = [];
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  for (const q of queries) {
    const r = await call('POST', '/search', { collection, query: q.text, k: 20, m: 20, mode: 'late', includeDocuments: false });
    if (r.hits.length === 20) times.push(r.timings.rerankMs);
  }
  delay.disable();
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    p50: round(percentile(times, 50)),
    p99: round(percentile(times, 99)),
    mean: round(times.reduce((a, b) => a + b, 0) / Math.max(1, times.length)),
    n: times.length,
    eventLoopMaxMs: round(delay.max / 1e6),
  };
}

try {
  const t0 = performance.now();
  await call('PUT', '/collections/bench', { analyzer: { name: 'wordpiece', model: modelA }, retriever: { kind: 'onnx', model: modelA, ...runtime } });
  const ingest = await ingestCorpus(app, dir, { collection: 'bench', limit });
  const index = app.engine.collections.get('bench').index;
  const ids = new Set<string>();
  for await (const d of readCorpus(dir)) if (index.getDocument(d.id)) ids.add(d.id);
  const test = await usableQueries('test', ids);
  const evalQueries = test.queries.slice(0, maxQueries);
  const train = await usableQueries('train', ids).catch(() => test);
  const dbs = app.engine.store.collectionDbs('bench');
  const fpBefore = indexFingerprint(dbs);
  const before = await evaluate(app, evalQueries, test.qrels, { mode: 'late', collection: 'bench', k: 20 });
  const lexical = await evaluate(app, evalQueries, test.qrels, { mode: 'lexical', collection: 'bench', k: 20 });

  // Training: POST /rcl/step with client scores when the loop serves this retriever, else retriever.train().
  const retriever = app.engine.collections.get('bench').searcher.retriever;
  if (!isModelSwappable(retriever)) throw new Error('the bench collection has no onnx retriever');
  const pool = train.queries.slice(0, steps * batchSize);
  let path = 'rcl-step';
  const losses: number[] = [];
  const tTrain = performance.now();
  try {
    // Offline pools as bench/rcl.ts's `qrels` environment: judged documents positive, the other late hits negative.
    const scores: Array<{ queryId: string; docId: string; score: number; label: 0 | 1 }> = [];
    for (const q of pool) {
      const rel = train.qrels.get(q.id) ?? new Map<string, number>();
      const hits = (await call('POST', '/search', { collection: 'bench', query: q.text, k: 20, mode: 'late', includeDocuments: false })).hits as Array<{ id: string }>;
      for (const h of hits) if (!((rel.get(h.id) ?? 0) > 0)) scores.push({ queryId: q.id, docId: h.id, score: 0, label: 0 });
      for (const [docId, g] of rel) if (g > 0 && ids.has(docId)) scores.push({ queryId: q.id, docId, score: 1, label: 1 });
    }
    await call('POST', '/rcl/offline', { collection: 'bench', queries: pool.map((q) => ({ id: q.id, text: q.text })), scores });
  } catch (err) {
    path = `retriever.train (rcl/offline: ${(err as { code?: string }).code ?? (err as Error).message.slice(0, 80)})`;
  }
  for (let s = 0; s < steps && pool.length > 0; s++) {
    const batch = Array.from({ length: batchSize }, (_, i) => pool[(s * batchSize + i) % pool.length]);
    if (path === 'rcl-step') {
      try {
        const ro = await call('POST', '/rcl/rollouts', { collection: 'bench', queries: batch.map((q) => ({ id: q.id })), includeDocuments: false });
        const online = (ro.queries as Array<{ id: string; candidates: Array<{ docId: string }> }>).flatMap((q) =>
          q.candidates.map((c) => {
            const rel = (train.qrels.get(q.id)?.get(c.docId) ?? 0) > 0;
            return { queryId: q.id, docId: c.docId, score: rel ? 1 : 0, label: rel ? 1 : 0 };
          }),
        );
        const r = await call('POST', '/rcl/step', { collection: 'bench', queries: batch.map((q) => ({ id: q.id })), rollout: ro.rollout, scores: online, learningRate: lr });
        losses.push(r.loss);
        continue;
      } catch (err) {
        // The RCL loop may not serve asynchronous (onnx) retrievers yet: train the head directly.
        path = `retriever.train (rcl/rollouts, rcl/step: ${(err as { code?: string }).code ?? (err as Error).message.slice(0, 80)})`;
      }
    }
    const triples = await buildTriples('bench', batch, train.qrels);
    if (triples.length === 0) continue;
    losses.push((await retriever.train(triples, { learningRate: lr, info: { bench: 'onnx-swap', step: s } })).loss);
  }
  const trainSeconds = (performance.now() - tTrain) / 1000;
  const afterTrain = await evaluate(app, evalQueries, test.qrels, { mode: 'late', collection: 'bench', k: 20 });
  const fpTrained = indexFingerprint(dbs);

  // Hot swap, with searches in flight, then a search at once.
  const inFlight = evalQueries.slice(0, 8).map((q) => app.inject({ method: 'POST', url: '/search', payload: { collection: 'bench', query: q.text, k: 10, mode: 'late' } }));
  const tSwap = performance.now();
  const swap = await call('POST', '/retriever/model', { collection: 'bench', model: modelB });
  const swapWallMs = performance.now() - tSwap;
  const inFlightOk = (await Promise.all(inFlight)).every((r) => r.statusCode === 200);
  const tFirst = performance.now();
  const first = await call('POST', '/search', { collection: 'bench', query: evalQueries[0]?.text ?? 'capital', k: 10, mode: 'late' });
  const firstSearchMs = performance.now() - tFirst;
  const afterSwap = await evaluate(app, evalQueries, test.qrels, { mode: 'late', collection: 'bench', k: 20 });
  const fpSwapped = indexFingerprint(dbs);
  const warm = await rerankTimes('bench', evalQueries.slice(0, latencyQueries)); // passages cached by the evaluation above

  // Cold re-rank latency of m = 20 per tiny model (no passage cache: every re-rank encodes 20 passages).
  const latency: Record<string, unknown> = {};
  const latencyIds = [...ids].slice(0, latencyDocs);
  const docs: Array<{ id: string; title?: string; text: string }> = [];
  for await (const d of readCorpus(dir)) if (latencyIds.includes(d.id)) docs.push(d.title ? d : { id: d.id, text: d.text });
  const latencyQs = test.queries.slice(0, latencyQueries);
  for (const name of MODEL_NAMES) {
    for (const inThread of name === 'sidr-a' ? [true, false] : [true]) {
      const coll = `lat-${name}${inThread ? '' : '-main'}`;
      await call('PUT', `/collections/${coll}`, { retriever: { kind: 'onnx', model: join(models, name), ...runtime, cacheEntries: 0, inThread } });
      await call('POST', '/documents', { collection: coll, documents: docs });
      latency[inThread ? name : `${name} (sessions on the event loop)`] = await rerankTimes(coll, latencyQs);
    }
  }

  const summary = {
    data: dir.split('/').filter(Boolean).pop(),
    docs: ingest.docs,
    kind,
    models: { a: modelA, b: modelB, generated: generated !== undefined },
    eval_queries: evalQueries.length,
    training: path,
    steps: losses.length,
    batch: batchSize,
    learning_rate: lr,
    loss_first: losses[0],
    loss_last: losses[losses.length - 1],
    loss_curve: losses.map((x) => Math.round(x * 1000) / 1000),
    train_seconds: Math.round(trainSeconds * 100) / 100,
    swap_ms: Math.round(swap.swap.ms * 10) / 10,
    swap_wall_ms: Math.round(swapWallMs * 10) / 10,
    swap_version: swap.swap.version,
    in_flight_searches_ok: inFlightOk,
    first_search_after_swap_ms: Math.round(firstSearchMs * 10) / 10,
    first_search_after_swap_version: first.retrieverVersion,
    lineage: ((await call('GET', '/retriever?collection=bench')).versions as Array<{ origin: string }>).map((v) => v.origin).join(','),
    provider: swap.swap.model.provider,
    lexical: round4(lexical),
    late_before: round4(before),
    late_after_train: round4(afterTrain),
    late_after_swap: round4(afterSwap),
    index_before: { bytes: fpBefore.bytes, entries: fpBefore.entries, sha256: fpBefore.sha256 },
    index_after_train: { bytes: fpTrained.bytes, sha256: fpTrained.sha256 },
    index_after_swap: { bytes: fpSwapped.bytes, sha256: fpSwapped.sha256 },
    index_unchanged: fpBefore.sha256 === fpTrained.sha256 && fpBefore.sha256 === fpSwapped.sha256,
    rerank_ms_m20_warm: warm,
    rerank_ms_m20_cold: latency,
    seconds: Math.round((performance.now() - t0) / 100) / 10,
  };
  console.log(JSON.stringify(summary));
} finally {
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
  if (generated) rmSync(generated, { recursive: true, force: true });
}
