/**
 * The `auth` plugin: API keys with scopes, a per-key token-bucket rate limit and a per-key
 * concurrency limit, checked in `onRequest` (before any body is read). Open when no key is
 * configured. Throws AppErrors only; `error-handler.ts` turns them into problems.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKeyConfig } from '../../config/defaults.ts';
import type { Config } from '../../config/load.ts';
import { createError } from '../../errors.ts';

/** A permission an API key can hold. `admin` implies every other scope. */
export type Scope = ApiKeyConfig['scopes'][number];

/**
 * What a route needs: a scope, `open` (no key needed even when keys are configured), or `any`
 * (any valid key: unmatched paths, so that probing for routes needs a key too).
 */
export type Requirement = Scope | 'open' | 'any';

/** Burst of the token bucket, in seconds of the key's rate (the config documents "burst = 2 s"). */
const BURST_SECONDS = 2;

/** Paths that never need a key: probes, the metrics scrape and the API description. */
const OPEN_PATHS = new Set(['/health', '/ready', '/metrics', '/openapi.yaml']);

/**
 * The scope a route needs, from its registered pattern (`request.routeOptions.url`) and method.
 * Routes this table does not know need `admin` (deny by default); unmatched paths need `any`.
 */
export function requiredScope(method: string, url: string | undefined): Requirement {
  if (url === undefined) return 'any';
  if (OPEN_PATHS.has(url) || url === '/docs' || url.startsWith('/docs/')) return 'open';
  const read = method === 'GET' || method === 'HEAD';
  switch (url.split('/')[1]) {
    case 'search':
      return 'search';
    case 'documents':
    case 'collections':
      return read ? 'search' : 'write';
    case 'rcl':
      return 'train';
    case 'retriever':
      // Loading a model directory opens files on the server: an operator's decision.
      if (url === '/retriever/model') return 'admin';
      return read ? 'search' : 'train';
    default:
      return 'admin';
  }
}

interface KeyState {
  /** sha256 of the key: compared in constant time, never the key itself. */
  digest: Buffer;
  /** A log-safe name for the key: `key-` and 8 hex digits of its sha256. */
  id: string;
  scopes: ReadonlySet<Scope>;
  /** Tokens per second; 0 = unlimited. */
  rate: number;
  tokens: number;
  refilledAt: number;
  /** Requests in flight allowed; 0 = unlimited. */
  concurrency: number;
  inFlight: number;
}

/** Whether the configured scopes grant `scope` (`admin` implies all). */
export function grants(scopes: ReadonlySet<Scope>, scope: Scope): boolean {
  return scopes.has('admin') || scopes.has(scope);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The key presented by a request: `Authorization: Bearer <key>` (RFC 6750 §2.1) or `x-api-key`.
 * `null` when none is given; `''` when the Authorization header is present but not a bearer token.
 */
export function presentedKey(request: FastifyRequest): string | null {
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && auth !== '') {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    return m ? m[1] : '';
  }
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header.trim();
  return null;
}

/** The key's state, comparing against every configured key so timing does not depend on which matched. */
function findKey(keys: KeyState[], presented: string): KeyState | undefined {
  const digest = sha256(presented);
  let found: KeyState | undefined;
  for (const k of keys) if (timingSafeEqual(k.digest, digest) && !found) found = k;
  return found;
}

/** Takes one token from the key's bucket; returns the seconds to wait when it is empty. */
function takeToken(k: KeyState, now: number): number {
  if (k.rate <= 0) return 0;
  const capacity = Math.max(1, k.rate * BURST_SECONDS);
  k.tokens = Math.min(capacity, k.tokens + ((now - k.refilledAt) / 1000) * k.rate);
  k.refilledAt = now;
  if (k.tokens >= 1) {
    k.tokens -= 1;
    return 0;
  }
  return Math.max(1, Math.ceil((1 - k.tokens) / k.rate));
}

