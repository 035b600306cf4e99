/**
 * Thresholds and labelling rules of research-notes §3.3–§3.6: T⁺ = max S over negatives,
 * T⁻ = min S over positives, the positive-first case order, multi-answer combination, query
 * dropping, and the closed-set argmax rule.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  combineEntryLabels,
  computeAllThresholds,
  computeThresholds,
  docPools,
  labelClosedSet,
  labelDocument,
  labelOnline,
  type AnswerPool,
} from '../../src/rcl/thresholds.ts';

const pool = (answer: string, docs: Array<[string, number, 0 | 1]>): AnswerPool => ({
  answer,
  docs: docs.map(([docId, score, label]) => ({ docId, score, label })),
});

describe('computeThresholds', () => {
  it('takes T⁺ = max S over negatives and T⁻ = min S over positives', () => {
    const t = computeThresholds([
      pool('Paris', [
        ['d1', 0.6, 1],
        ['d2', 0.3, 1],
        ['d3', 0.4, 0],
        ['d4', 0.01, 0],
      ]),
    ]);
    expect(t.usable).toBe(true);
    expect(t.entries).toEqual([{ answer: 'Paris', tPlus: 0.4, tMinus: 0.3, positives: 2, negatives: 2 }]);
    expect(t.positives).toEqual(['d1', 'd2']);
    expect(t.negatives).toEqual(['d3', 'd4']);
  });

  it('drops a query with a one-sided pool (§3.4 step 4)', () => {
    expect(computeThresholds([pool('a', [['d1', 0.9, 1]])])).toMatchObject({ usable: false, reason: 'no-negative' });
    expect(computeThresholds([pool('a', [['d1', 0.1, 0]])])).toMatchObject({ usable: false, reason: 'no-positive' });
    expect(computeThresholds([pool('a', [])])).toMatchObject({ usable: false, reason: 'no-pool' });
  });

  it('keeps thresholds per answer entry and reports entries that lack a pool', () => {
    const t = computeThresholds([
      pool('Rebecca St. James', [
        ['d1', 0.595, 1],
        ['d2', 0.2, 0],
      ]),
      pool('St. James', [
        ['d1', 0.7, 0],
        ['d2', 0.1, 0],
      ]),
    ]);
    expect(t.usable).toBe(true);
    expect(t.entries.map((e) => e.answer)).toEqual(['Rebecca St. James']);
    expect(t.skipped).toEqual([{ answer: 'St. James', reason: 'no-positive' }]);
    // Document level: d1 succeeds on one entry → positive; d2 fails all → negative (§3.3).
    expect(t.positives).toEqual(['d1']);
    expect(t.negatives).toEqual(['d2']);
  });

  it('builds document-level pools: positive on any entry, negative on all', () => {
    const pools = [
      pool('a', [['d1', 0.1, 0], ['d2', 0.9, 1], ['d3', 0.2, 0]]),
      pool('b', [['d1', 0.8, 1], ['d3', 0.1, 0], ['d4', 0.05, 0]]),
    ];
    expect(docPools(pools)).toEqual({ positives: ['d1', 'd2'], negatives: ['d3', 'd4'] });
  });

  it('rejects non-finite scores and contradictory labels', () => {
    expect(() => computeThresholds([pool('a', [['d1', NaN, 1]])])).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
    expect(() =>
      computeThresholds([
        pool('a', [
          ['d1', 0.5, 1],
          ['d1', 0.5, 0],
        ]),
      ]),
    ).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
  });

  it('reports queries without pools across a training set', () => {
    const pools = new Map([
      ['q1', [pool('x', [['d1', 0.9, 1], ['d2', 0.1, 0]])]],
      ['q2', [pool('y', [['d3', 0.9, 1]])]],
    ]);
    const { thresholds, dropped } = computeAllThresholds(pools, ['q1', 'q2', 'q3']);
    expect([...thresholds.keys()]).toEqual(['q1']);
    expect(dropped).toEqual([
      { queryId: 'q2', reason: 'no-negative' },
      { queryId: 'q3', reason: 'no-pool' },
    ]);
  });
});

describe('labelOnline (§3.5)', () => {
  it('labels positive above T⁺, negative below T⁻, excluded in the overlap band', () => {
    // Overlapping pools: T⁻ = 0.3 ≤ T⁺ = 0.4.
    expect(labelOnline(0.5, 0.4, 0.3)).toBe(1);
    expect(labelOnline(0.2, 0.4, 0.3)).toBe(0);
    expect(labelOnline(0.35, 0.4, 0.3)).toBeNull();
    expect(labelOnline(0.4, 0.4, 0.3)).toBeNull(); // S = T⁺ is not above it
    expect(labelOnline(0.3, 0.4, 0.3)).toBeNull(); // S = T⁻ is not below it
  });

  it('makes a score between perfectly separated pools positive (case order)', () => {
    // T⁺ = 0.2 < T⁻ = 0.6: S = 0.4 satisfies both tests; the paper's order says positive.
    expect(labelOnline(0.4, 0.2, 0.6)).toBe(1);
    expect(labelOnline(0.1, 0.2, 0.6)).toBe(0);
  });

  it('excludes NaN', () => {
    expect(labelOnline(NaN, 0.2, 0.6)).toBeNull();
  });

  it('never labels a score positive and negative, and agrees with the offline pools', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean()), { minLength: 2, maxLength: 20 }),
        (docs) => {
          const p = pool('a', docs.map(([s, l], i) => [`d${i}`, s, l ? 1 : 0]));
          const t = computeThresholds([p]);
          if (!t.usable) return;
          const { tPlus, tMinus } = t.entries[0];
          for (const d of p.docs) {
            const l = labelOnline(d.score, tPlus, tMinus);
            // An offline positive is never re-labelled negative, nor an offline negative positive.
            if (d.label === 1) expect(l).not.toBe(0);
            else expect(l).not.toBe(1);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('multi-answer combination (§3.3, §3.5)', () => {
  it('positive if any entry is, negative if all are, else excluded', () => {
    expect(combineEntryLabels([0, 1, null])).toBe(1);
    expect(combineEntryLabels([0, 0])).toBe(0);
    expect(combineEntryLabels([0, null])).toBeNull();
    expect(combineEntryLabels([])).toBeNull();
  });

  it('labels a document with each entry’s own thresholds', () => {
    const thresholds = {
      entries: [
        { answer: 'long answer', tPlus: 0.01, tMinus: 0.005, positives: 1, negatives: 1 },
        { answer: 'short', tPlus: 0.5, tMinus: 0.4, positives: 1, negatives: 1 },
      ],
    };
    // 0.02 is high for the long entry, low for the short one: any positive wins.
    expect(labelDocument([{ answer: 'long answer', score: 0.02 }, { answer: 'short', score: 0.02 }], thresholds)).toBe(1);
    expect(labelDocument([{ answer: 'long answer', score: 0.001 }, { answer: 'short', score: 0.3 }], thresholds)).toBe(0);
    expect(labelDocument([{ answer: 'long answer', score: 0.001 }, { answer: 'short', score: 0.45 }], thresholds)).toBeNull();
    expect(labelDocument([{ answer: 'long answer', score: 0.001 }], thresholds)).toBeNull(); // 'short' unscored
  });
});

describe('labelClosedSet (§3.3)', () => {
  it('is positive iff the gold choice is strictly the most probable', () => {
    expect(labelClosedSet([0.116, 0.109], 0)).toBe(1); // PubHealth example: P(true) > P(false)
    expect(labelClosedSet([0.1, 0.309, 0.2, 0.05], 1)).toBe(1); // ARC example: B is largest
    expect(labelClosedSet([0.1, 0.309, 0.2, 0.05], 2)).toBe(0);
    expect(labelClosedSet([0.3, 0.3], 0)).toBe(0); // a tie is not "greater than every other"
    expect(() => labelClosedSet([0.3, 0.3], 2)).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
  });
});
