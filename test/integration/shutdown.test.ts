/**
 * Graceful shutdown of the real process (`node --import tsx src/main.ts`): SIGTERM during a
 * streamed ingest stops new connections, lets the ingest finish and acknowledge, closes the store,
 * and exits 0; after a restart every acknowledged document is there.
 */
import { SERVER_NODE_FLAGS } from '../../src/threads.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCorpus, tmpDir } from '../helpers/index.ts';
import { freePort } from '../../bench/lib/server.ts';

const STARTUP_TIMEOUT_MS = 90_000;

interface Server {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startServer(dataDir: string, port: number): Server {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('R3SERVE_')));
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'src/main.ts', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn', '--workers', '1'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, port, exited, stderr: () => err };
}

/** One HTTP request on a fresh connection; resolves with status and body text. */
function call(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function waitReady(s: Server): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (s.child.exitCode !== null) throw new Error(`server exited early: ${s.stderr()}`);
    try {
      if ((await call(s.port, 'GET', '/ready')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server not ready after ${STARTUP_TIMEOUT_MS} ms: ${s.stderr()}`);
}

const running: Server[] = [];
afterEach(() => {
  for (const s of running.splice(0)) if (s.child.exitCode === null) s.child.kill('SIGKILL');
});

describe('SIGTERM', () => {
  it('drains an in-flight streamed ingest, acknowledges it, and the data is there after restart', async () => {
    const data = tmpDir();
    try {
      const port = await freePort();
      const s = startServer(data.dir, port);
      running.push(s);
      await waitReady(s);

      const docs = makeCorpus(3_000, 7);
      const part = (lo: number, hi: number) => docs.slice(lo, hi).map((d) => JSON.stringify(d)).join('\n') + '\n';
      let killedAt = 0;
      let probe: Promise<string> = Promise.resolve('not sent');
      const acknowledged = new Promise<{ status: number; body: string; at: number }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, method: 'POST', path: '/documents', headers: { 'content-type': 'application/x-ndjson' }, agent: false },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, at: Date.now() }));
          },
        );
        req.once('error', reject);
        // A slow upload: the first third, then SIGTERM, then the rest.
        req.write(part(0, 1_000));
        setTimeout(() => {
          killedAt = Date.now();
          s.child.kill('SIGTERM');
          // A new connection while draining is refused (or answered 503), never served.
          probe = new Promise((r) => setTimeout(r, 150)).then(() =>
            call(port, 'GET', '/health').then((res) => `status ${res.status}`, (e: NodeJS.ErrnoException) => e.code ?? 'error'),
          );
          setTimeout(() => {
            req.write(part(1_000, 2_000));
            setTimeout(() => req.end(part(2_000, 3_000)), 100);
          }, 300);
        }, 500);
      });

      const ack = await acknowledged;
      expect(ack.status, ack.body).toBe(200);
      expect(JSON.parse(ack.body)).toMatchObject({ count: 3_000, inserted: 3_000 });
      expect(ack.at).toBeGreaterThan(killedAt);
      expect(killedAt).toBeGreaterThan(0);
      expect(await s.exited, s.stderr()).toBe(0);
      expect(['ECONNREFUSED', 'ECONNRESET', 'status 503']).toContain(await probe);

      const again = startServer(data.dir, port);
      running.push(again);
      await waitReady(again);
      const info = await call(port, 'GET', '/collections/default');
      expect(JSON.parse(info.body).documents).toBe(3_000);
      const one = await call(port, 'GET', '/documents/d2999');
      expect(one.status).toBe(200);
      again.child.kill('SIGTERM');
      expect(await again.exited, again.stderr()).toBe(0);
    } finally {
      data.cleanup();
    }
  }, 240_000);
});
