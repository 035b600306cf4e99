/**
 * The `sidr-glove` forward model (DESIGN.md §3.1): θ = {U, A, w, φ, log α, log τ} over a frozen GloVe
 * backbone, query encoding with top-k expansions, and document weights on a query's support.
 * Owns θ's layout and the per-θ caches (normalized U rows, h vectors, per-term expansion lists).
 * Gradients live in `sidr-glove-grad.ts`; the vocabulary scan `scanTopK` is the seam a native
 * kernel will replace.
 */
import type { SparseVector, TermId } from '../types.ts';
import { kernels } from '../kernels/index.ts';
import type { Glove } from './glove.ts';

/** Backbone dimension (GloVe sg-100d). */
export const SIDR_GLOVE_DIM = 100;
/** Expansions per query (k_exp). Default 32; 0 disables expansion; raising it widens recall. */
export const DEFAULT_K_EXP = 32;
/** Multiplier on expansion weights in E(q). Default 0.5 (DESIGN.md §3.1 prototype), range 0–1. */
export const DEFAULT_EXPANSION_SCALE = 0.5;
/** Initial sharpness α of elu1p(α(c − 1)). Default 10; higher makes soft matches rarer. */
export const DEFAULT_ALPHA = 10;
/**
 * Initial InfoNCE temperature τ (scores are divided by τ). Default 10: raw scores are sums of
 * idf² (tens to hundreds), and τ = 1 saturated the softmax in the torch prototype (§3.1).
 */
export const DEFAULT_TEMPERATURE = 10;
/** Extra entries kept in each cached per-term expansion list beyond k_exp (see encodeQuery). */
const LIST_MARGIN = 16;

/**
 * Frozen per-term inputs, aligned with the collection's TermIds (0..size−1).
 * Built once per vocabulary; grows with it (rebuild with {@link buildFrozen}).
 */
export interface SidrFrozen {
  readonly dim: number;
  readonly size: number;
  /** GloVe vector of each term's surface form, row-major size × dim; zeros when none. */
  readonly G: Float32Array;
  /** 1 when the term has a GloVe vector. */
  readonly hasVec: Uint8Array;
  /** 1 for stop words (matched exactly only: no similarity channel, never an expansion). */
  readonly isStop: Uint8Array;
}

/**
 * Trainable parameters. Immutable once published: every array is owned by this version, and
 * caches are keyed by object identity, so an optimizer must {@link cloneTheta} before writing.
 */
export interface Theta {
  /** Version number of this θ (lineage is kept by the retriever store). */
  readonly version: number;
  /** |V|: rows of U and w. */
  readonly size: number;
  readonly dim: number;
  /** Output term embeddings, size × dim, init g/‖g‖ (zero rows for terms without a vector). */
  readonly U: Float32Array;
  /** Input transform, dim × dim row-major ((A·g)_r = Σ_c A[r·dim + c]·g_c), init identity. */
  readonly A: Float32Array;
  /** Term importance, init idf. Expected ≥ 0: terms with w ≤ 0 are never expansions. */
  readonly w: Float32Array;
  /**
   * Importance transform over the backbone, dim entries, init 0: the weight a term serves with is
   * ω_v = w_v·exp(φ·ĝ_v), ĝ = g/‖g‖ (factor 1 without a vector). Unlike w's rows, what φ learns
   * about which kinds of words matter carries over to terms that training never saw.
   */
  readonly phi: Float32Array;
  /** [ln α], init ln 10. */
  readonly logAlpha: Float32Array;
  /** [ln τ], the InfoNCE temperature, init ln {@link DEFAULT_TEMPERATURE}. */
  readonly logTemperature: Float32Array;
}

/** Names of θ's parameter groups, in a fixed order. */
export const THETA_PARAM_NAMES = ['U', 'A', 'w', 'phi', 'logAlpha', 'logTemperature'] as const;
export type ThetaParamName = (typeof THETA_PARAM_NAMES)[number];

