/**
 * The `wink` analyzer: wink-nlp tokens → lower-cased normal forms; words and numbers kept,
 * stop words kept but flagged, words optionally Porter2-stemmed. The only wink-nlp importer.
 * It must stay deterministic: its output defines the frozen bag of tokens T(x).
 */
import { createRequire } from 'node:module';
import type { Analyzer, Token } from '../types.ts';

/**
 * wink-nlp's tokenizer asks its lexicon cache whether a piece is a known lexeme before it
 * splits it (e.g. "5a" → "5a" or "5", "a"), and that cache also learns every out-of-vocabulary
 * token it reads. Left alone, the same text could tokenize differently depending on what was
 * read before (and on which worker thread read it). We wrap the cache factory so that lookups
 * answer only for the model's intrinsic lexicon: tokenisation then depends on the text alone.
 * Pinned to the wink-nlp version in package.json; the golden tests guard it.
 */
function loadWink(): { winkNLP: WinkFactory; model: unknown } {
  const require = createRequire(import.meta.url);
  const wrapperPath = require.resolve('wink-nlp/src/dd-wrapper.js');
  require(wrapperPath);
  const wrapperModule = require.cache[wrapperPath]!;
  if (!(wrapperModule.exports as { r3Patched?: boolean }).r3Patched) patchWrapper(wrapperModule);
  // wink-nlp binds the wrapper factory when it is first required: patch first, then load it.
  return { winkNLP: require('wink-nlp') as WinkFactory, model: require('wink-eng-lite-web-model') };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type WinkFactory = (model: unknown, pipe: string[]) => any;

/** wink-nlp's `constants.UNK`: "not added" from `_addTokenIfInCache`. */
const WINK_UNK = 0;

interface WinkCache {
  lookup(text: string): number[] | null;
  intrinsicSize(): number;
}

function patchWrapper(wrapperModule: NodeJS.Module): void {
  type Methods = { isLexeme(t: string): unknown; _addTokenIfInCache(t: string, ps: number, nbsp: unknown): number };
  const original = wrapperModule.exports as (data: { cache: WinkCache }) => Methods;
  const patched = (data: { cache: WinkCache }) => {
    const methods = original(data);
    const cache = data.cache;
    const intrinsic = cache.intrinsicSize();
    const known = (text: string) => {
      const r = cache.lookup(text);
      return r !== null && !(r.length === 1 && r[0] >= intrinsic) ? r : null;
    };
    // Only the tokenizer calls these two; answer for the model's own lexicon alone.
    methods.isLexeme = known;
    const addIfInCache = methods._addTokenIfInCache;
    methods._addTokenIfInCache = (text, ps, nbsp) => (known(text) === null ? WINK_UNK : addIfInCache(text, ps, nbsp));
    return methods;
  };
  (patched as unknown as { r3Patched: boolean }).r3Patched = true;
  wrapperModule.exports = patched;
}

/** Options of the wink analyzer; they decide the on-disk format of a collection. */
export interface WinkOptions {
  /** Porter2-stem word terms (numbers are never stemmed). Default true. */
  stem: boolean;
}

/** Tokens longer than this are dropped (base64 blobs, run-on strings). */
export const MAX_TERM_CHARS = 64;

/**
 * Terms are words and numbers: a normal form must start with a letter or digit (this drops
 * punctuation, symbols, emoji, mentions and hashtags) and must not be a URL or an e-mail address.
 */
const STARTS_ALNUM = /^[\p{L}\p{N}]/u;
const URL_OR_EMAIL = /:\/\/|^www\.|@/;
const HAS_DIGIT = /\p{N}/u;
/** Whitespace as wink splits on it (token boundaries never cross it). */
const WHITESPACE = /\s+/u;
/** Bound on the per-analyzer memo of analysed whitespace chunks (cleared when full). */
const CHUNK_MEMO_MAX_ENTRIES = 500_000;
/** Bound on the per-analyzer memo of normal forms (memory guard for huge vocabularies). */
const MEMO_MAX_ENTRIES = 1_000_000;

/** Memo of per-surface facts: the stemmer and stop-word lookups dominate analysis cost otherwise. */
interface SurfaceFacts {
  term: string;
  stop: boolean;
  /** Whether the token is a term at all. */
  keep: boolean;
}

/**
 * One wink pipeline per thread. Loading is costly and not repeatable: the model package grows a
 * module-level string at every load, so the 20th load in one thread takes seconds and the 21st
 * throws. Analyzers (one per collection and option set) share this pipeline; its tokenisation is
 * deterministic (see patchWrapper), so sharing changes no output.
 */
let pipeline: { nlp: any; stemmer: (w: string) => string } | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any

function sharedPipeline(): { nlp: any; stemmer: (w: string) => string } { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (!pipeline) {
    const { winkNLP, model } = loadWink();
    // An empty pipe: tokenisation only, no sentence/POS/NER work (several times faster).
    pipeline = { nlp: winkNLP(model, []), stemmer: (model as unknown as { addons: { stem(w: string): string } }).addons.stem };
  }
  return pipeline;
}

/** Creates the analyzer; every analyzer of a thread shares one wink pipeline. */
export function createWinkAnalyzer(options: WinkOptions): Analyzer {
  const { nlp, stemmer } = sharedPipeline();
  const its = nlp.its;
  const memo = new Map<string, SurfaceFacts>();

  // Facts depend on the normal form alone, never on wink's token type: wink's lexicon cache
  // learns while it reads, so the type of a rare token (e.g. "'s") can change between documents.
  function learn(normal: string, stop: boolean): SurfaceFacts {
    const keep = normal.length > 0 && normal.length <= MAX_TERM_CHARS && STARTS_ALNUM.test(normal) && !URL_OR_EMAIL.test(normal);
    const term = keep && options.stem && !HAS_DIGIT.test(normal) ? stemmer(normal) : normal;
    const f = { term, stop, keep };
    if (memo.size < MEMO_MAX_ENTRIES) memo.set(normal, f);
    return f;
  }

  const chunks = new Map<string, Token[]>();

  function analyzeChunk(text: string): Token[] {
    const tokens = nlp.readDoc(text).tokens();
    const normals = tokens.out(its.normal) as string[];
    // Stop-word flags are read from wink only for chunks with normal forms not seen before.
    let stops: boolean[] | undefined;
    const out: Token[] = [];
    for (let i = 0; i < normals.length; i++) {
      const normal = normals[i];
      let f = memo.get(normal);
      if (f === undefined) {
        stops ??= tokens.out(its.stopWordFlag) as unknown as boolean[];
        f = learn(normal, stops[i] === true);
      }
      if (f.keep) out.push({ term: f.term, surface: normal, stop: f.stop });
    }
    return out;
  }

  return {
    name: 'wink',
    options: { stem: options.stem },
    analyze(text: string): Token[] {
      // wink never builds a token across whitespace, so each whitespace-separated chunk can be
      // analysed once and remembered: most chunks of a corpus repeat, and readDoc dominates cost.
      const out: Token[] = [];
      for (const chunk of text.split(WHITESPACE)) {
        if (chunk.length === 0) continue;
        let tokens = chunks.get(chunk);
        if (tokens === undefined) {
          tokens = analyzeChunk(chunk);
          if (chunks.size >= CHUNK_MEMO_MAX_ENTRIES) chunks.clear();
          chunks.set(chunk, tokens);
        }
        for (const t of tokens) out.push(t);
      }
      return out;
    },
  };
}
