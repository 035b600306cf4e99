/**
 * The RCL loss of `sidr-glove` (DESIGN.md §1 step 3) and its hand-written backward pass.
 * Computes in float64 from θ's float32 values; the query support selection is reused from
 * `encodeQuery` and treated as fixed. Does not update θ: the optimizer consumes the gradient.
 */
import { kernels } from '../kernels/index.ts';
import { inBatchInfoNce } from './heads.ts';
import type { TermId } from '../types.ts';
import {
  DEFAULT_EXPANSION_SCALE,
  encodeQuery,
  importanceFactor,
  inverseNormsOf,
  type EncodeOptions,
  type SidrFrozen,
  type Theta,
  type ThetaParamName,
} from './sidr-glove.ts';

/** One training triple, each text as its term-id sequence. */
export interface RclTriple {
  query: ArrayLike<TermId>;
  positive: ArrayLike<TermId>;
  negative: ArrayLike<TermId>;
}

/** Options of {@link lossAndGrad}: the query sparsification of encodeQuery plus the temperature. */
export interface LossOptions extends EncodeOptions {
  /** A fixed τ; when set, θ.logTemperature is ignored and its gradient is 0. */
  temperature?: number;
  /** Fixed query supports (ascending ids, one per triple); default: encodeQuery's selection. */
  querySupports?: readonly Uint32Array[];
  /**
   * The served first stage's term-frequency saturation for T(d) in L(E(q), T(d)): T(d)_v =
   * tf·(k1+1)/(tf + k1·(1 − b + b·|d|/avgdl)) instead of 1[v ∈ d] (train what you serve).
   * Absent: binary T(d), as in SiDR.
   */
  saturation?: { k1: number; b: number; avgdl: number };
  /**
   * Adds the served ranking to the objective (DESIGN §3.1, train what you serve): with
   * sv(i,j) = s_et(i,j)/max_j' s_et(i,j') + γ·s_ee(i,j)/max_j' s_ee(i,j') (late search's final
   * score, the maxima taken over the batch's documents), L += weight·InfoNCE_{q→d}(sv/temperature).
   */
  served?: ServedObjective;
}

/** The served-score term of the objective: the serving mix γ, its InfoNCE temperature and weight. */
export interface ServedObjective {
  gamma: number;
  temperature: number;
  weight: number;
  /**
   * Term proximity when the served mix has it on: its weight π and prox(q_i, d_j) for the batch
   * (B × 2B, row-major, documents as in {@link lossAndGrad}). It adds π·prox/max_j' prox to sv; it
   * does not depend on θ, so it moves the softmax but has no gradient of its own.
   */
  proximity?: { weight: number; scores: ArrayLike<number> };
  /** The lexical term when the served mix has it on: its weight λ and lex(q_i, d_j), as proximity. */
  lexical?: { weight: number; scores: ArrayLike<number> };
}

/** A row-sparse gradient: `values` holds `rows.length × rowSize` entries, rows ascending. */
export interface SparseRows {
  rows: Uint32Array;
  rowSize: number;
  values: Float32Array;
}

/** ∂L/∂θ. U and w are row-sparse (only rows on the batch's supports move). */
export interface ThetaGrad {
  U: SparseRows;
  A: Float32Array;
  w: SparseRows;
  phi: Float32Array;
  logAlpha: number;
  logTemperature: number;
}

/** Unweighted InfoNCE values of the three score families. */
export interface LossParts {
  /** L(E(q), E(d)). */
  ee: number;
  /** L(E(q), T(d)). */
  et: number;
  /** L(T(q), E(d)). */
  te: number;
  /** The served-score family (present when {@link LossOptions.served} is set). */
  served?: number;
}

export interface LossResult {
  /** ee + ½·et + ½·te (+ weight·served when {@link LossOptions.served} is set). */
  loss: number;
  parts: LossParts;
  grad: ThetaGrad;
  /** The query supports used (pass them back in `querySupports` to freeze the selection). */
  querySupports: Uint32Array[];
}

/** One gradient group for an optimizer; `rows` null means dense over the whole parameter. */
export interface GradGroup {
  name: ThetaParamName;
  rows: Uint32Array | null;
  rowSize: number;
  values: Float32Array;
}

