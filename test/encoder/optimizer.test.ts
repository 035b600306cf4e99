/**
 * AdamW: a two-step example computed by hand, sparse-row (lazy) updates, per-group decay and
 * learning-rate scales, state round-trips, growth, validation, and convergence on a quadratic.
 */
import { describe, expect, it } from 'vitest';
import { createAdamW, type AdamWState, type Gradient } from '../../src/encoder/optimizer.ts';
import { createRng } from '../../src/rcl/rng.ts';

describe('AdamW, hand-computed', () => {
  it('matches two steps worked out by hand', () => {
    // lr 0.1, λ 0.01, β 0.9/0.999, ε 1e-8, p0 = 1, g1 = 0.5, g2 = −0.25.
    // Step 1: p = 1·(1 − 0.001) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25;
    //         p = 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002.
    // Step 2: p = 0.899000002·0.999 = 0.898101002; m = 0.045 − 0.025 = 0.02;
    //         v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225; m̂ = 0.02/0.19 = 0.1052632;
    //         v̂ = 0.00031225/0.001999 = 0.1562031, √v̂ = 0.3952254;
    //         p = 0.898101002 − 0.1·0.1052632/0.3952254 = 0.8714673.
    const params = new Float32Array([1]);
    const opt = createAdamW([{ name: 'x', params }], { lr: 0.1, weightDecay: 0.01 });
    opt.step({ x: new Float32Array([0.5]) });
    expect(params[0]).toBeCloseTo(0.899000002, 6);
    opt.step({ x: new Float32Array([-0.25]) });
    expect(params[0]).toBeCloseTo(0.8714673, 6);
    const s = opt.getState();
    expect(s.step).toBe(2);
    expect(s.groups.x.m[0]).toBeCloseTo(0.02, 7);
    expect(s.groups.x.v[0]).toBeCloseTo(0.00031225, 9);
  });

  it('only decays when the gradient is zero (Adam step is 0/ε-guarded)', () => {
    const params = new Float32Array([2, -4]);
    const opt = createAdamW([{ name: 'x', params }], { lr: 0.5, weightDecay: 0.1 });
    opt.step({ x: new Float32Array(2) });
    expect([...params]).toEqual([expect.closeTo(2 * 0.95, 6), expect.closeTo(-4 * 0.95, 6)]);
  });
});

describe('AdamW groups and sparse rows', () => {
  it('honours per-group weight decay and lr scale', () => {
    const a = new Float32Array([1]);
    const b = new Float32Array([1]);
    const opt = createAdamW(
      [
        { name: 'a', params: a },
        { name: 'b', params: b, weightDecay: 0, lrScale: 2 },
      ],
      { lr: 0.1, weightDecay: 0.5 },
    );
    opt.step({ a: new Float32Array([0]), b: new Float32Array([1]) });
    expect(a[0]).toBeCloseTo(1 - 0.1 * 0.5, 6); // decay only
    expect(b[0]).toBeCloseTo(1 - 0.2, 6); // first Adam step moves by lr·lrScale, no decay
  });

  it('updates only the rows given, each with its own bias correction (lazy Adam)', () => {
    const D = 2;
    const params = new Float32Array([1, 1, 1, 1, 1, 1]); // 3 rows × 2
    const opt = createAdamW([{ name: 'U', params, rowSize: D }], { lr: 0.1, weightDecay: 0 });
    for (let i = 0; i < 5; i++) opt.step({ U: { rows: [0], values: new Float32Array([1, -1]) } });
    expect([...params.subarray(2)]).toEqual([1, 1, 1, 1]); // rows 1, 2 untouched
    // Row 2's first update at global step 6 is a fresh Adam step: exactly lr in the sign direction.
    opt.step({ U: { rows: [2], values: new Float32Array([3, -0.5]) } });
    expect(params[4]).toBeCloseTo(0.9, 6);
    expect(params[5]).toBeCloseTo(1.1, 6);
    expect([...opt.getState().groups.U.rowSteps]).toEqual([5, 0, 1]);
    expect(opt.stepCount).toBe(6);
  });

  it('sums the gradients of a repeated row', () => {
    const p1 = new Float32Array([0, 0, 0, 0]);
    const p2 = new Float32Array([0, 0, 0, 0]);
    const o1 = createAdamW([{ name: 'U', params: p1, rowSize: 2 }], { lr: 0.1 });
    const o2 = createAdamW([{ name: 'U', params: p2, rowSize: 2 }], { lr: 0.1 });
    o1.step({ U: { rows: [1, 1], values: new Float32Array([1, 2, 3, -4]) } });
    o2.step({ U: { rows: [1], values: new Float32Array([4, -2]) } });
    expect([...p1]).toEqual([...p2]);
  });

  it('a dense gradient equals a sparse gradient over all rows', () => {
    const rng = createRng(7);
    const init = Float32Array.from({ length: 12 }, () => rng.next() - 0.5);
    const dense = init.slice();
    const sparse = init.slice();
    const od = createAdamW([{ name: 'U', params: dense, rowSize: 3 }], { lr: 0.01 });
    const os = createAdamW([{ name: 'U', params: sparse, rowSize: 3 }], { lr: 0.01 });
    for (let t = 0; t < 4; t++) {
      const g = Float32Array.from({ length: 12 }, () => rng.next() - 0.5);
      od.step({ U: g });
      os.step(new Map([['U', { rows: [3, 0, 2, 1], values: Float32Array.from([...g.subarray(9), ...g.subarray(0, 3), ...g.subarray(6, 9), ...g.subarray(3, 6)]) }]]));
    }
    expect([...sparse]).toEqual([...dense]);
  });
});

