/**
 * r3serve at growing corpus sizes: a seeded generator recombines sentences of real corpora into
 * ~100-word passages, streams them through `POST /documents` (app.inject, JSON batches), and at
 * each size reports ingest rate, index bytes on disk, RSS, and lexical/beta/late latency. JSON last.
 */
import { loadavg } from 'node:os';
import { MiB, memorySnapshot, round, runEnvironment, table, writeResult } from './lib/bench-env.ts';
import { readCorpus, readQueries, type CorpusDoc } from './lib/dataset.ts';
import { openHarness, parseFlags, search } from './lib/harness.ts';
import { percentile } from './lib/metrics.ts';
import { duBytes } from './lib/peer-engines.ts';
import { createRng as createSeededRng } from '../src/rcl/rng.ts';

const flags = parseFlags(process.argv.slice(2));
const USAGE = `usage: npx tsx bench/scale.ts --sizes 10000,100000,1000000 --data <folder>[,<folder>] [--words 100]
  [--seed 1] [--batch 2000] [--concurrency 2] [--queries 300] [--warmup 30] [--data-dir DIR (kept)] [--out [DIR]]`;
if (!flags.data || !flags.sizes) {
  console.error(USAGE);
  process.exit(2);
}
const sizes = flags.sizes.split(',').map(Number).sort((a, b) => a - b);
const folders = flags.data.split(',');
const targetWords = Number(flags.words ?? 100);
const batchSize = Number(flags.batch ?? 2000);
const concurrency = Number(flags.concurrency ?? 2);
const queryCount = Number(flags.queries ?? 300);
const warmup = Number(flags.warmup ?? 30);
const MODES = ['lexical', 'beta', 'late'] as const;

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function createRng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

interface SourcePool {
  name: string;
  sentences: string[];
  words: Uint16Array;
  titles: string[];
  docs: number;
}

