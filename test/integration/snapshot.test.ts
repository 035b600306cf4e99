/**
 * `POST /admin/snapshot` while serving: snapshots taken during concurrent ingest open as data
 * directories and are consistent (whole batches only, every stored document searchable, counts
 * agree); the documented restore works; bad paths are refused; a data directory of another
 * format version is refused with INDEX_INCOMPATIBLE.
 */
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { FORMAT_VERSION, PACKR_OPTIONS, READABLE_FORMAT_VERSIONS } from '../../src/index/codec.ts';
import type { DocumentInput } from '../../src/types.ts';
import { buildTestApp, makeCorpus, tmpDir, type TestApp } from '../helpers/index.ts';

const BATCHES = 8;
const BATCH_SIZE = 250;
/** Letters the Porter2 stemmer leaves alone at a word's end, so each unique word stays one term. */
const LETTERS = 'bcfhjkmnpqrtvwxz';

/** A word no other document holds: `zz` and the index in base 16 over LETTERS. */
function uniqueWord(i: number): string {
  let w = '';
  for (let k = 0; k < 4; k++) w += LETTERS[(i >> (4 * (3 - k))) & 15];
  return `zz${w}`;
}

function batch(b: number): DocumentInput[] {
  return makeCorpus(BATCH_SIZE, 100 + b, `b${b}-`).map((d, i) => ({ ...d, text: `${d.text} ${uniqueWord(b * BATCH_SIZE + i)}` }));
}

const opened: TestApp[] = [];
afterEach(async () => {
  // Snapshot apps first: their folders live inside the source app's data directory.
  while (opened.length) await opened.shift()!.close();
});

async function start(dir?: string): Promise<TestApp> {
  const t = await buildTestApp({}, dir ? { dir } : {});
  opened.unshift(t);
  return t;
}

function expectProblem(res: LightMyRequestResponse, status: number, code: string): void {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status, code });
}

