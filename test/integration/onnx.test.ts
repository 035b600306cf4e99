/**
 * The `onnx` retriever end to end through `app.inject()` on the committed tiny models: a wordpiece
 * collection, ingest, late search, head training steps, a hot model swap with searches in flight,
 * rollback across the swap, a restart, and an index fingerprint that never moves. Real LMDB,
 * real onnxruntime (CPU, one intra-op thread) in the retriever's worker thread.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexFingerprint } from '../../src/index/fingerprint.ts';
import type { RetrieverFactory } from '../../src/search/collections.ts';
import { isModelSwappable, openOnnxRetrieverFor, type OnnxRetriever } from '../../src/search/onnx-retriever.ts';
import type { TrainTriple } from '../../src/search/trainable.ts';
import { buildTestApp, makeCorpus, tmpDir, type TestApp } from '../helpers/index.ts';

const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const model = (name: string): string => join(MODELS, name);
/** Only onnx collections get a retriever: the default collection stays lexical (no GloVe load). */
const factory: RetrieverFactory = async (c, store) => (c.options.retriever.kind === 'onnx' ? openOnnxRetrieverFor(c, store) : undefined);
/** CPU, one intra-op thread: the test machine has two cores shared by parallel test files. */
const RUNTIME = { providers: ['cpu'], threads: 1 };
const DOCS = [
  ...makeCorpus(30, 7),
  { id: 'paris', title: 'France', text: 'Paris is the capital and largest city of France.' },
  { id: 'berlin', title: 'Germany', text: 'Berlin is the capital of Germany and its largest city.' },
  { id: 'water', title: 'Earth', text: 'Water covers most of the earth.' },
];

function expectProblem(res: LightMyRequestResponse, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.json()).toMatchObject({ status, code });
}

