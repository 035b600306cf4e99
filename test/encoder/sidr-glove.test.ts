/**
 * sidr-glove forward model: θ init and growth, exact/stop/vector-less matching rules, and the
 * cached top-k expansion trick and document weights against a brute-force float64 oracle.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALPHA,
  buildFrozen,
  cloneTheta,
  createTheta,
  docWeights,
  docWeightsBatch,
  encodeQuery,
  growTheta,
  prepareThetaFrom,
  rerankScore,
  scanTopK,
  thetaParamGroups,
  THETA_PARAM_NAMES,
  type SidrFrozen,
  type Theta,
} from '../../src/encoder/sidr-glove.ts';
import { createRng as createSeededRng } from '../../src/rcl/rng.ts';

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function rng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

interface Tiny {
  frozen: SidrFrozen;
  theta: Theta;
}

/** A random model: terms 0..nStop−1 are stop words, the last nNoVec have no vector. */
function tinyModel(seed: number, V = 12, D = 5, nStop = 2, nNoVec = 1): Tiny {
  const r = rng(seed);
  const G = new Float32Array(V * D);
  const hasVec = new Uint8Array(V);
  const isStop = new Uint8Array(V);
  for (let v = 0; v < V; v++) {
    isStop[v] = v < nStop ? 1 : 0;
    if (v >= V - nNoVec) continue;
    hasVec[v] = 1;
    for (let d = 0; d < D; d++) G[v * D + d] = r() * 2 - 1;
  }
  const frozen: SidrFrozen = { dim: D, size: V, G, hasVec, isStop };
  const theta = createTheta(frozen, Array.from({ length: V }, () => 0.5 + 2.5 * r()));
  for (let i = 0; i < theta.U.length; i++) if (hasVec[Math.floor(i / D)]) theta.U[i] += 0.4 * (r() - 0.5);
  for (let i = 0; i < theta.A.length; i++) theta.A[i] += 0.4 * (r() - 0.5);
  theta.logAlpha[0] = Math.log(2 + 6 * r());
  return { frozen, theta };
}

/** Brute-force E(x) over the whole vocabulary in float64, straight from the definition. */
function bruteE(theta: Theta, frozen: SidrFrozen, termIds: ArrayLike<number>): Float64Array {
  const { size: V, dim: D } = theta;
  const alpha = Math.exp(theta.logAlpha[0]);
  const present = new Set(Array.from(termIds));
  const hs = [...present]
    .filter((t) => !frozen.isStop[t] && frozen.hasVec[t])
    .map((t) => {
      const y = Array.from({ length: D }, (_, r) => {
        let s = 0;
        for (let c = 0; c < D; c++) s += theta.A[r * D + c] * frozen.G[t * D + c];
        return s;
      });
      const n = Math.hypot(...y);
      return y.map((x) => (n > 0 ? x / n : 0));
    });
  const E = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    if (present.has(v)) {
      E[v] = theta.w[v];
      continue;
    }
    const u = Array.from(theta.U.subarray(v * D, (v + 1) * D));
    const nu = Math.hypot(...u);
    if (frozen.isStop[v] || !frozen.hasVec[v] || nu === 0 || hs.length === 0) continue;
    const m = Math.max(...hs.map((h) => Math.exp(alpha * (h.reduce((s, x, d) => s + x * u[d], 0) / nu - 1))));
    E[v] = theta.w[v] * m;
  }
  return E;
}

/** Candidates' E sorted descending, for comparing expansions. */
function bruteExpansions(theta: Theta, frozen: SidrFrozen, q: number[]): [number, number][] {
  const E = bruteE(theta, frozen, q);
  const present = new Set(q);
  const out: [number, number][] = [];
  E.forEach((e, v) => {
    if (!present.has(v) && !frozen.isStop[v] && frozen.hasVec[v] && theta.w[v] > 0 && e > 0) out.push([v, e]);
  });
  return out.sort((a, b) => b[1] - a[1]);
}