/** One parameter group for an optimizer: flat data split into rows of `rowSize`. */
export interface ParamGroup {
  readonly name: ThetaParamName;
  readonly data: Float32Array;
  readonly rowSize: number;
}

/** θ's parameter groups in {@link THETA_PARAM_NAMES} order (views, not copies). */
export function thetaParamGroups(theta: Theta): ParamGroup[] {
  return [
    { name: 'U', data: theta.U, rowSize: theta.dim },
    { name: 'A', data: theta.A, rowSize: theta.dim * theta.dim },
    { name: 'w', data: theta.w, rowSize: 1 },
    { name: 'phi', data: theta.phi, rowSize: theta.dim },
    { name: 'logAlpha', data: theta.logAlpha, rowSize: 1 },
    { name: 'logTemperature', data: theta.logTemperature, rowSize: 1 },
  ];
}

/**
 * Builds the frozen inputs from a GloVe table: `surfaces[v]` is the surface form looked up for
 * term v (its most frequent one), `stops[v]` its stop-word flag.
 */
export function buildFrozen(
  glove: Pick<Glove, 'dim' | 'lookup'>,
  surfaces: readonly string[],
  stops: ArrayLike<boolean | number>,
): SidrFrozen {
  const dim = glove.dim;
  const size = surfaces.length;
  const G = new Float32Array(size * dim);
  const hasVec = new Uint8Array(size);
  const isStop = new Uint8Array(size);
  for (let v = 0; v < size; v++) {
    isStop[v] = stops[v] ? 1 : 0;
    const g = glove.lookup(surfaces[v]);
    if (g) {
      G.set(g, v * dim);
      hasVec[v] = 1;
    }
  }
  return { dim, size, G, hasVec, isStop };
}

/** Initializes rows [from, to) of U and w from the frozen inputs and idf. */
function initRows(U: Float32Array, w: Float32Array, frozen: SidrFrozen, idf: ArrayLike<number>, from: number): void {
  const D = frozen.dim;
  for (let v = from; v < w.length; v++) {
    w[v] = idf[v];
    if (!frozen.hasVec[v]) continue;
    const o = v * D;
    let n = 0;
    for (let d = 0; d < D; d++) n += frozen.G[o + d] * frozen.G[o + d];
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let d = 0; d < D; d++) U[o + d] = frozen.G[o + d] * inv;
  }
}

/** Fresh θ (version 0): U = g/‖g‖, A = I, w = idf, α = 10, τ = {@link DEFAULT_TEMPERATURE}. */
export function createTheta(frozen: SidrFrozen, idf: ArrayLike<number>): Theta {
  const { dim: D, size: V } = frozen;
  const U = new Float32Array(V * D);
  const w = new Float32Array(V);
  initRows(U, w, frozen, idf, 0);
  const A = new Float32Array(D * D);
  for (let d = 0; d < D; d++) A[d * D + d] = 1;
  const logAlpha = Float32Array.of(Math.log(DEFAULT_ALPHA));
  const logTemperature = Float32Array.of(Math.log(DEFAULT_TEMPERATURE));
  return { version: 0, size: V, dim: D, U, A, w, phi: new Float32Array(D), logAlpha, logTemperature };
}

/**
 * A copy of θ extended to `frozen.size` terms; rows for the new terms get their init
 * (U = g/‖g‖, w = newIdf[v]). `newIdf` is indexed by TermId over the whole vocabulary.
 * Keeps the version: trained rows are unchanged.
 */
export function growTheta(theta: Theta, frozen: SidrFrozen, newIdf: ArrayLike<number>): Theta {
  const D = theta.dim;
  const V = Math.max(frozen.size, theta.size);
  const U = new Float32Array(V * D);
  U.set(theta.U);
  const w = new Float32Array(V);
  w.set(theta.w);
  initRows(U, w, frozen, newIdf, theta.size);
  return {
    version: theta.version,
    size: V,
    dim: D,
    U,
    A: theta.A.slice(),
    w,
    phi: theta.phi.slice(),
    logAlpha: theta.logAlpha.slice(),
    logTemperature: theta.logTemperature.slice(),
  };
}

