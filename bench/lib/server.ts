/**
 * A real server process for benchmarks and crash tests: `src/main.ts` spawned with tsx on a free
 * loopback port with the flags `npm start` uses, polled until `/ready`, killed with any signal.
 * `R3_BENCH_NODE_ARGS` adds Node
 * flags to the server (e.g. `--cpu-prof --cpu-prof-dir=prof` to profile it under load).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/threads.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface StartOptions {
  /** Extra CLI flags (e.g. `['--workers', '2']`). */
  args?: string[];
  /** Where the server's stderr goes. Default: inherited. */
  stderr?: 'inherit' | 'ignore';
}

export interface ServerProcess {
  base: string;
  child: ChildProcess;
  /** GET (no body) or POST helper returning status and parsed body; string bodies are sent as is. */
  call(path: string, body?: unknown, type?: string): Promise<{ status: number; body: any }>;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** A free TCP port on loopback (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `src/main.ts` on `dataDir` and resolves once `/ready` answers 200. */
export async function startServer(dataDir: string, opts: StartOptions = {}): Promise<ServerProcess & { readyMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const args = opts.args ?? ['--workers', '1'];
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, ...(process.env.R3_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', 'src/main.ts', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', opts.stderr ?? 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server not ready in 120 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    readyMs: performance.now() - t0,
    base,
    child,
    async call(path, body, type = 'application/json') {
      const init = body === undefined ? {} : { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) };
      const r = await fetch(base + path, init);
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    },
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