/** The gradient as groups aligned by name with `thetaParamGroups(theta)`. */
export function gradGroups(grad: ThetaGrad): GradGroup[] {
  return [
    { name: 'U', rows: grad.U.rows, rowSize: grad.U.rowSize, values: grad.U.values },
    { name: 'A', rows: null, rowSize: grad.A.length, values: grad.A },
    { name: 'w', rows: grad.w.rows, rowSize: 1, values: grad.w.values },
    { name: 'phi', rows: null, rowSize: grad.phi.length, values: grad.phi },
    { name: 'logAlpha', rows: null, rowSize: 1, values: Float32Array.of(grad.logAlpha) },
    { name: 'logTemperature', rows: null, rowSize: 1, values: Float32Array.of(grad.logTemperature) },
  ];
}

/** Route of one E entry: an exact match, nothing (E = 0), or the arg-max h slot (≥ 0). */
const EXACT = -1;
const NONE = -2;

/** Everything the backward pass needs from the forward pass of one batch. */
interface Forward {
  D: number;
  alpha: number;
  scale: number;
  B: number;
  /** Union of supports and present query terms, ascending; `Sn = S.length`. */
  S: Uint32Array;
  Sn: number;
  /** Unit U rows of S (zero where not soft-matchable), their norms, soft-matchable flags. */
  UnS: Float64Array;
  nrmS: Float64Array;
  simS: Uint8Array;
  /** Per S entry: the importance factor exp(φ·ĝ_v) and the served weight ω_v = w_v·factor. */
  factorS: Float64Array;
  omegaS: Float64Array;
  /** Per h slot: term, h = normalize(A·g) (slots × D), ‖A·g‖. */
  slotTerm: TermId[];
  H: Float64Array;
  ny: Float64Array;
  queries: QueryForward[];
  /** Docs j = 0..2B−1 (positives then negatives) × S: exact flag, E(d), route, cos, e. */
  exact: Uint8Array;
  /** T(d) on S: 1[v ∈ d], or its served tf saturation. */
  Td: Float64Array;
  Ed: Float64Array;
  route: Int32Array;
  cos: Float64Array;
  e: Float64Array;
}

interface QueryForward {
  /** S-index of each support entry, and of each distinct present term. */
  sup: Int32Array;
  pres: Int32Array;
  /** Aligned with `sup`: E(q)_v, route, cos, e. */
  Eq: Float64Array;
  route: Int32Array;
  cos: Float64Array;
  e: Float64Array;
}

/** Score matrices (B × 2B, row i = query, column j = doc) of the three families. */
export interface BatchScores {
  ee: Float64Array;
  et: Float64Array;
  te: Float64Array;
  querySupports: Uint32Array[];
}

/** The three score matrices of a batch (diagnostics and tests), as used by {@link lossAndGrad}. */
export function batchScores(theta: Theta, frozen: SidrFrozen, batch: readonly RclTriple[], opts: LossOptions = {}): BatchScores {
  const { f, supports } = forward(theta, frozen, batch, opts);
  return { ...scores(f), querySupports: supports };
}

/**
 * Loss and gradient of one RCL batch of B triples. Candidates for every query are the 2B
 * documents (positives then negatives: in-batch negatives). With z = s/τ, the symmetric
 * InfoNCE implemented is
 *   L(Q,P) = ½·[ (1/B)·Σ_i −log softmax_{j<2B}(z_{i,·})[i]  +  (1/B)·Σ_i −log softmax_{i'<B}(z_{·,i})[i] ]
 * (query→doc over all 2B docs, doc→query over the B queries for each positive), and
 *   L = L_ee + ½·L_et + ½·L_te  (+ weight·L_served, see {@link LossOptions.served}),
 * with s_ee(i,j) = Σ_{v∈supp E(q_i)} E(q_i)_v E(d_j)_v, s_et = Σ_{v∈supp} E(q_i)_v·1[v∈d_j],
 * s_te = Σ_{v∈q_i} E(d_j)_v. E(q) is encodeQuery's vector (expansions × expansionScale); the
 * support is fixed, its weights differentiable. Gradients through a max go to its arg-max.
 */
