/**
 * Kernel entry point: picks the native addon or the TS reference once, at import, and re-exports
 * the chosen functions (msgpackr `node-index.js`). The one reader of process.env outside main.ts:
 * the kill switch must work before any config exists. Must not load native/ itself (binding.ts does).
 */

import { loadNativeKernels, nativeLoadFailure } from './binding.ts';
import { referenceKernels, type Kernels } from './reference.ts';

export { KERNEL_ARG_ERROR, referenceKernels, type Kernels } from './reference.ts';
export { nativeLoadFailure, type NativeLoadFailure } from './binding.ts';

/** Env var that forces the reference kernels when set to `1` or `true` (the addon is then not loaded). */
export const NATIVE_DISABLED_ENV = 'R3SERVE_NATIVE_DISABLED';

/** Result of {@link chooseKernels}. */
export interface KernelChoice {
  kernels: Kernels;
  /** True when `kernels` is the native addon. */
  native: boolean;
}

/** True when `env` carries the kill switch. */
export function isNativeDisabled(env: Readonly<Record<string, string | undefined>>): boolean {
  const v = env[NATIVE_DISABLED_ENV]?.trim().toLowerCase();
  return v === '1' || v === 'true';
}

/**
 * Pure chooser: the native kernels when available and not disabled by `env`, else the reference.
 *
 * @param env - environment to read the kill switch from (process.env at import).
 * @param native - the loaded addon's kernels, or undefined when there is none.
 */
export function chooseKernels(env: Readonly<Record<string, string | undefined>>, native: Kernels | undefined): KernelChoice {
  if (native === undefined || isNativeDisabled(env)) return { kernels: referenceKernels, native: false };
  return { kernels: native, native: true };
}

/**
 * The addon's kernels, or undefined when it is not built, fails to load, or the kill switch is set
 * (see {@link nativeLoadFailure} for why). Tests compare it against {@link referenceKernels}.
 */
export const nativeKernels: Kernels | undefined = isNativeDisabled(process.env) ? undefined : loadNativeKernels();

const chosen = chooseKernels(process.env, nativeKernels);

/** Whether the exported kernels are the native ones (false: pure TS, correct but slower). */
export function isNativeEnabled(): boolean {
  return chosen.native;
}

/** The chosen implementation as one object (for `describe.each` and dependency injection). */
export const kernels: Kernels = chosen.kernels;

/** Vocabulary-wide expansion top-k: see {@link Kernels.scanTopK}. */
export const scanTopK: Kernels['scanTopK'] = kernels.scanTopK;
/** `out = a · bᵀ`: see {@link Kernels.matmulABt}. */
export const matmulABt: Kernels['matmulABt'] = kernels.matmulABt;
/** One BM25 tf tier into an accumulator: see {@link Kernels.accumulateBm25}. */
export const accumulateBm25: Kernels['accumulateBm25'] = kernels.accumulateBm25;
/** Top-m over touched candidates: see {@link Kernels.topM}. */
export const topM: Kernels['topM'] = kernels.topM;
/** Clear an accumulator at touched candidates: see {@link Kernels.resetAt}. */
export const resetAt: Kernels['resetAt'] = kernels.resetAt;
