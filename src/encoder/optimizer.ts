/**
 * AdamW (Loshchilov & Hutter 2019, decoupled weight decay) over named Float32Array parameter
 * groups, with dense gradients or sparse row gradients for V×D matrices (lazy Adam). Owns the
 * moments and step counters and their (de)serialisation; it never computes gradients or losses.
 */
import { createError } from '../errors.ts';

/** One named tensor the optimizer updates in place. */
export interface ParamGroup {
  /** Unique name; gradients and saved state are keyed by it (e.g. `U`, `A`, `w`, `logAlpha`). */
  name: string;
  /** The parameters, updated in place. Length must be a multiple of `rowSize`. */
  params: Float32Array;
  /**
   * Row width D when the group is a V×D matrix that may receive sparse row gradients. Default:
   * `params.length` (the group is one row, so it is always updated whole).
   */
  rowSize?: number;
  /** Multiplier of the base learning rate for this group. Default 1. */
  lrScale?: number;
  /** Decoupled weight decay λ for this group; overrides `AdamWOptions.weightDecay` (e.g. 0 for idf weights). */
  weightDecay?: number;
}

/** AdamW hyper-parameters (PyTorch `torch.optim.AdamW` names and meanings). */
export interface AdamWOptions {
  /** Base learning rate. R3 used 2e-5 on BERT; the GloVe prototype 2e-3 (DESIGN §3.1). */
  lr: number;
  /** First-moment decay β₁. Default 0.9; range 0.8–0.95. */
  beta1?: number;
  /** Second-moment decay β₂. Default 0.999; range 0.98–0.9999 (lower adapts faster, noisier). */
  beta2?: number;
  /** Denominator guard ε. Default 1e-8. */
  eps?: number;
  /** Default decoupled weight decay λ: each updated element is multiplied by (1 − lr·λ). Default 0.01. */
  weightDecay?: number;
}

/** A gradient with the group's full length. */
export type DenseGradient = Float32Array | Float64Array;
/**
 * A gradient for some rows of a V×D group: `values` holds `rows.length × D` numbers, row-major in
 * the order of `rows`. A row listed twice has its gradients summed.
 */
export interface SparseRowGradient {
  rows: ArrayLike<number>;
  values: Float32Array | Float64Array;
}
/** Either form. */
export type Gradient = DenseGradient | SparseRowGradient;

/** Saved optimizer state: plain typed arrays, ready for msgpack or a binary store. */
export interface AdamWState {
  version: 1;
  /** Number of `step()` calls so far. */
  step: number;
  groups: Record<string, { m: Float32Array; v: Float32Array; rowSteps: Uint32Array }>;
}

/** An AdamW optimizer bound to its parameter groups. */
export interface AdamW {
  /** Number of `step()` calls so far (for schedules and logs). */
  readonly stepCount: number;
  /**
   * Applies one update. Groups without a gradient are left untouched. `lr` replaces the base
   * learning rate for this call (schedules, `/rcl/step`'s `learningRate`). Throws
   * `RCL_INPUT_INVALID` on a shape mismatch or unknown group and `RCL_DIVERGED` on a non-finite
   * gradient, in both cases before changing anything.
   */
  step(grads: ReadonlyMap<string, Gradient> | Readonly<Record<string, Gradient>>, opts?: { lr?: number }): void;
  /**
   * Swaps in a longer (or same-size) array for a group, e.g. after rows for new terms were appended.
   * Existing rows keep their moments; new rows start from zero moments and a zero step count.
   */
  replaceParams(name: string, params: Float32Array): void;
  /** A deep copy of the state. */
  getState(): AdamWState;
  /** Restores a state from `getState()`; group names and sizes must match. */
  setState(state: AdamWState): void;
}

interface GroupSlot {
  group: ParamGroup;
  rowSize: number;
  m: Float32Array;
  v: Float32Array;
  /** Per-row count of updates received: the t of that row's bias correction. */
  rowSteps: Uint32Array;
}