export function lossAndGrad(theta: Theta, frozen: SidrFrozen, batch: readonly RclTriple[], opts: LossOptions = {}): LossResult {
  if (batch.length === 0) throw Object.assign(new RangeError('RCL batch is empty'), { code: 'RCL_BATCH_EMPTY' });
  const { f, supports } = forward(theta, frozen, batch, opts);
  const s = scores(f);
  const tau = opts.temperature ?? Math.exp(theta.logTemperature[0]);
  // Symmetric in-batch InfoNCE over each B × 2B score family.
  const nce = (m: Float64Array) => inBatchInfoNce(m, f.B, 2 * f.B, { temperature: tau, symmetric: true });
  const ee = nce(s.ee);
  const et = nce(s.et);
  const te = nce(s.te);
  const weights = [1, 0.5, 0.5];
  [ee, et, te].forEach((part, k) => part.dScores.forEach((x, i, a) => (a[i] = x * weights[k])));
  // z = s/τ ⇒ ∂L/∂ln τ = −Σ ∂L/∂s · s.
  let gLogT = 0;
  if (opts.temperature === undefined) {
    for (const [part, m] of [[ee, s.ee], [et, s.et], [te, s.te]] as const) {
      for (let i = 0; i < m.length; i++) gLogT -= part.dScores[i] * m[i];
    }
  }
  const sv = opts.served ? servedFamily(s.et, s.ee, f.B, opts.served, et.dScores, ee.dScores) : undefined;
  const grad = backward(theta, frozen, f, ee.dScores, et.dScores, te.dScores);
  grad.logTemperature = gLogT;
  return {
    loss: ee.loss + 0.5 * et.loss + 0.5 * te.loss + (sv === undefined ? 0 : opts.served!.weight * sv),
    parts: { ee: ee.loss, et: et.loss, te: te.loss, ...(sv === undefined ? {} : { served: sv }) },
    grad,
    querySupports: supports,
  };
}

/**
 * The served-score family: sv(i,j) = et(i,j)/M_β(i) + γ·ee(i,j)/M_θ(i) (+ π·prox(i,j)/M_π(i) and
 * λ·lex(i,j)/M_λ(i) when proximity and the lexical term are on, constants) with M = the row maxima
 * (1 when not positive, as late search does), query → document InfoNCE at `temperature`. Adds
 * weight·∂L/∂sv into `dET` and `dEE` (a max passes its gradient to its arg-max) and returns L.
 */
function servedFamily(
  et: Float64Array,
  ee: Float64Array,
  B: number,
  opts: ServedObjective,
  dET: Float64Array,
  dEE: Float64Array,
): number {
  const N = 2 * B;
  const sv = new Float64Array(B * N);
  const rowMax = (m: Float64Array, i: number): { at: number; max: number } => {
    let at = -1;
    let max = 0;
    for (let j = 0; j < N; j++) if (m[i * N + j] > max) [at, max] = [j, m[i * N + j]];
    return at < 0 ? { at, max: 1 } : { at, max };
  };
  const maxima = Array.from({ length: B }, (_, i) => ({ beta: rowMax(et, i), theta: rowMax(ee, i) }));
  // Proximity and the lexical term: constants of θ, each normalised by its row maximum.
  const fixed = Object.entries({ proximity: opts.proximity, lexical: opts.lexical }).flatMap(([name, t]) => {
    if (!t || !(t.weight > 0)) return [];
    if (t.scores.length !== B * N) throw new RangeError(`served ${name} has ${t.scores.length} scores for a ${B} × ${N} batch`);
    return [t];
  });
  for (let i = 0; i < B; i++) {
    const { beta, theta } = maxima[i];
    for (let j = 0; j < N; j++) sv[i * N + j] = et[i * N + j] / beta.max + (opts.gamma * ee[i * N + j]) / theta.max;
    for (const t of fixed) {
      let max = 0;
      for (let j = 0; j < N; j++) max = Math.max(max, t.scores[i * N + j]);
      const scale = t.weight / (max || 1);
      for (let j = 0; j < N; j++) sv[i * N + j] += scale * t.scores[i * N + j];
    }
  }
  const r = inBatchInfoNce(sv, B, N, { temperature: opts.temperature });
  for (let i = 0; i < B; i++) {
    const { beta, theta } = maxima[i];
    let cb = 0;
    let ct = 0;
    for (let j = 0; j < N; j++) {
      const o = i * N + j;
      const d = opts.weight * r.dScores[o];
      dET[o] += d / beta.max;
      dEE[o] += (opts.gamma * d) / theta.max;
      cb += d * et[o];
      ct += d * ee[o];
    }
    if (beta.at >= 0) dET[i * N + beta.at] -= cb / beta.max ** 2;
    if (theta.at >= 0) dEE[i * N + theta.at] -= (opts.gamma * ct) / theta.max ** 2;
  }
  return r.loss;
}

