/**
 * Soak test: spawns the real server on loopback, seeds a corpus, then runs a mixed load (search in
 * every mode, upserts, reads, metric scrapes, and `/rcl/step` when the server has it) for a fixed
 * time. Prints progress to stderr and one JSON line last: errors, p99 per 30 s window, RSS after
 * warm-up and at the end.
 *
 *   npx tsx bench/soak.ts --seconds 300 [--clients 4] [--warmup 30] [--seed-docs 5000] [--port P]
 */
import { SERVER_NODE_FLAGS } from '../src/threads.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlags } from './lib/harness.ts';
import { percentile } from './lib/metrics.ts';
import { freePort } from './lib/server.ts';

const flags = parseFlags(process.argv.slice(2));
const SECONDS = Number(flags.seconds ?? 60);
const CLIENTS = Number(flags.clients ?? 4);
const WARMUP_SECONDS = Number(flags.warmup ?? Math.min(30, Math.max(5, Math.round(SECONDS / 10))));
const SEED_DOCS = Number(flags['seed-docs'] ?? 5_000);
const WINDOW_SECONDS = 30;
/**
 * Upserts cycle over ids s<SEED_DOCS> … s<SEED_DOCS + UPSERT_IDS − 1> (new at first, then
 * replacements), so the live corpus stays bounded; reads target the seeded ids, so every read
 * has a document to find.
 */
const UPSERT_IDS = 2_000;
const UPSERT_BATCH = 10;

// ---- a deterministic synthetic corpus -------------------------------------------------------

const VOCAB = (
  'cell protein gene cancer tumor immune virus infection patient treatment drug dose risk blood heart brain neuron ' +
  'memory learning model data network river mountain city music guitar piano football player team season league goal ' +
  'coach market price stock bank money trade law court judge election vote party government war army battle king queen ' +
  'empire church school student ocean island forest desert winter summer energy carbon climate storm planet star galaxy ' +
  'engine train bridge tunnel harbor garden flower insect bird whale salmon wheat coffee bread cheese wine village castle'
).split(' ');

let rngState = 0x9e3779b9;
function rnd(): number {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
/** Zipf-like word choice: the product of two uniforms favours the head of VOCAB. */
const word = () => VOCAB[Math.floor(VOCAB.length * rnd() * rnd())];
const sentence = (n: number) => Array.from({ length: n }, word).join(' ');
const doc = (i: number) => ({ id: `s${i}`, title: `${word()} ${word()}`, text: `${sentence(10 + Math.floor(rnd() * 60))}.`, metadata: { group: i % 5, lang: i % 2 ? 'en' : 'fr' } });

// ---- the server -----------------------------------------------------------------------------

const port = flags.port ? Number(flags.port) : await freePort();
const base = `http://127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'r3soak-'));
/** The load runs authenticated, so the auth hooks are part of what is soaked. */
const API_KEY = 'soak-admin-key-0001';
const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('R3SERVE_'))), R3SERVE_API_KEYS: `${API_KEY}:admin` };
const server = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'src/main.ts', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn', '--workers', '1'], {
  env,
  stdio: ['ignore', 'inherit', 'inherit'],
});
const serverExit = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
const log = (msg: string) => process.stderr.write(`[soak ${new Date().toISOString()}] ${msg}\n`);

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? { authorization: `Bearer ${API_KEY}` } : { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function waitReady(): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode}`);
    try {
      if ((await call('GET', '/ready')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('server not ready after 120 s');
}

/** The server's RSS and V8 heap in use, from its own `/metrics`. */
async function serverMemory(): Promise<{ rss: number; heap: number }> {
  const text = (await call('GET', '/metrics')).text;
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: read('process_resident_memory_bytes'), heap: read('nodejs_heap_used_bytes') };
}

// ---- the load -------------------------------------------------------------------------------

interface Sample {
  at: number;
  op: string;
  ms: number;
}
const samples: Sample[] = [];
const errors = new Map<string, number>();
const errorExamples: string[] = [];
let measuring = false;
let upserted = 0;

function recordError(key: string, example: string): void {
  errors.set(key, (errors.get(key) ?? 0) + 1);
  if (errorExamples.length < 10) errorExamples.push(`${key}: ${example.slice(0, 300)}`);
}

async function timed(op: string, method: string, path: string, body?: unknown, ok: (s: number) => boolean = (s) => s >= 200 && s < 300): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await call(method, path, body);
    const ms = performance.now() - t0;
    if (!ok(res.status)) recordError(`${op} ${res.status}`, res.text);
    else if (measuring) samples.push({ at: Date.now(), op, ms });
  } catch (err) {
    recordError(`${op} network`, String(err));
  }
}

const MODES = ['lexical', 'beta', 'late'] as const;
let rclEnabled = false;
const rclQueries: Array<{ id: string; text: string; answers: string[] }> = [];

async function oneOp(): Promise<void> {
  const r = rnd();
  if (r < 0.8) {
    const mode = pick(MODES);
    const body: Record<string, unknown> = { query: sentence(2 + Math.floor(rnd() * 6)), k: 10, mode };
    if (rnd() < 0.2) body.filter = { lang: pick(['en', 'fr']) };
    if (rnd() < 0.1) body.includeDocuments = true;
    return timed(`search:${mode}`, 'POST', '/search', body);
  }
  if (r < 0.84) {
    const docs = Array.from({ length: UPSERT_BATCH }, () => doc(SEED_DOCS + (upserted++ % UPSERT_IDS)));
    return timed('upsert', 'POST', '/documents', { documents: docs });
  }
  if (r < 0.97) return timed('get', 'GET', `/documents/s${Math.floor(rnd() * SEED_DOCS)}`);
  return timed('collection', 'GET', '/collections/default');
}