/** Deep copy of θ, optionally with a new version number. */
export function cloneTheta(theta: Theta, version: number = theta.version): Theta {
  return {
    version,
    size: theta.size,
    dim: theta.dim,
    U: theta.U.slice(),
    A: theta.A.slice(),
    w: theta.w.slice(),
    phi: theta.phi.slice(),
    logAlpha: theta.logAlpha.slice(),
    logTemperature: theta.logTemperature.slice(),
  };
}

const inverseNorms = new WeakMap<SidrFrozen, Float32Array>();

/** 1/‖G_v‖ for every term (0 without a vector), computed once per frozen inputs: ĝ_v = G_v·inv[v]. */
export function inverseNormsOf(frozen: SidrFrozen): Float32Array {
  let inv = inverseNorms.get(frozen);
  if (inv) return inv;
  const D = frozen.dim;
  inv = new Float32Array(frozen.size);
  for (let v = 0, o = 0; v < frozen.size; v++, o += D) {
    if (!frozen.hasVec[v]) continue;
    let n = 0;
    for (let d = 0; d < D; d++) n += frozen.G[o + d] * frozen.G[o + d];
    inv[v] = n > 0 ? 1 / Math.sqrt(n) : 0;
  }
  inverseNorms.set(frozen, inv);
  return inv;
}

/** exp(φ·ĝ_v), ĝ_v = G_v/‖G_v‖: the importance factor of term v (1 without a vector). */
export function importanceFactor(theta: Theta, frozen: SidrFrozen, v: TermId): number {
  const inv = inverseNormsOf(frozen)[v];
  if (inv === 0) return 1;
  let p = 0;
  for (let d = 0, o = v * theta.dim; d < theta.dim; d++) p += theta.phi[d] * frozen.G[o + d];
  return Math.exp(p * inv);
}

/**
 * ω = w ⊙ exp(φ·ĝ) for every term: the weights θ serves with. θ.w itself while φ = 0 (no copy);
 * otherwise one G·φ product in `kernels/`.
 */
export function servedWeights(theta: Theta, frozen: SidrFrozen): Float32Array {
  if (theta.phi.every((x) => x === 0)) return theta.w;
  const V = theta.size;
  const out = new Float32Array(V);
  kernels.matmulABt(frozen.G, theta.phi, V, 1, theta.dim, out);
  const inv = inverseNormsOf(frozen);
  for (let v = 0; v < V; v++) out[v] = theta.w[v] * (inv[v] === 0 ? 1 : Math.exp(out[v] * inv[v]));
  return out;
}

/** A per-term expansion list: candidates by descending score s = w_v·exp(α(cos − 1)). */
export interface TopK {
  ids: Uint32Array;
  scores: Float32Array;
}

/**
 * Scores every term v for one unit vector h, s_v = w_v·exp(α(Un_v·h − 1)), and keeps the k best
 * in descending order. Terms with `skipMask[v] ≠ 0` or w_v ≤ 0 are left out. `Un` holds unit
 * rows (size × h.length). This is the vocabulary-wide H·Uᵀ product: it runs in `kernels/`
 * (native when built, else the TS reference).
 */
export function scanTopK(
  Un: Float32Array,
  h: Float32Array,
  w: Float32Array,
  alpha: number,
  k: number,
  skipMask: Uint8Array,
): TopK {
  const ids = new Uint32Array(k);
  const scores = new Float32Array(k);
  const n = kernels.scanTopK(Un, h.length, h, w, alpha, k, skipMask, ids, scores);
  let kept = n;
  // The kernel ranks every unskipped row; w_v ≤ 0 rows are never candidates (see Theta.w).
  while (kept > 0 && !(scores[kept - 1] > 0)) kept--;
  return { ids: ids.subarray(0, kept), scores: scores.subarray(0, kept) };
}

