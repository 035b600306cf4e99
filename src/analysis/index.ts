/**
 * Analyzer factory: picks an analyzer by name from a collection's options (`wink` or
 * `wordpiece`). Plain options in, so analysis worker threads build the same analyzers.
 */
import { createError } from '../errors.ts';
import type { Analyzer } from '../types.ts';
import { createWinkAnalyzer } from './wink.ts';
import {
  createWordPieceAnalyzer,
  resolveWordPieceOptions,
  type WordPieceAnalyzerInput,
  type WordPieceAnalyzerOptions,
} from './wordpiece-analyzer.ts';

/** Options of the default wink analyzer. */
export interface WinkAnalyzerOptions {
  name: 'wink';
  stem: boolean;
}

/** A collection's analyzer options as stored (they decide its on-disk format). */
export type AnalyzerOptions = WinkAnalyzerOptions | WordPieceAnalyzerOptions;

/** Analyzer options as a user gives them (a wordpiece analyzer may name a model directory). */
export type AnalyzerInput = Partial<WinkAnalyzerOptions> | WordPieceAnalyzerInput;

/** Creates an analyzer from options stored with a collection. */
export function createAnalyzer(options: AnalyzerOptions): Analyzer {
  if (options.name === 'wink') return createWinkAnalyzer({ stem: options.stem });
  if (options.name === 'wordpiece') return createWordPieceAnalyzer(options);
  throw createError('BODY_INVALID', { reason: `unknown analyzer "${(options as { name: string }).name}"` });
}

/**
 * Completes user input into stored options: wink fills in `defaults`; wordpiece resolves the
 * vocabulary file and records its hash (reads the file once).
 */
export function resolveAnalyzerOptions(input: AnalyzerInput | undefined, defaults: WinkAnalyzerOptions): AnalyzerOptions {
  if (input?.name === 'wordpiece') return resolveWordPieceOptions(input);
  return { ...defaults, ...(input as Partial<WinkAnalyzerOptions> | undefined), name: 'wink' };
}

export { createWinkAnalyzer } from './wink.ts';
export { createWordPieceAnalyzer, type WordPieceAnalyzerOptions } from './wordpiece-analyzer.ts';
