/**
 * The `wordpiece` analyzer: a collection's terms are the WordPiece token strings of a model's
 * vocabulary, so T(x) is the tokenizer's and identical across every model sharing it (DESIGN
 * §3.2). Built from plain options (also inside analysis worker threads); it must stay
 * deterministic, and it refuses a vocabulary file whose content differs from the one recorded.
 */
import { statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { createError } from '../errors.ts';
import type { Analyzer, Token } from '../types.ts';
import { loadTokenizerSync, vocabularyHash, type WordPieceTokenizer } from './wordpiece.ts';

/** Options of the wordpiece analyzer as stored with a collection (they decide its on-disk format). */
export interface WordPieceAnalyzerOptions {
  name: 'wordpiece';
  /** Absolute path of the `tokenizer.json` or `vocab.txt` that defines the terms. */
  vocabPath: string;
  /** The model directory the vocabulary came from (informational). */
  model?: string;
  /** Lower-case before splitting (HF `do_lower_case`); default: what the file says, else true. */
  lowercase?: boolean;
  /** Strip accents; default follows `lowercase` (HF `strip_accents=None`). */
  stripAccents?: boolean;
  /** {@link vocabularyHash} recorded at creation; a vocabulary file that no longer matches is refused. */
  vocabHash?: string;
}

/** What a user may give: a model directory or a vocabulary file, and the normalisation flags. */
export interface WordPieceAnalyzerInput {
  name: 'wordpiece';
  model?: string;
  vocabPath?: string;
  lowercase?: boolean;
  stripAccents?: boolean;
}

/** Tokenizers by (path, options): analyzers of several collections share one vocabulary load. */
const tokenizers = new Map<string, { tokenizer: WordPieceTokenizer; hash: string }>();

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The tokenizer file of a model directory: `tokenizer.json` when present, else `vocab.txt`. */
export function vocabFileOf(modelDir: string): string {
  const json = join(modelDir, 'tokenizer.json');
  return isFile(json) ? json : join(modelDir, 'vocab.txt');
}

/** The tokenizer behind `options`, loaded once per process (per worker thread). */
export function wordPieceTokenizerOf(options: Pick<WordPieceAnalyzerOptions, 'vocabPath' | 'lowercase' | 'stripAccents'>): { tokenizer: WordPieceTokenizer; hash: string } {
  const norm = {
    ...(options.lowercase === undefined ? {} : { lowercase: options.lowercase }),
    ...(options.stripAccents === undefined ? {} : { stripAccents: options.stripAccents }),
  };
  const key = JSON.stringify([options.vocabPath, norm]);
  let entry = tokenizers.get(key);
  if (!entry) {
    const tokenizer = loadTokenizerSync(options.vocabPath, norm);
    entry = { tokenizer, hash: vocabularyHash(tokenizer) };
    tokenizers.set(key, entry);
  }
  return entry;
}

/**
 * Resolves user input to stored options: an absolute vocabulary path (from `vocabPath`, or the
 * model directory's tokenizer file), the effective normalisation flags and the vocabulary hash.
 * Throws `TOKENIZER_INVALID` when neither is given or the file is unusable.
 */
export function resolveWordPieceOptions(input: WordPieceAnalyzerInput): WordPieceAnalyzerOptions {
  if (!input.vocabPath && !input.model) throw createError('TOKENIZER_INVALID', { reason: 'a wordpiece analyzer needs "model" (a model directory) or "vocabPath"' });
  const model = input.model ? resolve(input.model) : undefined;
  if (model && !isDirectory(model)) throw createError('MODEL_NOT_FOUND', { dir: model, reason: 'the directory does not exist' }, { details: { dir: model } });
  const vocabPath = input.vocabPath ? resolve(input.vocabPath) : vocabFileOf(model!);
  const { tokenizer, hash } = wordPieceTokenizerOf({ vocabPath, lowercase: input.lowercase, stripAccents: input.stripAccents });
  return {
    name: 'wordpiece',
    vocabPath,
    ...(model ? { model } : {}),
    lowercase: tokenizer.options.lowercase,
    stripAccents: tokenizer.options.stripAccents,
    vocabHash: hash,
  };
}

/**
 * Creates the analyzer. Each word piece is one term (`##` continuations included, as the model
 * sees them); `[UNK]` is kept but flagged as a stop token (no lexical content to expand on).
 */
export function createWordPieceAnalyzer(options: WordPieceAnalyzerOptions): Analyzer {
  if (!isAbsolute(options.vocabPath)) throw createError('TOKENIZER_INVALID', { reason: `vocabPath must be absolute, got "${options.vocabPath}"` });
  const { tokenizer, hash } = wordPieceTokenizerOf(options);
  if (options.vocabHash !== undefined && options.vocabHash !== hash) {
    throw createError('COLLECTION_OPTIONS_MISMATCH', { name: options.vocabPath, what: 'a WordPiece vocabulary (the file changed since the collection was created)' }, {
      details: { vocabPath: options.vocabPath, expected: options.vocabHash, found: hash },
    });
  }
  const unk = tokenizer.options.unkToken;
  return {
    name: 'wordpiece',
    options: { ...options },
    analyze(text: string): Token[] {
      return tokenizer.tokenize(text).map((piece) => ({ term: piece, surface: piece, stop: piece === unk }));
    },
  };
}
