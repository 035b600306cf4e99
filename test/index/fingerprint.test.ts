/**
 * indexFingerprint: stable over reads and reopen, moved by any write to the index databases,
 * blind to the retriever state database (training never changes it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openCollectionIndex, type AnalyzedDocument } from '../../src/index/collection-index.ts';
import { indexFingerprint } from '../../src/index/fingerprint.ts';
import { openStore, type Store } from '../../src/index/store.ts';
import { tmpDir } from '../helpers/index.ts';

function analyzed(id: string, terms: string[]): AnalyzedDocument {
  return { input: { id, text: terms.join(' '), metadata: { lang: 'en' } }, terms, surfaces: terms, stops: new Uint8Array(terms.length) };
}

describe('indexFingerprint', () => {
  const tmp = tmpDir();
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
    tmp.cleanup();
  });

  it('changes with the index only', async () => {
    const options = { dataDir: tmp.dir, mapSizeBytes: 64 * 1024 * 1024 };
    store = openStore(options);
    const dbs = store.collectionDbs('c');
    const empty = indexFingerprint(dbs);
    expect(empty).toMatchObject({ entries: 0, bytes: 0 });
    const index = openCollectionIndex('c', dbs, { maxForwardTokens: 64 });
    await index.upsert([analyzed('a', ['x', 'y', 'x']), analyzed('b', ['y', 'z'])]);
    const one = indexFingerprint(dbs);
    expect(one.sha256).not.toBe(empty.sha256);
    expect(one.dbs.terms.entries).toBe(3);
    expect(one.dbs.ids.entries).toBe(2);
    expect(indexFingerprint(dbs)).toEqual(one);

    await dbs.state.put(['retriever', 'version', 0], { anything: 1 });
    expect(indexFingerprint(dbs)).toEqual(one);

    await store.close();
    store = openStore(options);
    expect(indexFingerprint(store.collectionDbs('c'))).toEqual(one);

    const reopened = openCollectionIndex('c', store.collectionDbs('c'), { maxForwardTokens: 64 });
    await reopened.upsert([analyzed('a', ['x'])]);
    expect(indexFingerprint(store.collectionDbs('c')).sha256).not.toBe(one.sha256);
  });
});
