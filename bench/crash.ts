/**
 * Crash consistency of the real server (DESIGN §5: kill -9 at any moment loses nothing
 * acknowledged): runs `src/main.ts` as a child process, streams concurrent ingest and delete
 * requests at it, SIGKILLs it at seeded random moments, restarts it on the same data directory
 * and verifies every acknowledged write, the document count and the index. Progress goes to
 * stderr; the last stdout line is one JSON object `{rounds, acknowledged, lost, violations}`.
 * Exits 1 when anything was lost or violated.
 *
 *   npx tsx bench/crash.ts --rounds 5 [--seed 1] [--ids 1500] [--batch 200] [--concurrency 3]
 *                          [--data-dir DIR (kept)]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCrashRounds } from '../test/helpers/crash-harness.ts';
import { parseFlags } from './lib/harness.ts';

const flags = parseFlags(process.argv.slice(2));
const rounds = Number(flags.rounds ?? 5);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: npx tsx bench/crash.ts --rounds N [--seed S] [--ids N] [--batch N] [--concurrency N] [--data-dir DIR]');
  process.exit(2);
}
const dataDir = flags['data-dir'] ?? mkdtempSync(join(tmpdir(), 'r3crash-'));
const t0 = performance.now();
try {
  const report = await runCrashRounds({
    rounds,
    dataDir,
    seed: Number(flags.seed ?? 1),
    idPool: flags.ids ? Number(flags.ids) : undefined,
    batchSize: flags.batch ? Number(flags.batch) : undefined,
    concurrency: flags.concurrency ? Number(flags.concurrency) : undefined,
    log: (line) => console.error(line),
  });
  for (const r of report.perRound) console.error(JSON.stringify(r));
  for (const d of report.details) console.error(d);
  console.error(`${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(JSON.stringify({ rounds: report.rounds, acknowledged: report.acknowledged, lost: report.lost, violations: report.violations }));
  process.exitCode = report.lost + report.violations > 0 ? 1 : 0;
} finally {
  if (!flags['data-dir']) rmSync(dataDir, { recursive: true, force: true });
}
