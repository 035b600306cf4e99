/**
 * RCL through the HTTP API on a real store with the sidr-glove retriever: offline pools, steps
 * with the `contains` environment and with client-posted scores, versions and rollback, resume
 * after a restart from the optimizer checkpoint, an untouched index, and the error codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { indexFingerprint } from '../../src/index/fingerprint.ts';
import { createRetrieverFactory } from '../../src/search/retrievers.ts';
import { testConfig, tmpDir } from '../helpers/index.ts';

const DOCS = [
  { id: 'p1', title: 'France', text: 'Paris is the capital and largest city of France, on the river Seine.' },
  { id: 'p2', title: 'Germany', text: 'Berlin is the capital of Germany and its largest city.' },
  { id: 'p3', title: 'Italy', text: 'Rome is the capital city of Italy, famous for its ancient empire.' },
  { id: 'p4', title: 'Spain', text: 'Madrid is the capital of Spain; the city hosts the royal palace.' },
  { id: 'p5', title: 'Rivers', text: 'The Seine flows through Paris into the English Channel.' },
  { id: 'p6', title: 'Cooking', text: 'Bread is baked from flour, water, salt and yeast in an oven.' },
  { id: 'p7', title: 'Music', text: 'A piano has eighty eight keys and strings struck by hammers.' },
  { id: 'p8', title: 'Capitals', text: 'Every country has a capital city where the government sits.' },
];
const QUERIES = [
  { id: 'q1', text: 'what is the capital of france', answers: ['Paris'] },
  { id: 'q2', text: 'capital city of germany', answers: ['Berlin'] },
  { id: 'q3', text: 'which city is the capital of italy', answers: ['Rome'] },
  { id: 'q4', text: 'capital of spain', answers: ['Madrid'] },
];

describe('RCL over HTTP', () => {
  const tmp = tmpDir();
  let app: Awaited<ReturnType<typeof buildApp>>;
  const open = async () => {
    const config = testConfig(tmp.dir);
    app = await buildApp(config, { retrieverFactory: createRetrieverFactory(config) });
  };
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

  beforeAll(async () => {
    await open();
    expect((await post('/documents', { documents: DOCS })).statusCode).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await app.close();
    tmp.cleanup();
  });

  it('registers offline pools with the contains environment and reports queries it must drop', async () => {
    const r = await post('/rcl/offline', { queries: [...QUERIES, { id: 'q5', text: 'how many keys on a piano', answers: ['zzz-not-there'] }], environment: 'contains' });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.registered).toBe(4);
    expect(body.dropped).toEqual([{ queryId: 'q5', reason: 'no-positive' }]);
  });

  it('runs a step: a new version serves at once, the lineage records it, the index is untouched', async () => {
    // Postings reach LMDB at checkpoints: take one so that the bytes compared are the whole index.
    await app.engine.collections.get('default').index.checkpoint();
    const fpBefore = indexFingerprint(app.engine.store.collectionDbs('default'));
    const r = await post('/rcl/step', { queries: QUERIES.map((q) => ({ id: q.id })), environment: 'contains' });
    expect(r.statusCode).toBe(200);
    const step = r.json();
    expect(step.version).toBe(1);
    expect(Number.isFinite(step.loss)).toBe(true);
    expect(step.lossParts).toHaveProperty('ee');
    // The served score is in the objective by default (retriever.servedLossWeight = 1).
    expect(step.lossParts.served).toBeGreaterThan(0);
    expect(step.triples).toBe(4);
    expect(step.positives).toBeGreaterThanOrEqual(1);
    const s = (await post('/search', { query: 'capital of france', k: 3 })).json();
    expect(s.retrieverVersion).toBe(1);
    const ret = (await app.inject({ method: 'GET', url: '/retriever' })).json();
    expect(ret.current).toMatchObject({ version: 1, parent: 0, origin: 'rcl-step' });
    expect(ret.versions.map((v: { version: number }) => v.version)).toEqual([0, 1]);
    expect(indexFingerprint(app.engine.store.collectionDbs('default'))).toEqual(fpBefore);
    const status = (await app.inject({ method: 'GET', url: '/rcl/status' })).json();
    expect(status.steps).toBe(1);
  });

  /** f_θ of the late top 3 for one query, as served by the current version. */
  const lateScores = async (): Promise<number[]> =>
    (await post('/search', { query: 'capital of italy', k: 3, mode: 'late' })).json().hits.map((h: { parametricScore: number }) => h.parametricScore);
  let servedByV2: number[] = [];

  it('trains from client-posted scores on a rollout', async () => {
    await post('/rcl/offline', {
      queries: [{ id: 'c1', text: 'river through paris' }],
      scores: [
        { queryId: 'c1', docId: 'p5', score: 0.9, label: 1 },
        { queryId: 'c1', docId: 'p6', score: 0.01, label: 0 },
      ],
    });
    const ro = await post('/rcl/rollouts', { queries: [{ id: 'c1' }] });
    expect(ro.statusCode).toBe(200);
    const rollout = ro.json();
    expect(rollout.queries[0].candidates.length).toBeGreaterThan(0);
    const scores = rollout.queries[0].candidates.map((c: { docId: string }) => ({ queryId: 'c1', docId: c.docId, score: c.docId === 'p5' ? 0.95 : 0.001 }));
    const r = await post('/rcl/step', { queries: [{ id: 'c1' }], rollout: rollout.rollout, scores });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ version: 2, triples: 1 });
    servedByV2 = await lateScores();
  });

  it('rolls back to any version and resumes training after a restart from the checkpoint', async () => {
    const rb = await post('/retriever/rollback', { version: 1 });
    expect(rb.statusCode).toBe(200);
    expect((await post('/search', { query: 'capital of italy', k: 2 })).json().retrieverVersion).toBe(1);
    await post('/retriever/rollback', { version: 2 });
    await app.close();
    await open();
    const ret = (await app.inject({ method: 'GET', url: '/retriever' })).json();
    expect(ret.current.version).toBe(2);
    // Every trained tensor (U, A, w, φ, α, τ) comes back: the same version scores the same.
    expect(await lateScores()).toEqual(servedByV2);
    const step = (await post('/rcl/step', { queries: [{ id: 'q1' }, { id: 'q2' }], environment: 'contains' })).json();
    expect(step.version).toBe(3);
    const v3 = (await app.inject({ method: 'GET', url: '/retriever' })).json().current;
    expect(v3.parent).toBe(2);
    // The optimizer continued from version 2's checkpoint (3 steps so far), not from scratch.
    expect(v3.info.optimizerStep).toBe(3);
  });

  it('answers bad training input with stable codes', async () => {
    expect((await post('/rcl/step', { queries: [{ id: 'nobody' }], environment: 'contains' })).json().code).toBe('RCL_NO_POOLS');
    expect((await post('/rcl/step', { queries: [{ id: 'q1' }], environment: 'gpt-x' })).json().code).toBe('RCL_ENVIRONMENT_UNSUPPORTED');
    expect((await post('/rcl/step', { queries: [{ id: 'q1' }], rollout: 'missing' })).statusCode).toBe(404);
    expect((await post('/retriever/rollback', { version: 99 })).json().code).toBe('RETRIEVER_VERSION_NOT_FOUND');
    expect((await post('/rcl/step', { queries: [] })).statusCode).toBe(400);
  });

  it('calibrates the serving mix on held-out queries and publishes it as a version', async () => {
    const before = (await app.inject({ method: 'GET', url: '/retriever' })).json().current.version;
    const r = await post('/rcl/calibrate', { queries: ['q3', 'q4'], environment: 'contains', grid: [0, 0.3, 1], expansionScales: [0, 0.5], proximityWeights: [0], lexicalWeights: [0] });
    expect(r.statusCode).toBe(200);
    const cal = r.json();
    expect([0, 0.3, 1]).toContain(cal.gamma);
    expect([0, 0.5]).toContain(cal.expansionScale);
    expect(cal.grid).toHaveLength(6);
    expect(cal.mrrAfter).toBeGreaterThanOrEqual(Math.max(...cal.grid.map((g: { mrr: number }) => g.mrr)) - 1e-9);
    const ret = (await app.inject({ method: 'GET', url: '/retriever' })).json();
    expect(ret.current).toMatchObject({ version: before + 1, parent: before, origin: 'calibrate' });
    expect(ret.config.gamma).toBeCloseTo(cal.gamma, 6);
    expect(ret.config.expansionScale).toBeCloseTo(cal.expansionScale, 6);
    expect(cal.proximity.weight).toBe(0);
    expect(ret.config.proximity.weight).toBe(0);
    expect((await post('/search', { query: 'capital of spain', k: 1 })).json().retrieverVersion).toBe(before + 1);
    expect((await post('/rcl/calibrate', { queries: ['nobody'] })).json().code).toBe('RCL_NO_POOLS');
  });
});