function forward(
  theta: Theta,
  frozen: SidrFrozen,
  batch: readonly RclTriple[],
  opts: LossOptions,
): { f: Forward; supports: Uint32Array[] } {
  const supports = batch.map((t, i) => opts.querySupports?.[i] ?? encodeQuery(theta, frozen, t.query, opts).ids);
  const D = theta.dim;
  const B = batch.length;
  const docs = [...batch.map((t) => t.positive), ...batch.map((t) => t.negative)];
  for (const ids of [...supports, ...batch.map((t) => t.query), ...docs]) checkRange(theta, ids);
  const presents = batch.map((t) => [...new Set(Array.from(t.query))]);
  const S = Uint32Array.from(new Set([...supports.flatMap((s) => [...s]), ...presents.flat()])).sort();
  const Sn = S.length;
  const sIdx = new Map<TermId, number>();
  S.forEach((v, k) => sIdx.set(v, k));
  const UnS = new Float64Array(Sn * D);
  const nrmS = new Float64Array(Sn);
  const simS = new Uint8Array(Sn);
  const factorS = Float64Array.from(S, (v) => importanceFactor(theta, frozen, v));
  const omegaS = Float64Array.from(S, (v, k) => theta.w[v] * factorS[k]);
  for (let k = 0; k < Sn; k++) {
    const v = S[k];
    let n = 0;
    for (let d = 0; d < D; d++) n += theta.U[v * D + d] ** 2;
    nrmS[k] = Math.sqrt(n);
    if (frozen.isStop[v] || !frozen.hasVec[v] || n === 0) continue;
    simS[k] = 1;
    for (let d = 0; d < D; d++) UnS[k * D + d] = theta.U[v * D + d] / nrmS[k];
  }
  const cells = 2 * B * Sn;
  const f: Forward = {
    D,
    alpha: Math.exp(theta.logAlpha[0]),
    scale: opts.expansionScale ?? DEFAULT_EXPANSION_SCALE,
    B,
    S,
    Sn,
    UnS,
    nrmS,
    simS,
    factorS,
    omegaS,
    slotTerm: [],
    H: new Float64Array(0),
    ny: new Float64Array(0),
    queries: [],
    exact: new Uint8Array(cells),
    Td: new Float64Array(cells),
    Ed: new Float64Array(cells),
    route: new Int32Array(cells).fill(NONE),
    cos: new Float64Array(cells),
    e: new Float64Array(cells),
  };
  const slotOf = buildSlots(theta, frozen, f, [...presents, ...docs.map((d) => Array.from(d))]);
  f.queries = presents.map((p, i) => forwardQuery(theta, f, sIdx, slotOf, p, supports[i]));
  forwardDocs(theta, f, sIdx, slotOf, docs, opts.saturation);
  return { f, supports };
}

function checkRange(theta: Theta, ids: ArrayLike<TermId>): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] >= 0 && ids[i] < theta.size) continue;
    throw Object.assign(new RangeError(`term id ${ids[i]} outside θ's vocabulary of ${theta.size}`), {
      code: 'ENCODER_TERM_OUT_OF_RANGE',
    });
  }
}

