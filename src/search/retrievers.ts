/**
 * Builds each collection's parametric retriever from its options (`sidr-glove` by default;
 * `bm25` has none). The sidr-glove wiring arrives with the retriever itself.
 */
import type { Config } from '../config/load.ts';
import type { RetrieverFactory } from './collections.ts';

/** The factory used by the server. */
export function createRetrieverFactory(_config: Config): RetrieverFactory {
  return async () => undefined;
}