// Two documents hold every query term as often: in `near` they stand together, in `far` they are
// spread out, and `far` repeats one term so that the first stage and f_θ prefer it.
const FILLER = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt labore';
const PROX_DOCS = [
  { id: 'far', text: `walrus ${FILLER} walrus ${FILLER} glacier ${FILLER} harbour ${FILLER} the answer is Quxtal.` },
  { id: 'near', text: `walrus glacier harbour ${FILLER} ${FILLER} ${FILLER} ${FILLER} the answer is Zorblat.` },
  ...DOCS,
];
const PROX_QUERIES = [
  { id: 'w1', text: 'walrus glacier harbour', answers: ['Zorblat'] },
  { id: 'w2', text: 'harbour walrus glacier', answers: ['Zorblat'] },
  { id: 'w3', text: 'glacier harbour walrus', answers: ['Quxtal'] },
];

/**
 * A server on `docs` with `queries` registered for the `contains` environment, for one describe
 * block (opened before its tests, closed after them).
 */
function calibrationServer(docs: object[], queries: object[]) {
  const tmp = tmpDir();
  let app: Awaited<ReturnType<typeof buildApp>>;
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
  const get = async (url: string) => (await app.inject({ method: 'GET', url })).json();
  beforeAll(async () => {
    const config = testConfig(tmp.dir);
    app = await buildApp(config, { retrieverFactory: createRetrieverFactory(config) });
    expect((await post('/documents', { documents: docs })).statusCode).toBe(200);
    expect((await post('/rcl/offline', { queries, environment: 'contains' })).json().registered).toBe(queries.length);
  }, 120_000);
  afterAll(async () => {
    await app.close();
    tmp.cleanup();
  });
  const search = async (query: string) => (await post('/search', { query, k: 2, mode: 'late', includeDocuments: false })).json().hits;
  const top = async (query: string) => (await search(query)).map((h: { id: string }) => h.id);
  return { post, get, search, top };
}

