/**
 * The `onnx` encoder (DESIGN §3.2): a frozen transformer backbone from a model directory, run in
 * one padded batch per call, pooled into SiDR / SPLADE sparse vectors or a dense vector, with an
 * LRU cache of passage outputs per (model hash, doc key). Emits backbone outputs only: the
 * trainable head is `heads.ts`. Talks to onnxruntime through `onnx.ts` only.
 */
import { createError } from '../errors.ts';
import type { SparseVector, SubwordTokenizer } from '../types.ts';
import type { ModelDir, ModelKind } from './model-dir.ts';
import { dispose, openSession, run, type EncoderSession, type Feed, type OpenSessionOptions, type ProviderName } from './onnx.ts';

/** Texts per session run; a re-rank call (m = 20) fits in one. Raise for throughput, lower for memory
 * (sparse kinds hold a batch × length × vocab float32 logits tensor: 32×256×30522 ≈ 1 GB). */
export const ENCODER_BATCH_SIZE = 32;
/** Default passage-cache capacity, in entries (a SiDR entry is ~1k dims ≈ 8 KiB). */
export const DEFAULT_CACHE_ENTRIES = 10_000;

/** A backbone output: a sparse vector over index term ids (sidr, splade) or a dense vector. */
export type BackboneOutput = SparseVector | Float32Array;

/** A passage to encode; with a `key` its output is cached (the key must change when the text does). */
export interface PassageInput {
  key?: string;
  text: string;
}

/** LRU cache of passage backbone outputs, shareable by several encoders (keys carry the model hash). */
export interface BackboneCache {
  get(modelHash: string, docKey: string): BackboneOutput | undefined;
  set(modelHash: string, docKey: string, value: BackboneOutput): void;
  /** Forget one document under every model (call on upsert/delete). */
  deleteDoc(docKey: string): void;
  clear(): void;
  readonly size: number;
  readonly stats: { hits: number; misses: number };
}

/** Options for {@link openOnnxEncoder}. */
export interface OnnxEncoderOptions extends OpenSessionOptions {
  /** Shared cache; `false` disables caching; default a private one of {@link DEFAULT_CACHE_ENTRIES}. */
  cache?: BackboneCache | false;
  /** Default {@link ENCODER_BATCH_SIZE}. */
  batchSize?: number;
}

/** An open `onnx` backbone. */
export interface OnnxEncoder<T extends SubwordTokenizer = SubwordTokenizer> {
  readonly kind: ModelKind;
  /** Model hash (cache key, reported with the retriever version). */
  readonly hash: string;
  readonly provider: ProviderName;
  /** Vocabulary size (sparse kinds) or hidden size (dense): the head's dimension. */
  readonly dim: number;
  /** Term id = vocabulary id + vocabShift. */
  readonly vocabShift: number;
  readonly model: ModelDir<T>;
  readonly tokenizer: T;
  readonly cache: BackboneCache | null;
  encodeQueries(texts: readonly string[]): Promise<BackboneOutput[]>;
  /**
   * All uncached passages of the call go through one padded batch (per {@link ENCODER_BATCH_SIZE}).
   * Cached outputs are returned by reference: treat every output as read-only.
   */
  encodePassages(docs: readonly (string | PassageInput)[]): Promise<BackboneOutput[]>;
  /** Release every session; idempotent. */
  dispose(): Promise<void>;
}

/** True when the output is a dense vector. */
export function isDense(v: BackboneOutput): v is Float32Array {
  return v instanceof Float32Array;
}

function modelInvalid(reason: string, details: Record<string, unknown>): Error {
  return createError('MODEL_INVALID', { reason }, { details });
}

// ---------------------------------------------------------------- cache

/** Map-backed LRU: a hit moves the entry to the back; inserts evict from the front. */
export function createBackboneCache(maxEntries = DEFAULT_CACHE_ENTRIES): BackboneCache {
  const map = new Map<string, BackboneOutput>();
  const hashes = new Set<string>();
  const stats = { hits: 0, misses: 0 };
  const k = (h: string, d: string): string => `${h}\u0000${d}`;
  return {
    get(h, d) {
      const key = k(h, d);
      const v = map.get(key);
      if (v === undefined) {
        stats.misses++;
        return undefined;
      }
      stats.hits++;
      map.delete(key);
      map.set(key, v);
      return v;
    },
    set(h, d, v) {
      if (maxEntries <= 0) return;
      hashes.add(h);
      const key = k(h, d);
      map.delete(key);
      map.set(key, v);
      while (map.size > maxEntries) map.delete(map.keys().next().value as string);
    },
    deleteDoc(d) {
      for (const h of hashes) map.delete(k(h, d));
    },
    clear() {
      map.clear();
    },
    get size() {
      return map.size;
    },
    stats,
  };
}

// ---------------------------------------------------------------- batching

interface Batch {
  feeds: Record<string, Feed>;
  /** Ids per row (unpadded), for SiDR's "present tokens". */
  rows: number[][];
  seqLen: number;
}

