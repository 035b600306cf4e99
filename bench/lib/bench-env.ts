/**
 * What every benchmark result carries about where it ran (date, commit, Node, machine, load
 * average), memory snapshots, and the `--out` convention: the final JSON line is also written to
 * `bench/results/<name>-<date>.json` (or to the folder given).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export interface RunEnvironment {
  date: string;
  commit: string;
  node: string;
  machine: string;
  /** 1-minute load average when the run started (others' jobs included); > 1.5 is not a fair timing run. */
  loadavg_start: number;
}

export function runEnvironment(): RunEnvironment {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    commit,
    node: process.version,
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    loadavg_start: round(loadavg()[0], 2),
  };
}

export function round(v: number, digits = 4): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Forces a full GC when the process runs with --expose-gc (twice: weak callbacks run between). */
export function fullGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

export interface MemorySnapshot {
  heapUsed: number;
  rss: number;
  /** Anonymous resident memory (heap, buffers, native allocations), from /proc when available. */
  rssAnon: number;
  /** File-backed resident memory (mapped files such as LMDB's), from /proc when available. */
  rssFile: number;
  external: number;
}

export function memorySnapshot(): MemorySnapshot {
  fullGc();
  const m = process.memoryUsage();
  let rssAnon = NaN;
  let rssFile = NaN;
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    rssAnon = Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
    rssFile = Number(/^RssFile:\s+(\d+) kB/m.exec(status)?.[1]) * 1024;
  } catch {
    // not Linux
  }
  return { heapUsed: m.heapUsed, rss: m.rss, rssAnon, rssFile, external: m.external + m.arrayBuffers };
}

export const MiB = 2 ** 20;

/** Writes the result to `<dir>/<name>-<YYYY-MM-DD>.json` when `out` is set ("true" means bench/results). */
export function writeResult(name: string, out: string | undefined, result: unknown): string | undefined {
  if (!out) return undefined;
  const dir = out === 'true' ? RESULTS_DIR : out;
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(path, `${JSON.stringify(result)}\n`);
  return path;
}

/** A fixed-width text table for the human part of a report (stderr). */
export function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  const cell = (v: unknown) => (v === undefined || v === null ? '' : typeof v === 'number' ? String(round(v, 4)) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ');
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