/** Cached derived state of one θ object (never shared across θ objects). */
interface ThetaCache {
  readonly frozen: SidrFrozen;
  readonly alpha: number;
  /** Unit rows of U (zero rows stay zero). */
  readonly Un: Float32Array;
  /** ω = w ⊙ exp(φ·ĝ), the served term weights ({@link servedWeights}). */
  readonly omega: Float32Array;
  /** 1 when term t may soft-match as a position: not a stop word and has a vector. */
  readonly channel: Uint8Array;
  /** 0 when v may be soft-matched as a target (in the channel, non-zero U row): scanTopK's mask. */
  readonly noSim: Uint8Array;
  /** h(t) = normalize(A·g(t)), filled lazily; `hDone[t]` marks filled rows. */
  readonly H: Float32Array;
  readonly hDone: Uint8Array;
  /** Per-term expansion lists and the k each was requested with. */
  readonly lists: Map<TermId, { list: TopK; k: number }>;
  /** Expansion lists of out-of-vocabulary query words, by key. */
  readonly outside: Map<string, { list: TopK; k: number }>;
  /** Scratch for de-duplicating term ids without allocation (stamp technique). */
  readonly seen: Uint32Array;
  stamp: number;
}

const caches = new WeakMap<Theta, ThetaCache>();

/**
 * Prepares θ from its parent's prepared state when only some rows of U moved (a training step),
 * optionally with H = normalize(G·Aᵀ) already computed for θ's A:
 * copies the parent's unit rows and renormalises the changed ones, O(changed·D) instead of
 * O(|V|·D), so publishing a step never stalls the first search on it. Falls back to a full
 * preparation when the parent has no state for the same frozen inputs and size.
 */
export function prepareThetaFrom(
  theta: Theta,
  frozen: SidrFrozen,
  parent: Theta,
  changedRows: ArrayLike<number>,
  H?: Float32Array,
  omega?: Float32Array,
): void {
  const prev = caches.get(parent);
  if (!prev || prev.frozen !== frozen || parent.size !== theta.size || caches.has(theta)) {
    cacheOf(theta, frozen);
    return;
  }
  // H (normalize(A·g) for every term), when given, was computed for θ's A off this thread.
  const fullH = H !== undefined && H.length === theta.size * theta.dim;
  const D = theta.dim;
  const Un = prev.Un.slice();
  const noSim = prev.noSim.slice();
  for (let i = 0; i < changedRows.length; i++) {
    const v = changedRows[i];
    const o = v * D;
    let n = 0;
    for (let d = 0; d < D; d++) n += theta.U[o + d] * theta.U[o + d];
    const ok = prev.channel[v] === 1 && n > 0;
    noSim[v] = ok ? 0 : 1;
    const inv = ok ? 1 / Math.sqrt(n) : 0;
    for (let d = 0; d < D; d++) Un[o + d] = theta.U[o + d] * inv;
  }
  caches.set(theta, newCache(theta, frozen, Un, prev.channel, noSim, fullH ? H : undefined, omega?.length === theta.size ? omega : undefined));
}

/** A fresh per-θ cache over given unit rows; `H` (all rows of normalize(A·g)) when precomputed. */
function newCache(
  theta: Theta,
  frozen: SidrFrozen,
  Un: Float32Array,
  channel: Uint8Array,
  noSim: Uint8Array,
  H?: Float32Array,
  omega: Float32Array = servedWeights(theta, frozen),
): ThetaCache {
  const V = theta.size;
  return {
    frozen,
    alpha: Math.exp(theta.logAlpha[0]),
    Un,
    omega,
    channel,
    noSim,
    H: H ?? new Float32Array(V * theta.dim),
    hDone: H ? new Uint8Array(V).fill(1) : new Uint8Array(V),
    lists: new Map(),
    outside: new Map(),
    seen: new Uint32Array(V),
    stamp: 0,
  };
}