/** Tokenize and right-pad to the longest row with [PAD] (mask 0); token types are all 0. */
function makeBatch(tok: SubwordTokenizer, texts: readonly string[], maxLength: number): Batch {
  const rows = texts.map((t) => tok.encode(t, maxLength).ids);
  const seqLen = Math.max(...rows.map((r) => r.length));
  const n = texts.length * seqLen;
  const ids = new BigInt64Array(n).fill(BigInt(tok.padId));
  const mask = new BigInt64Array(n);
  rows.forEach((r, b) => {
    for (let s = 0; s < r.length; s++) {
      ids[b * seqLen + s] = BigInt(r[s]);
      mask[b * seqLen + s] = 1n;
    }
  });
  const dims = [texts.length, seqLen];
  return {
    rows,
    seqLen,
    feeds: {
      input_ids: { type: 'int64', data: ids, dims },
      attention_mask: { type: 'int64', data: mask, dims },
      token_type_ids: { type: 'int64', data: new BigInt64Array(n), dims },
    },
  };
}

// ---------------------------------------------------------------- pooling

/**
 * Max over the row's real positions of the raw logits, then the activation: both activations are
 * non-decreasing, so max_s f(z_s) = f(max_s z_s) and f runs V times instead of S·V.
 * sidr: elu1p(z) = ELU(z) + 1 (z + 1 if z > 0, else e^z); splade: log(1 + relu(z)).
 */
function poolVocab(logits: Float32Array, b: number, seqLen: number, realLen: number, V: number, kind: 'sidr' | 'splade'): Float32Array {
  const out = new Float32Array(V).fill(-Infinity);
  for (let s = 0; s < realLen; s++) {
    const base = (b * seqLen + s) * V;
    for (let v = 0; v < V; v++) {
      const z = logits[base + v];
      if (z > out[v]) out[v] = z;
    }
  }
  for (let v = 0; v < V; v++) {
    const z = out[v];
    out[v] = kind === 'sidr' ? (z > 0 ? z + 1 : Math.exp(z)) : Math.log1p(z > 0 ? z : 0);
  }
  return out;
}

/** The k-th largest value (1-based) by quickselect on a copy; O(V) on average. */
function kthLargest(values: Float32Array, k: number): number {
  const a = Float32Array.from(values);
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target];
}

/**
 * Sparsify pooled weights: drop special dims and zeros, keep the top `topK` (0 = all; ties broken
 * by lower id) plus `present` ids, shift to term ids, drop ids below 0. Ids come out ascending.
 */
function sparsify(w: Float32Array, topK: number, present: ReadonlySet<number>, special: ReadonlySet<number>, shift: number): SparseVector {
  for (const s of special) if (s < w.length) w[s] = 0;
  let threshold = 0;
  let tiesLeft = Infinity;
  if (topK > 0 && topK < w.length) {
    threshold = kthLargest(w, topK);
    let above = 0;
    for (let v = 0; v < w.length; v++) if (w[v] > threshold) above++;
    tiesLeft = topK - above;
  }
  const ids: number[] = [];
  const weights: number[] = [];
  for (let v = 0; v < w.length; v++) {
    const x = w[v];
    if (!(x > 0) || v + shift < 0) continue;
    let keep = present.has(v) || x > threshold || (topK === 0 && x > 0);
    if (!keep && x === threshold && tiesLeft > 0) {
      tiesLeft--;
      keep = true;
    }
    if (keep) {
      ids.push(v + shift);
      weights.push(x);
    }
  }
  return { ids: Uint32Array.from(ids), weights: Float32Array.from(weights) };
}

/** Mean over real positions, or the [CLS] (first) position. */
function poolDense(h: Float32Array, b: number, seqLen: number, realLen: number, H: number, pooling: 'mean' | 'cls'): Float32Array {
  const out = new Float32Array(H);
  const n = pooling === 'cls' ? 1 : realLen;
  for (let s = 0; s < n; s++) {
    const base = (b * seqLen + s) * H;
    for (let k = 0; k < H; k++) out[k] += h[base + k];
  }
  if (n > 1) for (let k = 0; k < H; k++) out[k] /= n;
  return out;
}

// ---------------------------------------------------------------- the encoder

function checkSession(session: EncoderSession, model: ModelDir<SubwordTokenizer>): void {
  const { manifest, config } = model;
  if (!session.inputNames.includes('input_ids')) {
    throw modelInvalid(`${session.source} has no input_ids input`, { file: session.source, field: 'inputs', inputs: session.inputs });
  }
  const out = session.outputs.find((o) => o.name === manifest.outputs);
  if (!out) {
    throw modelInvalid(`r3serve.json: outputs names ${manifest.outputs}, which the model lacks`, { file: 'r3serve.json', field: 'outputs', available: session.outputNames });
  }
  const want = manifest.kind === 'dense' ? config.hiddenSize : config.vocabSize;
  const last = out.shape[out.shape.length - 1];
  // An empty shape means the model does not declare one; the run-time check in encodeBatch still applies.
  if (out.shape.length > 0 && (out.shape.length !== 3 || (typeof last === 'number' && last !== want))) {
    throw modelInvalid(`output ${out.name} must be [batch, sequence, ${want}]`, { file: 'config.json', field: manifest.kind === 'dense' ? 'hidden_size' : 'vocab_size', shape: out.shape });
  }
}