describe('θ construction', () => {
  it('createTheta initializes U = g/‖g‖ (zero without a vector), A = I, w = idf, α = 10', () => {
    const { frozen } = tinyModel(1);
    const idf = Array.from({ length: frozen.size }, (_, v) => v + 0.5);
    const theta = createTheta(frozen, idf);
    const D = frozen.dim;
    expect(theta.version).toBe(0);
    for (let v = 0; v < frozen.size; v++) {
      const u = theta.U.subarray(v * D, (v + 1) * D);
      expect(Math.hypot(...u)).toBeCloseTo(frozen.hasVec[v] ? 1 : 0, 5);
      if (frozen.hasVec[v]) expect(u[0] * Math.hypot(...frozen.G.subarray(v * D, (v + 1) * D))).toBeCloseTo(frozen.G[v * D], 5);
      expect(theta.w[v]).toBeCloseTo(idf[v], 6);
    }
    for (let i = 0; i < D * D; i++) expect(theta.A[i]).toBe(i % (D + 1) === 0 ? 1 : 0);
    expect(Math.exp(theta.logAlpha[0])).toBeCloseTo(DEFAULT_ALPHA, 4);
  });

  it('growTheta keeps trained rows and initializes new ones; cloneTheta is deep', () => {
    const small = tinyModel(2, 8);
    const big = tinyModel(2, 12); // same seed: first rows of G differ, but only new rows matter
    const grown = growTheta(small.theta, big.frozen, Array.from({ length: 12 }, () => 7));
    expect(grown.size).toBe(12);
    expect(Array.from(grown.U.subarray(0, 8 * 5))).toEqual(Array.from(small.theta.U));
    expect(Array.from(grown.w.subarray(0, 8))).toEqual(Array.from(small.theta.w));
    expect(Array.from(grown.w.subarray(8))).toEqual([7, 7, 7, 7]);
    const fresh = createTheta(big.frozen, Array.from({ length: 12 }, () => 7));
    expect(Array.from(grown.U.subarray(8 * 5))).toEqual(Array.from(fresh.U.subarray(8 * 5)));
    const copy = cloneTheta(grown, 5);
    copy.U[0] += 1;
    copy.A[0] += 1;
    expect(copy.version).toBe(5);
    expect(grown.U[0]).not.toBe(copy.U[0]);
    expect(grown.A[0]).not.toBe(copy.A[0]);
  });

  it('exports the parameter groups in THETA_PARAM_NAMES order', () => {
    const { theta } = tinyModel(3);
    const groups = thetaParamGroups(theta);
    expect(groups.map((g) => g.name)).toEqual([...THETA_PARAM_NAMES]);
    for (const g of groups) expect(g.data.length % g.rowSize).toBe(0);
    expect(groups[0].data).toBe(theta.U);
  });

  it('buildFrozen looks up surface forms and flags stop words', () => {
    const vecs: Record<string, Float32Array> = { cell: Float32Array.of(1, 2), protein: Float32Array.of(3, 4) };
    const frozen = buildFrozen({ dim: 2, lookup: (w) => vecs[w] }, ['cell', 'the', 'protein', 'zzq'], [0, 1, 0, 0]);
    expect(Array.from(frozen.hasVec)).toEqual([1, 0, 1, 0]);
    expect(Array.from(frozen.isStop)).toEqual([0, 1, 0, 0]);
    expect(Array.from(frozen.G)).toEqual([1, 2, 0, 0, 3, 4, 0, 0]);
  });
});

