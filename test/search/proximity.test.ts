/**
 * Term proximity: the best window's weight equals a brute force over every window, counts each
 * query term once, and grows with the window. The lexical term: BM25 of the query's terms over
 * exact term frequencies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lexicalScore, proximityScore } from '../../src/search/proximity.ts';

/** Every window of `window` positions, the distinct query terms inside summed. */
function bruteForce(tokens: number[], weights: Map<number, number>, window: number): number {
  let best = 0;
  for (let start = 0; start < tokens.length; start++) {
    const inside = new Set(tokens.slice(start, start + window).filter((t) => weights.has(t)));
    best = Math.max(best, [...inside].reduce((s, t) => s + weights.get(t)!, 0));
  }
  return best;
}

describe('proximityScore', () => {
  const w = new Map([
    [1, 1],
    [2, 2],
    [3, 4],
  ]);

  it('takes the best stretch of the window, each query term once', () => {
    // Terms 2 and 3 lie 2 apart, term 1 is 5 before 3: window 3 holds {2, 3}, window 6 all three.
    expect(proximityScore([1, 0, 0, 2, 0, 3], w, 2)).toBe(4);
    expect(proximityScore([1, 0, 0, 2, 0, 3], w, 3)).toBe(6);
    expect(proximityScore([1, 0, 0, 2, 0, 3], w, 5)).toBe(6);
    expect(proximityScore([1, 0, 0, 2, 0, 3], w, 6)).toBe(7);
    expect(proximityScore([1, 1, 1, 1], w, 4)).toBe(1);
    expect(proximityScore([7, 8, 9], w, 8)).toBe(0);
    expect(proximityScore([], w, 8)).toBe(0);
  });

  it('equals a brute force over every window, and never falls as the window grows', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (tokens, window) => {
        const got = proximityScore(tokens, w, window);
        expect(got).toBe(bruteForce(tokens, w, window));
        expect(proximityScore(tokens, w, window + 1)).toBeGreaterThanOrEqual(got);
      }),
      { numRuns: 300 },
    );
  });
});

describe('lexicalScore', () => {
  const w = new Map([
    [1, 1],
    [2, 2],
    [3, 4],
  ]);
  const params = { k1: 1.2, b: 0.75 };

  it('is BM25 of the weighted terms over exact term frequencies and the document length', () => {
    // Term 1 twice and term 3 once in 8 tokens, average length 4: K = 1.2·(0.25 + 0.75·2) = 2.1.
    const tokens = [1, 0, 1, 3, 0, 0, 7, 0];
    const K = 1.2 * (0.25 + 0.75 * (8 / 4));
    expect(lexicalScore(tokens, w, 4, params)).toBeCloseTo((1 * 2 * 2.2) / (2 + K) + (4 * 1 * 2.2) / (1 + K), 12);
    expect(lexicalScore([7, 8, 9], w, 4, params)).toBe(0);
    expect(lexicalScore([], w, 4, params)).toBe(0);
    // k1 = 0 is binary: the weights of the query terms present.
    expect(lexicalScore(tokens, w, 4, { k1: 0, b: 0.75 })).toBe(5);
  });

  it('never falls as a query term repeats, and ignores the order of the tokens', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 60 }), (tokens) => {
        const got = lexicalScore(tokens, w, 20, params);
        expect(lexicalScore([...tokens].reverse(), w, 20, params)).toBeCloseTo(got, 12);
        // One more occurrence of term 3 in place of a non-query token raises the score.
        const i = tokens.findIndex((t) => !w.has(t));
        if (i >= 0) expect(lexicalScore(tokens.map((t, j) => (j === i ? 3 : t)), w, 20, params)).toBeGreaterThan(got);
      }),
      { numRuns: 200 },
    );
  });
});