async function search(app: FastifyInstance, collection: string, query: string, extra: object = {}): Promise<Record<string, any>> {
  const res = await app.inject({ method: 'POST', url: '/search', payload: { collection, query, k: 5, mode: 'late', ...extra } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

function retrieverOf(app: FastifyInstance, name: string): OnnxRetriever {
  const r = app.engine.collections.get(name).searcher.retriever;
  if (!isModelSwappable(r)) throw new Error('not an onnx retriever');
  return r;
}

/** Triples whose positive is the document the query was cut from, the negative the next one. */
function triples(app: FastifyInstance, name: string, ids: string[]): TrainTriple[] {
  const c = app.engine.collections.get(name);
  return ids.map((id, i) => {
    const doc = c.index.getDocument(id)!;
    const neg = c.index.getDocument(ids[(i + 1) % ids.length])!;
    const text = doc.text.split(' ').slice(0, 6).join(' ');
    return { query: { text, termIds: c.searcher.queryTerms(text) }, positive: doc.docId, negative: neg.docId };
  });
}

describe('onnx retriever over HTTP (sidr)', () => {
  const data = tmpDir();
  let t: TestApp;
  let app: FastifyInstance;
  let fp0: ReturnType<typeof indexFingerprint>;
  const dbs = () => app.engine.store.collectionDbs('wp');

  beforeAll(async () => {
    t = await buildTestApp({}, { retrieverFactory: factory, dir: data.dir });
    app = t.app;
  }, 120_000);
  afterAll(async () => {
    await app.close();
    data.cleanup();
  });

  it('creates a wordpiece collection whose terms are the tokenizer\'s pieces', async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/collections/wp',
      payload: { analyzer: { name: 'wordpiece', model: model('sidr-a') }, retriever: { kind: 'onnx', model: model('sidr-a'), ...RUNTIME } },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().analyzer).toMatchObject({ name: 'wordpiece', vocabPath: 'vocab.txt', lowercase: true });
    expect(res.json().analyzer.vocabHash).toMatch(/^[0-9a-f]{64}$/);
    const again = await app.inject({ method: 'PUT', url: '/collections/wp', payload: { analyzer: { name: 'wordpiece', model: model('sidr-a') }, retriever: { kind: 'onnx', model: model('sidr-a'), ...RUNTIME } } });
    expect(again.statusCode).toBe(200);

    const ingest = await app.inject({ method: 'POST', url: '/documents', payload: { collection: 'wp', documents: DOCS } });
    expect(ingest.statusCode, ingest.body).toBe(200);
    const c = app.engine.collections.get('wp');
    const terms = c.index.vocabulary().map(([term]) => term);
    expect(terms).toContain('paris');
    expect(terms.some((x) => x.startsWith('##'))).toBe(true);
    expect(Array.from(c.index.forward(c.index.getDocument('paris')!.docId)!, (id) => c.index.term(id))).toEqual(['france', 'paris', 'is', 'the', 'capital', 'and', 'large', '##s', '##t', 'city', 'of', 'france', '.']);
    await c.index.checkpoint();
    fp0 = indexFingerprint(dbs());
    expect(fp0.entries).toBeGreaterThan(0);
  }, 60_000);

  it('searches late: first stage from E(q) mapped to index terms, re-rank by E(q)·E(d)', async () => {
    const r = await search(app, 'wp', 'what is the capital of france', { m: 20 });
    expect(r.retrieverVersion).toBe(0);
    expect(r.hits.length).toBeGreaterThan(0);
    // The tiny models are random: rankings carry no meaning, only their shape is checked.
    for (const h of r.hits) expect(typeof h.parametricScore).toBe('number');
    // The synchronous entry point refuses an asynchronous encoder instead of answering wrongly.
    expect(() => app.engine.collections.get('wp').searcher.search({ query: 'capital', k: 5, m: 20, mode: 'late' })).toThrow(expect.objectContaining({ code: 'RETRIEVER_UNSUPPORTED' }));
  });

  it('trains the head: new versions serve at once, the index does not move', async () => {
    const r = retrieverOf(app, 'wp');
    const batch = triples(app, 'wp', ['paris', 'berlin', 'water', 'd1', 'd2', 'd3']);
    const losses: number[] = [];
    for (let step = 1; step <= 3; step++) {
      const res = await r.train(batch, { learningRate: 0.05, info: { step } });
      expect(res.version).toBe(step);
      expect(Number.isFinite(res.loss)).toBe(true);
      expect(res.loss).toBeCloseTo(res.lossParts.ee + 0.5 * (res.lossParts.et + res.lossParts.te), 6);
      losses.push(res.loss);
    }
    expect(losses[2]).toBeLessThan(losses[0]);
    expect((await search(app, 'wp', 'capital of germany')).retrieverVersion).toBe(3);
    expect(indexFingerprint(dbs())).toEqual(fp0);
  }, 60_000);

  it('hot-swaps the model: searches in flight finish, searches right after use the new model, the index is untouched', async () => {
    const before = retrieverOf(app, 'wp').model;
    const inFlight = [1, 2, 3].map(() => app.inject({ method: 'POST', url: '/search', payload: { collection: 'wp', query: 'largest city', k: 5, mode: 'late' } }));
    const swap = await app.inject({ method: 'POST', url: '/retriever/model', payload: { collection: 'wp', model: model('sidr-b') } });
    expect(swap.statusCode, swap.body).toBe(200);
    const body = swap.json();
    expect(body.swap).toMatchObject({ version: 4, model: { dir: model('sidr-b'), kind: 'sidr', provider: 'cpu' }, previous: { hash: before.hash } });
    expect(body.current).toMatchObject({ version: 4, parent: 3, origin: 'model-swap', info: { modelHash: body.swap.model.hash, kind: 'sidr', provider: 'cpu' } });
    for (const res of await Promise.all(inFlight)) expect(res.statusCode, res.body).toBe(200);
    const after = await search(app, 'wp', 'largest city');
    expect(after.retrieverVersion).toBe(4);
    expect(after.hits.length).toBeGreaterThan(0);
    expect(indexFingerprint(dbs())).toEqual(fp0);

    const lineage = (await app.inject({ method: 'GET', url: '/retriever?collection=wp' })).json();
    expect(lineage.versions.map((v: { origin: string }) => v.origin)).toEqual(['init', 'rcl-step', 'rcl-step', 'rcl-step', 'model-swap']);
    expect(lineage.config).toMatchObject({ modelKind: 'sidr', provider: 'cpu', model: model('sidr-b') });
    const health = (await app.inject({ method: 'GET', url: '/health' })).json();
    expect(health.executionProviders.inUse).toEqual({ wp: 'cpu' });
    expect(health.executionProviders.available).toContain('cpu');
  }, 60_000);

  it('refuses a model whose vocabulary differs (409) or that does not exist (404)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'r3-model-'));
    try {
      await cp(model('sidr-a'), dir, { recursive: true });
      const vocab = (await readFile(join(dir, 'vocab.txt'), 'utf8')).split('\n');
      [vocab[100], vocab[101]] = [vocab[101], vocab[100]]; // same size, other ids
      await writeFile(join(dir, 'vocab.txt'), vocab.join('\n'));
      const res = await app.inject({ method: 'POST', url: '/retriever/model', payload: { collection: 'wp', model: dir } });
      expectProblem(res, 409, 'MODEL_VOCABULARY_MISMATCH');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expectProblem(await app.inject({ method: 'POST', url: '/retriever/model', payload: { collection: 'wp', model: join(MODELS, 'nope') } }), 404, 'MODEL_NOT_FOUND');
    expectProblem(await app.inject({ method: 'POST', url: '/retriever/model', payload: { model: model('sidr-b') } }), 400, 'RETRIEVER_UNSUPPORTED');
    expect((await search(app, 'wp', 'largest city')).retrieverVersion).toBe(4);
  });

  it('rolls back across the swap (reloading the old model) and reopens on its lineage after a restart', async () => {
    const r0 = retrieverOf(app, 'wp');
    await r0.rollback(3);
    expect(r0.model.dir).toBe(model('sidr-a'));
    const v3 = await search(app, 'wp', 'capital of france');
    expect(v3.retrieverVersion).toBe(3);
    await app.close();
    t = await buildTestApp({}, { retrieverFactory: factory, dir: data.dir });
    app = t.app;
    const r1 = retrieverOf(app, 'wp');
    expect(r1.describe().current).toMatchObject({ version: 3, origin: 'rcl-step' });
    expect(r1.model.dir).toBe(model('sidr-a'));
    const again = await search(app, 'wp', 'capital of france');
    expect(again.hits.map((h: { id: string; score: number }) => [h.id, h.score])).toEqual(v3.hits.map((h: { id: string; score: number }) => [h.id, h.score]));
    expect(indexFingerprint(dbs())).toEqual(fp0);
  }, 60_000);
});

describe.each([
  { kind: 'splade', a: 'splade-a', b: 'splade-b' },
  { kind: 'dense', a: 'dense-a', b: 'dense-b' },
])('onnx retriever, $kind', ({ kind, a, b }) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({}, { retrieverFactory: factory });
  }, 120_000);
  afterAll(async () => {
    await t.close();
  });

  it('creates (analyzer implied by the model), searches, trains, swaps and searches again', async () => {
    const { app } = t;
    const res = await app.inject({ method: 'PUT', url: '/collections/c', payload: { retriever: { kind: 'onnx', model: model(a), ...RUNTIME } } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().analyzer.name).toBe('wordpiece');
    expect((await app.inject({ method: 'POST', url: '/documents', payload: { collection: 'c', documents: DOCS } })).statusCode).toBe(200);
    await app.engine.collections.get('c').index.checkpoint();
    const fp = indexFingerprint(app.engine.store.collectionDbs('c'));
    expect((await search(app, 'c', 'capital of france')).hits.length).toBeGreaterThan(0);
    const r = retrieverOf(app, 'c');
    if (kind === 'dense') expect(String(r.describe().config.firstStage)).toMatch(/idf/);
    const step = await r.train(triples(app, 'c', ['paris', 'berlin', 'water']), { learningRate: 0.05 });
    expect(step.version).toBe(1);
    if (kind === 'dense') expect(step.lossParts).toMatchObject({ et: 0, te: 0 });
    const swap = await app.inject({ method: 'POST', url: '/retriever/model', payload: { collection: 'c', model: model(b) } });
    expect(swap.statusCode, swap.body).toBe(200);
    const after = await search(app, 'c', 'capital of france');
    expect(after.retrieverVersion).toBe(2);
    expect(after.hits.length).toBeGreaterThan(0);
    expect(indexFingerprint(app.engine.store.collectionDbs('c'))).toEqual(fp);
  }, 60_000);
});

