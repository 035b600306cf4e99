/**
 * Reopening a data directory: an app closed and built again on the same directory serves the
 * same collections, documents and search results (ids and scores, bit for bit), and keeps taking
 * writes; a directory written by another format version is refused with INDEX_INCOMPATIBLE and
 * left as it was. Real LMDB in a temporary directory per test, no mocks.
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { FORMAT_VERSION } from '../../src/index/codec.ts';
import type { DocumentInput } from '../../src/types.ts';
import { makeCorpus, testConfig, tmpDir } from '../helpers/index.ts';

const STORE_FILE = 'r3serve.mdb';

let dir: { dir: string; cleanup(): void } | undefined;
let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
  dir?.cleanup();
  dir = undefined;
});

async function reopen(): Promise<FastifyInstance> {
  await app?.close();
  app = await buildApp(testConfig(dir!.dir));
  return app;
}

async function ok(res: { statusCode: number; body: string; json(): any }): Promise<any> {
  expect(res.statusCode, res.body).toBeLessThan(300);
  return res.statusCode === 204 ? undefined : res.json();
}

async function ingest(a: FastifyInstance, documents: DocumentInput[], collection?: string): Promise<void> {
  for (let i = 0; i < documents.length; i += 500) {
    await ok(await a.inject({ method: 'POST', url: '/documents', payload: { collection, documents: documents.slice(i, i + 500) } }));
  }
}

const QUERIES = ['cell protein', 'river mountain city', 'football coach season league', 'king queen empire', 'bank money', 'zzzz unknownword', 'heron'];

/** Everything a client can observe about the data: collections, every document, search results. */
async function snapshot(a: FastifyInstance, ids: string[], withOther = true): Promise<Record<string, unknown>> {
  const collections = await ok(await a.inject({ method: 'GET', url: '/collections' }));
  // Whether postings are checkpointed yet is bookkeeping (a clean close takes one), not content.
  for (const c of (collections as { collections: Array<Record<string, unknown>> }).collections) delete c.uncheckpointed;
  const documents: Record<string, unknown> = {};
  for (const id of ids) {
    const res = await a.inject({ method: 'GET', url: `/documents/${id}` });
    documents[id] = res.statusCode === 200 ? res.json() : res.json().code;
  }
  const other: Record<string, unknown> = {};
  for (const id of withOther ? ['o1', 'o2', 'o3'] : []) {
    const res = await a.inject({ method: 'GET', url: `/documents/${id}?collection=other` });
    other[id] = res.statusCode === 200 ? res.json() : res.json().code;
  }
  const searches: unknown[] = [];
  for (const mode of ['lexical', 'beta']) {
    searches.push(
      (await ok(await a.inject({ method: 'POST', url: '/search', payload: { queries: QUERIES, k: 20, mode, explain: true } }))).results.map(
        (r: { hits: unknown[] }) => r.hits,
      ),
    );
    searches.push((await ok(await a.inject({ method: 'POST', url: '/search', payload: { query: 'cell gene', k: 50, mode, filter: { group: 1 } } }))).hits);
  }
  if (withOther) searches.push((await ok(await a.inject({ method: 'POST', url: '/search', payload: { collection: 'other', query: 'walking walked', mode: 'lexical' } }))).hits);
  return { collections, documents, other, searches };
}

