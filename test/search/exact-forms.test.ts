/**
 * The exact forms the late lexical terms read: each document's text as the analyzer's surface
 * forms (never its title), query words weighted by their term's idf, and features equal to a
 * brute force over those forms, whatever the cache and form-table bounds evict or restart.
 */
import { describe, expect, it } from 'vitest';
import { createWinkAnalyzer } from '../../src/analysis/wink.ts';
import { openCollectionIndex, type CollectionIndex } from '../../src/index/collection-index.ts';
import { openStore } from '../../src/index/store.ts';
import { idf, saturation } from '../../src/search/bm25.ts';
import { ExactForms } from '../../src/search/exact-forms.ts';
import type { DocumentInput } from '../../src/types.ts';
import { makeCorpus, tmpDir } from '../helpers/index.ts';

const P = { k1: 1.2, b: 0.75 };
const analyzer = createWinkAnalyzer({ stem: true });

async function withIndex(docs: DocumentInput[], run: (index: CollectionIndex) => Promise<void> | void): Promise<void> {
  const tmp = tmpDir();
  const store = openStore({ dataDir: tmp.dir, mapSizeBytes: 1 << 27 });
  try {
    const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 512 });
    await upsert(index, docs);
    await run(index);
  } finally {
    await store.close();
    tmp.cleanup();
  }
}

async function upsert(index: CollectionIndex, docs: DocumentInput[]): Promise<void> {
  await index.upsert(docs.map((input) => {
    const tokens = analyzer.analyze(input.title ? `${input.title}\n${input.text}` : input.text);
    return { input, terms: tokens.map((t) => t.term), surfaces: tokens.map((t) => t.surface), stops: Uint8Array.from(tokens, (t) => (t.stop ? 1 : 0)) };
  }));
}

/** Both late terms by brute force over the surfaces of `text`: every window, and BM25 by the formula. */
function bruteForce(index: CollectionIndex, query: string, text: string, window: number): { prox: number; lex: number } {
  const forms = analyzer.analyze(text).map((t) => t.surface);
  const weight = new Map<string, number>();
  for (const t of analyzer.analyze(query)) {
    const id = index.termId(t.term);
    if (!t.stop && id !== undefined) weight.set(t.surface, idf(index.df(id), index.liveCount));
  }
  let prox = 0;
  for (let start = 0; start < forms.length; start++) {
    const inside = new Set(forms.slice(start, start + window).filter((f) => weight.has(f)));
    prox = Math.max(prox, [...inside].reduce((s, f) => s + weight.get(f)!, 0));
  }
  let lex = 0;
  for (const [f, w] of weight) {
    const tf = forms.filter((x) => x === f).length;
    if (tf > 0) lex += w * saturation(tf, forms.length, index.avgLength, P);
  }
  return { prox, lex };
}

const docIdOf = (index: CollectionIndex, id: string) => index.getDocument(id)!.docId;

describe('ExactForms', () => {
  it('matches the query’s own word forms, not every word of the same stem', async () => {
    const docs = [
      { id: 'a', text: 'the dogs were running across the field' },
      { id: 'b', text: 'a dog runs across the field' },
      { id: 'c', text: 'nothing here matches at all' },
    ];
    await withIndex(docs, (index) => {
      const forms = new ExactForms(index, analyzer);
      const ids = docs.map((d) => docIdOf(index, d.id));
      const f = forms.features('running dogs', ids, [4], P);
      // Both stems are in a and b, but only a has the query's forms.
      const runDogs = idf(index.df(index.termId(analyzer.analyze('running')[0].term)!), index.liveCount) + idf(index.df(index.termId(analyzer.analyze('dogs')[0].term)!), index.liveCount);
      expect(f.proximity[0][0]).toBeCloseTo(runDogs, 12);
      expect(f.proximity[0][1]).toBe(0);
      expect(f.proximity[0][2]).toBe(0);
      expect(f.lexical![0]).toBeGreaterThan(0);
      expect(f.lexical![1]).toBe(0);
    });
  });

  it('leaves the title out: no window runs from the title into the text', async () => {
    const docs = [
      { id: 't', title: 'Normans', text: 'they gave their name to normandy, a region in france' },
      { id: 'u', text: 'the normans gave their name to normandy' },
    ];
    await withIndex(docs, (index) => {
      const forms = new ExactForms(index, analyzer);
      const ids = docs.map((d) => docIdOf(index, d.id));
      const f = forms.features('normans normandy', ids, [8], P);
      for (let i = 0; i < docs.length; i++) {
        const want = bruteForce(index, 'normans normandy', docs[i].text, 8);
        expect(f.proximity[0][i]).toBeCloseTo(want.prox, 12);
        expect(f.lexical![i]).toBeCloseTo(want.lex, 12);
      }
      expect(f.proximity[0][1]).toBeGreaterThan(f.proximity[0][0]);
    });
  });

  it('equals a brute force over the texts, through cache evictions and form-table restarts', async () => {
    const docs = makeCorpus(120, 3);
    await withIndex(docs, (index) => {
      const ids = docs.map((d) => docIdOf(index, d.id));
      const bounded = [new ExactForms(index, analyzer), new ExactForms(index, analyzer, { cacheTokens: 50 }), new ExactForms(index, analyzer, { maxForms: 40 })];
      for (const query of ['cancer cell', 'football team season', 'music guitar piano river', 'bank money trade law']) {
        for (const forms of bounded) {
          const f = forms.features(query, ids, [4, 16], P);
          ids.forEach((_, i) => {
            for (const [w, window] of [4, 16].entries()) expect(f.proximity[w][i]).toBeCloseTo(bruteForce(index, query, docs[i].text, window).prox, 9);
            expect(f.lexical![i]).toBeCloseTo(bruteForce(index, query, docs[i].text, 4).lex, 9);
          });
        }
      }
    });
  });

  it('cuts a text at maxTokens and reads nothing of a deleted or replaced version', async () => {
    const docs = [
      { id: 'a', text: 'alpha beta gamma delta epsilon zeta eta theta' },
      { id: 'b', text: 'zeta eta theta' },
    ];
    await withIndex(docs, async (index) => {
      const forms = new ExactForms(index, analyzer, { maxTokens: 3 });
      const [a, b] = docs.map((d) => docIdOf(index, d.id));
      expect(forms.document(a)).toHaveLength(3);
      expect(forms.features('theta', [a], [8]).proximity[0][0]).toBe(0);
      await upsert(index, [{ id: 'b', text: 'iota kappa' }]);
      await index.delete(['a']);
      expect(forms.document(a)).toHaveLength(0);
      expect(forms.document(b)).toHaveLength(0);
      const now = docIdOf(index, 'b');
      expect(now).not.toBe(b);
      expect(forms.features('kappa', [now], [8]).proximity[0][0]).toBeGreaterThan(0);
    });
  });
});
