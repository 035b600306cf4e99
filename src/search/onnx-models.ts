/**
 * Models and versions of the `onnx` retriever: its options, loading a model directory (checked
 * against the collection's vocabulary, sessions opened in a worker thread), and materialising a
 * stored version (its model and head) from the lineage. No serving and no training here.
 */
import { availableParallelism } from 'node:os';
import { loadTokenizer, vocabularyHash } from '../analysis/wordpiece.ts';
import { createError } from '../errors.ts';
import { createHead, type Head } from '../encoder/heads.ts';
import { loadModelDir } from '../encoder/model-dir.ts';
import type { EncoderLogger, ProviderName } from '../encoder/onnx.ts';
import { DEFAULT_CACHE_ENTRIES, type BackboneCache } from '../encoder/onnx-encoder.ts';
import type { RetrieverStore, VersionRecord } from '../index/retriever-store.ts';
import { openModelEncoder, type ModelEncoder } from './onnx-thread.ts';
import { proximityFromTensor, type ProximitySetting } from './proximity.ts';

/** Serving and training options of an `onnx` retriever (per collection: `retriever: {kind: 'onnx', …}`). */
export interface OnnxRetrieverOptions {
  /** Final-score mix γ of f_β/max f_β + γ·f_θ/max f_θ. Default 1; raise toward pure f_θ re-ranking (SiDR's late parametric). */
  gamma: number;
  /** AdamW learning rate of a head step. Default 1e-3 (the head starts at the identity; 1e-2 moves it fast). */
  learningRate: number;
  /** InfoNCE temperature τ. Default 1; raise it when raw scores saturate the softmax (losses ≫ log 2B). */
  temperature: number;
  /** Intra-op threads per session. Default half the cores (at least 1). */
  threads: number;
  /** Run sessions in a worker thread so `/search` never waits on the event loop. Default true. */
  inThread: boolean;
  /** Execution providers allowed (tried CUDA → WebGPU → CPU). Default all. */
  providers?: ProviderName[];
  /** Passage backbone outputs cached per (model hash, DocId). Default 10,000. */
  cacheEntries: number;
  logger?: EncoderLogger;
}

/** One loaded model: its encoder and the searches still using it. */
export interface LoadedModel {
  dir: string;
  encoder: ModelEncoder;
  /** Pins that used the model and have not been released. */
  pins: number;
  retired: boolean;
  timer?: NodeJS.Timeout;
}

/** What a pin captures: one version, its head, its serving mix γ and its model. */
export interface Served {
  record: Omit<VersionRecord, 'tensors' | 'rows'>;
  model: LoadedModel;
  head: Head;
  /** A calibrated γ of the lineage (since its model), else undefined: the configured one. */
  gamma?: number;
  /** A calibrated term proximity of the lineage (since its model), else undefined: off. */
  proximity?: ProximitySetting;
  /** A calibrated weight of the lexical term (since its model), else undefined: off. */
  lexical?: number;
}

/** The record that starts a head: `init` or `model-swap` (it names the model). */
export function modelOf(rec: VersionRecord): { dir: string; hash?: string } | undefined {
  const dir = rec.info.model;
  return typeof dir === 'string' ? { dir, hash: typeof rec.info.modelHash === 'string' ? rec.info.modelHash : undefined } : undefined;
}

/** A version record without its tensors. */
export function meta(rec: VersionRecord): Omit<VersionRecord, 'tensors' | 'rows'> {
  const { tensors: _t, rows: _r, ...m } = rec;
  return m;
}

/** g = 1, b = 0 over the model's output dimensions: the backbone as published. */
export function identityHead(e: ModelEncoder): Head {
  return createHead(e.kind === 'dense' ? 'dense' : 'sparse', e.dim);
}

/** What an init / model-swap record says about its model. */
export function modelInfo(m: LoadedModel): Record<string, unknown> {
  return { model: m.dir, modelHash: m.encoder.hash, kind: m.encoder.kind, provider: m.encoder.provider };
}

