/**
 * Property tests for src/kernels: the reference against brute-force oracles (sort everything), the
 * native addon against the reference on random inputs, argument errors, and the kill switch.
 * Inputs come from a seeded PRNG driven by fast-check, so a failure prints a replayable seed.
 */

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  chooseKernels,
  isNativeEnabled,
  KERNEL_ARG_ERROR,
  nativeKernels,
  NATIVE_DISABLED_ENV,
  referenceKernels,
  type Kernels,
} from '../../src/kernels/index.ts';
import { createRng as createSeededRng } from '../../src/rcl/rng.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const REL_TOL = 1e-5;
/** Two float32 ulps, relative (2·2⁻²³). */
const F32_ULP_2 = 2 ** -22;
const NATIVE_MISSING = 'native addon not built (run `node native/build.mjs`): native-vs-reference properties skipped';
if (!nativeKernels) console.warn(`[kernels.test] ${NATIVE_MISSING}`);

// ── helpers ────────────────────────────────────────────────────────────────────────────────────

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function rng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

type ShapeOf<A> = A extends fc.Arbitrary<infer T> ? T : never;

function close(x: number, y: number, rel = REL_TOL, abs = 1e-30): boolean {
  return Math.abs(x - y) <= rel * Math.max(Math.abs(x), Math.abs(y)) + abs;
}

/** Sorts (id, score) pairs best first: score descending, then id ascending. */
function rank(pairs: Array<[number, number]>): Array<[number, number]> {
  return pairs.sort((p, q) => q[1] - p[1] || p[0] - q[0]);
}

function pairs(ids: Uint32Array, scores: Float32Array, n: number): Array<[number, number]> {
  return Array.from({ length: n }, (_, i): [number, number] => [ids[i], scores[i]]);
}

// ── scanTopK fixtures ──────────────────────────────────────────────────────────────────────────

interface ScanCase {
  un: Float32Array;
  D: number;
  h: Float32Array;
  w: Float32Array;
  alpha: number;
  k: number;
  skip: Uint8Array;
}

const scanShape = fc.record({
  seed: fc.integer(),
  V: fc.integer({ min: 0, max: 300 }),
  D: fc.integer({ min: 1, max: 40 }),
  k: fc.integer({ min: 0, max: 40 }),
  alpha: fc.double({ min: 0.1, max: 20, noNaN: true }),
  skipRate: fc.constantFrom<number>(0, 0.1, 0.9),
  dupRate: fc.constantFrom<number>(0, 0.3),
  negativeW: fc.boolean(),
  /** All w equal: the pruning bound wMax is then tight, so an unsafe skip would show. */
  uniformW: fc.boolean(),
});

/** The shape the expansion step serves: a 20k vocabulary of 100-d rows, top 32. */
const servedScan = fc.record({
  seed: fc.integer(),
  V: fc.constant(20_000),
  D: fc.constant(100),
  k: fc.constant(32),
  alpha: fc.double({ min: 1, max: 20, noNaN: true }),
  skipRate: fc.constant(0.01),
  dupRate: fc.constant(0.05),
  negativeW: fc.constant(false),
  uniformW: fc.boolean(),
});

/** Unit-norm or zero rows, some duplicated (exact ties), some near h (large scores). */
function makeScan(s: ShapeOf<typeof scanShape>): ScanCase {
  const r = rng(s.seed);
  const { V, D } = s;
  const h = new Float32Array(D);
  for (let j = 0; j < D; j++) h[j] = r() - 0.5;
  const un = new Float32Array(V * D);
  const w = new Float32Array(V);
  const skip = new Uint8Array(V);
  for (let v = 0; v < V; v++) {
    const row = un.subarray(v * D, (v + 1) * D);
    if (v > 0 && r() < s.dupRate) {
      const src = Math.floor(r() * v);
      row.set(un.subarray(src * D, (src + 1) * D));
      w[v] = w[src];
    } else {
      const near = r() < 0.2 ? r() * 3 : 0;
      let norm = 0;
      for (let j = 0; j < D; j++) norm += (row[j] = near * h[j] + r() - 0.5) ** 2;
      if (r() < 0.05) row.fill(0);
      else for (let j = 0; j < D; j++) row[j] /= Math.sqrt(norm);
      w[v] = s.uniformW ? 2 : s.negativeW && r() < 0.2 ? -r() * 5 : r() < 0.1 ? 0 : r() * 10;
    }
    skip[v] = r() < s.skipRate ? 1 : 0;
  }
  return { un, D, h, w, alpha: s.alpha, k: s.k, skip };
}

