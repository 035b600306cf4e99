/**
 * buildApp(config): a ready-to-inject fastify instance with every plugin and route registered.
 * Never listens (fastify `docs/Guides/Testing.md`); `main.ts` does.
 */
import { isUtf8 } from 'node:buffer';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config/load.ts';
import { createError } from './errors.ts';
import type { RetrieverFactory } from './search/collections.ts';
import { frameworkErrorHandler, MAX_PARAM_LENGTH, registerErrorHandler } from './server/error-handler.ts';
import authPlugin from './server/plugins/auth.ts';
import { registerDocs } from './server/plugins/docs.ts';
import enginePlugin from './server/plugins/engine.ts';
import metricsPlugin from './server/plugins/metrics.ts';
import adminRoutes from './server/routes/admin.ts';
import collectionRoutes, { collectionInfoSchema } from './server/routes/collections.ts';
import documentRoutes from './server/routes/documents.ts';
import healthRoutes from './server/routes/health.ts';
import rclRoutes from './server/routes/rcl.ts';
import retrieverRoutes from './server/routes/retriever.ts';
import searchRoutes from './server/routes/search.ts';
import { sharedSchemas } from './server/schemas/common.ts';
import { jsonTooDeep, MAX_JSON_DEPTH } from './server/json-depth.ts';

export interface BuildOptions {
  /** Builds each collection's parametric retriever; none: lexical and beta modes only. */
  retrieverFactory?: RetrieverFactory;
  /** pino logger options or false. Default: from config.server.logLevel. */
  logger?: boolean | Record<string, unknown>;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? (config.server.logLevel === 'silent' ? false : { level: config.server.logLevel }),
    bodyLimit: config.server.bodyLimitBytes,
    // Opening a large store, or converting the GloVe backbone on a first start, can take longer
    // than fastify's 10 s plugin default; /ready tells clients when the server is up.
    pluginTimeout: 0,
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false, allowUnionTypes: true } },
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: frameworkErrorHandler,
  });
  for (const s of [...sharedSchemas, collectionInfoSchema]) app.addSchema(s);
  registerErrorHandler(app);

  // JSON with a UTF-8 check: fastify's default parser would silently turn bad bytes into U+FFFD.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body: Buffer, done) => {
    if (!isUtf8(body)) return done(createError('BODY_NOT_UTF8'), undefined);
    if (body.length === 0) return done(createError('BODY_INVALID', { reason: 'the body is empty' }), undefined);
    if (jsonTooDeep(body)) return done(createError('BODY_INVALID', { reason: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` }), undefined);
    try {
      done(null, JSON.parse(body.toString('utf8')));
    } catch (err) {
      done(createError('BODY_INVALID', { reason: `malformed JSON: ${(err as Error).message}` }), undefined);
    }
  });

  await registerDocs(app);
  await app.register(enginePlugin, { config, retrieverFactory: options.retrieverFactory });
  // metrics before auth: its onRequest hook (request id, in-flight count) runs even for 401s.
  await app.register(metricsPlugin);
  await app.register(authPlugin, { keys: config.auth.keys });
  await app.register(healthRoutes);
  await app.register(collectionRoutes);
  await app.register(documentRoutes);
  await app.register(searchRoutes);
  await app.register(retrieverRoutes);
  await app.register(rclRoutes);
  await app.register(adminRoutes);
  return app;
}
