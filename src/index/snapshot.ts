/**
 * Consistent snapshots of the LMDB environment while serving: LMDB's `mdb_env_copy2` (lmdb-js
 * `backup`) copies one read transaction's view on a thread-pool thread, so writers and readers go
 * on. Knows files and paths only; the admin route maps requests onto it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, open, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { createError, isAppError } from '../errors.ts';
import { STORE_FILE, type Store } from './store.ts';

/** Folder inside the data directory that holds snapshots; requested paths must stay inside it. */
export const SNAPSHOT_DIR = 'snapshots';

export interface SnapshotResult {
  /** Absolute path of the snapshot file. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** Wall time of the copy in milliseconds. */
  ms: number;
}

/**
 * Where a snapshot goes: `requested` is relative to `<dataDir>/snapshots` (or absolute inside
 * it); without one, `<dataDir>/snapshots/<UTC timestamp>/r3serve.mdb`, a folder that can be used
 * directly as a data directory. Throws SNAPSHOT_PATH_INVALID for paths that escape the folder.
 */
export function resolveSnapshotPath(dataDir: string, requested?: string, now: Date = new Date()): string {
  const base = resolve(dataDir, SNAPSHOT_DIR);
  if (requested === undefined) return join(base, now.toISOString().replace(/[:.]/g, '-'), STORE_FILE);
  if (requested.length === 0 || requested.includes('\0')) {
    throw createError('SNAPSHOT_PATH_INVALID', { path: requested, reason: 'empty or holds a NUL character' });
  }
  const target = isAbsolute(requested) ? resolve(requested) : resolve(base, requested);
  const rel = relative(base, target);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || requested.endsWith('/') || requested.endsWith(sep)) {
    throw createError('SNAPSHOT_PATH_INVALID', { path: requested, reason: `it must name a file inside ${base}` }, { details: { base } });
  }
  return target;
}

/** One snapshot at a time per store: a second waits for the first instead of doubling the I/O. */
const running = new WeakMap<Store, Promise<unknown>>();

/**
 * Writes a consistent copy of the store's environment to `target` (which must not exist) and
 * syncs it. The copy goes to a temporary name first and is hard-linked into place, so `target`
 * either does not exist or holds a complete snapshot. `compact` omits free pages (slower, smaller).
 */
export async function snapshotStore(store: Store, target: string, opts: { compact?: boolean } = {}): Promise<SnapshotResult> {
  const previous = running.get(store) ?? Promise.resolve();
  const job = previous.catch(() => undefined).then(() => copy(store, target, opts.compact ?? false));
  running.set(store, job);
  try {
    return await job;
  } finally {
    if (running.get(store) === job) running.delete(store);
  }
}

/** Errors of `mkdir` that mean the requested path cannot name a snapshot file. */
const BAD_PATH_ERRNOS = new Set(['ENOTDIR', 'EEXIST', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'ELOOP']);
/** Longest file name in bytes on common file systems (ext4, xfs, apfs, ntfs). */
const MAX_NAME_BYTES = 255;
const PARTIAL_SUFFIX_BYTES = '.partial-'.length + 8;

async function copy(store: Store, target: string, compact: boolean): Promise<SnapshotResult> {
  const t0 = performance.now();
  if (existsSync(target)) throw createError('SNAPSHOT_EXISTS', { path: target }, { details: { path: target } });
  if (Buffer.byteLength(basename(target)) + PARTIAL_SUFFIX_BYTES > MAX_NAME_BYTES) {
    throw createError('SNAPSHOT_PATH_INVALID', { path: target, reason: `the file name exceeds ${MAX_NAME_BYTES - PARTIAL_SUFFIX_BYTES} bytes` });
  }
  const dir = dirname(target);
  const partial = `${target}.partial-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(dir, { recursive: true }).catch((cause: NodeJS.ErrnoException) => {
      if (!BAD_PATH_ERRNOS.has(cause.code ?? '')) throw cause;
      throw createError('SNAPSHOT_PATH_INVALID', { path: target, reason: `its folder cannot be created (${cause.code})` }, { cause });
    });
    await store.root.backup(partial, compact);
    const fh = await open(partial, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(partial, target); // fails with EEXIST instead of replacing a snapshot
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'EEXIST') throw createError('SNAPSHOT_EXISTS', { path: target }, { cause, details: { path: target } });
      throw cause;
    }
    await syncDir(dir);
    const { size } = await stat(target);
    return { path: target, bytes: size, ms: performance.now() - t0 };
  } catch (cause) {
    if (isAppError(cause)) throw cause;
    throw createError('SNAPSHOT_FAILED', { path: target, reason: (cause as Error).message }, { cause, details: { path: target } });
  } finally {
    // Best effort: when the folder could not be made, there is nothing to remove.
    await rm(partial, { force: true }).catch(() => undefined);
  }
}

/** fsync of a directory, so the new name survives a crash (best effort where unsupported). */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some platforms (Windows) cannot open or fsync directories; the file itself is synced.
  }
}
