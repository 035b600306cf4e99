/**
 * Worker-thread side of sidr-glove training: holds the frozen inputs and the AdamW state, and for
 * each step computes the RCL loss and its hand-written gradient, applies AdamW, and returns the
 * updated θ with the rows that changed. Runs off the event loop so that search never waits.
 */
import { parentPort } from 'node:worker_threads';
import { createAdamW, type AdamW, type AdamWState, type Gradient, type ParamGroup } from '../encoder/optimizer.ts';
import { lossAndGrad, type LossParts, type RclTriple, type ServedObjective } from '../encoder/sidr-glove-grad.ts';
import { kernels } from '../kernels/index.ts';
import { servedWeights, type SidrFrozen, type Theta } from '../encoder/sidr-glove.ts';

export interface TrainStepMessage {
  id: number;
  frozen?: SidrFrozen;
  theta: Theta;
  /** Optimizer state to start from: a checkpoint, null for a fresh optimizer, undefined to keep the worker's. */
  optimizer?: CompactState | null;
  triples: RclTriple[];
  lr: number;
  kExp: number;
  expansionScale: number;
  /** The served first stage's tf saturation, for T(d) in L(E(q), T(d)). */
  saturation?: { k1: number; b: number; avgdl: number };
  /** The served-score family of the objective (see LossOptions.served). */
  served?: ServedObjective;
}

export interface TrainStepReply {
  id: number;
  /** h(t) = normalize(A·g(t)) for every term under the new A (rows of the vocabulary). */
  H?: Float32Array;
  /** ω = w ⊙ exp(φ·ĝ) for every term under the new θ; absent while φ = 0 (then ω is w). */
  omega?: Float32Array;
  error?: { code: string; message: string };
  loss?: number;
  parts?: LossParts;
  theta?: Theta;
  changed?: { U: Uint32Array; w: Uint32Array };
  optimizer?: CompactState;
}

/** AdamW state with only the rows that ever moved (lazy Adam leaves the rest at zero). */
export interface CompactState {
  step: number;
  groups: Record<string, { rowSize: number; size: number; rows: Uint32Array; m: Float32Array; v: Float32Array; rowSteps: Uint32Array }>;
}

/**
 * Per-group optimizer settings. Decay only on U; idf weights, A (init I) and scalars are not
 * pulled to 0. Adam moves every parameter by about lr per step whatever its scale, so groups
 * whose values are large (w ≈ idf, 1–10) or log-scalars get a larger step to move at all.
 */
export const LR_SCALE = { U: 1, A: 1, w: 25, phi: 1, logAlpha: 10, logTemperature: 10 } as const;

function groupsOf(theta: Theta): ParamGroup[] {
  return [
    { name: 'U', params: theta.U, rowSize: theta.dim, weightDecay: 0.01, lrScale: LR_SCALE.U },
    { name: 'A', params: theta.A, weightDecay: 0, lrScale: LR_SCALE.A },
    { name: 'w', params: theta.w, rowSize: 1, weightDecay: 0, lrScale: LR_SCALE.w },
    { name: 'phi', params: theta.phi, weightDecay: 0, lrScale: LR_SCALE.phi },
    { name: 'logAlpha', params: theta.logAlpha, weightDecay: 0, lrScale: LR_SCALE.logAlpha },
    { name: 'logTemperature', params: theta.logTemperature, weightDecay: 0, lrScale: LR_SCALE.logTemperature },
  ];
}

export function compactState(state: AdamWState, rowSizes: Record<string, number>): CompactState {
  const out: CompactState = { step: state.step, groups: {} };
  for (const [name, g] of Object.entries(state.groups)) {
    const rowSize = rowSizes[name] ?? g.m.length;
    const rows: number[] = [];
    for (let r = 0; r < g.rowSteps.length; r++) if (g.rowSteps[r] > 0) rows.push(r);
    const m = new Float32Array(rows.length * rowSize);
    const v = new Float32Array(rows.length * rowSize);
    rows.forEach((r, i) => {
      m.set(g.m.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize);
      v.set(g.v.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize);
    });
    out.groups[name] = { rowSize, size: g.m.length, rows: Uint32Array.from(rows), m, v, rowSteps: Uint32Array.from(rows, (r) => g.rowSteps[r]) };
  }
  return out;
}

