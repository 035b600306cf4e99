/**
 * r3serve side by side with peer engines on one data folder: nDCG@10, recall@100, build time,
 * memory, disk, and single-threaded query latency. Each system runs in its own child process
 * (clean memory deltas, no shared JIT state). Prints a table on stderr and one JSON line last.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MiB, memorySnapshot, round, runEnvironment, table, writeResult, type MemorySnapshot } from './lib/bench-env.ts';
import { readCorpus, readQrels, readQueries, type CorpusDoc, type EvalQuery, type Qrels } from './lib/dataset.ts';
import { ingestCorpus, openHarness, parseFlags, search } from './lib/harness.ts';
import { createAggregator, ndcgAt, percentile, recallAt } from './lib/metrics.ts';
import { PEER_NAMES, createPeer, duBytes, type PeerName, type PgRank } from './lib/peer-engines.ts';

const flags = parseFlags(process.argv.slice(2));
const USAGE = `usage: npx tsx bench/peers.ts --data <folder> [--systems r3serve,minisearch,orama,flexsearch,wink-bm25,postgres]
  [--split test] [--limit DOCS] [--limit-queries N] [--rounds 3] [--warmup 50] [--k 10]
  [--pg-rank ts_rank|ts_rank_cd] [--pg-norm 1] [--out [DIR]]`;
const ALL_SYSTEMS = ['r3serve', ...PEER_NAMES];
/** Depth of the quality pass (recall@100 needs 100). */
const QUALITY_K = 100;

/** One row of the report. */
interface SystemResult {
  system: string;
  available: boolean;
  reason?: string;
  config?: string;
  /** `direct` = in-process call; `inject` = through fastify's request pipeline (`app.inject`); `sql` = Postgres over loopback TCP. */
  path?: string;
  docs?: number;
  queries?: number;
  'ndcg@10'?: number;
  'recall@100'?: number;
  build_s?: number;
  build_docs_per_s?: number;
  heap_delta_mib?: number;
  rss_delta_mib?: number;
  rss_mib?: number;
  server_pss_mib?: number;
  disk_mib?: number;
  p50_ms?: number;
  p99_ms?: number;
  qps?: number;
  /** r3serve only: each query once before any other pass (cold per-query caches). */
  first_sight_p50_ms?: number;
  first_sight_p99_ms?: number;
}

if (!flags.data) {
  console.error(USAGE);
  process.exit(2);
}

const roundsFlag = Number(flags.rounds ?? 3);
const warmupFlag = Number(flags.warmup ?? 50);
const latencyK = Number(flags.k ?? 10);
const split = (flags.split ?? 'test') as 'test' | 'train';

async function loadQueries(): Promise<{ queries: EvalQuery[]; qrels: Qrels }> {
  const all = await readQueries(flags.data, split);
  const qrels = await readQrels(flags.data, split);
  const queries = flags['limit-queries'] ? all.slice(0, Number(flags['limit-queries'])) : all;
  return { queries, qrels };
}

function relevant(qrels: Qrels, id: string) {
  const q = qrels.get(id);
  return q && [...q.values()].some((g) => g > 0) ? q : undefined;
}

/** Quality over every judged query at depth 100. */
async function qualityPass(queries: EvalQuery[], qrels: Qrels, run: (q: string, k: number) => string[] | Promise<string[]>) {
  const agg = createAggregator();
  for (const q of queries) {
    const qrel = relevant(qrels, q.id);
    if (!qrel) continue;
    const ids = await run(q.text, QUALITY_K);
    agg.add({ 'ndcg@10': ndcgAt(10, ids, qrel), 'recall@100': recallAt(100, ids, qrel) });
  }
  const m = agg.means();
  return { 'ndcg@10': round(m['ndcg@10']), 'recall@100': round(m['recall@100']), judged: agg.count };
}

/** One query at a time after a warm-up; latency of each call, queries/s over the summed latencies. */
async function latencyPass(queries: EvalQuery[], run: (q: string, k: number) => unknown, opts: { rounds?: number; warmup?: number } = {}) {
  const rounds = opts.rounds ?? roundsFlag;
  for (let i = 0; i < Math.min(opts.warmup ?? warmupFlag, queries.length); i++) {
    const r = run(queries[i].text, latencyK);
    if (r instanceof Promise) await r;
  }
  const lat: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const q of queries) {
      const t0 = performance.now();
      const r = run(q.text, latencyK);
      if (r instanceof Promise) await r;
      lat.push(performance.now() - t0);
    }
  }
  const total = lat.reduce((a, b) => a + b, 0);
  return { p50_ms: round(percentile(lat, 50), 3), p99_ms: round(percentile(lat, 99), 3), qps: round(lat.length / (total / 1000), 1) };
}

