/**
 * Default values of every tunable, each with its range, its effect and a reference.
 * Plain data only: `load.ts` merges, validates and freezes; nothing here reads the environment.
 */

/** API key with the scopes it grants. */
export interface ApiKeyConfig {
  /** The secret presented in `Authorization: Bearer <key>` or `x-api-key`. */
  key: string;
  /** Any of `search`, `write`, `train`, `admin` (`admin` implies all). */
  scopes: Array<'search' | 'write' | 'train' | 'admin'>;
  /** Requests per second allowed for this key (token bucket, burst = 2 s). 0 = unlimited. */
  ratePerSecond?: number;
  /** Requests in flight allowed for this key. 0 = unlimited. */
  concurrency?: number;
}

export interface Config {
  server: {
    /** Address to listen on. Default 127.0.0.1 (loopback). */
    host: string;
    /** TCP port. Default 8080. */
    port: number;
    /** Largest request body in bytes. Default 64 MiB; raise for bigger JSON batches (or stream NDJSON). */
    bodyLimitBytes: number;
    /** pino log level: fatal, error, warn, info, debug, trace, silent. Default info. */
    logLevel: string;
  };
  store: {
    /** Data directory holding the LMDB environment. Default ./data. */
    dataDir: string;
    /** LMDB map size in bytes (an upper bound, grown automatically by lmdb-js). Default 64 GiB. */
    mapSizeBytes: number;
  };
  limits: {
    /** Most documents in one JSON batch or one NDJSON chunk. Default 10,000. */
    maxDocumentsPerBatch: number;
    /** Most queries in one `/search` request. Default 1,000. */
    maxQueriesPerRequest: number;
    /** Longest query text in characters. Default 4,096. */
    maxQueryChars: number;
    /** Largest `k` (hits returned). Default 1,000. */
    maxK: number;
    /** Largest `m` (documents re-ranked). Default 1,000. */
    maxM: number;
    /** Largest document `text` in characters. Default 1,000,000. */
    maxDocumentChars: number;
  };
  analysis: {
    /** Worker threads analysing ingested text off the event loop. Default: cores on ≤ 2 cores, else cores − 1. */
    workers: number;
    /** Porter2 stemming of word terms (SciFact BM25 nDCG@10 0.662 → 0.670 with it, DESIGN §3.1). Default true. */
    stem: boolean;
    /** Term ids kept per document in the forward store (the encoder's max length). Default 512. */
    maxForwardTokens: number;
  };
  search: {
    /** BM25 k1 (term-frequency saturation). Default 1.2; range 0.5–2. Robertson & Zaragoza 2009. */
    k1: number;
    /** BM25 b (length normalisation). Default 0.75; range 0–1. */
    b: number;
    /** Hits returned when `k` is absent. Default 10. */
    defaultK: number;
    /** Documents re-ranked when `m` is absent (SiDR's late parametric m). Default 20. */
    defaultM: number;
  };
  retriever: {
    /** Query expansions kept beyond the present terms. Default 32; 0 disables expansion. */
    kExp: number;
    /** Multiplier of expansion weights in the query vector. Default 0.5 (DESIGN §3.1 prototype). */
    expansionScale: number;
    /** Initial sharpness α of elu1p(α(c − 1)). Default 10. */
    alpha: number;
    /** Mix γ of the final score f_β/max f_β + γ·f_θ/max f_θ. Default 0.3. */
    gamma: number;
    /**
     * Weight π of term proximity in the final score (+ π·prox/max prox) until `POST /rcl/calibrate`
     * fits it. Default 0 (off): whether a collection's answers sit where the query's terms cluster
     * is for its feedback to say.
     */
    proximity: number;
    /** Proximity window, in term positions, until calibrated. Default 8. */
    proximityWindow: number;
    /**
     * Weight λ of the lexical term in the final score (+ λ·lex/max lex, lex = BM25 of the query's
     * own non-stop terms over the document's exact term frequencies) until `POST /rcl/calibrate`
     * fits it. Default 0 (off).
     */
    lexical: number;
    /**
     * Weight of the served score f_β/max + γ·f_θ/max in the RCL objective (train what you serve,
     * DESIGN §3.1). Default 1; 0 trains SiDR's three terms only.
     */
    servedLossWeight: number;
    /** Temperature of that term's InfoNCE (the served score lies in [0, 1 + γ]). Default 0.05. */
    servedLossTemperature: number;
    /** Where the converted GloVe cache lives. Empty: the package cache (node_modules/.cache/r3serve). */
    gloveCachePath: string;
  };
  rcl: {
    /** Seed of the RCL random draws (positive sampling, fallbacks); the state is checkpointed. Default 1. */
    seed: number;
    /** How long a rollout's candidates stay available for `/rcl/step`, in seconds. Default 1,800. */
    rolloutTtlSeconds: number;
    /**
     * An OpenAI-compatible completions endpoint (vLLM, …) for the `openai` environment; absent
     * disables it. `{ baseUrl, model, apiKey?, promptTemplate?, labels?, timeoutMs?, concurrency? }`.
     */
    openai?: { baseUrl: string; model: string; apiKey?: string; promptTemplate?: string; labels?: boolean; timeoutMs?: number; concurrency?: number };
  };
  auth: {
    /** API keys. Empty: the server is open, and only allowed to listen on loopback. */
    keys: ApiKeyConfig[];
    /** Listen on a non-loopback address without keys. Default false. */
    allowOpenNonLoopback: boolean;
  };
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024 * 1024; // 64 MiB
export const DEFAULT_MAP_SIZE_BYTES = 64 * 1024 * 1024 * 1024; // 64 GiB, virtual

/** The defaults. `workers` is resolved against the core count by `load.ts`. */
export const DEFAULTS: Config = {
  server: { host: '127.0.0.1', port: DEFAULT_PORT, bodyLimitBytes: DEFAULT_BODY_LIMIT_BYTES, logLevel: 'info' },
  store: { dataDir: './data', mapSizeBytes: DEFAULT_MAP_SIZE_BYTES },
  limits: {
    maxDocumentsPerBatch: 10_000,
    maxQueriesPerRequest: 1_000,
    maxQueryChars: 4_096,
    maxK: 1_000,
    maxM: 1_000,
    maxDocumentChars: 1_000_000,
  },
  analysis: { workers: 0, stem: true, maxForwardTokens: 512 },
  search: { k1: 1.2, b: 0.75, defaultK: 10, defaultM: 20 },
  retriever: { kExp: 32, expansionScale: 0.5, alpha: 10, gamma: 0.3, proximity: 0, proximityWindow: 8, lexical: 0, servedLossWeight: 1, servedLossTemperature: 0.05, gloveCachePath: '' },
  rcl: { seed: 1, rolloutTtlSeconds: 1_800 },
  auth: { keys: [], allowOpenNonLoopback: false },
};
