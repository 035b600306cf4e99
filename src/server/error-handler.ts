/**
 * The only place errors become HTTP responses: AppErrors and validation errors pass through as
 * `application/problem+json` (RFC 9457) with our `code`; anything else is logged with its stack
 * and answered as a plain 500 that reveals nothing.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, createError, type ErrorCode } from '../errors.ts';

const PROBLEM_TYPE = 'https://r3serve.dev/problems/';

/** fastify's own error codes that are the client's fault, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'MEDIA_TYPE_UNSUPPORTED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BODY_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BODY_INVALID',
};

function send(reply: FastifyReply, request: FastifyRequest, status: number, code: string, title: string, extra: Record<string, unknown> = {}): void {
  void reply
    .code(status)
    .type('application/problem+json')
    .send({ type: PROBLEM_TYPE + code.toLowerCase().replace(/_/g, '-'), title, status, code, instance: request.url, ...extra });
}

/**
 * fastify's `frameworkErrors` option: router failures that happen before any route or hook runs
 * (an undecodable `%` escape, an over-long path parameter) answered as problems too; fastify's
 * default answers them with plain JSON.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    const e = error.code === 'FST_ERR_BAD_URL'
      ? createError('URL_INVALID', { reason: 'a percent-escape does not decode' })
      : createError('URL_TOO_LONG', { limit: MAX_PARAM_LENGTH });
    return send(reply, request, e.status, e.code, e.message, { detail: e.message });
  }
  request.log.error({ err: error }, 'router error');
  return send(reply, request, 500, 'INTERNAL', 'Internal Server Error');
}

/** Longest decoded path parameter (fastify `maxParamLength`, default 100): ids hold up to 512 characters. */
export const MAX_PARAM_LENGTH = 1024;

/** A validation failure that concerns only a collection name (route param, body or query field). */
function isCollectionNameError(fe: FastifyError, url: string): boolean {
  const v = fe.validation ?? [];
  if (v.length === 0) return false;
  return v.every((e) => e.instancePath === '/collection' || (fe.validationContext === 'params' && e.instancePath === '/name' && url.startsWith('/collections/')));
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
    if (error instanceof AppError) {
      if (error.status >= 500) request.log.error({ err: error }, error.message);
      const extra: Record<string, unknown> = { detail: error.message };
      if (error.details) extra.details = error.details;
      if (error.code === 'RATE_LIMITED' && error.details?.retryAfter) void reply.header('retry-after', String(error.details.retryAfter));
      return send(reply, request, error.status, error.code, error.message, extra);
    }
    const fe = error as FastifyError;
    if (fe.validation && isCollectionNameError(fe, request.url)) {
      const e = createError('COLLECTION_NAME_INVALID', { name: (request.params as { name?: string })?.name ?? (request.body as { collection?: string })?.collection ?? (request.query as { collection?: string })?.collection ?? '' });
      return send(reply, request, e.status, e.code, e.message, { detail: e.message });
    }
    if (fe.validation) {
      return send(reply, request, 400, 'BODY_INVALID', 'The request is invalid', {
        detail: fe.message,
        errors: fe.validation.map((v) => ({ path: v.instancePath, message: v.message, keyword: v.keyword, params: v.params })),
      });
    }
    const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
    if (mapped) {
      const e = createError(mapped, { reason: fe.message, limit: app.initialConfig.bodyLimit, type: request.headers['content-type'] ?? 'none' });
      return send(reply, request, e.status, e.code, e.message, { detail: e.message });
    }
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return send(reply, request, fe.statusCode, 'BODY_INVALID', 'The request is invalid', { detail: fe.message });
    }
    request.log.error({ err: error }, 'unhandled error');
    return send(reply, request, 500, 'INTERNAL', 'Internal Server Error');
  });

  app.setNotFoundHandler((request, reply) => {
    send(reply, request, 404, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`);
  });
}