describe('matching rules', () => {
  it('an exact match weighs w_v, in queries and documents', () => {
    const { theta, frozen } = tinyModel(4);
    const q = encodeQuery(theta, frozen, [3, 5, 5, 0], { kExp: 4 });
    for (const v of [0, 3, 5]) {
      const j = q.ids.indexOf(v);
      expect(j).toBeGreaterThanOrEqual(0);
      expect(q.weights[j]).toBe(theta.w[v]);
    }
    const d = docWeights(theta, frozen, Uint32Array.of(7, 3, 0), q.ids);
    expect(d[q.ids.indexOf(3)]).toBe(theta.w[3]);
    expect(d[q.ids.indexOf(0)]).toBe(theta.w[0]);
  });

  it('stop words neither expand nor are expansions', () => {
    const { theta, frozen } = tinyModel(5);
    expect(Array.from(encodeQuery(theta, frozen, [0, 1], { kExp: 10 }).ids)).toEqual([0, 1]);
    const q = encodeQuery(theta, frozen, [2, 6], { kExp: 12 });
    expect(q.ids.includes(0) || q.ids.includes(1)).toBe(false);
    // A stop word in the support gets 0 from a document that lacks it, however similar.
    const d = docWeights(theta, frozen, Uint32Array.of(2, 3, 4, 5, 6, 7, 8, 9, 10), Uint32Array.of(0, 1, 3));
    expect(d[0]).toBe(0);
    expect(d[1]).toBe(0);
    expect(d[2]).toBe(theta.w[3]);
  });

  it('vector-less terms match exactly only', () => {
    const { theta, frozen } = tinyModel(6);
    const nv = frozen.size - 1;
    expect(Array.from(encodeQuery(theta, frozen, [nv], { kExp: 10 }).ids)).toEqual([nv]);
    expect(encodeQuery(theta, frozen, [2, 3], { kExp: 12 }).ids.includes(nv)).toBe(false);
    const support = Uint32Array.of(2, nv);
    expect(Array.from(docWeights(theta, frozen, Uint32Array.of(3, 4), support))[1]).toBe(0);
    expect(docWeights(theta, frozen, Uint32Array.of(3, nv), support)[1]).toBe(theta.w[nv]);
  });

  it('rejects term ids outside θ with ENCODER_TERM_OUT_OF_RANGE', () => {
    const { theta, frozen } = tinyModel(7);
    expect(() => encodeQuery(theta, frozen, [99])).toThrow(expect.objectContaining({ code: 'ENCODER_TERM_OUT_OF_RANGE' }));
  });
});

