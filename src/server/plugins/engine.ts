/**
 * The `engine` plugin: opens the store, the analysis worker pool and every collection, decorates
 * the instance with them, and closes them in `onClose` (under-pressure's plugin shape).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { AnalysisPool } from '../../analysis/pool.ts';
import type { Config } from '../../config/load.ts';
import { openStore, type Store } from '../../index/store.ts';
import { createContainsEnvironment } from '../../rcl/environments/contains.ts';
import { createOpenAIEnvironment } from '../../rcl/environments/openai.ts';
import type { Environment } from '../../rcl/environments/types.ts';
import { RclService } from '../../rcl/loop.ts';
import { Collections, type RetrieverFactory } from '../../search/collections.ts';

export interface Engine {
  config: Config;
  store: Store;
  pool: AnalysisPool;
  collections: Collections;
  rcl: RclService;
  startedAt: number;
  ready: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    engine: Engine;
  }
}

export interface EnginePluginOptions {
  config: Config;
  retrieverFactory?: RetrieverFactory;
}

async function enginePlugin(app: FastifyInstance, opts: EnginePluginOptions): Promise<void> {
  const { config } = opts;
  const store = openStore(config.store);
  const pool = new AnalysisPool(config.analysis.workers);
  const collections = new Collections(
    store,
    pool,
    {
      bm25: { k1: config.search.k1, b: config.search.b },
      maxForwardTokens: config.analysis.maxForwardTokens,
      defaultStem: config.analysis.stem,
      maxDocumentChars: config.limits.maxDocumentChars,
      log: (msg, fields) => app.log.info(fields ?? {}, msg),
    },
    opts.retrieverFactory,
  );
  const environments = new Map<string, Environment>([['contains', createContainsEnvironment()]]);
  if (config.rcl.openai) environments.set('openai', createOpenAIEnvironment({ ...config.rcl.openai }));
  const rcl = new RclService(collections, store, environments, { seed: config.rcl.seed, rolloutTtlMs: config.rcl.rolloutTtlSeconds * 1000 });
  const engine: Engine = { config, store, pool, collections, rcl, startedAt: Date.now(), ready: false };
  app.decorate('engine', engine);
  app.addHook('onClose', async () => {
    engine.ready = false;
    await collections.close();
    for (const env of environments.values()) await env.close();
    await pool.close();
    await store.close();
  });
  await collections.openAll();
  engine.ready = true;
}

export default fp(enginePlugin, { name: 'engine' });