/**
 * Passage encoding through a cache: cached outputs come back by reference, the rest go to
 * `encode` in one call (so one padded batch) and are cached under (model hash, key). Shared by
 * the in-thread encoder below and by encoders whose sessions run in a worker thread.
 */
export function cachedPassageEncoder(
  hash: string,
  cache: BackboneCache | null,
  encode: (texts: string[]) => Promise<BackboneOutput[]>,
): (docs: readonly (string | PassageInput)[]) => Promise<BackboneOutput[]> {
  return async (docs) => {
    const items = docs.map((d) => (typeof d === 'string' ? { text: d } : d));
    const out: (BackboneOutput | undefined)[] = items.map((d) => (cache && d.key !== undefined ? cache.get(hash, d.key) : undefined));
    const todo = items.map((_, i) => i).filter((i) => out[i] === undefined);
    const fresh = todo.length > 0 ? await encode(todo.map((i) => items[i].text)) : [];
    todo.forEach((i, k) => {
      out[i] = fresh[k];
      const key = items[i].key;
      if (cache && key !== undefined) cache.set(hash, key, fresh[k]);
    });
    return out as BackboneOutput[];
  };
}

/**
 * Open the session(s) of a loaded model directory (`loadModelDir` with the tokenizer loader of
 * `analysis/`) and return its encoder. Sessions run on the calling thread.
 */
export async function openOnnxEncoder<T extends SubwordTokenizer>(model: ModelDir<T>, opts: OnnxEncoderOptions = {}): Promise<OnnxEncoder<T>> {
  const { manifest, config, tokenizer } = model;
  const query = await openSession(model.queryPath, opts);
  let passage = query;
  try {
    if (!model.shared) passage = await openSession(model.passagePath, opts);
    checkSession(query, model);
    checkSession(passage, model);
  } catch (err) {
    await dispose(query);
    if (passage !== query) await dispose(passage);
    throw err;
  }
  const cache = opts.cache === false ? null : (opts.cache ?? createBackboneCache());
  const batchSize = opts.batchSize ?? ENCODER_BATCH_SIZE;
  const dim = manifest.kind === 'dense' ? config.hiddenSize : config.vocabSize;

  const encodeBatch = async (session: EncoderSession, texts: readonly string[], maxLength: number): Promise<BackboneOutput[]> => {
    const batch = makeBatch(tokenizer, texts, maxLength);
    const fetched = (await run(session, batch.feeds))[manifest.outputs];
    const [B, S, D] = fetched?.dims ?? [];
    if (!fetched || !(fetched.data instanceof Float32Array) || B !== texts.length || S !== batch.seqLen || D !== dim) {
      throw createError('ENCODER_RUN_FAILED', { reason: `output ${manifest.outputs} has an unexpected type or shape` }, {
        details: { output: manifest.outputs, type: fetched?.type, dims: fetched?.dims, expected: [texts.length, batch.seqLen, dim] },
      });
    }
    const data = fetched.data;
    return batch.rows.map((row, b) => {
      if (manifest.kind === 'dense') return poolDense(data, b, S, row.length, D, manifest.pooling);
      const pooled = poolVocab(data, b, S, row.length, D, manifest.kind);
      const present = manifest.kind === 'sidr' ? new Set(row.filter((id) => !tokenizer.specialIds.has(id))) : new Set<number>();
      return sparsify(pooled, manifest.topK, present, tokenizer.specialIds, manifest.vocabShift);
    });
  };
  const encodeAll = async (session: EncoderSession, texts: readonly string[], maxLength: number): Promise<BackboneOutput[]> => {
    const out: BackboneOutput[] = [];
    for (let i = 0; i < texts.length; i += batchSize) out.push(...(await encodeBatch(session, texts.slice(i, i + batchSize), maxLength)));
    return out;
  };

  let disposed = false;
  return {
    kind: manifest.kind,
    hash: model.hash,
    provider: query.provider,
    dim,
    vocabShift: manifest.vocabShift,
    model,
    tokenizer,
    cache,
    encodeQueries: (texts) => encodeAll(query, texts, manifest.maxQueryLength),
    encodePassages: cachedPassageEncoder(model.hash, cache, (texts) => encodeAll(passage, texts, manifest.maxPassageLength)),
    async dispose() {
      if (disposed) return;
      disposed = true;
      await dispose(query);
      if (passage !== query) await dispose(passage);
    },
  };
}
