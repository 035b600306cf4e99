/**
 * kill -9 at any moment loses nothing acknowledged (DESIGN §5), on the real process: the server
 * (`node --import tsx src/main.ts`) takes concurrent ingest and delete requests over HTTP, is
 * SIGKILLed at a seeded random moment, restarted on the same data directory and checked: every
 * acknowledged write is there (last acknowledged write wins; a write in flight at the kill may
 * or may not be), acknowledged deletes stay deleted, the document count matches the live ids,
 * and a document's rare word finds exactly that document. Three rounds, one data directory,
 * about 15 s on an idle machine (most of it is the three restarts).
 * The workload and checks live in `test/helpers/crash-harness.ts` (shared with bench/crash.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rareWord, runCrashRounds } from '../helpers/crash-harness.ts';
import { tmpDir } from '../helpers/index.ts';

let dir: { dir: string; cleanup(): void } | undefined;

afterEach(() => {
  dir?.cleanup();
  dir = undefined;
});

describe('crash consistency of the real server', () => {
  it('rare words are distinct letter-only words', () => {
    const words = new Set<string>();
    for (let n = 0; n < 20_000; n++) {
      const w = rareWord(n);
      expect(w).toMatch(/^q[a-z]+x$/);
      words.add(w);
    }
    expect(words.size).toBe(20_000);
  });

  it('loses nothing acknowledged over 3 SIGKILL → restart → verify rounds', { timeout: 120_000 }, async () => {
    dir = tmpDir('r3crash-');
    const report = await runCrashRounds({ rounds: 3, seed: 20_260_101, dataDir: dir.dir, idPool: 1_200, killAfterMs: [0, 1_200] });
    // On failure, the details name every lost write and broken invariant.
    expect(report.details).toEqual([]);
    expect(report.lost).toBe(0);
    expect(report.violations).toBe(0);
    expect(report.rounds).toBe(3);
    for (const r of report.perRound) {
      expect(r.acknowledgedRequests).toBeGreaterThan(0);
      expect(r.liveDocuments).toBeGreaterThan(0);
    }
    expect(report.acknowledged).toBeGreaterThan(0);
  });
});
