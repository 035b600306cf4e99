/**
 * BM25 over tf tiers: saturation never decreases with tf; the first stage equals a brute-force
 * scorer that uses the same tier-rounded tf; lexical and beta modes rank as defined.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createWinkAnalyzer } from '../../src/analysis/wink.ts';
import { openCollectionIndex, TF_TIERS } from '../../src/index/collection-index.ts';
import { openStore } from '../../src/index/store.ts';
import { idf, saturation } from '../../src/search/bm25.ts';
import { Searcher } from '../../src/search/searcher.ts';
import { makeCorpus, tmpDir } from '../helpers/index.ts';

const P = { k1: 1.2, b: 0.75 };

function tierTf(tf: number): number {
  let out = 0;
  for (const t of TF_TIERS) if (tf >= t) out = t;
  return out;
}

describe('bm25', () => {
  it('saturation never decreases as tf rises', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 1000 }), fc.double({ min: 1, max: 500, noNaN: true }), (tf, dl, avgdl) => {
        expect(saturation(tf + 1, dl, avgdl, P)).toBeGreaterThanOrEqual(saturation(tf, dl, avgdl, P));
      }),
    );
  });

  it('first stage equals a brute-force tier-rounded BM25', async () => {
    const tmp = tmpDir();
    const store = openStore({ dataDir: tmp.dir, mapSizeBytes: 1 << 27 });
    try {
      const analyzer = createWinkAnalyzer({ stem: true });
      const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 512 });
      const docs = makeCorpus(300, 7);
      await index.upsert(docs.map((input) => {
        const tokens = analyzer.analyze(`${input.title}\n${input.text}`);
        return { input, terms: tokens.map((t) => t.term), surfaces: tokens.map((t) => t.surface), stops: Uint8Array.from(tokens, (t) => (t.stop ? 1 : 0)) };
      }));
      await index.delete(['d3', 'd10']);
      const searcher = new Searcher(index, analyzer, { bm25: P });
      for (const query of ['cancer cell', 'football team season', 'king queen empire war', 'music']) {
        const got = searcher.search({ query, k: 20, m: 20, mode: 'lexical', includeDocuments: false });
        const qterms = [...new Set(analyzer.analyze(query).map((t) => t.term))];
        const n = index.liveCount;
        const expected = docs
          .filter((d) => d.id !== 'd3' && d.id !== 'd10')
          .map((d) => {
            const terms = analyzer.analyze(`${d.title}\n${d.text}`).map((t) => t.term);
            let s = 0;
            for (const q of qterms) {
              const id = index.termId(q);
              if (id === undefined) continue;
              const tf = tierTf(terms.filter((t) => t === q).length);
              s += idf(index.df(id), n) * saturation(tf, terms.length, index.avgLength, P);
            }
            return { id: d.id, s };
          })
          .filter((x) => x.s > 0)
          .sort((a, b) => b.s - a.s);
        expect(got.hits.length).toBe(Math.min(20, expected.length));
        got.hits.forEach((h, i) => expect(h.score).toBeCloseTo(expected[i].s, 4));
        expect(got.hits.some((h) => h.id === 'd3' || h.id === 'd10')).toBe(false);
      }
      const beta = searcher.search({ query: 'cancer cell', k: 5, m: 5, mode: 'beta', includeDocuments: false });
      const both = idf(index.df(index.termId('cancer')!), index.liveCount) + idf(index.df(index.termId('cell')!), index.liveCount);
      expect(beta.hits[0].score).toBeCloseTo(both, 4);
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});
