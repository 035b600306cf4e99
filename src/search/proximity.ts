/**
 * The parameter-free lexical terms of late search's final mix: term proximity (how much of the
 * query one short stretch of a document covers) and the lexical term (BM25 of the query's own
 * terms over exact term frequencies). Both read only idf weights and a document's token sequence
 * (its exact word forms, see `exact-forms.ts`), so they never need training, but their weights in
 * the mix (and proximity's window) are serving settings that `POST /rcl/calibrate` can fit from
 * environment feedback. Tokens are plain ids: the functions only compare them.
 */
import { saturation, type Bm25Params } from './bm25.ts';

/** Term proximity's place in the served mix: its weight π (0: off) and window, in term positions. */
export interface ProximitySetting {
  weight: number;
  window: number;
}

/** The window when only a weight is configured. */
export const DEFAULT_PROXIMITY_WINDOW = 8;

/** Proximity off, as a version without a calibrated setting serves it. */
export const PROXIMITY_OFF: Readonly<ProximitySetting> = { weight: 0, window: DEFAULT_PROXIMITY_WINDOW };

/** The setting as a version stores it: one tensor [π, window]. */
export function proximityTensor(p: ProximitySetting): Float32Array {
  return Float32Array.of(p.weight, p.window);
}

/** The setting a version's tensor holds (undefined: none stored). */
export function proximityFromTensor(t: Float32Array | undefined): ProximitySetting | undefined {
  return t ? { weight: t[0], window: t[1] } : undefined;
}

/**
 * The best window of a document: the largest Σ weight(v) over the distinct query terms v that
 * occur together within `window` consecutive positions of `tokens`. 0 when no query term occurs.
 */
export function proximityScore(tokens: ArrayLike<number>, weights: ReadonlyMap<number, number>, window: number): number {
  const inside = new Map<number, number>();
  let sum = 0;
  let best = 0;
  // Positions of query terms only: the window is [positions[i] − window + 1, positions[i]].
  const positions: number[] = [];
  for (let p = 0; p < tokens.length; p++) if (weights.has(tokens[p])) positions.push(p);
  let start = 0;
  for (const p of positions) {
    const t = tokens[p];
    const n = inside.get(t) ?? 0;
    if (n === 0) sum += weights.get(t)!;
    inside.set(t, n + 1);
    while (positions[start] <= p - window) {
      const old = tokens[positions[start++]];
      const m = inside.get(old)! - 1;
      inside.set(old, m);
      if (m === 0) sum -= weights.get(old)!;
    }
    if (sum > best) best = sum;
  }
  return best;
}

/**
 * The lexical term of the mix: BM25 of the query's non-stop terms over the document's exact term
 * frequencies, Σ weight(v)·saturation(tf_v, |d|). Unlike the first stage it has no expansions, no
 * tf tiers and no trained weights, so it keeps the lexical evidence that training moves away from.
 */
export function lexicalScore(tokens: ArrayLike<number>, weights: ReadonlyMap<number, number>, avgdl: number, params: Bm25Params): number {
  const tf = new Map<number, number>();
  for (let p = 0; p < tokens.length; p++) if (weights.has(tokens[p])) tf.set(tokens[p], (tf.get(tokens[p]) ?? 0) + 1);
  let sum = 0;
  for (const [t, n] of tf) sum += weights.get(t)! * saturation(n, tokens.length, avgdl, params);
  return sum;
}

/** Both lexical terms of a list of documents: proximity per window, the lexical term when asked for. */
export interface LexicalFeatures {
  proximity: Float64Array[];
  lexical?: Float64Array;
}

/**
 * Both lexical terms of each document's tokens against one query's `weights`: proximity for each
 * of `windows`, and the lexical term when `lexical` gives its BM25 statistics (else not computed).
 */
export function lexicalFeaturesOf(
  docs: readonly ArrayLike<number>[],
  weights: ReadonlyMap<number, number>,
  windows: readonly number[],
  lexical?: { avgdl: number; params: Bm25Params },
): LexicalFeatures {
  const proximity = windows.map((window) => Float64Array.from(docs, (tokens) => proximityScore(tokens, weights, window)));
  return lexical ? { proximity, lexical: Float64Array.from(docs, (tokens) => lexicalScore(tokens, weights, lexical.avgdl, lexical.params)) } : { proximity };
}
