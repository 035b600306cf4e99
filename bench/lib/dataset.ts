/**
 * Readers for evaluation folders in the BEIR-like layout: `corpus.jsonl`, `queries.jsonl`,
 * `qrels.tsv` (and `train_*` variants), each optionally gzipped as `<name>.gz`. Streams the corpus;
 * reads queries and qrels whole. Benchmark-only: nothing under `src/` may import this.
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';

/** A corpus passage. */
export interface CorpusDoc {
  id: string;
  title?: string;
  text: string;
}

/** An evaluation query, with gold answer strings when the set has them. */
export interface EvalQuery {
  id: string;
  text: string;
  answers?: string[];
}

/** Relevance judgements: query id → (document id → integer grade; grade > 0 means relevant). */
export type Qrels = Map<string, Map<string, number>>;

/** Which split of a folder: `test` reads `queries.jsonl`/`qrels.tsv`, `train` the `train_` files. */
export type Split = 'test' | 'train';

/** Thrown for missing or malformed data files; `code` is stable, `path` names the file. */
export class DatasetError extends Error {
  readonly code: 'DATASET_FILE_MISSING' | 'DATASET_LINE_INVALID';
  readonly path: string;
  constructor(code: DatasetError['code'], path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DatasetError';
    this.code = code;
    this.path = path;
  }
}

const SPLIT_PREFIX: Record<Split, string> = { test: '', train: 'train_' };

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Finds `<dir>/<name>` or `<dir>/<name>.gz`; throws DATASET_FILE_MISSING naming both. */
export async function resolveDataFile(dir: string, name: string): Promise<{ path: string; gzip: boolean }> {
  const plain = join(dir, name);
  if (await exists(plain)) return { path: plain, gzip: false };
  if (await exists(`${plain}.gz`)) return { path: `${plain}.gz`, gzip: true };
  throw new DatasetError('DATASET_FILE_MISSING', plain, `Missing data file: neither ${plain} nor ${plain}.gz exists`);
}

/**
 * Yields the lines of a (possibly gzipped) UTF-8 file with their 1-based numbers, without the
 * trailing `\r\n`/`\n` and without a leading BOM. Iterating the stream itself (not readline)
 * makes read and gunzip errors reject the loop.
 */
async function* readLines(path: string, gzip: boolean): AsyncGenerator<{ line: string; no: number }> {
  const file = createReadStream(path);
  let source: Readable = file;
  if (gzip) {
    const gunzip = createGunzip();
    file.on('error', (err) => gunzip.destroy(err)); // pipe() does not forward errors
    source = file.pipe(gunzip);
  }
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let no = 0;
  try {
    for await (const chunk of source) {
      pending += decoder.write(chunk as Buffer);
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const raw = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        no++;
        yield { line: clean(raw, no), no };
      }
    }
    pending += decoder.end();
    if (pending.length > 0) yield { line: clean(pending, ++no), no };
  } finally {
    source.destroy();
    file.destroy();
  }
}

function clean(raw: string, no: number): string {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  return no === 1 && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line;
}

/** Parses one JSONL record, naming file and line on failure. */
function parseJson(path: string, no: number, line: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: not valid JSON`, err);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Reads the record id: `id`, or BEIR's own `_id`; numbers are accepted and stringified. */
function recordId(path: string, no: number, rec: Record<string, unknown>): string {
  const id = rec.id ?? rec._id;
  if (typeof id === 'string' && id.length > 0) return id;
  if (typeof id === 'number') return String(id);
  throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: missing string "id"`);
}

function recordText(path: string, no: number, rec: Record<string, unknown>): string {
  if (typeof rec.text !== 'string') {
    throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: missing string "text"`);
  }
  return rec.text;
}

/**
 * Streams `corpus.jsonl[.gz]` one document at a time (the file is never held whole).
 * Blank lines are skipped; an empty `title` is dropped.
 */
export async function* readCorpus(dir: string): AsyncGenerator<CorpusDoc> {
  const { path, gzip } = await resolveDataFile(dir, 'corpus.jsonl');
  for await (const { line, no } of readLines(path, gzip)) {
    if (line.trim().length === 0) continue;
    const rec = parseJson(path, no, line);
    const doc: CorpusDoc = { id: recordId(path, no, rec), text: recordText(path, no, rec) };
    if (typeof rec.title === 'string' && rec.title.length > 0) doc.title = rec.title;
    yield doc;
  }
}

/** Reads `queries.jsonl` (or `train_queries.jsonl`), keeping `answers` when present. */
export async function readQueries(dir: string, split: Split = 'test'): Promise<EvalQuery[]> {
  const { path, gzip } = await resolveDataFile(dir, `${SPLIT_PREFIX[split]}queries.jsonl`);
  const out: EvalQuery[] = [];
  for await (const { line, no } of readLines(path, gzip)) {
    if (line.trim().length === 0) continue;
    const rec = parseJson(path, no, line);
    const q: EvalQuery = { id: recordId(path, no, rec), text: recordText(path, no, rec) };
    if (rec.answers !== undefined) {
      if (!Array.isArray(rec.answers) || !rec.answers.every((a) => typeof a === 'string')) {
        throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: "answers" must be an array of strings`);
      }
      q.answers = rec.answers as string[];
    }
    out.push(q);
  }
  return out;
}

/**
 * Reads `qrels.tsv` (or `train_qrels.tsv`): `query-id<TAB>corpus-id<TAB>score`. A first line whose
 * score column is not an integer is taken as the header. Grades are kept as given, including 0;
 * metrics treat grade > 0 as relevant. A repeated pair keeps its last grade.
 */
export async function readQrels(dir: string, split: Split = 'test'): Promise<Qrels> {
  const { path, gzip } = await resolveDataFile(dir, `${SPLIT_PREFIX[split]}qrels.tsv`);
  const qrels: Qrels = new Map();
  for await (const { line, no } of readLines(path, gzip)) {
    if (line.trim().length === 0) continue;
    const cols = line.split('\t');
    const grade = cols.length >= 3 ? Number(cols[2].trim()) : NaN;
    if (!Number.isInteger(grade)) {
      if (no === 1) continue; // header line ("query-id corpus-id score")
      throw new DatasetError('DATASET_LINE_INVALID', path, `${path}:${no}: expected query-id, corpus-id, integer score`);
    }
    const qid = cols[0].trim();
    const did = cols[1].trim();
    let judged = qrels.get(qid);
    if (judged === undefined) qrels.set(qid, (judged = new Map()));
    judged.set(did, grade);
  }
  return qrels;
}