function invalid(reason: string): Error {
  return createError('RCL_INPUT_INVALID', { reason });
}

function isSparse(g: Gradient): g is SparseRowGradient {
  return !ArrayBuffer.isView(g);
}

function slotFor(group: ParamGroup): GroupSlot {
  const rowSize = group.rowSize ?? group.params.length;
  if (!Number.isInteger(rowSize) || rowSize < 1 || group.params.length % rowSize !== 0) {
    throw invalid(`group "${group.name}": length ${group.params.length} is not a multiple of rowSize ${rowSize}`);
  }
  const n = group.params.length;
  return { group, rowSize, m: new Float32Array(n), v: new Float32Array(n), rowSteps: new Uint32Array(n / rowSize) };
}

/**
 * Creates AdamW over `groups`, optionally resuming from `state`.
 *
 * Update of one touched row with gradient g (PyTorch's AdamW, per element):
 *   p ← p·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
 *   p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
 *
 * Lazy Adam for sparse row gradients: rows without a gradient in a step are not touched at all —
 * no moment decay, no weight decay, no step. Each row keeps its own step count t for the bias
 * correction, so a row behaves exactly like a fresh AdamW run over the steps in which it received
 * a gradient. This is what keeps a step O(touched rows × D) instead of O(V × D), and, unlike
 * PyTorch's SparseAdam (global t), a term met for the first time at step 1,000 gets the same
 * first update size (≈ lr) as one met at step 1. The price: weight decay only acts on rows when
 * they are trained, and moments of rarely seen rows are older than they would be under dense Adam.
 */
