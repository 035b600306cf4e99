/**
 * Identities and interfaces shared across folders. Owns no behaviour: plain types only,
 * so every layer can import it without pulling in a library.
 */

/** Dense internal document id (uint32); the member type of every roaring bitmap. Never exposed. */
export type DocId = number;
/** Dense per-collection term id (uint32), assigned append-only by the term dictionary. */
export type TermId = number;
/** A relevance score. */
export type Score = number;

/** One analysed token: the index term, whether it is a stop word, and the surface form it came from. */
export interface Token {
  /** Index term (lower-cased normal form, stemmed when the analyzer stems). */
  term: string;
  /** Lower-cased surface form before stemming (the GloVe lookup key). */
  surface: string;
  /** True for stop words: kept in the index, but matched exactly only by semantic models. */
  stop: boolean;
}

/** text → token sequence. Frozen per collection: it defines the bag of tokens T(x). */
export interface Analyzer {
  readonly name: string;
  /** Options that decide the on-disk format (compared with the store's `meta` on open). */
  readonly options: Readonly<Record<string, unknown>>;
  analyze(text: string): Token[];
  /** Optional fast path for bulk analysis (same tokens as `analyze`, in the batch format). */
  analyzeBatch?(texts: string[]): AnalyzedBatch;
}

/**
 * Analysed texts in bulk: the batch's distinct terms once (with the first surface form and stop
 * flag seen, in order of first occurrence), and each text as indices into them. Far cheaper to
 * post between threads, and the indexer then maps a few thousand distinct terms to TermIds
 * instead of hashing every token.
 */
export interface AnalyzedBatch {
  terms: string[];
  surfaces: string[];
  stops: Uint8Array;
  docs: Uint32Array[];
}

/** A document as the user gives it. */
export interface DocumentInput {
  id: string;
  title?: string;
  text: string;
  metadata?: Record<string, unknown>;
}

/** A sparse vector over term ids: ids ascending-unique, weights aligned. */
export interface SparseVector {
  ids: Uint32Array;
  weights: Float32Array;
}

/** One text encoded for a transformer: `[CLS] pieces… [SEP]`, unpadded (batches pad to their longest). */
export interface SubwordEncoding {
  ids: number[];
  /** All 1: padding is added at batch time. */
  attentionMask: number[];
  tokens: string[];
}

/**
 * What an encoder needs from a subword tokenizer. Built in `analysis/` (WordPiece) and handed to
 * `encoder/` as an argument, so the two folders never import each other.
 */
export interface SubwordTokenizer {
  /** Largest id + 1 (ids need not be contiguous in a tokenizer.json). */
  readonly vocabSize: number;
  readonly padId: number;
  /** Ids with no lexical content ([PAD], [CLS], [SEP], [MASK]); [UNK] is not among them. */
  readonly specialIds: ReadonlySet<number>;
  /** `[CLS] pieces [SEP]`, pieces truncated so the whole fits in `maxLength` (≥ 2) tokens. */
  encode(text: string, maxLength: number): SubwordEncoding;
}
