/**
 * Peer search engines behind one small interface, for the side-by-side benchmarks: MiniSearch,
 * Orama, FlexSearch and wink-bm25-text-search in process, and PostgreSQL full-text search in a
 * throwaway cluster on a loopback port. Each gets its best reasonable BM25-ish configuration.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CorpusDoc } from './dataset.ts';

const require = createRequire(import.meta.url);

/** One peer: fill it in batches, then query it. Ids returned best first. */
export interface PeerEngine {
  readonly name: string;
  /** The configuration used, in words (goes into the report). */
  readonly config: string;
  add(docs: CorpusDoc[]): void | Promise<void>;
  /** Called once after the last `add` (consolidation, index creation). */
  finish(): void | Promise<void>;
  search(query: string, k: number): string[] | Promise<string[]>;
  /** On-disk bytes, when the engine has a disk side. */
  diskBytes?(): Promise<number>;
  /** Memory of an out-of-process server (PSS), when the engine is one. */
  serverMemoryBytes?(): number;
  close(): Promise<void>;
}

export const IN_PROCESS_PEERS = ['minisearch', 'orama', 'flexsearch', 'wink-bm25'] as const;
export const SERVER_PEERS = ['postgres'] as const;
export type PeerName = (typeof IN_PROCESS_PEERS)[number] | (typeof SERVER_PEERS)[number];
export const PEER_NAMES: readonly PeerName[] = [...IN_PROCESS_PEERS, ...SERVER_PEERS];

/** Porter2, the stemmer r3serve's analyzer uses too (wink-porter2-stemmer, via wink-nlp's tree). */
const porter2 = require('wink-porter2-stemmer') as (word: string) => string;
const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The shared term pipeline of the JS peers: Unicode letter/number runs, lower-cased, Porter2-stemmed
 * (memoised). Stop words are kept, as r3serve keeps them; BM25's idf takes care of them.
 */
const stemMemo = new Map<string, string>();
export function stemTerm(word: string): string {
  const lower = word.toLowerCase();
  let s = stemMemo.get(lower);
  if (s === undefined) {
    s = /\p{N}/u.test(lower) ? lower : porter2(lower);
    if (stemMemo.size < 1_000_000) stemMemo.set(lower, s);
  }
  return s;
}
export function peerTokens(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(WORD)) out.push(stemTerm(m[0]));
  return out;
}

function docText(d: CorpusDoc): string {
  return d.title ? `${d.title}\n${d.text}` : d.text;
}

// ---- MiniSearch ------------------------------------------------------------------------------

async function createMiniSearch(): Promise<PeerEngine> {
  const { default: MiniSearch } = await import('minisearch');
  const ms = new MiniSearch<CorpusDoc>({
    fields: ['title', 'text'],
    storeFields: [],
    idField: 'id',
    processTerm: (term) => stemTerm(term),
    searchOptions: { prefix: false, fuzzy: false, combineWith: 'OR' },
  });
  return {
    name: 'minisearch',
    config: 'MiniSearch 7: fields title+text, BM25+ defaults (k=1.2, b=0.7, d=0.5), Porter2 processTerm, prefix/fuzzy off, OR',
    add(docs) {
      ms.addAll(docs.map((d) => ({ id: d.id, title: d.title ?? '', text: d.text })));
    },
    finish() {},
    search(query, k) {
      const r = ms.search(query);
      const n = Math.min(k, r.length);
      const out = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = String(r[i].id);
      return out;
    },
    async close() {},
  };
}

// ---- Orama -----------------------------------------------------------------------------------

/** Appended to every Orama token: its radix lookup prefix-matches, so `cat` would also find `category`. */
const ORAMA_END = '\u0001';

