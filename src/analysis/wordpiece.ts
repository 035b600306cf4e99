/**
 * BERT WordPiece tokenizer: BasicTokenizer (clean, CJK split, lower-case, accent strip, punctuation
 * split) then greedy longest-match-first WordPiece. Loads `vocab.txt` or a HuggingFace
 * `tokenizer.json` (WordPiece model only). Pure TS; it must agree token for token with HF
 * `BertTokenizer`, so every rule below cites the function it mirrors. Text analysis: `encoder/`
 * receives tokenizers built here as arguments and never imports this file.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createError } from '../errors.ts';
import type { SubwordEncoding, SubwordTokenizer } from '../types.ts';

/** Words longer than this many code points become `[UNK]` (HF `max_input_chars_per_word`). */
export const MAX_INPUT_CHARS_PER_WORD = 100;
/** Distinct words whose pieces one tokenizer memoises (cleared when full; ~100 B each). */
export const WORD_CACHE_ENTRIES = 65_536;

/** Normalisation and special-token options; the defaults are those of `bert-base-uncased`. */
export interface WordPieceOptions {
  /** Lower-case every token (HF `do_lower_case`). Default true. */
  lowercase?: boolean;
  /** NFD + drop combining marks. `undefined`/`null` follows `lowercase` (HF `strip_accents=None`). */
  stripAccents?: boolean | null;
  /** Put spaces around CJK ideographs so each is a word (HF `tokenize_chinese_chars`). Default true. */
  handleChineseChars?: boolean;
  /** Drop NUL, U+FFFD and control characters; map whitespace to ' ' (HF `_clean_text`). Default true. */
  cleanText?: boolean;
  /** Default `[UNK]`. */
  unkToken?: string;
  /** Default `[CLS]`. */
  clsToken?: string;
  /** Default `[SEP]`. */
  sepToken?: string;
  /** Default `[PAD]`. */
  padToken?: string;
  /** Default `[MASK]` (optional in the vocabulary). */
  maskToken?: string;
  /** Default `##`. */
  continuingSubwordPrefix?: string;
  /** Default {@link MAX_INPUT_CHARS_PER_WORD}. */
  maxInputCharsPerWord?: number;
}

/** One encoded text (the shared shape of `types.ts`). */
export type Encoding = SubwordEncoding;

/** A loaded WordPiece tokenizer: the {@link SubwordTokenizer} the encoder needs, plus lookups. */
export interface WordPieceTokenizer extends SubwordTokenizer {
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  /** -1 when the vocabulary has no mask token. */
  readonly maskId: number;
  /** Effective normalisation options (after tokenizer.json defaults). */
  readonly options: Readonly<Required<Omit<WordPieceOptions, 'stripAccents'>> & { stripAccents: boolean }>;
  /** Word pieces of `text`, without [CLS]/[SEP]. */
  tokenize(text: string): string[];
  /** Ids of {@link WordPieceTokenizer.tokenize}'s pieces. */
  tokenizeToIds(text: string): number[];
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

function tokenizerError(reason: string, details: Record<string, unknown>, cause?: unknown): Error {
  return createError('TOKENIZER_INVALID', { reason }, { details, cause });
}

// ---------------------------------------------------------------- character classes (HF tokenization_bert)

const RE_ZS = /\p{Zs}/u;
const RE_OTHER = /\p{C}/u;
const RE_PUNCT = /\p{P}/u;
const RE_MN = /\p{Mn}/u;

/** `_is_whitespace`: \t \n \r and space separators (Zs). */
function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || RE_ZS.test(ch);
}

/** `_is_control`: any "C*" category except \t \n \r, which count as whitespace. */
function isControl(ch: string): boolean {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return RE_OTHER.test(ch);
}

/** `_is_punctuation`: all non-alphanumeric ASCII (so `$`, `^`, `` ` `` count) plus every "P*" category. */
function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return cp >= 128 && RE_PUNCT.test(ch); // no other ASCII character is in a P* category
}

/** `_is_chinese_char`: the CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

// ---------------------------------------------------------------- BasicTokenizer

/** Printable ASCII plus \t \n \r: nothing to drop, only whitespace to map (the common case). */
const RE_CLEAN_ASCII = /^[\x20-\x7e\t\n\r]*$/;
/** Every code unit below U+3400: no CJK ideograph (all its blocks start at or above U+3400). */
const RE_BELOW_CJK = /^[\u0000-\u33ff]*$/;
/** Pure ASCII: NFD is the identity and no character is a combining mark. */
const RE_ASCII = /^[\x00-\x7f]*$/;

