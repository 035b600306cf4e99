/**
 * RCL routes: `POST /rcl/offline` (pools and thresholds), `POST /rcl/rollouts` (on-policy
 * candidates for trainers with their own LLM), `POST /rcl/step` (one training step),
 * `POST /rcl/calibrate` (fit the serving mix γ on held-out queries) and `GET /rcl/status`. Handlers map bodies onto `RclService`.
 */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_COLLECTION } from '../../search/collections.ts';
import type { CalibrateRequest, OfflineRequest, StepRequest } from '../../rcl/loop.ts';
import { collectionNameSchema, problemResponses } from '../schemas/common.ts';

const queryInput = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 512 },
    text: { type: 'string', minLength: 1 },
    answers: { type: 'array', items: { type: 'string' } },
    choices: { type: 'array', items: { type: 'string' }, minItems: 2 },
    gold: { type: 'integer', minimum: 0 },
  },
} as const;

const postedScore = {
  type: 'object',
  required: ['queryId', 'docId', 'score'],
  additionalProperties: false,
  properties: {
    queryId: { type: 'string', minLength: 1 },
    docId: { type: 'string', minLength: 1 },
    answer: { type: 'string' },
    score: { type: 'number', minimum: 0 },
    label: { enum: [0, 1] },
  },
} as const;

/** Most queries in one offline, rollout or step request. */
const MAX_QUERIES = 1_000;

/** A request body over a batch of queries (offline, rollouts, step), with route-specific fields. */
function queriesBody(extra: Record<string, object>) {
  return {
    type: 'object',
    required: ['queries'],
    additionalProperties: false,
    properties: {
      collection: collectionNameSchema,
      queries: { type: 'array', minItems: 1, maxItems: MAX_QUERIES, items: queryInput },
      ...extra,
    },
  } as const;
}

export default async function rclRoutes(app: FastifyInstance): Promise<void> {
  const { rcl, collections } = app.engine;

  app.post<{ Body: OfflineRequest & { collection?: string } }>(
    '/rcl/offline',
    {
      schema: {
        body: queriesBody({
          scores: { type: 'array', items: postedScore },
          environment: { type: 'string' },
          depth: { type: 'integer', minimum: 1, maximum: 1000 },
        }),
        response: { ...problemResponses },
      },
    },
    async (request) => {
      const { collection = DEFAULT_COLLECTION, ...req } = request.body;
      return rcl.offline(collection, req);
    },
  );

  app.post<{ Body: { collection?: string; queries: Array<{ id: string; text?: string }>; k?: number; includeDocuments?: boolean } }>(
    '/rcl/rollouts',
    {
      schema: {
        body: queriesBody({
          k: { type: 'integer', minimum: 1, maximum: 100 },
          includeDocuments: { type: 'boolean' },
        }),
        response: { ...problemResponses },
      },
    },
    async (request) => {
      const { collection = DEFAULT_COLLECTION, queries, k, includeDocuments = true } = request.body;
      const r = await rcl.createRollout(collection, queries, k);
      const index = collections.get(collection).index;
      return {
        rollout: r.id,
        version: r.version,
        queries: [...r.queries].map(([id, q]) => ({
          id,
          text: q.text,
          candidates: q.docs.map((docId, rank) => {
            const d = includeDocuments ? index.getDocument(docId) : undefined;
            return d ? { docId, rank, title: d.title, text: d.text } : { docId, rank };
          }),
        })),
      };
    },
  );

  app.post<{ Body: StepRequest & { collection?: string } }>(
    '/rcl/step',
    {
      schema: {
        body: queriesBody({
          rollout: { type: 'string' },
          scores: { type: 'array', items: postedScore },
          environment: { type: 'string' },
          learningRate: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        }),
        response: { ...problemResponses },
      },
    },
    async (request) => {
      const { collection = DEFAULT_COLLECTION, ...req } = request.body;
      return rcl.step(collection, req);
    },
  );

  app.post<{ Body: CalibrateRequest & { collection?: string } }>(
    '/rcl/calibrate',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            collection: collectionNameSchema,
            queries: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 100_000 },
            environment: { type: 'string' },
            grid: { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 1, maxItems: 100 },
            expansionScales: { type: 'array', items: { type: 'number', minimum: 0, maximum: 10 }, minItems: 1, maxItems: 20 },
            proximityWeights: { type: 'array', items: { type: 'number', minimum: 0, maximum: 100 }, minItems: 1, maxItems: 20 },
            proximityWindows: { type: 'array', items: { type: 'integer', minimum: 2, maximum: 4096 }, minItems: 1, maxItems: 20 },
            lexicalWeights: { type: 'array', items: { type: 'number', minimum: 0, maximum: 100 }, minItems: 1, maxItems: 20 },
          },
        },
        response: { ...problemResponses },
      },
    },
    async (request) => {
      const { collection = DEFAULT_COLLECTION, ...req } = request.body;
      return rcl.calibrate(collection, req);
    },
  );

  app.get<{ Querystring: { collection?: string } }>(
    '/rcl/status',
    { schema: { querystring: { type: 'object', properties: { collection: collectionNameSchema } }, response: { ...problemResponses } } },
    async (request) => {
      const name = request.query.collection ?? DEFAULT_COLLECTION;
      return { collection: name, environments: rcl.environmentNames(), ...rcl.counters(name) };
    },
  );
}
