/**
 * Builds the one frozen `Config`: defaults ← optional file ← environment ← explicit overrides,
 * validated once with ajv and deep-frozen. Takes the environment as an argument: only `main.ts`
 * reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { createError } from '../errors.ts';
import { DEFAULTS, type ApiKeyConfig, type Config } from './defaults.ts';
import { configSchema } from './schema.ts';

export type { Config } from './defaults.ts';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type ConfigOverrides = DeepPartial<Config>;

/** Where configuration comes from, besides the defaults. */
export interface ConfigSources {
  /** Path of a JSON or YAML file. */
  file?: string;
  /** Environment variables (`R3SERVE_*`); pass `process.env` from `main.ts`. */
  env?: Record<string, string | undefined>;
  /** Explicit values (CLI flags, tests); highest precedence. */
  overrides?: ConfigOverrides;
}

const ajv = new Ajv({ allErrors: true, useDefaults: false });
const validate = ajv.compile(configSchema);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(base: Record<string, unknown>, patch: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!patch) return base;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    out[key] = isPlainObject(value) && isPlainObject(out[key]) ? merge(out[key] as Record<string, unknown>, value) : value;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Parses `R3SERVE_API_KEYS` = `key:scope,scope;key2:scope`. */
export function parseApiKeys(text: string): ApiKeyConfig[] {
  return text
    .split(';')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [key, scopes = 'admin'] = entry.split(':');
      return { key: key.trim(), scopes: scopes.split(',').map((s) => s.trim()) as ApiKeyConfig['scopes'] };
    });
}

function fromEnv(env: Record<string, string | undefined>): ConfigOverrides {
  const num = (name: string) => (env[name] !== undefined && env[name] !== '' ? Number(env[name]) : undefined);
  return {
    server: { host: env.R3SERVE_HOST || undefined, port: num('R3SERVE_PORT'), logLevel: env.R3SERVE_LOG_LEVEL || undefined },
    store: { dataDir: env.R3SERVE_DATA_DIR || undefined },
    analysis: { workers: num('R3SERVE_WORKERS') },
    rcl: env.R3SERVE_OPENAI_BASE_URL
      ? { openai: { baseUrl: env.R3SERVE_OPENAI_BASE_URL, model: env.R3SERVE_OPENAI_MODEL ?? 'default', apiKey: env.R3SERVE_OPENAI_API_KEY || undefined } }
      : undefined,
    auth: {
      keys: env.R3SERVE_API_KEYS ? parseApiKeys(env.R3SERVE_API_KEYS) : undefined,
      allowOpenNonLoopback: env.R3SERVE_ALLOW_OPEN === '1' ? true : undefined,
    },
  };
}

function readFile(path: string): Record<string, unknown> {
  try {
    const text = readFileSync(path, 'utf8');
    const parsed: unknown = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    if (!isPlainObject(parsed)) throw new TypeError('the file does not hold an object');
    return parsed;
  } catch (cause) {
    throw createError('CONFIG_INVALID', { reason: `cannot read ${path}: ${(cause as Error).message}` }, { cause });
  }
}

/** Merges, validates and freezes the configuration. Throws CONFIG_INVALID listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  let merged = merge(structuredClone(DEFAULTS) as unknown as Record<string, unknown>, sources.file ? readFile(sources.file) : undefined);
  merged = merge(merged, sources.env ? (fromEnv(sources.env) as Record<string, unknown>) : undefined);
  merged = merge(merged, sources.overrides as Record<string, unknown> | undefined);
  if (!validate(merged)) {
    const reason = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    throw createError('CONFIG_INVALID', { reason }, { details: { errors: validate.errors } });
  }
  const config = merged as unknown as Config;
  if (config.analysis.workers === 0) {
    // Analysis dominates ingest cost; the main thread's share is small, so on one or two cores
    // every core analyses, and on larger machines one core is left to the event loop.
    const cores = availableParallelism();
    config.analysis.workers = cores <= 2 ? cores : cores - 1;
  }
  return deepFreeze(config);
}
