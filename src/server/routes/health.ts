/**
 * Liveness, readiness and the OpenAPI document: `GET /health`, `GET /ready`, `GET /openapi.yaml`.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.ts';
import { isNativeEnabled } from '../../kernels/index.ts';
import { executionProviders } from '../../search/onnx-retriever.ts';

export const OPENAPI_PATH = new URL('../../../openapi.yaml', import.meta.url);

export default async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', async () => {
    const e = app.engine;
    return {
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - e.startedAt) / 1000),
      collections: e.collections.list().length,
      nativeKernels: isNativeEnabled(),
      // onnx retrievers: providers this build can use (CUDA → WebGPU → CPU) and the one each collection runs on
      executionProviders: executionProviders(e.collections.list()),
      node: process.version,
    };
  });

  app.get('/ready', async (_request, reply) => {
    if (!app.engine.ready) return reply.code(503).type('application/problem+json').send({ type: 'about:blank', title: 'Not ready', status: 503, code: 'RETRIEVER_NOT_READY' });
    return { ready: true };
  });

  app.get('/openapi.yaml', async (request, reply) => {
    let text: string;
    try {
      text = readFileSync(OPENAPI_PATH, 'utf8');
    } catch {
      // A checkout or package without the contract file: a 404 problem, not a 500.
      throw createError('NOT_FOUND', { method: request.method, url: '/openapi.yaml' });
    }
    return reply.type('application/yaml').send(text);
  });
}
