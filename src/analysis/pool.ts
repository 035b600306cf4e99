/**
 * A small pool of analysis worker threads, so bulk ingest never blocks `/search`. Splits each
 * batch across the workers and reassembles it in order. Workers load TypeScript through tsx.
 */
import { Worker } from 'node:worker_threads';
import { BACKGROUND_THREAD_NICE } from '../threads.ts';
import type { AnalyzerOptions } from './index.ts';
import type { AnalyzedBatch } from './worker.ts';

export type { AnalyzedBatch } from './worker.ts';

/** One analysed text, ready for the indexer: indices into its batch's distinct terms. */
export interface AnalyzedText {
  vocab: Omit<AnalyzedBatch, 'docs'>;
  local: Uint32Array;
}

interface Pending {
  resolve(batch: AnalyzedBatch): void;
  reject(err: Error): void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
  load: number;
}

/** Smallest share of a batch sent to one worker; below it, splitting costs more than it saves. */
const MIN_TEXTS_PER_WORKER = 16;

export class AnalysisPool {
  private readonly workers: PoolWorker[] = [];
  private nextId = 0;
  private closed = false;

  constructor(size: number) {
    for (let i = 0; i < size; i++) this.workers.push(this.spawn());
  }

  private spawn(): PoolWorker {
    const worker = new Worker(new URL('../worker-entry.mjs', import.meta.url), {
      workerData: { module: new URL('./worker.ts', import.meta.url).href, nice: BACKGROUND_THREAD_NICE },
    });
    const entry: PoolWorker = { worker, pending: new Map(), load: 0 };
    worker.unref();
    worker.on('message', (msg: { id: number; batch?: AnalyzedBatch; error?: { message: string } }) => {
      const p = entry.pending.get(msg.id);
      if (!p) return;
      entry.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.batch!);
    });
    worker.on('error', (err) => this.fail(entry, err));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(entry, new Error(`analysis worker exited with code ${code}`));
    });
    return entry;
  }

  private fail(entry: PoolWorker, err: Error): void {
    for (const p of entry.pending.values()) p.reject(err);
    entry.pending.clear();
    const i = this.workers.indexOf(entry);
    if (i >= 0 && !this.closed) this.workers[i] = this.spawn();
  }

  private send(entry: PoolWorker, analyzer: AnalyzerOptions, texts: string[]): Promise<AnalyzedBatch> {
    const id = this.nextId++;
    entry.load += texts.length;
    return new Promise<AnalyzedBatch>((resolve, reject) => {
      entry.pending.set(id, { resolve, reject });
      entry.worker.postMessage({ id, analyzer, texts });
    }).finally(() => {
      entry.load -= texts.length;
    });
  }

  /** Analyses texts in order, spread over the least-loaded workers. */
  async analyze(analyzer: AnalyzerOptions, texts: string[]): Promise<AnalyzedText[]> {
    if (texts.length === 0) return [];
    const ranked = [...this.workers].sort((a, b) => a.load - b.load);
    const parts = Math.max(1, Math.min(ranked.length, Math.floor(texts.length / MIN_TEXTS_PER_WORKER)));
    const size = Math.ceil(texts.length / parts);
    const results = await Promise.all(ranked.slice(0, parts).map((w, i) => this.send(w, analyzer, texts.slice(i * size, (i + 1) * size))));
    const out: AnalyzedText[] = [];
    for (const { docs, ...vocab } of results) for (const local of docs) out.push({ vocab, local });
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
