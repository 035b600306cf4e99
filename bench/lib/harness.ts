/**
 * Shared benchmark plumbing: a server built in process over a temporary data directory, loading
 * a data folder through `POST /documents` and querying through `POST /search` (the same code paths
 * users hit, via `app.inject`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { loadConfig, type ConfigOverrides } from '../../src/config/load.ts';
import { createRetrieverFactory } from '../../src/search/retrievers.ts';
import { readCorpus, type CorpusDoc } from './dataset.ts';

export interface Harness {
  app: FastifyInstance;
  dataDir: string;
  close(): Promise<void>;
}

/** Builds an app over `dataDir` (a fresh temporary directory when absent; removed on close). */
export async function openHarness(opts: { dataDir?: string; overrides?: ConfigOverrides } = {}): Promise<Harness> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'r3bench-'));
  const config = loadConfig({
    overrides: { ...opts.overrides, store: { dataDir }, server: { logLevel: 'warn', ...opts.overrides?.server } },
  });
  const app = await buildApp(config, { retrieverFactory: createRetrieverFactory(config) });
  return {
    app,
    dataDir,
    async close() {
      await app.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Parses `--name value` and `--flag` arguments. */
export function parseFlags(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[key] = 'true';
    else out[key] = argv[++i];
  }
  return out;
}

/**
 * Loads a corpus through `POST /documents` in JSON batches with `concurrency` requests in flight.
 * Returns the document count and docs/s.
 */
export async function ingestCorpus(
  app: FastifyInstance,
  dir: string,
  opts: { collection?: string; batchSize?: number; concurrency?: number; limit?: number } = {},
): Promise<{ docs: number; seconds: number; docsPerSecond: number }> {
  const batchSize = opts.batchSize ?? 1000;
  const concurrency = opts.concurrency ?? 2;
  const inFlight = new Set<Promise<void>>();
  let batch: CorpusDoc[] = [];
  let docs = 0;
  const t0 = performance.now();
  const send = (documents: CorpusDoc[]) => {
    const p = app
      .inject({ method: 'POST', url: '/documents', payload: { collection: opts.collection, documents } })
      .then((r) => {
        if (r.statusCode !== 200) throw new Error(`ingest failed: ${r.statusCode} ${r.body.slice(0, 500)}`);
      });
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    return tracked;
  };
  for await (const doc of readCorpus(dir)) {
    if (opts.limit !== undefined && docs >= opts.limit) break;
    batch.push(doc.title ? doc : { id: doc.id, text: doc.text });
    docs++;
    if (batch.length >= batchSize) {
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
      void send(batch);
      batch = [];
    }
  }
  if (batch.length) void send(batch);
  await Promise.all(inFlight);
  const seconds = (performance.now() - t0) / 1000;
  // The documents are durable; their postings reach LMDB at a checkpoint. Take it now (outside
  // the rate) so that it never runs inside a timed window of the caller.
  await app.engine.collections.get(opts.collection ?? 'default').index.checkpoint();
  return { docs, seconds, docsPerSecond: docs / seconds };
}

/** One `/search` call; throws on a non-200. */
export async function search(app: FastifyInstance, body: Record<string, unknown>): Promise<{ hits: Array<{ id: string; text?: string; score: number }>; timings: Record<string, number> }> {
  const r = await app.inject({ method: 'POST', url: '/search', payload: body });
  if (r.statusCode !== 200) throw new Error(`search failed: ${r.statusCode} ${r.body.slice(0, 500)}`);
  return r.json();
}
