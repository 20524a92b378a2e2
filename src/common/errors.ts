/**
 * One error family for the whole project, after kafkajs' `KafkaJSError(e, { retriable })`:
 * every error carries a stable `code` (documented in docs/errors.md, checked by a test)
 * and a `retriable` flag that the single retry helper (`retry.ts`) branches on.
 */

export const ErrorCodes = {
  CONFIG_INVALID: { retriable: false, summary: 'A pipeline manifest, flag or environment variable has a bad value; the message names the field path.' },
  CONFIG_NOT_FOUND: { retriable: false, summary: 'A pipeline manifest or data file named on the command line does not exist.' },
  CODEC_UNKNOWN_FINGERPRINT: { retriable: false, summary: 'A message was written with an Avro schema whose fingerprint this reader does not know.' },
  CODEC_BAD_MAGIC: { retriable: false, summary: 'A message does not start with the Avro single-object marker C3 01.' },
  CODEC_TRUNCATED: { retriable: false, summary: 'A message or tensor ends before its declared length.' },
  CODEC_INVALID: { retriable: false, summary: 'A message decodes but breaks the schema or a field constraint (the message names the field).' },
  CODEC_CHECKSUM_MISMATCH: { retriable: false, summary: 'A reassembled chunked payload or model weights do not match their sha256.' },
  CODEC_CHUNK_MISSING: { retriable: false, summary: 'A chunked payload is incomplete: a chunk index was never received.' },
  CODEC_LIMIT: { retriable: false, summary: 'A chunked payload exceeds one of the pipeline\'s hostile-input limits (limits.maxPayloadBytes, a chunk larger than any chunk size); the message names the header, its value and the limit.' },
  RECORD_TOO_LARGE: { retriable: false, summary: 'A record a component was about to write encodes to more bytes than limits.maxPayloadBytes, which every reader refuses: it is not written; the message names the record kind, its size and the limit.' },
  CODEC_CHUNK_DUPLICATE: { retriable: false, summary: 'The same chunk index of a payload arrived twice with different content.' },
  TRANSPORT_CONNECTION: { retriable: true, summary: 'The message broker cannot be reached or dropped the connection.' },
  TRANSPORT_TIMEOUT: { retriable: true, summary: 'The broker did not answer within the configured time.' },
  TRANSPORT_TRANSACTION: { retriable: false, summary: 'A transaction was aborted by the broker or failed; the producer must be recreated.' },
  TRANSPORT_FENCED: { retriable: false, summary: 'A newer producer with the same transactional id took over (another instance of this service): this one must stop, never retry.' },
  TRANSPORT_CLOSED: { retriable: false, summary: 'A producer, consumer or transport was used after it was closed.' },
  TRANSPORT_AUTH: { retriable: false, summary: 'The broker refused the client\'s SASL credentials; the message names the principal and mechanism.' },
  TRANSPORT_AUTHORIZATION: { retriable: false, summary: 'An ACL does not allow this principal the operation; the message names the principal and the topic, group or transactional id.' },
  TRANSPORT_TLS: { retriable: false, summary: 'TLS with a broker failed: an untrusted or mismatched certificate (named), or a plaintext port where TLS was asked for.' },
  TRANSPORT_NOT_CONFIGURED: { retriable: false, summary: 'A standalone aggregator, node or sink was started without Kafka brokers (--kafka, FEDSTREAM_KAFKA or kafka.brokers): it would run alone on a private in-memory transport that no other process can reach, so it refuses to start.' },
  TRANSPORT_TOPIC: { retriable: false, summary: 'A topic is missing or could not be created with the requested configuration.' },
  ANALYTICS_UNAVAILABLE: { retriable: true, summary: 'ClickHouse cannot be reached or refused the request for a transient reason.' },
  ANALYTICS_AUTH: { retriable: false, summary: 'The ClickHouse server refused the user: wrong password, unknown user or no password given (the message names the user, never the password).' },
  ANALYTICS_TLS: { retriable: false, summary: 'TLS with the ClickHouse server failed: its certificate is not trusted by the configured CA (and why), names another host, or the port does not speak TLS.' },
  ANALYTICS_QUERY: { retriable: false, summary: 'ClickHouse rejected a statement (syntax, schema or type error).' },
  ANALYTICS_NO_DATA: { retriable: false, summary: 'A report was asked for a tenant/pipeline that has no rows in the ClickHouse database it reads; the message names the database and lists the tenants/pipelines it holds.' },
  ANALYTICS_DDL: { retriable: false, summary: 'A schema file in schemas/clickhouse failed to apply; the message names the file and statement.' },
  PIPELINE_HELD: { retriable: false, summary: 'Another aggregator is running for this pipeline (a live member of its consumer group); this one does not start without --take-over.' },
  SIGNATURE_INVALID: { retriable: false, summary: 'A record is unsigned, signed by a key no participant of the pipeline holds (or by another participant\'s), outside its key\'s validity window, or its Ed25519 signature does not verify; it is not acted on.' },
  KEY_INVALID: { retriable: false, summary: 'A key file or listed key cannot be used: missing, unreadable, readable by others, not PEM, or not an Ed25519 key of the expected kind.' },
  UPDATE_REJECTED: { retriable: false, summary: 'A model update failed validation (round, base version, shape, non-finite value, norm bound, duplicate).' },
  STRATEGY_STATE_INVALID: { retriable: false, summary: 'The strategy state stored with the latest model version cannot be restored by the strategy the manifest names (another strategy\'s, a model of other shapes, or damaged bytes).' },
  STRATEGY_MEMORY_BUDGET: { retriable: false, summary: 'A robust strategy (median, trimmed mean, Krum) needs every update of a round at once, and this round\'s would exceed strategy.memoryBudgetBytes even re-read from the log in blocks of coordinates (or came from no log); the message names the budget, the update count and their sizes.' },
  STRATEGY_REREAD_MISMATCH: { retriable: false, summary: 'A robust strategy re-reading its round\'s updates from the updates topic (beyond its memory budget) found another update at a position it had folded from; the message names the topic, partition, offset and both update ids.' },
  PRIVACY_BUDGET_EXHAUSTED: { retriable: false, summary: 'The next round\'s release would take the pipeline\'s ε (at δ) above privacy.budget.epsilon: the aggregator audited the refusal, finished the pipeline and stopped. The message gives ε so far, ε after the round and the budget.' },
  PRIVACY_HISTORY_INCOMPLETE: { retriable: false, summary: 'Central DP would start a round from a version its accountant does not cover: versions were published without privacy.central (added to a running pipeline) or their DP state is gone, so no ε it reports could include them; the aggregator audited the refusal, finished the pipeline and stopped.' },
  PRIVACY_CONFIG_INVALID: { retriable: false, summary: 'The privacy section cannot be honoured as given (adaptive clipping with noiseMultiplier ≥ 2 × clippedCountStddev, or a clipNormLr so large that the clipping norm reached 0 or ∞ and the next round was refused); the message names the fields.' },
  VERSION_NOT_FOUND: { retriable: false, summary: 'The model version asked for (or any version, for the latest) is not in the pipeline\'s models topic among those its aggregator signed; the message names the topic and the versions it has.' },
  ROUND_ABANDONED: { retriable: false, summary: 'A round reached its deadline without the minimum number of updates.' },
  TRAINING_FAILED: { retriable: false, summary: 'Local training on a node failed (bad data, bad model definition, backend error).' },
  DATA_INVALID: { retriable: false, summary: 'A node data file is malformed; the message names the file, line or record.' },
  BROKER_START: { retriable: false, summary: 'The local Kafka broker used by tests and development could not be fetched or started.' },
  INTERNAL: { retriable: false, summary: 'A bug: an invariant inside FedStream did not hold.' },
} as const satisfies Record<string, { retriable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface FedStreamErrorOptions {
  cause?: unknown;
  /** Overrides the code's default retriable flag (e.g. a connection refused by a host that does not exist). */
  retriable?: boolean;
  /** Structured context for logs: field path, byte offset, node id, topic… */
  details?: Record<string, unknown>;
}

export class FedStreamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: FedStreamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FedStreamError';
    this.code = code;
    this.retriable = options.retriable ?? ErrorCodes[code].retriable;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, retriable: this.retriable, details: this.details };
  }
}

