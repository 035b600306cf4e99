/**
 * In-process search latency, one query at a time, lexical vs late, through the searcher
 * (no HTTP), plus warm-start time of a real server process to `/ready`. Run it twice — with and
 * without `R3SERVE_NATIVE_DISABLED=1` — or pass `--compare` to run both kernels side by side.
 *
 *   npx tsx bench/latency.ts --data <folder> [--queries N] [--compare] [--startup]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNativeEnabled } from '../src/kernels/index.ts';
import { readQueries } from './lib/dataset.ts';
import { ingestCorpus, openHarness, parseFlags } from './lib/harness.ts';
import { percentile } from './lib/metrics.ts';
import { startServer } from './lib/server.ts';

const flags = parseFlags(process.argv.slice(2));
if (!flags.data) {
  console.error('usage: npx tsx bench/latency.ts --data <folder> [--queries N] [--compare] [--startup]');
  process.exit(2);
}

/** Spawns the server on `dataDir` and times process start → `GET /ready` 200. */
async function warmStart(dataDir: string): Promise<number> {
  const server = await startServer(dataDir, { args: [] });
  await server.kill('SIGTERM');
  return server.readyMs;
}

if (flags.compare) {
  // Same data, both kernel sets, one after the other in fresh processes.
  const out: Record<string, unknown> = {};
  for (const [name, env] of [['native', {}], ['reference', { R3SERVE_NATIVE_DISABLED: '1' }]] as const) {
    const args = ['--import', 'tsx', 'bench/latency.ts', '--data', flags.data, '--queries', flags.queries ?? '300'];
    const r = spawnSync(process.execPath, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
    const last = r.stdout.trim().split('\n').pop() ?? '{}';
    out[name] = JSON.parse(last);
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const dataDir = mkdtempSync(join(tmpdir(), 'r3lat-'));
const harness = await openHarness({ dataDir });
const result: Record<string, unknown> = { native: isNativeEnabled() };
try {
  await ingestCorpus(harness.app, flags.data);
  const queries = (await readQueries(flags.data)).slice(0, Number(flags.queries ?? 300));
  const searcher = harness.app.engine.collections.get('default').searcher;
  for (const mode of ['lexical', 'late'] as const) {
    for (const q of queries.slice(0, 30)) searcher.search({ query: q.text, k: 10, m: 20, mode, includeDocuments: false });
    const times: number[] = [];
    for (const q of queries) {
      const t0 = performance.now();
      searcher.search({ query: q.text, k: 10, m: 20, mode, includeDocuments: true });
      times.push(performance.now() - t0);
    }
    result[mode] = { p50_ms: round(percentile(times, 50)), p99_ms: round(percentile(times, 99)), mean_ms: round(times.reduce((a, b) => a + b, 0) / times.length), queries: times.length };
  }
} finally {
  await harness.close();
}
if (flags.startup) result.warm_start_to_ready_ms = Math.round(await warmStart(dataDir));
rmSync(dataDir, { recursive: true, force: true });
console.log(JSON.stringify(result));

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
