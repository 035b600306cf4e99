/**
 * Durable lineage of retriever parameters θ per collection: immutable versions, each stored as a
 * delta against its parent (rows of big matrices that changed, small tensors whole), plus the
 * current-version pointer and the latest optimizer checkpoint. Bytes and keys only; what the
 * tensors mean belongs to the encoder.
 */
import type { CollectionDbs } from './store.ts';

/** Rows of a row-major matrix: `rows[i]` holds `values[i·rowSize … (i+1)·rowSize)`. */
export interface RowDelta {
  rows: Uint32Array;
  values: Float32Array;
  rowSize: number;
}

/** One version as stored. `tensors` replace the parent's whole; `rows` patch the parent's rows. */
export interface VersionRecord {
  version: number;
  parent: number | null;
  createdAt: string;
  /** What produced it: 'init', 'rcl-step', 'rollback', 'model-swap', … */
  origin: string;
  /** Free-form facts for `GET /retriever` (loss, step counters, model hash, configuration). */
  info: Record<string, unknown>;
  tensors: Record<string, Float32Array>;
  rows: Record<string, RowDelta>;
}

const CURRENT_KEY = ['retriever', 'current'];
const versionKey = (v: number) => ['retriever', 'version', v];
const CHECKPOINT_KEY = ['retriever', 'optimizer'];

/** Versions of one collection's retriever. */
export class RetrieverStore {
  private readonly dbs: CollectionDbs;

  constructor(dbs: CollectionDbs) {
    this.dbs = dbs;
  }

  current(): number | undefined {
    return this.dbs.state.get(CURRENT_KEY) as number | undefined;
  }

  get(version: number): VersionRecord | undefined {
    return this.dbs.state.get(versionKey(version)) as VersionRecord | undefined;
  }

  /** All versions, oldest first, without their tensors. */
  list(): Array<Omit<VersionRecord, 'tensors' | 'rows'>> {
    const out: Array<Omit<VersionRecord, 'tensors' | 'rows'>> = [];
    for (const { value } of this.dbs.state.getRange({ start: versionKey(0), end: ['retriever', 'version', Number.MAX_SAFE_INTEGER] })) {
      const { tensors: _t, rows: _r, ...meta } = value as VersionRecord;
      out.push(meta);
    }
    return out;
  }

  /** The chain root → version (inclusive). */
  lineage(version: number): VersionRecord[] {
    const chain: VersionRecord[] = [];
    for (let v: number | null = version; v !== null; ) {
      const rec = this.get(v);
      if (!rec) break;
      chain.push(rec);
      v = rec.parent;
    }
    return chain.reverse();
  }

  /** One past the newest stored version: reads the last version key only, no record. */
  nextVersion(): number {
    // Newest first; `end` (exclusive) is the bare prefix, which sorts before every version key.
    for (const key of this.dbs.state.getKeys({ start: ['retriever', 'version', Number.MAX_SAFE_INTEGER], end: ['retriever', 'version'], reverse: true, limit: 1 })) {
      return (key as [string, string, number])[2] + 1;
    }
    return 0;
  }

  /**
   * Writes a version, optionally makes it current, and optionally writes an optimizer checkpoint,
   * all in one transaction: after a crash either all of it or none of it is there.
   */
  async publish(record: VersionRecord, opts: { makeCurrent: boolean; checkpoint?: unknown }): Promise<void> {
    await this.dbs.state.transaction(() => {
      void this.dbs.state.put(versionKey(record.version), record);
      if (opts.makeCurrent) void this.dbs.state.put(CURRENT_KEY, record.version);
      if (opts.checkpoint !== undefined) void this.dbs.state.put(CHECKPOINT_KEY, opts.checkpoint);
    });
  }

  async setCurrent(version: number, checkpoint?: unknown): Promise<void> {
    await this.dbs.state.transaction(() => {
      void this.dbs.state.put(CURRENT_KEY, version);
      if (checkpoint !== undefined) void this.dbs.state.put(CHECKPOINT_KEY, checkpoint);
    });
  }

  /** The optimizer state saved with the latest published step. */
  checkpoint(): unknown {
    return this.dbs.state.get(CHECKPOINT_KEY);
  }

  /** Arbitrary per-collection training state (RCL pools, score cache), by key. */
  getState(key: Array<string | number>): unknown {
    return this.dbs.state.get(key);
  }

  /** Values whose key starts with `prefix`, in key order. */
  rangeState(prefix: Array<string | number>): unknown[] {
    const out: unknown[] = [];
    for (const { value } of this.dbs.state.getRange({ start: prefix, end: [...prefix, '\uffff'] })) out.push(value);
    return out;
  }

  async putState(entries: Array<[Array<string | number>, unknown]>): Promise<void> {
    await this.dbs.state.transaction(() => {
      for (const [k, v] of entries) void this.dbs.state.put(k, v);
    });
  }
}