/** Assigns an h slot to every distinct soft-matching term of the batch and computes h. */
function buildSlots(theta: Theta, frozen: SidrFrozen, f: Forward, texts: ArrayLike<TermId>[]): Map<TermId, number> {
  const D = f.D;
  const slotOf = new Map<TermId, number>();
  for (const text of texts) {
    for (let i = 0; i < text.length; i++) {
      const t = text[i];
      if (!slotOf.has(t) && !frozen.isStop[t] && frozen.hasVec[t]) slotOf.set(t, slotOf.size);
    }
  }
  f.slotTerm = [...slotOf.keys()];
  f.H = new Float64Array(slotOf.size * D);
  f.ny = new Float64Array(slotOf.size);
  f.slotTerm.forEach((t, slot) => {
    let n = 0;
    for (let r = 0; r < D; r++) {
      let y = 0;
      for (let c = 0; c < D; c++) y += theta.A[r * D + c] * frozen.G[t * D + c];
      f.H[slot * D + r] = y;
      n += y * y;
    }
    f.ny[slot] = Math.sqrt(n);
    const inv = n > 0 ? 1 / f.ny[slot] : 0;
    for (let r = 0; r < D; r++) f.H[slot * D + r] *= inv;
  });
  return slotOf;
}

function dot(a: Float64Array, ao: number, b: Float64Array, bo: number, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s += a[ao + d] * b[bo + d];
  return s;
}

/** E(q) on its support: exact for present terms, else the best soft match × expansionScale. */
function forwardQuery(
  theta: Theta,
  f: Forward,
  sIdx: Map<TermId, number>,
  slotOf: Map<TermId, number>,
  present: TermId[],
  support: Uint32Array,
): QueryForward {
  const n = support.length;
  const q: QueryForward = {
    sup: Int32Array.from(support, (v) => sIdx.get(v)!),
    pres: Int32Array.from(present, (v) => sIdx.get(v)!),
    Eq: new Float64Array(n),
    route: new Int32Array(n).fill(NONE),
    cos: new Float64Array(n),
    e: new Float64Array(n),
  };
  const presentSet = new Set(present);
  const slots = present.filter((t) => slotOf.has(t)).map((t) => slotOf.get(t)!);
  for (let k = 0; k < n; k++) {
    const v = support[k];
    const sk = q.sup[k];
    if (presentSet.has(v)) {
      q.route[k] = EXACT;
      q.Eq[k] = f.omegaS[sk];
      continue;
    }
    if (!f.simS[sk]) continue;
    let best = -Infinity;
    for (const slot of slots) {
      const c = dot(f.UnS, sk * f.D, f.H, slot * f.D, f.D);
      if (c > best) [best, q.route[k]] = [c, slot];
    }
    if (best === -Infinity) continue;
    q.cos[k] = best;
    q.e[k] = Math.exp(f.alpha * (best - 1));
    q.Eq[k] = f.scale * f.omegaS[sk] * q.e[k];
  }
  return q;
}

