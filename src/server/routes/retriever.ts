/**
 * Retriever routes: `GET /retriever` (current version, lineage, configuration),
 * `POST /retriever/rollback` (make a stored version current again) and `POST /retriever/model`
 * (hot-swap an onnx retriever's model directory). Nothing here re-indexes.
 */
import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.ts';
import { DEFAULT_COLLECTION } from '../../search/collections.ts';
import { isModelSwappable } from '../../search/onnx-retriever.ts';
import { isTrainable } from '../../search/trainable.ts';
import { collectionNameSchema, problemResponses } from '../schemas/common.ts';

const versionSchema = {
  type: 'object',
  properties: {
    version: { type: 'integer' },
    parent: { type: ['integer', 'null'] },
    createdAt: { type: 'string' },
    origin: { type: 'string' },
    info: { type: 'object', additionalProperties: true },
  },
} as const;

const modelSchema = {
  type: 'object',
  properties: { dir: { type: 'string' }, hash: { type: 'string' }, kind: { type: 'string' }, provider: { type: 'string' } },
} as const;

const retrieverSchema = {
  type: 'object',
  properties: {
    collection: { type: 'string' },
    kind: { type: 'string' },
    current: versionSchema,
    versions: { type: 'array', items: versionSchema },
    config: { type: 'object', additionalProperties: true },
  },
} as const;

export default async function retrieverRoutes(app: FastifyInstance): Promise<void> {
  const { collections } = app.engine;

  const trainableOf = (name: string) => {
    const r = collections.get(name).searcher.retriever;
    if (!isTrainable(r)) throw createError('RETRIEVER_UNSUPPORTED', { retriever: r?.kind ?? 'bm25', reason: 'this collection has no parametric retriever' });
    return r;
  };

  app.get<{ Querystring: { collection?: string } }>(
    '/retriever',
    { schema: { querystring: { type: 'object', properties: { collection: collectionNameSchema } }, response: { 200: retrieverSchema, ...problemResponses } } },
    async (request) => {
      const name = request.query.collection ?? DEFAULT_COLLECTION;
      return { collection: name, ...trainableOf(name).describe() };
    },
  );

  app.post<{ Body: { collection?: string; version: number } }>(
    '/retriever/rollback',
    {
      schema: {
        body: { type: 'object', required: ['version'], additionalProperties: false, properties: { collection: collectionNameSchema, version: { type: 'integer', minimum: 0 } } },
        response: { 200: retrieverSchema, ...problemResponses },
      },
    },
    async (request) => {
      const name = request.body.collection ?? DEFAULT_COLLECTION;
      const r = trainableOf(name);
      await r.rollback(request.body.version);
      return { collection: name, ...r.describe() };
    },
  );

  app.post<{ Body: { collection?: string; model: string } }>(
    '/retriever/model',
    {
      schema: {
        body: {
          type: 'object',
          required: ['model'],
          additionalProperties: false,
          properties: { collection: collectionNameSchema, model: { type: 'string', minLength: 1, maxLength: 4096 } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              ...retrieverSchema.properties,
              swap: { type: 'object', properties: { version: { type: 'integer' }, ms: { type: 'number' }, model: modelSchema, previous: modelSchema } },
            },
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const name = request.body.collection ?? DEFAULT_COLLECTION;
      const r = collections.get(name).searcher.retriever;
      if (!isModelSwappable(r)) throw createError('RETRIEVER_UNSUPPORTED', { retriever: r?.kind ?? 'bm25', reason: 'only onnx retrievers load model directories' });
      const swap = await r.swapModel(request.body.model);
      return { collection: name, ...r.describe(), swap };
    },
  );
}
