/**
 * A small seeded PRNG (mulberry32) for RCL's sampling: positive draws, fallbacks, batch order.
 * Its whole state is one uint32, so it checkpoints with the optimizer. Not for cryptography.
 */

/** A seeded random source. All methods advance the same state. */
export interface Rng {
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2^32 (rejection sampling, so unbiased). */
  int(n: number): number;
  /** A uniformly chosen element; throws RangeError on an empty array. */
  pick<T>(arr: readonly T[]): T;
  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<T>(arr: T[]): T[];
  /** The current state (a uint32); `createRng(0, state)` resumes exactly here. */
  getState(): number;
  /** Replaces the state (e.g. after restoring a checkpoint). */
  setState(state: number): void;
}

/** splitmix32-style finaliser: spreads nearby seeds (1, 2, 3 …) over the state space. */
function mixSeed(seed: number): number {
  let z = (seed >>> 0) + 0x9e3779b9;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Creates a PRNG from an integer seed (taken mod 2^32), or resumes from a saved `state` when
 * given (then `seed` is ignored). Mulberry32 (Tommy Ettinger, public domain): 32-bit state,
 * period 2^32 — enough for drawing training samples, not for Monte-Carlo at scale.
 */
export function createRng(seed: number, state?: number): Rng {
  if (state === undefined && !Number.isFinite(seed)) throw new RangeError(`seed must be finite, got ${seed}`);
  let s = state !== undefined ? state >>> 0 : mixSeed(Math.trunc(seed));

  /** One mulberry32 step: a uniform uint32. */
  const nextUint32 = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };

  const int = (n: number): number => {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`int(n) needs an integer 1 ≤ n ≤ 2^32, got ${n}`);
    // Reject the top partial block of [0, 2^32) so every residue is equally likely.
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = nextUint32();
      if (x < limit) return x % n;
    }
  };

  return {
    next: () => nextUint32() / 2 ** 32,
    int,
    pick<T>(arr: readonly T[]): T {
      if (arr.length === 0) throw new RangeError('pick() from an empty array');
      return arr[int(arr.length)];
    },
    shuffle<T>(arr: T[]): T[] {
      for (let i = arr.length - 1; i > 0; i--) {
        const j = int(i + 1);
        const tmp = arr[i];
        arr[i] = arr[j];
        arr[j] = tmp;
      }
      return arr;
    },
    getState: () => s,
    setState(state: number) {
      s = state >>> 0;
    },
  };
}