/** E(d) over S for every document; the cosine row of each distinct term is computed once. */
function forwardDocs(
  theta: Theta,
  f: Forward,
  sIdx: Map<TermId, number>,
  slotOf: Map<TermId, number>,
  docs: ArrayLike<TermId>[],
  sat: LossOptions['saturation'],
): void {
  const { D, Sn } = f;
  const docsOfSlot = new Map<number, number[]>();
  docs.forEach((doc, j) => {
    const tf = new Map<TermId, number>();
    for (let i = 0; i < doc.length; i++) tf.set(doc[i], (tf.get(doc[i]) ?? 0) + 1);
    const norm = sat && sat.k1 > 0 ? sat.k1 * (1 - sat.b + (sat.b * doc.length) / sat.avgdl) : 0;
    for (const [t, count] of tf) {
      const sk = sIdx.get(t);
      if (sk !== undefined) {
        f.exact[j * Sn + sk] = 1;
        f.Td[j * Sn + sk] = norm > 0 ? (count * (sat!.k1 + 1)) / (count + norm) : 1;
      }
      const slot = slotOf.get(t);
      if (slot === undefined) continue;
      const list = docsOfSlot.get(slot);
      if (list) list.push(j);
      else docsOfSlot.set(slot, [j]);
    }
  });
  // Arg-max routes from one float32 matrix product (kernels.matmulABt: every batch term against
  // every support term); the winning cosines are then recomputed in float64 so that the loss and
  // its gradient stay exact.
  const nSlots = f.slotTerm.length;
  const H32 = Float32Array.from(f.H);
  const U32 = Float32Array.from(f.UnS);
  const cos32 = new Float32Array(nSlots * Sn);
  if (nSlots > 0 && Sn > 0) kernels.matmulABt(H32, U32, nSlots, Sn, D, cos32);
  const best32 = new Float32Array(docs.length * Sn).fill(-Infinity);
  for (const [slot, js] of docsOfSlot) {
    const r = slot * Sn;
    for (const j of js) {
      for (let sk = 0, o = j * Sn; sk < Sn; sk++, o++) {
        if (f.simS[sk] && cos32[r + sk] > best32[o]) {
          best32[o] = cos32[r + sk];
          f.route[o] = slot;
        }
      }
    }
  }
  const best = new Float64Array(docs.length * Sn);
  for (let o = 0; o < docs.length * Sn; o++) {
    if (f.route[o] >= 0 && !f.exact[o]) best[o] = dot(f.UnS, (o % Sn) * D, f.H, f.route[o] * D, D);
  }
  for (let o = 0; o < docs.length * Sn; o++) {
    const wv = f.omegaS[o % Sn];
    if (f.exact[o]) {
      f.route[o] = EXACT;
      f.Ed[o] = wv;
    } else if (f.route[o] >= 0) {
      f.cos[o] = best[o];
      f.e[o] = Math.exp(f.alpha * (best[o] - 1));
      f.Ed[o] = wv * f.e[o];
    }
  }
}

function scores(f: Forward): { ee: Float64Array; et: Float64Array; te: Float64Array } {
  const { B, Sn } = f;
  const N = 2 * B;
  const ee = new Float64Array(B * N);
  const et = new Float64Array(B * N);
  const te = new Float64Array(B * N);
  f.queries.forEach((q, i) => {
    for (let j = 0; j < N; j++) {
      const o = j * Sn;
      let a = 0;
      let b = 0;
      for (let k = 0; k < q.sup.length; k++) {
        a += q.Eq[k] * f.Ed[o + q.sup[k]];
        b += q.Eq[k] * f.Td[o + q.sup[k]];
      }
      let c = 0;
      for (let p = 0; p < q.pres.length; p++) c += f.Ed[o + q.pres[p]];
      ee[i * N + j] = a;
      et[i * N + j] = b;
      te[i * N + j] = c;
    }
  });
  return { ee, et, te };
}

/** Gradient accumulators over S and the h slots. */
interface Acc {
  gW: Float64Array;
  gU: Float64Array;
  gH: Float64Array;
  gLogAlpha: number;
}

/**
 * Backward of one soft-matched entry E = m·ω_v·e, e = exp(α(c − 1)), c = Un_v·h (m = expansion
 * multiplier or 1), given g = ∂L/∂E: ∂w = g·m·e; ∂ln α = g·m·w·e·α(c − 1); ∂c = g·m·w·α·e;
 * ∂U_v = ∂c·(h − c·Un_v)/‖U_v‖; ∂h = ∂c·Un_v (∂w here is ∂L/∂ω, mapped to w and φ at the end).
 */
function softBack(theta: Theta, f: Forward, acc: Acc, g: number, m: number, sk: number, slot: number, c: number, e: number): void {
  const D = f.D;
  const wv = f.omegaS[sk];
  acc.gW[sk] += g * m * e;
  const t = g * m * wv * e;
  acc.gLogAlpha += t * f.alpha * (c - 1);
  const gc = t * f.alpha;
  const inv = 1 / f.nrmS[sk];
  for (let d = 0, u = sk * D, h = slot * D; d < D; d++) {
    acc.gU[u + d] += gc * (f.H[h + d] - c * f.UnS[u + d]) * inv;
    acc.gH[h + d] += gc * f.UnS[u + d];
  }
}