function runScan(K: Kernels, c: ScanCase): Array<[number, number]> {
  const ids = new Uint32Array(c.k);
  const scores = new Float32Array(c.k);
  const n = K.scanTopK(c.un, c.D, c.h, c.w, c.alpha, c.k, c.skip, ids, scores);
  return pairs(ids, scores, n);
}

/** Every row's score in double, rounded to float32 as the kernels rank it. */
function scanScore(c: ScanCase, v: number): number {
  let dot = 0;
  for (let j = 0; j < c.D; j++) dot += c.un[v * c.D + j] * c.h[j];
  return Math.fround(c.w[v] * Math.exp(c.alpha * (dot - 1)));
}

function scanOracle(c: ScanCase): Array<[number, number]> {
  const all: Array<[number, number]> = [];
  for (let v = 0; v < c.w.length; v++) if (!c.skip[v]) all.push([v, scanScore(c, v)]);
  return rank(all).slice(0, c.k);
}

// ── BM25 and topM fixtures ─────────────────────────────────────────────────────────────────────

const bm25Shape = fc.record({
  seed: fc.integer(),
  N: fc.integer({ min: 1, max: 400 }),
  density: fc.double({ min: 0, max: 1, noNaN: true }),
  weight: fc.double({ min: -5, max: 10, noNaN: true }),
  tf: fc.integer({ min: 0, max: 30 }),
  prevTf: fc.integer({ min: 0, max: 30 }),
  k1: fc.oneof(fc.constantFrom(0, -1), fc.double({ min: 0.01, max: 3, noNaN: true })),
  b: fc.double({ min: 0, max: 1, noNaN: true }),
  avgdl: fc.double({ min: 1, max: 300, noNaN: true }),
});

function makeBm25(s: ShapeOf<typeof bm25Shape>) {
  const r = rng(s.seed);
  const docLen = Uint32Array.from({ length: s.N }, () => Math.floor(r() * 600));
  const acc = Float32Array.from({ length: s.N }, () => (r() < 0.5 ? 0 : r() * 20));
  const docs = Uint32Array.from(Array.from({ length: s.N }, (_, d) => d).filter(() => r() < s.density));
  return { ...s, docLen, acc, docs };
}

const topShape = fc.record({
  seed: fc.integer(),
  N: fc.integer({ min: 0, max: 500 }),
  density: fc.double({ min: 0, max: 1, noNaN: true }),
  m: fc.integer({ min: 0, max: 40 }),
  levels: fc.constantFrom<number>(3, 50, 0),
});

/** Accumulator with many exact ties (few levels) and shuffled unique candidates. */
function makeTop(s: ShapeOf<typeof topShape>) {
  const r = rng(s.seed);
  const acc = Float32Array.from({ length: s.N }, () =>
    s.levels > 0 ? Math.floor(r() * s.levels) - 1 : (r() - 0.2) * 100,
  );
  const ids = Array.from({ length: s.N }, (_, d) => d).filter(() => r() < s.density);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return { acc, candidates: Uint32Array.from(ids), m: s.m };
}

function runTop(K: Kernels, c: ReturnType<typeof makeTop>): Array<[number, number]> {
  const ids = new Uint32Array(c.m);
  const scores = new Float32Array(c.m);
  return pairs(ids, scores, K.topM(c.acc, c.candidates, c.m, ids, scores));
}

// ── reference against brute-force oracles ──────────────────────────────────────────────────────

