/**
 * HTTP fuzzing with fast-check through `app.inject()`: random and malformed requests to every
 * route (methods, paths, query strings, headers, content types, bodies that break each schema
 * field, deep JSON, huge numbers, unicode, invalid UTF-8). Over 10,000 requests per run; no 5xx,
 * every 4xx a problem+json with a `code`, no stack trace or file path in any body.
 */
import fc from 'fast-check';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../src/server/json-depth.ts';
import { buildTestApp, makeCorpus, type TestApp } from '../helpers/index.ts';

const ADMIN = 'fuzz-admin-key-0001';
const SEARCH = 'fuzz-search-key-001';
const SEQUENTIAL_RUNS = 9_600;
const CONCURRENT_REQUESTS = 800;
const CONCURRENCY = 8;

// ---- values ---------------------------------------------------------------------------------

/** Numbers that break naive code: huge, tiny, negative zero, beyond 2^53, fractional. */
const nastyNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 1e308, -1e308, 5e-324, 2 ** 31, 2 ** 32, 2 ** 53 + 2, -(2 ** 53) - 2, 1e21, Number.MAX_SAFE_INTEGER),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Strings: ASCII, any code point (lone surrogates included), words of the corpus, long runs. */
const nastyString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom('', ' ', 'cell protein', 'the', 'default', '..', '../../etc/passwd', '%00', '\u0000', '\ud800', 'é\u0301', '🧬🧬', 'a'.repeat(513)),
  fc.integer({ min: 1, max: 300_000 }).map((n) => 'cell '.repeat(Math.ceil(n / 5)).slice(0, n)),
);

/** Nested arrays or objects `depth` levels deep. */
function deep(depth: number, object: boolean): unknown {
  let v: unknown = object ? { leaf: 1 } : [1];
  for (let i = 0; i < depth; i++) v = object ? { a: v } : [v];
  return v;
}
const deepValue = fc.tuple(fc.integer({ min: 10, max: 2_000 }), fc.boolean()).map(([d, o]) => deep(d, o));

/** A value of the wrong type for whatever field it lands in. */
const weird: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  nastyNumber,
  nastyString,
  fc.array(fc.oneof(nastyString, nastyNumber, fc.constant(null)), { maxLength: 5 }),
  fc.dictionary(nastyString, fc.oneof(nastyString, nastyNumber), { maxKeys: 4 }),
  fc.jsonValue({ maxDepth: 4 }),
  deepValue,
);

const collectionName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('default', 'fz1', 'fz2', 'missing') },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/) },
  { weight: 2, arbitrary: nastyString },
);
const word = fc.constantFrom('cell', 'protein', 'gene', 'cancer', 'river', 'music', 'court', 'king', 'the', 'of', 'zzzunknown');
const text = fc.array(word, { minLength: 0, maxLength: 30 }).map((w) => w.join(' '));
const docId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('d1', 'd2', 'd3', 'fz-a', 'fz-b') }, { weight: 1, arbitrary: nastyString });
/**
 * Metadata values, including strings longer than an LMDB key (such values are stored but not
 * indexed for filtering).
 */
const metadataValue = fc.oneof(
  fc.constantFrom('en', 'fr'),
  nastyNumber,
  fc.boolean(),
  fc.constant(null),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.integer({ min: 1, max: 4000 }).map((n) => 'v'.repeat(n)),
  deepValue,
  fc.jsonValue({ maxDepth: 3 }),
);
const metadata = fc.dictionary(fc.constantFrom('lang', 'year', 'group', 'even', 'x'), metadataValue, { maxKeys: 3 });
const document = fc.record({ id: docId, title: fc.option(text, { nil: undefined }), text, metadata: fc.option(metadata, { nil: undefined }) }, { requiredKeys: ['id', 'text'] });

// ---- bodies per route -----------------------------------------------------------------------

/**
 * Model paths that do not hold a model: missing, a file, a folder without a manifest, traversal.
 * (Never `node_modules`: the leak check looks for it, and collection options echo model paths.)
 */
const modelPath = fc.oneof(fc.constantFrom('/nonexistent/model', '/etc/hostname', '/tmp', '../..', '.', ''), nastyString);