describe('calibrating term proximity', () => {
  const { post, get, top } = calibrationServer(PROX_DOCS, PROX_QUERIES);

  it('starts off, turns on when the feedback prefers it, and rolls back with its version', async () => {
    const untrained = await get('/retriever');
    expect(untrained.config.proximity.weight).toBe(0);
    expect(await top('walrus glacier harbour')).toEqual(['far', 'near']);

    const r = await post('/rcl/calibrate', { queries: ['w1', 'w2'], environment: 'contains', grid: [0.3], proximityWeights: [0, 1], proximityWindows: [4, 64], lexicalWeights: [0] });
    expect(r.statusCode).toBe(200);
    const cal = r.json();
    // 1 γ × (off + 1 weight × 2 windows); a window of 64 holds every term of both documents.
    expect(cal.grid).toHaveLength(3);
    expect(cal.mrrBefore).toBeCloseTo(0.5, 6);
    expect(cal.proximity).toEqual({ weight: 1, window: 4 });
    expect(cal.mrrAfter).toBeCloseTo(1, 6);
    expect(cal.mixCheck).toMatchObject({ mrrWith: 1, mrrWithout: 0.5, kept: true });
    const calibrated = await get('/retriever');
    expect(calibrated.config.proximity).toEqual({ weight: 1, window: 4 });
    const hits = (await post('/search', { query: 'walrus glacier harbour', k: 2, mode: 'late', includeDocuments: false })).json().hits;
    expect(hits.map((h: { id: string }) => h.id)).toEqual(['near', 'far']);
    expect(hits[0].proximityScore).toBeGreaterThan(hits[1].proximityScore);
    // Training under this mix puts proximity into the served term of its objective.
    const step = await post('/rcl/step', { queries: [{ id: 'w1' }, { id: 'w2' }], environment: 'contains' });
    expect(step.statusCode).toBe(200);
    expect(Number.isFinite(step.json().lossParts.served)).toBe(true);

    await post('/retriever/rollback', { version: untrained.current.version });
    expect(await top('walrus glacier harbour')).toEqual(['far', 'near']);
    expect((await get('/retriever')).config.proximity.weight).toBe(0);
  });

  it('leaves proximity off when its gain on the held-out queries is within their noise', async () => {
    // Proximity ranks the answer first for w1 and w2 but second for w3: MRR 5/6 against 2/3, a
    // per-query difference of (½, ½, −½) whose mean is less than twice its standard error.
    const cal = (await post('/rcl/calibrate', { queries: ['w1', 'w2', 'w3'], environment: 'contains', grid: [0.3], proximityWeights: [0, 1], proximityWindows: [4], lexicalWeights: [0] })).json();
    expect(cal.mixCheck.kept).toBe(false);
    expect(cal.mixCheck.mrrWith).toBeCloseTo(5 / 6, 6);
    expect(cal.mixCheck.mrrWithout).toBeCloseTo(2 / 3, 6);
    expect(cal.proximity.weight).toBe(0);
    expect(cal.mrrAfter).toBeCloseTo(2 / 3, 6);
    expect(await top('walrus glacier harbour')).toEqual(['far', 'near']);
  });

  it('rejects a bad grid with a 400', async () => {
    expect((await post('/rcl/calibrate', { queries: ['w1'], proximityWindows: [0] })).statusCode).toBe(400);
    expect((await post('/rcl/calibrate', { queries: ['w1'], proximityWeights: [-1] })).statusCode).toBe(400);
  });
});