function cacheOf(theta: Theta, frozen: SidrFrozen): ThetaCache {
  let cache = caches.get(theta);
  if (cache && cache.frozen === frozen) return cache;
  if (frozen.size < theta.size || frozen.dim !== theta.dim) {
    throw Object.assign(new RangeError(`θ has ${theta.size}×${theta.dim}, frozen inputs ${frozen.size}×${frozen.dim}`), {
      code: 'ENCODER_THETA_MISMATCH',
    });
  }
  const { size: V, dim: D } = theta;
  const Un = new Float32Array(V * D);
  const channel = new Uint8Array(V);
  const noSim = new Uint8Array(V);
  for (let v = 0, o = 0; v < V; v++, o += D) {
    let n = 0;
    for (let d = 0; d < D; d++) n += theta.U[o + d] * theta.U[o + d];
    channel[v] = !frozen.isStop[v] && frozen.hasVec[v] ? 1 : 0;
    const ok = channel[v] === 1 && n > 0;
    noSim[v] = ok ? 0 : 1;
    if (!ok) continue;
    const inv = 1 / Math.sqrt(n);
    for (let d = 0; d < D; d++) Un[o + d] = theta.U[o + d] * inv;
  }
  cache = newCache(theta, frozen, Un, channel, noSim);
  caches.set(theta, cache);
  return cache;
}

/** h(t) = normalize(A·g(t)) as a view into the cache (zeros when A·g = 0). */
function hOf(theta: Theta, cache: ThetaCache, t: TermId): Float32Array {
  const D = theta.dim;
  const h = cache.H.subarray(t * D, (t + 1) * D);
  if (cache.hDone[t]) return h;
  const G = cache.frozen.G;
  const A = theta.A;
  let n = 0;
  for (let r = 0; r < D; r++) {
    let y = 0;
    for (let c = 0, a = r * D, g = t * D; c < D; c++) y += A[a + c] * G[g + c];
    h[r] = y;
    n += y * y;
  }
  const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
  for (let r = 0; r < D; r++) h[r] *= inv;
  cache.hDone[t] = 1;
  return h;
}

function nextStamp(cache: ThetaCache): number {
  if (cache.stamp === 0xffffffff) {
    cache.seen.fill(0);
    cache.stamp = 0;
  }
  return ++cache.stamp;
}

function checkIds(theta: Theta, ids: ArrayLike<TermId>): void {
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < theta.size)) {
      throw Object.assign(new RangeError(`term id ${ids[i]} outside θ's vocabulary of ${theta.size}`), {
        code: 'ENCODER_TERM_OUT_OF_RANGE',
      });
    }
  }
}

/** Distinct ids of `termIds`, in first-occurrence order (uses the cache's stamp array). */
function distinct(cache: ThetaCache, termIds: ArrayLike<TermId>): TermId[] {
  const stamp = nextStamp(cache);
  const out: TermId[] = [];
  for (let i = 0; i < termIds.length; i++) {
    const t = termIds[i];
    if (cache.seen[t] === stamp) continue;
    cache.seen[t] = stamp;
    out.push(t);
  }
  return out;
}

/** Options of {@link encodeQuery}. */
export interface EncodeOptions {
  /** Expansions kept (default {@link DEFAULT_K_EXP}). */
  kExp?: number;
  /** Multiplier on expansion weights (default {@link DEFAULT_EXPANSION_SCALE}). */
  expansionScale?: number;
}

/**
 * E(q) sparsified: the present terms (weight ω_v, an exact match) ∪ the top `kExp` expansions
 * (not present, in the similarity channel, ω_v > 0) by E(q)_v, times `expansionScale`.
 *
 * Top-k without a vocabulary scan per query: E_v = max_i s_{i,v} with s_{i,v} = ω_v·exp(α(c_{i,v}−1)).
 * If v is in the global top-k at its arg-max position i, every u with s_{i,u} > s_{i,v} is either
 * another global top-k member (< k of them) or a present term (≤ P of them), so v is in the
 * top-(k+P) list of position i. Lists depend only on (θ, term), so they are cached per θ and a
 * query scans only terms whose cached list is missing or shorter than k + P.
 */
