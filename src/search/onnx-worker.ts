/**
 * Worker-thread side of an `onnx` model: tokenizes and runs the backbone sessions off the event
 * loop (onnxruntime-node runs a session on its calling thread). One model per worker; requests are
 * answered in arrival order. No caching and no head here: `onnx-thread.ts` and the retriever do that.
 */
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../analysis/wordpiece.ts';
import type { ModelDir } from '../encoder/model-dir.ts';
import type { OpenSessionOptions, ProviderName } from '../encoder/onnx.ts';
import { openOnnxEncoder, type BackboneOutput, type OnnxEncoder } from '../encoder/onnx-encoder.ts';

/** A model directory as posted to the worker: everything but the tokenizer object. */
export type PostedModel = Omit<ModelDir, 'tokenizer'>;

/** `workerData` of an onnx worker (besides the generic `module`). */
export interface OnnxWorkerData {
  model: PostedModel;
  session: Pick<OpenSessionOptions, 'providers' | 'intraOpNumThreads'>;
}

/** Main → worker. */
export interface EncodeRequest {
  id: number;
  role: 'query' | 'passage';
  texts: string[];
}

/** A coded error as it crosses the thread boundary. */
export interface WireError {
  code?: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Worker → main: the open outcome once, then one reply per request. */
export type WorkerReply =
  | { type: 'ready'; provider: ProviderName }
  | { type: 'fatal'; error: WireError }
  | { type: 'result'; id: number; outputs: BackboneOutput[] }
  | { type: 'failed'; id: number; error: WireError };

function toWire(err: unknown): WireError {
  const e = err as { code?: string; message?: string; details?: Record<string, unknown> };
  let details: Record<string, unknown> | undefined;
  try {
    details = e.details === undefined ? undefined : structuredClone(e.details);
  } catch {
    details = undefined; // details that cannot be cloned are dropped, the code and message stay
  }
  return { code: e.code, message: e.message ?? String(err), details };
}

/** Buffers of the outputs, moved (not copied) to the main thread. */
function transferList(outputs: BackboneOutput[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const o of outputs) {
    if (o instanceof Float32Array) out.push(o.buffer as ArrayBuffer);
    else out.push(o.ids.buffer as ArrayBuffer, o.weights.buffer as ArrayBuffer);
  }
  return out;
}

async function main(): Promise<void> {
  const port = parentPort!;
  const data = workerData as OnnxWorkerData;
  let encoder: OnnxEncoder;
  try {
    const tokenizer = await loadTokenizer(join(data.model.dir, data.model.tokenizerFile));
    encoder = await openOnnxEncoder({ ...data.model, tokenizer }, { ...data.session, cache: false });
    // Warm up: the first run of a session allocates and plans; pay it here, not in the first search.
    await encoder.encodeQueries(['warm up']);
    if (encoder.model.passagePath !== encoder.model.queryPath) await encoder.encodePassages(['warm up']);
  } catch (err) {
    port.postMessage({ type: 'fatal', error: toWire(err) } satisfies WorkerReply);
    return;
  }
  port.postMessage({ type: 'ready', provider: encoder.provider } satisfies WorkerReply);
  // One request at a time: a session run already uses the intra-op threads it was given.
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (req: EncodeRequest) => {
    queue = queue.then(async () => {
      try {
        const outputs = req.role === 'query' ? await encoder.encodeQueries(req.texts) : await encoder.encodePassages(req.texts);
        port.postMessage({ type: 'result', id: req.id, outputs } satisfies WorkerReply, transferList(outputs));
      } catch (err) {
        port.postMessage({ type: 'failed', id: req.id, error: toWire(err) } satisfies WorkerReply);
      }
    });
  });
}

if (parentPort && (workerData as Partial<OnnxWorkerData> | null)?.model) void main();
