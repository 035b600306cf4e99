/**
 * `late` search with the sidr-glove retriever through the API: semantic expansion finds a
 * synonym the index alone cannot, hits carry both score parts, explain marks expansions, terms
 * newer than θ still match exactly, and `GET /retriever` describes version 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { createRetrieverFactory } from '../../src/search/retrievers.ts';
import { testConfig, tmpDir } from '../helpers/index.ts';

const DOCS = [
  { id: 'car', text: 'The automobile was parked near the garage with its engine running.' },
  { id: 'cook', text: 'She baked bread and cakes in the kitchen oven every morning.' },
  { id: 'music', text: 'The orchestra played a symphony with violins and a piano.' },
  { id: 'sea', text: 'Boats sailed across the ocean toward the harbor at dawn.' },
  { id: 'vote', text: 'Citizens voted in the election for a new parliament.' },
];

describe('late search', () => {
  const tmp = tmpDir();
  let app: Awaited<ReturnType<typeof buildApp>>;
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

  beforeAll(async () => {
    const config = testConfig(tmp.dir);
    app = await buildApp(config, { retrieverFactory: createRetrieverFactory(config) });
    expect((await post('/documents', { documents: DOCS })).statusCode).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await app.close();
    tmp.cleanup();
  });

  it('is the default mode and finds a document through an expansion the index alone misses', async () => {
    const lexical = (await post('/search', { query: 'car', mode: 'lexical' })).json();
    expect(lexical.hits).toEqual([]);
    const late = (await post('/search', { query: 'car', explain: true })).json();
    expect(late.mode).toBe('late');
    expect(late.retrieverVersion).toBe(0);
    expect(late.hits[0].id).toBe('car');
    expect(late.hits[0]).toHaveProperty('firstStageScore');
    expect(late.hits[0].parametricScore).toBeGreaterThan(0);
    const matched = late.hits[0].explain.matched as Array<{ term: string; expansion: boolean; queryWeight: number }>;
    expect(matched.some((m) => m.expansion && m.queryWeight > 0)).toBe(true);
  });

  it('ranks exact matches first and keeps stop words exact-only', async () => {
    const r = (await post('/search', { query: 'the ocean boats', k: 5 })).json();
    expect(r.hits[0].id).toBe('sea');
    // "the" occurs in most documents: it must not pull them in through similarity.
    const beta = (await post('/search', { query: 'the', mode: 'beta', k: 5 })).json();
    expect(beta.hits.every((h: { id: string }) => ['car', 'music', 'sea', 'cook', 'vote'].includes(h.id))).toBe(true);
  });

  it('matches terms added after θ was built exactly, right away', async () => {
    await post('/documents', { documents: [{ id: 'new', text: 'Zorblax quintessence appeared in the lab notebook.' }] });
    const r = (await post('/search', { query: 'zorblax' })).json();
    expect(r.hits[0]?.id).toBe('new');
  });

  it('describes the retriever', async () => {
    const r = (await app.inject({ method: 'GET', url: '/retriever' })).json();
    expect(r.kind).toBe('sidr-glove');
    expect(r.current).toMatchObject({ version: 0, parent: null, origin: 'init' });
    expect(r.config).toMatchObject({ kExp: 32, expansionScale: 0.5, gamma: 0.3, servedLoss: { weight: 1, temperature: 0.05 } });
  });
});
