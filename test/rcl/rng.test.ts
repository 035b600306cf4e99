/**
 * Seeded PRNG: determinism, state save/restore, ranges, rough uniformity, shuffle is a permutation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../src/rcl/rng.ts';

describe('createRng', () => {
  it('is deterministic per seed and differs across nearby seeds', () => {
    const a = createRng(1);
    const b = createRng(1);
    const c = createRng(2);
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(seqA);
  });

  it('resumes exactly from a saved state', () => {
    const r = createRng(123);
    for (let i = 0; i < 10; i++) r.next();
    const state = r.getState();
    const expected = [r.int(1000), r.next(), r.int(7)];
    const resumed = createRng(0, state);
    expect([resumed.int(1000), resumed.next(), resumed.int(7)]).toEqual(expected);
    r.setState(state);
    expect(r.int(1000)).toBe(expected[0]);
  });

  it('stays in range', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 2 ** 32 }), (seed, n) => {
        const r = createRng(seed);
        for (let i = 0; i < 20; i++) {
          const x = r.next();
          expect(x >= 0 && x < 1).toBe(true);
          const k = r.int(n);
          expect(Number.isInteger(k) && k >= 0 && k < n).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('draws int(n) roughly uniformly', () => {
    const r = createRng(9);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500); // > 5 σ (σ ≈ 91)
  });

  it('shuffles into a permutation, in place', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 50 }), fc.integer(), (arr, seed) => {
        const copy = [...arr];
        const out = createRng(seed).shuffle(copy);
        expect(out).toBe(copy);
        expect([...out].sort((x, y) => x - y)).toEqual([...arr].sort((x, y) => x - y));
      }),
      { numRuns: 100 },
    );
  });

  it('picks members and refuses empty arrays', () => {
    const r = createRng(5);
    const items = ['a', 'b', 'c'];
    for (let i = 0; i < 20; i++) expect(items).toContain(r.pick(items));
    expect(() => r.pick([])).toThrow(RangeError);
    expect(() => r.int(0)).toThrow(RangeError);
  });
});
