/**
 * Entry point: argv/env → loadConfig → buildApp → listen; graceful shutdown on SIGTERM/SIGINT.
 * The only reader of process.env.
 */
import { parseArgs } from 'node:util';
import { buildApp } from './app.ts';
import { loadConfig, type ConfigOverrides } from './config/load.ts';
import { isAppError } from './errors.ts';
import { createRetrieverFactory } from './search/retrievers.ts';
import { assertSafeListen, isLoopbackHost } from './server/plugins/auth.ts';

const { values } = parseArgs({
  options: {
    config: { type: 'string', short: 'c' },
    host: { type: 'string' },
    port: { type: 'string', short: 'p' },
    'data-dir': { type: 'string', short: 'd' },
    'log-level': { type: 'string' },
    workers: { type: 'string' },
    'allow-open': { type: 'boolean' },
  },
  allowPositionals: false,
});

const overrides: ConfigOverrides = {
  server: { host: values.host, port: values.port ? Number(values.port) : undefined, logLevel: values['log-level'] },
  store: { dataDir: values['data-dir'] },
  analysis: { workers: values.workers ? Number(values.workers) : undefined },
  auth: { allowOpenNonLoopback: values['allow-open'] ? true : undefined },
};

async function main(): Promise<void> {
  const config = loadConfig({ file: values.config ?? process.env.R3SERVE_CONFIG, env: process.env, overrides });
  // An open server (no API keys) listens on loopback only, unless explicitly allowed.
  assertSafeListen(config);
  const app = await buildApp(config, { retrieverFactory: createRetrieverFactory(config) });
  if (config.auth.keys.length === 0 && !isLoopbackHost(config.server.host)) {
    app.log.warn({ host: config.server.host }, 'no API keys: every route is open to anyone who can reach this address (--allow-open)');
  }
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: draining requests and closing the store');
    app.close().then(
      () => process.exit(0),
      (err) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await app.listen({ host: config.server.host, port: config.server.port });
}

main().catch((err) => {
  // Expected failures (bad config, the listen guard) get one clear line; anything else its stack.
  if (isAppError(err)) console.error(`r3serve: ${err.code}: ${err.message}`);
  else console.error(err);
  process.exit(1);
});
