/**
 * sidr-glove RCL loss: hand-written gradients of every parameter group against central finite
 * differences on a tiny random vocabulary, and agreement of the batch scores with the serving path.
 */
import { describe, expect, it } from 'vitest';
import {
  batchScores,
  gradGroups,
  lossAndGrad,
  type LossOptions,
  type RclTriple,
} from '../../src/encoder/sidr-glove-grad.ts';
import {
  cloneTheta,
  createTheta,
  docWeights,
  encodeQuery,
  rerankScore,
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

/** V = 12, D = 5: terms 0, 1 are stop words, term 11 has no vector; B = 3 random triples. */
function tinyProblem(seed: number): { theta: Theta; frozen: SidrFrozen; batch: RclTriple[] } {
  const r = rng(seed);
  const V = 12;
  const D = 5;
  const G = new Float32Array(V * D);
  const hasVec = new Uint8Array(V);
  const isStop = Uint8Array.from({ length: V }, (_, v) => (v < 2 ? 1 : 0));
  for (let v = 0; v < V - 1; v++) {
    hasVec[v] = 1;
    for (let d = 0; d < D; d++) G[v * D + d] = r() * 2 - 1;
  }
  const frozen: SidrFrozen = { dim: D, size: V, G, hasVec, isStop };
  const theta = createTheta(frozen, Array.from({ length: V }, () => 0.3 + r()));
  for (let i = 0; i < theta.U.length; i++) if (hasVec[Math.floor(i / D)]) theta.U[i] += 0.5 * (r() - 0.5);
  for (let i = 0; i < theta.A.length; i++) theta.A[i] += 0.5 * (r() - 0.5);
  theta.logAlpha[0] = Math.log(1.5 + 2 * r());
  theta.logTemperature[0] = Math.log(0.5 + r());
  for (let d = 0; d < D; d++) theta.phi[d] = 0.8 * (r() - 0.5);
  const text = (n: number) => Array.from({ length: n }, () => Math.floor(r() * V));
  const batch = Array.from({ length: 3 }, () => ({ query: text(3), positive: text(6), negative: text(6) }));
  return { theta, frozen, batch };
}

/** The analytic gradient of group `name` as a dense array aligned with θ's data. */
function denseGrad(theta: Theta, grad: ReturnType<typeof lossAndGrad>['grad'], name: string): Float64Array {
  const group = gradGroups(grad).find((g) => g.name === name)!;
  const param = thetaParamGroups(theta).find((g) => g.name === name)!;
  const out = new Float64Array(param.data.length);
  if (group.rows === null) out.set(group.values);
  else group.rows.forEach((row, r) => out.set(group.values.subarray(r * group.rowSize, (r + 1) * group.rowSize), row * group.rowSize));
  return out;
}

/**
 * Central differences on every entry of every group, in float64 from float32 θ (the step
 * actually taken is read back), with the query supports frozen at the unperturbed θ.
 */
function checkGradients(seed: number, opts: LossOptions): number {
  const { theta, frozen, batch } = tinyProblem(seed);
  const base = lossAndGrad(theta, frozen, batch, opts);
  const fixed = { ...opts, querySupports: base.querySupports };
  let checked = 0;
  for (const name of THETA_PARAM_NAMES) {
    const an = denseGrad(theta, base.grad, name);
    const n = thetaParamGroups(theta).find((g) => g.name === name)!.data.length;
    for (let i = 0; i < n; i++) {
      const at = (delta: number) => {
        const t = cloneTheta(theta);
        const data = thetaParamGroups(t).find((g) => g.name === name)!.data;
        data[i] += delta;
        return { loss: lossAndGrad(t, frozen, batch, fixed).loss, x: data[i] };
      };
      // The loss has kinks where an arg-max switches; a smaller step retries across one.
      const fds = [1e-4, 1e-5].map((eps) => {
        const plus = at(eps);
        const minus = at(-eps);
        return (plus.loss - minus.loss) / (plus.x - minus.x);
      });
      if (!fds.some((fd) => Math.abs(fd - an[i]) <= 1e-6 + 1e-4 * Math.abs(fd))) {
        throw new Error(`seed ${seed} ${name}[${i}]: analytic ${an[i]} vs finite differences ${fds}`);
      }
      checked++;
    }
  }
  return checked;
}

describe('lossAndGrad', () => {
  it.each([1, 2, 3, 4, 5])('matches finite differences for every parameter (seed %i, all expansions)', (seed) => {
    expect(checkGradients(seed, { kExp: 12, expansionScale: 0.5 })).toBe(60 + 25 + 12 + 5 + 2);
  });

  it.each([6, 7, 8])('matches finite differences with a frozen top-3 support (seed %i)', (seed) => {
    expect(checkGradients(seed, { kExp: 3, expansionScale: 0.7 })).toBeGreaterThan(0);
  });

  it.each([10, 11])('matches finite differences with the served tf saturation in L(E(q), T(d)) (seed %i)', (seed) => {
    const opts = { kExp: 12, expansionScale: 0.5, saturation: { k1: 1.2, b: 0.75, avgdl: 6 } };
    expect(checkGradients(seed, opts)).toBe(60 + 25 + 12 + 5 + 2);
    const { theta, frozen, batch } = tinyProblem(seed);
    // Saturation changes only the semi-parametric part over T(d).
    const binary = lossAndGrad(theta, frozen, batch, { kExp: 12, expansionScale: 0.5 });
    const saturated = lossAndGrad(theta, frozen, batch, opts);
    expect(saturated.parts.ee).toBeCloseTo(binary.parts.ee, 12);
    expect(saturated.parts.te).toBeCloseTo(binary.parts.te, 12);
    expect(saturated.parts.et).not.toBeCloseTo(binary.parts.et, 6);
  });

  it.each([12, 13, 14])('matches finite differences with the served score in the objective (seed %i)', (seed) => {
    const base = { kExp: 12, expansionScale: 0.5, saturation: { k1: 1.2, b: 0.75, avgdl: 6 } };
    const opts = { ...base, served: { gamma: 0.4, temperature: 0.2, weight: 1.5 } };
    expect(checkGradients(seed, opts)).toBe(60 + 25 + 12 + 5 + 2);
    const { theta, frozen, batch } = tinyProblem(seed);
    const without = lossAndGrad(theta, frozen, batch, base);
    const served = lossAndGrad(theta, frozen, batch, opts);
    expect(without.parts.served).toBeUndefined();
    expect(served.parts.served).toBeGreaterThan(0);
    expect(served.parts.ee).toBe(without.parts.ee);
    expect(served.loss).toBeCloseTo(without.loss + 1.5 * served.parts.served!, 12);
  });

  it.each([15, 16])('matches finite differences with proximity in the served score (seed %i)', (seed) => {
    const base = { kExp: 12, expansionScale: 0.5, served: { gamma: 0.4, temperature: 0.2, weight: 1.5 } };
    // B = 3 queries × 6 documents; row 1 is all zero (no query term in any document).
    const scores = Float64Array.from({ length: 18 }, (_, k) => (Math.floor(k / 6) === 1 ? 0 : ((k * 7) % 5) + 1));
    const opts = { ...base, served: { ...base.served, proximity: { weight: 0.8, scores } } };
    expect(checkGradients(seed, opts)).toBe(60 + 25 + 12 + 5 + 2);
    const { theta, frozen, batch } = tinyProblem(seed);
    const without = lossAndGrad(theta, frozen, batch, base);
    const withProx = lossAndGrad(theta, frozen, batch, opts);
    expect(withProx.parts.ee).toBe(without.parts.ee);
    expect(withProx.parts.served).not.toBeCloseTo(without.parts.served!, 6);
    // π = 0 is proximity off.
    const off = lossAndGrad(theta, frozen, batch, { ...base, served: { ...base.served, proximity: { weight: 0, scores } } });
    expect(off.parts.served).toBe(without.parts.served);
    expect(() => lossAndGrad(theta, frozen, batch, { ...base, served: { ...base.served, proximity: { weight: 1, scores: scores.subarray(1) } } })).toThrow(RangeError);
  });

  it.each([17, 18])('matches finite differences with proximity and the lexical term in the served score (seed %i)', (seed) => {
    const base = { kExp: 12, expansionScale: 0.5, served: { gamma: 0.4, temperature: 0.2, weight: 1.5 } };
    const prox = Float64Array.from({ length: 18 }, (_, k) => ((k * 7) % 5) + 1);
    // Row 2 is all zero (no query term in any document).
    const lex = Float64Array.from({ length: 18 }, (_, k) => (Math.floor(k / 6) === 2 ? 0 : ((k * 3) % 7) * 0.9));
    const opts = { ...base, served: { ...base.served, proximity: { weight: 0.5, scores: prox }, lexical: { weight: 0.7, scores: lex } } };
    expect(checkGradients(seed, opts)).toBe(60 + 25 + 12 + 5 + 2);
    const { theta, frozen, batch } = tinyProblem(seed);
    const proxOnly = lossAndGrad(theta, frozen, batch, { ...base, served: { ...base.served, proximity: { weight: 0.5, scores: prox } } });
    const both = lossAndGrad(theta, frozen, batch, opts);
    expect(both.parts.ee).toBe(proxOnly.parts.ee);
    expect(both.parts.served).not.toBeCloseTo(proxOnly.parts.served!, 6);
    // λ = 0 is the lexical term off.
    const off = lossAndGrad(theta, frozen, batch, { ...opts, served: { ...opts.served, lexical: { weight: 0, scores: lex } } });
    expect(off.parts.served).toBe(proxOnly.parts.served);
    expect(() => lossAndGrad(theta, frozen, batch, { ...base, served: { ...base.served, lexical: { weight: 1, scores: lex.subarray(2) } } })).toThrow(/served lexical/);
  });

  it('matches finite differences at a fixed temperature (its gradient is 0)', () => {
    const { theta, frozen, batch } = tinyProblem(9);
    const res = lossAndGrad(theta, frozen, batch, { kExp: 12, temperature: 2 });
    expect(res.grad.logTemperature).toBe(0);
    expect(checkGradients(9, { kExp: 12, temperature: 2 })).toBe(104);
  });

  it('combines the parts as ee + ½·et + ½·te, and only moves rows on the supports', () => {
    const { theta, frozen, batch } = tinyProblem(10);
    const res = lossAndGrad(theta, frozen, batch, { kExp: 2 });
    expect(res.loss).toBeCloseTo(res.parts.ee + 0.5 * res.parts.et + 0.5 * res.parts.te, 12);
    const onSupport = new Set([...res.querySupports.flatMap((s) => [...s])]);
    for (const v of res.grad.U.rows) expect(onSupport.has(v)).toBe(true);
    for (const v of res.grad.w.rows) expect(onSupport.has(v)).toBe(true);
    expect(res.grad.U.rows.includes(0) || res.grad.U.rows.includes(1) || res.grad.U.rows.includes(11)).toBe(false);
    expect(gradGroups(res.grad).map((g) => g.name)).toEqual([...THETA_PARAM_NAMES]);
  });

  it('scores the batch exactly as the serving path does (encodeQuery · docWeights)', () => {
    const { theta, frozen, batch } = tinyProblem(11);
    const opts = { kExp: 4, expansionScale: 0.5 };
    const s = batchScores(theta, frozen, batch, opts);
    const docs = [...batch.map((t) => t.positive), ...batch.map((t) => t.negative)];
    batch.forEach((t, i) => {
      const q = encodeQuery(theta, frozen, t.query, opts);
      expect(Array.from(s.querySupports[i])).toEqual(Array.from(q.ids));
      docs.forEach((d, j) => {
        const ed = docWeights(theta, frozen, d, q.ids);
        expect(s.ee[i * 6 + j]).toBeCloseTo(rerankScore(q, ed), 5);
        const inDoc = new Set(Array.from(d));
        const et = [...q.ids].reduce((acc, v, k) => acc + (inDoc.has(v) ? q.weights[k] : 0), 0);
        expect(s.et[i * 6 + j]).toBeCloseTo(et, 5);
        const te = [...new Set(Array.from(t.query))].reduce((acc, v) => acc + ed[q.ids.indexOf(v)], 0);
        expect(s.te[i * 6 + j]).toBeCloseTo(te, 5);
      });
    });
  });
});
