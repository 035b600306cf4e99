/**
 * The openai environment against the local fake completions server (test/helpers): answer-span
 * scoring, labels, closed-set choices, retries on 5xx/429/resets, timeouts, non-retryable errors,
 * the concurrency limit and cancellation. Loopback only.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  continuationTokenRange,
  createOpenAIEnvironment,
  renderPrompt,
  DEFAULT_PROMPT_TEMPLATE,
  type OpenAIEnvironmentOptions,
} from '../../src/rcl/environments/openai.ts';
import { startFakeLlmServer, type FakeLlmServer } from '../helpers/fake-llm-server.ts';

const DOC = { id: 'd1', title: 'France', text: 'Paris is the capital of France. It is large.' };
const QUERY = 'What is the capital of France?';

let server: FakeLlmServer;
beforeEach(async () => {
  server = await startFakeLlmServer();
});
afterEach(async () => {
  await server.close();
});

function env(extra: Partial<OpenAIEnvironmentOptions> = {}) {
  return createOpenAIEnvironment({ baseUrl: server.url, model: 'fake', retryBaseMs: 5, timeoutMs: 2_000, ...extra });
}

describe('renderPrompt', () => {
  it('fills placeholders in one pass', () => {
    const p = renderPrompt('[1] {title}\n{text}\nQ: {question}', 'who {text}?', { title: 'T', text: 'has {question} inside' });
    expect(p).toBe('[1] T\nhas {question} inside\nQ: who {text}?');
    expect(renderPrompt(DEFAULT_PROMPT_TEMPLATE, 'q', { text: 'x' })).toBe('Background: x\n\nQuestion: q\nAnswer: ');
    expect(renderPrompt('{text}', 'q', { text: 'a😀bc' }, 2)).toBe('a😀');
  });
});

describe('scores', () => {
  it('multiplies the probabilities of the answer tokens only', async () => {
    const e = env({ labels: false });
    const [d] = await e.score({ query: QUERY, answers: ['Paris', 'Lyon', 'capital of France', 'Rome Italy'], docs: [DOC] });
    // Fake model: p = 0.9 for a word seen earlier in the prompt, else 0.1. " Paris" straddles the
    // prompt's trailing space and still counts as the answer's token.
    expect(d.perAnswer.map((a) => a.score)).toEqual([
      expect.closeTo(0.9, 12),
      expect.closeTo(0.1, 12),
      expect.closeTo(0.9 ** 3, 12),
      expect.closeTo(0.01, 12),
    ]);
    expect(d.perAnswer.every((a) => a.label === null)).toBe(true);
    expect(server.requests).toHaveLength(4);
    expect(server.requests[0].body).toMatchObject({ model: 'fake', max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
    expect(server.requests[0].body.prompt).toBe(renderPrompt(DEFAULT_PROMPT_TEMPLATE, QUERY, DOC) + 'Paris');
  });

  it('is unaffected by a BOS token echoed as text (shifted text_offset)', async () => {
    server.options.bosToken = '<|begin_of_text|>';
    const [d] = await env({ labels: false }).score({ query: QUERY, answers: ['Paris', 'Rome Italy'], docs: [DOC] });
    expect(d.perAnswer.map((a) => a.score)).toEqual([expect.closeTo(0.9, 12), expect.closeTo(0.01, 12)]);
  });

  it('scores a repeated answer once', async () => {
    const [d] = await env({ labels: false }).score({ query: QUERY, answers: ['Paris', 'Paris'], docs: [DOC] });
    expect(d.perAnswer).toHaveLength(2);
    expect(server.requests).toHaveLength(1);
  });
});

describe('continuationTokenRange', () => {
  it('falls back to text_offset when the echo does not end with the answer', () => {
    // Byte-level tokens decoded lossily: the joined echo no longer ends with "é".
    const lp = { tokens: ['Q:', ' ', '\ufffd', '\ufffd'], tokenLogprobs: [null, -1, -2, -3], textOffset: [0, 2, 3, 3] };
    expect(continuationTokenRange(lp, 'Q: ', 'é')).toEqual({ start: 2, end: 4 });
    const cumulative = { ...lp, textOffset: [0, 2, 3, 4] }; // offsets summing decoded lengths, as vLLM does
    expect(continuationTokenRange(cumulative, 'Q: ', 'é')).toEqual({ start: 2, end: 4 });
  });

  it('includes a token straddling the prompt boundary', () => {
    const lp = { tokens: ['Answer:', ' Paris'], tokenLogprobs: [null, -0.1], textOffset: [0, 7] };
    expect(continuationTokenRange(lp, 'Answer: ', 'Paris')).toEqual({ start: 1, end: 2 });
  });
});

describe('labels', () => {
  it('labels by whether the greedy generation contains the answer', async () => {
    const e = env({ maxGenerationTokens: 20 });
    const out = await e.score({
      query: QUERY,
      answers: ['paris', 'large'],
      docs: [DOC, { id: 'd2', text: 'Lyon is in France. Paris is not mentioned first.' }],
    });
    // Generation = the document's first sentence.
    expect(out.map((d) => d.perAnswer.map((a) => a.label))).toEqual([
      [1, 0],
      [0, 0],
    ]);
    const gen = server.requests.filter((r) => r.body.echo === false);
    expect(gen).toHaveLength(2);
    expect(gen[0].body).toMatchObject({ max_tokens: 20, temperature: 0 });
  });

  it('lets a request skip label generation', async () => {
    await env().score({ query: QUERY, answers: ['Paris'], docs: [DOC], labels: false });
    expect(server.requests.every((r) => r.body.echo === true)).toBe(true);
  });
});

describe('closed-set choices', () => {
  it('labels positive iff the gold choice is the most probable', async () => {
    const doc = { id: 'c1', text: 'The claim is true according to this source.' };
    const e = env();
    const [d] = await e.score({ query: 'Is it correct?', answers: ['true'], choices: ['true', 'false'], docs: [doc] });
    expect(d.choiceScores).toEqual([expect.closeTo(0.9, 12), expect.closeTo(0.1, 12)]);
    expect(d.perAnswer).toEqual([{ answer: 'true', score: expect.closeTo(0.9, 12), label: 1 }]);
    const [n] = await e.score({ query: 'Is it correct?', answers: ['false'], choices: ['true', 'false'], docs: [doc] });
    expect(n.perAnswer[0].label).toBe(0);
    expect(server.requests.every((r) => r.body.echo === true)).toBe(true); // no generation for choices
  });

  it('rejects a gold answer outside the choices', async () => {
    await expect(env().score({ query: 'q', answers: ['maybe'], choices: ['true', 'false'], docs: [DOC] })).rejects.toMatchObject({
      code: 'RCL_INPUT_INVALID',
    });
    expect(server.requests).toHaveLength(0);
  });
});

describe('HTTP behaviour', () => {
  it.each([
    ['500', 500],
    ['503', 503],
    ['429', 429],
    ['socket reset', 'reset' as const],
  ])('retries after %s', async (_, failWith) => {
    server.options.failNext = 2;
    server.options.failWith = failWith;
    server.options.retryAfterSeconds = 0;
    const [d] = await env({ labels: false }).score({ query: QUERY, answers: ['Paris'], docs: [DOC] });
    expect(d.perAnswer[0].score).toBeCloseTo(0.9, 12);
    expect(server.requests.length).toBe(3);
  });

  it('gives up after maxRetries with the last status', async () => {
    server.options.failNext = 100;
    const err = await env({ labels: false, maxRetries: 2 })
      .score({ query: QUERY, answers: ['Paris'], docs: [DOC] })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RCL_ENVIRONMENT_FAILED', details: { attempts: 3, status: 500 } });
    expect(server.requests).toHaveLength(3);
  });

  it('does not retry a 4xx other than 429, and sends the API key', async () => {
    server.options.apiKey = 'secret';
    await expect(env({ labels: false, apiKey: 'wrong' }).score({ query: QUERY, answers: ['Paris'], docs: [DOC] })).rejects.toMatchObject({
      code: 'RCL_ENVIRONMENT_FAILED',
      details: { status: 401 },
    });
    expect(server.requests).toHaveLength(1);
    const [d] = await env({ labels: false, apiKey: 'secret' }).score({ query: QUERY, answers: ['Paris'], docs: [DOC] });
    expect(d.perAnswer[0].score).toBeCloseTo(0.9, 12);
    expect(server.requests[1].headers.authorization).toBe('Bearer secret');
  });

  it('times out slow attempts and retries them', async () => {
    server.options.delayMs = 2_000;
    const started = Date.now();
    const err = await env({ labels: false, timeoutMs: 50, maxRetries: 1 })
      .score({ query: QUERY, answers: ['Paris'], docs: [DOC] })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RCL_ENVIRONMENT_FAILED', details: { attempts: 2 } });
    expect(Date.now() - started).toBeLessThan(1_500); // two 50 ms attempts, not the 2 s delay
    expect(server.requests).toHaveLength(2);
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    server.options.delayMs = 20;
    const docs = Array.from({ length: 6 }, (_, i) => ({ id: `d${i}`, text: `Doc ${i} says Paris.` }));
    const out = await env({ concurrency: 2 }).score({ query: QUERY, answers: ['Paris'], docs });
    expect(out.map((d) => d.docId)).toEqual(docs.map((d) => d.id));
    expect(server.requests).toHaveLength(12); // one echo + one generation per document
    expect(server.maxInFlight).toBeLessThanOrEqual(2);
  });

  it('stops when the caller aborts, and after close()', async () => {
    server.options.delayMs = 1_000;
    const e = env({ labels: false });
    const ac = new AbortController();
    const pending = e.score({ query: QUERY, answers: ['Paris'], docs: [DOC] }, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 30);
    await expect(pending).rejects.toThrow('stop');
    await e.close();
    await expect(e.score({ query: QUERY, answers: ['Paris'], docs: [DOC] })).rejects.toMatchObject({ code: 'RCL_ENVIRONMENT_FAILED' });
  });

  it('rejects a non-http baseUrl at creation', () => {
    expect(() => createOpenAIEnvironment({ baseUrl: 'ftp://x', model: 'm' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
