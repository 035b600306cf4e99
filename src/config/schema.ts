/**
 * JSON schema of the whole configuration, checked once by `load.ts` (ajv, as fastify does in
 * `build/build-validation.js`). Keeps the ranges next to the shapes; defaults live in `defaults.ts`.
 */

const positiveInt = { type: 'integer', minimum: 1 } as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['server', 'store', 'limits', 'analysis', 'search', 'retriever', 'rcl', 'auth'],
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      required: ['host', 'port', 'bodyLimitBytes', 'logLevel'],
      properties: {
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        bodyLimitBytes: { type: 'integer', minimum: 1024 },
        logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
      },
    },
    store: {
      type: 'object',
      additionalProperties: false,
      required: ['dataDir', 'mapSizeBytes'],
      properties: {
        dataDir: { type: 'string', minLength: 1 },
        mapSizeBytes: { type: 'integer', minimum: 1048576 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      required: ['maxDocumentsPerBatch', 'maxQueriesPerRequest', 'maxQueryChars', 'maxK', 'maxM', 'maxDocumentChars'],
      properties: {
        maxDocumentsPerBatch: positiveInt,
        maxQueriesPerRequest: positiveInt,
        maxQueryChars: positiveInt,
        maxK: positiveInt,
        maxM: positiveInt,
        maxDocumentChars: positiveInt,
      },
    },
    analysis: {
      type: 'object',
      additionalProperties: false,
      required: ['workers', 'stem', 'maxForwardTokens'],
      properties: {
        workers: { type: 'integer', minimum: 0, maximum: 64 },
        stem: { type: 'boolean' },
        maxForwardTokens: { type: 'integer', minimum: 8, maximum: 65536 },
      },
    },
    search: {
      type: 'object',
      additionalProperties: false,
      required: ['k1', 'b', 'defaultK', 'defaultM'],
      properties: {
        k1: { type: 'number', minimum: 0, maximum: 10 },
        b: { type: 'number', minimum: 0, maximum: 1 },
        defaultK: positiveInt,
        defaultM: positiveInt,
      },
    },
    retriever: {
      type: 'object',
      additionalProperties: false,
      required: ['kExp', 'expansionScale', 'alpha', 'gamma', 'proximity', 'proximityWindow', 'lexical', 'servedLossWeight', 'servedLossTemperature', 'gloveCachePath'],
      properties: {
        kExp: { type: 'integer', minimum: 0, maximum: 1024 },
        expansionScale: { type: 'number', minimum: 0, maximum: 10 },
        alpha: { type: 'number', exclusiveMinimum: 0, maximum: 1000 },
        gamma: { type: 'number', minimum: 0, maximum: 100 },
        proximity: { type: 'number', minimum: 0, maximum: 100 },
        proximityWindow: { type: 'integer', minimum: 2, maximum: 4096 },
        lexical: { type: 'number', minimum: 0, maximum: 100 },
        servedLossWeight: { type: 'number', minimum: 0, maximum: 100 },
        servedLossTemperature: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
        gloveCachePath: { type: 'string' },
      },
    },
    rcl: {
      type: 'object',
      additionalProperties: false,
      required: ['seed', 'rolloutTtlSeconds'],
      properties: {
        seed: { type: 'integer', minimum: 0 },
        rolloutTtlSeconds: { type: 'integer', minimum: 1 },
        openai: {
          type: 'object',
          additionalProperties: false,
          required: ['baseUrl', 'model'],
          properties: {
            baseUrl: { type: 'string', minLength: 1 },
            model: { type: 'string', minLength: 1 },
            apiKey: { type: 'string' },
            promptTemplate: { type: 'string' },
            labels: { type: 'boolean' },
            timeoutMs: { type: 'integer', minimum: 1 },
            concurrency: { type: 'integer', minimum: 1 },
          },
        },
      },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      required: ['keys', 'allowOpenNonLoopback'],
      properties: {
        allowOpenNonLoopback: { type: 'boolean' },
        keys: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['key', 'scopes'],
            properties: {
              key: { type: 'string', minLength: 8 },
              scopes: { type: 'array', minItems: 1, items: { enum: ['search', 'write', 'train', 'admin'] } },
              ratePerSecond: { type: 'number', minimum: 0 },
              concurrency: { type: 'integer', minimum: 0 },
            },
          },
        },
      },
    },
  },
} as const;