/** True for host names that only the local machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The listen guard `main.ts` runs before listening: an open server (no keys) may only listen on
 * loopback unless `auth.allowOpenNonLoopback` is set. Throws AUTH_KEYS_MISSING.
 */
export function assertSafeListen(config: Pick<Config, 'server' | 'auth'>): void {
  if (config.auth.keys.length > 0 || config.auth.allowOpenNonLoopback || isLoopbackHost(config.server.host)) return;
  throw createError('AUTH_KEYS_MISSING', { host: config.server.host }, { details: { host: config.server.host } });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Log-safe id of the API key that authenticated this request; null when open. */
    apiKeyId: string | null;
  }
}

export interface AuthPluginOptions {
  keys: readonly ApiKeyConfig[];
  /** Milliseconds clock for the token buckets (tests may fake it). Default performance.now. */
  now?: () => number;
}

async function authPlugin(app: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  app.decorateRequest('apiKeyId', null);
  if (opts.keys.length === 0) return;
  const now = opts.now ?? (() => performance.now());
  const keys: KeyState[] = opts.keys.map((k) => {
    const digest = sha256(k.key);
    const rate = k.ratePerSecond ?? 0;
    return {
      digest,
      id: `key-${digest.toString('hex').slice(0, 8)}`,
      scopes: new Set(k.scopes),
      rate,
      tokens: Math.max(1, rate * BURST_SECONDS),
      refilledAt: now(),
      concurrency: k.concurrency ?? 0,
      inFlight: 0,
    };
  });

  const scopesOf = new WeakMap<object, ReadonlySet<Scope>>();
  // A collection whose retriever or analyzer names a model directory opens server files: admin only.
  app.addHook('preValidation', async (request, reply) => {
    if (request.method !== 'PUT' || request.routeOptions.url !== '/collections/:name') return;
    const body = request.body as { retriever?: { model?: unknown }; analyzer?: { model?: unknown } } | undefined;
    if (body?.retriever?.model === undefined && body?.analyzer?.model === undefined) return;
    const scopes = scopesOf.get(request);
    if (scopes && !grants(scopes, 'admin')) {
      void reply.header('www-authenticate', 'Bearer realm="r3serve", error="insufficient_scope", scope="admin"');
      throw createError('AUTH_FORBIDDEN', { scope: 'admin' }, { details: { scope: 'admin', reason: 'naming a model directory' } });
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    const need = requiredScope(request.method, request.routeOptions.url);
    if (need === 'open') return;
    const presented = presentedKey(request);
    if (presented === null) {
      void reply.header('www-authenticate', 'Bearer realm="r3serve"');
      throw createError('AUTH_REQUIRED');
    }
    const key = presented === '' ? undefined : findKey(keys, presented);
    if (!key) {
      void reply.header('www-authenticate', 'Bearer realm="r3serve", error="invalid_token"');
      throw createError('AUTH_INVALID');
    }
    request.apiKeyId = key.id;
    scopesOf.set(request, key.scopes);
    request.log.debug({ apiKey: key.id, need }, 'authenticated');
    if (need !== 'any' && !grants(key.scopes, need)) {
      void reply.header('www-authenticate', `Bearer realm="r3serve", error="insufficient_scope", scope="${need}"`);
      throw createError('AUTH_FORBIDDEN', { scope: need }, { details: { scope: need } });
    }
    const wait = takeToken(key, now());
    if (wait > 0) throw createError('RATE_LIMITED', { retryAfter: wait }, { details: { retryAfter: wait, limit: 'rate', ratePerSecond: key.rate } });
    if (key.concurrency > 0) {
      if (key.inFlight >= key.concurrency) {
        throw createError('RATE_LIMITED', { retryAfter: 1 }, { details: { retryAfter: 1, limit: 'concurrency', concurrency: key.concurrency } });
      }
      key.inFlight++;
      // 'close' comes once, after 'finish' or when the client goes away first.
      reply.raw.once('close', () => key.inFlight--);
    }
  });
}

export default fp(authPlugin, { name: 'auth' });
