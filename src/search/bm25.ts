/**
 * BM25 over tf tiers: query → weight (idf, avgdl, computed once per query) → tiny score(tf, dl)
 * with its explanation beside it (tantivy `src/query/bm25.rs`). Parameter-free with respect to θ.
 */

/** BM25 parameters. */
export interface Bm25Params {
  /**
   * Term-frequency saturation. Default 1.2; range 0.5–2.0. Higher lets repeated terms keep adding
   * score; 0 turns scoring into binary match (the `beta` mode). Robertson & Zaragoza (2009).
   */
  k1: number;
  /**
   * Length normalisation. Default 0.75; range 0–1. 0 ignores document length, 1 fully
   * normalises by it.
   */
  b: number;
}

/** Lucene's non-negative idf: ln(1 + (N − df + 0.5)/(df + 0.5)). */
export function idf(df: number, n: number): number {
  return Math.log(1 + (n - df + 0.5) / (df + 0.5));
}

/**
 * Saturated term frequency tf·(k1+1)/(tf + k1·(1 − b + b·dl/avgdl)); binary (tf > 0 → 1) when
 * k1 ≤ 0. Must agree with `kernels.accumulateBm25`.
 */
export function saturation(tf: number, dl: number, avgdl: number, p: Bm25Params): number {
  if (tf <= 0) return 0;
  if (p.k1 <= 0) return 1;
  return (tf * (p.k1 + 1)) / (tf + p.k1 * (1 - p.b + (p.b * dl) / avgdl));
}

/** Text of the formula with its values, for `explain`. */
export function explainScore(weight: number, tf: number, dl: number, avgdl: number, p: Bm25Params): string {
  const s = saturation(tf, dl, avgdl, p);
  if (p.k1 <= 0) return `${weight.toFixed(4)} · 1[tf>0]`;
  return `${weight.toFixed(4)} · ${tf}·(${p.k1}+1)/(${tf} + ${p.k1}·(1 − ${p.b} + ${p.b}·${dl}/${avgdl.toFixed(1)})) = ${(weight * s).toFixed(4)}`;
}
