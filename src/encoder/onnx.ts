/**
 * The single seam to onnxruntime-node (the only file importing it): opens sessions on the best
 * provider (CUDA, WebGPU, CPU), checks feeds against the model's inputs, runs, and wraps failures
 * in coded errors. Plain typed arrays in and out; no onnxruntime type escapes. Mirrors transformers.js
 * `src/backends/onnx.js` and `src/models/session.js` (`validateInputs`, `sessionRun`).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createError } from '../errors.ts';

/** Execution providers we know how to pick, in preference order. */
export type ProviderName = 'cuda' | 'webgpu' | 'cpu';

/** Preference order when the caller does not restrict it. */
export const PROVIDER_ORDER: readonly ProviderName[] = ['cuda', 'webgpu', 'cpu'];

/** Minimal structured logger (pino / fastify `log` compatible). */
export interface EncoderLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options for {@link openSession}. */
export interface OpenSessionOptions {
  /** Providers allowed, tried in {@link PROVIDER_ORDER} order whatever the order given. Default: all. */
  providers?: readonly ProviderName[];
  /** Threads for one operator on CPU; default onnxruntime's (one per core). */
  intraOpNumThreads?: number;
  /** Where the chosen provider and skipped ones are reported. */
  logger?: EncoderLogger;
}

/** What one input or output of the model declares. */
export interface TensorInfo {
  name: string;
  /** e.g. 'int64', 'float32'; 'unknown' for non-tensor values. */
  type: string;
  /** Numbers for fixed axes, strings for symbolic ones (e.g. 'batch'). */
  shape: (number | string)[];
}

/** An open model session. Release it with {@link dispose}. */
export interface EncoderSession {
  /** File path, or '<buffer>' when opened from bytes. */
  readonly source: string;
  /** The execution provider the session was created on. */
  readonly provider: ProviderName;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
}

/** A feed: int64 ids/masks or float32 values, row-major with `dims`. */
export type Feed =
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] }
  | { type: 'float32'; data: Float32Array; dims: readonly number[] };

/** One output tensor as plain data. */
export interface Fetched {
  type: string;
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
  dims: number[];
}

interface SessionState extends EncoderSession {
  raw: ort.InferenceSession | null;
}

function codedError(code: 'ENCODER_RUN_FAILED' | 'ENCODER_INPUT_MISSING' | 'MODEL_INVALID', reason: string, details: Record<string, unknown>, cause?: unknown): Error {
  const names = Array.isArray(details.missing) ? details.missing.join(', ') : '';
  return createError(code, { reason, names }, { details, cause });
}

/** Providers whose create already failed in this process: probing again only repeats the noise. */
const failedProviders = new Set<ProviderName>();

/**
 * Providers this onnxruntime-node build can use here. CUDA counts only when its provider library
 * sits next to the binding (onnxruntime-node lists it even when the optional download was skipped).
 */
export function availableProviders(): ProviderName[] {
  const listed = new Set(ort.listSupportedBackends().map((b) => b.name));
  const out: ProviderName[] = [];
  if (listed.has('cuda') && cudaLibraryPresent()) out.push('cuda');
  if (listed.has('webgpu')) out.push('webgpu');
  out.push('cpu');
  return out.filter((p) => p === 'cpu' || !failedProviders.has(p));
}

/** Whether the CUDA provider library was installed with onnxruntime-node (fixed for the process). */
let cudaPresent: boolean | undefined;

function cudaLibraryPresent(): boolean {
  return (cudaPresent ??= findCudaLibrary());
}

function findCudaLibrary(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    const binDir = join(dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch);
    return existsSync(join(binDir, 'libonnxruntime_providers_cuda.so')) || existsSync(join(binDir, 'onnxruntime_providers_cuda.dll'));
  } catch {
    return false;
  }
}

function describe(meta: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'unknown', shape: [] }));
}

