/**
 * The HTTP API end to end through `app.inject()`: collections, document upserts and deletes,
 * search (filters, batches, explain), NDJSON streaming ingest, and the problem+json answer of
 * every bad-input class. Real LMDB in a temporary directory, one analysis worker.
 *
 * One app serves the whole file (built in `beforeAll`, closed and removed in `afterAll`), and
 * tests keep apart through their own collections and id prefixes: every analyzer the main thread
 * creates (one per app and per collection) currently costs a geometrically growing wink model
 * load (see the bug note in `src/analysis/wink.ts` reported with this file), so an app per test
 * would not fit the time budget.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigOverrides } from '../../src/config/load.ts';
import type { DocumentInput } from '../../src/types.ts';
import { buildTestApp, makeCorpus, type TestApp } from '../helpers/index.ts';

/** Small limits so that every limit is reachable with small requests. */
const LIMITS: ConfigOverrides = {
  server: { bodyLimitBytes: 64 * 1024 },
  limits: { maxDocumentsPerBatch: 100, maxQueriesPerRequest: 5, maxQueryChars: 100 },
};
const MAX_BATCH = 100;

let current: TestApp;
let app: FastifyInstance;

beforeAll(async () => {
  current = await buildTestApp(LIMITS);
  app = current.app;
});

afterAll(async () => {
  await current?.close();
});

/** Asserts an RFC 9457 problem with our stable `code` (never the message text). */
function expectProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, any> {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(body).toMatchObject({ status, code });
  expect(typeof body.type).toBe('string');
  expect(typeof body.title).toBe('string');
  return body;
}

/** Upserts in batches of at most MAX_BATCH; returns the summed write results. */
async function ingest(documents: DocumentInput[], collection?: string): Promise<Record<string, any>> {
  const total = { collection: collection ?? 'default', count: 0, inserted: 0, replaced: 0 };
  for (let i = 0; i < documents.length; i += MAX_BATCH) {
    const batch = documents.slice(i, i + MAX_BATCH);
    const res = await app.inject({ method: 'POST', url: '/documents', payload: collection ? { collection, documents: batch } : { documents: batch } });
    expect(res.statusCode, res.body).toBe(200);
    const r = res.json();
    expect(r.collection).toBe(total.collection);
    total.count += r.count;
    total.inserted += r.inserted;
    total.replaced += r.replaced;
  }
  return total;
}

