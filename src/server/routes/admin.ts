/**
 * Admin routes (scope `admin`): `POST /admin/snapshot` writes a consistent copy of the store while
 * serving. Restore: stop the server, copy the snapshot file to `<dataDir>/r3serve.mdb`, start it.
 */
import type { FastifyInstance } from 'fastify';
import { resolveSnapshotPath, snapshotStore } from '../../index/snapshot.ts';
import { problemResponses, emptyBodyAsObject } from '../schemas/common.ts';

const snapshotBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    /** File path relative to `<dataDir>/snapshots`; default `<UTC timestamp>/r3serve.mdb`. */
    path: { type: 'string', minLength: 1, maxLength: 1024 },
    /** Omit free pages (slower, smaller). Default false. */
    compact: { type: 'boolean' },
  },
} as const;

const snapshotResult = {
  type: 'object',
  properties: { path: { type: 'string' }, bytes: { type: 'integer' }, ms: { type: 'number' } },
} as const;

export default async function adminRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Body: { path?: string; compact?: boolean } | undefined }>(
    '/admin/snapshot',
    {
      schema: { body: snapshotBody, response: { 200: snapshotResult, ...problemResponses } },
      // The body is optional: no body means every default.
      preValidation: emptyBodyAsObject,
    },
    async (request) => {
      const { store, config } = app.engine;
      const target = resolveSnapshotPath(config.store.dataDir, request.body?.path);
      const result = await snapshotStore(store, target, { compact: request.body?.compact });
      request.log.info(result, 'snapshot written');
      return result;
    },
  );
}
