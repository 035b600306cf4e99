/**
 * Test helpers: configs, temporary stores, in-process apps and synthetic corpora. Real LMDB,
 * real roaring, real analysis workers; only the data is small.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildOptions } from '../../src/app.ts';
import { loadConfig, type Config, type ConfigOverrides } from '../../src/config/load.ts';
import type { DocumentInput } from '../../src/types.ts';
import { createRng as createSeededRng } from '../../src/rcl/rng.ts';

/** A temporary directory, removed by the returned cleanup. */
export function tmpDir(prefix = 'r3test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A validated config for tests: silent logs, one analysis worker, the given data dir. */
export function testConfig(dataDir: string, overrides: ConfigOverrides = {}): Config {
  return loadConfig({
    overrides: {
      ...overrides,
      server: { logLevel: 'silent', ...overrides.server },
      store: { dataDir, ...overrides.store },
      analysis: { workers: 1, ...overrides.analysis },
    },
  });
}

export interface TestApp {
  app: FastifyInstance;
  dir: string;
  close(): Promise<void>;
}

/** Builds an app on a fresh temporary data directory (or `dir`, kept). */
export async function buildTestApp(overrides: ConfigOverrides = {}, options: BuildOptions & { dir?: string } = {}): Promise<TestApp> {
  const tmp = options.dir ? { dir: options.dir, cleanup() {} } : tmpDir();
  const app = await buildApp(testConfig(tmp.dir, overrides), options);
  return {
    app,
    dir: tmp.dir,
    async close() {
      await app.close();
      tmp.cleanup();
    },
  };
}

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
export function seededRandom(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

const WORDS = (
  'cell protein gene cancer tumor immune virus infection patient treatment drug dose risk blood ' +
  'heart brain neuron memory learning model data network river mountain city music guitar piano ' +
  'football player team season league goal coach market price stock bank money trade law court ' +
  'judge election vote party government war army battle king queen empire church school student'
).split(' ');

/** `n` documents of random sentences over a small vocabulary (Zipf-like word choice). */
export function makeCorpus(n: number, seed = 1, prefix = 'd'): DocumentInput[] {
  const rnd = seededRandom(seed);
  const docs: DocumentInput[] = [];
  for (let i = 0; i < n; i++) {
    const len = 5 + Math.floor(rnd() * 40);
    const words: string[] = [];
    for (let j = 0; j < len; j++) words.push(WORDS[Math.floor(WORDS.length * rnd() * rnd())]);
    docs.push({ id: `${prefix}${i}`, title: `Title ${WORDS[i % WORDS.length]}`, text: words.join(' ') + '.', metadata: { group: i % 3, even: i % 2 === 0 } });
  }
  return docs;
}