const SENTENCE_END = /(?<=[.!?])\s+(?=[\p{Lu}\p{N}"'(\[])/u;

async function readPool(dir: string): Promise<SourcePool> {
  const sentences: string[] = [];
  const words: number[] = [];
  const titles = new Set<string>();
  let docs = 0;
  for await (const d of readCorpus(dir)) {
    docs++;
    if (d.title) titles.add(d.title);
    for (const s of d.text.split(SENTENCE_END)) {
      const t = s.trim();
      if (t.length < 10) continue;
      sentences.push(t);
      words.push(Math.min(65_535, t.split(/\s+/).length));
    }
  }
  return { name: dir.split('/').filter(Boolean).pop()!, sentences, words: Uint16Array.from(words), titles: [...titles], docs };
}

/**
 * Passage i of the synthetic corpus: pick a source corpus (∝ its passage count), a title from it,
 * then sentences drawn uniformly from that corpus until a target of 0.6–1.4 × `targetWords` words.
 * The term distribution is the sources' own (Zipfian); the vocabulary does not grow past theirs.
 */
function* generate(pools: SourcePool[], seed: number, from: number, to: number): Generator<CorpusDoc> {
  const total = pools.reduce((a, p) => a + p.docs, 0);
  for (let i = from; i < to; i++) {
    const rng = createRng((seed * 0x9e3779b1) ^ i);
    let pick = rng() * total;
    let pool = pools[0];
    for (const p of pools) {
      if (pick < p.docs) {
        pool = p;
        break;
      }
      pick -= p.docs;
    }
    const want = targetWords * (0.6 + 0.8 * rng());
    const parts: string[] = [];
    let n = 0;
    while (n < want) {
      const s = Math.floor(rng() * pool.sentences.length);
      parts.push(pool.sentences[s]);
      n += pool.words[s];
    }
    const doc: CorpusDoc = { id: `g${i}`, text: parts.join(' ') };
    if (pool.titles.length) doc.title = pool.titles[Math.floor(rng() * pool.titles.length)];
    yield doc;
  }
}

interface ModeLatency {
  available: boolean;
  reason?: string;
  p50_ms?: number;
  p99_ms?: number;
  repeat_p50_ms?: number;
  repeat_p99_ms?: number;
  direct_p50_ms?: number;
  direct_p99_ms?: number;
}

async function main(): Promise<void> {
  const env = runEnvironment();
  const seed = Number(flags.seed ?? 1);
  const pools = await Promise.all(folders.map(readPool));
  const queries: string[] = [];
  for (const f of folders) for (const q of await readQueries(f, 'test')) queries.push(q.text);
  const rngQ = createRng(seed + 17);
  for (let i = queries.length - 1; i > 0; i--) {
    const j = Math.floor(rngQ() * (i + 1));
    [queries[i], queries[j]] = [queries[j], queries[i]];
  }
  const qs = queries.slice(0, queryCount);
  const warmupQs = queries.slice(queryCount, queryCount + warmup);
  console.error(`[scale] sources: ${pools.map((p) => `${p.name} (${p.sentences.length} sentences)`).join(', ')}; ${qs.length} queries`);

  const harness = await openHarness({ dataDir: flags['data-dir'] });
  const { app } = harness;
  const rows: Array<Record<string, unknown>> = [];
  try {
    const start = memorySnapshot();
    let have = 0;
    let words = 0;
    let totalIngestS = 0;
    for (const size of sizes) {
      // ---- ingest (have, size] in JSON batches through POST /documents ----
      const inFlight = new Set<Promise<void>>();
      let batch: CorpusDoc[] = [];
      const t0 = performance.now();
      let lastLog = t0;
      let sent = have;
      // Load average while this segment ingests (this bench itself adds about 2: main thread + analysis worker).
      const loads: number[] = [];
      const sampler = setInterval(() => loads.push(loadavg()[0]), 5_000);
      sampler.unref();
      const send = (documents: CorpusDoc[]) => {
        const p = app.inject({ method: 'POST', url: '/documents', payload: { documents } }).then((r) => {
          if (r.statusCode !== 200) throw new Error(`ingest failed: ${r.statusCode} ${r.body.slice(0, 300)}`);
        });
        const tracked = p.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
      };
      for (const doc of generate(pools, seed, have, size)) {
        batch.push(doc);
        words += doc.text.split(' ').length;
        if (batch.length >= batchSize) {
          while (inFlight.size >= concurrency) await Promise.race(inFlight);
          send(batch);
          sent += batch.length;
          batch = [];
          const now = performance.now();
          if (now - lastLog > 30_000) {
            lastLog = now;
            const rate = Math.round((sent - have) / ((now - t0) / 1000));
            console.error(`[scale] … ${sent} docs sent, ${rate} docs/s, rss ${Math.round(process.memoryUsage().rss / MiB)} MiB, load ${loadavg()[0].toFixed(2)}`);
          }
        }
      }
      if (batch.length) send(batch);
      await Promise.all(inFlight);
      clearInterval(sampler);
      const ingestS = (performance.now() - t0) / 1000;
      totalIngestS += ingestS;
      const segment = size - have;
      have = size;
      // The postings of the last documents reach LMDB at a checkpoint: take it (timed apart) so
      // that the bytes on disk are the whole index and no checkpoint runs inside a timed window.
      const tc = performance.now();
      await app.engine.collections.get('default').index.checkpoint();
      const checkpointS = (performance.now() - tc) / 1000;
      const mem = memorySnapshot();
      const disk = duBytes(harness.dataDir);
      const storeUsed = app.engine.store.sizeBytes();
      // ---- latency per mode (the availability probe also absorbs late's refresh after ingest) ----
      const collection = app.engine.collections.get('default');
      const latency: Partial<Record<(typeof MODES)[number], ModeLatency>> = {};
      for (const mode of MODES) {
        try {
          collection.searcher.search({ query: warmupQs[0] ?? qs[0], k: 10, m: 20, mode, includeDocuments: false });
        } catch (err) {
          latency[mode] = { available: false, reason: (err as { code?: string }).code ?? (err as Error).message };
          continue;
        }
        // Warm-up on other queries; then three passes over the measured queries: first sight
        // through /search (cold per-query caches, e.g. late's expansion lists of new terms), a repeat
        // through /search (warm), and a repeat on the direct searcher (no HTTP pipeline).
        for (const q of warmupQs) await search(app, { query: q, k: 10, mode, includeDocuments: false }).catch(() => undefined);
        const timeInject = async () => {
          const out: number[] = [];
          for (const q of qs) {
            const t = performance.now();
            await search(app, { query: q, k: 10, mode, includeDocuments: false }).catch(() => undefined);
            out.push(performance.now() - t);
          }
          return out;
        };
        const first = await timeInject();
        const repeat = await timeInject();
        const direct: number[] = [];
        for (const q of qs) {
          const t = performance.now();
          try {
            collection.searcher.search({ query: q, k: 10, m: 20, mode, includeDocuments: false });
          } catch {
            // QUERY_EMPTY for a query of unknown words
          }
          direct.push(performance.now() - t);
        }
        latency[mode] = {
          available: true,
          p50_ms: round(percentile(first, 50), 2),
          p99_ms: round(percentile(first, 99), 2),
          repeat_p50_ms: round(percentile(repeat, 50), 2),
          repeat_p99_ms: round(percentile(repeat, 99), 2),
          direct_p50_ms: round(percentile(direct, 50), 2),
          direct_p99_ms: round(percentile(direct, 99), 2),
        };
      }
      const row = {
        docs: size,
        mean_words: Math.round(words / size),
        segment_docs: segment,
        ingest_s: round(ingestS, 1),
        ingest_docs_per_s: Math.round(segment / ingestS),
        checkpoint_s: round(checkpointS, 2),
        cumulative_docs_per_s: Math.round(size / totalIngestS),
        disk_mib: round(disk / MiB, 1),
        lmdb_used_mib: round(storeUsed / MiB, 1),
        rss_mib: round(mem.rss / MiB, 1),
        rss_anon_mib: round(mem.rssAnon / MiB, 1),
        rss_file_mib: round(mem.rssFile / MiB, 1),
        heap_mib: round(mem.heapUsed / MiB, 1),
        external_mib: round(mem.external / MiB, 1),
        vocabulary: collection.index.vocabularySize,
        loadavg_ingest_mean: loads.length ? round(loads.reduce((a, b) => a + b, 0) / loads.length, 2) : round(loadavg()[0], 2),
        loadavg_ingest_max: loads.length ? round(Math.max(...loads), 2) : round(loadavg()[0], 2),
        loadavg: round(loadavg()[0], 2),
        ...latency,
      };
      rows.push(row);
      console.error(`[scale] ${JSON.stringify(row)}`);
    }
    console.error(
      table(
        rows.map((r) => ({
          ...r,
          lexical_p50: (r.lexical as ModeLatency | undefined)?.p50_ms,
          beta_p50: (r.beta as ModeLatency | undefined)?.p50_ms,
          late_p50: (r.late as ModeLatency | undefined)?.p50_ms,
          late_p99: (r.late as ModeLatency | undefined)?.p99_ms,
        })),
        ['docs', 'ingest_docs_per_s', 'disk_mib', 'rss_mib', 'rss_anon_mib', 'rss_file_mib', 'lexical_p50', 'beta_p50', 'late_p50', 'late_p99', 'loadavg'],
      ),
    );
    const last = rows[rows.length - 1] as { docs: number; cumulative_docs_per_s: number; rss_mib: number; late?: ModeLatency };
    const result = {
      bench: 'scale',
      data: folders.map((f) => f.split('/').filter(Boolean).pop()).join(','),
      generator: { seed, target_words: targetWords, batch: batchSize, concurrency, sources: pools.map((p) => ({ name: p.name, sentences: p.sentences.length, passages: p.docs })) },
      queries: qs.length,
      ...env,
      loadavg_end: round(loadavg()[0], 2),
      rss_before_ingest_mib: round(start.rss / MiB, 1),
      sizes: rows,
      targets:
        last.docs >= 1_000_000
          ? {
              ingest_ge_5000_docs_per_s: last.cumulative_docs_per_s >= 5000,
              late_p50_le_30_ms: last.late?.p50_ms !== undefined ? last.late.p50_ms <= 30 : 'unavailable',
              rss_le_4_gib: last.rss_mib <= 4096,
            }
          : 'the targets are stated for 1M passages',
    };
    const path = writeResult('scale', flags.out, result);
    if (path) console.error(`[scale] wrote ${path}`);
    console.log(JSON.stringify(result));
  } finally {
    await harness.close();
  }
}

await main();