async function createOrama(): Promise<PeerEngine> {
  const orama = await import('@orama/orama');
  const tokenize = (raw: string) => peerTokens(raw).map((t) => t + ORAMA_END);
  const db = orama.create({
    schema: { title: 'string', text: 'string' } as const,
    components: { tokenizer: { language: 'english', normalizationCache: new Map(), tokenize } },
  });
  return {
    name: 'orama',
    config:
      'Orama 3: default BM25 (k=1.2, b=0.75, d=0.5), title+text, tolerance 0, threshold 1 (OR); custom tokenizer = the Porter2 pipeline plus an end marker, ' +
      'because its radix lookup always prefix-matches (exact:true is a case-sensitive AND post-filter instead). Defaults (English stemmer, prefix matching) measured SciFact nDCG@10 0.273',
    add(docs) {
      for (const d of docs) orama.insert(db, { id: d.id, title: d.title ?? '', text: d.text });
    },
    finish() {},
    search(query, k) {
      const r = orama.search(db, { term: query, properties: ['title', 'text'], limit: k, tolerance: 0, threshold: 1 });
      if (r instanceof Promise) throw new Error('orama search returned a promise');
      return r.hits.map((h) => String(h.id));
    },
    async close() {},
  };
}

// ---- FlexSearch ------------------------------------------------------------------------------

async function createFlexSearch(): Promise<PeerEngine> {
  const flex = await import('flexsearch');
  const Index = (flex as unknown as { Index: typeof import('flexsearch').Index; default?: { Index: typeof import('flexsearch').Index } }).Index ??
    (flex as unknown as { default: { Index: typeof import('flexsearch').Index } }).default.Index;
  const index = new Index({ tokenize: 'strict', resolution: 9, encode: peerTokens, cache: false });
  return {
    name: 'flexsearch',
    config: 'FlexSearch 0.8: Index, tokenize strict, resolution 9, Porter2 encode, suggest on (OR). No BM25: its own position-based relevance',
    add(docs) {
      for (const d of docs) index.add(d.id, docText(d));
    },
    finish() {},
    search(query, k) {
      return (index.search(query, { limit: k, suggest: true }) as Array<string | number>).map(String);
    },
    async close() {},
  };
}

// ---- wink-bm25-text-search -------------------------------------------------------------------

interface WinkBm25 {
  defineConfig(cfg: { fldWeights: Record<string, number>; bm25Params?: Record<string, number> }): boolean;
  definePrepTasks(tasks: Array<(x: string) => string[] | string>): number;
  addDoc(doc: Record<string, string>, id: string): number;
  consolidate(fp?: number): boolean;
  search(text: string, limit?: number): Array<[string, number]>;
}

async function createWinkBm25(): Promise<PeerEngine> {
  const factory = require('wink-bm25-text-search') as () => WinkBm25;
  const engine = factory();
  engine.defineConfig({ fldWeights: { title: 1, text: 1 }, bm25Params: { k1: 1.2, b: 0.75, k: 1 } });
  engine.definePrepTasks([peerTokens]);
  return {
    name: 'wink-bm25',
    config: 'wink-bm25-text-search 3: BM25F k1=1.2, b=0.75, title and text weight 1, Porter2 prep task',
    add(docs) {
      for (const d of docs) engine.addDoc({ title: d.title ?? '', text: d.text }, d.id);
    },
    finish() {
      engine.consolidate(4);
    },
    search(query, k) {
      return engine.search(query, k).map(([id]) => id);
    },
    async close() {},
  };
}

// ---- PostgreSQL ------------------------------------------------------------------------------

/** A throwaway PostgreSQL cluster in a temporary directory, listening on 127.0.0.1. */
export interface PgCluster {
  host: string;
  port: number;
  user: string;
  dir: string;
  version: string;
  /** PSS (proportional set size) of the postmaster and its children, bytes. */
  pssBytes(): number;
  stop(): void;
}

