/**
 * The `engine` plugin: opens the store, the analysis worker pool and every collection, decorates
 * the instance with them, and closes them in `onClose` (under-pressure's plugin shape).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { AnalysisPool } from '../../analysis/pool.ts';
import type { Config } from '../../config/load.ts';
import { openStore, type Store } from '../../index/store.ts';
import { Collections, type RetrieverFactory } from '../../search/collections.ts';

export interface Engine {
  config: Config;
  store: Store;
  pool: AnalysisPool;
  collections: Collections;
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
  const engine: Engine = { config, store, pool, collections, startedAt: Date.now(), ready: false };
  app.decorate('engine', engine);
  app.addHook('onClose', async () => {
    engine.ready = false;
    await collections.close();
    await pool.close();
    await store.close();
  });
  await collections.openAll();
  engine.ready = true;
}

export default fp(enginePlugin, { name: 'engine' });
