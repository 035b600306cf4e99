/**
 * The trainable head: identity at init, relu clamping, the InfoNCE value on a hand-computed case,
 * and the hand-written gradients w.r.t. g and b checked against central finite differences.
 */
import { describe, expect, it } from 'vitest';
import {
  applyDenseHead,
  applySparseHead,
  createHead,
  denseHeadInfoNce,
  inBatchInfoNce,
  sparseHeadInfoNce,
  type Head,
  type HeadLoss,
  type InfoNceOptions,
  type Triple,
} from '../../src/encoder/heads.ts';
import type { SparseVector } from '../../src/types.ts';
import { createRng as createSeededRng } from '../../src/rcl/rng.ts';

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function rng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

const DIM = 16;
const EPS = 1e-3;

function randomSparse(next: () => number, shift: number): SparseVector {
  const ids: number[] = [];
  const weights: number[] = [];
  for (let v = 0; v < DIM; v++) {
    if (next() < 0.55) {
      ids.push(v + shift);
      weights.push(0.2 + 1.8 * next());
    }
  }
  return { ids: Uint32Array.from(ids), weights: Float32Array.from(weights) };
}

function randomDense(next: () => number): Float32Array {
  return Float32Array.from({ length: DIM }, () => 2 * next() - 1);
}

function randomHead(kind: 'sparse' | 'dense', next: () => number): Head {
  const h = createHead(kind, DIM);
  for (let k = 0; k < DIM; k++) {
    h.g[k] = 0.5 + next();
    h.b[k] = 0.6 * next() - 0.3;
    if (kind === 'sparse') {
      // Sparse weights lie in [0.2, 2] and g in [0.5, 1.5]: b ∈ [0, 0.3] keeps relu on, b = −4 turns it
      // off for every text, b = −0.9 switches it per text (the margin to the kink is checked).
      h.b[k] = k % 5 === 0 ? -4 : k % 5 === 1 ? -0.9 : Math.abs(h.b[k]);
    }
  }
  return h;
}

/** Central differences on each g_k and b_k; the actual float32 step is used as the denominator. */
function finiteDifferences(head: Head, loss: () => number): { g: number[]; b: number[] } {
  const out = { g: [] as number[], b: [] as number[] };
  for (const name of ['g', 'b'] as const) {
    const p = head[name];
    for (let k = 0; k < DIM; k++) {
      const orig = p[k];
      p[k] = orig + EPS;
      const up = p[k];
      const lUp = loss();
      p[k] = orig - EPS;
      const down = p[k];
      const lDown = loss();
      p[k] = orig;
      out[name].push((lUp - lDown) / (up - down));
    }
  }
  return out;
}

function expectGradientsMatch(analytic: HeadLoss, numeric: { g: number[]; b: number[] }): void {
  for (const name of ['g', 'b'] as const) {
    for (let k = 0; k < DIM; k++) {
      const a = analytic.grad[name][k];
      const n = numeric[name][k];
      // Float32 inputs bound the attainable agreement; 1e-4 absolute + 1e-3 relative is tight for O(1) losses.
      expect(Math.abs(a - n), `${name}[${k}]: analytic ${a} vs numeric ${n}`).toBeLessThanOrEqual(1e-4 + 1e-3 * Math.abs(n));
    }
  }
}

describe('head application', () => {
  it('is the identity at init (g = 1, b = 0)', () => {
    const v: SparseVector = { ids: Uint32Array.from([1, 4, 9]), weights: Float32Array.from([0.5, 2, 1.25]) };
    const out = applySparseHead(createHead('sparse', DIM), v);
    expect(Array.from(out.ids)).toEqual([1, 4, 9]);
    expect(Array.from(out.weights)).toEqual([0.5, 2, 1.25]);
    const e = Float32Array.from([0.1, -0.2, 0.3]);
    expect(Array.from(applyDenseHead(createHead('dense', 3), e))).toEqual(Array.from(e));
  });

  it('clamps sparse weights with relu and drops zeros; applies the vocab shift', () => {
    const head = createHead('sparse', DIM);
    head.g[4] = 2;
    head.b[9] = -5;
    const v: SparseVector = { ids: Uint32Array.from([11, 14, 19]), weights: Float32Array.from([0.5, 2, 1.25]) };
    const out = applySparseHead(head, v, 10);
    expect(Array.from(out.ids)).toEqual([11, 14]);
    expect(out.weights[1]).toBeCloseTo(4, 6);
    const dense = createHead('dense', 2);
    dense.g.set([2, -1]);
    dense.b.set([0.5, 0.25]);
    const d = applyDenseHead(dense, Float32Array.from([1, 1]));
    expect(d[0]).toBeCloseTo(2.5, 6);
    expect(d[1]).toBeCloseTo(-0.75, 6);
  });
});

