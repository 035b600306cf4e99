/**
 * Pure-TypeScript kernels: the test oracle for native/ and the fallback when the addon is absent.
 * Owns the kernel contract (`Kernels`) and argument validation; must not import anything but types.
 * Every function here has a twin in native/src/r3kernels.cc with the same semantics and errors.
 */

/** `code` carried by every argument error a kernel throws (TypeError or RangeError), native or not. */
export const KERNEL_ARG_ERROR = 'ERR_KERNEL_ARG';

/**
 * The hot-loop kernels. Native and reference implementations share this contract, argument
 * checks included; outputs are caller-owned buffers so that the hot path allocates nothing.
 * Top-k outputs rank by the float32 score (what is written), ties by the smaller id, best first.
 */
export interface Kernels {
  /**
   * Vocabulary-wide expansion scan. For every row v with `skip[v] === 0`:
   * `c = un_v · h`, `s = w_v · exp(alpha · (c − 1))`; keeps the k largest s.
   *
   * @param un - V×D row-major term embeddings (rows unit-norm or zero); V is `w.length`.
   * @param D - embedding dimension.
   * @param h - query vector, length ≥ D.
   * @param w - per-term importance, length V.
   * @param alpha - sharpness (> 0 in practice; any finite value is accepted).
   * @param k - how many to keep.
   * @param skip - length ≥ V; 1 = do not score this row (terms already in the query, stop words).
   * @param outIds - length ≥ k; receives term ids, best first.
   * @param outScores - length ≥ k; receives the scores aligned with `outIds`.
   * @returns how many entries were written (≤ k).
   */
  scanTopK(
    un: Float32Array,
    D: number,
    h: Float32Array,
    w: Float32Array,
    alpha: number,
    k: number,
    skip: Uint8Array,
    outIds: Uint32Array,
    outScores: Float32Array,
  ): number;
  /** `out = a · bᵀ` for row-major a (m×k) and b (n×k); out is m×n row-major. Buffers may be larger. */
  matmulABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, out: Float32Array): void;
  /**
   * Adds one tf tier of a posting to an accumulator: for each d in `docs`,
   * `acc[d] += weight · (sat(tf, len_d) − sat(prevTf, len_d))`, with the BM25 saturation
   * `sat(t, L) = t·(k1+1) / (t + k1·(1 − b + b·L/avgdl))` and `sat(0, ·) = 0`.
   * When `k1 ≤ 0` the saturation is binary (`sat(t > 0) = 1`, strict SiDR) and b, avgdl are unused;
   * otherwise `avgdl > 0` and `0 ≤ b ≤ 1` are required (RangeError). Doc ids are bounds-checked
   * against `acc` and `docLen` before anything is written.
   * The posting need not be ascending; ascending order only makes the gathers cache-friendly.
   */
  accumulateBm25(
    acc: Float32Array,
    docs: Uint32Array,
    docLen: Uint32Array,
    weight: number,
    tf: number,
    prevTf: number,
    k1: number,
    b: number,
    avgdl: number,
  ): void;
  /**
   * The m largest `acc[d]` over `candidates` (ties by smaller id), best first; returns the count.
   * Candidates should be unique: a repeated id is ranked once per occurrence.
   */
  topM(acc: Float32Array, candidates: Uint32Array, m: number, outIds: Uint32Array, outScores: Float32Array): number;
  /** Zeroes `acc` at every candidate, so a reused accumulator is cleared in O(touched). */
  resetAt(acc: Float32Array, candidates: Uint32Array): void;
}

/**
 * Margin, in log-score units (≈ relative score), by which a row must miss the heap minimum before
 * scanTopK skips its exp(). It dwarfs float rounding, so pruning never changes the result.
 */
const PRUNE_MARGIN_LOG = 1e-6;
const MAX_U32 = 0xffff_ffff;

// ── argument checks (mirrored in native/src/r3kernels.cc) ─────────────────────────────────────

function argError(Ctor: typeof TypeError | typeof RangeError, message: string): Error {
  // Programming errors, shaped like Node's ERR_* errors; search/ wraps them as `cause` if needed.
  const err = new Ctor(message) as Error & { code: string };
  err.code = KERNEL_ARG_ERROR;
  return err;
}

function typed<T>(name: string, x: unknown, Ctor: new (n: number) => T): T {
  if (!(x instanceof Ctor)) throw argError(TypeError, `${name} must be a ${Ctor.name}`);
  return x;
}

function finite(name: string, x: unknown): number {
  if (typeof x !== 'number') throw argError(TypeError, `${name} must be a number`);
  if (!Number.isFinite(x)) throw argError(RangeError, `${name} must be finite`);
  return x;
}

