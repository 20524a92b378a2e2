/**
 * The chunk headers that mark a payload split over several Kafka messages (docs/wire-format.md), how they are read
 * from a consumed message, and the error about such messages. Splitting: chunk-split.ts; reassembly: chunk-reassemble.ts.
 */
import { CodecError, type ErrorCode } from '../common/index.ts';

/** Header names, all values decimal or hex strings in UTF-8. */
export const CHUNK_HEADERS = {
  /** Payload id shared by the chunks of one payload (a UUID by default). */
  id: 'fedstream-chunk-id',
  /** 0-based position of this chunk. */
  index: 'fedstream-chunk-index',
  /** Number of chunks of the payload. */
  count: 'fedstream-chunk-count',
  /** Lowercase hex SHA-256 of the whole payload. */
  sha256: 'fedstream-sha256',
  /** Size of the whole payload in bytes. */
  size: 'fedstream-size',
} as const;

export const CHUNK_HEADER_NAMES: readonly string[] = Object.values(CHUNK_HEADERS);

export type HeaderValue = string | Buffer | (string | Buffer)[] | undefined;

/** A consumed message (a TransportMessage or a kafkajs message fits). */
export interface IncomingMessage {
  key?: string | Buffer | null;
  value: Buffer | null;
  headers?: Record<string, HeaderValue>;
  /** Kafka offset as a decimal string. */
  offset?: string;
  partition?: number;
}

/** True when the message carries chunk headers. */
export function isChunk(headers: Record<string, HeaderValue> | undefined): boolean {
  return headers?.[CHUNK_HEADERS.id] !== undefined;
}

export /** The header's value(s) as text; kafkajs gives an array when a header is repeated. */
function headerValues(headers: Record<string, HeaderValue> | undefined, name: string): string[] {
  const raw = headers?.[name];
  if (raw === undefined) return [];
  return (Array.isArray(raw) ? raw : [raw]).map((v) => (typeof v === 'string' ? v : v.toString('utf8')));
}

/**
 * A CodecError about one or more consumed messages; `messages` holds them, raw, for the dead-letter topic.
 * Codes: CODEC_CHUNK_MISSING (expired or evicted incomplete payload, or a late chunk of one), CODEC_CHUNK_DUPLICATE,
 * CODEC_CHECKSUM_MISMATCH, CODEC_INVALID (bad or inconsistent chunk headers, no value), CODEC_LIMIT (a declared size
 * or a chunk above the reader's limits).
 */
export class ChunkedPayloadError extends CodecError {
  readonly payloadId: string | undefined;
  readonly messages: readonly IncomingMessage[];
  /** Other incomplete payloads the reader dropped (expired) while refusing this message: report them too. */
  readonly dropped: ChunkedPayloadError[] = [];

  constructor(code: Extract<ErrorCode, `CODEC_${string}`>, message: string, payloadId: string | undefined, messages: readonly IncomingMessage[], details: Record<string, unknown> = {}) {
    super(code, message, { details: { payloadId, ...details } });
    this.name = 'ChunkedPayloadError';
    this.payloadId = payloadId;
    this.messages = messages;
  }
}
