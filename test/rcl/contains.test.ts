/**
 * The contains environment: 0/1 scores equal to DPR answer-match labels, per answer entry, and
 * thresholds that reduce to T⁺ = 0, T⁻ = 1 so online labels equal offline ones.
 */
import { describe, expect, it } from 'vitest';
import { createContainsEnvironment } from '../../src/rcl/environments/contains.ts';
import { computeThresholds, labelOnline } from '../../src/rcl/thresholds.ts';

const docs = [
  { id: 'd1', title: 'France', text: 'Paris is the capital of France.' },
  { id: 'd2', title: 'Paris', text: 'Lyon is a large city.' },
];

describe('contains environment', () => {
  it('scores each answer entry 0/1 by DPR matching of the text', async () => {
    const env = createContainsEnvironment();
    const out = await env.score({ query: 'capital of France?', answers: ['paris', 'PARIS!', 'Lyon'], docs });
    expect(out).toEqual([
      { docId: 'd1', perAnswer: [{ answer: 'paris', score: 1, label: 1 }, { answer: 'PARIS!', score: 0, label: 0 }, { answer: 'Lyon', score: 0, label: 0 }] },
      { docId: 'd2', perAnswer: [{ answer: 'paris', score: 0, label: 0 }, { answer: 'PARIS!', score: 0, label: 0 }, { answer: 'Lyon', score: 1, label: 1 }] },
    ]);
    await env.close();
  });

  it('matches the title only when asked', async () => {
    const env = createContainsEnvironment({ includeTitle: true });
    const [, d2] = await env.score({ query: 'q', answers: ['Paris'], docs });
    expect(d2.perAnswer[0].label).toBe(1);
    expect(env.fingerprint).not.toBe(createContainsEnvironment().fingerprint);
  });

  it('yields thresholds T⁺ = 0 and T⁻ = 1, so online labels equal the match', async () => {
    const env = createContainsEnvironment();
    const scored = await env.score({ query: 'q', answers: ['Paris'], docs });
    const t = computeThresholds([{ answer: 'Paris', docs: scored.map((d) => ({ docId: d.docId, score: d.perAnswer[0].score, label: d.perAnswer[0].label as 0 | 1 })) }]);
    expect(t.entries[0]).toMatchObject({ tPlus: 0, tMinus: 1 });
    expect(labelOnline(1, 0, 1)).toBe(1);
    expect(labelOnline(0, 0, 1)).toBe(0);
  });

  it('refuses closed-set requests', async () => {
    const env = createContainsEnvironment();
    await expect(env.score({ query: 'q', answers: ['true'], choices: ['true', 'false'], docs })).rejects.toMatchObject({ code: 'RCL_INPUT_INVALID' });
  });
});
