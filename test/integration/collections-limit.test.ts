/**
 * A data directory holds a bounded number of collections (LMDB's named databases): past it,
 * creation answers a coded 507 before writing anything, and the server still restarts.
 */
import { describe, expect, it } from 'vitest';
import { MAX_COLLECTIONS } from '../../src/index/store.ts';
import { buildTestApp } from '../helpers/index.ts';

describe('collection limit', () => {
  it('refuses the collection past the limit with COLLECTIONS_TOO_MANY and reopens cleanly', async () => {
    const t = await buildTestApp();
    try {
      for (let i = 1; i < MAX_COLLECTIONS; i++) expect((await t.app.inject({ method: 'PUT', url: `/collections/c${i}` })).statusCode).toBe(201);
      const over = await t.app.inject({ method: 'PUT', url: '/collections/one-too-many' });
      expect(over.statusCode).toBe(507);
      expect(over.json().code).toBe('COLLECTIONS_TOO_MANY');
      await t.app.close();
      const again = await buildTestApp({}, { dir: t.dir });
      expect((await again.app.inject({ method: 'GET', url: '/collections' })).json().collections).toHaveLength(MAX_COLLECTIONS);
      expect((await again.app.inject({ method: 'DELETE', url: '/collections/c1' })).statusCode).toBe(204);
      expect((await again.app.inject({ method: 'PUT', url: '/collections/one-more' })).statusCode).toBe(201);
      await again.app.close();
    } finally {
      await t.close().catch(() => undefined);
    }
  }, 120_000);
});
