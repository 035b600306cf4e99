/**
 * Shared JSON schemas, registered once with `addSchema` and referenced by `$ref`. `openapi.yaml`
 * mirrors these (a contract test keeps them equal).
 */

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'An RFC 9457 problem with a stable machine-readable code.',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
    errors: { type: 'array', items: { type: 'object', additionalProperties: true } },
  },
} as const;

export const documentSchema = {
  $id: 'Document',
  type: 'object',
  required: ['id', 'text'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 512 },
    title: { type: 'string' },
    text: { type: 'string' },
    metadata: { type: 'object', additionalProperties: true },
  },
} as const;

export const collectionNameSchema = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;

/** Error responses every route may give. */
export const problemResponses = {
  '4xx': { $ref: 'Problem#' },
  '5xx': { $ref: 'Problem#' },
} as const;

export const sharedSchemas = [problemSchema, documentSchema];

/** `preValidation` hook for routes whose body is optional: no body validates as `{}`. */
export async function emptyBodyAsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