/** Loads a model directory whose vocabulary must be the collection's, and opens its sessions. */
export async function loadModel(dir: string, vocabHash: string, options: OnnxRetrieverOptions, cache: BackboneCache | null): Promise<LoadedModel> {
  const model = await loadModelDir(dir, (path) => loadTokenizer(path));
  const found = vocabularyHash(model.tokenizer);
  if (found !== vocabHash) {
    throw createError('MODEL_VOCABULARY_MISMATCH', { reason: `${model.tokenizerFile} in ${dir} does not split text into the collection's terms` }, {
      details: { model: dir, file: model.tokenizerFile, expected: vocabHash, found },
    });
  }
  const encoder = await openModelEncoder(model, {
    session: { providers: options.providers, intraOpNumThreads: options.threads, logger: options.logger },
    cache,
    inThread: options.inThread,
  });
  return { dir, encoder, pins: 0, retired: false };
}

/**
 * The served state of a stored version: the model named by the last init/model-swap record of its
 * lineage (reusing `loaded` when it is that model) and the head from the row deltas after it.
 */
export async function materialise(
  store: RetrieverStore,
  version: number,
  vocabHash: string,
  options: OnnxRetrieverOptions,
  cache: BackboneCache | null,
  loaded: LoadedModel | undefined,
): Promise<Served> {
  const chain = store.lineage(version);
  if (chain.length === 0 || chain[chain.length - 1].version !== version) throw createError('RETRIEVER_VERSION_NOT_FOUND', { version });
  let start = -1;
  for (let i = chain.length - 1; i >= 0 && start < 0; i--) if (modelOf(chain[i])) start = i;
  if (start < 0) throw createError('RETRIEVER_VERSION_NOT_FOUND', { version }, { details: { reason: 'its lineage names no model' } });
  const named = modelOf(chain[start])!;
  const model = loaded && loaded.dir === named.dir && loaded.encoder.hash === (named.hash ?? loaded.encoder.hash) ? loaded : await loadModel(named.dir, vocabHash, options, cache);
  if (named.hash && named.hash !== model.encoder.hash) {
    options.logger?.warn({ model: named.dir, recorded: named.hash, found: model.encoder.hash }, 'model files changed since the version was recorded; its head may not fit them');
  }
  const head = identityHead(model.encoder);
  let gamma: number | undefined;
  let proximity: ProximitySetting | undefined;
  let lexical: number | undefined;
  for (const rec of chain.slice(start + 1)) {
    if (rec.tensors.gamma) gamma = rec.tensors.gamma[0];
    if (rec.tensors.lexical) lexical = rec.tensors.lexical[0];
    proximity = proximityFromTensor(rec.tensors.proximity) ?? proximity;
    for (const name of ['g', 'b'] as const) {
      const d = rec.rows[name];
      if (!d) continue;
      for (let i = 0; i < d.rows.length; i++) if (d.rows[i] < head.dim) head[name][d.rows[i]] = d.values[i];
    }
  }
  return { record: meta(chain[chain.length - 1]), model, head, ...(gamma === undefined ? {} : { gamma }), ...(proximity === undefined ? {} : { proximity }), ...(lexical === undefined ? {} : { lexical }) };
}

/** Options from a collection's `retriever: {kind: 'onnx', …}` (missing or invalid fields take their defaults). */
export function onnxOptionsFrom(raw: Record<string, unknown>, logger?: EncoderLogger): OnnxRetrieverOptions {
  const num = (v: unknown, fallback: number, ok: (x: number) => boolean = (x) => x > 0): number => (typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : fallback);
  const providers = Array.isArray(raw.providers) ? raw.providers.filter((p): p is ProviderName => p === 'cuda' || p === 'webgpu' || p === 'cpu') : undefined;
  return {
    gamma: num(raw.gamma, 1, (x) => x >= 0),
    learningRate: num(raw.learningRate, 1e-3),
    temperature: num(raw.temperature, 1),
    threads: Math.floor(num(raw.threads, Math.max(1, Math.floor(availableParallelism() / 2)))),
    inThread: raw.inThread !== false,
    ...(providers && providers.length > 0 ? { providers } : {}),
    cacheEntries: Math.floor(num(raw.cacheEntries, DEFAULT_CACHE_ENTRIES, (x) => x >= 0)),
    ...(logger ? { logger } : {}),
  };
}