export function createAdamW(groups: readonly ParamGroup[], options: AdamWOptions, state?: AdamWState): AdamW {
  const beta1 = options.beta1 ?? 0.9;
  const beta2 = options.beta2 ?? 0.999;
  const eps = options.eps ?? 1e-8;
  const defaultDecay = options.weightDecay ?? 0.01;
  const slots = new Map<string, GroupSlot>();
  for (const g of groups) {
    if (slots.has(g.name)) throw invalid(`duplicate parameter group "${g.name}"`);
    slots.set(g.name, slotFor(g));
  }
  let stepCount = 0;

  /** Updates row `row` from `grad[off … off + rowSize)`. The row's step count is already advanced. */
  function updateRow(s: GroupSlot, row: number, grad: ArrayLike<number>, off: number, lr: number): void {
    const t = s.rowSteps[row];
    const decay = 1 - lr * (s.group.weightDecay ?? defaultDecay);
    const stepSize = lr / (1 - beta1 ** t);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
    const p = s.group.params;
    const m = s.m;
    const v = s.v;
    const base = row * s.rowSize;
    for (let j = 0; j < s.rowSize; j++) {
      const i = base + j;
      const g = grad[off + j];
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  }

  /** Checks one gradient against its group before anything is mutated. */
  function validate(name: string, grad: Gradient): GroupSlot {
    const s = slots.get(name);
    if (s === undefined) throw invalid(`gradient for unknown parameter group "${name}"`);
    const values = isSparse(grad) ? grad.values : grad;
    if (isSparse(grad)) {
      if (values.length !== grad.rows.length * s.rowSize) {
        throw invalid(`group "${name}": ${grad.rows.length} rows need ${grad.rows.length * s.rowSize} values, got ${values.length}`);
      }
      const nRows = s.rowSteps.length;
      for (let k = 0; k < grad.rows.length; k++) {
        const r = grad.rows[k];
        if (!Number.isInteger(r) || r < 0 || r >= nRows) throw invalid(`group "${name}": row ${r} outside [0, ${nRows})`);
      }
    } else if (values.length !== s.group.params.length) {
      throw invalid(`group "${name}": gradient length ${values.length}, parameters ${s.group.params.length}`);
    }
    for (let k = 0; k < values.length; k++) {
      if (!Number.isFinite(values[k])) throw createError('RCL_DIVERGED', {}, { details: { group: name, index: k } });
    }
    return s;
  }

  /** Sums the gradients of repeated rows so each row is stepped once. */
  function coalesce(s: GroupSlot, grad: SparseRowGradient): SparseRowGradient {
    const seen = new Map<number, number>();
    for (let k = 0; k < grad.rows.length; k++) if (!seen.has(grad.rows[k])) seen.set(grad.rows[k], seen.size);
    if (seen.size === grad.rows.length) return grad;
    const values = new Float64Array(seen.size * s.rowSize);
    for (let k = 0; k < grad.rows.length; k++) {
      const dst = seen.get(grad.rows[k])! * s.rowSize;
      for (let j = 0; j < s.rowSize; j++) values[dst + j] += grad.values[k * s.rowSize + j];
    }
    return { rows: [...seen.keys()], values };
  }

  function step(grads: ReadonlyMap<string, Gradient> | Readonly<Record<string, Gradient>>, opts: { lr?: number } = {}): void {
    const baseLr = opts.lr ?? options.lr;
    if (!(baseLr >= 0) || !Number.isFinite(baseLr)) throw invalid(`learning rate must be a finite number ≥ 0, got ${baseLr}`);
    const entries = grads instanceof Map ? [...grads.entries()] : Object.entries(grads);
    const checked = entries.map(([name, grad]) => [validate(name, grad), grad] as const);
    stepCount++;
    for (const [s, grad] of checked) {
      const lr = baseLr * (s.group.lrScale ?? 1);
      if (isSparse(grad)) {
        const g = coalesce(s, grad);
        for (let k = 0; k < g.rows.length; k++) {
          const row = g.rows[k];
          s.rowSteps[row]++;
          updateRow(s, row, g.values, k * s.rowSize, lr);
        }
      } else {
        for (let row = 0; row < s.rowSteps.length; row++) {
          s.rowSteps[row]++;
          updateRow(s, row, grad, row * s.rowSize, lr);
        }
      }
    }
  }

  function replaceParams(name: string, params: Float32Array): void {
    const s = slots.get(name);
    if (s === undefined) throw invalid(`unknown parameter group "${name}"`);
    if (params.length < s.group.params.length || params.length % s.rowSize !== 0) {
      throw invalid(`group "${name}": new length ${params.length} must be ≥ ${s.group.params.length} and a multiple of ${s.rowSize}`);
    }
    const grown = slotFor({ ...s.group, params, rowSize: s.rowSize });
    grown.m.set(s.m);
    grown.v.set(s.v);
    grown.rowSteps.set(s.rowSteps);
    slots.set(name, grown);
  }

  function getState(): AdamWState {
    const out: AdamWState = { version: 1, step: stepCount, groups: {} };
    for (const [name, s] of slots) out.groups[name] = { m: s.m.slice(), v: s.v.slice(), rowSteps: s.rowSteps.slice() };
    return out;
  }

  function setState(saved: AdamWState): void {
    if (saved.version !== 1) throw invalid(`unsupported optimizer state version ${String(saved.version)}`);
    for (const [name, s] of slots) {
      const g = saved.groups[name];
      if (g === undefined) throw invalid(`saved optimizer state lacks group "${name}"`);
      if (g.m.length !== s.m.length || g.v.length !== s.v.length || g.rowSteps.length !== s.rowSteps.length) {
        throw invalid(`saved optimizer state for "${name}" has other sizes than the parameters`);
      }
    }
    for (const [name, s] of slots) {
      const g = saved.groups[name];
      s.m.set(g.m);
      s.v.set(g.v);
      s.rowSteps.set(g.rowSteps);
    }
    stepCount = saved.step;
  }

  if (state !== undefined) setState(state);
  return {
    get stepCount() {
      return stepCount;
    },
    step,
    replaceParams,
    getState,
    setState,
  };
}
