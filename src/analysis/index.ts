/**
 * Analyzer factory: picks an analyzer by name from a collection's options.
 * `wordpiece` collections get their analyzer from the encoder layer and are wired in `search/`.
 */
import { createError } from '../errors.ts';
import type { Analyzer } from '../types.ts';
import { createWinkAnalyzer } from './wink.ts';

export interface AnalyzerOptions {
  name: 'wink';
  stem: boolean;
}

/** Creates an analyzer from options stored with a collection. */
export function createAnalyzer(options: AnalyzerOptions): Analyzer {
  if (options.name === 'wink') return createWinkAnalyzer({ stem: options.stem });
  throw createError('BODY_INVALID', { reason: `unknown analyzer "${(options as { name: string }).name}"` });
}

export { createWinkAnalyzer } from './wink.ts';
