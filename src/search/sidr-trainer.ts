/**
 * Main-thread side of sidr-glove training: a dedicated worker thread (see sidr-train-worker.ts),
 * one step at a time. Sends θ each step (transferred copies), the frozen inputs only when they
 * changed, and the optimizer checkpoint only when the worker's state is not the parent's.
 */
import { Worker } from 'node:worker_threads';
import { BACKGROUND_THREAD_NICE } from '../threads.ts';
import { createError } from '../errors.ts';
import type { LossParts, RclTriple, ServedObjective } from '../encoder/sidr-glove-grad.ts';
import { cloneTheta, type SidrFrozen, type Theta } from '../encoder/sidr-glove.ts';
import type { CompactState, TrainStepMessage, TrainStepReply } from './sidr-train-worker.ts';

export class SidrTrainer {
  private worker: Worker | undefined;
  private sentFrozen: SidrFrozen | undefined;
  /** Version whose optimizer state the worker holds (after its last successful step). */
  workerVersion: number | undefined;
  private nextId = 0;
  private pending = new Map<number, (reply: TrainStepReply) => void>();

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('../worker-entry.mjs', import.meta.url), {
      workerData: { module: new URL('./sidr-train-worker.ts', import.meta.url).href, nice: BACKGROUND_THREAD_NICE },
    });
    worker.unref();
    worker.on('message', (reply: TrainStepReply) => {
      const resolve = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      resolve?.(reply);
    });
    const fail = (err: Error) => {
      for (const resolve of this.pending.values()) resolve({ id: -1, error: { code: 'RCL_DIVERGED', message: `training worker failed: ${err.message}` } });
      this.pending.clear();
      this.worker = undefined;
      this.sentFrozen = undefined;
      this.workerVersion = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => code !== 0 && fail(new Error(`exit ${code}`)));
    this.worker = worker;
    return worker;
  }

  /**
   * Runs one step from θ (`parentVersion`), resuming the optimizer from `checkpoint` when the
   * worker does not already hold the parent's state.
   */
  async step(args: {
    theta: Theta;
    frozen: SidrFrozen;
    parentVersion: number;
    /** Read only when the worker does not hold the parent's optimizer state (decoding is not free). */
    checkpoint: () => { version: number; state: CompactState } | undefined;
    triples: RclTriple[];
    lr: number;
    kExp: number;
    expansionScale: number;
    saturation?: { k1: number; b: number; avgdl: number };
    served?: ServedObjective;
  }): Promise<{ loss: number; parts: LossParts; theta: Theta; changed: { U: Uint32Array; w: Uint32Array }; optimizer: CompactState; H?: Float32Array; omega?: Float32Array }> {
    const worker = this.ensureWorker();
    const theta = cloneTheta(args.theta);
    const msg: TrainStepMessage = {
      id: this.nextId++,
      theta,
      triples: args.triples,
      lr: args.lr,
      kExp: args.kExp,
      expansionScale: args.expansionScale,
      saturation: args.saturation,
      served: args.served,
    };
    if (this.sentFrozen !== args.frozen) msg.frozen = args.frozen;
    if (this.workerVersion !== args.parentVersion) {
      const cp = args.checkpoint();
      msg.optimizer = cp && cp.version === args.parentVersion ? cp.state : null;
    }
    const reply = await new Promise<TrainStepReply>((resolve) => {
      this.pending.set(msg.id, resolve);
      worker.postMessage(msg, [theta.U.buffer as ArrayBuffer, theta.w.buffer as ArrayBuffer, theta.A.buffer as ArrayBuffer]);
    });
    this.sentFrozen = args.frozen;
    if (reply.error) {
      this.workerVersion = undefined;
      if (reply.error.code === 'RCL_DIVERGED') throw createError('RCL_DIVERGED', {}, { details: { reason: reply.error.message } });
      throw createError('RCL_INPUT_INVALID', { reason: reply.error.message });
    }
    return { loss: reply.loss!, parts: reply.parts!, theta: reply.theta!, changed: reply.changed!, optimizer: reply.optimizer!, H: reply.H, omega: reply.omega };
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