const bodies = {
  search: fc.record(
    {
      collection: collectionName,
      query: fc.oneof(text, nastyString),
      queries: fc.array(fc.oneof(text, nastyString), { maxLength: 5 }),
      k: fc.oneof(fc.integer({ min: 1, max: 50 }), nastyNumber),
      m: fc.oneof(fc.integer({ min: 1, max: 50 }), nastyNumber),
      mode: fc.constantFrom('late', 'beta', 'lexical', 'LATE', ''),
      explain: fc.boolean(),
      includeDocuments: fc.boolean(),
      filter: fc.dictionary(fc.constantFrom('lang', 'group', 'even', 'x'), fc.oneof(fc.constantFrom('en', 'fr'), fc.integer({ min: 0, max: 3 }), fc.boolean(), weird), { maxKeys: 2 }),
    },
    { requiredKeys: [] },
  ),
  documents: fc.record({ collection: collectionName, documents: fc.array(document, { maxLength: 6 }) }, { requiredKeys: ['documents'] }),
  deleteMany: fc.record({ collection: collectionName, ids: fc.array(docId, { maxLength: 4 }) }, { requiredKeys: ['ids'] }),
  collection: fc.record(
    {
      analyzer: fc.record({ name: fc.constantFrom('wink', 'wordpiece', 'other'), stem: fc.boolean(), model: modelPath }, { requiredKeys: [] }),
      retriever: fc.record({ kind: fc.constantFrom('bm25', 'sidr-glove', 'onnx', 'nope'), kExp: nastyNumber, gamma: nastyNumber, model: modelPath }, { requiredKeys: [] }),
    },
    { requiredKeys: [] },
  ),
  // Mostly refused paths: each accepted one writes a copy of the store.
  snapshot: fc.record({ path: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('../x.mdb', '/etc/x.mdb', '', 'a/', '.') }, { weight: 1, arbitrary: nastyString }), compact: fc.boolean() }, { requiredKeys: [] }),
  rcl: fc.record(
    {
      collection: collectionName,
      queries: fc.array(fc.record({ id: nastyString, text: fc.oneof(text, nastyString), answers: fc.array(nastyString, { maxLength: 3 }) }, { requiredKeys: [] }), { maxLength: 3 }),
      scores: fc.array(fc.record({ queryId: nastyString, docId, answer: nastyString, score: nastyNumber, label: fc.oneof(fc.integer({ min: -1, max: 2 }), weird) }, { requiredKeys: [] }), { maxLength: 3 }),
      rollout: nastyString,
      environment: fc.constantFrom('contains', 'answer-match', 'openai', 'nope'),
      learningRate: nastyNumber,
      version: nastyNumber,
      model: modelPath,
      depth: nastyNumber,
      grid: fc.array(nastyNumber, { maxLength: 4 }),
      k: nastyNumber,
    },
    { requiredKeys: [] },
  ),
  any: fc.jsonValue({ maxDepth: 3 }),
};

/** A template body with one field replaced by a wrong value or removed, or a whole other value. */
function mutated(template: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  const key = fc.constantFrom(
    'collection', 'query', 'queries', 'k', 'm', 'mode', 'explain', 'includeDocuments', 'filter', 'documents', 'ids', 'analyzer', 'retriever',
    'path', 'compact', 'scores', 'rollout', 'environment', 'learningRate', 'version', 'model', 'depth', 'grid', 'extra',
  );
  return fc.oneof(
    { weight: 4, arbitrary: template },
    {
      weight: 5,
      arbitrary: fc.tuple(template, key, fc.option(weird, { nil: undefined })).map(([body, k, value]) => {
        if (typeof body !== 'object' || body === null) return body;
        const out = { ...(body as Record<string, unknown>) };
        if (value === undefined) delete out[k];
        else out[k] = value;
        return out;
      }),
    },
    { weight: 1, arbitrary: weird },
  );
}

// ---- requests -------------------------------------------------------------------------------

interface Route {
  method: string;
  path: fc.Arbitrary<string>;
  body?: fc.Arbitrary<unknown>;
  weight: number;
}

/** encodeURIComponent after replacing lone surrogates (which it refuses) with U+FFFD. */
const enc = (s: string) => encodeURIComponent(Buffer.from(s, 'utf8').toString('utf8'));