function count(name: string, x: unknown): number {
  if (typeof x !== 'number') throw argError(TypeError, `${name} must be a number`);
  if (!Number.isInteger(x) || x < 0 || x > MAX_U32) {
    throw argError(RangeError, `${name} must be an integer in [0, 2^32)`);
  }
  return x;
}

function atLeast(name: string, length: number, needed: number): void {
  if (length < needed) throw argError(RangeError, `${name} has length ${length}, needs at least ${needed}`);
}

/** Every id must index `length`; checked before any write so a bad call mutates nothing. */
function idsBelow(name: string, ids: Uint32Array, length: number): void {
  let max = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] > max) max = ids[i];
  if (ids.length > 0 && max >= length) throw argError(RangeError, `${name} holds id ${max} ≥ ${length}`);
}

// ── bounded min-heap kept in the caller's output arrays ───────────────────────────────────────
// Root = worst entry (lowest score, then highest id). `worse(i, j)` is the heap order.

function worse(ids: Uint32Array, sc: Float32Array, i: number, j: number): boolean {
  return sc[i] < sc[j] || (sc[i] === sc[j] && ids[i] > ids[j]);
}

function swap(ids: Uint32Array, sc: Float32Array, i: number, j: number): void {
  const ti = ids[i];
  ids[i] = ids[j];
  ids[j] = ti;
  const ts = sc[i];
  sc[i] = sc[j];
  sc[j] = ts;
}

function siftUp(ids: Uint32Array, sc: Float32Array, i: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!worse(ids, sc, i, p)) return;
    swap(ids, sc, i, p);
    i = p;
  }
}

function siftDown(ids: Uint32Array, sc: Float32Array, i: number, size: number): void {
  for (;;) {
    const l = 2 * i + 1;
    if (l >= size) return;
    const r = l + 1;
    const c = r < size && worse(ids, sc, r, l) ? r : l;
    if (!worse(ids, sc, c, i)) return;
    swap(ids, sc, i, c);
    i = c;
  }
}

/** Offers (id, s) to a heap of capacity k holding `size` entries; returns the new size. */
function offer(ids: Uint32Array, sc: Float32Array, size: number, k: number, id: number, s: number): number {
  if (size < k) {
    ids[size] = id;
    sc[size] = s;
    siftUp(ids, sc, size);
    return size + 1;
  }
  // `s` is already float32, so this compares exactly what would be written.
  if (s > sc[0] || (s === sc[0] && id < ids[0])) {
    ids[0] = id;
    sc[0] = s;
    siftDown(ids, sc, 0, size);
  }
  return size;
}

/** In-place heapsort of the heap: worst entries move to the back, leaving best first. */
function sortHeap(ids: Uint32Array, sc: Float32Array, size: number): void {
  for (let end = size - 1; end > 0; end--) {
    swap(ids, sc, 0, end);
    siftDown(ids, sc, 0, end);
  }
}

// ── kernels ───────────────────────────────────────────────────────────────────────────────────

/** Reference {@link Kernels.scanTopK}. */
export function scanTopK(
  un: Float32Array,
  D: number,
  h: Float32Array,
  w: Float32Array,
  alpha: number,
  k: number,
  skip: Uint8Array,
  outIds: Uint32Array,
  outScores: Float32Array,
): number {
  typed('un', un, Float32Array);
  count('D', D);
  typed('h', h, Float32Array);
  typed('w', w, Float32Array);
  finite('alpha', alpha);
  count('k', k);
  typed('skip', skip, Uint8Array);
  typed('outIds', outIds, Uint32Array);
  typed('outScores', outScores, Float32Array);
  const V = w.length;
  atLeast('un', un.length, V * D);
  atLeast('h', h.length, D);
  atLeast('skip', skip.length, V);
  atLeast('outIds', outIds.length, k);
  atLeast('outScores', outScores.length, k);
  if (k === 0) return 0;

  // s ≤ wMax·exp(alpha·(c−1)) for every row, so once the heap is full a row whose c is below
  // cMin = 1 + (log(sMin/wMax) − margin)/alpha cannot beat the minimum sMin: skip its exp().
  let wMax = -Infinity;
  for (let v = 0; v < V; v++) if (w[v] > wMax) wMax = w[v];
  let cMin = -Infinity;
  let size = 0;
  for (let v = 0, row = 0; v < V; v++, row += D) {
    if (skip[v] !== 0) continue;
    let c = 0;
    for (let j = 0; j < D; j++) c += un[row + j] * h[j];
    if (c < cMin) continue;
    const s = Math.fround(w[v] * Math.exp(alpha * (c - 1)));
    const before = size === k ? outScores[0] : NaN;
    size = offer(outIds, outScores, size, k, v, s);
    if (size === k && outScores[0] !== before) {
      const sMin = outScores[0];
      cMin = alpha > 0 && wMax > 0 && sMin > 0 ? 1 + (Math.log(sMin / wMax) - PRUNE_MARGIN_LOG) / alpha : -Infinity;
    }
  }
  sortHeap(outIds, outScores, size);
  return size;
}