describe('AdamW state', () => {
  it('round-trips: resuming from saved state continues identically', () => {
    const gradAt = (t: number) => new Float32Array([Math.sin(t), Math.cos(t), 0.3]);
    const ref = new Float32Array([1, 2, 3]);
    const refOpt = createAdamW([{ name: 'x', params: ref }], { lr: 0.05 });
    for (let t = 0; t < 6; t++) refOpt.step({ x: gradAt(t) });

    const a = new Float32Array([1, 2, 3]);
    const optA = createAdamW([{ name: 'x', params: a }], { lr: 0.05 });
    for (let t = 0; t < 3; t++) optA.step({ x: gradAt(t) });
    const saved: AdamWState = optA.getState();
    const b = a.slice();
    const optB = createAdamW([{ name: 'x', params: b }], { lr: 0.05 }, structuredClone(saved));
    for (let t = 3; t < 6; t++) optB.step({ x: gradAt(t) });
    expect([...b]).toEqual([...ref]);
    expect(optB.stepCount).toBe(6);
    expect(saved.groups.x.m).toBeInstanceOf(Float32Array);
  });

  it('getState is a copy', () => {
    const opt = createAdamW([{ name: 'x', params: new Float32Array([1]) }], { lr: 0.1 });
    const s = opt.getState();
    opt.step({ x: new Float32Array([1]) });
    expect(s.groups.x.m[0]).toBe(0);
  });

  it('rejects state of another shape', () => {
    const opt = createAdamW([{ name: 'x', params: new Float32Array(2) }], { lr: 0.1 });
    const other = createAdamW([{ name: 'x', params: new Float32Array(3) }], { lr: 0.1 }).getState();
    expect(() => opt.setState(other)).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
  });

  it('grows a group and keeps existing moments', () => {
    const params = new Float32Array([1, 1]);
    const opt = createAdamW([{ name: 'U', params, rowSize: 1 }], { lr: 0.1, weightDecay: 0 });
    opt.step({ U: new Float32Array([1, 1]) });
    const grown = new Float32Array(4);
    grown.set(params);
    opt.replaceParams('U', grown);
    opt.step({ U: { rows: [3], values: new Float32Array([1]) } });
    expect(grown[3]).toBeCloseTo(-0.1, 6);
    expect([...opt.getState().groups.U.rowSteps]).toEqual([1, 1, 0, 1]);
    expect(() => opt.replaceParams('U', new Float32Array(2))).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
  });
});

describe('AdamW validation', () => {
  it('rejects bad gradients before changing anything', () => {
    const x = new Float32Array([1, 1]);
    const U = new Float32Array([1, 1, 1, 1]);
    const opt = createAdamW([{ name: 'x', params: x }, { name: 'U', params: U, rowSize: 2 }], { lr: 0.1 });
    const bad: Array<Record<string, Gradient>> = [
      { x: new Float32Array(3) },
      { nope: new Float32Array(2) },
      { U: { rows: [2], values: new Float32Array(2) } },
      { U: { rows: [0], values: new Float32Array(3) } },
    ];
    for (const g of bad) expect(() => opt.step({ x: new Float32Array([1, 1]), ...g })).toThrow(expect.objectContaining({ code: 'RCL_INPUT_INVALID' }));
    expect(() => opt.step({ x: new Float32Array([1, 1]), U: new Float32Array([0, NaN, 0, 0]) })).toThrow(
      expect.objectContaining({ code: 'RCL_DIVERGED' }),
    );
    expect([...x, ...U]).toEqual([1, 1, 1, 1, 1, 1]);
    expect(opt.stepCount).toBe(0);
  });
});

describe('AdamW convergence', () => {
  it('minimises a quadratic with sparse row gradients', () => {
    // f(U) = ½ Σ_r a_r ‖U_r − c_r‖², V = 6 rows × D = 4, each step touching a random half of the rows.
    const V = 6;
    const D = 4;
    const rng = createRng(42);
    const a = Float64Array.from({ length: V }, () => 0.5 + 4 * rng.next());
    const c = Float64Array.from({ length: V * D }, () => 4 * rng.next() - 2);
    const U = new Float32Array(V * D);
    const opt = createAdamW([{ name: 'U', params: U, rowSize: D }], { lr: 0.1, weightDecay: 0 });
    for (let t = 0; t < 1500; t++) {
      const rows = rng.shuffle([...Array(V).keys()]).slice(0, V / 2);
      const values = new Float32Array(rows.length * D);
      rows.forEach((r, k) => {
        for (let j = 0; j < D; j++) values[k * D + j] = a[r] * (U[r * D + j] - c[r * D + j]);
      });
      opt.step({ U: { rows, values } }, { lr: 0.1 / (1 + t / 100) });
    }
    for (let i = 0; i < V * D; i++) expect(Math.abs(U[i] - c[i])).toBeLessThan(1e-2);
  });
});
