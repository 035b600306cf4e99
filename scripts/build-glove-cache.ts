/**
 * Builds the GloVe binary cache ahead of time (the server otherwise builds it on first start).
 * Usage: tsx scripts/build-glove-cache.ts [cachePath] [sourceJson]
 */
import { DEFAULT_GLOVE_CACHE_PATH, buildGloveCache, openGlove } from '../src/encoder/glove.ts';

const cachePath = process.argv[2] ?? DEFAULT_GLOVE_CACHE_PATH;
const source = process.argv[3];
const t0 = performance.now();
await buildGloveCache(cachePath, source ? { source } : {});
const t1 = performance.now();
const glove = await openGlove(cachePath, { build: false });
const t2 = performance.now();
console.log(
  `${cachePath}: ${glove.count} words × ${glove.dim} dims; ` +
    `built in ${((t1 - t0) / 1000).toFixed(1)} s, loaded in ${(t2 - t1).toFixed(0)} ms`,
);
