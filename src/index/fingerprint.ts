/**
 * A checksum over one collection's parameter-free index (terms, postings, filters, lengths,
 * forward store, DocId map) as stored: benches and tests use it to show that training and model
 * swaps never touch T(D). Reads only; knows bytes and keys, not what they mean.
 */
import { createHash } from 'node:crypto';
import type { CollectionDbs } from './store.ts';

/** The databases that make up the bag-of-tokens index, hashed in this order. */
export const INDEX_DBS = ['terms', 'postings', 'filters', 'lengths', 'forward', 'ids'] as const;

/** What {@link indexFingerprint} reports. */
export interface IndexFingerprint {
  /** Entries hashed, over all databases. */
  entries: number;
  /** Bytes of the entries' keys (as JSON) and values (as stored). */
  bytes: number;
  /** sha256 (hex) over every entry of every database, in key order. */
  sha256: string;
  /** Per database: entries and bytes. */
  dbs: Record<(typeof INDEX_DBS)[number], { entries: number; bytes: number }>;
}

/**
 * Hashes every entry of the index databases of one collection: keys as JSON, values as the bytes
 * stored (`getBinary`, not decoded). Two equal fingerprints mean byte-identical terms, postings,
 * filters, lengths, forward store and DocId map. Cost: one full scan, O(index size).
 */
export function indexFingerprint(dbs: Pick<CollectionDbs, (typeof INDEX_DBS)[number]>): IndexFingerprint {
  const h = createHash('sha256');
  let entries = 0;
  let bytes = 0;
  const per = {} as IndexFingerprint['dbs'];
  for (const name of INDEX_DBS) {
    const db = dbs[name] as unknown as { getRange(opts: object): Iterable<{ key: unknown }>; getBinary(key: unknown): Uint8Array | undefined };
    let n = 0;
    let b = 0;
    h.update(`\u0000db:${name}\u0000`);
    for (const { key } of db.getRange({})) {
      const k = Buffer.from(JSON.stringify(key), 'utf8');
      const v = db.getBinary(key) ?? new Uint8Array(0);
      // Frame each part with its length so that no two different entry lists hash alike.
      h.update(`${k.length}:`).update(k).update(`${v.length}:`).update(v);
      n++;
      b += k.length + v.length;
    }
    per[name] = { entries: n, bytes: b };
    entries += n;
    bytes += b;
  }
  return { entries, bytes, sha256: h.digest('hex'), dbs: per };
}
