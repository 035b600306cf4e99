/**
 * Collection routes: create (PUT), list, describe, drop. Handlers parse, call one domain
 * function and shape the response.
 */
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AnalyzerInput } from '../../analysis/index.ts';
import type { Collection } from '../../search/collections.ts';
import { collectionNameSchema, problemResponses, emptyBodyAsObject } from '../schemas/common.ts';

export const collectionInfoSchema = {
  $id: 'CollectionInfo',
  type: 'object',
  properties: {
    name: { type: 'string' },
    analyzer: { type: 'object', additionalProperties: true },
    retriever: { type: 'object', additionalProperties: true },
    documents: { type: 'integer' },
    terms: { type: 'integer' },
    averageLength: { type: 'number' },
    uncheckpointed: {
      type: 'integer',
      description: 'Committed documents whose postings are not checkpointed yet (durable; re-indexed from the forward store after a crash)',
    },
    createdAt: { type: 'string' },
  },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    analyzer: {
      type: 'object',
      additionalProperties: false,
      properties: {
        name: { enum: ['wink', 'wordpiece'] },
        stem: { type: 'boolean' },
        // wordpiece: the vocabulary of a model directory (or a vocab.txt / tokenizer.json file)
        model: { type: 'string', minLength: 1, maxLength: 4096 },
        vocabPath: { type: 'string', minLength: 1, maxLength: 4096 },
        lowercase: { type: 'boolean' },
        stripAccents: { type: 'boolean' },
      },
    },
    retriever: {
      type: 'object',
      additionalProperties: true,
      properties: { kind: { enum: ['sidr-glove', 'bm25', 'onnx'] }, model: { type: 'string', minLength: 1, maxLength: 4096 } },
    },
  },
} as const;

/** Options as shown to clients: model and vocabulary paths reduced to their last segment. */
function withoutPaths(options: Record<string, unknown>): Record<string, unknown> {
  const out = { ...options };
  for (const key of ['model', 'vocabPath', 'vocab']) if (typeof out[key] === 'string') out[key] = basename(out[key] as string);
  return out;
}

/** Public description of a collection. */
export function describeCollection(c: Collection): Record<string, unknown> {
  const retriever = c.searcher.retriever;
  return {
    name: c.name,
    analyzer: withoutPaths(c.options.analyzer as unknown as Record<string, unknown>),
    retriever: { ...withoutPaths(c.options.retriever), version: retriever ? retriever.version : null },
    documents: c.index.liveCount,
    terms: c.index.vocabularySize,
    averageLength: c.index.avgLength,
    uncheckpointed: c.index.uncheckpointed,
    createdAt: c.createdAt,
  };
}

export default async function collectionRoutes(app: FastifyInstance): Promise<void> {
  const params = { type: 'object', required: ['name'], properties: { name: collectionNameSchema } } as const;

  app.put<{ Params: { name: string }; Body: { analyzer?: AnalyzerInput; retriever?: { kind?: 'sidr-glove' | 'bm25' | 'onnx'; model?: string } } }>(
    '/collections/:name',
    {
      // The options are optional: a PUT without a body creates a collection with the defaults.
      preValidation: emptyBodyAsObject,
      schema: { params, body: createBody, response: { 200: { $ref: 'CollectionInfo#' }, 201: { $ref: 'CollectionInfo#' }, ...problemResponses } } },
    async (request, reply) => {
      const { collection, created } = await app.engine.collections.create(request.params.name, request.body);
      return reply.code(created ? 201 : 200).send(describeCollection(collection));
    },
  );

  app.get('/collections', { schema: { response: { 200: { type: 'object', properties: { collections: { type: 'array', items: { $ref: 'CollectionInfo#' } } } } } } }, async () => ({
    collections: app.engine.collections.list().map(describeCollection),
  }));

  app.get<{ Params: { name: string } }>('/collections/:name', { schema: { params, response: { 200: { $ref: 'CollectionInfo#' }, ...problemResponses } } }, async (request) =>
    describeCollection(app.engine.collections.get(request.params.name)),
  );

  // Postings reach LMDB at checkpoints (after a second of writer idleness, every 50,000 documents
  // and on shutdown); this takes one now, e.g. before a snapshot or a timed benchmark.
  app.post<{ Params: { name: string } }>(
    '/collections/:name/checkpoint',
    { schema: { params, response: { 200: { $ref: 'CollectionInfo#' }, ...problemResponses } } },
    async (request) => {
      const c = app.engine.collections.get(request.params.name);
      await c.index.checkpoint();
      return describeCollection(c);
    },
  );

  app.delete<{ Params: { name: string } }>('/collections/:name', { schema: { params, response: { ...problemResponses } } }, async (request, reply) => {
    await app.engine.collections.drop(request.params.name);
    return reply.code(204).send();
  });
}
