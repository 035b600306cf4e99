/**
 * Load over real HTTP with autocannon: a listening r3serve (`src/main.ts` in a child process, on
 * 127.0.0.1) under `/search` (lexical, late, late with documents), `/documents` ingest, `/search`
 * while `/rcl/step` trains, and each peer engine behind a thin fastify wrapper. One JSON line last.
 */
import { SERVER_NODE_FLAGS } from '../src/threads.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { MiB, round, runEnvironment, table, writeResult } from './lib/bench-env.ts';
import { readCorpus, readQueries, type CorpusDoc, type EvalQuery } from './lib/dataset.ts';
import { parseFlags } from './lib/harness.ts';
import { percentile } from './lib/metrics.ts';
import { IN_PROCESS_PEERS, SERVER_PEERS, createPeer, duBytes, freePort, type PeerName } from './lib/peer-engines.ts';

/** autocannon ships no types; the slice used here. */
interface AutocannonResult {
  duration: number;
  requests: { total: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type AutocannonInstance = PromiseLike<AutocannonResult> & { on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void };
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Record<string, unknown>) => AutocannonInstance;

const flags = parseFlags(process.argv.slice(2));
const USAGE = `usage: npx tsx bench/http.ts --data <folder> [--connections 8] [--duration 20] [--limit DOCS]
  [--scenarios lexical,late,late-docs,ingest,rcl,peers] [--peers minisearch,…] [--rcl-queries 256]
  [--server-cpu-prof DIR] [--out [DIR]]`;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const ALL_SCENARIOS = ['lexical', 'late', 'late-docs', 'ingest', 'rcl', 'peers'];
/** Documents per `/documents` request in the ingest scenario. */
const INGEST_BATCH_DOCS = 100;
/** Queries per `/rcl/step` in the training-while-serving scenario (DESIGN §3.1 prototype batch). */
const RCL_BATCH_QUERIES = 32;

interface ScenarioResult {
  scenario: string;
  system: string;
  /** `r3serve` = the server itself; `fastify wrapper` = an in-process peer behind a thin fastify app. */
  server: string;
  available: boolean;
  reason?: string;
  connections?: number;
  duration_s?: number;
  requests?: number;
  rps?: number;
  docs_per_s?: number;
  p50_ms?: number;
  p90_ms?: number;
  p99_ms?: number;
  max_ms?: number;
  errors?: number;
  non2xx?: number;
  server_rss_mib?: number;
  notes?: string;
  [key: string]: unknown;
}

// ---- small HTTP helpers ----------------------------------------------------------------------

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(base + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, json };
}

