/**
 * A deterministic OpenAI-compatible completions server on 127.0.0.1 (port 0) for tests of the
 * `openai` environment: whitespace tokens, log p = log 0.9 for a word seen earlier in the text and
 * log 0.1 otherwise, generation = the first sentence of the document. Failure and delay hooks let
 * tests exercise retries and timeouts. Test-only; never reaches beyond loopback.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Log-probability of a token whose word already occurred in the text before it. */
export const LOGP_SEEN = Math.log(0.9);
/** Log-probability of any other token. */
export const LOGP_UNSEEN = Math.log(0.1);

/** Behaviour switches; all can be changed on a running server through `server.options`. */
export interface FakeLlmOptions {
  /** Fail this many of the next requests (counting down), with `failStatus` or a socket reset. */
  failNext?: number;
  /** HTTP status for injected failures, or `'reset'` to destroy the socket. Default 500. */
  failWith?: number | 'reset';
  /** `Retry-After` header (seconds) sent with injected failures. */
  retryAfterSeconds?: number;
  /** Wait this long before answering every request (ms). Default 0. */
  delayMs?: number;
  /** Require `Authorization: Bearer <apiKey>`; else 401. */
  apiKey?: string;
  /** Echo a BOS token with this text before the prompt (shifts every text_offset, as vLLM does). */
  bosToken?: string;
  /** Overrides the generation (prompt → text) before `max_tokens` truncation. */
  generate?: (prompt: string) => string;
}

/** A request as the server received it. */
export interface RecordedRequest {
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

/** A running fake server. */
export interface FakeLlmServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (the client appends `/v1/completions`). */
  url: string;
  /** Mutable behaviour switches. */
  options: FakeLlmOptions;
  /** Every request received, in arrival order (including failed ones). */
  requests: RecordedRequest[];
  /** Requests being handled right now, and the most seen at once. */
  inFlight: number;
  maxInFlight: number;
  close(): Promise<void>;
}

/** Whitespace tokens, each carrying its leading whitespace (`" Paris"`), with code-point offsets. */
export function fakeTokenize(text: string): Array<{ token: string; offset: number }> {
  const out: Array<{ token: string; offset: number }> = [];
  let offset = 0;
  for (const m of text.matchAll(/\s*\S+|\s+$/gu)) {
    out.push({ token: m[0], offset });
    offset += Array.from(m[0]).length;
  }
  return out;
}

/** The comparison key of a token: trimmed, lower-cased, outer punctuation removed. */
function wordOf(token: string): string {
  return token.trim().toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
}

/** The fake model's log-probabilities: the first token has none (as with a real echo). */
export function fakeLogprobs(tokens: readonly string[]): Array<number | null> {
  const seen = new Set<string>();
  return tokens.map((t, i) => {
    const w = wordOf(t);
    const lp = i === 0 ? null : seen.has(w) ? LOGP_SEEN : LOGP_UNSEEN;
    seen.add(w);
    return lp;
  });
}

/**
 * Default generation: the first sentence of the document, i.e. of the paragraph after
 * `Background:` (or of the prompt's first paragraph); a title line is part of that sentence.
 */
export function fakeGenerate(prompt: string): string {
  const at = prompt.indexOf('Background:');
  const paragraph = (at >= 0 ? prompt.slice(at + 'Background:'.length) : prompt).trimStart().split('\n\n')[0];
  const m = /^[\s\S]*?[.!?](?=\s|$)/u.exec(paragraph);
  return (m ? m[0] : paragraph).trim();
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function completion(body: Record<string, unknown>, options: FakeLlmOptions): unknown {
  const prompt = body.prompt as string;
  const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : 16;
  const words = (options.generate ?? fakeGenerate)(prompt).split(/\s+/).filter(Boolean);
  const generated = words.slice(0, maxTokens).join(' ');
  const echo = body.echo === true;
  let logprobs: unknown = null;
  if (echo && typeof body.logprobs === 'number') {
    const toks = fakeTokenize(prompt);
    if (options.bosToken !== undefined) {
      const shift = Array.from(options.bosToken).length;
      toks.forEach((t) => (t.offset += shift));
      toks.unshift({ token: options.bosToken, offset: 0 });
    }
    const tokens = toks.map((t) => t.token);
    const lps = fakeLogprobs(tokens);
    logprobs = { tokens, token_logprobs: lps, text_offset: toks.map((t) => t.offset), top_logprobs: null };
  }
  const text = echo ? prompt + (maxTokens > 0 ? generated : '') : generated;
  return {
    id: 'cmpl-fake',
    object: 'text_completion',
    created: 0,
    model: body.model,
    choices: [{ index: 0, text, logprobs, finish_reason: 'length' }],
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  let data = '';
  for await (const chunk of req) data += chunk;
  return data;
}

/** Starts the fake server on 127.0.0.1 with an OS-chosen port. */
export async function startFakeLlmServer(initial: FakeLlmOptions = {}): Promise<FakeLlmServer> {
  const timers = new Set<NodeJS.Timeout>();
  const state: FakeLlmServer = {
    url: '',
    options: { ...initial },
    requests: [],
    inFlight: 0,
    maxInFlight: 0,
    close: async () => {},
  };
  const server = createServer(async (req, res) => {
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    res.on('close', () => state.inFlight--);
    const raw = await readBody(req);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      body = {};
    }
    state.requests.push({ url: req.url ?? '', headers: req.headers, body });
    const opts = state.options;
    if (opts.delayMs) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => (timers.delete(t), resolve()), opts.delayMs);
        timers.add(t);
      });
    }
    if (res.destroyed) return;
    if ((opts.failNext ?? 0) > 0) {
      opts.failNext = (opts.failNext ?? 0) - 1;
      if (opts.failWith === 'reset') return void req.socket.destroy();
      const headers: Record<string, string> = opts.retryAfterSeconds !== undefined ? { 'retry-after': String(opts.retryAfterSeconds) } : {};
      return send(res, opts.failWith ?? 500, { error: { message: 'injected failure' } }, headers);
    }
    if (req.method !== 'POST' || req.url !== '/v1/completions') return send(res, 404, { error: { message: 'not found' } });
    if (opts.apiKey !== undefined && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
      return send(res, 401, { error: { message: 'bad key' } });
    }
    if (typeof body.prompt !== 'string' || typeof body.model !== 'string') {
      return send(res, 400, { error: { message: 'model and a string prompt are required' } });
    }
    send(res, 200, completion(body, opts));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
