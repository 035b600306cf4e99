/**
 * `POST /search`: one query or a batch, in `late` (default when the collection's retriever has a
 * parametric side), `beta` or `lexical` mode. The handler maps the body onto `Searcher.search`.
 */
import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.ts';
import { DEFAULT_COLLECTION } from '../../search/collections.ts';
import type { SearchMode, SearchResult } from '../../search/searcher.ts';
import { collectionNameSchema, problemResponses } from '../schemas/common.ts';

export const searchBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    collection: collectionNameSchema,
    query: { type: 'string' },
    queries: { type: 'array', items: { type: 'string' } },
    k: { type: 'integer', minimum: 1 },
    m: { type: 'integer', minimum: 1 },
    mode: { enum: ['late', 'beta', 'lexical'] },
    explain: { type: 'boolean' },
    includeDocuments: { type: 'boolean' },
    filter: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
  },
} as const;

const hitSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    score: { type: 'number' },
    firstStageScore: { type: 'number' },
    parametricScore: { type: 'number' },
    proximityScore: { type: 'number', description: "Late mode with term proximity on: the idf mass of the query's non-stop words that the best window of the document's text holds (exact word forms)." },
    lexicalScore: { type: 'number', description: "Late mode with the lexical term on: BM25 of the query's non-stop words over their exact frequencies in the document's text." },
    title: { type: 'string' },
    text: { type: 'string' },
    metadata: { type: 'object', additionalProperties: true },
    explain: { type: 'object', additionalProperties: true },
  },
} as const;

const resultSchema = {
  type: 'object',
  properties: {
    mode: { type: 'string' },
    retrieverVersion: { type: ['integer', 'null'] },
    hits: { type: 'array', items: hitSchema },
    timings: { type: 'object', additionalProperties: { type: 'number' } },
  },
} as const;

interface SearchBody {
  collection?: string;
  query?: string;
  queries?: string[];
  k?: number;
  m?: number;
  mode?: SearchMode;
  explain?: boolean;
  includeDocuments?: boolean;
  filter?: Record<string, string | number | boolean>;
}

function shape(r: SearchResult) {
  return { mode: r.mode, retrieverVersion: r.retrieverVersion, hits: r.hits.map(({ docId: _d, ...hit }) => hit), timings: r.timings };
}

export default async function searchRoutes(app: FastifyInstance): Promise<void> {
  const { collections, config } = app.engine;
  const limits = config.limits;
  app.post<{ Body: SearchBody }>(
    '/search',
    {
      schema: {
        body: searchBodySchema,
        response: {
          200: { type: 'object', properties: { ...resultSchema.properties, results: { type: 'array', items: resultSchema } } },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const b = request.body;
      if ((b.query === undefined) === (b.queries === undefined)) throw createError('QUERY_MISSING');
      const queries = b.queries ?? [b.query!];
      if (queries.length > limits.maxQueriesPerRequest) throw createError('QUERIES_TOO_MANY', { limit: limits.maxQueriesPerRequest, count: queries.length });
      for (const q of queries) if (q.length > limits.maxQueryChars) throw createError('QUERY_TOO_LONG', { limit: limits.maxQueryChars });
      const collection = collections.get(b.collection ?? DEFAULT_COLLECTION);
      const k = Math.min(b.k ?? config.search.defaultK, limits.maxK);
      const m = Math.min(b.m ?? config.search.defaultM, limits.maxM);
      const mode = b.mode ?? (collection.searcher.retriever ? 'late' : 'lexical');
      // searchAsync: onnx retrievers encode in a worker thread; the others answer synchronously.
      const run = async (query: string) =>
        shape(await collection.searcher.searchAsync({ query, k, m, mode, explain: b.explain, filter: b.filter, includeDocuments: b.includeDocuments }));
      if (b.queries === undefined) return run(b.query!);
      const results = [];
      for (const q of queries) results.push(await run(q));
      return { results };
    },
  );
}