describe('reference kernels vs brute force', () => {
  it('scanTopK equals sort-everything, ties by smaller id', () => {
    fc.assert(
      fc.property(scanShape, (s) => {
        const c = makeScan(s);
        expect(runScan(referenceKernels, c)).toEqual(scanOracle(c));
      }),
      { numRuns: 150 },
    );
  });

  it('scanTopK equals sort-everything at the served shape (V = 20k, D = 100, k = 32)', () => {
    fc.assert(
      fc.property(servedScan, (shape) => {
        const c = makeScan(shape);
        expect(runScan(referenceKernels, c)).toEqual(scanOracle(c));
      }),
      { numRuns: 5 },
    );
  });

  it('matmulABt equals the naive triple loop and leaves the rest of out alone', () => {
    fc.assert(
      fc.property(fc.integer(), fc.nat(10), fc.nat(10), fc.nat(40), (seed, m, n, k) => {
        const r = rng(seed);
        const a = Float32Array.from({ length: m * k }, () => r() * 2 - 1);
        const b = Float32Array.from({ length: n * k }, () => r() * 2 - 1);
        const out = new Float32Array(m * n + 3).fill(7);
        referenceKernels.matmulABt(a, b, m, n, k, out);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            const want = Array.from({ length: k }, (_, p) => a[i * k + p] * b[j * k + p]).reduce((x, y) => x + y, 0);
            expect(out[i * n + j]).toBe(Math.fround(want));
          }
        }
        expect(Array.from(out.subarray(m * n))).toEqual([7, 7, 7]);
      }),
      { numRuns: 100 },
    );
  });

  it('accumulateBm25 follows the literal BM25 formula', () => {
    fc.assert(
      fc.property(bm25Shape, (s) => {
        const c = makeBm25(s);
        const acc = c.acc.slice();
        referenceKernels.accumulateBm25(acc, c.docs, c.docLen, c.weight, c.tf, c.prevTf, c.k1, c.b, c.avgdl);
        const sat = (t: number, L: number): number =>
          t <= 0 ? 0 : c.k1 <= 0 ? 1 : (t * (c.k1 + 1)) / (t + c.k1 * (1 - c.b + (c.b * L) / c.avgdl));
        const want = c.acc.slice();
        for (const d of c.docs) want[d] += c.weight * (sat(c.tf, c.docLen[d]) - sat(c.prevTf, c.docLen[d]));
        for (let d = 0; d < acc.length; d++) expect(close(acc[d], want[d], REL_TOL, 1e-6)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('accumulateBm25 tiers telescope: tf 1 then 1→T equals 0→T, and never decrease with tf', () => {
    fc.assert(
      fc.property(bm25Shape, fc.integer({ min: 2, max: 20 }), (s, T) => {
        const c = makeBm25(s);
        const tiered = new Float32Array(c.acc.length);
        const direct = new Float32Array(c.acc.length);
        const weight = Math.abs(c.weight);
        referenceKernels.accumulateBm25(tiered, c.docs, c.docLen, weight, 1, 0, c.k1, c.b, c.avgdl);
        const afterBase = tiered.slice();
        referenceKernels.accumulateBm25(tiered, c.docs, c.docLen, weight, T, 1, c.k1, c.b, c.avgdl);
        referenceKernels.accumulateBm25(direct, c.docs, c.docLen, weight, T, 0, c.k1, c.b, c.avgdl);
        for (const d of c.docs) {
          expect(close(tiered[d], direct[d], REL_TOL, 1e-6)).toBe(true);
          expect(tiered[d]).toBeGreaterThanOrEqual(afterBase[d]);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('topM equals sort-everything over the candidates, ties by smaller id', () => {
    fc.assert(
      fc.property(topShape, (s) => {
        const c = makeTop(s);
        const all = rank(Array.from(c.candidates, (d): [number, number] => [d, c.acc[d]])).slice(0, c.m);
        expect(runTop(referenceKernels, c)).toEqual(all);
      }),
      { numRuns: 150 },
    );
  });

  it('resetAt zeroes exactly the candidates', () => {
    fc.assert(
      fc.property(topShape, (s) => {
        const c = makeTop(s);
        const acc = c.acc.slice();
        referenceKernels.resetAt(acc, c.candidates);
        const touched = new Set(c.candidates);
        for (let d = 0; d < acc.length; d++) expect(acc[d]).toBe(touched.has(d) ? 0 : c.acc[d]);
      }),
      { numRuns: 100 },
    );
  });
});

// ── native against reference ───────────────────────────────────────────────────────────────────

describe.skipIf(!nativeKernels)(`native vs reference${nativeKernels ? '' : ` (${NATIVE_MISSING})`}`, () => {
  const native = nativeKernels as Kernels;

  /** Native top-k is a valid top-k: scores match ref within tolerance, ids are true to their scores. */
  function expectSameTopK(c: ScanCase, got: Array<[number, number]>, want: Array<[number, number]>): void {
    expect(got.length).toBe(want.length);
    const kth = want.length > 0 ? want[want.length - 1][1] : 0;
    const seen = new Set<number>();
    for (let i = 0; i < got.length; i++) {
      const [id, score] = got[i];
      expect(close(score, want[i][1]), `score #${i}: ${score} vs ${want[i][1]}`).toBe(true);
      if (i > 0) expect(score).toBeLessThanOrEqual(got[i - 1][1]);
      expect(c.skip[id]).toBe(0);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      // The id's own score agrees with what was reported and reaches the reference's k-th score.
      expect(close(score, scanScore(c, id))).toBe(true);
      expect(scanScore(c, id) >= kth || close(scanScore(c, id), kth)).toBe(true);
    }
  }

  it('scanTopK agrees on random small inputs', () => {
    fc.assert(
      fc.property(scanShape, (s) => {
        const c = makeScan(s);
        expectSameTopK(c, runScan(native, c), runScan(referenceKernels, c));
      }),
      { numRuns: 150 },
    );
  });

  it('scanTopK agrees at the served shape (V = 20k, D = 100, k = 32)', () => {
    fc.assert(
      fc.property(servedScan, (shape) => {
        const c = makeScan(shape);
        expectSameTopK(c, runScan(native, c), runScan(referenceKernels, c));
      }),
      { numRuns: 5 },
    );
  });

  it('matmulABt agrees within a dot-product error bound', () => {
    fc.assert(
      fc.property(fc.integer(), fc.nat(12), fc.nat(12), fc.nat(130), (seed, m, n, k) => {
        const r = rng(seed);
        const a = Float32Array.from({ length: m * k }, () => r() * 2 - 1);
        const b = Float32Array.from({ length: n * k }, () => r() * 2 - 1);
        const got = new Float32Array(m * n + 2).fill(5);
        const want = new Float32Array(m * n + 2).fill(5);
        native.matmulABt(a, b, m, n, k, got);
        referenceKernels.matmulABt(a, b, m, n, k, want);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let mag = 0;
            for (let p = 0; p < k; p++) mag += Math.abs(a[i * k + p] * b[j * k + p]);
            expect(Math.abs(got[i * n + j] - want[i * n + j])).toBeLessThanOrEqual(REL_TOL * mag + 1e-7);
          }
        }
        expect(Array.from(got.subarray(m * n))).toEqual([5, 5]);
      }),
      { numRuns: 100 },
    );
  });

  it('accumulateBm25 agrees', () => {
    fc.assert(
      fc.property(bm25Shape, (s) => {
        const c = makeBm25(s);
        const got = c.acc.slice();
        const want = c.acc.slice();
        native.accumulateBm25(got, c.docs, c.docLen, c.weight, c.tf, c.prevTf, c.k1, c.b, c.avgdl);
        referenceKernels.accumulateBm25(want, c.docs, c.docLen, c.weight, c.tf, c.prevTf, c.k1, c.b, c.avgdl);
        // Both sides do the same double arithmetic (no FMA) and round once to float32: allow 2 ulp.
        for (let d = 0; d < got.length; d++) expect(close(got[d], want[d], F32_ULP_2, 1e-30)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('topM agrees exactly (same float32 comparisons, same tie order)', () => {
    fc.assert(
      fc.property(topShape, (s) => {
        const c = makeTop(s);
        expect(runTop(native, c)).toEqual(runTop(referenceKernels, c));
      }),
      { numRuns: 150 },
    );
  });

  it('resetAt agrees exactly', () => {
    fc.assert(
      fc.property(topShape, (s) => {
        const c = makeTop(s);
        const got = c.acc.slice();
        const want = c.acc.slice();
        native.resetAt(got, c.candidates);
        referenceKernels.resetAt(want, c.candidates);
        expect(got).toEqual(want);
      }),
      { numRuns: 100 },
    );
  });

  it('reads typed-array views at their byteOffset', () => {
    const buf = new Float32Array(10).fill(1);
    const acc = buf.subarray(4, 8);
    acc.set([3, 1, 4, 2]);
    const ids = new Uint32Array(2);
    const scores = new Float32Array(2);
    expect(native.topM(acc, new Uint32Array([0, 1, 2, 3]), 2, ids, scores)).toBe(2);
    expect([Array.from(ids), Array.from(scores)]).toEqual([[2, 0], [4, 3]]);
    native.resetAt(acc, new Uint32Array([2]));
    expect(Array.from(buf)).toEqual([1, 1, 1, 1, 3, 1, 0, 2, 1, 1]);
  });
});

// ── argument errors: same class and code from both implementations ─────────────────────────────

const implementations: Array<[string, Kernels | undefined]> = [
  ['reference', referenceKernels],
  ['native', nativeKernels],
];

describe.each(implementations)('%s argument checks', (name, K) => {
  const f32 = (n: number): Float32Array => new Float32Array(n);
  const u32 = (n: number): Uint32Array => new Uint32Array(n);
  type Call = [string, typeof TypeError | typeof RangeError, (k: Kernels) => unknown];
  const calls: Call[] = [
    ['scanTopK: un not Float32Array', TypeError, (k) => k.scanTopK([] as never, 2, f32(2), f32(1), 1, 1, new Uint8Array(1), u32(1), f32(1))],
    ['scanTopK: un too short', RangeError, (k) => k.scanTopK(f32(3), 2, f32(2), f32(2), 1, 1, new Uint8Array(2), u32(1), f32(1))],
    ['scanTopK: skip Uint8ClampedArray', TypeError, (k) => k.scanTopK(f32(2), 2, f32(2), f32(1), 1, 1, new Uint8ClampedArray(1) as never, u32(1), f32(1))],
    ['scanTopK: alpha NaN', RangeError, (k) => k.scanTopK(f32(2), 2, f32(2), f32(1), NaN, 1, new Uint8Array(1), u32(1), f32(1))],
    ['scanTopK: k fractional', RangeError, (k) => k.scanTopK(f32(2), 2, f32(2), f32(1), 1, 1.5, new Uint8Array(1), u32(1), f32(1))],
    ['scanTopK: outIds shorter than k', RangeError, (k) => k.scanTopK(f32(2), 2, f32(2), f32(1), 1, 2, new Uint8Array(1), u32(1), f32(2))],
    ['matmulABt: m missing', TypeError, (k) => (k.matmulABt as (...a: unknown[]) => void)(f32(1), f32(1))],
    ['matmulABt: out too short', RangeError, (k) => k.matmulABt(f32(4), f32(4), 2, 2, 2, f32(3))],
    ['matmulABt: negative n', RangeError, (k) => k.matmulABt(f32(4), f32(4), 2, -1, 2, f32(4))],
    ['accumulateBm25: docs Int32Array', TypeError, (k) => k.accumulateBm25(f32(2), new Int32Array(1) as never, u32(2), 1, 1, 0, 1.2, 0.75, 10)],
    ['accumulateBm25: doc id out of range', RangeError, (k) => k.accumulateBm25(f32(2), u32(1).fill(2), u32(2), 1, 1, 0, 1.2, 0.75, 10)],
    ['accumulateBm25: docLen too short', RangeError, (k) => k.accumulateBm25(f32(4), u32(1).fill(2), u32(2), 1, 1, 0, 1.2, 0.75, 10)],
    ['accumulateBm25: avgdl 0', RangeError, (k) => k.accumulateBm25(f32(2), u32(1), u32(2), 1, 1, 0, 1.2, 0.75, 0)],
    ['accumulateBm25: b above 1', RangeError, (k) => k.accumulateBm25(f32(2), u32(1), u32(2), 1, 1, 0, 1.2, 1.5, 10)],
    ['accumulateBm25: tf negative', RangeError, (k) => k.accumulateBm25(f32(2), u32(1), u32(2), 1, -1, 0, 1.2, 0.75, 10)],
    ['accumulateBm25: weight string', TypeError, (k) => k.accumulateBm25(f32(2), u32(1), u32(2), '1' as never, 1, 0, 1.2, 0.75, 10)],
    ['topM: candidate out of range', RangeError, (k) => k.topM(f32(3), u32(1).fill(3), 1, u32(1), f32(1))],
    ['topM: outScores Float64Array', TypeError, (k) => k.topM(f32(3), u32(1), 1, u32(1), new Float64Array(1) as never)],
    ['resetAt: candidate out of range', RangeError, (k) => k.resetAt(f32(3), u32(2).fill(9))],
  ];

  it.skipIf(!K).each(calls)('%s', (_label, Ctor, call) => {
    let caught: unknown;
    try {
      call(K as Kernels);
    } catch (err) {
      caught = err;
    }
    expect(caught, `${name} did not throw`).toBeInstanceOf(Ctor);
    expect(caught).toMatchObject({ code: KERNEL_ARG_ERROR });
  });

  it.skipIf(!K)('mutates nothing when an id is out of range', () => {
    const acc = Float32Array.from([1, 2, 3]);
    expect(() => K!.accumulateBm25(acc, Uint32Array.from([0, 1, 7]), u32(3), 1, 1, 0, 1.2, 0.75, 10)).toThrow();
    expect(() => K!.resetAt(acc, Uint32Array.from([0, 9]))).toThrow();
    expect(Array.from(acc)).toEqual([1, 2, 3]);
  });
});

// ── chooser and kill switch ────────────────────────────────────────────────────────────────────

describe('kernel choice', () => {
  const fakeNative = { ...referenceKernels };

  it('prefers native, unless absent or disabled by the env kill switch', () => {
    expect(chooseKernels({}, fakeNative)).toEqual({ kernels: fakeNative, native: true });
    expect(chooseKernels({}, undefined)).toEqual({ kernels: referenceKernels, native: false });
    for (const v of ['1', 'true', 'TRUE']) {
      expect(chooseKernels({ [NATIVE_DISABLED_ENV]: v }, fakeNative).native).toBe(false);
    }
    for (const v of ['0', '', 'no']) expect(chooseKernels({ [NATIVE_DISABLED_ENV]: v }, fakeNative).native).toBe(true);
  });

  it('isNativeEnabled reflects this process: native exactly when the addon loaded', () => {
    expect(isNativeEnabled()).toBe(nativeKernels !== undefined);
  });

  it(`${NATIVE_DISABLED_ENV}=1 forces the reference in a fresh process`, () => {
    const script =
      "import * as k from './src/kernels/index.ts';" +
      'console.log(JSON.stringify({ enabled: k.isNativeEnabled(), loaded: k.nativeKernels !== undefined,' +
      ' reference: k.kernels === k.referenceKernels }));';
    const run = (env: NodeJS.ProcessEnv): unknown =>
      JSON.parse(
        execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
          cwd: REPO_ROOT,
          env,
          encoding: 'utf8',
        }),
      );
    const { [NATIVE_DISABLED_ENV]: _ignored, ...clean } = process.env;
    expect(run({ ...clean, [NATIVE_DISABLED_ENV]: '1' })).toEqual({ enabled: false, loaded: false, reference: true });
    const built = nativeKernels !== undefined;
    expect(run(clean)).toEqual({ enabled: built, loaded: built, reference: !built });
  });
});
