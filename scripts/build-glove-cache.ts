/**
 * Builds the GloVe binary cache ahead of time (the server otherwise builds it on first start).
 * `npm install` runs it with --if-missing; a failure there only warns.
 * Usage: tsx scripts/build-glove-cache.ts [--if-missing] [cachePath] [sourceJson]
 */
import { existsSync } from 'node:fs';
import { DEFAULT_GLOVE_CACHE_PATH, buildGloveCache, openGlove } from '../src/encoder/glove.ts';

const args = process.argv.slice(2);
const ifMissing = args.includes('--if-missing');
const [cachePath = DEFAULT_GLOVE_CACHE_PATH, source] = args.filter((a) => !a.startsWith('--'));
try {
  if (ifMissing && existsSync(cachePath)) {
    console.log(`GloVe cache present: ${cachePath}`);
  } else {
    const t0 = performance.now();
    await buildGloveCache(cachePath, source ? { source } : {});
    const t1 = performance.now();
    const glove = await openGlove(cachePath, { build: false });
    const t2 = performance.now();
    console.log(
      `${cachePath}: ${glove.count} words × ${glove.dim} dims; ` +
        `built in ${((t1 - t0) / 1000).toFixed(1)} s, loaded in ${(t2 - t1).toFixed(0)} ms`,
    );
  }
} catch (err) {
  if (!ifMissing) throw err;
  console.warn(`GloVe cache not built now (${(err as Error).message}); the server builds it on first start.`);
}