async function snapshot(app: FastifyInstance, body?: Record<string, unknown>): Promise<{ path: string; bytes: number; ms: number }> {
  const res = await app.inject({ method: 'POST', url: '/admin/snapshot', ...(body ? { payload: body } : {}) });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

/**
 * Checks a data directory's consistency through the API: the stored ids are whole batches
 * b0..b(n-1), the collection count agrees, and each document is found by its unique word.
 */
async function expectConsistent(app: FastifyInstance): Promise<number> {
  const ids = [...app.engine.store.collectionDbs('default').docs.getKeys()] as string[];
  expect(ids.length % BATCH_SIZE, 'a batch was split by the snapshot').toBe(0);
  const batches = ids.length / BATCH_SIZE;
  const expected = new Set<string>();
  for (let b = 0; b < batches; b++) for (let i = 0; i < BATCH_SIZE; i++) expected.add(`b${b}-${i}`);
  expect(new Set(ids)).toEqual(expected);
  const info = await app.inject({ method: 'GET', url: '/collections/default' });
  expect(info.json().documents).toBe(ids.length);
  const all = [...expected];
  for (let start = 0; start < all.length; start += 500) {
    const chunk = all.slice(start, start + 500);
    const queries = chunk.map((id) => {
      const [b, i] = id.slice(1).split('-').map(Number);
      return uniqueWord(b * BATCH_SIZE + i);
    });
    const res = await app.inject({ method: 'POST', url: '/search', payload: { queries, k: 1, mode: 'lexical' } });
    expect(res.statusCode, res.body).toBe(200);
    const top = res.json().results.map((r: { hits: Array<{ id: string }> }) => r.hits[0]?.id);
    expect(top).toEqual(chunk);
  }
  return ids.length;
}

describe('POST /admin/snapshot', () => {
  it('takes consistent snapshots during concurrent ingest; each opens as a data directory; restore works', async () => {
    const source = await start();
    const app = source.app;
    let acked = 0;
    const ingest = (async () => {
      for (let b = 0; b < BATCHES; b++) {
        const res = await app.inject({ method: 'POST', url: '/documents', payload: { documents: batch(b) } });
        expect(res.statusCode, res.body).toBe(200);
        acked++;
      }
    })();
    // Each snapshot with the batches acknowledged before it was asked for and after it answered.
    const taken: Array<{ path: string; bytes: number; before: number; after: number }> = [];
    while (acked < BATCHES) {
      const before = acked;
      const s = await snapshot(app, { path: `during-${taken.length}/r3serve.mdb` });
      taken.push({ ...s, before, after: acked });
      await new Promise((r) => setTimeout(r, 40));
    }
    await ingest;
    taken.push({ ...(await snapshot(app, { path: 'after/r3serve.mdb', compact: true })), before: BATCHES, after: BATCHES });
    expect(taken.length).toBeGreaterThanOrEqual(3);

    for (const s of taken) expect(s.bytes).toBe(statSync(s.path).size);
    // Open at most four (first, middle, last during ingest, and after): every app builds analyzers,
    // and a process that builds about 20 of them fails (the wink bug in the issue 7 report).
    // An intermediate one surely holds some batches but not all: one was acknowledged before it,
    // and at most one more could commit while it ran.
    const intermediate = taken.filter((s) => s.before > 0 && s.after <= BATCHES - 2);
    expect(intermediate.length, JSON.stringify(taken.map(({ before, after }) => [before, after]))).toBeGreaterThan(0);
    const checked = [...new Set([taken[0], intermediate[Math.floor(intermediate.length / 2)], taken[taken.length - 2], taken[taken.length - 1]])];
    const counts: number[] = [];
    for (const s of checked) {
      const copy = await start(dirname(s.path));
      const count = await expectConsistent(copy.app);
      // Everything acknowledged before the snapshot is in it; nothing past the batch in flight after it.
      expect(count).toBeGreaterThanOrEqual(s.before * BATCH_SIZE);
      expect(count).toBeLessThanOrEqual(Math.min(BATCHES, s.after + 1) * BATCH_SIZE);
      counts.push(count);
      await opened.shift()!.close();
    }
    expect(counts[counts.length - 1]).toBe(BATCHES * BATCH_SIZE);
    expect(counts.some((c) => c > 0 && c < BATCHES * BATCH_SIZE), `counts ${counts}`).toBe(true);

    // The documented restore: stop, copy the snapshot file to <dataDir>/r3serve.mdb, start.
    const middle = checked[1] ?? checked[0];
    const target = tmpDir();
    try {
      copyFileSync(middle.path, join(target.dir, 'r3serve.mdb'));
      const restored = await start(target.dir);
      expect(await expectConsistent(restored.app)).toBe(counts[checked.indexOf(middle)]);
      // The restored store takes writes again.
      const res = await restored.app.inject({ method: 'POST', url: '/documents', payload: { documents: [{ id: 'new', text: 'after the restore' }] } });
      expect(res.statusCode, res.body).toBe(200);
      await opened.shift()!.close();
    } finally {
      target.cleanup();
    }
  });

  it('defaults to snapshots/<timestamp>/r3serve.mdb and accepts an empty body', async () => {
    const { app, dir } = await start();
    const s = await snapshot(app);
    expect(s.path.startsWith(join(dir, 'snapshots'))).toBe(true);
    expect(s.path.endsWith('/r3serve.mdb')).toBe(true);
    expect(existsSync(s.path)).toBe(true);
    expect(s.bytes).toBeGreaterThan(0);
    expect(typeof s.ms).toBe('number');
  });

  it('refuses paths outside the snapshot folder, existing snapshots and bad bodies', async () => {
    const { app, dir } = await start();
    for (const path of ['../escape.mdb', '../../etc/x.mdb', '/etc/r3serve.mdb', 'a/../../b.mdb', 'sub/', '.', 'x\u0000y']) {
      expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload: { path } }), 400, 'SNAPSHOT_PATH_INVALID');
    }
    expect(existsSync(join(dir, 'escape.mdb'))).toBe(false);
    await snapshot(app, { path: 'one.mdb' });
    expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload: { path: 'one.mdb' } }), 409, 'SNAPSHOT_EXISTS');
    // A folder component that is a file, or a file name too long for the file system.
    expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload: { path: 'one.mdb/inner.mdb' } }), 400, 'SNAPSHOT_PATH_INVALID');
    expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload: { path: `${'n'.repeat(250)}.mdb` } }), 400, 'SNAPSHOT_PATH_INVALID');
    expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload: { path: `${'d'.repeat(300)}/x.mdb` } }), 400, 'SNAPSHOT_PATH_INVALID');
    // An absolute path inside the folder is fine.
    await snapshot(app, { path: join(dir, 'snapshots', 'two.mdb') });
    for (const payload of [{ path: 5 }, { compact: 'yes' }, { other: 1 }, { path: '' }]) {
      expectProblem(await app.inject({ method: 'POST', url: '/admin/snapshot', payload }), 400, 'BODY_INVALID');
    }
  });

  it('serialises concurrent snapshots', async () => {
    const { app } = await start();
    await app.inject({ method: 'POST', url: '/documents', payload: { documents: makeCorpus(50) } });
    const results = await Promise.all([1, 2, 3].map((n) => snapshot(app, { path: `c${n}/r3serve.mdb` })));
    for (const r of results) expect(r.bytes).toBeGreaterThan(0);
  });
});

describe('format version', () => {
  it.each([
    ['newer', FORMAT_VERSION + 1],
    ['older', Math.min(...READABLE_FORMAT_VERSIONS) - 1],
  ])('refuses a data directory from a %s format it cannot read with INDEX_INCOMPATIBLE', async (_, version) => {
    const { app } = await start();
    const s = await snapshot(app, { path: 'v/r3serve.mdb' });
    // Rewrite the snapshot's format version the way a different server version would have left it.
    const env = open({ path: s.path, encoder: PACKR_OPTIONS, compression: false } as Parameters<typeof open>[0]);
    env.putSync('formatVersion', version);
    await env.close();
    const err = await buildTestApp({}, { dir: dirname(s.path) }).then(
      async (t) => {
        await t.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'INDEX_INCOMPATIBLE', status: 500 });
  });
});
