/**
 * Golden tables for answer matching (bench/lib/answers.ts → src/rcl/environments/answer-match.ts).
 * Expected values were produced by running DPR's own SimpleTokenizer/has_answer
 * (dpr/utils/tokenizers.py, dpr/data/qa_validation.py; Python `regex`) and SQuAD v1.1's
 * normalize_answer (evaluate-v1.1.py) on the same strings.
 */
import { describe, expect, it } from 'vitest';
import { createAnswerMatcher, dprTokens, hasAnswer, squadExactMatch, squadNormalize } from '../../bench/lib/answers.ts';

/** DPR SimpleTokenizer on NFD text, uncased: `{ text, tokens }`. */
const TOKEN_CASES: Array<{ text: string; tokens: string[] }> = [
  { text: "Hello, World!", tokens: ["hello", ",", "world", "!"] },
  { text: "U.S.A. isn't 3.14", tokens: ["u", ".", "s", ".", "a", ".", "isn", "'", "t", "3", ".", "14"] },
  { text: "\u00c9mile Zola", tokens: ["e\u0301mile", "zola"] },
  { text: "na\u00efve caf\u00e9", tokens: ["nai\u0308ve", "cafe\u0301"] },
  { text: "tab\there\nnewline", tokens: ["tab", "here", "newline"] },
  { text: "Beyonc\u00e9's 2nd album", tokens: ["beyonce\u0301", "'", "s", "2nd", "album"] },
  { text: "C++ & C#", tokens: ["c", "+", "+", "&", "c", "#"] },
  { text: "  spaced   out  ", tokens: ["spaced", "out"] },
  { text: "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", tokens: ["\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8"] },
  { text: "$1,000,000", tokens: ["$", "1", ",", "000", ",", "000"] },
  { text: "e-mail", tokens: ["e", "-", "mail"] },
  { text: "don\u2019t", tokens: ["don", "\u2019", "t"] },
  { text: "x\u200by", tokens: ["x", "y"] },
  { text: "\u00a0nbsp\u00a0", tokens: ["nbsp"] },
  { text: "\u01c5emal", tokens: ["\u01c6emal"] },
  { text: "\ud835\udc00\ud835\udc01 bold", tokens: ["\ud835\udc00\ud835\udc01", "bold"] },
  { text: "\ufb01ne", tokens: ["\ufb01ne"] },
];

/** DPR has_answer(match_type="string"): `{ text, answers, expected }`. */
const HAS_ANSWER_CASES: Array<{ text: string; answers: string[]; expected: boolean }> = [
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Denver Broncos"], expected: true },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["denver broncos"], expected: true },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Broncos won Super"], expected: true },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Bronco"], expected: false },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Super Bowl 5"], expected: false },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Carolina Panthers", "Super Bowl 50"], expected: true },
  { text: "The Denver Broncos won Super Bowl 50.", answers: ["Panthers"], expected: false },
  { text: "It cost $1,000 in 1990.", answers: ["$1,000"], expected: true },
  { text: "It cost $1,000 in 1990.", answers: ["1,000"], expected: true },
  { text: "It cost $1,000 in 1990.", answers: ["1000"], expected: false },
  { text: "\u00c9mile Zola wrote it.", answers: ["Emile Zola"], expected: false },
  { text: "\u00c9mile Zola wrote it.", answers: ["\u00e9mile zola"], expected: true },
  { text: "\u00c9mile Zola wrote it.", answers: ["E\u0301mile"], expected: true },
  { text: "the U.S. army", answers: ["U.S."], expected: true },
  { text: "the U.S. army", answers: ["US"], expected: false },
  { text: "anything", answers: [""], expected: true },
  { text: "anything", answers: ["   "], expected: true },
  { text: "anything", answers: [], expected: false },
  { text: "Beyonc\u00e9's album", answers: ["Beyonc\u00e9"], expected: true },
  { text: "Beyonc\u00e9's album", answers: ["Beyonc"], expected: false },
  { text: "New York-based", answers: ["York-based"], expected: true },
  { text: "New York-based", answers: ["York based"], expected: false },
  { text: "multi\nline\ttext", answers: ["line text"], expected: true },
  { text: "\ufb01ne print", answers: ["fine"], expected: false },
  { text: "caf\u00e9", answers: ["cafe\u0301"], expected: true },
  { text: "Stra\u00dfe", answers: ["strasse"], expected: false },
  { text: "\u00c0B", answers: ["\u00e0b"], expected: true },
];

/** SQuAD v1.1 normalize_answer: `{ input, normalized }`. */
const SQUAD_CASES: Array<{ input: string; normalized: string }> = [
  { input: "The Denver Broncos", normalized: "denver broncos" },
  { input: "  A  man, a plan: an  ISTHMUS!  ", normalized: "man plan isthmus" },
  { input: "Th\u00e9\u00e2tre", normalized: "th\u00e9\u00e2tre" },
  { input: "then", normalized: "then" },
  { input: "the_the", normalized: "thethe" },
  { input: "a-b-c", normalized: "abc" },
  { input: "Ann's apple", normalized: "anns apple" },
  { input: "\u00e9lan vital", normalized: "\u00e9lan vital" },
  { input: "caf\u00e9 a", normalized: "caf\u00e9" },
  { input: "x\u00a0y", normalized: "x y" },
  { input: "x\u1680y\u001cz", normalized: "x y z" },
  { input: "x\ufeffy", normalized: "x\ufeffy" },
  { input: "\u00c9TAT a B", normalized: "\u00e9tat b" },
  { input: "an \u00e9cho", normalized: "\u00e9cho" },
  { input: "the1 a2", normalized: "the1 a2" },
  { input: "(the) [a] {an}", normalized: "" },
  { input: "Anna", normalized: "anna" },
  { input: "ZZ the", normalized: "zz" },
  { input: "th\u00e9a", normalized: "th\u00e9a" },
  { input: "\u00e9a", normalized: "\u00e9a" },
  { input: "a\u0301b", normalized: "\u0301b" },
  { input: "the\u0301", normalized: "\u0301" },
  { input: "\uff41 the", normalized: "\uff41" },
  { input: "the\u00b2", normalized: "the\u00b2" },
  { input: "_a_", normalized: "" },
  { input: "\u0663a", normalized: "\u0663a" },
];

describe('dprTokens', () => {
  it.each(TOKEN_CASES)('tokenises $text', ({ text, tokens }) => {
    expect(dprTokens(text)).toEqual(tokens);
  });
});

describe('hasAnswer (DPR string match)', () => {
  it.each(HAS_ANSWER_CASES)('$text ∋ $answers → $expected', ({ text, answers, expected }) => {
    expect(hasAnswer(text, answers)).toBe(expected);
  });

  it('agrees with the one-text matcher', () => {
    for (const { text, answers, expected } of HAS_ANSWER_CASES) {
      const matches = createAnswerMatcher(text);
      expect(answers.some((a) => matches(a))).toBe(expected);
    }
  });
});

describe('squadNormalize', () => {
  it.each(SQUAD_CASES)('normalises $input', ({ input, normalized }) => {
    expect(squadNormalize(input)).toBe(normalized);
  });

  it('exact match compares normalised strings against any gold answer', () => {
    expect(squadExactMatch('the Denver Broncos!', ['Carolina', 'Denver Broncos'])).toBe(1);
    expect(squadExactMatch('Denver', ['Denver Broncos'])).toBe(0);
  });
});
