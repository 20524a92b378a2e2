/**
 * The pipeline's view of the wire: typed records in, Kafka records out (single-object Avro,
 * chunked when large), and back. Every component that talks to the topics goes through here, so
 * the node SDK, the aggregator and the sink agree on keys, headers and chunking.
 */
import { randomUUID } from 'node:crypto';
import {
  ChunkedPayloadError,
  Reassembler,
  defaultCodec,
  splitPayload,
  type AvroCodec,
  type RecordKind,
  type RecordTypes,
  type ReassemblerOptions,
  type ReassemblerStats,
} from '../codec/index.ts';
import { FedStreamError } from '../common/index.ts';
import { CHUNK_SIZE_BOUNDS, type Limits } from '../config/index.ts';
import type { ProducerRecord, TransportMessage } from '../transport/index.ts';
import { isSignedKind, signatureHeaders, type Signer } from './signing.ts';

export type { RecordKind, RecordTypes } from '../codec/index.ts';

/** The process-wide codec (schemas loaded once). */
export function codec(): AvroCodec {
  return defaultCodec();
}

/**
 * Encodes a record and splits it into Kafka records for `topic` (one, or ordered chunks under the same key). With
 * a `signer`, a ModelUpdate, RoundControl, ModelVersion or AuditEvent carries its signature headers
 * (signing.ts: `fedstream-signature`, `fedstream-key-id`) on every chunk, so that the reader of the reassembled
 * payload finds them whichever chunk completes it. Every record kind goes through here and every chunk is written:
 * a caller never keeps only some of them.
 *
 * With `maxPayloadBytes` (the manifest's `limits.maxPayloadBytes`, which every reader enforces), a record that
 * encodes to more is refused here, before anything is written (RECORD_TOO_LARGE naming the kind, size and limit):
 * written, it would only be dead-lettered by each of its readers.
 */
export function toRecords<K extends RecordKind>(
  topic: string,
  kind: K,
  value: RecordTypes[K],
  key: string,
  chunkSize: number,
  headers: Record<string, string> = {},
  signer?: Signer,
  maxPayloadBytes?: number,
): ProducerRecord[] {
  const payload = codec().encode(kind, value);
  if (maxPayloadBytes !== undefined && payload.length > maxPayloadBytes) {
    throw new FedStreamError('RECORD_TOO_LARGE', `${kind} for ${topic} encodes to ${payload.length} bytes, above limits.maxPayloadBytes (${maxPayloadBytes}) that every reader enforces: not written`, {
      details: { kind, topic, size: payload.length, limit: maxPayloadBytes },
    });
  }
  const signed = signer && isSignedKind(kind) ? { ...headers, ...signatureHeaders(signer, kind, value as RecordTypes[typeof kind], payload) } : headers;
  return splitPayload(payload, { key, chunkSize, payloadId: randomUUID() }).map((r) => ({
    topic,
    key: r.key,
    value: r.value,
    headers: { ...signed, ...r.headers },
  }));
}

/** A whole payload read back from a topic: reassembled when chunked, with the offsets it spans. */
export interface Payload {
  topic: string;
  partition: number;
  key: string | null;
  bytes: Buffer;
  firstOffset: string;
  lastOffset: string;
  timestamp: number;
  /** The headers of the message that completed the payload (signature headers travel on every chunk). */
  headers: Record<string, Buffer>;
}

/** A payload or chunk that could not be read, with the raw bytes for the dead-letter topic. */
export interface PayloadFailure {
  error: Error;
  bytes: Buffer;
}

/**
 * The Reassembler options of every reader of a pipeline's chunked payloads (the aggregator's updates consumer and its
 * recovery, the nodes' models consumer, the sink, the reports), from the manifest's `limits`: the one place they are
 * built. Chunk counts are checked against the whole range of chunk sizes a manifest may set (CHUNK_SIZE_BOUNDS),
 * not only the current one, so that records written under an earlier `topics.chunkSizeBytes` stay readable.
 */
export function reassemblerOptions(limits: Limits): ReassemblerOptions {
  return {
    maxPayloadBytes: limits.maxPayloadBytes,
    maxBufferedBytes: limits.maxPendingBytes,
    maxPendingPayloads: limits.maxPendingPayloads,
    maxAgeMs: limits.maxPendingAgeMs,
    minChunkBytes: CHUNK_SIZE_BOUNDS.min,
    maxChunkBytes: CHUNK_SIZE_BOUNDS.max,
  };
}

/**
 * Turns a stream of Kafka messages into whole payloads, within the pipeline's limits (`reassemblerOptions`): one
 * Reassembler per topic, so that the bounds on incomplete payloads hold per topic whatever the number of
 * partitions (payload ids are kept apart per partition inside it). Failures (bad or over-limit chunk headers,
 * checksum, duplicate chunk with other content, incomplete payloads evicted or expired to bound memory) come back
 * as values with their raw bytes, never as exceptions: a consumer must not crash on bad input. A dropped payload no
 * longer holds offsets back (`pendingLowWatermark`).
 */
export class PayloadReader {
  private readonly reassemblers = new Map<string, Reassembler>();
  private readonly options: ReassemblerOptions;