function cleanText(text: string): string {
  if (RE_CLEAN_ASCII.test(text)) return text.replace(/[\t\n\r]/g, ' ');
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    out += isWhitespace(ch) ? ' ' : ch;
  }
  return out;
}

function spaceChineseChars(text: string): string {
  if (RE_BELOW_CJK.test(text)) return text;
  let out = '';
  for (const ch of text) out += isChineseChar(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
  return out;
}

/** `_run_strip_accents`: NFD, then drop non-spacing marks (Mn). Not recomposed, as in BERT. */
function stripAccents(token: string): string {
  if (RE_ASCII.test(token)) return token;
  let out = '';
  for (const ch of token.normalize('NFD')) if (!RE_MN.test(ch)) out += ch;
  return out;
}

/** `_run_split_on_punc`: every punctuation character becomes its own token. */
function splitOnPunctuation(token: string, out: string[]): void {
  let current = '';
  for (const ch of token) {
    if (isPunctuation(ch)) {
      if (current) out.push(current);
      out.push(ch);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) out.push(current);
}

function whitespaceSplit(text: string): string[] {
  const t = text.trim();
  return t ? t.split(/\s+/u) : [];
}

/**
 * BERT BasicTokenizer (HF `BasicTokenizer.tokenize`): clean → space CJK → NFC → whitespace split →
 * per word lower-case / strip accents → split on punctuation. Special-token strings typed in the
 * text are not recognised (a document cannot inject `[SEP]`). Stops after about `maxWords` words.
 */
export function basicTokenize(text: string, options: WordPieceOptions = {}, maxWords = Infinity): string[] {
  const lowercase = options.lowercase ?? true;
  const strip = options.stripAccents ?? lowercase;
  let t = options.cleanText === false ? text : cleanText(text);
  if (options.handleChineseChars !== false) t = spaceChineseChars(t);
  t = t.normalize('NFC');
  const out: string[] = [];
  for (let word of whitespaceSplit(t)) {
    if (lowercase) word = word.toLowerCase();
    if (strip) word = stripAccents(word);
    splitOnPunctuation(word, out);
    if (out.length >= maxWords) break; // every word yields ≥ 1 piece: the rest cannot reach a truncated encoding
  }
  // HF re-splits on whitespace after punctuation splitting; stripping can leave empty words.
  return out.filter((w) => w.length > 0);
}

// ---------------------------------------------------------------- WordPiece

/**
 * Greedy longest-match-first (HF `WordpieceTokenizer.tokenize`): one word → its pieces, or
 * `[unk]` when it is too long or any remainder has no piece.
 */
function wordPiece(word: string, vocab: Map<string, number>, prefix: string, maxChars: number, unk: string, out: string[], maxPiece = Infinity): void {
  // ASCII words (the common case) slice code units; others go by code point, as HF does.
  const chars = RE_ASCII.test(word) ? word : Array.from(word);
  if (chars.length > maxChars) {
    out.push(unk);
    return;
  }
  const pieces: string[] = [];
  let start = 0;
  while (start < chars.length) {
    // No vocabulary entry is longer than maxPiece characters: longer candidates cannot match.
    let end = Math.min(chars.length, start + maxPiece);
    let found: string | undefined;
    while (start < end) {
      let sub = typeof chars === 'string' ? chars.slice(start, end) : chars.slice(start, end).join('');
      if (start > 0) sub = prefix + sub;
      if (vocab.has(sub)) {
        found = sub;
        break;
      }
      end -= 1;
    }
    if (found === undefined) {
      out.push(unk);
      return;
    }
    pieces.push(found);
    start = end;
  }
  out.push(...pieces);
}

/** Build a tokenizer from an ordered token list (id = index) or an explicit token → id map. */
export function createWordPieceTokenizer(vocab: readonly string[] | ReadonlyMap<string, number>, options: WordPieceOptions = {}): WordPieceTokenizer {
  const map = new Map<string, number>();
  if (Array.isArray(vocab)) vocab.forEach((tok, i) => map.set(tok, i)); // last duplicate wins, as HF `load_vocab`
  else for (const [tok, id] of vocab as ReadonlyMap<string, number>) map.set(tok, id);
  const lowercase = options.lowercase ?? true;
  const opts = {
    lowercase,
    stripAccents: options.stripAccents ?? lowercase,
    handleChineseChars: options.handleChineseChars ?? true,
    cleanText: options.cleanText ?? true,
    unkToken: options.unkToken ?? '[UNK]',
    clsToken: options.clsToken ?? '[CLS]',
    sepToken: options.sepToken ?? '[SEP]',
    padToken: options.padToken ?? '[PAD]',
    maskToken: options.maskToken ?? '[MASK]',
    continuingSubwordPrefix: options.continuingSubwordPrefix ?? '##',
    maxInputCharsPerWord: options.maxInputCharsPerWord ?? MAX_INPUT_CHARS_PER_WORD,
  };
  const need = (tok: string): number => {
    const id = map.get(tok);
    if (id === undefined) throw tokenizerError(`vocabulary lacks the special token ${tok}`, { token: tok });
    return id;
  };
  const unkId = need(opts.unkToken);
  const clsId = need(opts.clsToken);
  const sepId = need(opts.sepToken);
  const padId = need(opts.padToken);
  const maskId = map.get(opts.maskToken) ?? -1;
  const byId: string[] = [];
  let vocabSize = 0;
  for (const [tok, id] of map) {
    if (!Number.isInteger(id) || id < 0) throw tokenizerError(`token ${JSON.stringify(tok)} has an invalid id`, { token: tok, id });
    byId[id] = tok;
    vocabSize = Math.max(vocabSize, id + 1);
  }
  const specialIds = new Set([padId, clsId, sepId, ...(maskId >= 0 ? [maskId] : [])]);

  // Longest entry in characters (code points): bounds the greedy match's candidates (an entry
  // matched after the `##` prefix is shorter still, so the bound is safe for both positions).
  let maxPiece = 1;
  for (const token of map.keys()) maxPiece = Math.max(maxPiece, RE_ASCII.test(token) ? token.length : Array.from(token).length);
  // Word → pieces, memoised: natural text repeats its words, and WordPiece of a word is pure.
  const pieces = new Map<string, string[]>();
  const tokenize = (text: string, limit = Infinity): string[] => {
    const out: string[] = [];
    for (const word of basicTokenize(text, opts, limit)) {
      if (out.length >= limit) break;
      let p = pieces.get(word);
      if (p === undefined) {
        p = [];
        wordPiece(word, map, opts.continuingSubwordPrefix, opts.maxInputCharsPerWord, opts.unkToken, p, maxPiece);
        if (pieces.size >= WORD_CACHE_ENTRIES) pieces.clear();
        pieces.set(word, p);
      }
      for (const x of p) out.push(x);
    }
    return out.length > limit ? out.slice(0, limit) : out;
  };
  const tokenizeToIds = (text: string): number[] => tokenize(text).map((t) => map.get(t) ?? unkId);
  const encodeTokens = (text: string, maxLength: number): string[] => [opts.clsToken, ...tokenize(text, maxLength - 2), opts.sepToken];

  return {
    vocabSize, unkId, clsId, sepId, padId, maskId, specialIds,
    options: Object.freeze(opts),
    tokenize: (text) => tokenize(text),
    tokenizeToIds,
    encode(text: string, maxLength: number): Encoding {
      if (!(maxLength >= 2)) throw new RangeError(`maxLength must be at least 2, got ${maxLength}`);
      const tokens = encodeTokens(text, maxLength); // pieces past maxLength − 2 are never computed
      const ids = tokens.map((t) => map.get(t) ?? unkId);
      return { ids, attentionMask: ids.map(() => 1), tokens };
    },
    tokenToId: (token) => map.get(token),
    idToToken: (id) => byId[id],
  };
}

// ---------------------------------------------------------------- loading

/** `vocab.txt`: one token per line, id = line number (HF `load_vocab`; only the newline is stripped). */
export function parseVocabTxt(text: string): string[] {
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

interface NormalizerJson {
  type?: string;
  lowercase?: boolean;
  strip_accents?: boolean | null;
  clean_text?: boolean;
  handle_chinese_chars?: boolean;
  normalizers?: NormalizerJson[];
}

/** Options implied by a tokenizer.json `normalizer` (BertNormalizer, or a Sequence of simple ones). */
function normalizerOptions(n: NormalizerJson | null | undefined): WordPieceOptions {
  if (!n) return { lowercase: false, stripAccents: false, cleanText: false, handleChineseChars: false };
  if (n.type === 'BertNormalizer') {
    return {
      lowercase: n.lowercase ?? true,
      stripAccents: n.strip_accents ?? null,
      cleanText: n.clean_text ?? true,
      handleChineseChars: n.handle_chinese_chars ?? true,
    };
  }
  const parts = n.type === 'Sequence' ? (n.normalizers ?? []) : [n];
  const bert = parts.find((p) => p.type === 'BertNormalizer');
  const base: WordPieceOptions = bert
    ? normalizerOptions(bert)
    : { lowercase: false, stripAccents: false, cleanText: false, handleChineseChars: false };
  if (parts.some((p) => p.type === 'Lowercase')) base.lowercase = true;
  if (parts.some((p) => p.type === 'StripAccents')) base.stripAccents = true;
  if (base.stripAccents === null) base.stripAccents = base.lowercase;
  return base;
}

/**
 * Vocabulary and options from a parsed HuggingFace `tokenizer.json`. Only `model.type ===
 * 'WordPiece'` is accepted; `normalizer.lowercase` / `strip_accents` are honoured.
 */
export function parseTokenizerJson(json: unknown): { vocab: Map<string, number>; options: WordPieceOptions } {
  const j = json as {
    model?: { type?: string; vocab?: Record<string, number>; unk_token?: string; continuing_subword_prefix?: string; max_input_chars_per_word?: number };
    normalizer?: NormalizerJson | null;
    added_tokens?: { id: number; content: string }[];
    post_processor?: { type?: string; cls?: [string, number]; sep?: [string, number] } | null;
    padding?: { pad_token?: string } | null;
  };
  const model = j?.model;
  if (!model || (model.type !== undefined && model.type !== 'WordPiece') || typeof model.vocab !== 'object' || model.vocab === null) {
    throw tokenizerError('tokenizer.json must hold a WordPiece model with a vocab', { field: 'model', type: model?.type });
  }
  const vocab = new Map<string, number>(Object.entries(model.vocab));
  for (const t of j.added_tokens ?? []) if (!vocab.has(t.content)) vocab.set(t.content, t.id);
  const options: WordPieceOptions = normalizerOptions(j.normalizer);
  if (model.unk_token) options.unkToken = model.unk_token;
  if (model.continuing_subword_prefix) options.continuingSubwordPrefix = model.continuing_subword_prefix;
  if (model.max_input_chars_per_word) options.maxInputCharsPerWord = model.max_input_chars_per_word;
  if (j.post_processor?.type === 'BertProcessing') {
    if (j.post_processor.cls) options.clsToken = j.post_processor.cls[0];
    if (j.post_processor.sep) options.sepToken = j.post_processor.sep[0];
  }
  if (j.padding?.pad_token) options.padToken = j.padding.pad_token;
  return { vocab, options };
}

/** Parse a tokenizer file's text (`.json` → tokenizer.json, else vocab.txt) into a tokenizer. */
function fromText(file: string, text: string, options: WordPieceOptions): WordPieceTokenizer {
  try {
    if (file.endsWith('.json')) {
      const parsed = parseTokenizerJson(JSON.parse(text));
      return createWordPieceTokenizer(parsed.vocab, { ...parsed.options, ...options });
    }
    return createWordPieceTokenizer(parseVocabTxt(text), options);
  } catch (err) {
    if ((err as { code?: string }).code === 'TOKENIZER_INVALID') {
      Object.assign((err as { details: Record<string, unknown> }).details, { file });
      throw err;
    }
    throw tokenizerError(`cannot parse ${file}`, { file }, err);
  }
}

/**
 * Load a tokenizer from a `tokenizer.json` (by name or `.json` extension) or a `vocab.txt`.
 * `options` override what the file says. Throws `TOKENIZER_INVALID` with `details.file`.
 */
export async function loadTokenizer(path: string, options: WordPieceOptions = {}): Promise<WordPieceTokenizer> {
  const file = basename(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw tokenizerError(`cannot read ${file}`, { file }, cause);
  }
  return fromText(file, text, options);
}

/**
 * {@link loadTokenizer}, synchronously: analyzers are created synchronously (also inside analysis
 * worker threads) from the plain options stored with a collection.
 */
export function loadTokenizerSync(path: string, options: WordPieceOptions = {}): WordPieceTokenizer {
  const file = basename(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw tokenizerError(`cannot read ${file}`, { file }, cause);
  }
  return fromText(file, text, options);
}

/**
 * sha256 (hex) of everything that decides T(x): the tokens by id and the normalisation options.
 * Two tokenizers with equal hashes split every text into the same token strings, so a collection
 * indexed with one can be served by a model shipping the other (DESIGN §3.2 hot swap).
 */
export function vocabularyHash(tokenizer: WordPieceTokenizer): string {
  const h = createHash('sha256');
  const o = tokenizer.options;
  h.update(JSON.stringify([o.lowercase, o.stripAccents, o.handleChineseChars, o.cleanText, o.unkToken, o.continuingSubwordPrefix, o.maxInputCharsPerWord]));
  for (let id = 0; id < tokenizer.vocabSize; id++) h.update(`\n${id}:${tokenizer.idToToken(id) ?? ''}`);
  return h.digest('hex');
}
