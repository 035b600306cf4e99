/**
 * The trainable head θ of the `onnx` retriever: a per-dimension gain g and bias b on the frozen
 * backbone's outputs, plus an in-batch InfoNCE loss with hand-written gradients w.r.t. g and b.
 * Plain TS over typed arrays; no I/O, no onnxruntime. The optimizer (AdamW) is `optimizer.ts`.
 */
import type { SparseVector } from '../types.ts';

/**
 * Per-dimension affine head. Sparse: `w'_v = relu(g_v·w_v + b_v)` for v in the backbone support
 * only (relu, not softplus, so that g = 1, b = 0 is exactly the identity on the non-negative
 * backbone weights and zeros stay zeros; a dimension pushed below 0 is dropped and gets no
 * gradient from that text). Dense: `e' = g ⊙ e + b`.
 */
export interface Head {
  readonly kind: 'sparse' | 'dense';
  /** Vocabulary size (sparse) or hidden size (dense). */
  readonly dim: number;
  /** Gains, init 1. */
  g: Float32Array;
  /** Biases, init 0. */
  b: Float32Array;
}

/** Loss options. */
export interface InfoNceOptions {
  /** Softmax temperature τ (scores are divided by it). Default 1; must be > 0. */
  temperature?: number;
  /** Add the passage→query direction and average the two (DESIGN §1 "symmetric"). Default false. */
  symmetric?: boolean;
  /** Sparse only: index term id = vocabulary id + vocabShift (as the encoder emits). Default 0. */
  vocabShift?: number;
  /**
   * Which side goes through the head (default both). A side left out is used as given and gets no
   * gradient: R3's semi-parametric terms L(E(q), T(d)) and L(T(q), E(d)) pass the binary bags T(·)
   * with `{ passages: false }` and `{ queries: false }` respectively.
   */
  through?: { queries?: boolean; passages?: boolean };
}

/** One training example: a query, its positive and its (hard) negative. */
export interface Triple<V> {
  query: V;
  positive: V;
  negative: V;
}

/** Loss value and its gradient w.r.t. the head parameters. */
export interface HeadLoss {
  loss: number;
  grad: { g: Float64Array; b: Float64Array };
}

/** A fresh identity head (g = 1, b = 0). */
export function createHead(kind: 'sparse' | 'dense', dim: number): Head {
  return { kind, dim, g: new Float32Array(dim).fill(1), b: new Float32Array(dim) };
}

// ---------------------------------------------------------------- forward

/** One text through the sparse head, kept for the backward pass. */
interface SparseAct {
  /** Term ids, ascending (the merge key). */
  ids: Uint32Array;
  /** Parameter index per support entry (term id − shift); −1 when outside the head (identity). */
  idx: Int32Array;
  /** Backbone weight w_v. */
  w: Float32Array;
  /** relu(g·w + b) (identity for entries outside the head). */
  out: Float64Array;
}

function sparseForward(head: Head, v: SparseVector, shift: number, through = true): SparseAct {
  const n = v.ids.length;
  const idx = new Int32Array(n);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const p = v.ids[k] - shift;
    const inside = through && p >= 0 && p < head.dim;
    idx[k] = inside ? p : -1;
    const pre = inside ? head.g[p] * v.weights[k] + head.b[p] : v.weights[k];
    out[k] = pre > 0 ? pre : 0;
  }
  return { ids: v.ids, idx, w: v.weights, out };
}

/** Apply the sparse head for serving: same ids (minus those clamped to 0), new weights. */
export function applySparseHead(head: Head, v: SparseVector, vocabShift = 0): SparseVector {
  const act = sparseForward(head, v, vocabShift);
  const keep: number[] = [];
  for (let k = 0; k < act.out.length; k++) if (act.out[k] > 0) keep.push(k);
  return { ids: Uint32Array.from(keep, (k) => v.ids[k]), weights: Float32Array.from(keep, (k) => act.out[k]) };
}

/** Apply the dense head: e' = g ⊙ e + b. */
export function applyDenseHead(head: Head, e: Float32Array): Float32Array {
  const out = new Float32Array(e.length);
  for (let i = 0; i < e.length; i++) out[i] = head.g[i] * e[i] + head.b[i];
  return out;
}

