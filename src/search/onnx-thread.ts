/**
 * Opens an `onnx` model either in a dedicated worker thread (the default: a session run blocks
 * its thread for tens of milliseconds even on the tiny test models) or in-thread. Both return the
 * encoder interface of `encoder/onnx-encoder.ts`; the passage cache stays on the main thread.
 */
import { Worker } from 'node:worker_threads';
import { AppError, createError, ERROR_CODES, type ErrorCode } from '../errors.ts';
import type { WordPieceTokenizer } from '../analysis/wordpiece.ts';
import type { ModelDir } from '../encoder/model-dir.ts';
import type { OpenSessionOptions, ProviderName } from '../encoder/onnx.ts';
import {
  cachedPassageEncoder,
  openOnnxEncoder,
  type BackboneCache,
  type BackboneOutput,
  type OnnxEncoder,
} from '../encoder/onnx-encoder.ts';
import type { EncodeRequest, OnnxWorkerData, PostedModel, WireError, WorkerReply } from './onnx-worker.ts';

/** A model's encoder as the retriever uses it. */
export type ModelEncoder = OnnxEncoder<WordPieceTokenizer>;

/** Options of {@link openModelEncoder}. */
export interface ModelEncoderOptions {
  session: Pick<OpenSessionOptions, 'providers' | 'intraOpNumThreads' | 'logger'>;
  /** Passage cache (main thread); null disables it. */
  cache: BackboneCache | null;
  /** Run sessions in a worker thread (default true). */
  inThread?: boolean;
}

function fromWire(e: WireError): Error {
  if (e.code && (ERROR_CODES as string[]).includes(e.code)) return new AppError(e.code as ErrorCode, e.message, { details: e.details });
  return createError('ENCODER_RUN_FAILED', { reason: e.message }, { details: e.details });
}

/**
 * Opens the model's sessions; with `inThread: false` on the calling thread, else in a worker that
 * is started now (its provider is known on return) and restarted on the next call if it dies.
 */
export async function openModelEncoder(model: ModelDir<WordPieceTokenizer>, opts: ModelEncoderOptions): Promise<ModelEncoder> {
  if (opts.inThread === false) return openOnnxEncoder(model, { ...opts.session, cache: opts.cache ?? false });
  const { tokenizer, ...posted } = model;
  const thread = new EncoderThread(posted, { providers: opts.session.providers, intraOpNumThreads: opts.session.intraOpNumThreads });
  const provider = await thread.start();
  opts.session.logger?.info({ provider, model: model.dir }, 'onnx sessions opened in a worker thread');
  const { manifest, config } = model;
  return {
    kind: manifest.kind,
    hash: model.hash,
    provider,
    dim: manifest.kind === 'dense' ? config.hiddenSize : config.vocabSize,
    vocabShift: manifest.vocabShift,
    model,
    tokenizer,
    cache: opts.cache,
    encodeQueries: (texts) => thread.encode('query', [...texts]),
    encodePassages: cachedPassageEncoder(model.hash, opts.cache, (texts) => thread.encode('passage', texts)),
    dispose: () => thread.close(),
  };
}

interface Pending {
  resolve(outputs: BackboneOutput[]): void;
  reject(err: Error): void;
}

/** One worker holding one model's sessions. */
class EncoderThread {
  private worker: Worker | undefined;
  private ready: Promise<WorkerReply & { type: 'ready' }> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly model: PostedModel,
    private readonly session: OnnxWorkerData['session'],
  ) {}

  /** Starts the worker (if needed) and resolves with its provider once the sessions are open. */
  async start(): Promise<ProviderName> {
    return (await this.ensure()).provider;
  }

  private ensure(): Promise<WorkerReply & { type: 'ready' }> {
    if (this.closed) return Promise.reject(createError('ENCODER_RUN_FAILED', { reason: 'the model was released' }));
    if (this.ready) return this.ready;
    const data: OnnxWorkerData & { module: string } = { module: new URL('./onnx-worker.ts', import.meta.url).href, model: this.model, session: this.session };
    const worker = new Worker(new URL('../worker-entry.mjs', import.meta.url), { workerData: data });
    worker.unref(); // referenced only while requests are pending (see encode)
    this.worker = worker;
    this.ready = new Promise((resolve, reject) => {
      const fail = (err: Error): void => {
        reject(err);
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        if (this.worker === worker) {
          this.worker = undefined;
          this.ready = undefined;
        }
      };
      worker.on('message', (msg: WorkerReply) => {
        if (msg.type === 'ready') resolve(msg);
        else if (msg.type === 'fatal') {
          fail(fromWire(msg.error));
          void worker.terminate();
        } else {
          const p = this.pending.get(msg.id);
          this.pending.delete(msg.id);
          if (this.pending.size === 0) worker.unref();
          if (msg.type === 'result') p?.resolve(msg.outputs);
          else p?.reject(fromWire(msg.error));
        }
      });
      worker.on('error', (err) => fail(createError('ENCODER_RUN_FAILED', { reason: `the encoder thread failed: ${err.message}` }, { cause: err })));
      worker.on('exit', (code) => {
        if (!this.closed) fail(createError('ENCODER_RUN_FAILED', { reason: `the encoder thread exited with code ${code}` }));
      });
    });
    this.ready.catch(() => undefined);
    return this.ready;
  }

  async encode(role: EncodeRequest['role'], texts: string[]): Promise<BackboneOutput[]> {
    if (texts.length === 0) return [];
    await this.ensure();
    const worker = this.worker!;
    const id = this.nextId++;
    return new Promise<BackboneOutput[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref(); // a pending answer keeps the process alive
      worker.postMessage({ id, role, texts } satisfies EncodeRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    for (const p of this.pending.values()) p.reject(createError('ENCODER_RUN_FAILED', { reason: 'the model was released' }));
    this.pending.clear();
    await worker?.terminate();
  }
}
