/**
 * The collection index against a plain oracle (Map of id → terms): random upserts and deletes,
 * then postings, tiers, lengths, documents and the forward store must agree with the oracle,
 * both in memory and after reopening from LMDB.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { openCollectionIndex, TF_TIERS, type AnalyzedDocument, type CollectionIndex } from '../../src/index/collection-index.ts';
import { openStore, type Store } from '../../src/index/store.ts';
import { tmpDir } from '../helpers/index.ts';

const VOCAB = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

function analyzed(id: string, terms: string[], metadata?: Record<string, unknown>): AnalyzedDocument {
  return { input: { id, text: terms.join(' '), metadata }, terms, surfaces: terms, stops: new Uint8Array(terms.length) };
}

function check(index: CollectionIndex, oracle: Map<string, string[]>, maxForwardTokens = Infinity): void {
  expect(index.liveCount).toBe(oracle.size);
  const live = new Map<number, string>();
  for (const [id, terms] of oracle) {
    const doc = index.getDocument(id);
    expect(doc?.text).toBe(terms.join(' '));
    live.set(doc!.docId, id);
    expect(Array.from(index.forward(doc!.docId)!, (t) => index.term(t))).toEqual(terms.slice(0, maxForwardTokens));
    expect(index.docLengths[doc!.docId]).toBe(terms.length);
  }
  // Every document carries metadata { g: its text length mod 3 } (see the property below).
  for (const g of [0, 1, 2]) {
    const members = (index.filter('g', g)?.toArray() ?? []).filter((d) => live.has(d) && !index.tombstones.has(d));
    const expected = [...oracle].filter(([, t]) => t.join(' ').length % 3 === g).map(([id]) => id);
    expect(members.map((d) => live.get(d)).sort()).toEqual(expected.sort());
  }
  for (const term of VOCAB) {
    const id = index.termId(term);
    const expectedDf = [...oracle.values()].filter((t) => t.includes(term)).length;
    if (id === undefined) {
      expect(expectedDf).toBe(0);
      continue;
    }
    expect(index.df(id)).toBe(expectedDf);
    for (let tier = 0; tier < TF_TIERS.length; tier++) {
      const members = (index.posting(id, tier)?.toArray() ?? []).filter((d) => live.has(d) && !index.tombstones.has(d));
      const expected = [...oracle].filter(([, t]) => t.filter((x) => x === term).length >= TF_TIERS[tier]).map(([docId]) => docId);
      expect(members.map((d) => live.get(d)).sort()).toEqual(expected.sort());
    }
  }
}

describe('collection index', () => {
  let store: Store | undefined;
  let cleanup: (() => void) | undefined;
  afterEach(async () => {
    await store?.close();
    cleanup?.();
    store = undefined;
  });
  /** A store in a fresh temporary directory, closed and removed after the test. */
  const freshStore = (): Store => {
    const tmp = tmpDir();
    cleanup = tmp.cleanup;
    return openStore({ dataDir: tmp.dir, mapSizeBytes: 1 << 26 });
  };

  it('agrees with an oracle under random upserts, deletes and checkpoints, in memory and reopened with or without replay', async () => {
    const MAX_FORWARD = 8;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('upsert' as const), docs: fc.array(fc.record({ id: fc.integer({ min: 0, max: 15 }), terms: fc.array(fc.constantFrom(...VOCAB), { maxLength: 40 }) }), { minLength: 1, maxLength: 6 }) }),
      fc.record({ kind: fc.constant('delete' as const), ids: fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('checkpoint' as const) }),
    );
    const reopen = (s: Store) => openCollectionIndex('t', s.collectionDbs('t'), { maxForwardTokens: MAX_FORWARD });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        const tmp = tmpDir();
        const s = openStore({ dataDir: tmp.dir, mapSizeBytes: 1 << 26 });
        try {
          const index = reopen(s);
          const oracle = new Map<string, string[]>();
          for (const o of ops) {
            if (o.kind === 'upsert') {
              const batch = new Map(o.docs.map((d) => [`x${d.id}`, d.terms]));
              await index.upsert([...batch].map(([id, terms]) => analyzed(id, terms, { g: terms.join(' ').length % 3 })));
              for (const [id, terms] of batch) oracle.set(id, terms);
            } else if (o.kind === 'delete') {
              await index.delete(o.ids.map((i) => `x${i}`));
              for (const i of o.ids) oracle.delete(`x${i}`);
            } else {
              await index.checkpoint();
              expect(index.uncheckpointed).toBe(0);
            }
          }
          check(index, oracle, MAX_FORWARD);
          await index.drain();
          // Reopened as a crash would leave it: what followed the last checkpoint is replayed.
          const replayed = reopen(s);
          check(replayed, oracle, MAX_FORWARD);
          await replayed.close();
          expect(s.collectionDbs('t').tails.getKeysCount()).toBe(0);
          // Reopened after a checkpoint: everything is read from the stored postings.
          const stored = reopen(s);
          expect(stored.uncheckpointed).toBe(0);
          check(stored, oracle, MAX_FORWARD);
          await stored.drain();
        } finally {
          await s.close();
          tmp.cleanup();
        }
      }),
      { numRuns: 25 },
    );
  });

  it('replays documents committed after a checkpoint exactly as the checkpoint stores them', async () => {
    store = freshStore();
    const dbs = store.collectionDbs('t');
    const index = openCollectionIndex('t', dbs, { maxForwardTokens: 4 });
    await index.upsert([analyzed('1', ['a', 'b', 'a', 'c', 'a', 'a', 'd'], { lang: 'en' }), analyzed('2', ['b', 'b'], { lang: 'de' })]);
    await index.checkpoint();
    await index.upsert([analyzed('3', Array.from({ length: 30 }, (_, i) => VOCAB[i % 3]), { lang: 'en' }), analyzed('1', ['e'], { lang: 'fr' })]);
    await index.delete(['2']);
    expect(index.uncheckpointed).toBe(2);
    expect(dbs.tails.getKeysCount()).toBe(1);
    await index.drain();
    // Every stored posting after a checkpoint of the replayed index equals the original's.
    const replayed = openCollectionIndex('t', dbs, { maxForwardTokens: 4 });
    for (const term of VOCAB) {
      const a = index.termId(term);
      if (a === undefined) continue;
      for (let tier = 0; tier < TF_TIERS.length; tier++) expect(replayed.posting(a, tier)?.toArray() ?? [], `${term}/${tier}`).toEqual(index.posting(a, tier)?.toArray() ?? []);
    }
    expect(replayed.filter('lang', 'en')!.toArray()).toEqual(index.filter('lang', 'en')!.toArray());
    expect(replayed.filter('lang', 'fr')!.toArray()).toEqual(index.filter('lang', 'fr')!.toArray());
    expect(replayed.docLengths[index.getDocument('3')!.docId]).toBe(30);
    expect(replayed.avgLength).toBe(index.avgLength);
    await replayed.close();
    expect(dbs.tails.getKeysCount()).toBe(0);
    expect((dbs.meta.get('counters') as { indexedTo: number }).indexedTo).toBe(4);
  });

  it('opens a collection written before checkpoints existed (no indexedTo: every posting stored)', async () => {
    store = freshStore();
    const dbs = store.collectionDbs('t');
    const index = openCollectionIndex('t', dbs, { maxForwardTokens: 100 });
    await index.upsert([analyzed('1', ['a', 'b']), analyzed('2', ['b'])]);
    await index.close();
    const { indexedTo: _, ...counters } = dbs.meta.get('counters') as Record<string, unknown>;
    await dbs.meta.put('counters', counters);
    const old = openCollectionIndex('t', dbs, { maxForwardTokens: 100 });
    expect(old.uncheckpointed).toBe(0);
    expect(old.df(old.termId('b')!)).toBe(2);
    await old.drain();
  });

  it('keeps metadata filter bitmaps and truncates the forward store', async () => {
    store = freshStore();
    const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 3 });
    await index.upsert([analyzed('1', ['a', 'b', 'c', 'd'], { lang: 'en', n: 1 }), analyzed('2', ['a'], { lang: 'de', n: 1 })]);
    expect(index.forward(index.getDocument('1')!.docId)!.length).toBe(3);
    expect(index.docLengths[index.getDocument('1')!.docId]).toBe(4);
    expect(index.filter('lang', 'en')!.toArray()).toEqual([index.getDocument('1')!.docId]);
    expect(index.filter('n', 1)!.size).toBe(2);
    expect(index.filter('lang', 'fr')).toBeUndefined();
  });

  it('does not let an uncommitted write show through', async () => {
    store = freshStore();
    const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 100 });
    const pending = index.upsert([analyzed('1', ['a'])]);
    expect(index.liveCount).toBe(0);
    expect(index.getDocument('1')).toBeUndefined();
    await pending;
    expect(index.liveCount).toBe(1);
  });

  it('stores long or odd metadata but only indexes filterable values', async () => {
    store = freshStore();
    const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 100 });
    const metadata = { lang: 'x'.repeat(3000), ['f'.repeat(300)]: 'v', 'a\u0000b': 'c', ok: 'v\u0000w' };
    await index.upsert([analyzed('1', ['a'], metadata)]);
    expect(index.getDocument('1')!.metadata).toEqual(metadata);
    expect(index.filter('ok', 'v\u0000w')!.size).toBe(1);
    expect(index.filter('lang', 'x'.repeat(3000))).toBeUndefined();
    const reopened = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 100 });
    expect(reopened.filter('ok', 'v\u0000w')!.size).toBe(1);
  });

  it('serves the old version of a document while its replacement commits', async () => {
    store = freshStore();
    const index = openCollectionIndex('t', store.collectionDbs('t'), { maxForwardTokens: 100 });
    await index.upsert([analyzed('r', ['a'])]);
    for (let i = 0; i < 20; i++) {
      const pending = index.upsert([analyzed('r', ['b', String(i)])]);
      expect(index.getDocument('r')).toBeDefined();
      await pending;
      expect(index.getDocument('r')!.text).toBe(`b ${i}`);
    }
  });
});

