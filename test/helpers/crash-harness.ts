/**
 * Crash harness shared by `test/integration/crash.test.ts` and `bench/crash.ts`: runs the real
 * server (`node --import tsx src/main.ts`) as a child process, drives concurrent ingest and
 * delete requests at it over HTTP, SIGKILLs it at a seeded random moment, restarts it on the
 * same data directory and checks DESIGN §5: nothing acknowledged is lost, and the index agrees
 * with the stored documents.
 *
 * Model: every id is touched by at most one request at a time (ids are locked while a request
 * holding them is in flight), so each id has a sequential history of writes. A write answered
 * 2xx is acknowledged; a write without a 2xx answer (in flight at the kill, or failed) may or
 * may not have been applied. After a restart an id must hold its last acknowledged state or the
 * state of one of the unacknowledged writes after it; what the server shows then becomes the
 * known state for the next round.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { seededRandom } from './index.ts';
import { freePort } from '../../bench/lib/server.ts';
export { freePort };

/** The repository root (the child's working directory). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CrashOptions {
  /** Kill → restart → verify cycles. */
  rounds: number;
  /** Seed of every random choice (ids, texts, kill moments). */
  seed?: number;
  /** Data directory (kept); the caller removes it. */
  dataDir: string;
  /** Distinct document ids in play. Default 1,500. */
  idPool?: number;
  /** Documents per upsert request (±25%). Default 200. */
  batchSize?: number;
  /** Requests in flight at once. Default 3. */
  concurrency?: number;
  /** Share of requests that are deletes. Default 0.2. */
  deleteShare?: number;
  /** The kill comes this long (uniform, ms) after the round's first acknowledged write. */
  killAfterMs?: [number, number];
  /** Most time to wait for `GET /ready` after a start. Default 60 s. */
  startTimeoutMs?: number;
  /** Live documents searched for by their rare word after each restart. Default 60. */
  searchSample?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface RoundReport {
  round: number;
  killAtMs: number;
  requests: number;
  acknowledgedRequests: number;
  unacknowledgedRequests: number;
  acknowledgedWrites: number;
  /** Unacknowledged writes that turned out applied after the restart. */
  appliedUnacknowledged: number;
  liveDocuments: number;
  startMs: number;
}

export interface CrashReport {
  rounds: number;
  /** Acknowledged per-document writes (upserts and deletes) over all rounds. */
  acknowledged: number;
  /** Acknowledged writes not reflected after a restart (missing, stale or resurrected documents). */
  lost: number;
  /** Other broken invariants: counts, index/search disagreement, unexpected answers. */
  violations: number;
  details: string[];
  perRound: RoundReport[];
}

/** What a client can see of one document: its fields, or absent (null). */
interface Version {
  text: string;
  title: string;
  metadata: { v: number; round: number };
  /** A word only this version of this document holds. */
  rare: string;
}
type State = Version | null;

interface IdRecord {
  known: State;
  /** Writes after `known` that were not acknowledged (each may or may not be applied). */
  maybe: State[];
  /** Every version ever sent for this id (their rare words must not find it unless current). */
  versions: Version[];
  /** Whether any write on this id was ever acknowledged. */
  acked: boolean;
}

const VOCABULARY = (
  'cell protein gene cancer tumor immune virus patient treatment drug heart brain memory river ' +
  'mountain city music guitar piano football player team market price stock bank trade court ' +
  'judge election government army battle king queen empire church school student'
).split(' ');
const CONSONANTS = 'bdfgklmnprstvz';
const VOWELS = 'aeiou';

