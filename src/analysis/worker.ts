/**
 * Worker-thread entry: analyses batches of texts off the event loop. Receives
 * `{ id, analyzer, texts }`, answers `{ id, batch }`: the batch's distinct terms once and each
 * document as indices into them.
 */
import { parentPort } from 'node:worker_threads';
import { createAnalyzer, type AnalyzerOptions } from './index.ts';
import type { AnalyzedBatch, Analyzer } from '../types.ts';

export type { AnalyzedBatch };

export interface AnalyzeRequest {
  id: number;
  analyzer: AnalyzerOptions;
  texts: string[];
}

const analyzers = new Map<string, Analyzer>();

/** Analyses texts into the batch format (also usable in-process). */
export function analyzeBatch(options: AnalyzerOptions, texts: string[]): AnalyzedBatch {
  const key = JSON.stringify(options);
  let analyzer = analyzers.get(key);
  if (!analyzer) analyzers.set(key, (analyzer = createAnalyzer(options)));
  if (analyzer.analyzeBatch) return analyzer.analyzeBatch(texts);
  const index = new Map<string, number>();
  const terms: string[] = [];
  const surfaces: string[] = [];
  const stops: number[] = [];
  const docs = texts.map((text) => {
    const tokens = analyzer!.analyze(text);
    const out = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      let k = index.get(t.term);
      if (k === undefined) {
        k = terms.length;
        index.set(t.term, k);
        terms.push(t.term);
        surfaces.push(t.surface);
        stops.push(t.stop ? 1 : 0);
      }
      out[i] = k;
    }
    return out;
  });
  return { terms, surfaces, stops: Uint8Array.from(stops), docs };
}

if (parentPort) {
  // Load the wink model now, not with the first batch: a worker starts with the server, so the
  // first ingest does not wait a second for it.
  analyzeBatch({ name: 'wink', stem: true }, ['warm up']);
  const port = parentPort;
  port.on('message', (msg: AnalyzeRequest) => {
    try {
      const batch = analyzeBatch(msg.analyzer, msg.texts);
      port.postMessage({ id: msg.id, batch }, batch.docs.map((d) => d.buffer as ArrayBuffer));
    } catch (err) {
      port.postMessage({ id: msg.id, error: { message: (err as Error).message, stack: (err as Error).stack } });
    }
  });
}
