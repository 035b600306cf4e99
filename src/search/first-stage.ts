/**
 * First stage over the frozen bag-of-tokens index: Σ_v q_v · τ(tf_{v,d}, |d|) accumulated term at a
 * time over the tf-tier bitmaps, then top-m. Serves `lexical` (q = idf), `beta` (τ ≡ 1) and the
 * first stage of `late` (q = E_θ(q)). Never depends on θ except through the query weights.
 */
import { RoaringBitmap32, type Bitmap } from '../index/codec.ts';
import { TF_TIERS, type CollectionIndex } from '../index/collection-index.ts';
import { accumulateBm25, resetAt, topM } from '../kernels/index.ts';
import type { SparseVector } from '../types.ts';
import type { Bm25Params } from './bm25.ts';

/** Top documents of the first stage, best first. */
export interface Ranked {
  ids: Uint32Array;
  scores: Float32Array;
}

const UINT32_END = 2 ** 32;

/**
 * Reusable scratch space for one collection: a score accumulator indexed by DocId and a cache of
 * posting arrays valid for one index generation. Not shared across concurrent callers: search
 * runs on the event loop, one query at a time.
 */
export class FirstStage {
  private acc: Float32Array = new Float32Array(0);
  private arrays = new Map<number, Uint32Array>();
  private generation = -1;
  private arrayBytes = 0;
  private readonly index: CollectionIndex;

  constructor(index: CollectionIndex) {
    this.index = index;
  }

  private postingArray(termId: number, tier: number, bitmap: Bitmap): Uint32Array {
    if (this.generation !== this.index.generation) {
      this.arrays.clear();
      this.arrayBytes = 0;
      this.generation = this.index.generation;
    }
    const key = termId * TF_TIERS.length + tier;
    let a = this.arrays.get(key);
    if (a === undefined) {
      a = bitmap.toUint32Array();
      // Bound the cache (posting arrays of a large index can be big): 256 MiB.
      if (this.arrayBytes + a.byteLength < 256 * 1024 * 1024) {
        this.arrays.set(key, a);
        this.arrayBytes += a.byteLength;
      }
    }
    return a;
  }

  /**
   * Scores every live document matching a query term and returns the best `m`.
   * @param query term ids and weights (q_v)
   * @param params BM25 parameters; k1 = 0 is binary match
   * @param filter only documents in this bitmap (metadata filters), when given
   */
  run(query: SparseVector, m: number, params: Bm25Params, filter?: Bitmap): Ranked {
    const index = this.index;
    const limit = index.docIdLimit;
    const capacity = index.docIdCapacity;
    if (this.acc.length < capacity) this.acc = new Float32Array(Math.max(capacity, this.acc.length * 2));
    const acc = this.acc;
    const lengths = index.docLengths;
    const avgdl = index.avgLength;
    const touchedBitmaps: Bitmap[] = [];
    for (let i = 0; i < query.ids.length; i++) {
      const termId = query.ids[i];
      const weight = query.weights[i];
      if (!(weight > 0)) continue;
      const tiers = params.k1 <= 0 ? 1 : index.tierCount(termId);
      for (let t = 0; t < tiers; t++) {
        const bitmap = index.posting(termId, t);
        if (!bitmap) break;
        if (t === 0) touchedBitmaps.push(bitmap);
        const docs = this.postingArray(termId, t, bitmap);
        accumulateBm25(acc, docs, lengths, weight, TF_TIERS[t], t === 0 ? 0 : TF_TIERS[t - 1], params.k1, params.b, avgdl);
      }
    }
    const touched = RoaringBitmap32.orMany(touchedBitmaps);
    const candidates = touched.clone();
    candidates.andNotInPlace(index.tombstones);
    candidates.removeRange(limit, UINT32_END);
    if (filter) candidates.andInPlace(filter);
    const ids = new Uint32Array(m);
    const scores = new Float32Array(m);
    const n = topM(acc, candidates.toUint32Array(), m, ids, scores);
    resetAt(acc, touched.toUint32Array());
    return { ids: ids.subarray(0, n), scores: scores.subarray(0, n) };
  }
}
