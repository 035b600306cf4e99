/**
 * The one msgpackr `Packr` and the roaring (de)serialisation calls, pinned next to FORMAT_VERSION.
 * Anything that changes bytes on disk changes FORMAT_VERSION.
 */
import { Packr } from 'msgpackr';
import roaring from 'roaring';

const { RoaringBitmap32 } = roaring;
export type Bitmap = InstanceType<typeof RoaringBitmap32>;
export { RoaringBitmap32 };

/**
 * On-disk format of a data directory; checked on open (INDEX_INCOMPATIBLE for a format not
 * listed in READABLE_FORMAT_VERSIONS). 2: postings checkpointed apart from document commits
 * (`indexedTo` in a collection's counters, the `tails` database).
 */
export const FORMAT_VERSION = 2;
/** Formats this build opens (and upgrades in place): a format-1 directory has every posting stored. */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];

/**
 * msgpackr options shared by every `openDB` encoder. `moreTypes: true` is required: without it
 * msgpackr (and lmdb's copy) corrupt Float32Array/Uint32Array values.
 */
export const PACKR_OPTIONS = { moreTypes: true, structuredClone: false, useRecords: false } as const;

/** The project's only Packr instance (used outside lmdb, e.g. worker messages and checkpoints). */
export const packr = new Packr(PACKR_OPTIONS);

/** Roaring portable format: stable across roaring implementations and versions. */
export function serializeBitmap(bitmap: Bitmap): Buffer {
  return bitmap.serialize('portable') as Buffer;
}

/** Inverse of serializeBitmap. */
export function deserializeBitmap(bytes: Uint8Array): Bitmap {
  return RoaringBitmap32.deserialize(bytes, 'portable');
}

/** Members of `bitmap` within [lo, hi) as a new bitmap (one storage chunk). */
export function sliceBitmap(bitmap: Bitmap, lo: number, hi: number): Bitmap {
  // A range bitmap intersected in place: container-level work, no round trip through a JS array.
  const out = new RoaringBitmap32();
  out.addRange(lo, hi);
  out.andInPlace(bitmap);
  return out;
}

/** A Uint32Array's bytes (a view, no copy). */
export function u32Bytes(a: Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Bytes → Uint32Array (copies when misaligned, so the result never aliases an LMDB buffer). */
export function bytesU32(b: Uint8Array): Uint32Array {
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return new Uint32Array(copy.buffer, 0, b.byteLength >>> 2);
}