  /** `limits`: the manifest's (`m.limits`); `now` replaces the clock in tests. */
  constructor(limits: Limits, now?: () => number) {
    this.options = { ...reassemblerOptions(limits), ...(now ? { now } : {}) };
  }

  accept(msg: TransportMessage): { payload?: Payload; failures: PayloadFailure[] } {
    const r = this.reassembler(msg.topic);
    const value = msg.value ?? Buffer.alloc(0);
    try {
      const res = r.accept({ key: msg.key, value, headers: msg.headers, offset: msg.offset, partition: msg.partition });
      const failures = (res.dropped ?? []).map((e) => failureOf(e, msg.topic));
      if (res.status === 'pending') return { failures };
      return {
        failures,
        payload: {
          topic: msg.topic,
          partition: msg.partition,
          key: msg.key ? msg.key.toString('utf8') : null,
          bytes: res.payload,
          firstOffset: res.firstOffset ?? msg.offset,
          lastOffset: res.lastOffset ?? msg.offset,
          timestamp: msg.timestamp,
          headers: msg.headers,
        },
      };
    } catch (error) {
      if (!(error instanceof ChunkedPayloadError)) return { failures: [{ error: error as Error, bytes: value }] };
      return { failures: [failureOf(error, msg.topic), ...error.dropped.map((e) => failureOf(e, msg.topic))] };
    }
  }

  /** Smallest first offset of an incomplete payload on this partition, if any: offsets must not be committed past it. */
  pendingLowWatermark(topic: string, partition: number): bigint | undefined {
    const low = this.reassemblers.get(topic)?.lowestPendingOffset(partition);
    return low === undefined ? undefined : BigInt(low);
  }

  /** Drops incomplete payloads that saw no chunk for `maxAgeMs` (default: `limits.maxPendingAgeMs`); returns them for the dead-letter topic. */
  expire(maxAgeMs: number = this.options.maxAgeMs ?? Infinity): PayloadFailure[] {
    const out: PayloadFailure[] = [];
    for (const [topic, r] of this.reassemblers) out.push(...r.expire(maxAgeMs).map((e) => failureOf(e, topic)));
    return out;
  }

  /** The counters of one topic's reassembler (zeros before its first message). */
  stats(topic: string): ReassemblerStats {
    return this.reassemblers.get(topic)?.stats() ?? { pendingPayloads: 0, bufferedBytes: 0, peakPendingPayloads: 0, peakBufferedBytes: 0, evicted: 0, expired: 0, refused: 0 };
  }

  private reassembler(topic: string): Reassembler {
    let r = this.reassemblers.get(topic);
    if (!r) this.reassemblers.set(topic, (r = new Reassembler(this.options)));
    return r;
  }
}

/** The raw bytes of the messages an error is about, and the topic in its details. */
function failureOf(e: ChunkedPayloadError, topic: string): PayloadFailure {
  e.details.topic ??= topic;
  const parts = e.messages.map((m) => (m.value === null || m.value === undefined ? Buffer.alloc(0) : Buffer.from(m.value)));
  return { error: e, bytes: Buffer.concat(parts) };
}

export function decode<K extends RecordKind>(kind: K, bytes: Buffer): RecordTypes[K] {
  return codec().decode(kind, bytes) as RecordTypes[K];
}

/** `decode` with tensor bytes as views into `bytes` (AvroCodec.decodeView): unpack before dropping the message. */
export function decodeView<K extends RecordKind>(kind: K, bytes: Buffer): RecordTypes[K] {
  return codec().decodeView(kind, bytes) as RecordTypes[K];
}

export interface DeadLetter {
  /** The pipeline's dead-letter topic. */
  topic: string;
  /** The raw bytes as they were read, for a person to inspect. */
  bytes: Buffer;
  key: Buffer | string | null;
  /** Machine-readable reason code and the sentence a person reads. */
  code: string;
  reason: string;
  /** Where the bytes came from: `topic/partition/offset`. */
  source: string;
  /** The component that dead-lettered them, when it says (`fedstream-dlq-actor`). */
  actor?: string;
  chunkSize: number;
}

/**
 * Dead-letter records for bytes that could not be accepted: the reason in headers, and the bytes split
 * into numbered parts (`fedstream-dlq-part`) when they exceed the chunk size.
 */
export function deadLetterRecords(d: DeadLetter): ProducerRecord[] {
  const headers: Record<string, string> = {
    'fedstream-dlq-reason': d.reason.slice(0, 1000),
    'fedstream-dlq-code': d.code,
    'fedstream-dlq-source': d.source,
    ...(d.actor ? { 'fedstream-dlq-actor': d.actor } : {}),
  };
  if (d.bytes.length <= d.chunkSize) return [{ topic: d.topic, key: d.key, value: d.bytes, headers }];
  const out: ProducerRecord[] = [];
  for (let i = 0, k = 0; i < d.bytes.length; i += d.chunkSize, k++) {
    out.push({ topic: d.topic, key: d.key, value: d.bytes.subarray(i, i + d.chunkSize), headers: { ...headers, 'fedstream-dlq-part': String(k) } });
  }
  return out;
}
