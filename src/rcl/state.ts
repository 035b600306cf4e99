/**
 * Durable RCL state of a collection: per (environment, query) the offline pools and thresholds,
 * the score cache (scored once, kept forever, keyed by the environment's fingerprint), and the
 * training counters. Stored in the collection's `state` database next to θ's lineage.
 */
import type { RetrieverStore } from '../index/retriever-store.ts';
import type { AnswerScore } from './environments/types.ts';
import type { QueryThresholds } from './thresholds.ts';

/** A registered training query and its offline outcome. */
export interface QueryRecord {
  id: string;
  text: string;
  answers: string[];
  /** Closed-set tasks: the choices and the gold choice index. */
  choices?: string[];
  gold?: number;
  thresholds: QueryThresholds;
  updatedAt: string;
}

/** What online labelling met: documents labelled, fallbacks to offline pools, documents scored. */
export interface LabelTally {
  positives: number;
  negatives: number;
  excluded: number;
  fallbacks: number;
  newlyScored: number;
}

/** Training counters of a collection, summed over its steps. */
export interface Counters extends LabelTally {
  steps: number;
  triples: number;
  rngState: number;
}

const EMPTY: Counters = { steps: 0, triples: 0, positives: 0, negatives: 0, excluded: 0, fallbacks: 0, newlyScored: 0, rngState: 0 };

export class RclState {
  private readonly store: RetrieverStore;

  constructor(store: RetrieverStore) {
    this.store = store;
  }

  query(environment: string, id: string): QueryRecord | undefined {
    return this.store.getState(['rcl', 'query', environment, id]) as QueryRecord | undefined;
  }

  /** Every query registered under an environment. */
  queries(environment: string): QueryRecord[] {
    return this.store.rangeState(['rcl', 'query', environment]) as QueryRecord[];
  }

  async putQueries(environment: string, records: QueryRecord[]): Promise<void> {
    await this.store.putState(records.map((r) => [['rcl', 'query', environment, r.id], r]));
  }

  cached(fingerprint: string, queryId: string, docId: string): AnswerScore[] | undefined {
    return this.store.getState(['rcl', 'score', fingerprint, queryId, docId]) as AnswerScore[] | undefined;
  }

  async putScores(fingerprint: string, entries: Array<{ queryId: string; docId: string; perAnswer: AnswerScore[] }>): Promise<void> {
    if (entries.length === 0) return;
    await this.store.putState(entries.map((e) => [['rcl', 'score', fingerprint, e.queryId, e.docId], e.perAnswer]));
  }

  counters(): Counters {
    return { ...EMPTY, ...(this.store.getState(['rcl', 'counters']) as Partial<Counters> | undefined) };
  }

  async putCounters(c: Counters): Promise<void> {
    await this.store.putState([[['rcl', 'counters'], c]]);
  }
}
