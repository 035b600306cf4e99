/**
 * The only loader of the native addon (native/build/Release/r3kernels.node), as lmdb-js `native.js`
 * is for its binary. Returns undefined when the addon is absent, fails to load or has another ABI;
 * it never throws and never chooses between native and reference (that is kernels/index.ts).
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import type { Kernels } from './reference.ts';

/** ABI version this TS side expects; must equal `kAbiVersion` in native/src/r3kernels.cc. */
export const KERNELS_ABI_VERSION = 1;

/** Where native/build.mjs leaves the addon, relative to this file (src/kernels/). */
const ADDON_URL = new URL('../../native/build/Release/r3kernels.node', import.meta.url);

/** What the addon exports: the kernels plus its ABI version. */
interface Addon extends Kernels {
  abiVersion: number;
}

/** Why the last {@link loadNativeKernels} call returned undefined (for logs and `/health`). */
export interface NativeLoadFailure {
  reason: 'missing' | 'load-failed' | 'abi-mismatch';
  /** Path of the addon looked for. */
  path: string;
  cause?: unknown;
}

let lastFailure: NativeLoadFailure | undefined;

/**
 * Loads the addon and returns its kernels, or undefined (see {@link nativeLoadFailure}).
 * Loading is synchronous and cached by Node, so repeated calls return the same functions.
 */
export function loadNativeKernels(): Kernels | undefined {
  const path = fileURLToPath(ADDON_URL);
  lastFailure = undefined;
  if (!existsSync(path)) {
    lastFailure = { reason: 'missing', path };
    return undefined;
  }
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (cause) {
    // e.g. built for another platform or a Node without the required NAPI_VERSION.
    lastFailure = { reason: 'load-failed', path, cause };
    return undefined;
  }
  if (addon.abiVersion !== KERNELS_ABI_VERSION) {
    // A stale build from an older checkout: rebuild with `node native/build.mjs`.
    lastFailure = { reason: 'abi-mismatch', path, cause: { found: addon.abiVersion, expected: KERNELS_ABI_VERSION } };
    return undefined;
  }
  const { scanTopK, matmulABt, accumulateBm25, topM, resetAt } = addon;
  return Object.freeze({ scanTopK, matmulABt, accumulateBm25, topM, resetAt });
}

/** The reason the most recent {@link loadNativeKernels} call found no usable addon, if any. */
export function nativeLoadFailure(): NativeLoadFailure | undefined {
  return lastFailure;
}
