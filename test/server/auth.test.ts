/**
 * API keys and scopes: the route → scope table, 401/403 problems for every protected route,
 * forbidden requests that neither read nor change data, the per-key rate and concurrency limits,
 * the open mode, and the listen guard of `main.ts`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertSafeListen, isLoopbackHost, requiredScope, type Scope } from '../../src/server/plugins/auth.ts';
import { buildTestApp, makeCorpus, type TestApp } from '../helpers/index.ts';

const KEYS = {
  admin: 'admin-key-000001',
  search: 'search-key-00001',
  write: 'write-key-000001',
  train: 'train-key-000001',
  limited: 'limited-key-0001',
  single: 'single-flight-01',
} as const;

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

function expectProblem(res: LightMyRequestResponse, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, code });
}

describe('requiredScope', () => {
  it.each([
    ['POST', '/search', 'search'],
    ['GET', '/search', 'search'],
    ['POST', '/documents', 'write'],
    ['POST', '/documents/delete', 'write'],
    ['DELETE', '/documents/:id', 'write'],
    ['GET', '/documents/:id', 'search'],
    ['HEAD', '/documents/:id', 'search'],
    ['PUT', '/collections/:name', 'write'],
    ['DELETE', '/collections/:name', 'write'],
    ['POST', '/collections/:name/checkpoint', 'write'],
    ['GET', '/collections', 'search'],
    ['GET', '/collections/:name', 'search'],
    ['POST', '/rcl/step', 'train'],
    ['POST', '/rcl/offline', 'train'],
    ['POST', '/rcl/rollouts', 'train'],
    ['POST', '/retriever/rollback', 'train'],
    ['POST', '/retriever/model', 'admin'],
    ['GET', '/retriever', 'search'],
    ['POST', '/admin/snapshot', 'admin'],
    ['GET', '/health', 'open'],
    ['GET', '/ready', 'open'],
    ['GET', '/metrics', 'open'],
    ['GET', '/openapi.yaml', 'open'],
    ['GET', '/docs', 'open'],
    ['GET', '/docs/static/index.html', 'open'],
    ['POST', '/something-new', 'admin'],
    ['GET', '/searchable', 'admin'],
    ['GET', undefined, 'any'],
  ])('%s %s needs %s', (method, url, need) => {
    expect(requiredScope(method, url)).toBe(need);
  });
});

describe('listen guard', () => {
  const base = { server: { host: '127.0.0.1' }, auth: { keys: [], allowOpenNonLoopback: false } };
  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])('%s is loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });
  it.each(['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1'])('%s is not loopback', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });

  it('refuses an open server on a non-loopback host unless keys or the flag are set', () => {
    const cfg = (host: string, keys: Array<{ key: string; scopes: Scope[] }> = [], allow = false) =>
      ({ server: { ...base.server, host }, auth: { keys, allowOpenNonLoopback: allow } }) as Parameters<typeof assertSafeListen>[0];
    expect(() => assertSafeListen(cfg('0.0.0.0'))).toThrow(expect.objectContaining({ code: 'AUTH_KEYS_MISSING' }));
    expect(() => assertSafeListen(cfg('127.0.0.1'))).not.toThrow();
    expect(() => assertSafeListen(cfg('0.0.0.0', [{ key: KEYS.admin, scopes: ['admin'] }]))).not.toThrow();
    expect(() => assertSafeListen(cfg('0.0.0.0', [], true))).not.toThrow();
  });

  it('main.ts exits non-zero with the code on stderr before opening anything', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('R3SERVE_')));
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', '--host', '0.0.0.0', '--port', '0', '--data-dir', '/nonexistent/r3serve-never-created'], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('AUTH_KEYS_MISSING');
  });
});

describe('with API keys', () => {
  let t: TestApp;
  let app: FastifyInstance;
  let release: () => void = () => {};
  let entered: Promise<void>;
  let markEntered: () => void = () => {};

  beforeAll(async () => {
    t = await buildTestApp({
      auth: {
        keys: [
          { key: KEYS.admin, scopes: ['admin'] },
          { key: KEYS.search, scopes: ['search'] },
          { key: KEYS.write, scopes: ['write'] },
          { key: KEYS.train, scopes: ['train'] },
          { key: KEYS.limited, scopes: ['search'], ratePerSecond: 1 },
          { key: KEYS.single, scopes: ['admin'], concurrency: 1 },
        ],
      },
    });
    app = t.app;
    // Probe routes for scopes whose real routes other issues add; registered before the first inject.
    app.post('/rcl/__probe', async () => ({ ok: true }));
    const gate = new Promise<void>((resolve) => (release = resolve));
    entered = new Promise<void>((resolve) => (markEntered = resolve));
    app.post('/admin/__slow', async () => {
      markEntered();
      await gate;
      return { ok: true };
    });
    const res = await app.inject({ method: 'POST', url: '/documents', headers: auth(KEYS.admin), payload: { documents: makeCorpus(20) } });
    expect(res.statusCode, res.body).toBe(200);
  });
  afterAll(async () => {
    release();
    await t?.close();
  });

  /** Every protected route with a request that would succeed for the right key. */
  const ROUTES: Array<{ scope: Scope; req: InjectOptions }> = [
    { scope: 'search', req: { method: 'POST', url: '/search', payload: { query: 'cell protein', mode: 'lexical' } } },
    { scope: 'search', req: { method: 'GET', url: '/documents/d1' } },
    { scope: 'search', req: { method: 'GET', url: '/collections' } },
    { scope: 'search', req: { method: 'GET', url: '/collections/default' } },
    { scope: 'write', req: { method: 'POST', url: '/documents', payload: { documents: [{ id: 'd1', text: 'replaced by an intruder' }] } } },
    { scope: 'write', req: { method: 'POST', url: '/documents', headers: { 'content-type': 'application/x-ndjson' }, payload: '{"id":"n1","text":"streamed intruder"}\n' } },
    { scope: 'write', req: { method: 'DELETE', url: '/documents/d2' } },
    { scope: 'write', req: { method: 'POST', url: '/documents/delete', payload: { ids: ['d3', 'd4'] } } },
    { scope: 'write', req: { method: 'PUT', url: '/collections/sneaky', payload: {} } },
    { scope: 'write', req: { method: 'DELETE', url: '/collections/default' } },
    { scope: 'train', req: { method: 'POST', url: '/rcl/__probe', payload: {} } },
    { scope: 'admin', req: { method: 'POST', url: '/admin/snapshot', payload: {} } },
  ];

  async function state(): Promise<string> {
    const c = await app.inject({ method: 'GET', url: '/collections', headers: auth(KEYS.admin) });
    const d = await app.inject({ method: 'GET', url: '/documents/d1', headers: auth(KEYS.admin) });
    return JSON.stringify([c.json().collections.map((x: { name: string; documents: number }) => [x.name, x.documents]), d.json()]);
  }

  it('answers 401 AUTH_REQUIRED without a key and AUTH_INVALID with a wrong one, on every protected route', async () => {
    const before = await state();
    for (const { req } of ROUTES) {
      const none = await app.inject(req);
      expectProblem(none, 401, 'AUTH_REQUIRED');
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      for (const headers of [auth('not-a-key-at-all'), auth(KEYS.admin.toUpperCase()), auth(KEYS.admin.slice(0, -1)), { 'x-api-key': 'nope-nope-nope' }, { authorization: `Basic ${KEYS.admin}` }]) {
        const bad = await app.inject({ ...req, headers: { ...(req.headers as Record<string, string>), ...headers } });
        expectProblem(bad, 401, 'AUTH_INVALID');
        expect(bad.body).not.toContain('Title');
      }
    }
    expect(await state()).toBe(before);
    expect(existsSync(join(t.dir, 'snapshots'))).toBe(false);
  });

  it('answers 403 AUTH_FORBIDDEN to keys without the scope, and nothing is read or changed', async () => {
    const before = await state();
    for (const scope of ['search', 'write', 'train'] as const) {
      for (const { scope: need, req } of ROUTES) {
        if (need === scope) continue;
        const res = await app.inject({ ...req, headers: { ...(req.headers as Record<string, string>), ...auth(KEYS[scope]) } });
        expectProblem(res, 403, 'AUTH_FORBIDDEN');
        expect(res.json().details).toEqual({ scope: need });
        expect(res.body).not.toContain('Title'); // no document field leaks into the problem
      }
    }
    expect(await state()).toBe(before);
    const streamed = await app.inject({ method: 'GET', url: '/documents/n1', headers: auth(KEYS.admin) });
    expectProblem(streamed, 404, 'DOCUMENT_NOT_FOUND');
    expect(existsSync(join(t.dir, 'snapshots'))).toBe(false);
  });

  it('lets the right scope through (search, train; write last since it changes data)', async () => {
    for (const { scope, req } of ROUTES.filter((r) => r.scope === 'search' || r.scope === 'train')) {
      const res = await app.inject({ ...req, headers: auth(KEYS[scope]) });
      expect(res.statusCode, `${req.method} ${req.url}: ${res.body}`).toBe(200);
    }
    const viaHeader = await app.inject({ method: 'GET', url: '/collections', headers: { 'x-api-key': KEYS.search } });
    expect(viaHeader.statusCode).toBe(200);
    const lowerScheme = await app.inject({ method: 'GET', url: '/collections', headers: { authorization: `bearer ${KEYS.search}` } });
    expect(lowerScheme.statusCode).toBe(200);
  });

  it('admin implies every scope, and unknown paths need a valid key before they say 404', async () => {
    for (const path of ['/collections', '/documents/d5', '/rcl/__probe']) {
      const res = await app.inject({ method: path === '/rcl/__probe' ? 'POST' : 'GET', url: path, headers: auth(KEYS.admin) });
      expect(res.statusCode, res.body).toBe(200);
    }
    expectProblem(await app.inject({ method: 'GET', url: '/no/such/route' }), 401, 'AUTH_REQUIRED');
    expectProblem(await app.inject({ method: 'GET', url: '/no/such/route', headers: auth(KEYS.search) }), 404, 'NOT_FOUND');
  });

  it('needs admin to name a model directory, even with the write or train scope', async () => {
    const put = await app.inject({ method: 'PUT', url: '/collections/m1', headers: auth(KEYS.write), payload: { retriever: { kind: 'onnx', model: '/etc' } } });
    expectProblem(put, 403, 'AUTH_FORBIDDEN');
    const swap = await app.inject({ method: 'POST', url: '/retriever/model', headers: auth(KEYS.train), payload: { model: '/etc' } });
    expectProblem(swap, 403, 'AUTH_FORBIDDEN');
    expect((await app.inject({ method: 'GET', url: '/collections/m1', headers: auth(KEYS.admin) })).statusCode).toBe(404);
  });

  it('write scope writes', async () => {
    const put = await app.inject({ method: 'POST', url: '/documents', headers: auth(KEYS.write), payload: { documents: [{ id: 'w1', text: 'written with the write key' }] } });
    expect(put.statusCode, put.body).toBe(200);
    const read = await app.inject({ method: 'GET', url: '/documents/w1', headers: auth(KEYS.search) });
    expect(read.json()).toMatchObject({ id: 'w1' });
  });

  it('keeps open routes open', async () => {
    for (const url of ['/health', '/ready', '/metrics']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it('rate-limits per key with 429 RATE_LIMITED and Retry-After, and refills', async () => {
    const req = { method: 'GET', url: '/collections', headers: auth(KEYS.limited) } as const;
    // Burst is 2 s of the rate: two requests pass, the third waits.
    expect((await app.inject(req)).statusCode).toBe(200);
    expect((await app.inject(req)).statusCode).toBe(200);
    const limited = await app.inject(req);
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Other keys are unaffected.
    expect((await app.inject({ ...req, headers: auth(KEYS.search) })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await app.inject(req)).statusCode).toBe(200);
  });

  it('limits requests in flight per key and releases the slot when a request ends', async () => {
    const first = app.inject({ method: 'POST', url: '/admin/__slow', headers: auth(KEYS.single) });
    await entered;
    const second = await app.inject({ method: 'GET', url: '/collections', headers: auth(KEYS.single) });
    expectProblem(second, 429, 'RATE_LIMITED');
    expect(second.json().details).toMatchObject({ limit: 'concurrency' });
    // Another key is not held up by this one's slot.
    expect((await app.inject({ method: 'GET', url: '/collections', headers: auth(KEYS.admin) })).statusCode).toBe(200);
    release();
    expect((await first).statusCode).toBe(200);
    await new Promise((r) => setImmediate(r));
    expect((await app.inject({ method: 'GET', url: '/collections', headers: auth(KEYS.single) })).statusCode).toBe(200);
  });
});

describe('without API keys', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(async () => t?.close());

  it('is open: every scope works without a key, and a stray key is ignored', async () => {
    const app = t.app;
    const write = await app.inject({ method: 'POST', url: '/documents', payload: { documents: makeCorpus(3) } });
    expect(write.statusCode, write.body).toBe(200);
    const read = await app.inject({ method: 'GET', url: '/documents/d0', headers: auth('whatever-key-123') });
    expect(read.statusCode).toBe(200);
    const admin = await app.inject({ method: 'POST', url: '/admin/snapshot' });
    expect(admin.statusCode, admin.body).toBe(200);
  });
});
