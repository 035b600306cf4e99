/**
 * The choice of the serving mix from a scored calibration grid: the best point of the whole grid
 * against the best γ alone, in one paired test of per-query reciprocal ranks.
 */
import { describe, expect, it } from 'vitest';
import { chooseMix, type CalibratePoint } from '../../src/rcl/loop.ts';

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Grid points with their per-query reciprocal ranks; each point's MRR is their mean. */
function grid(entries: Array<[Omit<CalibratePoint, 'mrr' | 'proximityWindow'>, number[]]>) {
  const ranks = new Map<CalibratePoint, Float64Array>();
  const points = entries.map(([p, rr]) => {
    const point: CalibratePoint = { ...p, proximityWindow: 16, mrr: mean(rr) };
    ranks.set(point, Float64Array.from(rr));
    return point;
  });
  return { points, ranksOf: (p: CalibratePoint) => ranks.get(p)! };
}

const base = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];

describe('chooseMix', () => {
  it('keeps two terms together when each alone is within the noise but both beat it', () => {
    // Per-query gains over γ alone: λ (½, ½, 0, 0, 0, 0, 0, −½) and π (0, 0, ½, ½, 0, 0, 0, −½) each
    // have a mean under twice their standard error; λ and π together (½, ½, ½, ½, 0, 0, 0, 0) do not.
    const { points, ranksOf } = grid([
      [{ gamma: 0.3, proximity: 0, lexical: 0 }, base],
      [{ gamma: 0.5, proximity: 0, lexical: 0 }, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25]],
      [{ gamma: 0.3, proximity: 0, lexical: 0.2 }, [1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0]],
      [{ gamma: 0.3, proximity: 0.5, lexical: 0 }, [0.5, 0.5, 1, 1, 0.5, 0.5, 0.5, 0]],
      [{ gamma: 0.3, proximity: 0.5, lexical: 0.2 }, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]],
    ]);
    const { best, mixCheck } = chooseMix(points, ranksOf);
    expect(best).toBe(points[4]);
    expect(mixCheck).toBeDefined();
    expect(mixCheck!.kept).toBe(true);
    expect(mixCheck!.mrrWith).toBeCloseTo(0.75, 9);
    expect(mixCheck!.mrrWithout).toBeCloseTo(0.5, 9);
    // sd of (½, ½, ½, ½, 0, 0, 0, 0) is √(2/7)/2; the standard error divides it by √8.
    expect(mixCheck!.standardError).toBeCloseTo(Math.sqrt(2 / 7) / 2 / Math.sqrt(8), 9);

    // Each term alone, tested against γ alone, stays off.
    const lexicalOnly = chooseMix(points.slice(0, 3), ranksOf);
    expect(lexicalOnly.best).toBe(points[0]);
    expect(lexicalOnly.mixCheck!.kept).toBe(false);
    const proximityOnly = chooseMix([...points.slice(0, 2), points[3]], ranksOf);
    expect(proximityOnly.best).toBe(points[0]);
    expect(proximityOnly.mixCheck!.kept).toBe(false);
  });

  it('returns the best γ alone, with no check, when no mix with a term beats it', () => {
    const { points, ranksOf } = grid([
      [{ gamma: 0.3, proximity: 0, lexical: 0 }, base],
      [{ gamma: 0.5, proximity: 0, lexical: 0 }, [1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]],
      // As good as γ 0.5 but not better: the simpler mix wins the tie.
      [{ gamma: 0.5, proximity: 0.3, lexical: 0 }, [1, 0.5, 1, 0.5, 0.5, 0.5, 0.5, 0.5]],
      [{ gamma: 0.5, proximity: 0, lexical: 0.5 }, [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25]],
    ]);
    const { best, mixCheck } = chooseMix(points, ranksOf);
    expect(best).toBe(points[1]);
    expect(mixCheck).toBeUndefined();
  });
});
