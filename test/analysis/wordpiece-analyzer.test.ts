/**
 * The `wordpiece` analyzer: options resolved from a model directory, terms = the tokenizer's
 * pieces (golden), [UNK] flagged, the vocabulary hash shared by models with one vocabulary and
 * enforced on open, and the same terms from an analysis worker thread as in process.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnalyzer, resolveAnalyzerOptions } from '../../src/analysis/index.ts';
import { AnalysisPool } from '../../src/analysis/pool.ts';
import { loadTokenizer, vocabularyHash } from '../../src/analysis/wordpiece.ts';
import type { WordPieceAnalyzerOptions } from '../../src/analysis/wordpiece-analyzer.ts';

const MODELS = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
const WINK = { name: 'wink', stem: true } as const;

const GOLDEN = [
  { text: 'The capital of France is Paris.', terms: ['the', 'capital', 'of', 'france', 'is', 'paris', '.'] },
  { text: 'Protein cells learned quickly', terms: ['protein', 'cell', '##s', 'learn', '##ed', 'q', '##u', '##ic', '##k', '##ly'] },
  { text: 'PARIS, France!', terms: ['paris', ',', 'france', '!'] },
  { text: 'Crème brûlée', terms: ['c', '##r', '##e', '##m', '##e', 'b', '##r', '##u', '##l', '##e', '##e'] },
  { text: '', terms: [] },
];

describe('wordpiece analyzer', () => {
  const options = resolveAnalyzerOptions({ name: 'wordpiece', model: join(MODELS, 'sidr-a') }, WINK) as WordPieceAnalyzerOptions;

  it('resolves a model directory to its vocabulary file, flags and hash', () => {
    expect(options).toMatchObject({ name: 'wordpiece', vocabPath: join(MODELS, 'sidr-a', 'vocab.txt'), model: join(MODELS, 'sidr-a'), lowercase: true, stripAccents: true });
    expect(options.vocabHash).toMatch(/^[0-9a-f]{64}$/);
    expect(resolveAnalyzerOptions(undefined, WINK)).toEqual(WINK);
  });

  it.each(GOLDEN)('terms of "$text"', ({ text, terms }) => {
    expect(createAnalyzer(options).analyze(text).map((t) => t.term)).toEqual(terms);
  });

  it('keeps [UNK] as a term flagged stop; surfaces equal terms', () => {
    const tokens = createAnalyzer(options).analyze('x' + 'y'.repeat(120) + ' city');
    expect(tokens).toEqual([
      { term: '[UNK]', surface: '[UNK]', stop: true },
      { term: 'city', surface: 'city', stop: false },
    ]);
  });

  it('hashes the vocabulary: equal across models that share it, different when normalisation differs', async () => {
    const a = await loadTokenizer(join(MODELS, 'sidr-a', 'vocab.txt'));
    const b = await loadTokenizer(join(MODELS, 'dense-b', 'vocab.txt'));
    expect(vocabularyHash(a)).toBe(vocabularyHash(b));
    expect(vocabularyHash(a)).toBe(options.vocabHash);
    const cased = await loadTokenizer(join(MODELS, 'sidr-a', 'vocab.txt'), { lowercase: false });
    expect(vocabularyHash(cased)).not.toBe(vocabularyHash(a));
  });

  it('refuses a vocabulary file that changed since the collection recorded its hash', () => {
    expect(() => createAnalyzer({ ...options, vocabHash: '0'.repeat(64) })).toThrow(expect.objectContaining({ code: 'COLLECTION_OPTIONS_MISMATCH' }));
  });

  it('fails with MODEL_NOT_FOUND / TOKENIZER_INVALID on a bad model directory or vocabulary', async () => {
    expect(() => resolveAnalyzerOptions({ name: 'wordpiece', model: join(MODELS, 'nope') }, WINK)).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }));
    expect(() => resolveAnalyzerOptions({ name: 'wordpiece' }, WINK)).toThrow(expect.objectContaining({ code: 'TOKENIZER_INVALID' }));
    const dir = await mkdtemp(join(tmpdir(), 'r3-wp-'));
    try {
      await writeFile(join(dir, 'vocab.txt'), '[PAD]\n[UNK]\nhello\n');
      expect(() => resolveAnalyzerOptions({ name: 'wordpiece', vocabPath: join(dir, 'vocab.txt') }, WINK)).toThrow(expect.objectContaining({ code: 'TOKENIZER_INVALID' }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('honours tokenizer.json in a model directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'r3-wp-'));
    try {
      await cp(join(MODELS, 'sidr-a'), dir, { recursive: true });
      const vocab = (await readFile(join(dir, 'vocab.txt'), 'utf8')).trimEnd().split('\n');
      await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ normalizer: { type: 'BertNormalizer', lowercase: false }, model: { type: 'WordPiece', vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) } }));
      const o = resolveAnalyzerOptions({ name: 'wordpiece', model: dir }, WINK) as WordPieceAnalyzerOptions;
      expect(o).toMatchObject({ vocabPath: join(dir, 'tokenizer.json'), lowercase: false });
      expect(o.vocabHash).not.toBe(options.vocabHash);
      expect(createAnalyzer(o).analyze('Paris paris').map((t) => t.term)).toEqual(['[UNK]', 'paris']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('in an analysis worker thread', () => {
    let pool: AnalysisPool;
    beforeAll(() => {
      pool = new AnalysisPool(1);
    });
    afterAll(async () => {
      await pool.close();
    });

    it('builds the analyzer from plain options and gives the same terms', async () => {
      const texts = GOLDEN.map((g) => g.text);
      const out = await pool.analyze(options, texts);
      expect(out.map((d) => Array.from(d.local, (k) => d.vocab.terms[k]))).toEqual(GOLDEN.map((g) => g.terms));
    }, 60_000);
  });
});