/** A letters-only word unique to `n` ("q…x": no English word, untouched by the stemmer). */
export function rareWord(n: number): string {
  let s = 'q';
  let rest = n;
  do {
    s += CONSONANTS[rest % CONSONANTS.length] + VOWELS[Math.floor(rest / CONSONANTS.length) % VOWELS.length];
    rest = Math.floor(rest / (CONSONANTS.length * VOWELS.length));
  } while (rest > 0);
  return s + 'x';
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** The last 64 KiB of the child's stdout and stderr. */
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, wait up to `graceMs`, then SIGKILL. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `src/main.ts` on `dataDir` and waits until `GET /ready` answers 200. */
export async function startServer(dataDir: string, timeoutMs = 60_000): Promise<ServerProcess> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('R3SERVE_')) env[k] = v;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/main.ts', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', '--workers', '1'],
    { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const keep = (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve(code);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    url,
    child,
    exited,
    output: () => out,
    async kill() {
      if (exitCode === undefined) child.kill('SIGKILL');
      await exited;
    },
    async stop(graceMs = 10_000) {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`the server exited (${exitCode}) before it was ready:\n${out}`);
    try {
      const res = await fetch(`${url}/ready`);
      await res.arrayBuffer();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await server.kill();
  throw new Error(`the server was not ready within ${timeoutMs} ms:\n${out}`);
}

function sameState(a: State, b: State): boolean {
  if (a === null || b === null) return a === b;
  return a.text === b.text && a.title === b.title && a.metadata.v === b.metadata.v && a.metadata.round === b.metadata.round;
}

function describeState(s: State): string {
  return s === null ? 'absent' : `v${s.metadata.v}`;
}

/** A short pause, so that a loop with nothing to send still lets timers run. */
function idle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Answer {
  status: number;
  body: any;
}

/** Longest wait for one answer; a request without one counts as unacknowledged. */
const REQUEST_TIMEOUT_MS = 60_000;

async function call(url: string, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(url + path, {
    method,
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Runs `rounds` kill → restart → verify cycles on `dataDir` and reports what was acknowledged,
 * lost and violated. Leaves no child running.
 */
export async function runCrashRounds(options: CrashOptions): Promise<CrashReport> {
  const o = {
    seed: 1,
    idPool: 1_500,
    batchSize: 200,
    concurrency: 3,
    deleteShare: 0.2,
    killAfterMs: [100, 1_500] as [number, number],
    startTimeoutMs: 60_000,
    searchSample: 60,
    log: () => {},
    ...(Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as CrashOptions),
  };
  const rnd = seededRandom(o.seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const records = new Map<string, IdRecord>();
  const byText = new Map<string, Version>();
  const ids = Array.from({ length: o.idPool }, (_, i) => `c${i}`);
  for (const id of ids) records.set(id, { known: null, maybe: [], versions: [], acked: false });
  const locked = new Set<string>();
  let versionCounter = 0;
  const report: CrashReport = { rounds: 0, acknowledged: 0, lost: 0, violations: 0, details: [], perRound: [] };
  const violation = (msg: string) => {
    report.violations++;
    if (report.details.length < 50) report.details.push(msg);
  };
  const lost = (msg: string) => {
    report.lost++;
    if (report.details.length < 50) report.details.push(msg);
  };

  const makeVersion = (id: string, round: number): Version => {
    const n = versionCounter++;
    const words: string[] = [];
    const len = 5 + pick(25);
    for (let i = 0; i < len; i++) words.push(VOCABULARY[Math.floor(VOCABULARY.length * rnd() * rnd())]);
    const rare = rareWord(n);
    words.splice(pick(words.length + 1), 0, rare);
    const v: Version = { text: words.join(' ') + '.', title: `Doc ${id}`, metadata: { v: n, round }, rare };
    byText.set(v.text, v);
    records.get(id)!.versions.push(v);
    return v;
  };

  /** Up to `n` unlocked ids, chosen at random (optionally preferring live ones). */
  const chooseIds = (n: number, preferLive: boolean): string[] => {
    const out = new Set<string>();
    for (let tries = 0; out.size < n && tries < n * 10; tries++) {
      const id = ids[pick(ids.length)];
      if (locked.has(id) || out.has(id)) continue;
      if (preferLive && records.get(id)!.known === null && rnd() < 0.8) continue;
      out.add(id);
    }
    return [...out];
  };

  let server = await startServer(o.dataDir, o.startTimeoutMs);
  try {
    for (let round = 0; round < o.rounds; round++) {
      const stats: RoundReport = {
        round,
        killAtMs: 0,
        requests: 0,
        acknowledgedRequests: 0,
        unacknowledgedRequests: 0,
        acknowledgedWrites: 0,
        appliedUnacknowledged: 0,
        liveDocuments: 0,
        startMs: 0,
      };
      const killDelay = o.killAfterMs[0] + rnd() * (o.killAfterMs[1] - o.killAfterMs[0]);
      stats.killAtMs = Math.round(killDelay);
      let killTimer: NodeJS.Timeout | undefined;
      let killed = false;
      let onKill!: () => void;
      const killSignal = new Promise<void>((resolve) => (onKill = resolve));
      const armKill = () => {
        if (killTimer) return;
        killTimer = setTimeout(() => {
          killed = true;
          server.child.kill('SIGKILL');
          onKill();
        }, killDelay);
      };
      const url = server.url;

      /** Sends one request; applies its outcome to the model. */
      const launch = async (): Promise<void> => {
        const isDelete = rnd() < o.deleteShare;
        if (isDelete) {
          const batch = chooseIds(20 + pick(60), true);
          if (batch.length === 0) return idle();
          for (const id of batch) locked.add(id);
          stats.requests++;
          let answer: Answer | undefined;
          try {
            answer = await call(url, 'POST', '/documents/delete', { ids: batch });
          } catch (err) {
            answer = undefined;
            if (!killed) violation(`round ${round}: delete failed before the kill: ${(err as Error).message}`);
          }
          const ok = answer !== undefined && answer.status >= 200 && answer.status < 300;
          if (answer && !ok && !killed) violation(`round ${round}: delete answered ${answer.status} ${JSON.stringify(answer.body)}`);
          if (ok) {
            stats.acknowledgedRequests++;
            const existed = new Set<string>(answer!.body.ids);
            for (const id of batch) {
              const rec = records.get(id)!;
              const possible = [rec.known, ...rec.maybe];
              if (existed.has(id) ? !possible.some((s) => s !== null) : !possible.some((s) => s === null)) {
                violation(`round ${round}: delete of ${id} reported existed=${existed.has(id)}, model allows ${possible.map(describeState).join('|')}`);
              }
              rec.known = null;
              rec.maybe = [];
              rec.acked = true;
              stats.acknowledgedWrites++;
            }
          } else {
            stats.unacknowledgedRequests++;
            for (const id of batch) records.get(id)!.maybe.push(null);
          }
          for (const id of batch) locked.delete(id);
          return;
        }
        const size = Math.max(1, Math.round(o.batchSize * (0.75 + rnd() * 0.5)));
        const batch = chooseIds(size, false);
        if (batch.length === 0) return idle();
        for (const id of batch) locked.add(id);
        const versions = batch.map((id) => makeVersion(id, round));
        const documents = batch.map((id, i) => ({ id, title: versions[i].title, text: versions[i].text, metadata: versions[i].metadata }));
        const surelyLive = batch.filter((id) => {
          const r = records.get(id)!;
          return r.known !== null && r.maybe.every((s) => s !== null);
        }).length;
        const possiblyLive = batch.filter((id) => {
          const r = records.get(id)!;
          return r.known !== null || r.maybe.some((s) => s !== null);
        }).length;
        stats.requests++;
        let answer: Answer | undefined;
        try {
          answer = await call(url, 'POST', '/documents', { documents });
        } catch (err) {
          answer = undefined;
          if (!killed) violation(`round ${round}: upsert failed before the kill: ${(err as Error).message}`);
        }
        const ok = answer !== undefined && answer.status >= 200 && answer.status < 300;
        if (answer && !ok && !killed) violation(`round ${round}: upsert answered ${answer.status} ${JSON.stringify(answer.body)}`);
        if (ok) {
          stats.acknowledgedRequests++;
          const { count, inserted, replaced } = answer!.body as { count: number; inserted: number; replaced: number };
          if (count !== batch.length || inserted + replaced !== batch.length || replaced < surelyLive || replaced > possiblyLive) {
            violation(`round ${round}: upsert of ${batch.length} answered count=${count} inserted=${inserted} replaced=${replaced}, expected replaced in [${surelyLive}, ${possiblyLive}]`);
          }
          batch.forEach((id, i) => {
            const rec = records.get(id)!;
            rec.known = versions[i];
            rec.maybe = [];
            rec.acked = true;
            stats.acknowledgedWrites++;
          });
          armKill();
        } else {
          stats.unacknowledgedRequests++;
          batch.forEach((id, i) => records.get(id)!.maybe.push(versions[i]));
        }
        for (const id of batch) locked.delete(id);
      };

      // Keep `concurrency` requests in flight until the kill.
      const inflight = new Set<Promise<void>>();
      const roundStart = Date.now();
      while (!killed) {
        while (inflight.size < o.concurrency && !killed) {
          const p: Promise<void> = launch().finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await Promise.race([...inflight, killSignal]);
        // Safety net: a server that never acknowledges anything is killed after 30 s.
        if (!killTimer && Date.now() - roundStart > 30_000) {
          violation(`round ${round}: no write acknowledged within 30 s`);
          armKill();
        }
      }
      await server.exited;
      await Promise.allSettled([...inflight]);
      report.acknowledged += stats.acknowledgedWrites;
      o.log(`round ${round}: killed after ${stats.killAtMs} ms past the first ack; ${stats.acknowledgedRequests}/${stats.requests} requests acknowledged`);

      const t0 = Date.now();
      server = await startServer(o.dataDir, o.startTimeoutMs);
      stats.startMs = Date.now() - t0;
      await verify(server.url, round, stats);
      report.perRound.push(stats);
      report.rounds++;
      o.log(`round ${round}: restarted in ${stats.startMs} ms; ${stats.liveDocuments} live documents verified`);
    }
  } finally {
    await server.stop();
  }
  return report;

  /** Checks every id against the model, the document count, and the index for a sample. */
  async function verify(url: string, round: number, stats: RoundReport): Promise<void> {
    const observed = new Map<string, State>();
    let answersOk = true;
    await pool(ids, 16, async (id) => {
      const res = await call(url, 'GET', `/documents/${id}`);
      if (res.status === 404 && res.body?.code === 'DOCUMENT_NOT_FOUND') observed.set(id, null);
      else if (res.status === 200) {
        const v = byText.get(res.body.text);
        const state: Version = v ?? { text: res.body.text, title: res.body.title, metadata: res.body.metadata, rare: '' };
        if (v && (res.body.title !== v.title || JSON.stringify(res.body.metadata) !== JSON.stringify(v.metadata) || res.body.id !== id)) {
          violation(`round ${round}: ${id} came back with mixed fields ${JSON.stringify(res.body)}`);
        }
        observed.set(id, state);
      } else {
        answersOk = false;
        violation(`round ${round}: GET /documents/${id} answered ${res.status} ${JSON.stringify(res.body)}`);
      }
    });
    if (!answersOk) return;

    let minLive = 0;
    let maxLive = 0;
    let live = 0;
    for (const id of ids) {
      const rec = records.get(id)!;
      const seen = observed.get(id)!;
      const allowed = [rec.known, ...rec.maybe];
      if (allowed.every((s) => s !== null)) minLive++;
      if (allowed.some((s) => s !== null)) maxLive++;
      if (seen !== null) live++;
      if (sameState(seen, rec.known)) {
        // as acknowledged
      } else if (rec.maybe.some((s) => sameState(seen, s))) {
        stats.appliedUnacknowledged++;
      } else if (rec.acked) {
        lost(`round ${round}: ${id} is ${describeState(seen)} but its last acknowledged state is ${describeState(rec.known)} (unacknowledged after it: ${rec.maybe.map(describeState).join(',') || 'none'})`);
      } else {
        violation(`round ${round}: ${id} is ${describeState(seen)}, never acknowledged, unacknowledged writes: ${rec.maybe.map(describeState).join(',') || 'none'}`);
      }
      // The server is the truth from here on: the unacknowledged writes are settled.
      rec.known = seen;
      rec.maybe = [];
    }
    stats.liveDocuments = live;

    const info = await call(url, 'GET', '/collections/default');
    const count = info.body?.documents;
    if (info.status !== 200 || count !== live) violation(`round ${round}: GET /collections/default documents=${count}, distinct live ids=${live}`);
    if (typeof count !== 'number' || count < minLive || count > maxLive) violation(`round ${round}: document count ${count} outside [${minLive}, ${maxLive}]`);

    // Index invariants: a live document is found by its current rare word and by nothing else's;
    // an older version's rare word, or a deleted document's, finds nothing.
    const liveIds = ids.filter((id) => observed.get(id) !== null && (observed.get(id) as Version).rare !== '');
    const sample: string[] = [];
    for (let i = 0; i < o.searchSample && liveIds.length > 0; i++) sample.push(liveIds[pick(liveIds.length)]);
    const stale: Array<[string, string]> = [];
    for (const id of ids) {
      const current = observed.get(id) ?? null;
      for (const v of records.get(id)!.versions) if (current === null || v.rare !== current.rare) stale.push([id, v.rare]);
    }
    const staleSample: Array<[string, string]> = [];
    for (let i = 0; i < o.searchSample && stale.length > 0; i++) staleSample.push(stale[pick(stale.length)]);
    const queries = [...sample.map((id) => (observed.get(id) as Version).rare), ...staleSample.map(([, rare]) => rare)];
    for (const mode of ['lexical', 'beta']) {
      if (queries.length === 0) break;
      const res = await call(url, 'POST', '/search', { queries, k: 5, mode, includeDocuments: false });
      if (res.status !== 200) {
        violation(`round ${round}: ${mode} search answered ${res.status} ${JSON.stringify(res.body)}`);
        continue;
      }
      const results = res.body.results as Array<{ hits: Array<{ id: string }> }>;
      sample.forEach((id, i) => {
        const got = results[i].hits.map((h) => h.id);
        if (got.length !== 1 || got[0] !== id) violation(`round ${round}: ${mode} search for ${id}'s word ${queries[i]} found [${got.join(',')}]`);
      });
      staleSample.forEach(([id, rare], j) => {
        const got = results[sample.length + j].hits.map((h) => h.id);
        if (got.length !== 0) violation(`round ${round}: ${mode} search for ${id}'s stale word ${rare} found [${got.join(',')}]`);
      });
    }
    // The parametric side reopened with the index: late search must not fail on the server.
    if (sample.length > 0) {
      const late = await call(url, 'POST', '/search', { query: (observed.get(sample[0]) as Version).rare, k: 5, mode: 'late', includeDocuments: false });
      if (late.status >= 500) violation(`round ${round}: late search answered ${late.status} ${JSON.stringify(late.body)}`);
    }
  }
}