/**
 * Open a model on the first provider that works, in the order CUDA, WebGPU, CPU (restricted to
 * `opts.providers` and to {@link availableProviders}). A provider that fails to create is logged
 * and skipped; if the last one fails the file is unusable: `MODEL_INVALID` with the cause.
 */
export async function openSession(model: string | Uint8Array, opts: OpenSessionOptions = {}): Promise<EncoderSession> {
  const allowed = new Set(opts.providers ?? PROVIDER_ORDER);
  const candidates = availableProviders().filter((p) => allowed.has(p));
  const source = typeof model === 'string' ? model : '<buffer>';
  if (candidates.length === 0) {
    throw codedError('ENCODER_RUN_FAILED', 'no allowed execution provider is available', { allowed: [...allowed], available: availableProviders() });
  }
  let lastError: unknown;
  for (const provider of candidates) {
    try {
      const options: ort.InferenceSession.SessionOptions = {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        ...(opts.intraOpNumThreads ? { intraOpNumThreads: opts.intraOpNumThreads } : {}),
      };
      const raw = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      opts.logger?.info({ provider, model: source }, 'onnx session opened');
      const state: SessionState = {
        source, provider, raw,
        inputNames: [...raw.inputNames],
        outputNames: [...raw.outputNames],
        inputs: describe(raw.inputMetadata),
        outputs: describe(raw.outputMetadata),
      };
      return state;
    } catch (err) {
      lastError = err;
      if (provider !== 'cpu') {
        failedProviders.add(provider);
        opts.logger?.warn({ provider, model: source, err: String(err) }, 'execution provider unavailable, trying the next');
      }
    }
  }
  throw codedError('MODEL_INVALID', `cannot load ONNX model ${source}`, { file: source, providers: candidates }, lastError);
}

function rawOf(session: EncoderSession): ort.InferenceSession {
  const raw = (session as SessionState).raw;
  if (!raw) throw codedError('ENCODER_RUN_FAILED', 'session is disposed', { model: session.source });
  return raw;
}

function feedSummary(feeds: Readonly<Record<string, Feed>>): { name: string; type: string; dims: readonly number[] }[] {
  return Object.entries(feeds).map(([name, f]) => ({ name, type: f.type, dims: f.dims }));
}

/**
 * Run the model. Every declared input must be fed (else `ENCODER_INPUT_MISSING`, with the missing
 * names, what the model expects and what was given); feeds the model does not declare are dropped
 * (callers may always send `token_type_ids`). Runtime failures become `ENCODER_RUN_FAILED` with
 * the onnxruntime error as `cause`. Note: onnxruntime-node runs on the calling thread.
 */
export async function run(session: EncoderSession, feeds: Readonly<Record<string, Feed>>): Promise<Record<string, Fetched>> {
  const raw = rawOf(session);
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) {
    throw codedError('ENCODER_INPUT_MISSING', `model input(s) not fed: ${missing.join(', ')}`, {
      missing,
      expected: session.inputs,
      given: feedSummary(feeds),
    });
  }
  let out: ort.InferenceSession.ReturnType;
  try {
    const tensors: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const f = feeds[name];
      tensors[name] = f.type === 'int64' ? new ort.Tensor('int64', f.data, f.dims) : new ort.Tensor('float32', f.data, f.dims);
    }
    out = await raw.run(tensors);
  } catch (cause) {
    throw codedError('ENCODER_RUN_FAILED', `onnx run failed: ${String((cause as Error)?.message ?? cause).split('\n')[0]}`, {
      model: session.source,
      provider: session.provider,
      expected: session.inputs,
      given: feedSummary(feeds),
    }, cause);
  }
  const result: Record<string, Fetched> = {};
  for (const [name, value] of Object.entries(out)) {
    const t = value as ort.Tensor;
    result[name] = { type: t.type, data: t.data as Fetched['data'], dims: [...t.dims] };
  }
  return result;
}

/** Release the native session; idempotent. */
export async function dispose(session: EncoderSession): Promise<void> {
  const state = session as SessionState;
  const raw = state.raw;
  state.raw = null;
  if (raw) await raw.release();
}
