/**
 * The `openai` environment: RAG scores and labels from an OpenAI-compatible completions endpoint
 * (e.g. vLLM). S = P(answer | prompt) from one teacher-forced echo call; L from one greedy
 * generation checked with DPR answer matching; closed-set choices by argmax. Owns HTTP details
 * (timeouts, retries, concurrency); knows nothing of thresholds, pools or caching.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createError } from '../../errors.ts';
import { labelClosedSet } from '../thresholds.ts';
import { createAnswerMatcher } from './answer-match.ts';
import type { AnswerScore, DocScores, Environment, EnvironmentDoc, ScoreRequest } from './types.ts';

/** Default prompt: one document in context, then the question (research-notes §3.3: one document). */
export const DEFAULT_PROMPT_TEMPLATE = 'Background: {document}\n\nQuestion: {question}\nAnswer: ';

/** Options of the openai environment. */
export interface OpenAIEnvironmentOptions {
  /** Server root, e.g. `http://127.0.0.1:8000`; requests go to `{baseUrl}/v1/completions`. */
  baseUrl: string;
  /** Model name sent with every request. */
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /**
   * Prompt before the answer. Placeholders: `{question}`, `{document}` (title, newline, text — or
   * the text alone when there is no title), `{title}`, `{text}`; replaced in one pass, so text
   * containing braces is safe. Default {@link DEFAULT_PROMPT_TEMPLATE}.
   */
  promptTemplate?: string;
  /** Generate RAG labels (one extra call per document). Default true; requests may override. */
  labels?: boolean;
  /** `max_tokens` of the label generation. Default 100 (OpenRAG's free-form limit, §3.3). */
  maxGenerationTokens?: number;
  /** Truncate document text to this many characters (code points) in the prompt. 0 = no limit (default). */
  maxDocumentChars?: number;
  /** Per-attempt timeout in ms, body included. Default 30,000. */
  timeoutMs?: number;
  /** Retries after the first attempt on 429, 5xx, network errors and timeouts. Default 4. */
  maxRetries?: number;
  /** First retry delay in ms, doubled per retry (no jitter), capped by `retryMaxMs`. Default 500. */
  retryBaseMs?: number;
  /** Longest retry delay in ms, also the cap on a server's `Retry-After`. Default 10,000. */
  retryMaxMs?: number;
  /** Requests in flight at once, over all concurrent `score()` calls. Default 8. */
  concurrency?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 4;
const DEFAULT_RETRY_BASE_MS = 500;
const DEFAULT_RETRY_MAX_MS = 10_000;
const DEFAULT_CONCURRENCY = 8;
const DEFAULT_MAX_GENERATION_TOKENS = 100;
/** Characters of an error body quoted in error messages. */
const ERROR_BODY_EXCERPT_CHARS = 200;

/** A counting semaphore; waiters are served first come, first served. */
class Semaphore {
  private free: number;
  private readonly waiters: Array<() => void> = [];
  constructor(size: number) {
    this.free = size;
  }
  async acquire(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      this.waiters.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next(); // the permit passes straight to the next waiter
    else this.free++;
  }
}

/** Length in code points: OpenAI-style servers (Python) count `text_offset` in code points, not UTF-16 units. */
function cpLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function failed(reason: string, opts: { details?: Record<string, unknown>; cause?: unknown } = {}): Error {
  return createError('RCL_ENVIRONMENT_FAILED', { reason }, opts);
}

/** Fills the template in a single pass (inserted text is never re-scanned for placeholders). */
export function renderPrompt(template: string, question: string, doc: Pick<EnvironmentDoc, 'title' | 'text'>, maxDocumentChars = 0): string {
  const text = maxDocumentChars > 0 && cpLength(doc.text) > maxDocumentChars ? Array.from(doc.text).slice(0, maxDocumentChars).join('') : doc.text;
  const title = doc.title ?? '';
  const values: Record<string, string> = { question, title, text, document: title ? `${title}\n${text}` : text };
  return template.replace(/\{(question|document|title|text)\}/g, (_, key: string) => values[key]);
}

/** The parts of `choices[0].logprobs` we read. */
interface EchoLogprobs {
  tokens: string[];
  tokenLogprobs: Array<number | null>;
  textOffset?: number[];
}

/** Validates a completions response and returns `choices[0]`'s text and logprobs. */
function firstChoice(json: unknown): { text: string; logprobs: EchoLogprobs | null } {
  const choice = (json as { choices?: unknown[] } | null)?.choices?.[0] as
    | { text?: unknown; logprobs?: { tokens?: unknown; token_logprobs?: unknown; text_offset?: unknown } | null }
    | undefined;
  if (choice === undefined || typeof choice.text !== 'string') throw failed('the response has no choices[0].text');
  const lp = choice.logprobs;
  if (lp === undefined || lp === null) return { text: choice.text, logprobs: null };
  const { tokens, token_logprobs: tokenLogprobs, text_offset: textOffset } = lp;
  if (!Array.isArray(tokens) || !Array.isArray(tokenLogprobs) || tokens.length !== tokenLogprobs.length) {
    throw failed('the response logprobs lack aligned tokens/token_logprobs (does the server support echo with logprobs?)');
  }
  const offsets = Array.isArray(textOffset) && textOffset.length === tokens.length ? (textOffset as number[]) : undefined;
  return { text: choice.text, logprobs: { tokens: tokens as string[], tokenLogprobs: tokenLogprobs as Array<number | null>, textOffset: offsets } };
}

/**
 * Indices of the echoed tokens that cover the continuation at the end of `prompt + continuation`.
 *
 * Preferred rule — suffix alignment: when the echoed tokens concatenate to text ending with the
 * continuation, take tokens from the end until they cover its length. This is robust to servers
 * that echo a BOS token as text (vLLM decodes Llama 3's `<|begin_of_text|>` into the echo and
 * shifts every `text_offset` by its length). Fallback — the offset rule, for echoes that decode
 * lossily (byte tokens): every token from the first whose span [text_offset_i, text_offset_{i+1})
 * ends after the prompt. In both, a token straddling the boundary (a BPE/SentencePiece token
 * " Paris" that absorbed the prompt's trailing space) belongs to the answer, where
 * `text_offset ≥ prompt length` alone would drop it.
 */
export function continuationTokenRange(lp: EchoLogprobs, prompt: string, continuation: string): { start: number; end: number } {
  const n = lp.tokens.length;
  const contLen = cpLength(continuation);
  if (contLen === 0) return { start: n, end: n };
  if (lp.tokens.join('').endsWith(continuation)) {
    let covered = 0;
    let i = n;
    while (i > 0 && covered < contLen) covered += cpLength(lp.tokens[--i]);
    return { start: i, end: n };
  }
  if (lp.textOffset === undefined) {
    throw failed('the echoed tokens do not end with the answer and the response has no text_offset');
  }
  const promptLen = cpLength(prompt);
  for (let i = 0; i < n; i++) {
    const tokStart = lp.textOffset[i];
    const tokEnd = i + 1 < n ? lp.textOffset[i + 1] : Infinity;
    // From the first token reaching past the prompt (or a zero-width one starting at its end) to
    // the last: with max_tokens 0 the server appends no generated tokens.
    if (tokEnd > promptLen || tokStart >= promptLen) return { start: i, end: n };
  }
  return { start: n, end: n };
}

/** Parses `Retry-After` (seconds or an HTTP date) into ms; undefined when absent or invalid. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

type Attempt =
  | { ok: true; json: unknown }
  | { ok: false; retryable: boolean; error: unknown; status?: number; retryAfter?: number };

/**
 * Creates the openai environment. Each document costs, per distinct answer (or choice), one echo
 * call `{max_tokens: 0, echo: true, logprobs: 1, temperature: 0}` on `prompt + answer`, plus one
 * greedy generation on `prompt` when labels are wanted (free-form only).
 *
 * S = exp(Σ log p) over the answer tokens: the raw joint probability, no length normalisation
 * (research-notes §3.3). It underflows to 0 below e^-745, i.e. only for very long answers.
 */
export function createOpenAIEnvironment(options: OpenAIEnvironmentOptions): Environment {
  let endpoint: URL;
  try {
    endpoint = new URL(`${options.baseUrl.replace(/\/+$/, '')}/v1/completions`);
  } catch (err) {
    throw createError('CONFIG_INVALID', { reason: `openai baseUrl "${options.baseUrl}" is not a URL` }, { cause: err });
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') {
    throw createError('CONFIG_INVALID', { reason: 'openai baseUrl must be http(s)' });
  }
  const where = `${endpoint.origin}${endpoint.pathname}`; // never the credentials part of a URL
  const template = options.promptTemplate ?? DEFAULT_PROMPT_TEMPLATE;
  const labelsDefault = options.labels ?? true;
  const maxGenerationTokens = options.maxGenerationTokens ?? DEFAULT_MAX_GENERATION_TOKENS;
  const maxDocumentChars = options.maxDocumentChars ?? 0;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
  const retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
  const retryMaxMs = options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
  const semaphore = new Semaphore(Math.max(1, options.concurrency ?? DEFAULT_CONCURRENCY));
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  /** Cancellers of the `score()` calls in flight, so `close()` can stop them. */
  const active = new Set<AbortController>();
  let closed = false;
  const fingerprint = `openai:${options.model}:${createHash('sha256')
    .update(JSON.stringify([template, maxGenerationTokens, maxDocumentChars]))
    .digest('hex')
    .slice(0, 16)}`;

  /** One HTTP attempt under its own timeout. Rethrows only when the caller's signal aborted. */
  async function attempt(body: object, signal: AbortSignal): Promise<Attempt> {
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.any([signal, timeout]) });
      const text = await res.text();
      if (res.ok) {
        try {
          return { ok: true, json: JSON.parse(text) };
        } catch (err) {
          return { ok: false, retryable: false, error: failed(`${where} returned invalid JSON`, { cause: err }) };
        }
      }
      const error = failed(`HTTP ${res.status} from ${where}: ${text.slice(0, ERROR_BODY_EXCERPT_CHARS)}`, { details: { status: res.status } });
      // 429 and 5xx are transient by RFC 9110 §15.5.30 / §15.6; other 4xx will fail the same way again.
      const retryable = res.status === 429 || res.status >= 500;
      return { ok: false, retryable, error, status: res.status, retryAfter: retryAfterMs(res.headers.get('retry-after')) };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      return { ok: false, retryable: true, error: timeout.aborted ? failed(`no response from ${where} within ${timeoutMs} ms`, { cause: err }) : err };
    }
  }

  /** POSTs with retries and exponential backoff; the semaphore is held only while a request is in flight. */
  async function post(body: object, signal: AbortSignal): Promise<unknown> {
    let last: Attempt | undefined;
    for (let i = 0; i <= maxRetries; i++) {
      if (i > 0 && last !== undefined && !last.ok) {
        const backoff = Math.min(retryMaxMs, retryBaseMs * 2 ** (i - 1));
        try {
          await sleep(Math.min(retryMaxMs, Math.max(backoff, last.retryAfter ?? 0)), undefined, { signal });
        } catch {
          throw signal.reason; // the caller's abort, not timers' own AbortError
        }
      }
      await semaphore.acquire(signal);
      try {
        last = await attempt(body, signal);
      } finally {
        semaphore.release();
      }
      if (last.ok) return last.json;
      if (!last.retryable) throw last.error;
    }
    const error = last !== undefined && !last.ok ? last.error : undefined;
    const reason = error instanceof Error ? error.message : String(error);
    throw failed(`gave up after ${maxRetries + 1} attempts: ${reason}`, {
      cause: error,
      details: { attempts: maxRetries + 1, status: last !== undefined && !last.ok ? last.status : undefined },
    });
  }

  /** P(continuation | prompt) by teacher forcing: one echo call, no generation. */
  async function scoreContinuation(prompt: string, continuation: string, signal: AbortSignal): Promise<number> {
    const json = await post(
      { model: options.model, prompt: prompt + continuation, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 },
      signal,
    );
    const { logprobs } = firstChoice(json);
    if (logprobs === null) throw failed('the echo response has no logprobs');
    const { start, end } = continuationTokenRange(logprobs, prompt, continuation);
    let sum = 0;
    for (let i = start; i < end; i++) {
      const lp = logprobs.tokenLogprobs[i];
      if (typeof lp !== 'number' || Number.isNaN(lp)) throw failed(`answer token ${i} ("${logprobs.tokens[i]}") has no log-probability`);
      sum += lp;
    }
    return Math.exp(sum);
  }

  /** The greedy generation after the prompt (no echo), for RAG labels. */
  async function generate(prompt: string, signal: AbortSignal): Promise<string> {
    const json = await post({ model: options.model, prompt, max_tokens: maxGenerationTokens, temperature: 0, echo: false }, signal);
    return firstChoice(json).text;
  }

  async function scoreDoc(req: ScoreRequest, doc: EnvironmentDoc, signal: AbortSignal): Promise<DocScores> {
    const prompt = renderPrompt(template, req.query, doc, maxDocumentChars);
    if (req.choices !== undefined) {
      const choices = req.choices;
      const choiceScores = await Promise.all(choices.map((c) => scoreContinuation(prompt, c, signal)));
      const perAnswer: AnswerScore[] = req.answers.map((answer) => {
        const gold = choices.indexOf(answer);
        return { answer, score: choiceScores[gold], label: labelClosedSet(choiceScores, gold) };
      });
      return { docId: doc.id, perAnswer, choiceScores };
    }
    const distinct = [...new Set(req.answers)];
    const wantLabels = req.labels ?? labelsDefault;
    const [scores, generation] = await Promise.all([
      Promise.all(distinct.map((a) => scoreContinuation(prompt, a, signal))),
      wantLabels ? generate(prompt, signal) : Promise.resolve(null),
    ]);
    const scoreOf = new Map(distinct.map((a, i) => [a, scores[i]]));
    const contains = generation === null ? null : createAnswerMatcher(generation);
    const perAnswer: AnswerScore[] = req.answers.map((answer) => ({
      answer,
      score: scoreOf.get(answer)!,
      label: contains === null ? null : contains(answer) ? 1 : 0,
    }));
    return { docId: doc.id, perAnswer };
  }

  return {
    name: 'openai',
    fingerprint,
    async score(req, opts = {}) {
      if (req.choices !== undefined) {
        const missing = req.answers.filter((a) => !req.choices!.includes(a));
        if (req.choices.length === 0 || missing.length > 0) {
          throw createError('RCL_INPUT_INVALID', { reason: `gold choices ${JSON.stringify(missing)} are not among the choices` });
        }
      }
      if (closed) throw failed('the environment was closed');
      // The first failure cancels the rest of this call's requests instead of letting them run on.
      const cancel = new AbortController();
      const signal = opts.signal ? AbortSignal.any([cancel.signal, opts.signal]) : cancel.signal;
      active.add(cancel);
      try {
        return await Promise.all(
          req.docs.map((doc) =>
            scoreDoc(req, doc, signal).catch((err: unknown) => {
              cancel.abort(err);
              throw err;
            }),
          ),
        );
      } finally {
        active.delete(cancel);
      }
    },
    async close() {
      closed = true;
      for (const cancel of active) cancel.abort(failed('the environment was closed'));
      active.clear();
    },
  };
}
