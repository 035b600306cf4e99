/**
 * A nesting-depth guard for JSON request bodies, run before `JSON.parse`: deeply nested values
 * parse fine but overflow the stack of recursive code later (msgpackr when a document's
 * metadata is stored), so they are refused up front as BODY_INVALID.
 */

/** Deepest JSON nesting accepted in a request body or an NDJSON line. */
export const MAX_JSON_DEPTH = 64;

/**
 * True when the JSON text nests arrays/objects deeper than `max`. One pass over the bytes (or UTF-16 units);
 * brackets inside strings (with backslash escapes) do not count. Malformed input is left to
 * `JSON.parse`.
 */
export function jsonTooDeep(text: Uint8Array | string, max: number = MAX_JSON_DEPTH): boolean {
  // The characters that matter are ASCII, and no UTF-8 byte or UTF-16 unit of another character
  // equals one of them: bytes and string code units scan alike, with no re-encoding.
  const isString = typeof text === 'string';
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = isString ? (text as string).charCodeAt(i) : (text as Uint8Array)[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