export function encodeQuery(
  theta: Theta,
  frozen: SidrFrozen,
  termIds: ArrayLike<TermId>,
  opts: EncodeOptions = {},
  outside: readonly QueryVector[] = [],
): SparseVector {
  const kExp = opts.kExp ?? DEFAULT_K_EXP;
  const scale = opts.expansionScale ?? DEFAULT_EXPANSION_SCALE;
  checkIds(theta, termIds);
  const cache = cacheOf(theta, frozen);
  const present = distinct(cache, termIds);
  const stamp = cache.stamp; // seen[t] === stamp ⇔ t present
  const simTerms = present.filter((t) => cache.channel[t] === 1);
  // P counts present terms that are themselves candidates (they may outrank v in a list).
  const P = present.filter((t) => cache.noSim[t] === 0 && cache.omega[t] > 0).length;
  const need = kExp + P;
  const best = new Map<TermId, number>();
  const lists: TopK[] = [];
  for (let p = 0; kExp > 0 && p < simTerms.length; p++) lists.push(listFor(theta, cache, simTerms[p], need));
  for (let p = 0; kExp > 0 && p < outside.length; p++) lists.push(listForVector(theta, cache, outside[p], need));
  for (const list of lists) {
    for (let j = 0; j < list.ids.length; j++) {
      const v = list.ids[j];
      if (cache.seen[v] === stamp) continue;
      const s = list.scores[j];
      if (!(s <= (best.get(v) ?? -1))) best.set(v, s);
    }
  }
  const expansions = [...best].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, kExp);
  const entries: [TermId, number][] = present.map((t) => [t, cache.omega[t]]);
  for (const [v, s] of expansions) entries.push([v, scale * s]);
  entries.sort((a, b) => a[0] - b[0]);
  return {
    ids: Uint32Array.from(entries, (e) => e[0]),
    weights: Float32Array.from(entries, (e) => e[1]),
  };
}

/**
 * A query word outside the collection's vocabulary but with a backbone vector: it has no exact
 * match and no weight of its own, yet it can expand to vocabulary terms near it (the vocabulary
 * mismatch that semantic expansion exists for). `key` names it in the per-θ list cache.
 */
export interface QueryVector {
  key: string;
  g: Float32Array;
}

/** Expansion list of an out-of-vocabulary query word (h = normalize(A·g)), cached per θ by key. */
function listForVector(theta: Theta, cache: ThetaCache, q: QueryVector, need: number): TopK {
  const hit = cache.outside.get(q.key);
  if (hit && (hit.k >= need || hit.list.ids.length < hit.k)) return hit.list;
  const D = theta.dim;
  const h = new Float32Array(D);
  let n = 0;
  for (let r = 0; r < D; r++) {
    let y = 0;
    for (let c = 0; c < D; c++) y += theta.A[r * D + c] * q.g[c];
    h[r] = y;
    n += y * y;
  }
  if (n > 0) for (let r = 0; r < D; r++) h[r] /= Math.sqrt(n);
  const k = Math.max(need, (hit?.k ?? 0) * 2, need + LIST_MARGIN);
  const list = scanTopK(cache.Un, h, cache.omega, cache.alpha, k, cache.noSim);
  if (cache.outside.size < OUTSIDE_CACHE_MAX) cache.outside.set(q.key, { list, k });
  return list;
}

/** Bound on cached lists of out-of-vocabulary query words per θ. */
const OUTSIDE_CACHE_MAX = 100_000;

/** The cached expansion list of term t, rescanned when shorter than `need` and incomplete. */
function listFor(theta: Theta, cache: ThetaCache, t: TermId, need: number): TopK {
  const hit = cache.lists.get(t);
  // A list shorter than the k it was asked for already holds every candidate.
  if (hit && (hit.k >= need || hit.list.ids.length < hit.k)) return hit.list;
  const k = Math.max(need, (hit?.k ?? 0) * 2, need + LIST_MARGIN);
  const list = scanTopK(cache.Un, hOf(theta, cache, t), cache.omega, cache.alpha, k, cache.noSim);
  cache.lists.set(t, { list, k });
  return list;
}

