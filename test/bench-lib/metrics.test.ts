/**
 * Ranking metrics against hand-computed values (trec_eval `ndcg_cut` conventions: linear gain,
 * log2(rank + 1) discount) and a few fast-check properties; percentile against numpy's default.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAggregator, evaluateRanking, mrrAt, ndcgAt, percentile, recallAt, relevantCount } from '../../bench/lib/metrics.ts';

const graded = new Map([
  ['a', 2],
  ['b', 1],
  ['c', 0], // judged non-relevant: gains nothing, not counted by recall
]);

describe('ndcgAt', () => {
  it('matches a hand-computed graded example', () => {
    // DCG@3 of [x, a, b] = 0/log2(2) + 2/log2(3) + 1/log2(4); IDCG@3 = 2/log2(2) + 1/log2(3).
    const dcg = 2 / Math.log2(3) + 1 / 2;
    const idcg = 2 + 1 / Math.log2(3);
    expect(ndcgAt(3, ['x', 'a', 'b'], graded)).toBeCloseTo(dcg / idcg, 12);
    expect(ndcgAt(1, ['x', 'a', 'b'], graded)).toBe(0);
    expect(ndcgAt(10, ['a', 'b', 'c'], graded)).toBeCloseTo(1, 12);
  });

  it('uses linear gains (trec_eval), not 2^rel − 1', () => {
    // [b, a]: DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3). With exponential gains it would be (1 + 3/log2 3)/(3 + 1/log2 3).
    const expected = (1 + 2 / Math.log2(3)) / (2 + 1 / Math.log2(3));
    expect(ndcgAt(2, ['b', 'a'], graded)).toBeCloseTo(expected, 12);
  });

  it('cuts the ideal ranking at k too', () => {
    const qrel = new Map([['a', 1], ['b', 1], ['c', 1]]);
    expect(ndcgAt(1, ['a'], qrel)).toBe(1);
    expect(ndcgAt(2, ['a', 'x'], qrel)).toBeCloseTo(1 / (1 + 1 / Math.log2(3)), 12);
  });

  it('counts a repeated document once', () => {
    expect(ndcgAt(2, ['a', 'a', 'b'], graded)).toBeCloseTo(1, 12);
  });

  it('is 1 on the ideal ranking and within [0, 1] otherwise', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer()), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 15 }),
        (docs, k) => {
          const qrel = new Map(docs.map(([g], i) => [`d${i}`, g]));
          const ids = [...qrel.keys()];
          const ideal = [...ids].sort((x, y) => qrel.get(y)! - qrel.get(x)!);
          const order = docs.map(([, key], i) => ({ id: ids[i], key })).sort((x, y) => x.key - y.key);
          const v = ndcgAt(k, order.map((o) => o.id), qrel);
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThanOrEqual(1 + 1e-12);
          if (relevantCount(qrel) > 0) expect(ndcgAt(k, ideal, qrel)).toBeCloseTo(1, 12);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('recallAt and mrrAt', () => {
  it('match hand-computed values', () => {
    expect(recallAt(2, ['x', 'a', 'b'], graded)).toBe(0.5);
    expect(recallAt(3, ['x', 'a', 'b'], graded)).toBe(1);
    expect(recallAt(3, ['c', 'x'], graded)).toBe(0);
    expect(mrrAt(1, ['x', 'a'], graded)).toBe(0);
    expect(mrrAt(3, ['x', 'c', 'b'], graded)).toBeCloseTo(1 / 3, 12);
  });

  it('recall never falls as k grows', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }), (rel) => {
        const qrel = new Map(rel.map((r, i) => [`d${i}`, r ? 1 : 0]));
        const ranking = [...qrel.keys()].reverse();
        let prev = 0;
        for (let k = 1; k <= rel.length; k++) {
          const r = recallAt(k, ranking, qrel);
          expect(r).toBeGreaterThanOrEqual(prev);
          prev = r;
        }
      }),
      { numRuns: 50 },
    );
  });

  it('evaluateRanking names metrics by cut-off', () => {
    expect(Object.keys(evaluateRanking(['a'], graded, [1, 10])).sort()).toEqual(
      ['mrr@1', 'mrr@10', 'ndcg@1', 'ndcg@10', 'recall@1', 'recall@10'],
    );
  });
});

describe('percentile', () => {
  it('interpolates linearly like numpy.percentile', () => {
    // numpy.percentile([1, 2, 3, 4, 10], [0, 25, 50, 90, 100]) → [1, 2, 3, 7.6, 10]
    const v = [10, 3, 1, 4, 2];
    expect([0, 25, 50, 90, 100].map((p) => percentile(v, p))).toEqual([1, 2, 3, expect.closeTo(7.6, 12), 10]);
    expect(v).toEqual([10, 3, 1, 4, 2]);
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });
});

describe('createAggregator', () => {
  it('averages each metric over the queries that reported it', () => {
    const agg = createAggregator();
    agg.add({ 'ndcg@10': 1, 'recall@10': 1 });
    agg.add({ 'ndcg@10': 0.5 });
    expect(agg.count).toBe(2);
    expect(agg.means()).toEqual({ 'ndcg@10': 0.75, 'recall@10': 1 });
  });
});
