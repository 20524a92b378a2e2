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

/** The headers of one chunk, as read and checked by `readChunkHeaders`. */
export interface ChunkHeaders {
  id: string;
  index: number;
  count: number;
  size: number;
  sha256: string;
}

/** The bounds a reader checks headers against (ReassemblerOptions: maxPayloadBytes, minChunkBytes, maxChunkBytes). */
export interface ChunkLimits {
  readonly maxPayloadBytes: number;
  readonly minChunkBytes: number;
  readonly maxChunkBytes: number;
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A refusal of one consumed message, with its offset and partition. */
export function reject(code: Extract<ErrorCode, `CODEC_${string}`>, message: string, payloadId: string | undefined, incoming: IncomingMessage, details: Record<string, unknown> = {}): ChunkedPayloadError {
  return new ChunkedPayloadError(code, message, payloadId, [incoming], { offset: incoming.offset, partition: incoming.partition, ...details });
}

/**
 * Reads and checks the chunk headers of `message` against `limits`, before anything of it is kept. Throws a
 * ChunkedPayloadError: CODEC_INVALID for a missing, repeated-with-different-values or malformed header, an index out
 * of range, or a count that disagrees with the size and chunk sizes; CODEC_LIMIT for a declared size above
 * `limits.maxPayloadBytes`.
 */
export function readChunkHeaders(message: IncomingMessage, limits: ChunkLimits): ChunkHeaders {
  const single = (name: string, payloadId: string | undefined): string | undefined => {
    const values = headerValues(message.headers, name);
    if (values.some((v) => v !== values[0])) {
      throw reject('CODEC_INVALID', `header ${name} is repeated with different values: ${values.join(', ')}`, payloadId, message, { header: name });
    }
    return values[0];
  };
  const id = single(CHUNK_HEADERS.id, undefined) ?? '';
  if (id === '') throw reject('CODEC_INVALID', `header ${CHUNK_HEADERS.id} is empty, expected a payload id`, undefined, message, { header: CHUNK_HEADERS.id });
  const text = (name: string, pattern: RegExp, expected: string): string => {
    const v = single(name, id);
    if (v === undefined || !pattern.test(v)) {
      throw reject('CODEC_INVALID', `chunk of payload ${id}: header ${name} is ${v === undefined ? 'missing' : JSON.stringify(v)}, expected ${expected}`, id, message, { header: name });
    }
    return v;
  };
  const index = Number(text(CHUNK_HEADERS.index, DECIMAL, 'a decimal integer >= 0'));
  const count = Number(text(CHUNK_HEADERS.count, DECIMAL, 'a decimal integer >= 1'));
  const size = Number(text(CHUNK_HEADERS.size, DECIMAL, 'a decimal byte count'));
  const sha256 = text(CHUNK_HEADERS.sha256, SHA256_HEX, '64 lowercase hex digits');
  if (count < 1) throw reject('CODEC_INVALID', `chunk of payload ${id}: ${CHUNK_HEADERS.count} is 0`, id, message, { header: CHUNK_HEADERS.count });
  if (index >= count) {
    throw reject('CODEC_INVALID', `chunk index ${index} of payload ${id} is out of range 0..${count - 1}`, id, message, { header: CHUNK_HEADERS.index, index, count });
  }
  // Against the limits before anything is kept: a count must agree with the size and the chunk sizes writers
  // may use, so that neither can make this reader wait for, or hold, more than `maxPayloadBytes`.
  if (size > limits.maxPayloadBytes) {
    throw reject('CODEC_LIMIT', `payload ${id}: header ${CHUNK_HEADERS.size} is ${size}, above the limit of ${limits.maxPayloadBytes} bytes (limits.maxPayloadBytes)`, id, message, {
      header: CHUNK_HEADERS.size, size, limit: limits.maxPayloadBytes,
    });
  }
  const most = Math.ceil(size / limits.minChunkBytes);
  const least = Math.ceil(size / limits.maxChunkBytes);
  if (count > most || count < least) {
    throw reject('CODEC_INVALID', `payload ${id}: header ${CHUNK_HEADERS.count} is ${count}, but ${size} bytes in chunks of ${limits.minChunkBytes}..${limits.maxChunkBytes} bytes make ${least}..${most} chunks`, id, message, {
      header: CHUNK_HEADERS.count, count, size, least, most,
    });
  }
  return { id, index, count, size, sha256 };
}