/** A path segment: usually encoded, sometimes raw (spaces, `%` escapes that do not decode). */
const segment = (values: fc.Arbitrary<string>) =>
  fc.oneof({ weight: 8, arbitrary: values.map(enc) }, { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', 'a%2Fb', '..', '%2e%2e', '') });

const query = fc.oneof(
  { weight: 5, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: collectionName.map((c) => `?collection=${enc(c)}`) },
  { weight: 1, arbitrary: fc.constantFrom('?collection=a&collection=b', '?collection[x]=1', '?=&&=', '?collection=%zz', '?k=1e400', `?${'a'.repeat(5000)}=1`) },
);

const fixed = (p: string) => fc.constant(p);
const ROUTES: Route[] = [
  { method: 'POST', path: fixed('/search'), body: mutated(bodies.search), weight: 20 },
  { method: 'GET', path: fixed('/search'), weight: 1 },
  { method: 'POST', path: fc.tuple(fixed('/documents'), query).map(([p, q]) => p + q), body: mutated(bodies.documents), weight: 14 },
  { method: 'GET', path: fc.tuple(segment(docId), query).map(([id, q]) => `/documents/${id}${q}`), weight: 6 },
  { method: 'DELETE', path: fc.tuple(segment(docId), query).map(([id, q]) => `/documents/${id}${q}`), weight: 3 },
  { method: 'POST', path: fixed('/documents/delete'), body: mutated(bodies.deleteMany), weight: 4 },
  { method: 'GET', path: fixed('/collections'), weight: 2 },
  { method: 'GET', path: segment(collectionName).map((n) => `/collections/${n}`), weight: 3 },
  // Creates only from a small pool of names (random ones are made invalid with `~`): a data
  // directory holds a bounded number of collections (COLLECTIONS_TOO_MANY, tested on its own).
  { method: 'PUT', path: segment(fc.oneof(fc.constantFrom('default', 'fz1', 'fz2', 'fz3'), nastyString.map((n) => `${n}~`))).map((n) => `/collections/${n}`), body: mutated(bodies.collection), weight: 4 },
  // Never the default collection: dropping it would starve every other route of data.
  { method: 'DELETE', path: segment(fc.oneof(fc.constantFrom('fz1', 'fz2', 'missing'), nastyString.filter((s) => s !== 'default'))).map((n) => `/collections/${n}`), weight: 2 },
  { method: 'POST', path: fc.constantFrom('/rcl/step', '/rcl/offline', '/rcl/rollouts', '/rcl/calibrate'), body: mutated(bodies.rcl), weight: 6 },
  { method: 'GET', path: fc.tuple(fixed('/rcl/status'), query).map(([p, q]) => p + q), weight: 1 },
  { method: 'GET', path: fc.constantFrom('/retriever', '/retriever?collection=default'), weight: 1 },
  { method: 'POST', path: fc.constantFrom('/retriever/rollback', '/retriever/model'), body: mutated(bodies.rcl), weight: 2 },
  { method: 'POST', path: fixed('/admin/snapshot'), body: mutated(bodies.snapshot), weight: 1 },
  { method: 'GET', path: fc.constantFrom('/health', '/ready', '/metrics', '/openapi.yaml', '/docs', '/docs/json'), weight: 2 },
  { method: 'GET', path: fc.oneof(fc.webPath(), fc.string({ unit: 'binary-ascii', maxLength: 30 }).map((s) => `/${enc(s)}`)), body: bodies.any, weight: 2 },
];

const method = fc.oneof({ weight: 9, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') });
const contentType = fc.oneof(
  { weight: 10, arbitrary: fc.constant('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('application/x-ndjson', 'application/json; charset=utf-8', 'Application/JSON', 'text/plain', 'application/octet-stream', 'multipart/form-data; boundary=x', 'application/problem+json', 'application/json; charset=utf-16', 'garbage', ''),
  },
);
const authHeader: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 17, arbitrary: fc.constant({ authorization: `Bearer ${ADMIN}` }) },
  { weight: 1, arbitrary: fc.constant({ 'x-api-key': SEARCH }) },
  { weight: 1, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.constantFrom<Record<string, string>>({ authorization: 'Bearer' }, { authorization: 'Basic Zm9vOmJhcg==' }, { authorization: `Bearer ${ADMIN} extra` }, { 'x-api-key': '' }, { authorization: 'Bearer \u00e9\u00e9' }) },
);
const extraHeaders = fc.option(
  fc.constantFrom<Record<string, string>>({ 'x-request-id': 'x'.repeat(200) }, { 'content-length': '3' }, { 'content-encoding': 'gzip' }, { 'transfer-encoding': 'chunked' }, { accept: 'text/html' }, { 'x-request-id': 'ok-1' }),
  { nil: undefined },
);

/** How the body goes on the wire: as JSON, broken JSON, NDJSON lines, raw bytes or deep nesting. */
const wire = fc.oneof(
  { weight: 12, arbitrary: fc.constant('json' as const) },
  { weight: 1, arbitrary: fc.constantFrom('truncated', 'ndjson', 'bytes', 'deepRaw', 'bigNumber', 'empty', 'scalar') },
);
const bytes = fc.uint8Array({ maxLength: 64 });

function encodeBody(kind: string, body: unknown, seedBytes: Uint8Array, depth: number): string | Buffer | undefined {
  const json = JSON.stringify(body) ?? 'null';
  switch (kind) {
    case 'json':
      return json;
    case 'truncated':
      return json.slice(0, Math.max(0, json.length - 1 - (seedBytes[0] ?? 0) % 8));
    case 'ndjson': {
      const docs = Array.isArray((body as { documents?: unknown })?.documents) ? (body as { documents: unknown[] }).documents : [body];
      return docs.map((d) => JSON.stringify(d) ?? 'null').join('\n') + (seedBytes.length % 2 ? '\n{bad json\n' : '\n');
    }
    case 'bytes':
      return Buffer.from([0xff, 0xfe, ...seedBytes, 0xc3]);
    case 'deepRaw':
      return seedBytes.length % 2 ? '['.repeat(depth * 10) + ']'.repeat(depth * 10) : '{"a":'.repeat(depth * 10) + '1' + '}'.repeat(depth * 10);
    case 'bigNumber':
      return json.replace(/\d+(\.\d+)?/g, '1e400').replace(/^null$/, '1e400');
    case 'empty':
      return '';
    default:
      return ['null', '0', '"text"', '[]', 'true', '{}'][seedBytes.length % 6];
  }
}

const requestArb: fc.Arbitrary<InjectOptions> = fc
  .tuple(
    fc.constantFrom(...ROUTES.flatMap((r) => Array<Route>(r.weight).fill(r))).chain((r) =>
      fc.tuple(fc.constant(r), r.path, r.body ?? fc.constant(undefined)),
    ),
    method,
    contentType,
    authHeader,
    extraHeaders,
    wire,
    bytes,
    fc.integer({ min: 1, max: 2_000 }),
  )
  .map(([[route, path, body], m, ct, authH, extra, kind, seedBytes, depth]) => {
    const headers: Record<string, string> = { ...authH, ...extra };
    const opts: InjectOptions = { method: (m || route.method) as InjectOptions['method'], url: path, headers };
    if (body !== undefined || route.method !== 'GET') {
      const payload = encodeBody(kind, body, seedBytes, depth);
      if (payload !== undefined) {
        opts.payload = payload;
        if (ct !== '') headers['content-type'] = kind === 'ndjson' ? 'application/x-ndjson' : ct;
      }
    }
    return opts;
  });

// ---- the checks -----------------------------------------------------------------------------

/** A stack frame (`at fn (/path/file.ts:1:2)`), or a path into the code or its dependencies. */
const LEAK = /\bat\s+(?:\S+\s+)?\(?(?:file:\/\/|\/|[A-Za-z]:\\)[^\s)]*:\d+:\d+|node_modules|\/src\/[\w/-]+\.ts/;

interface Tally {
  total: number;
  byStatus: Map<number, number>;
  /** Collections created (201) so far. */
  created: number;
}

async function check(app: FastifyInstance, original: InjectOptions, tally: Tally): Promise<void> {
  const creates = original.method === 'PUT' && String(original.url).startsWith('/collections/');
  const req = original;
  let res;
  try {
    res = await app.inject(req);
  } catch (err) {
    // light-my-request refuses some requests before they reach the server (e.g. bad header bytes).
    if ((err as Error).name === 'TypeError' || (err as { code?: string }).code?.startsWith('ERR_')) return;
    throw err;
  }
  tally.total++;
  if (creates && res.statusCode === 201) tally.created++;
  tally.byStatus.set(res.statusCode, (tally.byStatus.get(res.statusCode) ?? 0) + 1);
  const where = `${req.method} ${String(req.url).slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`;
  expect(res.statusCode, where).toBeLessThan(500);
  // A match is a leak unless the request itself carried that text (an echoed id or path).
  const leak = LEAK.exec(res.body);
  const sent = `${String(req.url)} ${typeof req.payload === 'string' ? req.payload : ''}`;
  expect(leak === null || sent.includes(leak[0]), `${where} (leaked ${leak?.[0]})`).toBe(true);
  if (res.statusCode >= 400) {
    expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
    if (req.method !== 'HEAD') {
      const problem = res.json() as { code?: unknown; status?: unknown };
      expect(typeof problem.code === 'string' && problem.code.length > 0, where).toBe(true);
      expect(problem.status, where).toBe(res.statusCode);
    }
  }
}

describe('HTTP fuzzing', () => {
  let t: TestApp;
  const tally: Tally = { total: 0, byStatus: new Map(), created: 0 };

  beforeAll(async () => {
    t = await buildTestApp({
      auth: { keys: [{ key: ADMIN, scopes: ['admin'] }, { key: SEARCH, scopes: ['search'] }] },
      limits: { maxDocumentsPerBatch: 50 },
    });
    const corpus = makeCorpus(200);
    for (let i = 0; i < corpus.length; i += 50) {
      const seed = await t.app.inject({ method: 'POST', url: '/documents', headers: { authorization: `Bearer ${ADMIN}` }, payload: { documents: corpus.slice(i, i + 50) } });
      expect(seed.statusCode, seed.body).toBe(200);
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`answers ${SEQUENTIAL_RUNS} random requests in sequence without a 5xx or a leak`, async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, (req) => check(t.app, req, tally)),
      { numRuns: SEQUENTIAL_RUNS, endOnFailure: true },
    );
  }, 120_000);

  it(`answers ${CONCURRENT_REQUESTS} random requests ${CONCURRENCY} at a time`, async () => {
    const reqs = fc.sample(requestArb, CONCURRENT_REQUESTS);
    for (let i = 0; i < reqs.length; i += CONCURRENCY) await Promise.all(reqs.slice(i, i + CONCURRENCY).map((r) => check(t.app, r, tally)));
    // The server is still healthy and serving data afterwards.
    const health = await t.app.inject({ method: 'GET', url: '/ready' });
    expect(health.statusCode).toBe(200);
    // A fresh collection takes writes and answers searches (the fuzzer may have dropped any other).
    const headers = { authorization: `Bearer ${ADMIN}` };
    expect((await t.app.inject({ method: 'PUT', url: '/collections/after', headers, payload: {} })).statusCode).toBeLessThan(300);
    const put = await t.app.inject({ method: 'POST', url: '/documents', headers, payload: { collection: 'after', documents: [{ id: 'x', text: 'cell protein' }] } });
    expect(put.statusCode, put.body).toBe(200);
    const found = await t.app.inject({ method: 'POST', url: '/search', headers, payload: { collection: 'after', query: 'cell', mode: 'lexical' } });
    expect(found.statusCode, found.body).toBe(200);
    expect(found.json().hits.map((h: { id: string }) => h.id)).toEqual(['x']);
  }, 60_000);

  it('refuses JSON nested past MAX_JSON_DEPTH (the fuzzer found msgpackr overflowing on deep metadata)', async () => {
    const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
    await t.app.inject({ method: 'PUT', url: '/collections/after', headers, payload: {} });
    const doc = (depth: number, id: string) => ({ id, text: 'deep metadata', metadata: { x: deep(depth, true) } });
    // Body → documents → document → metadata → x → the nested value: MAX_JSON_DEPTH levels in all.
    const ok = await t.app.inject({ method: 'POST', url: '/documents', headers, payload: JSON.stringify({ collection: 'after', documents: [doc(MAX_JSON_DEPTH - 5, 'shallow')] }) });
    expect(ok.statusCode, ok.body).toBe(200);
    // Built as text: JSON.stringify itself overflows the stack on values this deep.
    const deepText = '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000);
    for (const payload of [`{"collection":"after","documents":[{"id":"deep","text":"t","metadata":{"x":${deepText}}}]}`, '['.repeat(100_000)]) {
      const res = await t.app.inject({ method: 'POST', url: '/documents', headers, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'BODY_INVALID' });
    }
    const ndjson = await t.app.inject({
      method: 'POST',
      url: '/documents?collection=after',
      headers: { ...headers, 'content-type': 'application/x-ndjson' },
      payload: `${JSON.stringify(doc(3, 'n1'))}\n${JSON.stringify(doc(200, 'n2'))}\n`,
    });
    expect(ndjson.statusCode).toBe(400);
    expect(ndjson.json()).toMatchObject({ code: 'BODY_INVALID', details: { line: 2 } });
    expect(jsonTooDeep('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')).toBe(false);
  });

  it('sent at least 10,000 requests in all', () => {
    console.log(`fuzz: ${tally.total} requests; by status ${JSON.stringify(Object.fromEntries([...tally.byStatus].sort(([a], [b]) => a - b)))}`);
    expect(tally.total).toBeGreaterThanOrEqual(10_000);
  });
});