async function client(until: () => boolean): Promise<void> {
  while (!until()) await oneOp();
}

/** One RCL step about every 2 s on its own loop (steps are CPU-heavy). */
async function rclLoop(until: () => boolean): Promise<void> {
  while (!until()) {
    const qs = Array.from({ length: 4 }, () => pick(rclQueries));
    await timed('rcl:step', 'POST', '/rcl/step', { queries: [...new Map(qs.map((q) => [q.id, { id: q.id }])).values()], environment: 'contains' });
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

async function setupRcl(): Promise<string> {
  for (let i = 0; i < 32; i++) {
    const a = word();
    rclQueries.push({ id: `q${i}`, text: `${a} ${word()} ${word()}`, answers: [a] });
  }
  const probe = await call('POST', '/rcl/offline', { queries: rclQueries, environment: 'contains' });
  if (probe.status === 404 && probe.json?.code === 'NOT_FOUND') return 'skipped: no /rcl routes';
  if (probe.status < 200 || probe.status >= 300) return `skipped: /rcl/offline answered ${probe.status} ${probe.json?.code ?? ''}`;
  const step = await call('POST', '/rcl/step', { queries: rclQueries.slice(0, 4).map((q) => ({ id: q.id })), environment: 'contains' });
  if (step.status === 404 && step.json?.code === 'NOT_FOUND') return 'skipped: no /rcl/step';
  if (step.status < 200 || step.status >= 300) return `skipped: /rcl/step answered ${step.status} ${step.json?.code ?? ''}`;
  rclEnabled = true;
  return 'on';
}

// ---- the run --------------------------------------------------------------------------------

let exitCode = 0;
try {
  await waitReady();
  log(`server on ${base}, data in ${dataDir}; seeding ${SEED_DOCS} documents`);
  for (let i = 0; i < SEED_DOCS; i += 500) {
    const res = await call('POST', '/documents', { documents: Array.from({ length: Math.min(500, SEED_DOCS - i) }, (_, j) => doc(i + j)) });
    if (res.status !== 200) throw new Error(`seeding failed: ${res.status} ${res.text}`);
  }
  const rcl = await setupRcl();
  log(`rcl: ${rcl}; warming up for ${WARMUP_SECONDS} s`);

  const warmEnd = Date.now() + WARMUP_SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => client(() => Date.now() >= warmEnd)));
  errors.clear();
  errorExamples.length = 0;

  const memStart = await serverMemory();
  const rssStart = memStart.rss;
  const rssSamples: number[] = [rssStart];
  const start = Date.now();
  const end = start + SECONDS * 1000;
  measuring = true;
  log(`measuring for ${SECONDS} s with ${CLIENTS} clients; RSS ${(rssStart / 2 ** 20).toFixed(1)} MiB`);
  const sampler = setInterval(() => {
    serverMemory().then(
      ({ rss }) => {
        rssSamples.push(rss);
        log(`t=${Math.round((Date.now() - start) / 1000)} s requests=${samples.length} errors=${[...errors.values()].reduce((a, b) => a + b, 0)} RSS ${(rss / 2 ** 20).toFixed(1)} MiB`);
      },
      () => undefined,
    );
  }, 10_000);
  const loops = Array.from({ length: CLIENTS }, () => client(() => Date.now() >= end));
  if (rclEnabled) loops.push(rclLoop(() => Date.now() >= end));
  await Promise.all(loops);
  clearInterval(sampler);
  measuring = false;
  const memEnd = await serverMemory();
  const rssEnd = memEnd.rss;

  const windows: Array<Record<string, number>> = [];
  for (let w = start; w < end; w += WINDOW_SECONDS * 1000) {
    const inWindow = samples.filter((s) => s.at >= w && s.at < w + WINDOW_SECONDS * 1000);
    const search = inWindow.filter((s) => s.op.startsWith('search')).map((s) => s.ms);
    const upsert = inWindow.filter((s) => s.op === 'upsert').map((s) => s.ms);
    windows.push({
      t: Math.round((w - start) / 1000),
      requests: inWindow.length,
      p99Ms: round(percentile(inWindow.map((s) => s.ms), 99)),
      searchP99Ms: round(percentile(search, 99)),
      upsertP99Ms: round(percentile(upsert, 99)),
    });
  }
  const byOp: Record<string, { n: number; p50Ms: number; p99Ms: number }> = {};
  for (const op of new Set(samples.map((s) => s.op))) {
    const ms = samples.filter((s) => s.op === op).map((s) => s.ms);
    byOp[op] = { n: ms.length, p50Ms: round(percentile(ms, 50)), p99Ms: round(percentile(ms, 99)) };
  }
  const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
  server.kill('SIGTERM');
  const code = await serverExit;
  const summary = {
    seconds: SECONDS,
    clients: CLIENTS,
    warmupSeconds: WARMUP_SECONDS,
    requests: samples.length,
    requestsPerSecond: round(samples.length / SECONDS),
    errors: errorCount,
    errorKinds: Object.fromEntries(errors),
    errorExamples,
    rcl,
    p99MsPerWindow: windows.map((w) => w.p99Ms),
    windows,
    byOp,
    rssStartBytes: rssStart,
    rssEndBytes: rssEnd,
    rssMaxBytes: Math.max(...rssSamples, rssEnd),
    rssGrowth: round((rssEnd - rssStart) / rssStart, 4),
    heapStartBytes: memStart.heap,
    heapEndBytes: memEnd.heap,
    documentsUpserted: upserted,
    serverExitCode: code,
  };
  if (errorCount > 0 || code !== 0) exitCode = 1;
  console.log(JSON.stringify(summary));
} catch (err) {
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  exitCode = 1;
} finally {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await Promise.race([serverExit, new Promise((r) => setTimeout(r, 10_000))]);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