/** Reference {@link Kernels.matmulABt}; accumulates in double. */
export function matmulABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, out: Float32Array): void {
  typed('a', a, Float32Array);
  typed('b', b, Float32Array);
  count('m', m);
  count('n', n);
  count('k', k);
  typed('out', out, Float32Array);
  atLeast('a', a.length, m * k);
  atLeast('b', b.length, n * k);
  atLeast('out', out.length, m * n);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    for (let j = 0; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ai + p] * b[bj + p];
      out[i * n + j] = s;
    }
  }
}

/** Reference {@link Kernels.accumulateBm25}. */
export function accumulateBm25(
  acc: Float32Array,
  docs: Uint32Array,
  docLen: Uint32Array,
  weight: number,
  tf: number,
  prevTf: number,
  k1: number,
  b: number,
  avgdl: number,
): void {
  typed('acc', acc, Float32Array);
  typed('docs', docs, Uint32Array);
  typed('docLen', docLen, Uint32Array);
  finite('weight', weight);
  finite('tf', tf);
  finite('prevTf', prevTf);
  finite('k1', k1);
  finite('b', b);
  finite('avgdl', avgdl);
  if (tf < 0 || prevTf < 0) throw argError(RangeError, 'tf and prevTf must be ≥ 0');
  if (k1 > 0 && !(avgdl > 0)) throw argError(RangeError, 'avgdl must be > 0 when k1 > 0');
  if (k1 > 0 && (b < 0 || b > 1)) throw argError(RangeError, 'b must be in [0, 1] when k1 > 0');
  idsBelow('docs', docs, Math.min(acc.length, docLen.length));
  const n = docs.length;

  if (k1 <= 0) {
    // Strict mode: sat is the indicator t > 0, so the increment is the same for every doc.
    const inc = weight * ((tf > 0 ? 1 : 0) - (prevTf > 0 ? 1 : 0));
    if (inc !== 0) for (let i = 0; i < n; i++) acc[docs[i]] += inc;
    return;
  }
  // sat(t, L) = t·(k1+1) / (t + norm(L)), norm(L) = k1·(1−b) + (k1·b/avgdl)·L  (Robertson & Zaragoza 2009, eq. 3.15)
  const base = k1 * (1 - b);
  const perLen = (k1 * b) / avgdl;
  const scale = weight * (k1 + 1);
  for (let i = 0; i < n; i++) {
    const d = docs[i];
    const norm = base + perLen * docLen[d];
    const hi = tf > 0 ? tf / (tf + norm) : 0;
    const lo = prevTf > 0 ? prevTf / (prevTf + norm) : 0;
    acc[d] += scale * (hi - lo);
  }
}

/** Reference {@link Kernels.topM}. */
export function topM(acc: Float32Array, candidates: Uint32Array, m: number, outIds: Uint32Array, outScores: Float32Array): number {
  typed('acc', acc, Float32Array);
  typed('candidates', candidates, Uint32Array);
  count('m', m);
  typed('outIds', outIds, Uint32Array);
  typed('outScores', outScores, Float32Array);
  atLeast('outIds', outIds.length, m);
  atLeast('outScores', outScores.length, m);
  idsBelow('candidates', candidates, acc.length);
  if (m === 0) return 0;
  let size = 0;
  for (let i = 0; i < candidates.length; i++) {
    const d = candidates[i];
    size = offer(outIds, outScores, size, m, d, acc[d]);
  }
  sortHeap(outIds, outScores, size);
  return size;
}

/** Reference {@link Kernels.resetAt}. */
export function resetAt(acc: Float32Array, candidates: Uint32Array): void {
  typed('acc', acc, Float32Array);
  typed('candidates', candidates, Uint32Array);
  idsBelow('candidates', candidates, acc.length);
  for (let i = 0; i < candidates.length; i++) acc[candidates[i]] = 0;
}

/** The reference implementation as a {@link Kernels} object. */
export const referenceKernels: Kernels = Object.freeze({ scanTopK, matmulABt, accumulateBm25, topM, resetAt });