// ---------------------------------------------------------------- loss

/**
 * In-batch InfoNCE on a B×C score matrix whose positive for row i is column i (C = 2B: the B
 * positives then the B negatives). L_qd = (1/B) Σ_i [logsumexp_j(s_ij/τ) − s_ii/τ], so
 * ∂L/∂s_ij = (softmax_ij − [i=j]) / (τB). With `symmetric`, L_pq does the same over the B×B
 * block column-wise (each positive against all queries) and the loss is (L_qd + L_pq)/2.
 */
export function inBatchInfoNce(scores: Float64Array, B: number, C: number, opts: InfoNceOptions = {}): { loss: number; dScores: Float64Array } {
  const tau = opts.temperature ?? 1;
  if (!(tau > 0)) throw new RangeError(`temperature must be > 0, got ${tau}`);
  const sym = opts.symmetric ?? false;
  const scale = sym ? 0.5 : 1;
  const d = new Float64Array(B * C);
  let loss = 0;
  // Direction query → passages: softmax over each row.
  for (let i = 0; i < B; i++) {
    const { lse, probs } = softmaxLine(scores, i * C, 1, C, tau);
    loss += lse - scores[i * C + i] / tau;
    for (let j = 0; j < C; j++) d[i * C + j] += (scale * (probs[j] - (i === j ? 1 : 0))) / (tau * B);
  }
  // Direction positive → queries: softmax over column j of the B×B block.
  if (sym) {
    let lossPq = 0;
    for (let j = 0; j < B; j++) {
      const { lse, probs } = softmaxLine(scores, j, C, B, tau);
      lossPq += lse - scores[j * C + j] / tau;
      for (let i = 0; i < B; i++) d[i * C + j] += (scale * (probs[i] - (i === j ? 1 : 0))) / (tau * B);
    }
    return { loss: (loss / B + lossPq / B) / 2, dScores: d };
  }
  return { loss: loss / B, dScores: d };
}

/** log-sum-exp and softmax of n strided entries of s/τ, max-shifted for stability. */
function softmaxLine(s: Float64Array, start: number, stride: number, n: number, tau: number): { lse: number; probs: Float64Array } {
  let max = -Infinity;
  for (let k = 0; k < n; k++) max = Math.max(max, s[start + k * stride] / tau);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) sum += probs[k] = Math.exp(s[start + k * stride] / tau - max);
  for (let k = 0; k < n; k++) probs[k] /= sum;
  return { lse: max + Math.log(sum), probs };
}

function checkBatch<V>(triples: readonly Triple<V>[]): void {
  if (triples.length === 0) throw new RangeError('InfoNCE needs at least one triple');
}

/**
 * Sparse head loss: E'(x) = relu(g⊙w + b) on supp(x); s = E'(q)·E'(d) over the shared support.
 * Backward: ∂L/∂E'(q_i) = Σ_j ∂L/∂s_ij E'(d_j) (and symmetrically for d_j), then through relu:
 * ∂/∂g_v += ∂L/∂E'_v · [pre_v > 0] · w_v, ∂/∂b_v += ∂L/∂E'_v · [pre_v > 0].
 */
export function sparseHeadInfoNce(head: Head, triples: readonly Triple<SparseVector>[], opts: InfoNceOptions = {}): HeadLoss {
  checkBatch(triples);
  const shift = opts.vocabShift ?? 0;
  const B = triples.length;
  const C = 2 * B;
  const tq = opts.through?.queries ?? true;
  const tp = opts.through?.passages ?? true;
  const qs = triples.map((t) => sparseForward(head, t.query, shift, tq));
  const ds = [...triples.map((t) => sparseForward(head, t.positive, shift, tp)), ...triples.map((t) => sparseForward(head, t.negative, shift, tp))];
  const scores = new Float64Array(B * C);
  for (let i = 0; i < B; i++) for (let j = 0; j < C; j++) scores[i * C + j] = sparseDot(qs[i], ds[j], 0, null, null);
  const { loss, dScores } = inBatchInfoNce(scores, B, C, opts);
  const gq = qs.map((a) => new Float64Array(a.out.length));
  const gd = ds.map((a) => new Float64Array(a.out.length));
  for (let i = 0; i < B; i++) for (let j = 0; j < C; j++) sparseDot(qs[i], ds[j], dScores[i * C + j], gq[i], gd[j]);
  const grad = { g: new Float64Array(head.dim), b: new Float64Array(head.dim) };
  qs.forEach((a, k) => sparseBackward(a, gq[k], grad));
  ds.forEach((a, k) => sparseBackward(a, gd[k], grad));
  return { loss, grad };
}