function findPgBin(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, name))) return join(dir, name);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(root, v, 'bin', name))) return join(root, v, 'bin', name);
  }
  throw new Error(`${name} not found: run bench/setup-peers.sh (installs postgresql)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function pssOf(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Starts a cluster with initdb/pg_ctl; as root, runs them as the `postgres` user. */
export async function startPgCluster(): Promise<PgCluster> {
  const initdb = findPgBin('initdb');
  const pgCtl = findPgBin('pg_ctl');
  const dir = mkdtempSync(join(tmpdir(), 'r3bench-pg-'));
  const asRoot = process.getuid?.() === 0;
  let uid: number | undefined;
  if (asRoot) {
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const run = (bin: string, args: string[]) => {
    const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
    const r = spawnSync(cmd, argv, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const data = join(dir, 'data');
  const user = 'bench';
  run(initdb, ['-D', data, '-A', 'trust', '-U', user, '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c shared_buffers=256MB -c max_connections=50`;
  run(pgCtl, ['-D', data, '-o', opts, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  const version = run(findPgBin('postgres'), ['--version']).trim();
  const postmasterPid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    host: '127.0.0.1',
    port,
    user,
    dir,
    version,
    pssBytes() {
      let total = pssOf(postmasterPid);
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (ppid === postmasterPid) total += pssOf(Number(entry));
        } catch {
          // the process ended meanwhile
        }
      }
      return total;
    },
    stop() {
      try {
        run(pgCtl, ['-D', data, '-m', 'fast', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Ranking functions for Postgres. Tuned on SciFact train (nDCG@10): ts_rank with normalization 1
 * (÷ 1 + log length) 0.610, ts_rank 0 0.594, ts_rank_cd at best 0.414; ts_rank/1 is the default.
 */
export type PgRank = 'ts_rank' | 'ts_rank_cd';

/** Words of a query joined with `or` for websearch_to_tsquery (plainto_tsquery would AND them). */
export function orQuery(query: string): string {
  const words = (query.match(WORD) ?? []).filter((w) => w.toLowerCase() !== 'or');
  return words.join(' or ');
}

async function createPostgres(opts: { rank?: PgRank; normalization?: number; pool?: number }): Promise<PeerEngine> {
  const { default: pg } = await import('pg');
  const cluster = await startPgCluster();
  const pool = new pg.Pool({ host: cluster.host, port: cluster.port, user: cluster.user, database: 'postgres', max: opts.pool ?? 1 });
  const rank = opts.rank ?? 'ts_rank';
  const norm = opts.normalization ?? 1;
  try {
    await pool.query(`CREATE TABLE docs (id text PRIMARY KEY, title text, body text,
      tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(title, '') || ' ' || body)) STORED)`);
  } catch (err) {
    await pool.end();
    cluster.stop();
    throw err;
  }
  const sql = `SELECT id FROM docs, websearch_to_tsquery('english', $1) q WHERE tsv @@ q ORDER BY ${rank}(tsv, q, ${norm}) DESC, id LIMIT $2`;
  return {
    name: 'postgres',
    config: `${cluster.version}: GIN over to_tsvector('english', title||' '||text) (Snowball English stemmer, stop words removed), websearch_to_tsquery with the words joined by OR, ${rank}(…, ${norm})`,
    async add(docs) {
      const values: string[] = [];
      const params: string[] = [];
      for (const d of docs) {
        const i = params.length;
        values.push(`($${i + 1}, $${i + 2}, $${i + 3})`);
        params.push(d.id, d.title ?? '', d.text);
      }
      await pool.query(`INSERT INTO docs (id, title, body) VALUES ${values.join(',')}`, params);
    },
    async finish() {
      await pool.query('CREATE INDEX docs_tsv ON docs USING GIN (tsv)');
      await pool.query('VACUUM ANALYZE docs');
    },
    async search(query, k) {
      const q = orQuery(query);
      if (q === '') return [];
      const r = await pool.query({ name: 'search', text: sql, values: [q, k] });
      return r.rows.map((row: { id: string }) => row.id);
    },
    async diskBytes() {
      const r = await pool.query(`SELECT pg_total_relation_size('docs')::bigint AS n`);
      return Number(r.rows[0].n);
    },
    serverMemoryBytes() {
      return cluster.pssBytes();
    },
    async close() {
      await pool.end();
      cluster.stop();
    },
  };
}

/** Builds a peer by name. */
export async function createPeer(name: PeerName, opts: { pgRank?: PgRank; pgNormalization?: number; pgPool?: number } = {}): Promise<PeerEngine> {
  switch (name) {
    case 'minisearch':
      return createMiniSearch();
    case 'orama':
      return createOrama();
    case 'flexsearch':
      return createFlexSearch();
    case 'wink-bm25':
      return createWinkBm25();
    case 'postgres':
      return createPostgres({ rank: opts.pgRank, normalization: opts.pgNormalization, pool: opts.pgPool });
    default:
      throw new Error(`unknown peer ${String(name)}`);
  }
}

/** Bytes of a directory tree as allocated on disk (st_blocks × 512). */
export function duBytes(path: string): number {
  let total = 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.blocks * 512;
  for (const e of readdirSync(path)) total += duBytes(join(path, e));
  return total;
}