function backward(theta: Theta, frozen: SidrFrozen, f: Forward, dEE: Float64Array, dET: Float64Array, dTE: Float64Array): ThetaGrad {
  const { B, Sn, D } = f;
  const N = 2 * B;
  const acc: Acc = { gW: new Float64Array(Sn), gU: new Float64Array(Sn * D), gH: new Float64Array(f.slotTerm.length * D), gLogAlpha: 0 };
  const gEd = new Float64Array(N * Sn);
  f.queries.forEach((q, i) => {
    for (let k = 0; k < q.sup.length; k++) {
      let g = 0;
      for (let j = 0; j < N; j++) {
        const o = j * Sn + q.sup[k];
        g += dEE[i * N + j] * f.Ed[o] + dET[i * N + j] * f.Td[o];
        gEd[o] += dEE[i * N + j] * q.Eq[k];
      }
      if (q.route[k] === EXACT) acc.gW[q.sup[k]] += g;
      else if (q.route[k] >= 0) softBack(theta, f, acc, g, f.scale, q.sup[k], q.route[k], q.cos[k], q.e[k]);
    }
    for (let j = 0; j < N; j++) for (let p = 0; p < q.pres.length; p++) gEd[j * Sn + q.pres[p]] += dTE[i * N + j];
  });
  for (let o = 0; o < N * Sn; o++) {
    const g = gEd[o];
    if (g === 0) continue;
    if (f.route[o] === EXACT) acc.gW[o % Sn] += g;
    else if (f.route[o] >= 0) softBack(theta, f, acc, g, 1, o % Sn, f.route[o], f.cos[o], f.e[o]);
  }
  // acc.gW holds ∂L/∂ω: ω_v = w_v·exp(φ·ĝ_v) ⇒ ∂w_v = ∂ω_v·factor_v, ∂φ = Σ_v ∂ω_v·ω_v·ĝ_v.
  const gPhi = new Float64Array(D);
  const inv = inverseNormsOf(frozen);
  for (let k = 0; k < Sn; k++) {
    const g = acc.gW[k];
    const v = f.S[k];
    acc.gW[k] = g * f.factorS[k];
    if (g === 0 || inv[v] === 0) continue;
    const c = g * f.omegaS[k] * inv[v];
    for (let d = 0; d < D; d++) gPhi[d] += c * frozen.G[v * D + d];
  }
  return {
    U: sparseRows(f.S, acc.gU, D, f.simS),
    A: backA(frozen, f, acc.gH),
    w: sparseRows(f.S, acc.gW, 1, null),
    phi: Float32Array.from(gPhi),
    logAlpha: acc.gLogAlpha,
    logTemperature: 0,
  };
}

/** h = y/‖y‖, y = A·g ⇒ ∂y = (∂h − (∂h·h)·h)/‖y‖, ∂A = ∂y ⊗ g. */
function backA(frozen: SidrFrozen, f: Forward, gH: Float64Array): Float32Array {
  const D = f.D;
  const gA = new Float64Array(D * D);
  const gy = new Float64Array(D);
  f.slotTerm.forEach((t, slot) => {
    if (f.ny[slot] === 0) return;
    const h = slot * D;
    const proj = dot(gH, h, f.H, h, D);
    for (let r = 0; r < D; r++) gy[r] = (gH[h + r] - proj * f.H[h + r]) / f.ny[slot];
    for (let r = 0; r < D; r++) {
      if (gy[r] === 0) continue;
      for (let c = 0; c < D; c++) gA[r * D + c] += gy[r] * frozen.G[t * D + c];
    }
  });
  return Float32Array.from(gA);
}

/** Rows of S kept by `keep` (all when null) as a row-sparse float32 gradient. */
function sparseRows(S: Uint32Array, values: Float64Array, rowSize: number, keep: Uint8Array | null): SparseRows {
  const ks = [...S.keys()].filter((k) => keep === null || keep[k] === 1);
  const out = new Float32Array(ks.length * rowSize);
  ks.forEach((k, r) => out.set(values.subarray(k * rowSize, (k + 1) * rowSize), r * rowSize));
  return { rows: Uint32Array.from(ks, (k) => S[k]), rowSize, values: out };
}