async function search(body: Record<string, unknown>): Promise<Record<string, any>> {
  const res = await app.inject({ method: 'POST', url: '/search', payload: { mode: 'lexical', ...body } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

async function hitIds(query: string, extra: Record<string, unknown> = {}): Promise<string[]> {
  return (await search({ query, k: 1000, ...extra })).hits.map((h: { id: string }) => h.id);
}

async function documentCount(name = 'default'): Promise<number> {
  const res = await app.inject({ method: 'GET', url: `/collections/${name}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().documents;
}

async function createCollection(name: string, body: Record<string, unknown> = {}): Promise<void> {
  const res = await app.inject({ method: 'PUT', url: `/collections/${name}`, payload: body });
  expect(res.statusCode, res.body).toBe(201);
}

function ndjson(docs: unknown[]): string {
  return docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
}

const NDJSON = { 'content-type': 'application/x-ndjson' };

describe('collections', () => {
  it('creates (201, then 200 idempotently), lists, describes and drops a collection', async () => {
    const created = await app.inject({ method: 'PUT', url: '/collections/books', payload: {} });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'books', documents: 0, analyzer: { name: 'wink', stem: true } });

    const again = await app.inject({ method: 'PUT', url: '/collections/books', payload: {} });
    expect(again.statusCode).toBe(200);
    expect(again.json().createdAt).toBe(created.json().createdAt);
    // Re-creating with other options is a conflict, not a silent change.
    expectProblem(await app.inject({ method: 'PUT', url: '/collections/books', payload: { analyzer: { stem: false } } }), 409, 'COLLECTION_EXISTS');

    const list = await app.inject({ method: 'GET', url: '/collections' });
    expect(list.statusCode).toBe(200);
    const names = list.json().collections.map((c: { name: string }) => c.name);
    expect(names).toContain('books');
    expect(names).toContain('default');
    expect([...names].sort()).toEqual(names);

    const one = await app.inject({ method: 'GET', url: '/collections/books' });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'books', documents: 0, createdAt: created.json().createdAt });

    const dropped = await app.inject({ method: 'DELETE', url: '/collections/books' });
    expect(dropped.statusCode).toBe(204);
    expectProblem(await app.inject({ method: 'GET', url: '/collections/books' }), 404, 'COLLECTION_NOT_FOUND');
    expectProblem(await app.inject({ method: 'DELETE', url: '/collections/books' }), 404, 'COLLECTION_NOT_FOUND');
    const after = await app.inject({ method: 'GET', url: '/collections' });
    expect(after.json().collections.map((c: { name: string }) => c.name)).not.toContain('books');
  });

  // The options are optional (DESIGN §4): a PUT without a body creates a collection with the defaults.
  it('creates a collection from a PUT without a body', async () => {
    const res = await app.inject({ method: 'PUT', url: '/collections/nobody' });
    expect(res.statusCode, res.body).toBe(201);
  });

  it('rejects an invalid collection name with a 400 problem', async () => {
    for (const name of ['bad.name', 'x'.repeat(65), 'sp%20ace', 'caf%C3%A9']) {
      const res = await app.inject({ method: 'PUT', url: `/collections/${name}`, payload: {} });
      expect(res.statusCode, name).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    const res = await app.inject({ method: 'POST', url: '/search', payload: { collection: 'bad.name', query: 'cell' } });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  // A bad name is a bad name wherever it appears (path, body or query): COLLECTION_NAME_INVALID.
  it('rejects an invalid collection name with code COLLECTION_NAME_INVALID', async () => {
    expectProblem(await app.inject({ method: 'PUT', url: '/collections/bad.name', payload: {} }), 400, 'COLLECTION_NAME_INVALID');
  });

  it('answers 404 COLLECTION_NOT_FOUND for an unknown collection everywhere', async () => {
    const requests: InjectOptions[] = [
      { method: 'GET', url: '/collections/nope' },
      { method: 'DELETE', url: '/collections/nope' },
      { method: 'POST', url: '/collections/nope/checkpoint' },
      { method: 'POST', url: '/search', payload: { collection: 'nope', query: 'cell' } },
      { method: 'POST', url: '/documents', payload: { collection: 'nope', documents: [{ id: 'a', text: 'cell' }] } },
      { method: 'POST', url: '/documents?collection=nope', payload: { documents: [{ id: 'a', text: 'cell' }] } },
      { method: 'POST', url: '/documents?collection=nope', payload: ndjson([{ id: 'a', text: 'cell' }]), headers: NDJSON },
      { method: 'GET', url: '/documents/a?collection=nope' },
      { method: 'DELETE', url: '/documents/a?collection=nope' },
      { method: 'POST', url: '/documents/delete', payload: { collection: 'nope', ids: ['a'] } },
    ];
    for (const r of requests) expectProblem(await app.inject(r), 404, 'COLLECTION_NOT_FOUND');
  });

  it('checkpoints postings on request: uncheckpointed documents drop to 0, search unchanged', async () => {
    await createCollection('ckpt');
    await ingest([{ id: 'c1', text: 'otter whiskers' }, { id: 'c2', text: 'otter tail' }], 'ckpt');
    const before = (await app.inject({ method: 'GET', url: '/collections/ckpt' })).json();
    expect(before).toMatchObject({ documents: 2, uncheckpointed: 2 });
    const res = await app.inject({ method: 'POST', url: '/collections/ckpt/checkpoint' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ name: 'ckpt', documents: 2, uncheckpointed: 0 });
    expect(await hitIds('otter whiskers', { collection: 'ckpt' })).toEqual(['c1', 'c2']);
  });

  it('keeps collections apart and empties a dropped-then-recreated collection', async () => {
    await createCollection('zoo');
    await ingest([{ id: 'z1', text: 'zebra stripes' }], 'zoo');
    await ingest([{ id: 'zoo-d1', text: 'lion mane' }]);
    expect(await hitIds('zebra')).toEqual([]);
    expect(await hitIds('zebra', { collection: 'zoo' })).toEqual(['z1']);
    expect(await hitIds('lion', { collection: 'zoo' })).toEqual([]);
    expectProblem(await app.inject({ method: 'GET', url: '/documents/z1' }), 404, 'DOCUMENT_NOT_FOUND');
    expect(await documentCount('zoo')).toBe(1);

    expect((await app.inject({ method: 'DELETE', url: '/collections/zoo' })).statusCode).toBe(204);
    await createCollection('zoo');
    expect(await documentCount('zoo')).toBe(0);
    expectProblem(await app.inject({ method: 'GET', url: '/documents/z1?collection=zoo' }), 404, 'DOCUMENT_NOT_FOUND');
    expect(await hitIds('zebra', { collection: 'zoo' })).toEqual([]);
    const r = await ingest([{ id: 'z2', text: 'giraffe neck' }, { id: 'z1', text: 'okapi' }], 'zoo');
    expect(r).toMatchObject({ inserted: 2, replaced: 0 });
    expect(await hitIds('giraffe zebra', { collection: 'zoo' })).toEqual(['z2']);
    expect(await documentCount('zoo')).toBe(2);
    // The default collection was untouched.
    expect(await hitIds('lion')).toEqual(['zoo-d1']);
  });
});

describe('documents', () => {
  beforeAll(async () => {
    await createCollection('docs');
  });
  const inDocs = '?collection=docs';

  it('stores documents and returns them by id', async () => {
    const before = await documentCount('docs');
    const r = await ingest(
      [
        { id: 'a', title: 'Cats', text: 'Cats are small furry animals that purr.', metadata: { lang: 'en', n: 1, tags: ['x'] } },
        { id: 'b', text: 'Dogs bark loudly at cats.' },
      ],
      'docs',
    );
    expect(r).toMatchObject({ collection: 'docs', count: 2, inserted: 2, replaced: 0 });
    const a = await app.inject({ method: 'GET', url: `/documents/a${inDocs}` });
    expect(a.statusCode).toBe(200);
    expect(a.json()).toEqual({ id: 'a', title: 'Cats', text: 'Cats are small furry animals that purr.', metadata: { lang: 'en', n: 1, tags: ['x'] } });
    expect((await app.inject({ method: 'GET', url: `/documents/b${inDocs}` })).json()).toEqual({ id: 'b', text: 'Dogs bark loudly at cats.' });
    expectProblem(await app.inject({ method: 'GET', url: `/documents/missing${inDocs}` }), 404, 'DOCUMENT_NOT_FOUND');
    // Ids are opaque strings: URL-encoded characters round-trip.
    await ingest([{ id: 'with space/and?query', text: 'escaped identifier' }], 'docs');
    const odd = await app.inject({ method: 'GET', url: `/documents/${encodeURIComponent('with space/and?query')}${inDocs}` });
    expect(odd.statusCode, odd.body).toBe(200);
    expect(odd.json().id).toBe('with space/and?query');
    expect(await documentCount('docs')).toBe(before + 3);
  });

  it('upsert replaces the old version: new text found, old text gone, counts unchanged', async () => {
    await ingest(
      [
        { id: 'x', title: 'Old', text: 'zebra savannah herd', metadata: { v: 1 } },
        { id: 'y', text: 'lion hunting zebra' },
      ],
      'docs',
    );
    expect(await hitIds('savannah', { collection: 'docs' })).toEqual(['x']);
    const before = await documentCount('docs');

    const r = await ingest([{ id: 'x', text: 'penguin glacier colony', metadata: { v: 2 } }], 'docs');
    expect(r).toMatchObject({ count: 1, inserted: 0, replaced: 1 });
    expect(await hitIds('savannah', { collection: 'docs' })).toEqual([]);
    expect(await hitIds('zebra', { collection: 'docs' })).toEqual(['y']);
    expect(await hitIds('glacier', { collection: 'docs' })).toEqual(['x']);
    // The new version replaces the old one whole: no title, new metadata.
    expect((await app.inject({ method: 'GET', url: `/documents/x${inDocs}` })).json()).toEqual({ id: 'x', text: 'penguin glacier colony', metadata: { v: 2 } });
    expect(await documentCount('docs')).toBe(before);

    // Many replacements of one id, in one batch each and mixed with inserts, keep one live document.
    for (let v = 3; v <= 6; v++) {
      const w = await ingest([{ id: 'x', text: `walrus${'s'.repeat(v)} tusk` }, { id: `x-new-${v}`, text: 'manatee' }], 'docs');
      expect(w).toMatchObject({ inserted: 1, replaced: 1 });
    }
    expect(await documentCount('docs')).toBe(before + 4);
    expect(await hitIds('tusk', { collection: 'docs' })).toEqual(['x']);
    expect(await hitIds('penguin glacier', { collection: 'docs' })).toEqual([]);
    const hit = (await search({ query: 'tusk', collection: 'docs' })).hits[0];
    expect(hit.text).toBe(`walrus${'s'.repeat(6)} tusk`);
    expect(hit.metadata).toBeUndefined();
  });

  it('deletes one document and many documents', async () => {
    const corpus = makeCorpus(20, 7, 'del');
    await ingest(corpus, 'docs');
    const start = await documentCount('docs');

    const one = await app.inject({ method: 'DELETE', url: `/documents/del3${inDocs}` });
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toEqual({ deleted: 1 });
    expectProblem(await app.inject({ method: 'GET', url: `/documents/del3${inDocs}` }), 404, 'DOCUMENT_NOT_FOUND');
    expectProblem(await app.inject({ method: 'DELETE', url: `/documents/del3${inDocs}` }), 404, 'DOCUMENT_NOT_FOUND');
    expect(await documentCount('docs')).toBe(start - 1);

    const many = await app.inject({ method: 'POST', url: '/documents/delete', payload: { collection: 'docs', ids: ['del4', 'del5', 'del3', 'nope', 'del4'] } });
    expect(many.statusCode, many.body).toBe(200);
    expect(many.json().deleted).toBe(2);
    expect([...many.json().ids].sort()).toEqual(['del4', 'del5']);
    expect(await documentCount('docs')).toBe(start - 3);
    const none = await app.inject({ method: 'POST', url: '/documents/delete', payload: { collection: 'docs', ids: [] } });
    expect(none.json()).toEqual({ deleted: 0, ids: [] });

    // Deleted documents never come back from search; the others still do.
    const ids = new Set<string>();
    for (const q of ['cell protein gene cancer tumor immune virus', 'infection patient treatment drug dose risk blood heart brain']) {
      for (const id of await hitIds(q, { collection: 'docs' })) ids.add(id);
    }
    for (const gone of ['del3', 'del4', 'del5']) expect(ids.has(gone)).toBe(false);
    expect(ids.has('del0')).toBe(true);

    // Re-inserting a deleted id is an insert, not a replacement.
    const again = await ingest([{ id: 'del3', text: 'narwhal' }], 'docs');
    expect(again).toMatchObject({ inserted: 1, replaced: 0 });
    expect(await hitIds('narwhal', { collection: 'docs' })).toEqual(['del3']);
    expect(await documentCount('docs')).toBe(start - 2);
  });

  it('rejects duplicate ids in one batch and writes nothing of that batch', async () => {
    await ingest([{ id: 'keep', text: 'original words' }], 'docs');
    const before = await documentCount('docs');
    const res = await app.inject({
      method: 'POST',
      url: '/documents',
      payload: { collection: 'docs', documents: [{ id: 'p', text: 'okapi' }, { id: 'keep', text: 'overwritten' }, { id: 'p', text: 'okapi again' }] },
    });
    expectProblem(res, 400, 'DOCUMENTS_DUPLICATE_ID');
    expectProblem(await app.inject({ method: 'GET', url: `/documents/p${inDocs}` }), 404, 'DOCUMENT_NOT_FOUND');
    expect((await app.inject({ method: 'GET', url: `/documents/keep${inDocs}` })).json().text).toBe('original words');
    expect(await hitIds('okapi overwritten', { collection: 'docs' })).toEqual([]);
    expect(await documentCount('docs')).toBe(before);
  });

  it('rejects too many documents (and ids) per batch with 413 DOCUMENTS_TOO_MANY, writing nothing', async () => {
    const before = await documentCount('docs');
    const docs = makeCorpus(MAX_BATCH + 1, 2, 'many');
    expectProblem(await app.inject({ method: 'POST', url: '/documents', payload: { collection: 'docs', documents: docs } }), 413, 'DOCUMENTS_TOO_MANY');
    expect(await documentCount('docs')).toBe(before);
    expectProblem(await app.inject({ method: 'GET', url: `/documents/many0${inDocs}` }), 404, 'DOCUMENT_NOT_FOUND');
    // Exactly at the limit is fine.
    await ingest(docs.slice(0, MAX_BATCH), 'docs');
    expect(await documentCount('docs')).toBe(before + MAX_BATCH);
    const ids = docs.map((d) => d.id);
    expectProblem(await app.inject({ method: 'POST', url: '/documents/delete', payload: { collection: 'docs', ids } }), 413, 'DOCUMENTS_TOO_MANY');
    expect(await documentCount('docs')).toBe(before + MAX_BATCH);
  });
});

describe('search', () => {
  const corpus = makeCorpus(200, 11, 's').map((d, i) => ({ ...d, metadata: { ...d.metadata, lang: i % 4 === 0 ? 'fr' : 'en' } }));
  const inSearch = { collection: 'search' };

  beforeAll(async () => {
    await createCollection('search');
    await ingest(corpus, 'search');
  });

  it('ranks lexical and beta hits best first and honours k', async () => {
    for (const mode of ['lexical', 'beta']) {
      const r = await search({ ...inSearch, query: 'cell protein', k: 7, mode });
      expect(r.mode).toBe(mode);
      expect(r.retrieverVersion).toBeNull();
      expect(r.hits.length).toBe(7);
      const scores = r.hits.map((h: { score: number }) => h.score);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
      for (const h of r.hits) {
        expect(h.score).toBeGreaterThan(0);
        expect(h.firstStageScore).toBe(h.score);
        expect(h.text).toMatch(/cell|protein/);
        expect(h.title).toMatch(/^Title /);
      }
      expect(r.timings.totalMs).toBeGreaterThanOrEqual(0);
    }
    // Beta mode scores binary matches: a document holding both words scores the sum of two idfs.
    const beta = await search({ ...inSearch, query: 'cell protein', k: 200, mode: 'beta' });
    const both = beta.hits.filter((h: { text: string }) => /\bcell\b/.test(h.text) && /\bprotein\b/.test(h.text));
    expect(new Set(both.map((h: { score: number }) => h.score.toFixed(5))).size).toBe(1);
    // Without documents: ids and scores only.
    const bare = await search({ ...inSearch, query: 'cell', k: 3, includeDocuments: false });
    expect(bare.hits.length).toBe(3);
    for (const h of bare.hits) expect(h.text).toBeUndefined();
    // k above the number of matches returns every match; unknown words match nothing.
    const holdingCell = corpus.filter((d) => /\bcell\b/.test(`${d.title}\n${d.text}`)).length;
    expect((await search({ ...inSearch, query: 'cell', k: 1000 })).hits.length).toBe(holdingCell);
    expect((await search({ ...inSearch, query: 'xylophonist' })).hits).toEqual([]);
  });

  it('answers 400 MODE_UNSUPPORTED for late mode without a parametric retriever', async () => {
    expectProblem(await app.inject({ method: 'POST', url: '/search', payload: { ...inSearch, query: 'cell', mode: 'late' } }), 400, 'MODE_UNSUPPORTED');
  });

  it('answers a batch of queries like the same queries one by one', async () => {
    const queries = ['cell', 'river mountain', 'football coach season', 'xylophonist', 'Cell!'];
    const batch = await search({ ...inSearch, queries, k: 5 });
    expect(batch.results).toHaveLength(queries.length);
    for (let i = 0; i < queries.length; i++) {
      const single = await search({ ...inSearch, query: queries[i], k: 5 });
      const pairs = (r: Record<string, any>) => (r.hits as Array<{ id: string; score: number }>).map((h) => [h.id, h.score]);
      expect(pairs(batch.results[i])).toEqual(pairs(single));
      expect(batch.results[i].mode).toBe('lexical');
    }
    expect(batch.results[0].hits.length).toBeGreaterThan(0);
  });

  it('explains each hit with its matched terms and contributions that sum to the score', async () => {
    for (const mode of ['lexical', 'beta']) {
      const r = await search({ ...inSearch, query: 'cell proteins cancer', k: 5, explain: true, mode });
      expect(r.hits.length).toBeGreaterThan(0);
      for (const h of r.hits) {
        const matched = h.explain.matched as Array<{ term: string; contribution: number; tf: number; queryWeight: number; expansion: boolean; formula: string }>;
        expect(matched.length).toBeGreaterThan(0);
        for (const m of matched) {
          expect(['cell', 'protein', 'cancer']).toContain(m.term);
          expect(m.tf).toBeGreaterThanOrEqual(1);
          expect(m.queryWeight).toBeGreaterThan(0);
          expect(m.contribution).toBeGreaterThan(0);
          expect(m.expansion).toBe(false);
          expect(typeof m.formula).toBe('string');
        }
        // Only terms the document really holds are listed.
        for (const m of matched) expect(h.text.toLowerCase()).toContain(m.term);
        expect(matched.reduce((s, m) => s + m.contribution, 0)).toBeCloseTo(h.score, 4);
      }
    }
    const plain = await search({ ...inSearch, query: 'cell', k: 2 });
    for (const h of plain.hits) expect(h.explain).toBeUndefined();
  });

  it('applies metadata equality filters (numbers, booleans, strings, conjunctions)', async () => {
    const byId = new Map(corpus.map((d) => [d.id, d.metadata]));
    const query = 'cell protein gene cancer tumor immune virus infection patient';
    const all = await hitIds(query, inSearch);
    expect(all.length).toBeGreaterThan(50);
    const cases: Array<[Record<string, unknown>, (m: Record<string, unknown>) => boolean]> = [
      [{ group: 1 }, (m) => m.group === 1],
      [{ even: true }, (m) => m.even === true],
      [{ lang: 'fr' }, (m) => m.lang === 'fr'],
      [{ group: 2, even: false, lang: 'en' }, (m) => m.group === 2 && m.even === false && m.lang === 'en'],
    ];
    for (const [filter, accept] of cases) {
      const got = await hitIds(query, { ...inSearch, filter });
      expect(got.length).toBeGreaterThan(0);
      for (const id of got) expect(accept(byId.get(id)!), `${id} ${JSON.stringify(filter)}`).toBe(true);
      // Filtering only removes: exactly the accepted subset of the unfiltered matches.
      expect([...got].sort()).toEqual(all.filter((id) => accept(byId.get(id)!)).sort());
    }
    // Types matter: the number 1 is not the string "1" nor the boolean true.
    expect(await hitIds(query, { ...inSearch, filter: { group: '1' } })).toEqual([]);
    expect(await hitIds(query, { ...inSearch, filter: { group: 7 } })).toEqual([]);
    expect(await hitIds(query, { ...inSearch, filter: { missing: 'x' } })).toEqual([]);
    // An empty filter filters nothing.
    expect((await hitIds(query, { ...inSearch, filter: {} })).sort()).toEqual([...all].sort());
    // A replaced document is filtered by its new metadata only.
    await ingest([{ id: 's1', text: 'cell', metadata: { group: 9 } }], 'search');
    expect(await hitIds('cell', { ...inSearch, filter: { group: 9 } })).toEqual(['s1']);
    expect(await hitIds(query, { ...inSearch, filter: { group: 1 } })).not.toContain('s1');
  });
});

describe('NDJSON streaming ingest', () => {
  beforeAll(async () => {
    await createCollection('stream');
  });

  it('ingests ~3,000 documents in one streamed request', async () => {
    const docs = makeCorpus(3000, 21, 'n');
    docs[2999] = { id: 'n2999', text: 'aardvark burrow at dusk', metadata: { last: true } };
    const res = await app.inject({ method: 'POST', url: '/documents?collection=stream', payload: ndjson(docs), headers: NDJSON });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ collection: 'stream', count: 3000, inserted: 3000, replaced: 0 });
    expect(await documentCount('stream')).toBe(3000);
    expect((await app.inject({ method: 'GET', url: '/documents/n1234?collection=stream' })).json()).toEqual(docs[1234]);
    expect(await hitIds('aardvark', { collection: 'stream' })).toEqual(['n2999']);
    // A second stream over the same ids replaces them.
    const again = await app.inject({ method: 'POST', url: '/documents?collection=stream', payload: ndjson(docs.slice(0, 150)), headers: NDJSON });
    expect(again.json()).toMatchObject({ count: 150, inserted: 0, replaced: 150 });
    expect(await documentCount('stream')).toBe(3000);
  });

  it('streams into the default collection, skipping blank lines and CRLF line ends', async () => {
    const before = await documentCount();
    const body = '\r\n' + JSON.stringify({ id: 'nd-s1', text: 'ocelot' }) + '\r\n\r\n' + JSON.stringify({ id: 'nd-s2', text: 'margay' });
    const res = await app.inject({ method: 'POST', url: '/documents', payload: body, headers: NDJSON });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ collection: 'default', count: 2, inserted: 2 });
    expect((await hitIds('ocelot margay')).sort()).toEqual(['nd-s1', 'nd-s2']);
    expect(await documentCount()).toBe(before + 2);
  });

  it('answers BODY_INVALID on a malformed line and keeps the chunks acknowledged before it', async () => {
    const before = await documentCount('stream');
    const docs = makeCorpus(250, 4, 'm');
    const body = ndjson(docs) + 'not json\n' + ndjson([{ id: 'm-after', text: 'after the bad line' }]);
    const res = await app.inject({ method: 'POST', url: '/documents?collection=stream', payload: body, headers: NDJSON });
    const problem = expectProblem(res, 400, 'BODY_INVALID');
    expect(problem.details).toMatchObject({ line: 251, acknowledged: 2 * MAX_BATCH });
    // Chunks of MAX_BATCH were flushed (and acknowledged in `details`) before the bad line; the
    // partial chunk and everything after it were not written.
    expect(await documentCount('stream')).toBe(before + 2 * MAX_BATCH);
    expect((await app.inject({ method: 'GET', url: '/documents/m199?collection=stream' })).json()).toEqual(docs[199]);
    expectProblem(await app.inject({ method: 'GET', url: '/documents/m200?collection=stream' }), 404, 'DOCUMENT_NOT_FOUND');
    expectProblem(await app.inject({ method: 'GET', url: '/documents/m-after?collection=stream' }), 404, 'DOCUMENT_NOT_FOUND');
    expect((await search({ query: 'cell', collection: 'stream' })).hits.length).toBeGreaterThan(0);
  });

  it('answers DOCUMENT_INVALID / DOCUMENTS_DUPLICATE_ID for bad documents inside a stream', async () => {
    const before = await documentCount('stream');
    const post = (payload: string) => app.inject({ method: 'POST', url: '/documents?collection=stream', payload, headers: NDJSON });
    expectProblem(await post(ndjson([{ id: 'q' }])), 400, 'DOCUMENT_INVALID');
    expectProblem(await post(ndjson([{ id: 1, text: 'x' }])), 400, 'DOCUMENT_INVALID');
    expectProblem(await post(ndjson([{ id: 'q', text: 'x', metadata: 'nope' }])), 400, 'DOCUMENT_INVALID');
    expectProblem(await post(ndjson([[1, 2]])), 400, 'DOCUMENT_INVALID');
    expectProblem(await post(ndjson([{ id: 'u', text: 'one' }, { id: 'u', text: 'two' }])), 400, 'DOCUMENTS_DUPLICATE_ID');
    expect(await documentCount('stream')).toBe(before);
  });

  // NDJSON bodies get the same strict UTF-8 check as JSON bodies.
  it('rejects non-UTF-8 bytes in an NDJSON body with BODY_NOT_UTF8', async () => {
    const body = Buffer.concat([Buffer.from('{"id":"latin1","text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]);
    const res = await app.inject({ method: 'POST', url: '/documents?collection=stream', payload: body, headers: NDJSON });
    expectProblem(res, 400, 'BODY_NOT_UTF8');
  });
});

describe('bad input', () => {
  const json = { 'content-type': 'application/json' };
  const latin1 = Buffer.concat([Buffer.from('{"documents":[{"id":"bad-utf8","text":"caf'), Buffer.from([0xe9]), Buffer.from('"}]}')]);
  const table: Array<[string, InjectOptions, number, string]> = [
    ['malformed JSON (documents)', { method: 'POST', url: '/documents', payload: '{"documents": [', headers: json }, 400, 'BODY_INVALID'],
    ['malformed JSON (search)', { method: 'POST', url: '/search', payload: '{query: cell}', headers: json }, 400, 'BODY_INVALID'],
    ['empty JSON body', { method: 'POST', url: '/search', payload: '', headers: json }, 400, 'BODY_INVALID'],
    ['JSON that is not an object', { method: 'POST', url: '/search', payload: '[1,2]', headers: json }, 400, 'BODY_INVALID'],
    ['query of the wrong type', { method: 'POST', url: '/search', payload: { query: 5 } }, 400, 'BODY_INVALID'],
    ['queries of the wrong type', { method: 'POST', url: '/search', payload: { queries: 'cell' } }, 400, 'BODY_INVALID'],
    ['k as a string', { method: 'POST', url: '/search', payload: { query: 'cell', k: '10' } }, 400, 'BODY_INVALID'],
    ['k = 0', { method: 'POST', url: '/search', payload: { query: 'cell', k: 0 } }, 400, 'BODY_INVALID'],
    ['fractional m', { method: 'POST', url: '/search', payload: { query: 'cell', m: 1.5 } }, 400, 'BODY_INVALID'],
    ['unknown mode', { method: 'POST', url: '/search', payload: { query: 'cell', mode: 'fuzzy' } }, 400, 'BODY_INVALID'],
    ['explain not a boolean', { method: 'POST', url: '/search', payload: { query: 'cell', explain: 'yes' } }, 400, 'BODY_INVALID'],
    ['filter value that is an object', { method: 'POST', url: '/search', payload: { query: 'cell', filter: { group: { $gt: 1 } } } }, 400, 'BODY_INVALID'],
    ['filter value null', { method: 'POST', url: '/search', payload: { query: 'cell', filter: { group: null } } }, 400, 'BODY_INVALID'],
    ['unknown search property', { method: 'POST', url: '/search', payload: { query: 'cell', limit: 3 } }, 400, 'BODY_INVALID'],
    ['documents not an array', { method: 'POST', url: '/documents', payload: { documents: { id: 'a', text: 'x' } } }, 400, 'BODY_INVALID'],
    ['documents missing', { method: 'POST', url: '/documents', payload: { docs: [] } }, 400, 'BODY_INVALID'],
    ['document id a number', { method: 'POST', url: '/documents', payload: { documents: [{ id: 1, text: 'x' }] } }, 400, 'BODY_INVALID'],
    ['document id empty', { method: 'POST', url: '/documents', payload: { documents: [{ id: '', text: 'x' }] } }, 400, 'BODY_INVALID'],
    ['document text missing', { method: 'POST', url: '/documents', payload: { documents: [{ id: 'a' }] } }, 400, 'BODY_INVALID'],
    ['document metadata an array', { method: 'POST', url: '/documents', payload: { documents: [{ id: 'a', text: 'x', metadata: [1] }] } }, 400, 'BODY_INVALID'],
    ['unknown document property', { method: 'POST', url: '/documents', payload: { documents: [{ id: 'a', text: 'x', body: 'y' }] } }, 400, 'BODY_INVALID'],
    ['delete ids not an array', { method: 'POST', url: '/documents/delete', payload: { ids: 'a' } }, 400, 'BODY_INVALID'],
    ['collection options of the wrong type', { method: 'PUT', url: '/collections/c2', payload: { analyzer: { stem: 'yes' } } }, 400, 'BODY_INVALID'],
    ['empty query (punctuation only)', { method: 'POST', url: '/search', payload: { query: '!!!' } }, 400, 'QUERY_EMPTY'],
    ['empty query (empty string)', { method: 'POST', url: '/search', payload: { query: '' } }, 400, 'QUERY_EMPTY'],
    ['one empty query in a batch', { method: 'POST', url: '/search', payload: { queries: ['cell', '  ...  '] } }, 400, 'QUERY_EMPTY'],
    ['neither query nor queries', { method: 'POST', url: '/search', payload: { k: 3 } }, 400, 'QUERY_MISSING'],
    ['both query and queries', { method: 'POST', url: '/search', payload: { query: 'cell', queries: ['cell'] } }, 400, 'QUERY_MISSING'],
    ['query too long', { method: 'POST', url: '/search', payload: { query: 'cell '.repeat(100) } }, 400, 'QUERY_TOO_LONG'],
    ['too many queries', { method: 'POST', url: '/search', payload: { queries: ['a', 'b', 'c', 'd', 'e', 'f'] } }, 413, 'QUERIES_TOO_MANY'],
    ['late mode', { method: 'POST', url: '/search', payload: { query: 'cell', mode: 'late' } }, 400, 'MODE_UNSUPPORTED'],
    ['unknown collection', { method: 'POST', url: '/search', payload: { query: 'cell', collection: 'nope' } }, 404, 'COLLECTION_NOT_FOUND'],
    ['oversize body', { method: 'POST', url: '/documents', payload: { documents: [{ id: 'big', text: 'cell '.repeat(20_000) }] } }, 413, 'BODY_TOO_LARGE'],
    ['too many documents', { method: 'POST', url: '/documents', payload: { documents: makeCorpus(MAX_BATCH + 1, 1, 'tm') } }, 413, 'DOCUMENTS_TOO_MANY'],
    ['duplicate ids', { method: 'POST', url: '/documents', payload: { documents: [{ id: 'dup', text: 'x' }, { id: 'dup', text: 'y' }] } }, 400, 'DOCUMENTS_DUPLICATE_ID'],
    ['non-UTF-8 JSON body', { method: 'POST', url: '/documents', payload: latin1, headers: json }, 400, 'BODY_NOT_UTF8'],
    ['unsupported media type', { method: 'POST', url: '/search', payload: '<query>cell</query>', headers: { 'content-type': 'application/xml' } }, 415, 'MEDIA_TYPE_UNSUPPORTED'],
    ['text/plain body', { method: 'POST', url: '/search', payload: 'query=cell', headers: { 'content-type': 'text/plain' } }, 400, 'BODY_INVALID'],
    ['malformed NDJSON line', { method: 'POST', url: '/documents', payload: '{"id":"nd-bad","text":"x"}\n{"id":\n', headers: NDJSON }, 400, 'BODY_INVALID'],
    ['unknown route', { method: 'GET', url: '/nowhere' }, 404, 'NOT_FOUND'],
    ['unknown method on a route', { method: 'PATCH', url: '/search', payload: { query: 'cell' } }, 404, 'NOT_FOUND'],
    ['unknown document', { method: 'GET', url: '/documents/ghost' }, 404, 'DOCUMENT_NOT_FOUND'],
    ['delete of an unknown document', { method: 'DELETE', url: '/documents/ghost' }, 404, 'DOCUMENT_NOT_FOUND'],
  ];

  const cases = table.map(([name, request, status, code]) => ({ name, request, status, code }));

  beforeAll(async () => {
    await ingest(makeCorpus(5, 1, 'base'));
  });

  it.each(cases)('$name → $status $code, and the app keeps serving', async ({ request, status, code }) => {
    const before = await documentCount();
    const baseline = await search({ query: 'cell protein gene', k: 5 });
    const problem = expectProblem(await app.inject(request), status, code);
    expect(problem.instance === undefined || typeof problem.instance === 'string').toBe(true);
    // A failed request never takes the app down, nor leaves anything written behind.
    const after = await search({ query: 'cell protein gene', k: 5 });
    expect(after.hits.length).toBeGreaterThan(0);
    expect(after.hits).toEqual(baseline.hits);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    expect(await documentCount()).toBe(before);
  });

  it('survives a long run of mixed failures and still answers a search', async () => {
    const baseline = await search({ query: 'cell protein gene', k: 5 });
    for (let round = 0; round < 3; round++) {
      for (const { name, request, status } of cases) expect((await app.inject(request)).statusCode, name).toBe(status);
    }
    const after = await search({ query: 'cell protein gene', k: 5 });
    expect(after.hits).toEqual(baseline.hits);
    expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
  });
});
