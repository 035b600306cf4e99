/**
 * The published contract: every path and method of `openapi.yaml` is a registered route, the
 * document equals what the routes' schemas generate now, and each shared schema under
 * `components.schemas` deep-equals its counterpart in `server/schemas/`.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { collectionInfoSchema } from '../../src/server/routes/collections.ts';
import { documentSchema, problemSchema } from '../../src/server/schemas/common.ts';
import { buildTestApp, type TestApp } from '../helpers/index.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

describe('openapi.yaml', () => {
  let t: TestApp;
  const published = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8'));
  beforeAll(async () => {
    t = await buildTestApp();
    await t.app.ready();
  });
  afterAll(() => t.close());

  it('lists only registered routes', () => {
    const paths = Object.entries(published.paths as Record<string, Record<string, unknown>>);
    expect(paths.length).toBeGreaterThan(10);
    for (const [path, ops] of paths) {
      for (const method of METHODS) {
        if (!ops[method]) continue;
        const url = path.replace(/\{(\w+)\}/g, ':$1');
        expect(t.app.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${method} ${path}`).toBe(true);
      }
    }
  });

  it('equals the document generated from the route schemas (regenerate with scripts/openapi.ts)', () => {
    expect(JSON.parse(JSON.stringify(t.app.swagger()))).toEqual(published);
  });

  it('keeps the shared schemas identical to server/schemas', () => {
    const strip = ({ $id: _id, ...rest }: Record<string, unknown>) => rest;
    expect(published.components.schemas.Problem).toEqual(strip(problemSchema));
    expect(published.components.schemas.Document).toEqual(strip(documentSchema));
    expect(published.components.schemas.CollectionInfo).toEqual(strip(collectionInfoSchema));
  });
});
