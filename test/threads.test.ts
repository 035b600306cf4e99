/**
 * The server's Node flags are stated once (src/threads.ts) and used by every way of starting it:
 * `npm start` must pass the same ones the benchmarks and tests pass.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { AnalysisPool } from '../src/analysis/pool.ts';
import { describe, expect, it } from 'vitest';
import { BACKGROUND_THREAD_NICE, SERVER_NODE_FLAGS } from '../src/threads.ts';

describe('server process flags', () => {
  it('npm start passes every flag of SERVER_NODE_FLAGS', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    const words = pkg.scripts.start.split(/\s+/);
    for (const flag of SERVER_NODE_FLAGS) expect(words).toContain(flag);
  });

  it.runIf(existsSync('/proc/thread-self/stat'))('runs analysis workers at BACKGROUND_THREAD_NICE, the event loop at its own priority', async () => {
    const nice = (path: string) => Number(readFileSync(path, 'utf8').split(') ')[1].split(' ')[16]);
    const niced = () => readdirSync('/proc/self/task').filter((t) => nice(`/proc/self/task/${t}/stat`) === BACKGROUND_THREAD_NICE).length;
    expect(BACKGROUND_THREAD_NICE).toBeGreaterThan(nice('/proc/thread-self/stat'));
    const before = niced();
    const pool = new AnalysisPool(2);
    try {
      await pool.analyze({ name: 'wink', stem: true }, ['warm up the workers']);
      expect(niced() - before).toBeGreaterThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });
});
