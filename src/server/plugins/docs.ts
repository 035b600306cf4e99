/**
 * OpenAPI: @fastify/swagger collects every route's JSON schemas into an OpenAPI 3 document
 * (written to `openapi.yaml` by `scripts/openapi.ts` and checked by the contract test), and
 * @fastify/swagger-ui serves it at `/docs`. Registered before the routes so it sees them all.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_INFO = {
  title: 'r3serve',
  description:
    'Retrieval server for RAG: a frozen bag-of-tokens index, live parametric re-ranking, and online reinforced contrastive learning from LLM feedback without re-indexing. Every error is application/problem+json with a stable `code`.',
  version: '0.1.0',
};

export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: OPENAPI_INFO,
      servers: [{ url: 'http://127.0.0.1:8080' }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' } } },
    },
    // Shared schemas keep their $id as the component name (Problem, Document, CollectionInfo).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
