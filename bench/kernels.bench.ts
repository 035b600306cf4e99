/**
 * Kernel benches: native addon against the TS reference at served sizes. Data is built once at
 * module scope; every result goes to `consume()`. Run: npx vitest bench --run bench/kernels.bench.ts
 * Native entries are skipped (not failed) when native/ is not built.
 */

import { bench, describe } from 'vitest';

import { nativeKernels, referenceKernels, type Kernels } from '../src/kernels/index.ts';
import { createRng as createSeededRng } from '../src/rcl/rng.ts';

const D = 100; // GloVe dimension of the sidr-glove encoder (DESIGN §3.1)
const K_EXP = 32; // expansions kept per query term
const M_TOP = 20; // first-stage candidates handed to the re-ranker
const POSTING = 100_000; // docs in one posting list
const COLLECTION = 1_000_000; // DocId space of the accumulator

/** Result sink so no call can be optimised away. */
export let sink = 0;
function consume(x: number): void {
  sink = (sink + x) | 0;
}

/** mulberry32 from `rcl/rng.ts` with its state set to `seed`: uniform in [0, 1), reproducible. */
function rng(seed: number): () => number {
  return createSeededRng(0, seed >>> 0).next;
}

/** V random unit rows (isotropic, so cosines to h are small: pruning skips most exp() calls). */
function scanData(V: number, seed: number) {
  const r = rng(seed);
  const un = new Float32Array(V * D);
  for (let v = 0; v < V; v++) {
    let norm = 0;
    for (let j = 0; j < D; j++) norm += (un[v * D + j] = r() - 0.5) ** 2;
    const inv = 1 / Math.sqrt(norm);
    for (let j = 0; j < D; j++) un[v * D + j] *= inv;
  }
  const h = un.slice(0, D); // query vector = an existing term, as for an in-vocabulary query word
  const w = Float32Array.from({ length: V }, () => 1 + r() * 9); // idf-like
  const skip = new Uint8Array(V);
  skip[0] = 1; // the query term itself
  return { un, h, w, skip, V };
}

const scans = [scanData(30_000, 1), scanData(300_000, 2)];
const outIds = new Uint32Array(Math.max(K_EXP, M_TOP));
const outScores = new Float32Array(Math.max(K_EXP, M_TOP));

// A 100k posting over a 1M-doc collection, ascending, with per-doc lengths.
const r = rng(3);
const docLen = Uint32Array.from({ length: COLLECTION }, () => 50 + Math.floor(r() * 450));
const posting = new Uint32Array(POSTING);
const GAP = COLLECTION / POSTING; // one doc drawn from each block of GAP ids: ascending and in range
for (let i = 0; i < POSTING; i++) posting[i] = i * GAP + Math.floor(r() * GAP);
const acc = new Float32Array(COLLECTION);
const scored = Float32Array.from({ length: COLLECTION }, () => r() * 30);

// Cosine matrix: 64 document terms × 32 query-support terms.
const mm = { a: Float32Array.from({ length: 64 * D }, r), b: Float32Array.from({ length: 32 * D }, r), out: new Float32Array(64 * 32) };

const impls: Array<[string, Kernels | undefined]> = [
  ['native', nativeKernels],
  ['reference', referenceKernels],
];

for (const s of scans) {
  describe(`scanTopK V=${s.V / 1000}k D=${D} k=${K_EXP}`, () => {
    for (const [name, K] of impls) {
      bench.skipIf(!K)(`${name} scanTopK V=${s.V / 1000}k`, () => {
        consume(K!.scanTopK(s.un, D, s.h, s.w, 10, K_EXP, s.skip, outIds, outScores));
      });
    }
  });
}

describe(`accumulateBm25 posting=${POSTING / 1000}k`, () => {
  for (const [name, K] of impls) {
    bench.skipIf(!K)(`${name} accumulateBm25 ${POSTING / 1000}k`, () => {
      K!.accumulateBm25(acc, posting, docLen, 1.7, 2, 1, 1.2, 0.75, 275);
      consume(acc[posting[0]]);
    });
  }
});

describe(`topM candidates=${POSTING / 1000}k m=${M_TOP}`, () => {
  for (const [name, K] of impls) {
    bench.skipIf(!K)(`${name} topM ${POSTING / 1000}k m=${M_TOP}`, () => {
      consume(K!.topM(scored, posting, M_TOP, outIds, outScores));
    });
  }
});

describe(`resetAt candidates=${POSTING / 1000}k`, () => {
  for (const [name, K] of impls) {
    bench.skipIf(!K)(`${name} resetAt ${POSTING / 1000}k`, () => {
      K!.resetAt(acc, posting);
      consume(acc.length);
    });
  }
});

describe(`matmulABt 64×32 k=${D}`, () => {
  for (const [name, K] of impls) {
    bench.skipIf(!K)(`${name} matmulABt 64×32×${D}`, () => {
      K!.matmulABt(mm.a, mm.b, 64, 32, D, mm.out);
      consume(mm.out[0]);
    });
  }
});