async function waitReady(base: string, proc: ChildProcess, timeoutMs = 180_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    try {
      const r = await fetch(`${base}/ready`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server at ${base} not ready after ${timeoutMs} ms`);
}

function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round((Number(m[1]) * 1024) / MiB, 1) : undefined;
  } catch {
    return undefined;
  }
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  await done;
  clearTimeout(timer);
}

/** Streams the corpus as NDJSON into `POST /documents`; returns docs/s. */
async function loadCorpus(base: string, dir: string, limit?: number, collection = 'default'): Promise<{ docs: number; seconds: number; docsPerSecond: number }> {
  let docs = 0;
  async function* lines() {
    for await (const d of readCorpus(dir)) {
      if (limit !== undefined && docs >= limit) break;
      docs++;
      yield `${JSON.stringify(d)}\n`;
    }
  }
  const url = new URL(`${base}/documents?collection=${collection}`);
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/x-ndjson' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`ingest failed: ${res.statusCode} ${body.slice(0, 300)}`))));
    });
    req.on('error', reject);
    Readable.from(lines()).pipe(req);
  });
  const seconds = (performance.now() - t0) / 1000;
  return { docs, seconds, docsPerSecond: docs / seconds };
}

// ---- autocannon ------------------------------------------------------------------------------

interface LoadOptions {
  url: string;
  path: string;
  body: () => string;
  connections: number;
  durationS: number;
}

/** Runs autocannon; latencies are collected at full resolution (autocannon's histogram keeps whole ms). */
async function load(opts: LoadOptions) {
  const latencies: number[] = [];
  const instance = autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationS,
    requests: [{ method: 'POST', path: opts.path, headers: { 'content-type': 'application/json' }, setupRequest: (req: Record<string, unknown>) => ({ ...req, body: opts.body() }) }],
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => {
    if (status >= 200 && status < 300) latencies.push(responseTime);
  });
  const r = await instance;
  return {
    connections: opts.connections,
    duration_s: round(r.duration, 1),
    requests: r.requests.total,
    rps: round(r.requests.total / r.duration, 1),
    p50_ms: round(percentile(latencies, 50), 2),
    p90_ms: round(percentile(latencies, 90), 2),
    p99_ms: round(percentile(latencies, 99), 2),
    max_ms: round(Math.max(...latencies), 1),
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

function cycle<T>(items: T[]): () => T {
  let i = 0;
  return () => items[i++ % items.length];
}

// ---- peer wrapper (child mode) ---------------------------------------------------------------

async function servePeer(name: PeerName): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const engine = await createPeer(name, { pgPool: Number(flags.connections ?? 8) });
  let batch: CorpusDoc[] = [];
  let n = 0;
  const limit = flags.limit ? Number(flags.limit) : undefined;
  for await (const d of readCorpus(flags.data)) {
    if (limit !== undefined && n >= limit) break;
    batch.push(d);
    n++;
    if (batch.length >= 1000) {
      await engine.add(batch);
      batch = [];
    }
  }
  if (batch.length) await engine.add(batch);
  await engine.finish();
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.get('/ready', async () => ({ ready: true }));
  app.post<{ Body: { query: string; k?: number } }>(
    '/search',
    { schema: { body: { type: 'object', required: ['query'], properties: { query: { type: 'string' }, k: { type: 'integer', minimum: 1 } } } } },
    async (request) => {
      const ids = await engine.search(request.body.query, request.body.k ?? 10);
      return { hits: ids.map((id) => ({ id })) };
    },
  );
  const stop = async () => {
    await app.close();
    await engine.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  await app.listen({ host: '127.0.0.1', port: Number(flags.port) });
}

// ---- scenarios -------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (flags['serve-peer']) return servePeer(flags['serve-peer'] as PeerName);
  if (!flags.data) {
    console.error(USAGE);
    process.exit(2);
  }
  const env = runEnvironment();
  const connections = Number(flags.connections ?? 8);
  const durationS = Number(flags.duration ?? 20);
  const limit = flags.limit ? Number(flags.limit) : undefined;
  const scenarios = (flags.scenarios ?? ALL_SCENARIOS.join(',')).split(',');
  const peers = (flags.peers ?? [...IN_PROCESS_PEERS, ...SERVER_PEERS].join(',')).split(',') as PeerName[];
  const queries: EvalQuery[] = await readQueries(flags.data, 'test');
  const searchBodies = (extra: Record<string, unknown>) => cycle(queries.map((q) => JSON.stringify({ query: q.text, k: 10, ...extra })));
  const rows: ScenarioResult[] = [];

  const dataDir = mkdtempSync(join(tmpdir(), 'r3bench-http-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // --server-cpu-prof DIR profiles the server with `node --cpu-prof` (written when it exits).
  const serverNodeArgs = flags['server-cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${flags['server-cpu-prof']}`] : [];
  const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...process.execArgv, ...serverNodeArgs, join(ROOT, 'src', 'main.ts'), '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let loadInfo: Record<string, unknown> = {};
  try {
    await waitReady(base, server);
    console.error('[http] r3serve ready; loading the corpus (NDJSON) …');
    const ingest = await loadCorpus(base, flags.data, limit);
    loadInfo = { docs: ingest.docs, ndjson_load_docs_per_s: Math.round(ingest.docsPerSecond), ndjson_load_s: round(ingest.seconds, 1), disk_mib: round(duBytes(dataDir) / MiB, 1) };
    const probe = await call(base, 'POST', '/search', { query: queries[0].text, mode: 'late', includeDocuments: false });
    const lateOk = probe.status === 200;
    const lateReason = lateOk ? undefined : `POST /search answers ${probe.status} ${probe.json?.code ?? ''} for mode late`;
    const r3 = (scenario: string, extra: { available: boolean; reason?: string }): ScenarioResult => ({ scenario, system: 'r3serve', server: 'r3serve (src/main.ts)', ...extra });

    if (scenarios.includes('lexical')) {
      console.error('[http] /search lexical …');
      rows.push({ ...r3('search-lexical', { available: true }), ...(await load({ url: base, path: '/search', body: searchBodies({ mode: 'lexical', includeDocuments: false }), connections, durationS })), server_rss_mib: rssOf(server.pid) });
    }
    for (const [scenario, extra] of [
      ['late', { mode: 'late', includeDocuments: false }],
      ['late-docs', { mode: 'late', includeDocuments: true }],
    ] as const) {
      if (!scenarios.includes(scenario)) continue;
      const name = scenario === 'late' ? 'search-late' : 'search-late+documents';
      if (!lateOk) {
        rows.push(r3(name, { available: false, reason: lateReason }));
        continue;
      }
      console.error(`[http] /search ${scenario} …`);
      rows.push({ ...r3(name, { available: true }), ...(await load({ url: base, path: '/search', body: searchBodies(extra), connections, durationS })), server_rss_mib: rssOf(server.pid) });
    }

    if (scenarios.includes('ingest')) {
      console.error('[http] /documents ingest …');
      const created = await call(base, 'PUT', '/collections/ingest', {});
      if (created.status >= 300) throw new Error(`PUT /collections/ingest: ${created.status} ${JSON.stringify(created.json)}`);
      const pool: CorpusDoc[] = [];
      for await (const d of readCorpus(flags.data)) {
        pool.push(d);
        if (pool.length >= 5_000) break;
      }
      let counter = 0;
      const body = () => {
        const documents = [];
        for (let j = 0; j < INGEST_BATCH_DOCS; j++) {
          const d = pool[counter % pool.length];
          documents.push({ ...d, id: `ing-${counter++}` });
        }
        return JSON.stringify({ collection: 'ingest', documents });
      };
      const r = await load({ url: base, path: '/documents', body, connections, durationS });
      rows.push({ ...r3('documents-ingest', { available: true }), ...r, docs_per_s: Math.round(r.rps * INGEST_BATCH_DOCS), batch_docs: INGEST_BATCH_DOCS, server_rss_mib: rssOf(server.pid) });
    }

    if (scenarios.includes('rcl')) rows.push(await rclScenario(base, server, queries, searchBodies, connections, durationS, lateOk, lateReason));
  } finally {
    await stopChild(server);
    rmSync(dataDir, { recursive: true, force: true });
  }

  if (scenarios.includes('peers')) {
    for (const peer of peers) {
      console.error(`[http] peer ${peer} behind fastify …`);
      const peerPort = await freePort();
      const peerBase = `http://127.0.0.1:${peerPort}`;
      const args = [...process.execArgv, SELF, '--serve-peer', peer, '--data', flags.data, '--port', String(peerPort), '--connections', String(connections)];
      if (limit !== undefined) args.push('--limit', String(limit));
      const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
      try {
        await waitReady(peerBase, child, 600_000);
        const r = await load({ url: peerBase, path: '/search', body: searchBodies({}), connections, durationS });
        rows.push({
          scenario: 'search',
          system: peer,
          server: (SERVER_PEERS as readonly string[]).includes(peer) ? `fastify wrapper + pg pool (${connections})` : 'fastify wrapper (in-process library)',
          available: true,
          ...r,
          server_rss_mib: rssOf(child.pid),
        });
      } catch (err) {
        rows.push({ scenario: 'search', system: peer, server: 'fastify wrapper', available: false, reason: (err as Error).message });
      } finally {
        await stopChild(child);
      }
    }
  }

  console.error(table(rows, ['scenario', 'system', 'server', 'rps', 'docs_per_s', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms', 'errors', 'non2xx', 'server_rss_mib', 'reason']));
  const result = {
    bench: 'http',
    data: flags.data.split('/').filter(Boolean).pop(),
    connections,
    duration_s: durationS,
    ...env,
    loadavg_end: round(loadavg()[0], 2),
    load_generator: 'autocannon in the parent process, same machine (it competes for the 2 cores)',
    ...loadInfo,
    scenarios: rows,
  };
  const path = writeResult('http', flags.out, result);
  if (path) console.error(`[http] wrote ${path}`);
  console.log(JSON.stringify(result));
}

/** `/search` (late) under load while a client loops `/rcl/step`; reports both sides. */
async function rclScenario(
  base: string,
  server: ChildProcess,
  queries: EvalQuery[],
  searchBodies: (extra: Record<string, unknown>) => () => string,
  connections: number,
  durationS: number,
  lateOk: boolean,
  lateReason: string | undefined,
): Promise<ScenarioResult> {
  const row = { scenario: 'search-late during /rcl/step', system: 'r3serve', server: 'r3serve (src/main.ts)' };
  if (!lateOk) return { ...row, available: false, reason: lateReason };
  const probe = await call(base, 'POST', '/rcl/step', { queries: [{ id: '__probe__', text: 'probe' }] });
  if (probe.status === 404 && (probe.json?.code === 'NOT_FOUND' || probe.json?.code === undefined)) return { ...row, available: false, reason: 'POST /rcl/step answers 404 (route not built yet)' };
  // Training queries with gold answers: the train split when the folder has one, else the test queries.
  let train = await readQueries(flags.data, 'train').catch(() => [] as EvalQuery[]);
  if (!train.some((q) => q.answers?.length)) train = queries;
  train = train.filter((q) => q.answers && q.answers.length > 0).slice(0, Number(flags['rcl-queries'] ?? 256));
  if (train.length === 0) return { ...row, available: false, reason: 'the data folder has no queries with answers for the `contains` environment (use e.g. squad_dev)' };
  const input = train.map((q) => ({ id: q.id, text: q.text, answers: q.answers }));
  const t0 = performance.now();
  const offline = await call(base, 'POST', '/rcl/offline', { queries: input, environment: 'contains' });
  const offlineMs = performance.now() - t0;
  if (offline.status !== 200) return { ...row, available: false, reason: `POST /rcl/offline answers ${offline.status} ${JSON.stringify(offline.json).slice(0, 300)}` };
  const registered = input.filter((q) => !(offline.json.dropped ?? []).some((d: { queryId: string }) => d.queryId === q.id));
  if (registered.length === 0) return { ...row, available: false, reason: 'no query kept offline pools (all dropped)' };
  let running = true;
  const steps: number[] = [];
  const failures: string[] = [];
  let losses: number[] = [];
  const trainer = (async () => {
    let i = 0;
    while (running) {
      const batch = [];
      for (let j = 0; j < RCL_BATCH_QUERIES; j++) batch.push(registered[i++ % registered.length]);
      const s0 = performance.now();
      const r = await call(base, 'POST', '/rcl/step', { queries: batch, environment: 'contains' });
      if (r.status === 200) {
        steps.push(performance.now() - s0);
        losses.push(r.json.loss);
      } else {
        failures.push(`${r.status} ${r.json?.code ?? ''}`);
        if (failures.length > 3) break;
      }
    }
  })();
  console.error('[http] /search late while /rcl/step loops …');
  const r = await load({ url: base, path: '/search', body: searchBodies({ mode: 'late', includeDocuments: false }), connections, durationS });
  running = false;
  await trainer;
  losses = losses.filter(Number.isFinite);
  return {
    ...row,
    available: true,
    ...r,
    server_rss_mib: rssOf(server.pid),
    rcl_offline_queries: registered.length,
    rcl_offline_ms: Math.round(offlineMs),
    rcl_steps: steps.length,
    rcl_step_batch: RCL_BATCH_QUERIES,
    rcl_step_p50_ms: round(percentile(steps, 50), 1),
    rcl_step_max_ms: round(steps.length ? Math.max(...steps) : NaN, 1),
    rcl_first_loss: losses[0],
    rcl_last_loss: losses[losses.length - 1],
    rcl_failures: failures.slice(0, 4),
  };
}

await main();