export function expandState(c: CompactState, sizes: Record<string, number>): AdamWState {
  const state: AdamWState = { version: 1, step: c.step, groups: {} };
  for (const [name, g] of Object.entries(c.groups)) {
    const size = Math.max(sizes[name] ?? g.size, g.size);
    const m = new Float32Array(size);
    const v = new Float32Array(size);
    const rowSteps = new Uint32Array(size / g.rowSize);
    g.rows.forEach((r, i) => {
      m.set(g.m.subarray(i * g.rowSize, (i + 1) * g.rowSize), r * g.rowSize);
      v.set(g.v.subarray(i * g.rowSize, (i + 1) * g.rowSize), r * g.rowSize);
      rowSteps[r] = g.rowSteps[i];
    });
    state.groups[name] = { m, v, rowSteps };
  }
  return state;
}

let frozen: SidrFrozen | undefined;
let optimizer: AdamW | undefined;

/** One step (exported for in-process use and tests). */
export function trainStep(msg: TrainStepMessage): TrainStepReply {
  if (msg.frozen) frozen = msg.frozen;
  if (!frozen) return { id: msg.id, error: { code: 'RCL_INPUT_INVALID', message: 'no frozen inputs were sent' } };
  const theta = msg.theta;
  const groups = groupsOf(theta);
  const sizes = Object.fromEntries(groups.map((g) => [g.name, g.params.length]));
  if (msg.optimizer !== undefined || !optimizer) {
    optimizer = createAdamW(groups, { lr: msg.lr }, msg.optimizer ? expandState(msg.optimizer, sizes) : undefined);
  } else {
    for (const g of groups) optimizer.replaceParams(g.name, g.params);
  }
  const r = lossAndGrad(theta, frozen, msg.triples, { kExp: msg.kExp, expansionScale: msg.expansionScale, saturation: msg.saturation, served: msg.served });
  if (!Number.isFinite(r.loss)) {
    optimizer = undefined;
    return { id: msg.id, error: { code: 'RCL_DIVERGED', message: `loss ${r.loss}` } };
  }
  const grads: Record<string, Gradient> = {
    U: { rows: r.grad.U.rows, values: r.grad.U.values },
    A: r.grad.A,
    w: { rows: r.grad.w.rows, values: r.grad.w.values },
    phi: r.grad.phi,
    logAlpha: Float32Array.of(r.grad.logAlpha),
    logTemperature: Float32Array.of(r.grad.logTemperature),
  };
  optimizer.step(grads, { lr: msg.lr }); // a throw resets the optimizer in the message handler
  // Keep w ≥ 0: a negative weight would invert a term's evidence and break the exact top-k of expansions.
  for (const v of r.grad.w.rows) if (theta.w[v] < 0) theta.w[v] = 0;
  const rowSizes = { U: theta.dim, A: theta.A.length, w: 1, phi: theta.dim, logAlpha: 1, logTemperature: 1 };
  return {
    id: msg.id,
    H: unitInputs(theta, frozen),
    omega: omegaOf(theta, frozen),
    loss: r.loss,
    parts: r.parts,
    theta,
    changed: { U: r.grad.U.rows, w: r.grad.w.rows },
    optimizer: compactState(optimizer.getState(), rowSizes),
  };
}

/** ω under the new θ when it differs from w (φ ≠ 0); w itself travels with θ. */
function omegaOf(theta: Theta, fz: SidrFrozen): Float32Array | undefined {
  const omega = servedWeights(theta, fz);
  return omega === theta.w ? undefined : omega;
}

/**
 * H = normalize(G·Aᵀ) row by row: the input side of every term under the new A, computed here so
 * that the serving thread never pays O(|V|·D²) after a step (one matrix product in kernels/).
 */
function unitInputs(theta: Theta, fz: SidrFrozen): Float32Array {
  const V = theta.size;
  const D = theta.dim;
  const H = new Float32Array(V * D);
  kernels.matmulABt(fz.G.subarray(0, V * D), theta.A, V, D, D, H);
  for (let v = 0, o = 0; v < V; v++, o += D) {
    let n = 0;
    for (let d = 0; d < D; d++) n += H[o + d] * H[o + d];
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let d = 0; d < D; d++) H[o + d] *= inv;
  }
  return H;
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (msg: TrainStepMessage) => {
    let reply: TrainStepReply;
    try {
      reply = trainStep(msg);
    } catch (err) {
      optimizer = undefined;
      reply = { id: msg.id, error: { code: (err as { code?: string }).code ?? 'RCL_DIVERGED', message: (err as Error).message } };
    }
    const transfer: ArrayBuffer[] = [];
    if (reply.theta) for (const a of [reply.theta.U, reply.theta.w, reply.theta.A]) transfer.push(a.buffer as ArrayBuffer);
    if (reply.H) transfer.push(reply.H.buffer as ArrayBuffer);
    if (reply.omega) transfer.push(reply.omega.buffer as ArrayBuffer);
    port.postMessage(reply, transfer);
  });
}
