/**
 * Builds each collection's parametric retriever from its options: `sidr-glove` (default) binds
 * the GloVe backbone, loaded once per process; `onnx` a transformer model directory; `bm25` has
 * none (lexical and beta modes only).
 */
import type { Config } from '../config/load.ts';
import { DEFAULT_GLOVE_CACHE_PATH, openGlove, type Glove } from '../encoder/glove.ts';
import { RetrieverStore } from '../index/retriever-store.ts';
import type { RetrieverFactory } from './collections.ts';
import { openOnnxRetrieverFor } from './onnx-retriever.ts';
import { SidrGloveRetriever, type SidrGloveOptions } from './sidr-retriever.ts';

const gloves = new Map<string, Promise<Glove>>();

/** The GloVe table at `path`, converted on first use and shared by every collection. */
export function sharedGlove(path: string): Promise<Glove> {
  let g = gloves.get(path);
  if (!g) {
    g = openGlove(path);
    gloves.set(path, g);
    g.catch(() => gloves.delete(path));
  }
  return g;
}

/** The factory used by the server. */
export function createRetrieverFactory(config: Config): RetrieverFactory {
  return async (collection, store) => {
    const options = collection.options.retriever;
    if (options.kind === 'onnx') return openOnnxRetrieverFor(collection, store);
    if (options.kind !== 'sidr-glove') return undefined;
    const glove = await sharedGlove(config.retriever.gloveCachePath || DEFAULT_GLOVE_CACHE_PATH);
    const serving: SidrGloveOptions = {
      kExp: numberOr(options.kExp, config.retriever.kExp),
      expansionScale: numberOr(options.expansionScale, config.retriever.expansionScale),
      gamma: numberOr(options.gamma, config.retriever.gamma),
      proximity: { weight: numberOr(options.proximity, config.retriever.proximity), window: numberOr(options.proximityWindow, config.retriever.proximityWindow) },
      lexical: numberOr(options.lexical, config.retriever.lexical),
      refreshIntervalMs: 1_000,
      learningRate: numberOr(options.learningRate, 2e-3),
      bm25: { k1: config.search.k1, b: config.search.b },
      servedLoss: {
        weight: numberOr(options.servedLossWeight, config.retriever.servedLossWeight),
        temperature: numberOr(options.servedLossTemperature, config.retriever.servedLossTemperature),
      },
    };
    return SidrGloveRetriever.open(collection.index, collection.searcher.exactForms, glove, new RetrieverStore(store.collectionDbs(collection.name)), serving);
  };
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}
