/**
 * Document routes: bulk upsert (JSON batch, or `application/x-ndjson` streamed in chunks), get,
 * delete one, delete many. A 2xx answer means every document in it is durable.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { createError } from '../../errors.ts';
import { DEFAULT_COLLECTION } from '../../search/collections.ts';
import type { DocumentInput } from '../../types.ts';
import { Ajv } from 'ajv';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../json-depth.ts';
import { collectionNameSchema, documentSchema, problemResponses } from '../schemas/common.ts';

const writeResult = {
  type: 'object',
  properties: {
    collection: { type: 'string' },
    count: { type: 'integer' },
    inserted: { type: 'integer' },
    replaced: { type: 'integer' },
    ms: { type: 'number' },
  },
} as const;

const upsertBody = {
  type: 'object',
  required: ['documents'],
  additionalProperties: false,
  properties: {
    collection: collectionNameSchema,
    documents: { type: 'array', items: { $ref: 'Document#' } },
  },
} as const;

const collectionQuery = { type: 'object', properties: { collection: collectionNameSchema } } as const;

/** Documents between two progress lines in the log of a streamed load. */
const PROGRESS_EVERY_DOCS = 50_000;

export default async function documentRoutes(app: FastifyInstance): Promise<void> {
  const { collections, config } = app.engine;
  const maxBatch = config.limits.maxDocumentsPerBatch;

  // NDJSON bodies are streamed to the handler, never buffered whole.
  app.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));

  app.post<{ Body: { collection?: string; documents: DocumentInput[] } | Readable; Querystring: { collection?: string } }>(
    '/documents',
    {
      schema: { querystring: collectionQuery, response: { 200: writeResult, ...problemResponses } },
      // JSON bodies are validated here; NDJSON line by line in the handler.
      preValidation: async (request) => {
        if (isStream(request.body)) return;
        if (!validateUpsert(request.body)) {
          const err = new Error(validateUpsert.errors?.map((e) => `body${e.instancePath} ${e.message}`).join(', ')) as Error & { validation: unknown; statusCode: number };
          err.validation = validateUpsert.errors;
          err.statusCode = 400;
          throw err;
        }
      },
    },
    async (request) => {
      const t0 = performance.now();
      if (isStream(request.body)) {
        const name = request.query.collection ?? DEFAULT_COLLECTION;
        collections.get(name);
        const totals = { inserted: 0, replaced: 0, count: 0 };
        let batch: DocumentInput[] = [];
        let line = 0;
        const flush = async () => {
          const r = await collections.ingest(name, batch);
          totals.inserted += r.inserted;
          totals.replaced += r.replaced;
          totals.count += batch.length;
          if (Math.floor(totals.count / PROGRESS_EVERY_DOCS) !== Math.floor((totals.count - batch.length) / PROGRESS_EVERY_DOCS)) {
            request.log.info({ collection: name, documents: totals.count, docsPerSecond: Math.round(totals.count / ((performance.now() - t0) / 1000)) }, 'ingest progress');
          }
          batch = [];
        };
        for await (const text of utf8Lines(request.body)) {
          line++;
          if (text.trim() === '') continue;
          let doc: DocumentInput;
          if (jsonTooDeep(text)) throw createError('BODY_INVALID', { reason: `line ${line} nests deeper than ${MAX_JSON_DEPTH} levels` }, { details: { line, acknowledged: totals.count } });
          try {
            doc = JSON.parse(text) as DocumentInput;
          } catch {
            throw createError('BODY_INVALID', { reason: `line ${line} is not JSON` }, { details: { line, acknowledged: totals.count } });
          }
          batch.push(doc);
          if (batch.length >= Math.min(maxBatch, 2_000)) await flush();
        }
        if (batch.length) await flush();
        return { collection: name, ...totals, ms: performance.now() - t0 };
      }
      const body = request.body;
      const name = body.collection ?? request.query.collection ?? DEFAULT_COLLECTION;
      if (body.documents.length > maxBatch) throw createError('DOCUMENTS_TOO_MANY', { limit: maxBatch, count: body.documents.length });
      const r = await collections.ingest(name, body.documents);
      return { collection: name, count: body.documents.length, ...r, ms: performance.now() - t0 };
    },
  );

  const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 512 } } } as const;

  app.get<{ Params: { id: string }; Querystring: { collection?: string } }>(
    '/documents/:id',
    { schema: { params: idParams, querystring: collectionQuery, response: { 200: { $ref: 'Document#' }, ...problemResponses } } },
    async (request) => {
      const name = request.query.collection ?? DEFAULT_COLLECTION;
      const doc = collections.get(name).index.getDocument(request.params.id);
      if (!doc) throw createError('DOCUMENT_NOT_FOUND', { id: request.params.id, collection: name });
      return { id: request.params.id, title: doc.title, text: doc.text, metadata: doc.metadata };
    },
  );

  app.delete<{ Params: { id: string }; Querystring: { collection?: string } }>(
    '/documents/:id',
    { schema: { params: idParams, querystring: collectionQuery, response: { 200: { type: 'object', properties: { deleted: { type: 'integer' } } }, ...problemResponses } } },
    async (request) => {
      const name = request.query.collection ?? DEFAULT_COLLECTION;
      const deleted = await collections.deleteDocuments(name, [request.params.id]);
      if (deleted.length === 0) throw createError('DOCUMENT_NOT_FOUND', { id: request.params.id, collection: name });
      return { deleted: 1 };
    },
  );

  app.post<{ Body: { collection?: string; ids: string[] } }>(
    '/documents/delete',
    {
      schema: {
        body: {
          type: 'object',
          required: ['ids'],
          additionalProperties: false,
          properties: { collection: collectionNameSchema, ids: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 512 } } },
        },
        response: { 200: { type: 'object', properties: { deleted: { type: 'integer' }, ids: { type: 'array', items: { type: 'string' } } } }, ...problemResponses },
      },
    },
    async (request) => {
      const name = request.body.collection ?? DEFAULT_COLLECTION;
      if (request.body.ids.length > maxBatch) throw createError('DOCUMENTS_TOO_MANY', { limit: maxBatch, count: request.body.ids.length });
      const ids = await collections.deleteDocuments(name, request.body.ids);
      return { deleted: ids.length, ids };
    },
  );

}

/**
 * Lines of a UTF-8 stream, decoded strictly: invalid bytes end the load with BODY_NOT_UTF8
 * (what the JSON parser does for JSON bodies), never a silent U+FFFD. Chunks committed before
 * stay acknowledged.
 */
async function* utf8Lines(stream: Readable): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending = '';
  const decode = (chunk?: Uint8Array) => {
    try {
      return chunk ? decoder.decode(chunk, { stream: true }) : decoder.decode();
    } catch {
      throw createError('BODY_NOT_UTF8');
    }
  };
  for await (const chunk of stream) {
    pending += decode(chunk as Uint8Array);
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
    }
  }
  pending += decode();
  if (pending.length > 0) yield pending.replace(/\r$/, '');
}

function isStream(body: unknown): body is Readable {
  return typeof body === 'object' && body !== null && typeof (body as Readable).pipe === 'function';
}

/** JSON batches are validated here rather than by route schema: NDJSON bodies are streams. */
const validateUpsert = new Ajv({ allErrors: false }).compile({
  ...upsertBody,
  properties: { ...upsertBody.properties, documents: { type: 'array', items: { ...documentSchema, $id: undefined } } },
});
