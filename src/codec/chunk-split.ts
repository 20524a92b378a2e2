/**
 * Splitting payloads larger than a Kafka message into ordered chunks (putting them back together: chunk-reassemble.ts).
 *
 * A payload of at most `chunkSize` bytes travels as one message with no chunk headers. A larger one becomes
 * `ceil(size / chunkSize)` messages under the same key (so the same partition, in order), each carrying the
 * headers in `CHUNK_HEADERS` (docs/wire-format.md).
 */
import { createHash, randomUUID } from 'node:crypto';
import { CodecError } from '../common/index.ts';
import { DEFAULTS } from '../config/index.ts';
import { CHUNK_HEADERS, CHUNK_HEADER_NAMES } from './chunk-headers.ts';

/** A message to produce: a ProducerRecord without its topic. */
export interface ChunkRecord {
  key: string | Buffer | null;
  value: Buffer;
  headers: Record<string, string>;
}

export interface SplitOptions {
  key: string | Buffer | null;
  /** Largest chunk value in bytes (default `DEFAULTS.chunkSizeBytes`, under Kafka's 1 MB message limit). */
  chunkSize?: number;
  /** Id shared by the chunks (default: a random UUID). */
  payloadId?: string;
  /** Extra headers copied onto every record (must not use the chunk header names). */
  headers?: Record<string, string>;
}

function optionError(field: string, message: string): CodecError {
  return new CodecError('CODEC_INVALID', `${field}: ${message}`, { details: { field } });
}

/** Splits `payload` into one record (no chunk headers) or ordered chunk records, see the module comment. */
export function splitPayload(payload: Buffer, options: SplitOptions): ChunkRecord[] {
  const chunkSize = options.chunkSize ?? DEFAULTS.chunkSizeBytes;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw optionError('chunkSize', `expected an integer >= 1, got ${String(chunkSize)}`);
  const extra = { ...options.headers };
  const clash = Object.keys(extra).find((h) => CHUNK_HEADER_NAMES.includes(h));
  if (clash) throw optionError(`headers.${clash}`, 'is reserved for chunking');

  if (payload.length <= chunkSize) return [{ key: options.key, value: payload, headers: extra }];

  const payloadId = options.payloadId ?? randomUUID();
  if (payloadId === '') throw optionError('payloadId', 'must not be empty');
  const count = Math.ceil(payload.length / chunkSize);
  const sha256 = createHash('sha256').update(payload).digest('hex');
  const records: ChunkRecord[] = [];
  for (let index = 0; index < count; index++) {
    records.push({
      key: options.key,
      value: payload.subarray(index * chunkSize, Math.min(payload.length, (index + 1) * chunkSize)),
      headers: {
        ...extra,
        [CHUNK_HEADERS.id]: payloadId,
        [CHUNK_HEADERS.index]: String(index),
        [CHUNK_HEADERS.count]: String(count),
        [CHUNK_HEADERS.sha256]: sha256,
        [CHUNK_HEADERS.size]: String(payload.length),
      },
    });
  }
  return records;
}