/**
 * Merge-walk the two ascending supports. Returns Σ a_v·b_v; when `ga`/`gb` are given, also adds
 * coef·b_v to ga and coef·a_v to gb at each shared v (the score's gradient routed to each side).
 */
function sparseDot(a: SparseAct, b: SparseAct, coef: number, ga: Float64Array | null, gb: Float64Array | null): number {
  let i = 0;
  let j = 0;
  let sum = 0;
  while (i < a.ids.length && j < b.ids.length) {
    const x = a.ids[i];
    const y = b.ids[j];
    if (x < y) i++;
    else if (x > y) j++;
    else {
      sum += a.out[i] * b.out[j];
      if (ga && gb) {
        ga[i] += coef * b.out[j];
        gb[j] += coef * a.out[i];
      }
      i++;
      j++;
    }
  }
  return sum;
}

function sparseBackward(a: SparseAct, gOut: Float64Array, grad: { g: Float64Array; b: Float64Array }): void {
  for (let k = 0; k < a.idx.length; k++) {
    const p = a.idx[k];
    if (p < 0 || a.out[k] <= 0) continue; // outside the head, or relu inactive
    grad.g[p] += gOut[k] * a.w[k];
    grad.b[p] += gOut[k];
  }
}

/**
 * Dense head loss: e' = g⊙e + b, s = e'(q)·e'(d). Backward: ∂L/∂e'(x) as in the sparse case, then
 * ∂/∂g += ∂L/∂e' ⊙ e and ∂/∂b += ∂L/∂e'.
 */
export function denseHeadInfoNce(head: Head, triples: readonly Triple<Float32Array>[], opts: InfoNceOptions = {}): HeadLoss {
  checkBatch(triples);
  const B = triples.length;
  const C = 2 * B;
  const D = head.dim;
  const xq = triples.map((t) => t.query);
  const xd = [...triples.map((t) => t.positive), ...triples.map((t) => t.negative)];
  const tq = opts.through?.queries ?? true;
  const tp = opts.through?.passages ?? true;
  const fwd = (through: boolean) => (e: Float32Array): Float64Array => {
    if (e.length !== D) throw new RangeError(`dense vector has ${e.length} dims, head has ${D}`);
    const o = new Float64Array(D);
    for (let k = 0; k < D; k++) o[k] = through ? head.g[k] * e[k] + head.b[k] : e[k];
    return o;
  };
  const q = xq.map(fwd(tq));
  const d = xd.map(fwd(tp));
  const scores = new Float64Array(B * C);
  for (let i = 0; i < B; i++) for (let j = 0; j < C; j++) scores[i * C + j] = dot(q[i], d[j]);
  const { loss, dScores } = inBatchInfoNce(scores, B, C, opts);
  const grad = { g: new Float64Array(D), b: new Float64Array(D) };
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < C; j++) {
      const c = dScores[i * C + j];
      // ∂s_ij/∂e'(q_i) = e'(d_j) and ∂s_ij/∂e'(d_j) = e'(q_i); chain through e' = g⊙e + b.
      for (let k = 0; k < D; k++) {
        const gq = tq ? c * d[j][k] : 0;
        const gd = tp ? c * q[i][k] : 0;
        grad.g[k] += gq * xq[i][k] + gd * xd[j][k];
        grad.b[k] += gq + gd;
      }
    }
  }
  return { loss, grad };
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
}