function memDelta(before: MemorySnapshot, after: MemorySnapshot) {
  return {
    heap_delta_mib: round((after.heapUsed - before.heapUsed) / MiB, 1),
    rss_delta_mib: round((after.rss - before.rss) / MiB, 1),
    rss_mib: round(after.rss / MiB, 1),
  };
}

async function* batches(limit: number | undefined, size = 1000): AsyncGenerator<CorpusDoc[]> {
  let batch: CorpusDoc[] = [];
  let n = 0;
  for await (const doc of readCorpus(flags.data)) {
    if (limit !== undefined && n >= limit) break;
    batch.push(doc);
    n++;
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

// ---- children --------------------------------------------------------------------------------

async function runPeer(name: PeerName): Promise<SystemResult[]> {
  const { queries, qrels } = await loadQueries();
  const before = memorySnapshot();
  const engine = await createPeer(name, { pgRank: flags['pg-rank'] as PgRank | undefined, pgNormalization: flags['pg-norm'] ? Number(flags['pg-norm']) : undefined });
  try {
    const t0 = performance.now();
    let docs = 0;
    for await (const b of batches(flags.limit ? Number(flags.limit) : undefined)) {
      await engine.add(b);
      docs += b.length;
    }
    await engine.finish();
    const buildS = (performance.now() - t0) / 1000;
    const after = memorySnapshot();
    const quality = await qualityPass(queries, qrels, (q, k) => engine.search(q, k));
    const latency = await latencyPass(queries, (q, k) => engine.search(q, k));
    const out: SystemResult = {
      system: name,
      available: true,
      config: engine.config,
      path: engine.serverMemoryBytes ? 'sql' : 'direct',
      docs,
      queries: quality.judged,
      'ndcg@10': quality['ndcg@10'],
      'recall@100': quality['recall@100'],
      build_s: round(buildS, 2),
      build_docs_per_s: Math.round(docs / buildS),
      ...memDelta(before, after),
      ...latency,
    };
    if (engine.serverMemoryBytes) out.server_pss_mib = round(engine.serverMemoryBytes() / MiB, 1);
    if (engine.diskBytes) out.disk_mib = round((await engine.diskBytes()) / MiB, 1);
    return [out];
  } finally {
    await engine.close();
  }
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

async function runR3serve(): Promise<SystemResult[]> {
  const { queries, qrels } = await loadQueries();
  const harness = await openHarness();
  const { app } = harness;
  try {
    const before = memorySnapshot();
    const ingest = await ingestCorpus(app, flags.data, { limit: flags.limit ? Number(flags.limit) : undefined });
    const after = memorySnapshot();
    const collection = app.engine.collections.get('default');
    const disk = duBytes(harness.dataDir);
    const common = {
      docs: ingest.docs,
      build_s: round(ingest.seconds, 2),
      build_docs_per_s: Math.round(ingest.docsPerSecond),
      ...memDelta(before, after),
      disk_mib: round(disk / MiB, 1),
    };
    const out: SystemResult[] = [];
    for (const mode of ['lexical', 'late'] as const) {
      const direct = (query: string, k: number): string[] => {
        try {
          return collection.searcher.search({ query, k, m: 20, mode, includeDocuments: false }).hits.map((h) => h.id);
        } catch (err) {
          if (errorCode(err) === 'QUERY_EMPTY') return [];
          throw err;
        }
      };
      const inject = async (query: string, k: number): Promise<string[]> => (await search(app, { query, k, m: 20, mode, includeDocuments: false })).hits.map((h) => h.id);
      try {
        direct(queries[0].text, 10);
      } catch (err) {
        if (errorCode(err) !== 'MODE_UNSUPPORTED') throw err;
        const r = await app.inject({ method: 'POST', url: '/search', payload: { query: queries[0].text, mode } });
        const reason = `POST /search answers ${r.statusCode} ${(r.json() as { code?: string }).code ?? ''} for mode ${mode}`;
        out.push({ system: `r3serve-${mode}`, available: false, reason, path: 'direct' }, { system: `r3serve-${mode}`, available: false, reason, path: 'inject' });
        continue;
      }
      const config = `r3serve ${mode}${mode === 'late' ? ' (m = 20)' : ' (BM25 k1 = 1.2, b = 0.75 over tf tiers)'}, wink analyzer with Porter2, includeDocuments false`;
      // First sight (each query once, direct path, k = 10) before anything warms per-query caches.
      const firstSight = await latencyPass(queries, direct, { rounds: 1, warmup: 0 });
      const quality = await qualityPass(queries, qrels, inject);
      const qDirect = await qualityPass(queries.slice(0, 20), qrels, direct);
      const qInject = await qualityPass(queries.slice(0, 20), qrels, inject);
      if (qDirect['ndcg@10'] !== qInject['ndcg@10']) console.error(`warning: r3serve ${mode}: direct and inject rankings differ`);
      const lDirect = { ...(await latencyPass(queries, direct)), first_sight_p50_ms: firstSight.p50_ms, first_sight_p99_ms: firstSight.p99_ms };
      const lInject = await latencyPass(queries, inject);
      const base = { available: true, config, queries: quality.judged, 'ndcg@10': quality['ndcg@10'], 'recall@100': quality['recall@100'], ...common };
      out.push({ system: `r3serve-${mode}`, path: 'direct', ...base, ...lDirect }, { system: `r3serve-${mode}`, path: 'inject', ...base, ...lInject });
    }
    const final = memorySnapshot();
    for (const r of out) if (r.available) r.rss_mib = round(final.rss / MiB, 1);
    return out;
  } finally {
    await harness.close();
  }
}

// ---- parent ----------------------------------------------------------------------------------

function runChild(system: string): Promise<SystemResult[]> {
  const self = fileURLToPath(import.meta.url);
  const args = [...process.execArgv, '--expose-gc', self, ...process.argv.slice(2).filter((a) => a !== '--out'), '--child', system];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as SystemResult[]);
      } catch {
        resolve([{ system, available: false, reason: `child exited ${code}: ${last.slice(0, 300)}` }]);
      }
    });
  });
}