describe('onnx retriever, refused configurations', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({}, { retrieverFactory: factory });
  }, 120_000);
  afterAll(async () => {
    await t.close();
  });

  it('refuses an onnx retriever on a wink collection and leaves no collection behind', async () => {
    const res = await t.app.inject({ method: 'PUT', url: '/collections/bad', payload: { analyzer: { name: 'wink' }, retriever: { kind: 'onnx', model: model('sidr-a') } } });
    expectProblem(res, 409, 'MODEL_VOCABULARY_MISMATCH');
    expectProblem(await t.app.inject({ method: 'GET', url: '/collections/bad' }), 404, 'COLLECTION_NOT_FOUND');
    expect(t.app.engine.store.getCollectionOptions('bad')).toBeUndefined();
  });

  it('answers 404 MODEL_NOT_FOUND and 400 TOKENIZER_INVALID for bad model paths', async () => {
    expectProblem(await t.app.inject({ method: 'PUT', url: '/collections/bad2', payload: { retriever: { kind: 'onnx', model: join(MODELS, 'nope') } } }), 404, 'MODEL_NOT_FOUND');
    expectProblem(await t.app.inject({ method: 'PUT', url: '/collections/bad3', payload: { analyzer: { name: 'wordpiece', model: model('sidr-a') }, retriever: { kind: 'onnx', model: join(MODELS, 'nope') } } }), 404, 'MODEL_NOT_FOUND');
    expectProblem(await t.app.inject({ method: 'PUT', url: '/collections/bad4', payload: { analyzer: { name: 'wordpiece' } } }), 400, 'TOKENIZER_INVALID');
  });
});
