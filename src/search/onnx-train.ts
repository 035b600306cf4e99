/**
 * One training step of the `onnx` retriever's head θ = (gain g, bias b) on frozen backbone outputs:
 * the R3 loss L(E(q),E(d)) + ½L(E(q),T(d)) + ½L(T(q),E(d)) (DESIGN §1) from the hand-written
 * InfoNCE gradients of `encoder/heads.ts`, then AdamW (`encoder/optimizer.ts`) on copies of g and
 * b, so the served head is never mutated. No I/O and no sessions: the retriever feeds it.
 */
import { createError } from '../errors.ts';
import { type Head, type HeadLoss, type Triple, denseHeadInfoNce, sparseHeadInfoNce } from '../encoder/heads.ts';
import type { BackboneOutput } from '../encoder/onnx-encoder.ts';
import { createAdamW, type AdamW, type AdamWState } from '../encoder/optimizer.ts';
import type { SparseVector } from '../types.ts';

/** One triple's inputs: backbone outputs E(·) and, for sparse kinds, the bags of tokens T(·) in vocabulary-id space. */
export interface HeadTriple {
  query: BackboneOutput;
  positive: BackboneOutput;
  negative: BackboneOutput;
  /** Sparse kinds only. */
  bags?: Triple<SparseVector>;
}

/** Loss, its parts and the gradient w.r.t. (g, b). */
export interface HeadStepLoss {
  loss: number;
  parts: { ee: number; et: number; te: number };
  grad: HeadLoss['grad'];
}

/**
 * The R3 loss over a batch. Sparse: all three terms, with T(·) passed through unchanged
 * (`through: false`, no gradient on that side). Dense: T(·) lives in another space than E(·), so
 * only L(E(q),E(d)) is defined; et and te are reported as 0.
 */
export function headLoss(head: Head, batch: readonly HeadTriple[], opts: { temperature: number; vocabShift: number }): HeadStepLoss {
  const base = { temperature: opts.temperature, symmetric: true, vocabShift: opts.vocabShift };
  if (head.kind === 'dense') {
    const ee = denseHeadInfoNce(head, batch.map((t) => ({ query: t.query as Float32Array, positive: t.positive as Float32Array, negative: t.negative as Float32Array })), base);
    return { loss: ee.loss, parts: { ee: ee.loss, et: 0, te: 0 }, grad: ee.grad };
  }
  const e = batch.map((t) => ({ query: t.query as SparseVector, positive: t.positive as SparseVector, negative: t.negative as SparseVector }));
  const bags = batch.map((t) => t.bags!);
  const ee = sparseHeadInfoNce(head, e, base);
  const et = sparseHeadInfoNce(head, e.map((x, i) => ({ query: x.query, positive: bags[i].positive, negative: bags[i].negative })), { ...base, through: { passages: false } });
  const te = sparseHeadInfoNce(head, e.map((x, i) => ({ query: bags[i].query, positive: x.positive, negative: x.negative })), { ...base, through: { queries: false } });
  const g = new Float64Array(head.dim);
  const b = new Float64Array(head.dim);
  for (let v = 0; v < head.dim; v++) {
    g[v] = ee.grad.g[v] + 0.5 * (et.grad.g[v] + te.grad.g[v]);
    b[v] = ee.grad.b[v] + 0.5 * (et.grad.b[v] + te.grad.b[v]);
  }
  return { loss: ee.loss + 0.5 * (et.loss + te.loss), parts: { ee: ee.loss, et: et.loss, te: te.loss }, grad: { g, b } };
}

/**
 * AdamW over the head. Gains get no weight decay (it would pull them from their identity init 1
 * toward 0); biases get AdamW's default λ. Rows are updated lazily (only dimensions with a gradient).
 */
export function createHeadOptimizer(head: Head, lr: number, state?: AdamWState): AdamW {
  return createAdamW(
    [
      { name: 'g', params: head.g, weightDecay: 0 },
      { name: 'b', params: head.b },
    ].map((group) => ({ ...group, rowSize: 1 })),
    { lr },
    state,
  );
}

/**
 * One optimizer step: returns a new head (copies of g and b, stepped) and the dimensions that
 * changed. `RCL_DIVERGED` on a non-finite loss or gradient, before anything changes.
 */
export function stepHead(head: Head, loss: HeadStepLoss, optimizer: AdamW, lr: number): { head: Head; changed: Uint32Array } {
  if (!Number.isFinite(loss.loss)) throw createError('RCL_DIVERGED', {}, { details: { loss: loss.loss, parts: loss.parts } });
  const rows: number[] = [];
  for (let v = 0; v < head.dim; v++) if (loss.grad.g[v] !== 0 || loss.grad.b[v] !== 0) rows.push(v);
  const pick = (grad: Float64Array) => ({ rows, values: Float64Array.from(rows, (v) => grad[v]) });
  const next: Head = { kind: head.kind, dim: head.dim, g: head.g.slice(), b: head.b.slice() };
  optimizer.replaceParams('g', next.g);
  optimizer.replaceParams('b', next.b);
  optimizer.step({ g: pick(loss.grad.g), b: pick(loss.grad.b) }, { lr });
  return { head: next, changed: Uint32Array.from(rows) };
}

/** A binary bag of tokens over vocabulary ids (ascending, unique, weights 1), specials dropped. */
export function bagOf(ids: Iterable<number>, special: ReadonlySet<number>): SparseVector {
  const set = new Set<number>();
  for (const id of ids) if (id >= 0 && !special.has(id)) set.add(id);
  const sorted = Uint32Array.from(set).sort();
  return { ids: sorted, weights: new Float32Array(sorted.length).fill(1) };
}
