/**
 * Loads and validates an `onnx` retriever's model directory (DESIGN §3.2): `r3serve.json`,
 * the ONNX file(s), `tokenizer.json` or `vocab.txt`, `config.json`. Fails with `MODEL_NOT_FOUND`
 * or `MODEL_INVALID` naming the file and field; computes the model hash used as a cache key.
 * Opens no session (`onnx-encoder.ts` does) and parses no vocabulary: the caller passes the
 * tokenizer loader (text analysis lives in `analysis/`, which `encoder/` must not import).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { createError } from '../errors.ts';
import type { SubwordTokenizer } from '../types.ts';

/** The three backbone families an `onnx` retriever can run. */
export type ModelKind = 'sidr' | 'splade' | 'dense';

/** Default SiDR top-k (the published SiDR keeps 768 dimensions plus the tokens present). */
export const DEFAULT_SIDR_TOP_K = 768;
/** Default query length cap, in tokens including [CLS]/[SEP]. */
export const DEFAULT_MAX_QUERY_TOKENS = 64;
/** Default passage length cap, in tokens including [CLS]/[SEP]. */
export const DEFAULT_MAX_PASSAGE_TOKENS = 256;

/** `r3serve.json`, normalized: every field present. */
export interface ModelManifest {
  kind: ModelKind;
  /** Index term id = vocabulary id + vocabShift; ids that land below 0 are dropped. Default 0. */
  vocabShift: number;
  /** Sparse kinds: keep this many top dimensions (SiDR adds the present tokens). 0 = keep all (SPLADE default). */
  topK: number;
  maxQueryLength: number;
  maxPassageLength: number;
  /** Dense only: how token vectors become one vector. Default 'mean'. */
  pooling: 'mean' | 'cls';
  /** Name of the output to read: default 'logits' (sparse) or 'last_hidden_state' (dense). */
  outputs: string;
  /** ONNX files relative to the directory; equal names mean one shared session. */
  files: { query: string; passage: string };
}

/** The few `config.json` fields we use (transformers.js `getNormalizedConfig`). */
export interface NormalizedModelConfig {
  modelType: string;
  hiddenSize: number;
  vocabSize: number;
  /** Undefined when the config does not say. */
  maxPositionEmbeddings?: number;
}

/** Loads a tokenizer file (`tokenizer.json` or `vocab.txt`) by path; `analysis/wordpiece.ts` supplies it. */
export type TokenizerLoader<T extends SubwordTokenizer> = (path: string) => Promise<T>;

/** A validated model directory. */
export interface ModelDir<T extends SubwordTokenizer = SubwordTokenizer> {
  dir: string;
  manifest: Readonly<ModelManifest>;
  config: Readonly<NormalizedModelConfig>;
  tokenizer: T;
  /** 'tokenizer.json' or 'vocab.txt'. */
  tokenizerFile: string;
  queryPath: string;
  passagePath: string;
  /** True when query and passage share one ONNX file (one session). */
  shared: boolean;
  /** sha256 (hex) over r3serve.json, the tokenizer file and each distinct ONNX file. */
  hash: string;
}

function modelError(code: 'MODEL_INVALID' | 'MODEL_NOT_FOUND', reason: string, details: Record<string, unknown>, cause?: unknown): Error {
  return createError(code, { reason, dir: details.dir ?? '' }, { details, cause });
}

function invalid(file: string, field: string | undefined, problem: string, cause?: unknown): Error {
  const where = field ? `${file}: ${field}` : file;
  return modelError('MODEL_INVALID', `${where} ${problem}`, { file, ...(field ? { field } : {}) }, cause);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function readJson(dir: string, file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(dir, file), 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw modelError(file === 'r3serve.json' ? 'MODEL_NOT_FOUND' : 'MODEL_INVALID', `${file} is missing`, { file, dir }, cause);
    }
    throw invalid(file, undefined, 'cannot be read', cause);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw invalid(file, undefined, 'is not valid JSON', cause);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid(file, undefined, 'must hold a JSON object');
  return parsed as Record<string, unknown>;
}

