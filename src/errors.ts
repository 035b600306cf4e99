/**
 * The error catalogue: every expected failure has a stable code, an HTTP status and a message
 * template. Domain code throws `createError(code, args, { details, cause })`; only
 * `server/error-handler.ts` turns these into HTTP problems.
 */

const codes = {
  // request shape
  BODY_INVALID: { status: 400, message: 'The request body is invalid: {reason}' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body exceeds the limit of {limit} bytes' },
  BODY_NOT_UTF8: { status: 400, message: 'The request body is not valid UTF-8' },
  MEDIA_TYPE_UNSUPPORTED: { status: 415, message: 'Content type {type} is not supported here' },
  NOT_FOUND: { status: 404, message: 'No route {method} {url}' },
  URL_INVALID: { status: 400, message: 'The URL is invalid: {reason}' },
  URL_TOO_LONG: { status: 414, message: 'A path parameter exceeds {limit} characters' },
  // collections
  COLLECTION_NOT_FOUND: { status: 404, message: 'Collection "{name}" does not exist' },
  COLLECTION_EXISTS: { status: 409, message: 'Collection "{name}" already exists with other options' },
  COLLECTIONS_TOO_MANY: { status: 507, message: 'This data directory holds at most {limit} collections; drop one first' },
  COLLECTION_NAME_INVALID: { status: 400, message: 'Collection name "{name}" is invalid: use 1-64 of [A-Za-z0-9_-]' },
  // documents
  DOCUMENT_NOT_FOUND: { status: 404, message: 'Document "{id}" does not exist in collection "{collection}"' },
  DOCUMENT_INVALID: { status: 400, message: 'Document {index} is invalid: {reason}' },
  DOCUMENTS_DUPLICATE_ID: { status: 400, message: 'Document id "{id}" occurs more than once in one batch' },
  DOCUMENTS_TOO_MANY: { status: 413, message: 'A batch holds at most {limit} documents, got {count}' },
  // search
  QUERY_EMPTY: { status: 400, message: 'The query has no searchable terms' },
  QUERY_MISSING: { status: 400, message: 'Give exactly one of "query" or "queries"' },
  QUERIES_TOO_MANY: { status: 413, message: 'At most {limit} queries per request, got {count}' },
  QUERY_TOO_LONG: { status: 400, message: 'A query holds at most {limit} characters' },
  FILTER_INVALID: { status: 400, message: 'Filter field "{field}" must be a string, number or boolean' },
  MODE_UNSUPPORTED: { status: 400, message: 'Search mode "{mode}" is not available for retriever "{retriever}"' },
  // storage
  INDEX_CORRUPT: { status: 500, message: 'The index at {path} is corrupt; restore a snapshot or rebuild it' },
  INDEX_INCOMPATIBLE: { status: 500, message: 'The data directory {path} has format {found}, this server needs {expected}; rebuild the index or use a matching server version' },
  COLLECTION_OPTIONS_MISMATCH: { status: 500, message: 'Collection "{name}" was built with other {what}; rebuild it' },
  STORE_WRITE_FAILED: { status: 503, message: 'The write could not be committed: {reason}' },
  STORE_CLOSED: { status: 503, message: 'The store is closed' },
  // retriever and training
  RETRIEVER_VERSION_NOT_FOUND: { status: 404, message: 'Retriever version {version} does not exist' },
  RETRIEVER_UNSUPPORTED: { status: 400, message: 'Retriever "{retriever}" is not available: {reason}' },
  RETRIEVER_NOT_READY: { status: 503, message: 'The retriever is still loading: {reason}' },
  RCL_NO_POOLS: { status: 409, message: 'No offline pools for queries: {ids}' },
  RCL_ROLLOUT_NOT_FOUND: { status: 404, message: 'Rollout "{id}" does not exist or has expired' },
  RCL_ENVIRONMENT_UNSUPPORTED: { status: 400, message: 'Environment "{environment}" is not configured' },
  RCL_ENVIRONMENT_FAILED: { status: 502, message: 'The environment failed: {reason}' },
  RCL_DIVERGED: { status: 500, message: 'The training step produced a non-finite loss; the version was not published' },
  RCL_INPUT_INVALID: { status: 400, message: 'Training input is invalid: {reason}' },
  // onnx models and tokenizers
  MODEL_NOT_FOUND: { status: 404, message: 'No model directory at "{dir}": {reason}' },
  MODEL_INVALID: { status: 400, message: 'The model directory is invalid: {reason}' },
  MODEL_VOCABULARY_MISMATCH: { status: 409, message: 'The model vocabulary differs from the collection\'s: {reason}; a collection keeps its tokenizer (re-index into a new collection to change it)' },
  TOKENIZER_INVALID: { status: 400, message: 'The tokenizer vocabulary is invalid: {reason}' },
  ENCODER_INPUT_MISSING: { status: 500, message: 'The model was not fed its input(s): {names}' },
  ENCODER_RUN_FAILED: { status: 500, message: 'The encoder failed: {reason}' },
  // access
  AUTH_REQUIRED: { status: 401, message: 'An API key is required' },
  AUTH_INVALID: { status: 401, message: 'The API key is not valid' },
  AUTH_FORBIDDEN: { status: 403, message: 'The API key lacks the "{scope}" scope' },
  RATE_LIMITED: { status: 429, message: 'Too many requests for this key; retry after {retryAfter} s' },
  OVERLOADED: { status: 503, message: 'The server is overloaded; retry later' },
  AUTH_KEYS_MISSING: { status: 500, message: 'Refusing to listen on {host} without API keys: configure auth.keys (R3SERVE_API_KEYS) or allow it with --allow-open (R3SERVE_ALLOW_OPEN=1)' },
  // operations
  SNAPSHOT_PATH_INVALID: { status: 400, message: 'Snapshot path "{path}" is invalid: {reason}' },
  SNAPSHOT_EXISTS: { status: 409, message: 'Snapshot "{path}" already exists' },
  SNAPSHOT_FAILED: { status: 500, message: 'The snapshot to {path} failed: {reason}' },
  // configuration
  CONFIG_INVALID: { status: 500, message: 'The configuration is invalid: {reason}' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof codes;

/** An expected failure: carries a stable `code`, an HTTP `status`, and machine-readable `details`. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = codes[code].status;
    this.details = opts.details;
  }
}

/** Builds an AppError from the catalogue, filling `{name}` placeholders from `args`. */
export function createError(
  code: ErrorCode,
  args: Record<string, unknown> = {},
  opts: { details?: Record<string, unknown>; cause?: unknown } = {},
): AppError {
  const message = codes[code].message.replace(/\{(\w+)\}/g, (_, key: string) =>
    key in args ? String(args[key]) : `{${key}}`,
  );
  return new AppError(code, message, opts);
}

/** True when `err` is an AppError (or carries the same shape across a worker boundary). */
export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** The HTTP status registered for a code. */
export function statusOf(code: ErrorCode): number {
  return codes[code].status;
}

/** All codes, for the OpenAPI description and tests. */
export const ERROR_CODES = Object.keys(codes) as ErrorCode[];
