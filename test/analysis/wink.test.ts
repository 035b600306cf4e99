/**
 * Golden table for the wink analyzer: lower-cased normal forms, words and numbers kept, stop
 * words flagged, Porter2 stems; and determinism regardless of what was read before.
 */
import { describe, expect, it } from 'vitest';
import { createWinkAnalyzer } from '../../src/analysis/wink.ts';

const CASES: Array<{ text: string; terms: string[]; stops?: string[] }> = [
  { text: 'Cats are running', terms: ['cat', 'are', 'run'], stops: ['are'] },
  { text: 'The U.S. economy grew 3.5% in 2019.', terms: ['the', 'u.s.', 'economi', 'grew', '3.5', 'in', '2019'], stops: ['the', 'in'] },
  { text: "COVID-19 isn't over", terms: ['covid-19', 'is', 'not', 'over'] },
  { text: 'Email me at a@b.com or visit http://x.com :)', terms: ['email', 'me', 'at', 'or', 'visit'] },
  { text: '!!! ... ???', terms: [] },
  { text: 'naïve café', terms: ['naïv', 'café'] },
  { text: 'UPPER lower MiXeD', terms: ['upper', 'lower', 'mix'] },
];

describe('wink analyzer', () => {
  const analyzer = createWinkAnalyzer({ stem: true });

  it.each(CASES)('analyses "$text"', ({ text, terms, stops }) => {
    const tokens = analyzer.analyze(text);
    expect(tokens.map((t) => t.term)).toEqual(terms);
    if (stops) expect(tokens.filter((t) => t.stop).map((t) => t.term)).toEqual(stops);
  });

  it('keeps surfaces unstemmed and stems only when asked', () => {
    const plain = createWinkAnalyzer({ stem: false });
    expect(plain.analyze('Running dogs').map((t) => t.term)).toEqual(['running', 'dogs']);
    expect(analyzer.analyze('Running dogs').map((t) => t.surface)).toEqual(['running', 'dogs']);
  });

  it('tokenizes the same text the same way whatever was read before', () => {
    const text = 'Receptors 5a and C5a bind factor 5b; IL-6R and p53-null cells.';
    const fresh = createWinkAnalyzer({ stem: true }).analyze(text).map((t) => t.term);
    const used = createWinkAnalyzer({ stem: true });
    for (const warm of ['5a 5b c5a', 'IL-6R p53-null 5a.', 'factor 5a receptor', text]) used.analyze(warm);
    expect(used.analyze(text).map((t) => t.term)).toEqual(fresh);
  });
});

describe('wink batch analysis', () => {
  const TEXTS = [
    'The U.S. economy grew 3.5% in 2019. The U.S. economy!',
    "COVID-19 isn't over; we can't stop (yet) — don't we?",
    'Email me at a@b.com or visit http://x.com :) #tag @user',
    'naïve café\u00a0résumé\tcoöperate\nline\r\nbreaks',
    'IL-6R and p53-null cells: 5a, C5a, (TNF-α) [ref 12] e.g. etc. Dr. Smith',
    '',
    '   spaces   only   ',
    'repeated repeated repeated words words',
    'Cats are running, dogs bark; cats are RUNNING.',
  ];

  it('gives each text the tokens analyze() gives it, as indices into the batch terms', () => {
    const reference = createWinkAnalyzer({ stem: true });
    const batch = createWinkAnalyzer({ stem: true }).analyzeBatch!(TEXTS);
    TEXTS.forEach((text, i) => {
      const tokens = reference.analyze(text);
      expect(Array.from(batch.docs[i], (k) => batch.terms[k]), text).toEqual(tokens.map((t) => t.term));
    });
    // Distinct terms in order of first occurrence, each with the surface and stop flag seen first.
    const firsts = new Map<string, { surface: string; stop: boolean }>();
    for (const text of TEXTS) for (const t of reference.analyze(text)) if (!firsts.has(t.term)) firsts.set(t.term, { surface: t.surface, stop: t.stop });
    expect(batch.terms).toEqual([...firsts.keys()]);
    expect(batch.surfaces).toEqual([...firsts.values()].map((f) => f.surface));
    expect(Array.from(batch.stops, (x) => x === 1)).toEqual([...firsts.values()].map((f) => f.stop));
  });

  it('answers the same whatever the analyzer read before, and across batches', () => {
    const warm = createWinkAnalyzer({ stem: false });
    warm.analyzeBatch!(['warm-up text with cells, (IL-6) and U.S. words', 'more']);
    const fresh = createWinkAnalyzer({ stem: false });
    const a = warm.analyzeBatch!(TEXTS);
    const b = fresh.analyzeBatch!(TEXTS);
    expect(a.terms).toEqual(b.terms);
    expect(a.docs.map((d) => Array.from(d))).toEqual(b.docs.map((d) => Array.from(d)));
  });
});

describe('wink pipeline sharing', () => {
  it('creates many analyzers in one thread quickly (one pipeline per thread)', () => {
    const t0 = performance.now();
    const analyzers = Array.from({ length: 40 }, (_, i) => createWinkAnalyzer({ stem: i % 2 === 0 }));
    for (const a of analyzers) expect(a.analyze('Cats are running').length).toBe(3);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });
});