function acceptance(rows: SystemResult[]) {
  const peers = rows.filter((r) => r.available && !r.system.startsWith('r3serve'));
  const late = rows.find((r) => r.available && r.system === 'r3serve-late' && r.path === 'direct');
  const lexical = rows.find((r) => r.available && r.system === 'r3serve-lexical' && r.path === 'direct');
  const bestPeerNdcg = Math.max(...peers.map((p) => p['ndcg@10'] ?? 0));
  const fastest = peers.reduce<SystemResult | undefined>((a, b) => (a === undefined || (b.p50_ms ?? Infinity) < (a.p50_ms ?? Infinity) ? b : a), undefined);
  const p50Of = (name: string) => peers.find((p) => p.system === name)?.p50_ms;
  return {
    late_ndcg_above_every_peer: late ? late['ndcg@10']! > bestPeerNdcg : 'unavailable',
    best_peer_ndcg: bestPeerNdcg,
    fastest_peer: fastest ? `${fastest.system} ${fastest.p50_ms} ms` : undefined,
    lexical_p50_within_2x_fastest: lexical && fastest ? lexical.p50_ms! <= 2 * fastest.p50_ms! : 'unavailable',
    lexical_faster_than_minisearch: lexical && p50Of('minisearch') !== undefined ? lexical.p50_ms! < p50Of('minisearch')! : 'unavailable',
    lexical_faster_than_orama: lexical && p50Of('orama') !== undefined ? lexical.p50_ms! < p50Of('orama')! : 'unavailable',
  };
}

async function main(): Promise<void> {
  if (flags.child) {
    const rows = flags.child === 'r3serve' ? await runR3serve() : await runPeer(flags.child as PeerName);
    console.log(JSON.stringify(rows));
    return;
  }
  const env = runEnvironment();
  const systems = (flags.systems ?? ALL_SYSTEMS.join(',')).split(',');
  for (const s of systems) if (!ALL_SYSTEMS.includes(s)) throw new Error(`unknown system ${s}; known: ${ALL_SYSTEMS.join(', ')}`);
  const rows: SystemResult[] = [];
  for (const s of systems) {
    console.error(`[peers] ${s} …`);
    const r = await runChild(s);
    rows.push(...r);
  }
  console.error(
    table(
      rows.map((r) => ({ ...r, config: undefined, reason: r.available ? '' : r.reason })),
      ['system', 'path', 'ndcg@10', 'recall@100', 'build_s', 'build_docs_per_s', 'heap_delta_mib', 'rss_delta_mib', 'server_pss_mib', 'disk_mib', 'p50_ms', 'p99_ms', 'qps', 'reason'],
    ),
  );
  const result = {
    bench: 'peers',
    data: flags.data.split('/').filter(Boolean).pop(),
    split,
    latency_k: latencyK,
    rounds: roundsFlag,
    ...env,
    loadavg_end: round(loadavg()[0], 2),
    systems: rows,
    acceptance: acceptance(rows),
  };
  const path = writeResult('peers', flags.out, result);
  if (path) console.error(`[peers] wrote ${path}`);
  console.log(JSON.stringify(result));
}

await main();
