/**
 * Worker-thread entry: analyses batches of texts off the event loop. Receives
 * `{ id, analyzer, texts }`, answers `{ id, docs }` with terms and surfaces joined by U+0001
 * (one string per document is far cheaper to post than arrays of strings).
 */
import { parentPort } from 'node:worker_threads';
import { createAnalyzer, type AnalyzerOptions } from './index.ts';
import type { Analyzer } from '../types.ts';

export const SEPARATOR = '\u0001';

export interface AnalyzeRequest {
  id: number;
  analyzer: AnalyzerOptions;
  texts: string[];
}

export interface AnalyzedWire {
  terms: string;
  surfaces: string;
  stops: Uint8Array;
}

const analyzers = new Map<string, Analyzer>();

/** Analyses texts into the wire format (also used in-process when no worker is available). */
export function analyzeToWire(options: AnalyzerOptions, texts: string[]): AnalyzedWire[] {
  const key = JSON.stringify(options);
  let analyzer = analyzers.get(key);
  if (!analyzer) analyzers.set(key, (analyzer = createAnalyzer(options)));
  return texts.map((text) => {
    const tokens = analyzer!.analyze(text);
    const stops = new Uint8Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) stops[i] = tokens[i].stop ? 1 : 0;
    return {
      terms: tokens.map((t) => t.term).join(SEPARATOR),
      surfaces: tokens.map((t) => t.surface).join(SEPARATOR),
      stops,
    };
  });
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (msg: AnalyzeRequest) => {
    try {
      port.postMessage({ id: msg.id, docs: analyzeToWire(msg.analyzer, msg.texts) });
    } catch (err) {
      port.postMessage({ id: msg.id, error: { message: (err as Error).message, stack: (err as Error).stack } });
    }
  });
}