describe('top-k expansion trick', () => {
  it('scanTopK equals sorting every candidate', () => {
    const { theta, frozen } = tinyModel(8, 40, 6, 3, 4);
    const D = 6;
    const Un = new Float32Array(theta.U.length);
    const skip = new Uint8Array(40);
    for (let v = 0; v < 40; v++) {
      const n = Math.hypot(...theta.U.subarray(v * D, (v + 1) * D));
      skip[v] = frozen.isStop[v] || n === 0 ? 1 : 0;
      for (let d = 0; d < D; d++) Un[v * D + d] = n ? theta.U[v * D + d] / n : 0;
    }
    const h = Un.slice(10 * D, 11 * D);
    const all = [...Array(40).keys()]
      .filter((v) => !skip[v])
      .map((v) => [v, theta.w[v] * Math.exp(3 * (Un.subarray(v * D, (v + 1) * D).reduce((s, x, d) => s + x * h[d], 0) - 1))])
      .sort((a, b) => b[1] - a[1]);
    for (const k of [0, 1, 5, 33, 100]) {
      const got = scanTopK(Un, h, theta.w, 3, k, skip);
      expect(Array.from(got.ids)).toEqual(all.slice(0, k).map((e) => e[0]));
      got.scores.forEach((s, i) => expect(s).toBeCloseTo(all[i][1], 5));
    }
  });

  it('cached per-term lists give the brute-force top-k (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1e9 }),
        fc.integer({ min: 10, max: 150 }),
        fc.array(fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 12 })), { minLength: 1, maxLength: 4 }),
        (seed, V, queries) => {
          const { theta, frozen } = tinyModel(seed, V, 6, 3, 5);
          // Same θ across queries: later queries hit lists cached by earlier ones.
          for (const [raw, kExp] of queries) {
            const q = raw.map((x) => x % V);
            const got = encodeQuery(theta, frozen, q, { kExp, expansionScale: 0.5 });
            const present = new Set(q);
            const gotExp = [...got.ids].map((v, j) => [v, got.weights[j] / 0.5] as const).filter(([v]) => !present.has(v));
            const want = bruteExpansions(theta, frozen, q).slice(0, kExp);
            expect(gotExp.length).toBe(want.length);
            const gotSorted = gotExp.map((e) => e[1]).sort((a, b) => b - a);
            want.forEach(([, e], i) => expect(gotSorted[i]).toBeCloseTo(e, 4));
            // Ids agree except across a near-tie at the k-th place.
            const wantIds = new Set(want.map((e) => e[0]));
            const kth = want.length ? want[want.length - 1][1] : 0;
            for (const [v, e] of gotExp) if (!wantIds.has(v)) expect(Math.abs(e - kth)).toBeLessThan(1e-4);
            for (const v of present) expect(got.ids.includes(v)).toBe(true);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('document weights', () => {
  it('docWeights equals brute-force E(d) on the support; batch equals single', () => {
    for (const seed of [11, 12, 13]) {
      const { theta, frozen } = tinyModel(seed, 30, 6, 3, 3);
      const r = rng(seed);
      const docs = Array.from({ length: 5 }, () => Uint32Array.from({ length: 8 }, () => Math.floor(r() * 30)));
      const support = encodeQuery(theta, frozen, [5, 9, 1], { kExp: 6 }).ids;
      const batch = docWeightsBatch(theta, frozen, docs, support);
      docs.forEach((doc, j) => {
        const single = docWeights(theta, frozen, doc, support);
        const E = bruteE(theta, frozen, doc);
        support.forEach((v, k) => {
          expect(single[k]).toBeCloseTo(E[v], 5);
          expect(batch[j][k]).toBe(single[k]);
        });
      });
    }
  });

  it('rerankScore is the inner product on the support', () => {
    const q = { ids: Uint32Array.of(1, 4, 9), weights: Float32Array.of(2, 0.5, 1) };
    expect(rerankScore(q, Float32Array.of(1, 4, 0.25))).toBeCloseTo(4.25, 6);
  });
});

describe('prepareThetaFrom', () => {
  it.each([false, true])('serves a stepped θ exactly as a fresh preparation would (precomputed H: %s)', (withH) => {
    const { frozen, theta: parent } = tinyModel(21, 40, 6, 3, 2);
    const ids = Uint32Array.from([3, 7, 9]);
    encodeQuery(parent, frozen, ids, { kExp: 5 }); // prepares the parent
    const child = cloneTheta(parent, 1);
    const r = rng(22);
    const changed = [4, 8, 9, 30];
    for (const v of changed) for (let d = 0; d < 6; d++) child.U[v * 6 + d] += r() - 0.5;
    for (let i = 0; i < child.A.length; i++) child.A[i] += 0.2 * (r() - 0.5);
    let H: Float32Array | undefined;
    if (withH) {
      H = new Float32Array(40 * 6);
      for (let v = 0; v < 40; v++) {
        let n = 0;
        for (let a = 0; a < 6; a++) {
          let y = 0;
          for (let c = 0; c < 6; c++) y += child.A[a * 6 + c] * frozen.G[v * 6 + c];
          H[v * 6 + a] = y;
          n += y * y;
        }
        for (let a = 0; a < 6; a++) H[v * 6 + a] = n > 0 ? H[v * 6 + a] / Math.sqrt(n) : 0;
      }
    }
    prepareThetaFrom(child, frozen, parent, changed, H);
    const fresh = cloneTheta(child, 1);
    const a = encodeQuery(child, frozen, ids, { kExp: 5 });
    const b = encodeQuery(fresh, frozen, ids, { kExp: 5 });
    expect(Array.from(a.ids)).toEqual(Array.from(b.ids));
    a.weights.forEach((w, i) => expect(w).toBeCloseTo(b.weights[i], 5));
    const doc = Uint32Array.from([5, 8, 12, 30, 3]);
    const da = docWeights(child, frozen, doc, a.ids);
    const db = docWeights(fresh, frozen, doc, b.ids);
    da.forEach((w, i) => expect(w).toBeCloseTo(db[i], 5));
  });
});