// `sw` holds two stop words of the query twice each and `lx` its one content word once: the first
// stage and f_θ (stop words match exactly, weighted by idf like any term) prefer `sw`; the lexical
// term, over content words only, prefers `lx`.
const LEX_DOCS = [
  { id: 'sw', text: `whom thereby ${FILLER} whom thereby the answer is Quxtal.` },
  { id: 'lx', text: `walrus ${FILLER} the answer is Zorblat.` },
  ...DOCS,
];
const LEX_QUERIES = [
  { id: 'l1', text: 'whom thereby walrus', answers: ['Zorblat'] },
  { id: 'l2', text: 'thereby walrus whom', answers: ['Zorblat'] },
  { id: 'l3', text: 'walrus whom thereby', answers: ['Quxtal'] },
];

describe('calibrating the lexical term', () => {
  const { post, get, search, top } = calibrationServer(LEX_DOCS, LEX_QUERIES);

  it('starts off, turns on when the feedback prefers it, and rolls back with its version', async () => {
    const untrained = await get('/retriever');
    expect(untrained.config.lexical).toBe(0);
    const plain = await search('whom thereby walrus');
    expect(plain.map((h: { id: string }) => h.id)).toEqual(['sw', 'lx']);
    expect(plain[0].lexicalScore).toBeUndefined();

    const r = await post('/rcl/calibrate', { queries: ['l1', 'l2'], environment: 'contains', grid: [0.3], proximityWeights: [0], lexicalWeights: [0, 1] });
    expect(r.statusCode).toBe(200);
    const cal = r.json();
    expect(cal.grid).toHaveLength(2);
    expect(cal.mrrBefore).toBeCloseTo(0.5, 6);
    expect(cal.lexical).toBe(1);
    expect(cal.mrrAfter).toBeCloseTo(1, 6);
    expect(cal.mixCheck).toMatchObject({ mrrWith: 1, mrrWithout: 0.5, kept: true });
    expect(cal.proximity.weight).toBe(0);
    expect((await get('/retriever')).config.lexical).toBe(1);
    const hits = await search('whom thereby walrus');
    expect(hits.map((h: { id: string }) => h.id)).toEqual(['lx', 'sw']);
    expect(hits[0].lexicalScore).toBeGreaterThan(0);
    expect(hits[1].lexicalScore).toBe(0);
    // Training under this mix puts the lexical term into the served term of its objective.
    const step = await post('/rcl/step', { queries: [{ id: 'l1' }, { id: 'l2' }], environment: 'contains' });
    expect(step.statusCode).toBe(200);
    expect(Number.isFinite(step.json().lossParts.served)).toBe(true);

    await post('/retriever/rollback', { version: untrained.current.version });
    expect(await top('whom thereby walrus')).toEqual(['sw', 'lx']);
    expect((await get('/retriever')).config.lexical).toBe(0);
  });

  it('leaves the lexical term off when its gain on the held-out queries is within their noise', async () => {
    // λ ranks the answer first for l1 and l2 but second for l3: MRR 5/6 against 2/3.
    const cal = (await post('/rcl/calibrate', { queries: ['l1', 'l2', 'l3'], environment: 'contains', grid: [0.3], proximityWeights: [0], lexicalWeights: [0, 1] })).json();
    expect(cal.mixCheck.kept).toBe(false);
    expect(cal.mixCheck.mrrWith).toBeCloseTo(5 / 6, 6);
    expect(cal.mixCheck.mrrWithout).toBeCloseTo(2 / 3, 6);
    expect(cal.lexical).toBe(0);
    expect(cal.mrrAfter).toBeCloseTo(2 / 3, 6);
    expect(await top('whom thereby walrus')).toEqual(['sw', 'lx']);
  });

  it('rejects a bad or oversized grid with a 400', async () => {
    expect((await post('/rcl/calibrate', { queries: ['l1'], lexicalWeights: [-1] })).statusCode).toBe(400);
    const huge = await post('/rcl/calibrate', {
      queries: ['l1'],
      grid: Array.from({ length: 100 }, (_, i) => i / 10),
      lexicalWeights: Array.from({ length: 20 }, (_, i) => i / 20),
      proximityWeights: Array.from({ length: 20 }, (_, i) => i / 20),
      proximityWindows: Array.from({ length: 20 }, (_, i) => 4 + i),
    });
    expect(huge.statusCode).toBe(400);
    expect(huge.json()).toMatchObject({ code: 'RCL_INPUT_INVALID' });
    expect(JSON.stringify(huge.json())).toContain('at most 50000');
  });
});