/**
 * E(d)_v for each v in `support` (a query's ids): ω_v on an exact match, else
 * ω_v·exp(α(max_t cos(U_v, h(t)) − 1)) over the document's distinct similarity-channel terms t
 * when v is itself in that channel, else 0.
 */
export function docWeights(
  theta: Theta,
  frozen: SidrFrozen,
  docTermIds: ArrayLike<TermId>,
  support: Uint32Array,
): Float32Array {
  return docWeightsBatch(theta, frozen, [docTermIds], support)[0];
}

/**
 * {@link docWeights} for several documents sharing one support: the cosine between each distinct
 * term of the batch and each support term is computed once.
 */
export function docWeightsBatch(
  theta: Theta,
  frozen: SidrFrozen,
  docs: readonly ArrayLike<TermId>[],
  support: Uint32Array,
): Float32Array[] {
  checkIds(theta, support);
  for (const d of docs) checkIds(theta, d);
  const cache = cacheOf(theta, frozen);
  const D = theta.dim;
  const S = support.length;
  const slotOf = new Map<TermId, number>();
  for (let j = 0; j < S; j++) slotOf.set(support[j], j);
  // Pack the unit rows of the similarity-channel support terms.
  const simCols: number[] = [];
  for (let j = 0; j < S; j++) if (cache.noSim[support[j]] === 0) simCols.push(j);
  const Us = new Float32Array(simCols.length * D);
  simCols.forEach((j, c) => Us.set(cache.Un.subarray(support[j] * D, (support[j] + 1) * D), c * D));
  // Cosines between every distinct similarity-channel term of the batch and every support
  // column, in one matrix product (kernels.matmulABt): rows = batch terms, columns = support.
  const uniq = docs.map((doc) => distinct(cache, doc));
  const rowOf = new Map<TermId, number>();
  const terms: TermId[] = [];
  for (const doc of uniq) {
    for (const t of doc) {
      if (cache.channel[t] && !rowOf.has(t)) {
        rowOf.set(t, terms.length);
        terms.push(t);
      }
    }
  }
  const nCols = simCols.length;
  const cos = new Float32Array(terms.length * nCols);
  if (nCols > 0 && terms.length > 0) {
    const Hb = new Float32Array(terms.length * D);
    terms.forEach((t, r) => Hb.set(hOf(theta, cache, t), r * D));
    kernels.matmulABt(Hb, Us, terms.length, nCols, D, cos);
  }
  return uniq.map((doc) => {
    const exact = new Uint8Array(S);
    const maxCos = new Float64Array(nCols).fill(-Infinity);
    for (const t of doc) {
      const j = slotOf.get(t);
      if (j !== undefined) exact[j] = 1;
      const r = rowOf.get(t);
      if (r === undefined || nCols === 0) continue;
      for (let c = 0, o = r * nCols; c < nCols; c++) if (cos[o + c] > maxCos[c]) maxCos[c] = cos[o + c];
    }
    const out = new Float32Array(S);
    for (let c = 0; c < nCols; c++) {
      if (maxCos[c] > -Infinity) out[simCols[c]] = cache.omega[support[simCols[c]]] * Math.exp(cache.alpha * (maxCos[c] - 1));
    }
    for (let j = 0; j < S; j++) if (exact[j]) out[j] = cache.omega[support[j]];
    return out;
  });
}

/** f_θ(q, d) = Σ_v E(q)_v·E(d)_v, with E(d) given on q's support (aligned with `q.ids`). */
export function rerankScore(q: SparseVector, dWeightsOnSupport: Float32Array): number {
  let s = 0;
  for (let j = 0; j < q.weights.length; j++) s += q.weights[j] * dWeightsOnSupport[j];
  return s;
}