function intField(raw: Record<string, unknown>, field: string, fallback: number, min: number, file = 'r3serve.json'): number {
  const v = raw[field];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw invalid(file, field, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return v;
}

/** A relative path that stays inside the model directory. */
function relativeFile(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '' || isAbsolute(v) || normalize(v).split(sep).includes('..')) {
    throw invalid('r3serve.json', field, `must be a file name inside the model directory, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Check and normalize a parsed `r3serve.json` (defaults filled in; `files` defaults are resolved by {@link loadModelDir}). */
export function validateManifest(raw: Record<string, unknown>, defaultFiles: { query: string; passage: string } = { query: 'model.onnx', passage: 'model.onnx' }): ModelManifest {
  const kind = raw.kind;
  if (kind !== 'sidr' && kind !== 'splade' && kind !== 'dense') {
    throw invalid('r3serve.json', 'kind', `must be 'sidr', 'splade' or 'dense', got ${JSON.stringify(kind)}`);
  }
  const vocabShift = raw.vocabShift ?? 0;
  if (typeof vocabShift !== 'number' || !Number.isInteger(vocabShift)) throw invalid('r3serve.json', 'vocabShift', 'must be an integer');
  const pooling = raw.pooling ?? 'mean';
  if (pooling !== 'mean' && pooling !== 'cls') throw invalid('r3serve.json', 'pooling', `must be 'mean' or 'cls', got ${JSON.stringify(pooling)}`);
  const outputs = raw.outputs ?? (kind === 'dense' ? 'last_hidden_state' : 'logits');
  if (typeof outputs !== 'string' || outputs === '') throw invalid('r3serve.json', 'outputs', 'must name one model output');
  const files = raw.files ?? {};
  if (typeof files !== 'object' || files === null || Array.isArray(files)) throw invalid('r3serve.json', 'files', 'must be an object {query, passage}');
  const f = files as Record<string, unknown>;
  return {
    kind,
    vocabShift,
    topK: intField(raw, 'topK', kind === 'sidr' ? DEFAULT_SIDR_TOP_K : 0, kind === 'sidr' ? 1 : 0),
    maxQueryLength: intField(raw, 'maxQueryLength', DEFAULT_MAX_QUERY_TOKENS, 2),
    maxPassageLength: intField(raw, 'maxPassageLength', DEFAULT_MAX_PASSAGE_TOKENS, 2),
    pooling,
    outputs,
    files: {
      query: relativeFile(f.query ?? defaultFiles.query, 'files.query'),
      passage: relativeFile(f.passage ?? defaultFiles.passage, 'files.passage'),
    },
  };
}

/** `config.json` → the fields we use; BERT names first, DistilBERT's (`dim`) as a fallback. */
export function normalizeConfig(raw: Record<string, unknown>): NormalizedModelConfig {
  const hiddenSize = raw.hidden_size ?? raw.dim ?? raw.d_model;
  if (typeof hiddenSize !== 'number' || !Number.isInteger(hiddenSize) || hiddenSize < 1) throw invalid('config.json', 'hidden_size', 'must be a positive integer');
  const vocabSize = intField(raw, 'vocab_size', Number.NaN, 1, 'config.json');
  if (Number.isNaN(vocabSize)) throw invalid('config.json', 'vocab_size', 'is required');
  const mpe = raw.max_position_embeddings;
  return {
    modelType: typeof raw.model_type === 'string' ? raw.model_type : 'bert',
    hiddenSize,
    vocabSize,
    ...(typeof mpe === 'number' && Number.isInteger(mpe) ? { maxPositionEmbeddings: mpe } : {}),
  };
}

async function hashFiles(paths: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const p of paths) {
    h.update(`${p.split(sep).pop()}\0`); // frame each part so concatenations cannot collide
    for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
    h.update('\0');
  }
  return h.digest('hex');
}

/** The tokenizer file of a model directory: `tokenizer.json` when present, else `vocab.txt`. */
export async function tokenizerFileOf(dir: string): Promise<'tokenizer.json' | 'vocab.txt'> {
  return (await isFile(join(dir, 'tokenizer.json'))) ? 'tokenizer.json' : 'vocab.txt';
}

/**
 * Load and validate a model directory, reading its vocabulary with `loadTokenizer`.
 * `MODEL_NOT_FOUND` when the directory or its `r3serve.json` is missing; `MODEL_INVALID`
 * (details `{file, field?}`) for anything wrong inside it.
 */
export async function loadModelDir<T extends SubwordTokenizer>(dir: string, loadTokenizer: TokenizerLoader<T>): Promise<ModelDir<T>> {
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw modelError('MODEL_NOT_FOUND', 'model directory not found', { dir });
  const rawManifest = await readJson(dir, 'r3serve.json');
  const split = (await isFile(join(dir, 'query.onnx'))) && (await isFile(join(dir, 'passage.onnx')));
  const manifest = validateManifest(rawManifest, split ? { query: 'query.onnx', passage: 'passage.onnx' } : undefined);
  const config = normalizeConfig(await readJson(dir, 'config.json'));

  for (const role of ['query', 'passage'] as const) {
    if (!(await isFile(join(dir, manifest.files[role])))) throw invalid(manifest.files[role], `files.${role}`, 'does not exist (named by r3serve.json)');
  }
  const tokenizerFile = await tokenizerFileOf(dir);
  if (!(await isFile(join(dir, tokenizerFile)))) throw invalid('vocab.txt', undefined, 'is missing (neither tokenizer.json nor vocab.txt found)');
  let tokenizer: T;
  try {
    tokenizer = await loadTokenizer(join(dir, tokenizerFile));
  } catch (cause) {
    throw invalid(tokenizerFile, undefined, 'is not a usable WordPiece vocabulary', cause);
  }
  if (tokenizer.vocabSize > config.vocabSize) {
    throw invalid('config.json', 'vocab_size', `is ${config.vocabSize} but ${tokenizerFile} has ${tokenizer.vocabSize} ids`);
  }
  const maxPos = config.maxPositionEmbeddings;
  for (const field of ['maxQueryLength', 'maxPassageLength'] as const) {
    if (maxPos !== undefined && manifest[field] > maxPos) throw invalid('r3serve.json', field, `exceeds config.json max_position_embeddings (${maxPos})`);
  }
  const queryPath = join(dir, manifest.files.query);
  const passagePath = join(dir, manifest.files.passage);
  const shared = normalize(manifest.files.query) === normalize(manifest.files.passage);
  const parts = [join(dir, 'r3serve.json'), join(dir, tokenizerFile), queryPath, ...(shared ? [] : [passagePath])];
  return { dir, manifest, config, tokenizer, tokenizerFile, queryPath, passagePath, shared, hash: await hashFiles(parts) };
}
