/**
 * SIGKILL during training, several rounds: the server restarts on the last committed θ version
 * (never older than an acknowledged step, never a half-written one), the lineage is whole, and
 * the next step resumes from the optimizer state saved with that version.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom, tmpDir } from '../helpers/index.ts';
import { startServer, type ServerProcess } from '../helpers/server-process.ts';

const DOCS = ['Paris is the capital of France.', 'Berlin is the capital of Germany.', 'Rome is the capital of Italy.', 'Madrid is the capital of Spain.', 'Bread is baked from flour and water.', 'A piano has keys and strings.'].map((text, i) => ({ id: `d${i}`, text }));
const QUERIES = [
  { id: 'q1', text: 'capital of france', answers: ['Paris'] },
  { id: 'q2', text: 'capital of germany', answers: ['Berlin'] },
  { id: 'q3', text: 'capital of italy', answers: ['Rome'] },
];

describe('SIGKILL during training', () => {
  const tmp = tmpDir();
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill('SIGKILL');
    tmp.cleanup();
  });

  it('restarts on the last committed version and resumes the optimizer', async () => {
    const rnd = seededRandom(42);
    server = await startServer(tmp.dir);
    expect((await server.call('/documents', { documents: DOCS })).status).toBe(200);
    expect((await server.call('/rcl/offline', { queries: QUERIES, environment: 'contains' })).body.registered).toBe(3);
    let acknowledged = 0;
    for (let round = 0; round < 3; round++) {
      const s = server;
      let running = true;
      const loop = (async () => {
        while (running) {
          try {
            const r = await s.call('/rcl/step', { queries: QUERIES.map((q) => ({ id: q.id })), environment: 'contains' });
            if (r.status === 200) acknowledged = Math.max(acknowledged, r.body.version);
          } catch {
            return; // the connection died with the process
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 400 + rnd() * 1200));
      await s.kill('SIGKILL');
      running = false;
      await loop;
      server = await startServer(tmp.dir);
      const ret = (await server.call('/retriever')).body;
      expect(ret.current.version).toBeGreaterThanOrEqual(acknowledged);
      const versions = new Map<number, { parent: number | null; info: { optimizerStep?: number } }>(ret.versions.map((v: { version: number }) => [v.version, v]));
      for (const [v, rec] of versions) if (v > 0) expect(versions.has(rec.parent!)).toBe(true);
      const step = await server.call('/rcl/step', { queries: QUERIES.map((q) => ({ id: q.id })), environment: 'contains' });
      expect(step.status).toBe(200);
      const after = (await server.call('/retriever')).body.current;
      expect(after.parent).toBe(ret.current.version);
      const previousSteps = ret.current.version === 0 ? 0 : ret.current.info.optimizerStep;
      expect(after.info.optimizerStep).toBe(previousSteps + 1);
      acknowledged = after.version;
    }
    expect(acknowledged).toBeGreaterThanOrEqual(4);
  }, 240_000);
});