describe('reopening a data directory', () => {
  it('serves the same documents and search results (ids and scores) after close and reopen', async () => {
    dir = tmpDir();
    let a = await reopen();
    // A second collection with other options: no stemming, no parametric retriever.
    await ok(await a.inject({ method: 'PUT', url: '/collections/other', payload: { analyzer: { stem: false }, retriever: { kind: 'bm25' } } }));
    const corpus = makeCorpus(1200, 31);
    await ingest(a, corpus);
    // Replacements, deletes and a streamed load: tombstones and counters must survive too.
    await ingest(a, [
      { id: 'd5', text: 'heron wading in the river', metadata: { group: 1 } },
      { id: 'd6', title: 'Replaced', text: 'cell cell cell gene', metadata: { group: 1, even: true } },
    ]);
    await ok(await a.inject({ method: 'POST', url: '/documents/delete', payload: { ids: ['d7', 'd8', 'd9', 'd1000'] } }));
    await ok(await a.inject({ method: 'DELETE', url: '/documents/d10' }));
    const nd = [
      { id: 'o1', text: 'walking the dog' },
      { id: 'o2', text: 'she walked home', metadata: { lang: 'en' } },
      { id: 'o3', text: 'walking walked walks' },
    ];
    await ok(await a.inject({ method: 'POST', url: '/documents?collection=other', payload: nd.map((d) => JSON.stringify(d)).join('\n'), headers: { 'content-type': 'application/x-ndjson' } }));

    const ids = ['d0', 'd1', 'd5', 'd6', 'd7', 'd9', 'd10', 'd11', 'd999', 'd1000', 'd1199', 'missing'];
    const before = await snapshot(a, ids);
    const info = (before.collections as { collections: Array<{ name: string; documents: number; terms: number }> }).collections;
    expect(info.find((c) => c.name === 'default')!.documents).toBe(1200 - 5);
    expect(info.find((c) => c.name === 'other')).toMatchObject({ documents: 3, analyzer: { stem: false }, retriever: { kind: 'bm25' } });
    expect((before.documents as Record<string, unknown>).d7).toBe('DOCUMENT_NOT_FOUND');

    expect((before.searches as unknown[][])[0].every((hits) => Array.isArray(hits))).toBe(true);
    expect(((before.searches as unknown[][])[0][0] as unknown[]).length).toBe(20);

    a = await reopen();
    const after = await snapshot(a, ids);
    expect(after).toEqual(before);

    // The reopened directory keeps taking writes, and they survive the next reopen too.
    await ingest(a, [{ id: 'd7', text: 'egret and heron' }, { id: 'new1', text: 'heron colony' }]);
    await ok(await a.inject({ method: 'DELETE', url: '/documents/d5' }));
    const heron = (await ok(await a.inject({ method: 'POST', url: '/search', payload: { query: 'heron', mode: 'lexical' } }))).hits.map((h: { id: string }) => h.id);
    expect([...heron].sort()).toEqual(['d7', 'new1']);
    const again = await snapshot(a, [...ids, 'new1']);

    a = await reopen();
    expect(await snapshot(a, [...ids, 'new1'])).toEqual(again);
    const counts = (await ok(await a.inject({ method: 'GET', url: '/collections/default' }))).documents;
    expect(counts).toBe(1200 - 5 + 2 - 1);
  });

  it('reopens an empty data directory and one whose only collection was dropped', async () => {
    dir = tmpDir();
    let a = await reopen();
    const empty = await snapshot(a, ['d0'], false);
    a = await reopen();
    expect(await snapshot(a, ['d0'], false)).toEqual(empty);
    await ok(await a.inject({ method: 'PUT', url: '/collections/gone', payload: {} }));
    await ingest(a, [{ id: 'g1', text: 'ephemeral' }], 'gone');
    await ok(await a.inject({ method: 'DELETE', url: '/collections/gone' }));
    a = await reopen();
    const list = (await ok(await a.inject({ method: 'GET', url: '/collections' }))).collections.map((c: { name: string }) => c.name);
    expect(list).toEqual(['default']);
    expect((await a.inject({ method: 'GET', url: '/collections/gone' })).json().code).toBe('COLLECTION_NOT_FOUND');
  });

  it('keeps a collection\'s creation options when the server defaults change', async () => {
    dir = tmpDir();
    const a = await reopen();
    await ingest(a, [{ id: 'w1', text: 'walking the dog' }]);
    await a.close();
    // Reopen with stemming off by default: the existing collection still stems, as created.
    app = await buildApp(testConfig(dir.dir, { analysis: { stem: false } }));
    expect((await ok(await app.inject({ method: 'GET', url: '/collections/default' }))).analyzer).toMatchObject({ stem: true });
    const hits = (await ok(await app.inject({ method: 'POST', url: '/search', payload: { query: 'walked', mode: 'lexical' } }))).hits;
    expect(hits.map((h: { id: string }) => h.id)).toEqual(['w1']);
  });
});

describe('format version', () => {
  function readFormatVersion(path: string): unknown {
    const root = open({ path });
    try {
      return root.get('formatVersion');
    } finally {
      void root.close();
    }
  }

  async function writeFormatVersion(path: string, version: number): Promise<void> {
    const root = open({ path });
    await root.put('formatVersion', version);
    await root.close();
  }

  it('refuses a data directory of another formatVersion with INDEX_INCOMPATIBLE, leaving it untouched', async () => {
    dir = tmpDir();
    const a = await reopen();
    await ingest(a, makeCorpus(50, 3));
    await a.close();
    app = undefined;
    const path = join(dir.dir, STORE_FILE);
    expect(readFormatVersion(path)).toBe(FORMAT_VERSION);

    await writeFormatVersion(path, 999);
    const err = await buildApp(testConfig(dir.dir)).then(
      (built) => {
        app = built;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'INDEX_INCOMPATIBLE', status: 500 });
    expect((err as { details?: Record<string, unknown> }).details).toMatchObject({ found: 999, expected: FORMAT_VERSION });
    // The refused directory was not rewritten.
    expect(readFormatVersion(path)).toBe(999);

    // Put the right version back: everything written before is still there.
    await writeFormatVersion(path, FORMAT_VERSION);
    const b = await reopen();
    expect((await ok(await b.inject({ method: 'GET', url: '/collections/default' }))).documents).toBe(50);
    expect((await b.inject({ method: 'GET', url: '/documents/d49' })).statusCode).toBe(200);
  });
});