describe('inBatchInfoNce', () => {
  it('equals log(1 + e^(s⁻ − s⁺)) for one triple', () => {
    const { loss, dScores } = inBatchInfoNce(Float64Array.from([2, 0.5]), 1, 2);
    expect(loss).toBeCloseTo(Math.log1p(Math.exp(0.5 - 2)), 12);
    const p = 1 / (1 + Math.exp(2 - 0.5));
    expect(dScores[0]).toBeCloseTo(-p, 12);
    expect(dScores[1]).toBeCloseTo(p, 12);
  });
  it('rejects a non-positive temperature', () => {
    expect(() => inBatchInfoNce(Float64Array.from([1, 0]), 1, 2, { temperature: 0 })).toThrow(RangeError);
  });
});

const OPTION_SETS: InfoNceOptions[] = [
  { temperature: 1, symmetric: false },
  { temperature: 0.5, symmetric: true },
  { temperature: 2, symmetric: true },
  { temperature: 1, symmetric: true, through: { passages: false } }, // L(E(q), T(d))
  { temperature: 0.5, symmetric: false, through: { queries: false } }, // L(T(q), E(d))
];

describe.each(OPTION_SETS)('gradients vs central finite differences %o', (opts) => {
  it('sparse head', () => {
    const next = rng(7);
    const shift = 3;
    const head = randomHead('sparse', next);
    const triples: Triple<SparseVector>[] = Array.from({ length: 3 }, () => ({
      query: randomSparse(next, shift),
      positive: randomSparse(next, shift),
      negative: randomSparse(next, shift),
    }));
    const o = { ...opts, vocabShift: shift };
    // Central differences are only valid away from relu's kink: |g·w + b| must exceed the step's effect.
    let onOff = { on: 0, off: 0 };
    for (const t of triples) {
      for (const v of [t.query, t.positive, t.negative]) {
        v.ids.forEach((id, k) => {
          const pre = head.g[id - shift] * v.weights[k] + head.b[id - shift];
          expect(Math.abs(pre)).toBeGreaterThan(10 * EPS * (1 + v.weights[k]));
          if ((id - shift) % 5 === 1) onOff = pre > 0 ? { ...onOff, on: onOff.on + 1 } : { ...onOff, off: onOff.off + 1 };
        });
      }
    }
    expect(onOff.on).toBeGreaterThan(0);
    expect(onOff.off).toBeGreaterThan(0);
    const analytic = sparseHeadInfoNce(head, triples, o);
    expect(Number.isFinite(analytic.loss)).toBe(true);
    expectGradientsMatch(analytic, finiteDifferences(head, () => sparseHeadInfoNce(head, triples, o).loss));
    // Dimension 0 has b = −4 < −g·w for every weight drawn: relu is off and there is no gradient.
    expect(analytic.grad.g[0]).toBe(0);
    expect(analytic.grad.b[0]).toBe(0);
  });

  it('dense head', () => {
    const next = rng(11);
    const head = randomHead('dense', next);
    const triples: Triple<Float32Array>[] = Array.from({ length: 3 }, () => ({
      query: randomDense(next),
      positive: randomDense(next),
      negative: randomDense(next),
    }));
    const analytic = denseHeadInfoNce(head, triples, opts);
    expectGradientsMatch(analytic, finiteDifferences(head, () => denseHeadInfoNce(head, triples, opts).loss));
  });
});

describe('a gradient step', () => {
  it('lowers the loss', () => {
    const next = rng(5);
    const head = randomHead('dense', next);
    const triples = Array.from({ length: 4 }, () => ({ query: randomDense(next), positive: randomDense(next), negative: randomDense(next) }));
    const before = denseHeadInfoNce(head, triples);
    for (let k = 0; k < DIM; k++) {
      head.g[k] -= 0.01 * before.grad.g[k];
      head.b[k] -= 0.01 * before.grad.b[k];
    }
    expect(denseHeadInfoNce(head, triples).loss).toBeLessThan(before.loss);
  });
});
