/**
 * The contract between RCL and a retriever that can learn: one optimizer step on a batch of
 * (query, positive, hard negative) triples publishes a new immutable version; any version can
 * be restored. sidr-glove and onnx retrievers implement it; `rcl/` only sees this interface.
 */
import type { DocId } from '../types.ts';
import type { LateRetriever } from './searcher.ts';
import type { ProximitySetting } from './proximity.ts';

/** One training triple: DocIds are the collection's, the query as text and index term ids. */
export interface TrainTriple {
  query: { text: string; termIds: Uint32Array };
  positive: DocId;
  negative: DocId;
}

export interface TrainOptions {
  /** AdamW learning rate for this step (default: the retriever's). */
  learningRate?: number;
  /** Free-form facts recorded with the new version (step counters, rollout id). */
  info?: Record<string, unknown>;
}

export interface TrainResult {
  version: number;
  loss: number;
  /** L(E(q),E(d)), L(E(q),T(d)), L(T(q),E(d)) of DESIGN §1, and the served-score term when trained. */
  lossParts: { ee: number; et: number; te: number; served?: number };
  ms: number;
}

/** Serving settings that `POST /rcl/calibrate` fits and a version stores. */
export interface CalibratedSettings {
  /** Final-score mix γ. */
  gamma: number;
  /** Multiplier on expansion weights (sidr-glove only). */
  expansionScale?: number;
  /** Term proximity in the final mix. */
  proximity?: ProximitySetting;
  /** Weight λ of the lexical term in the final mix. */
  lexical?: number;
}

/** Version metadata as `GET /retriever` shows it. */
export interface VersionMeta {
  version: number;
  parent: number | null;
  createdAt: string;
  origin: string;
  info: Record<string, unknown>;
}

export interface TrainableRetriever extends LateRetriever {
  /** One RCL step; resolves once the new version is durable and serving. Steps never overlap. */
  train(batch: TrainTriple[], opts: TrainOptions): Promise<TrainResult>;
  /** Publishes a version with new serving settings (γ, proximity, the lexical term) and the same parameters. */
  calibrate?(settings: CalibratedSettings, info: Record<string, unknown>): Promise<VersionMeta>;
  /** Makes a stored version current again (durably). */
  rollback(version: number): Promise<void>;
  /** Current version, lineage and configuration. */
  describe(): { kind: string; current: VersionMeta; versions: VersionMeta[]; config: Record<string, unknown> };
}

/** Narrowing helper. */
export function isTrainable(r: LateRetriever | undefined): r is TrainableRetriever {
  return r !== undefined && typeof (r as TrainableRetriever).train === 'function';
}
