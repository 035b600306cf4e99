/**
 * Liveness, readiness and the OpenAPI document: `GET /health`, `GET /ready`, `GET /openapi.yaml`.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { isNativeEnabled } from '../../kernels/index.ts';

export const OPENAPI_PATH = new URL('../../../openapi.yaml', import.meta.url);

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', async () => {
    const e = app.engine;
    return {
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - e.startedAt) / 1000),
      collections: e.collections.list().length,
      nativeKernels: isNativeEnabled(),
      node: process.version,
    };
  });

  app.get('/ready', async (_request, reply) => {
    if (!app.engine.ready) return reply.code(503).type('application/problem+json').send({ type: 'about:blank', title: 'Not ready', status: 503, code: 'RETRIEVER_NOT_READY' });
    return { ready: true };
  });

  app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml').send(readFileSync(OPENAPI_PATH, 'utf8')));
}