/** Configuration errors are never retriable: the same input fails the same way. */
export class ConfigError extends FedStreamError {
  /** Dotted path of the offending field, e.g. `rounds.minUpdates`. */
  readonly path: string;
  constructor(path: string, message: string, options: Omit<FedStreamErrorOptions, 'retriable'> & { source?: string } = {}) {
    const text = `${options.source ? `${options.source}: ` : ''}${path ? `${path}: ` : ''}${message}`;
    super('CONFIG_INVALID', text, { ...options, retriable: false, details: { ...options.details, path, ...(options.source ? { source: options.source } : {}) } });
    this.name = 'ConfigError';
    this.path = path;
  }
}

/** A message that cannot be decoded. `offset` is the byte offset where reading failed, when known. */
export class CodecError extends FedStreamError {
  constructor(code: Extract<ErrorCode, `CODEC_${string}`>, message: string, options: FedStreamErrorOptions = {}) {
    super(code, message, options);
    this.name = 'CodecError';
  }
}

export function isFedStreamError(err: unknown): err is FedStreamError {
  return err instanceof FedStreamError;
}

/** Wraps anything thrown into the family, keeping the original as `cause`. */
export function toFedStreamError(err: unknown, code: ErrorCode = 'INTERNAL', message?: string): FedStreamError {
  if (err instanceof FedStreamError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new FedStreamError(code, message ? `${message}: ${text}` : text, { cause: err });
}
