/**
 * Golden tests for the WordPiece tokenizer: expected pieces derived by hand from HF BertTokenizer's
 * algorithm (BasicTokenizer then greedy longest-match WordPiece) over a small test vocabulary,
 * plus tokenizer.json loading, the fixture vocab, error codes and a light property test.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  basicTokenize,
  createWordPieceTokenizer,
  loadTokenizer,
  parseTokenizerJson,
  parseVocabTxt,
} from '../../src/analysis/wordpiece.ts';

// HF tests/models/bert/test_tokenization_bert.py vocabulary, extended for the cases below.
const VOCAB = [
  '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'want', '##want', '##ed', 'wa', 'un', 'runn', '##ing', ',', 'low',
  'lowest', '##aff', '##able', 'hello', 'don', "'", 't', '中', '国', '!', '?', '.', 'how', 'are', 'you', 'creme',
  'brulee', 'world', '—', '1', '##2', '0', '##0', 'a', '##a', '$', '^', 'x',
];

const tok = createWordPieceTokenizer(VOCAB);

const GOLDEN: { text: string; tokens: string[]; why: string }[] = [
  { text: 'UNwant\u00E9d,running', tokens: ['un', '##want', '##ed', ',', 'runn', '##ing'], why: 'HF full-tokenizer case' },
  { text: 'unaffable', tokens: ['un', '##aff', '##able'], why: 'longest-match-first pieces' },
  { text: 'Héllo', tokens: ['hello'], why: 'lower-case + NFD accent strip' },
  { text: 'HÉLLO', tokens: ['hello'], why: 'upper-case accented' },
  { text: 'a\u0301', tokens: ['a'], why: 'combining accent (NFC then NFD strip)' },
  { text: "don't", tokens: ['don', "'", 't'], why: 'apostrophe is punctuation' },
  { text: '中国人', tokens: ['中', '国', '[UNK]'], why: 'each CJK ideograph is a word; 人 not in vocab' },
  { text: 'wantedx', tokens: ['[UNK]'], why: 'unmatchable remainder ##x makes the whole word [UNK]' },
  { text: 'lowe', tokens: ['[UNK]'], why: 'low + ##e, ##e missing' },
  { text: 'lowest low', tokens: ['lowest', 'low'], why: 'whole word wins over pieces' },
  { text: ' \tHeLLo!how  \n Are yoU?  ', tokens: ['hello', '!', 'how', 'are', 'you', '?'], why: 'HF basic-tokenizer case' },
  { text: 'hel\u0000lo\u200b world', tokens: ['hello', 'world'], why: 'NUL (Cc) and ZWSP (Cf) are removed' },
  { text: 'Crème Brûlée.', tokens: ['creme', 'brulee', '.'], why: 'accents on several letters' },
  { text: 'hello—world', tokens: ['hello', '—', 'world'], why: 'em dash (Pd) is punctuation' },
  { text: '12,000', tokens: ['1', '##2', ',', '0', '##0', '##0'], why: 'digits split into pieces' },
  { text: '$a^', tokens: ['$', 'a', '^'], why: '$ and ^ are ASCII punctuation for BERT (not category P)' },
  { text: 'hello\u3000world\u00a0you', tokens: ['hello', 'world', 'you'], why: 'ideographic and no-break spaces (Zs)' },
  { text: 'HELLO\tWORLD\r\nHow', tokens: ['hello', 'world', 'how'], why: 'tabs and CRLF' },
  { text: 'a'.repeat(100), tokens: ['a', ...Array<string>(99).fill('##a')], why: '100 chars is still tokenized' },
  { text: 'a'.repeat(101), tokens: ['[UNK]'], why: 'over 100 chars → [UNK]' },
  { text: '\u0301', tokens: [], why: 'a lone combining mark strips to nothing' },
  { text: '', tokens: [], why: 'empty' },
  { text: '  \n\t ', tokens: [], why: 'whitespace only' },
  { text: '[CLS] hello', tokens: ['[UNK]', '[UNK]', '[UNK]', 'hello'], why: 'special-token strings in text are not recognised' },
];

describe('WordPiece tokenize: golden table', () => {
  it.each(GOLDEN)('$why: $text', ({ text, tokens }) => {
    expect(tok.tokenize(text)).toEqual(tokens);
  });
});

describe('basicTokenize options (HF test_basic_tokenizer_* cases)', () => {
  const text = ' \tHäLLo!how  \n Are yoU?  ';
  it.each([
    { opts: { lowercase: true }, tokens: ['hallo', '!', 'how', 'are', 'you', '?'] },
    { opts: { lowercase: true, stripAccents: false }, tokens: ['hällo', '!', 'how', 'are', 'you', '?'] },
    { opts: { lowercase: false }, tokens: ['HäLLo', '!', 'how', 'Are', 'yoU', '?'] },
    { opts: { lowercase: false, stripAccents: true }, tokens: ['HaLLo', '!', 'how', 'Are', 'yoU', '?'] },
  ])('$opts', ({ opts, tokens }) => {
    expect(basicTokenize(text, opts)).toEqual(tokens);
  });
  it('keeps CJK together when handleChineseChars is false', () => {
    expect(basicTokenize('中国人', { handleChineseChars: false })).toEqual(['中国人']);
  });
});

describe('encode', () => {
  const id = (t: string): number => VOCAB.indexOf(t);
  it('wraps in [CLS] … [SEP] with an all-ones mask', () => {
    const e = tok.encode('unaffable', 8);
    expect(e.tokens).toEqual(['[CLS]', 'un', '##aff', '##able', '[SEP]']);
    expect(e.ids).toEqual([2, id('un'), id('##aff'), id('##able'), 3]);
    expect(e.attentionMask).toEqual([1, 1, 1, 1, 1]);
  });
  it('truncates pieces so the total fits maxLength', () => {
    expect(tok.encode('unaffable', 4).tokens).toEqual(['[CLS]', 'un', '##aff', '[SEP]']);
    expect(tok.encode('unaffable', 2).tokens).toEqual(['[CLS]', '[SEP]']);
    expect(() => tok.encode('x', 1)).toThrow(RangeError);
  });
  it('exposes special ids and lookups', () => {
    expect([tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId]).toEqual([0, 1, 2, 3, 4]);
    expect([...tok.specialIds].sort()).toEqual([0, 2, 3, 4]);
    expect(tok.vocabSize).toBe(VOCAB.length);
    expect(tok.tokenToId('##aff')).toBe(id('##aff'));
    expect(tok.idToToken(id('##aff'))).toBe('##aff');
    expect(tok.tokenizeToIds("don't")).toEqual([id('don'), id("'"), id('t')]);
  });
});

describe('loading', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'r3-tok-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const tokenizerJson = (normalizer: unknown): unknown => ({
    version: '1.0',
    normalizer,
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(VOCAB.map((t, i) => [t, i])),
    },
  });

  it('honours normalizer.lowercase / strip_accents from tokenizer.json', () => {
    const cased = parseTokenizerJson(tokenizerJson({ type: 'BertNormalizer', lowercase: false, strip_accents: null, clean_text: true, handle_chinese_chars: true }));
    expect(createWordPieceTokenizer(cased.vocab, cased.options).tokenize('Hello héllo')).toEqual(['[UNK]', '[UNK]']);
    const uncased = parseTokenizerJson(tokenizerJson({ type: 'BertNormalizer', lowercase: true, strip_accents: null }));
    expect(createWordPieceTokenizer(uncased.vocab, uncased.options).tokenize('Hello héllo')).toEqual(['hello', 'hello']);
    const noStrip = parseTokenizerJson(tokenizerJson({ type: 'BertNormalizer', lowercase: true, strip_accents: false }));
    expect(createWordPieceTokenizer(noStrip.vocab, noStrip.options).tokenize('Héllo')).toEqual(['[UNK]']);
    const seq = parseTokenizerJson(tokenizerJson({ type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Lowercase' }, { type: 'StripAccents' }] }));
    expect(createWordPieceTokenizer(seq.vocab, seq.options).tokenize('HÉLLO')).toEqual(['hello']);
  });

  it('loads tokenizer.json and vocab.txt files alike', async () => {
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson({ type: 'BertNormalizer', lowercase: true })));
    await writeFile(join(dir, 'vocab.txt'), VOCAB.join('\r\n') + '\r\n');
    for (const file of ['tokenizer.json', 'vocab.txt']) {
      const t = await loadTokenizer(join(dir, file));
      expect(t.tokenize('UNwant\u00E9d,running')).toEqual(['un', '##want', '##ed', ',', 'runn', '##ing']);
      expect(t.vocabSize).toBe(VOCAB.length);
    }
  });

  it('rejects a non-WordPiece model and a vocabulary without [CLS] with TOKENIZER_INVALID', async () => {
    await writeFile(join(dir, 'bpe.json'), JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: [] } }));
    await expect(loadTokenizer(join(dir, 'bpe.json'))).rejects.toMatchObject({ code: 'TOKENIZER_INVALID', details: { file: 'bpe.json' } });
    await writeFile(join(dir, 'nocls.txt'), '[PAD]\n[UNK]\n[SEP]\nhello\n');
    await expect(loadTokenizer(join(dir, 'nocls.txt'))).rejects.toMatchObject({ code: 'TOKENIZER_INVALID', details: { token: '[CLS]' } });
    await expect(loadTokenizer(join(dir, 'missing.txt'))).rejects.toMatchObject({ code: 'TOKENIZER_INVALID' });
  });

  it('parseVocabTxt keeps ids = line numbers and only strips the newline', () => {
    expect(parseVocabTxt('a\n b\r\n\nc\n')).toEqual(['a', ' b', '', 'c']);
  });

  it('tokenizes test sentences meaningfully with the committed fixture vocab', async () => {
    const vocab = fileURLToPath(new URL('../fixtures/models/sidr-a/vocab.txt', import.meta.url));
    const t = await loadTokenizer(vocab);
    expect(t.tokenize('The capital of France is Paris.')).toEqual(['the', 'capital', 'of', 'france', 'is', 'paris', '.']);
    expect(t.tokenize('Protein cells learned quickly')).toEqual(['protein', 'cell', '##s', 'learn', '##ed', 'q', '##u', '##ic', '##k', '##ly']);
    expect(t.tokenize('中文')).toEqual(['中', '文']);
  });
});

describe('properties', () => {
  it('every piece is in the vocabulary and encode respects maxLength', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60, unit: 'grapheme' }), fc.integer({ min: 2, max: 12 }), (text, maxLength) => {
        for (const p of tok.tokenize(text)) expect(tok.tokenToId(p)).toBeDefined();
        const e = tok.encode(text, maxLength);
        expect(e.ids.length).toBeLessThanOrEqual(maxLength);
        expect(e.ids[0]).toBe(tok.clsId);
        expect(e.ids[e.ids.length - 1]).toBe(tok.sepId);
      }),
      { numRuns: 200 },
    );
  });

  it('agrees with a straightforward per-character reference (the fast paths and the word cache change nothing)', () => {
    const alphabet = ['a', 'n', 't', 'w', 'e', 'd', 'U', 'N', ' ', '\t', '\n', ',', '!', '$', '^', '\u0000', '\u0007', '\u007f', '\u00ad', 'é', 'É', 'a\u0301', '中', '国', '人', '\u3000', '\u00a0', '—', '😀', '\ud840\udc00', "'", '1', '2', '0'];
    const opts = [{}, { lowercase: false }, { lowercase: true, stripAccents: false }, { handleChineseChars: false }, { cleanText: false }];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 40 }), fc.constantFrom(...opts), fc.integer({ min: 2, max: 12 }), (parts, o, maxLength) => {
        const text = parts.join('');
        const t = createWordPieceTokenizer(VOCAB, o);
        const expected = referenceTokenize(text, o);
        expect(t.tokenize(text)).toEqual(expected);
        expect(t.tokenize(text)).toEqual(expected); // second time through the word cache
        expect(t.encode(text, maxLength).tokens).toEqual(['[CLS]', ...expected.slice(0, maxLength - 2), '[SEP]']); // truncation stops early
      }),
      { numRuns: 300 },
    );
  });
});

/** HF BertTokenizer, one character at a time, no fast path and no cache: the oracle of the test above. */
function referenceTokenize(text: string, o: { lowercase?: boolean; stripAccents?: boolean; handleChineseChars?: boolean; cleanText?: boolean }): string[] {
  const isWs = (ch: string) => ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /\p{Zs}/u.test(ch);
  const isCtl = (ch: string) => !(ch === '\t' || ch === '\n' || ch === '\r') && /\p{C}/u.test(ch);
  const isPunct = (ch: string) => {
    const cp = ch.codePointAt(0)!;
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126) || /\p{P}/u.test(ch);
  };
  const isCjk = (cp: number) =>
    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
  const lowercase = o.lowercase ?? true;
  const strip = o.stripAccents ?? lowercase;
  let t = text;
  if (o.cleanText !== false) {
    let c = '';
    for (const ch of t) if (!(ch.codePointAt(0) === 0 || ch.codePointAt(0) === 0xfffd || isCtl(ch))) c += isWs(ch) ? ' ' : ch;
    t = c;
  }
  if (o.handleChineseChars !== false) {
    let c = '';
    for (const ch of t) c += isCjk(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
    t = c;
  }
  const words: string[] = [];
  for (let w of t.normalize('NFC').trim().split(/\s+/u)) {
    if (!w) continue;
    if (lowercase) w = w.toLowerCase();
    if (strip) w = [...w.normalize('NFD')].filter((ch) => !/\p{Mn}/u.test(ch)).join('');
    let cur = '';
    for (const ch of w) {
      if (isPunct(ch)) {
        if (cur) words.push(cur);
        words.push(ch);
        cur = '';
      } else cur += ch;
    }
    if (cur) words.push(cur);
  }
  const vocab = new Set(VOCAB);
  const out: string[] = [];
  for (const word of words.filter((w) => w.length > 0)) {
    const chars = Array.from(word);
    if (chars.length > 100) {
      out.push('[UNK]');
      continue;
    }
    const pieces: string[] = [];
    let start = 0;
    let bad = false;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      for (; start < end; end--) {
        const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        if (vocab.has(sub)) {
          found = sub;
          break;
        }
      }
      if (found === undefined) {
        bad = true;
        break;
      }
      pieces.push(found);
      start = end;
    }
    out.push(...(bad ? ['[UNK]'] : pieces));
  }
  return out;
}
