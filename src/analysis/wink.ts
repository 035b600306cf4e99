/**
 * The `wink` analyzer: wink-nlp tokens → lower-cased normal forms; words and numbers kept,
 * stop words kept but flagged, words optionally Porter2-stemmed. The only wink-nlp importer.
 * It must stay deterministic: its output defines the frozen bag of tokens T(x).
 */
import { createRequire } from 'node:module';
import type { AnalyzedBatch, Analyzer, Token } from '../types.ts';

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

  // Interned tables. A "normal id" (nid) names a kept normal form: its term, stop flag and the
  // Token handed out for it. A "term key" names a distinct term (several normals can stem to one).
  let nidOf = new Map<string, number>(); // normal → nid, or -1 when the normal is not a term
  let nidTerm: number[] = []; // nid → term key
  let nidStop: number[] = [];
  let nidToken: Token[] = [];
  let termKeyOf = new Map<string, number>();
  let terms: string[] = []; // term key → term
  /** Whitespace chunk → nids of its kept tokens. */
  let chunks = new Map<string, Int32Array>();

  /** Drops every memo when one has grown past its bound (only between calls, never within one). */
  function bound(): void {
    if (chunks.size < CHUNK_MEMO_MAX_ENTRIES && nidToken.length < MEMO_MAX_ENTRIES) return;
    nidOf = new Map();
    nidTerm = [];
    nidStop = [];
    nidToken = [];
    termKeyOf = new Map();
    terms = [];
    chunks = new Map();
  }

  // Facts depend on the normal form alone, never on wink's token type: wink's lexicon cache
  // learns while it reads, so the type of a rare token (e.g. "'s") can change between documents.
  function learn(normal: string, stop: boolean): number {
    const keep = normal.length > 0 && normal.length <= MAX_TERM_CHARS && STARTS_ALNUM.test(normal) && !URL_OR_EMAIL.test(normal);
    if (!keep) {
      nidOf.set(normal, -1);
      return -1;
    }
    const term = options.stem && !HAS_DIGIT.test(normal) ? stemmer(normal) : normal;
    let key = termKeyOf.get(term);
    if (key === undefined) {
      key = terms.length;
      termKeyOf.set(term, key);
      terms.push(term);
    }
    const nid = nidToken.length;
    nidOf.set(normal, nid);
    nidTerm.push(key);
    nidStop.push(stop ? 1 : 0);
    nidToken.push({ term, surface: normal, stop });
    return nid;
  }

  /** nids of the kept tokens among wink's tokens [from, to). */
  function keptNids(normals: string[], from: number, to: number, stopFlags: () => boolean[]): Int32Array {
    const out: number[] = [];
    for (let i = from; i < to; i++) {
      let nid = nidOf.get(normals[i]);
      if (nid === undefined) nid = learn(normals[i], stopFlags()[i] === true);
      if (nid >= 0) out.push(nid);
    }
    return Int32Array.from(out);
  }

  /**
   * Reads chunks not seen before with one readDoc over them all, joined by single spaces: wink
   * splits on spaces before anything else and never builds a token across them, so each chunk
   * tokenizes exactly as it would alone. A token preceded by spaces opens the next chunk; should
   * the count ever disagree (a chunk holding a separator wink knows and JavaScript's \s does
   * not), each chunk is read on its own instead.
   */
  function readChunks(pending: string[]): Int32Array[] {
    const tokens = nlp.readDoc(pending.length === 1 ? pending[0] : pending.join(' ')).tokens();
    const normals = tokens.out(its.normal) as string[];
    let stops: boolean[] | undefined;
    const stopFlags = () => (stops ??= tokens.out(its.stopWordFlag) as unknown as boolean[]);
    if (pending.length === 1) return [keptNids(normals, 0, normals.length, stopFlags)];
    const spaces = tokens.out(its.precedingSpaces) as string[];
    const starts: number[] = [];
    for (let i = 0; i < normals.length; i++) if (i === 0 || spaces[i] !== '') starts.push(i);
    if (starts.length !== pending.length || normals.length === 0) return pending.map((c) => readChunks([c])[0]);
    starts.push(normals.length);
    return pending.map((_, c) => keptNids(normals, starts[c], starts[c + 1], stopFlags));
  }

  /** The nid sequences of a text's whitespace chunks, in order (unseen chunks read together). */
  function chunkNids(text: string): Int32Array[] {
    const seqs: Int32Array[] = [];
    // Where chunks not seen before go, filled in after one read of each distinct one.
    let holes: Array<[number, string]> | undefined;
    for (const part of text.split(WHITESPACE)) {
      if (part.length === 0) continue;
      const seq = chunks.get(part);
      if (seq === undefined) (holes ??= []).push([seqs.length, part]);
      seqs.push(seq as Int32Array);
    }
    if (holes) {
      const pending = [...new Set(holes.map(([, part]) => part))];
      readChunks(pending).forEach((seq, i) => chunks.set(pending[i], seq));
      for (const [at, part] of holes) seqs[at] = chunks.get(part)!;
    }
    return seqs;
  }

  return {
    name: 'wink',
    options: { stem: options.stem },
    analyze(text: string): Token[] {
      bound();
      const out: Token[] = [];
      for (const seq of chunkNids(text)) for (let i = 0; i < seq.length; i++) out.push(nidToken[seq[i]]);
      return out;
    },
    analyzeBatch(texts: string[]): AnalyzedBatch {
      bound();
      // Batch-local index of each term key (-1: not in this batch yet).
      let localOf = new Int32Array(terms.length + 1024).fill(-1);
      const batchTerms: string[] = [];
      const surfaces: string[] = [];
      const stops: number[] = [];
      let buf = new Uint32Array(1024);
      const docs = texts.map((text) => {
        let n = 0;
        for (const seq of chunkNids(text)) {
          if (n + seq.length > buf.length) {
            const next = new Uint32Array(Math.max(buf.length * 2, n + seq.length));
            next.set(buf);
            buf = next;
          }
          for (let i = 0; i < seq.length; i++) {
            const nid = seq[i];
            const key = nidTerm[nid];
            if (key >= localOf.length) {
              const next = new Int32Array(Math.max(localOf.length * 2, key + 1)).fill(-1);
              next.set(localOf);
              localOf = next;
            }
            let k = localOf[key];
            if (k < 0) {
              k = localOf[key] = batchTerms.length;
              batchTerms.push(terms[key]);
              surfaces.push(nidToken[nid].surface);
              stops.push(nidStop[nid]);
            }
            buf[n++] = k;
          }
        }
        return buf.slice(0, n);
      });
      return { terms: batchTerms, surfaces, stops: Uint8Array.from(stops), docs };
    },
  };
}

