/**
 * Answer matching for RAG labels and answer-recall metrics: DPR's `has_answer` (string mode) and
 * SQuAD's `normalize_answer`. Pure string functions; no I/O, no state. `bench/lib/answers.ts`
 * re-exports this file so evaluation and training use one definition.
 */

/**
 * DPR's SimpleTokenizer (`dpr/utils/tokenizers.py`): `ALPHA_NUM = [\p{L}\p{N}\p{M}]+` or a single
 * `NON_WS = [^\p{Z}\p{C}]`. Control characters (tab, newline) fall in \p{C}, so they separate tokens.
 */
const DPR_TOKEN = /[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]/gu;

/**
 * Tokenises as DPR does for `match_type="string"`: NFD-normalise, split into alphanumeric runs and
 * single other non-space characters, lower-case each token (`words(uncased=True)`).
 *
 * @example dprTokens('Émile Zola!') → ['émile', 'zola', '!'] (in NFD form)
 */
export function dprTokens(text: string): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFD').matchAll(DPR_TOKEN)) out.push(m[0].toLowerCase());
  return out;
}

/** True when `needle` occurs as a contiguous run of `haystack`. An empty needle occurs everywhere. */
function containsRun(haystack: readonly string[], needle: readonly string[]): boolean {
  const n = needle.length;
  outer: for (let i = 0; i + n <= haystack.length; i++) {
    for (let j = 0; j < n; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/**
 * DPR `has_answer(answers, text, tokenizer, match_type="string")` (`dpr/data/qa_validation.py`):
 * true when any answer's token sequence is a contiguous subsequence of the text's tokens.
 *
 * Faithful to DPR in its edge cases too: an answer with no tokens (e.g. `""` or `"  "`) matches
 * every text, because DPR compares the empty list with an empty slice. Callers that cannot rule
 * such answers out should drop them first.
 */
export function hasAnswer(text: string, answers: readonly string[]): boolean {
  const tokens = dprTokens(text);
  for (const answer of answers) {
    if (containsRun(tokens, dprTokens(answer))) return true;
  }
  return false;
}

/**
 * A matcher for one text against many answers, tokenising the text once. Use when the same
 * passage is checked against answer entries one at a time (one label per entry).
 */
export function createAnswerMatcher(text: string): (answer: string) => boolean {
  let tokens = tokenCache.get(text);
  if (tokens === undefined) {
    tokens = dprTokens(text);
    // Training scores the same passages for many queries: tokenize each once (bounded memo).
    if (tokenCache.size >= TOKEN_CACHE_MAX) tokenCache.delete(tokenCache.keys().next().value!);
    tokenCache.set(text, tokens);
  }
  const t = tokens;
  return (answer) => containsRun(t, dprTokens(answer));
}

/** Passages whose DPR tokens are memoised (oldest evicted first). */
const TOKEN_CACHE_MAX = 20_000;
const tokenCache = new Map<string, string[]>();

/** Python's `string.punctuation`: the 32 ASCII punctuation characters. */
const ASCII_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
/**
 * Python's `\b(a|an|the)\b` on a str: `\w` is Unicode-aware there (letters, digits, underscore),
 * whereas JavaScript's `\b` is ASCII-only even with the `u` flag, so the boundary is spelled out.
 */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
/** Python's `str.split()` separators (`str.isspace`): note U+001C–U+001F and U+0085, but not U+FEFF. */
const PY_WHITESPACE = /[\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/**
 * SQuAD v1.1 `normalize_answer` (official `evaluate-v1.1.py`): lower-case, remove ASCII
 * punctuation, remove the articles a/an/the, collapse whitespace. Used for exact match and F1.
 */
export function squadNormalize(s: string): string {
  const noArticles = s.toLowerCase().replace(ASCII_PUNCTUATION, '').replace(ARTICLES, ' ');
  return noArticles.split(PY_WHITESPACE).filter((w) => w.length > 0).join(' ');
}

/** SQuAD exact match: 1 when the normalised prediction equals any normalised gold answer. */
export function squadExactMatch(prediction: string, answers: readonly string[]): 0 | 1 {
  const p = squadNormalize(prediction);
  return answers.some((a) => squadNormalize(a) === p) ? 1 : 0;
}
