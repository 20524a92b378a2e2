// Property-based fuzzing of the wire readers (issue 13, "Fuzzing"): a PayloadReader fed arbitrary message sequences
// on two topics (hostile chunk headers, real chunked records in any order, raw bytes, no value at all), with its clock
// jumping. It never throws: every failure comes back as a value with a typed error that names where and the raw
// bytes for the dead-letter topic; it holds no more than the manifest's limits per topic; a whole payload decodes
// into a record or a CodecError, as the consumers do next.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_HEADERS, RECORD_KINDS, defaultCodec, type RecordKind } from '../../src/codec/index.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { LIMIT_DEFAULTS, type Limits } from '../../src/config/index.ts';
import { PayloadReader, toRecords } from '../../src/protocol/index.ts';
import type { TransportMessage } from '../../src/transport/index.ts';
import { samples } from '../fixtures/avro/samples.ts';
import { codecWhere, decimalHeaderArb, FUZZ_TIMEOUT_MS, fuzzParams, headerValueArb, pick, typed } from '../support/fuzz.ts';

const LIMITS: Limits = { ...LIMIT_DEFAULTS, maxPayloadBytes: 8192, maxPendingBytes: 12_000, maxPendingPayloads: 3, maxPendingAgeMs: 1000 };
const TOPICS = ['t.p.updates', 't.p.models'] as const;
const codec = defaultCodec();

const realCache = new Map<string, Omit<TransportMessage, 'offset' | 'timestamp'>[]>();

/** Real records of every kind, chunked at 1024 bytes (the smallest chunk size a manifest may set) when larger; made once. */
function realMessages(kind: RecordKind, tensorBytes: number, topic: string, partition: number): Omit<TransportMessage, 'offset' | 'timestamp'>[] {
  const id = `${kind}/${tensorBytes}/${topic}/${partition}`;
  const cached = realCache.get(id);
  if (cached) return cached;
  const value = samples()[kind] as unknown as Record<string, unknown>;
  if ('tensors' in value) value.tensors = [{ name: 'w', shape: [tensorBytes / 4], dtype: 'FLOAT32', scale: 1, data: Buffer.alloc(tensorBytes, 1) }];
  const messages = toRecords(topic, kind, value as never, 'k', 1024).map((r) => ({
    topic,
    partition,
    key: Buffer.from('k'),
    value: r.value,
    headers: Object.fromEntries(Object.entries(r.headers ?? {}).map(([h, v]) => [h, Buffer.from(v)])),
  }));
  realCache.set(id, messages);
  return messages;
}

const hostileArb = fc.record({
  topic: fc.constantFrom(...TOPICS),
  partition: fc.constantFrom(0, 1),
  key: fc.constantFrom(Buffer.from('k'), null),
  value: fc.oneof(fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)), fc.constant(null)),
  headers: fc.record(
    {
      [CHUNK_HEADERS.id]: headerValueArb(fc.constantFrom('a', 'b', '')),
      [CHUNK_HEADERS.index]: headerValueArb(decimalHeaderArb),
      [CHUNK_HEADERS.count]: headerValueArb(decimalHeaderArb),
      [CHUNK_HEADERS.size]: headerValueArb(decimalHeaderArb),
      [CHUNK_HEADERS.sha256]: headerValueArb(fc.stringMatching(/^[0-9a-f]{64}$/)),
      other: headerValueArb(fc.string({ maxLength: 8 })),
    },
    { requiredKeys: [] },
  ).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(Array.isArray(v) ? v.join(',') : v)]))),
});

const sequenceArb = fc
  .record({
    real: fc.array(fc.tuple(fc.constantFrom(...RECORD_KINDS), fc.constantFrom(4, 400, 2400, 9000), fc.constantFrom(...TOPICS), fc.constantFrom(0, 1)), { maxLength: 3 }),
    picks: fc.array(fc.nat(), { maxLength: 40 }),
    hostile: fc.array(fc.tuple(fc.nat(), hostileArb), { maxLength: 15 }),
    waits: fc.array(fc.oneof(fc.constant(0), fc.nat({ max: 1500 })), { maxLength: 60 }),
  })
  .map(({ real, picks, hostile, waits }) => {
    const pool = real.flatMap(([kind, bytes, topic, partition]) => realMessages(kind, bytes, topic, partition));
    const messages: Omit<TransportMessage, 'offset' | 'timestamp'>[] = pick(pool, picks);
    for (const [at, m] of hostile) messages.splice(at % (messages.length + 1), 0, m);
    return messages.map((m, i) => ({ message: { ...m, offset: String(i), timestamp: 0 } as TransportMessage, wait: waits[i] ?? 0 }));
  });

/** A failure's error says where: a header, payload id, chunk index, offset (chunks), or a field or byte offset (codec). */
function failureWhere(e: FedStreamError): boolean {
  const d = e.details;
  return d.header !== undefined || d.payloadId !== undefined || d.index !== undefined || d.offset !== undefined || codecWhere(e);
}

describe('fuzz: the wire readers', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('PayloadReader over arbitrary message sequences: never throws, typed failures with their bytes, within the limits', () => {
    fc.assert(
      fc.property(sequenceArb, (steps) => {
        let clock = 0;
        const reader = new PayloadReader(LIMITS, () => clock);
        const fed = new Map<string, number>();
        for (const { message, wait } of steps) {
          clock += wait;
          fed.set(message.topic, (fed.get(message.topic) ?? 0) + (message.value?.length ?? 0));
          const out = typed(() => reader.accept(message), () => true);
          if (!out.ok) throw new Error(`PayloadReader.accept threw ${out.error.code}: ${out.error.message}`);
          for (const f of out.value.failures) {
            expect(f.error).toBeInstanceOf(FedStreamError);
            expect(failureWhere(f.error as FedStreamError), f.error.message).toBe(true);
            expect(Buffer.isBuffer(f.bytes)).toBe(true);
            expect(f.bytes.length).toBeLessThanOrEqual(fed.get(message.topic) ?? 0);
          }
          const payload = out.value.payload;
          if (payload) {
            expect(payload.topic).toBe(message.topic);
            expect(BigInt(payload.firstOffset)).toBeLessThanOrEqual(BigInt(payload.lastOffset));
            // What a consumer does next: decode it, as any kind.
            typed(() => codec.decodeAny(payload.bytes), codecWhere);
          }
          for (const topic of TOPICS) {
            const s = reader.stats(topic);
            expect(s.bufferedBytes).toBeLessThanOrEqual(LIMITS.maxPendingBytes);
            expect(s.pendingPayloads).toBeLessThanOrEqual(LIMITS.maxPendingPayloads);
            expect(s.bufferedBytes).toBeLessThanOrEqual(fed.get(topic) ?? 0);
            for (const partition of [0, 1]) {
              const low = reader.pendingLowWatermark(topic, partition);
              if (low !== undefined) expect(low).toBeLessThanOrEqual(BigInt(message.offset));
            }
          }
        }
        const expired = typed(() => reader.expire(0), () => true);
        if (!expired.ok) throw expired.error;
        for (const f of expired.value) expect((f.error as FedStreamError).code).toBe('CODEC_CHUNK_MISSING');
        for (const topic of TOPICS) expect(reader.stats(topic).pendingPayloads).toBe(0);
      }),
      fuzzParams('wire.payload-reader', 1200),
    );
  });
});
