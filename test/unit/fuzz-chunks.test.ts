// Property-based fuzzing of chunk reassembly (issue 13, "Fuzzing"): hostile chunk headers (huge, negative, malformed,
// repeated, inconsistent counts and sizes) mixed with real chunked payloads delivered in any order, lost or
// redelivered. Each message gives a result or a ChunkedPayloadError that names the header, payload or offset; the
// reassembler never holds more than its bounds nor more than it was given; real payloads come back intact.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_HEADERS, ChunkedPayloadError, Reassembler, splitPayload, type IncomingMessage, type ReassemblerOptions } from '../../src/codec/index.ts';
import type { FedStreamError } from '../../src/common/errors.ts';
import { decimalHeaderArb, FUZZ_TIMEOUT_MS, fuzzParams, headerValueArb, pick, typed } from '../support/fuzz.ts';

const LIMITS = { maxPayloadBytes: 4096, maxBufferedBytes: 6000, maxPendingPayloads: 3, minChunkBytes: 16, maxChunkBytes: 2048, rememberCompleted: 8 } satisfies ReassemblerOptions;

/** A chunk error names what it is about: a header, a payload, a chunk index or the message's offset. */
function chunkWhere(e: FedStreamError): boolean {
  const d = e.details;
  return e instanceof ChunkedPayloadError && (d.header !== undefined || d.payloadId !== undefined || d.index !== undefined || d.offset !== undefined);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Real payloads, split with their own chunk size. */
const payloadsArb = fc.array(
  fc.record({
    id: fc.constantFrom('p1', 'p2', 'p3', 'p4'),
    partition: fc.constantFrom(0, 1),
    bytes: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 1000, maxLength: 4500 })).map((a) => Buffer.from(a)),
    chunkSize: fc.integer({ min: 64, max: 2048 }),
  }),
  { maxLength: 4 },
);

/** A message with arbitrary, mostly hostile chunk headers. */
const hostileArb: fc.Arbitrary<IncomingMessage> = fc.record(
  {
    key: fc.constantFrom('k', null, undefined, Buffer.from('k')),
    value: fc.oneof(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), fc.constant(null)),
    offset: fc.oneof({ weight: 8, arbitrary: fc.nat({ max: 10_000 }).map(String) }, { weight: 1, arbitrary: fc.constantFrom('-1', 'x', '', '18446744073709551616') }),
    partition: fc.constantFrom(0, 1, undefined),
    headers: fc.record(
      {
        [CHUNK_HEADERS.id]: headerValueArb(fc.oneof(fc.constantFrom('p1', 'p2', 'h', ''), fc.string({ maxLength: 4 }))),
        [CHUNK_HEADERS.index]: headerValueArb(decimalHeaderArb),
        [CHUNK_HEADERS.count]: headerValueArb(decimalHeaderArb),
        [CHUNK_HEADERS.size]: headerValueArb(decimalHeaderArb),
        [CHUNK_HEADERS.sha256]: headerValueArb(fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.constantFrom('', 'AB'.repeat(32), sha(Buffer.alloc(0))))),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['value', 'headers'] },
);

interface Step {
  message: IncomingMessage;
  /** Milliseconds the clock moves before this message. */
  wait: number;
}

/** Real chunks (shuffled, lost, redelivered) with hostile messages in between, and a clock. */
const scenarioArb = fc
  .record({
    payloads: payloadsArb,
    picks: fc.array(fc.nat(), { maxLength: 40 }),
    hostile: fc.array(fc.tuple(fc.nat(), hostileArb), { maxLength: 12 }),
    waits: fc.array(fc.oneof(fc.constant(0), fc.nat({ max: 2000 })), { maxLength: 60 }),
    maxAgeMs: fc.constantFrom(undefined, 500, 5000),
  })
  .map(({ payloads, picks, hostile, waits, maxAgeMs }) => {
    const chunks: IncomingMessage[] = payloads.flatMap((p) =>
      splitPayload(p.bytes, { key: 'k', chunkSize: p.chunkSize, payloadId: p.id }).map((r) => ({ key: r.key, value: r.value, headers: r.headers, partition: p.partition })),
    );
    const messages = pick(chunks, picks);
    for (const [at, m] of hostile) messages.splice(at % (messages.length + 1), 0, m);
    const steps: Step[] = messages.map((m, i) => ({ message: { ...m, offset: m.offset ?? String(i) }, wait: waits[i] ?? 0 }));
    return { payloads, steps, maxAgeMs };
  });

describe('fuzz: chunk reassembly', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('hostile headers, any order, losses and redeliveries: a result or a ChunkedPayloadError naming where, within the bounds', () => {
    fc.assert(
      fc.property(scenarioArb, ({ payloads, steps, maxAgeMs }) => {
        let clock = 0;
        const r = new Reassembler({ ...LIMITS, ...(maxAgeMs === undefined ? {} : { maxAgeMs }), now: () => clock });
        let fed = 0;
        const originals = new Map(payloads.map((p) => [`${p.partition}/${p.id}`, p.bytes]));
        for (const { message, wait } of steps) {
          clock += wait;
          fed += message.value?.length ?? 0;
          const out = typed(() => r.accept(message), chunkWhere);
          const dropped = out.ok ? out.value.dropped ?? [] : (out.error as ChunkedPayloadError).dropped;
          for (const d of dropped) {
            expect(d).toBeInstanceOf(ChunkedPayloadError);
            expect(d.code).toBe('CODEC_CHUNK_MISSING');
            expect(chunkWhere(d)).toBe(true);
          }
          if (out.ok && out.value.status === 'complete' && out.value.payloadId !== undefined) {
            // Whatever completes matches its declared checksum; a real payload comes back byte for byte.
            const original = originals.get(`${message.partition ?? ''}/${out.value.payloadId}`);
            if (original && sha(original) === String(message.headers?.[CHUNK_HEADERS.sha256])) expect(out.value.payload.equals(original)).toBe(true);
          }
          const s = r.stats();
          expect(s.bufferedBytes).toBeLessThanOrEqual(LIMITS.maxBufferedBytes);
          expect(s.bufferedBytes).toBeLessThanOrEqual(fed);
          expect(s.pendingPayloads).toBeLessThanOrEqual(LIMITS.maxPendingPayloads);
          expect(s.peakBufferedBytes).toBeLessThanOrEqual(LIMITS.maxBufferedBytes);
          const pending = r.pending();
          expect(pending.reduce((n, p) => n + p.bufferedBytes, 0)).toBe(s.bufferedBytes);
          for (const p of pending) {
            expect(p.received).toBeLessThanOrEqual(p.chunkCount);
            expect(p.bufferedBytes).toBeLessThanOrEqual(p.size);
          }
        }
        for (const e of r.expire(0, clock + 1)) expect(e.code).toBe('CODEC_CHUNK_MISSING');
        expect(r.stats().bufferedBytes).toBe(0);
        expect(r.lowestPendingOffset(0)).toBeUndefined();
      }),
      fuzzParams('chunks.hostile', 1500),
    );
  });

  it('real payloads whose chunks arrive in any order, interleaved and redelivered, all complete, intact', () => {
    fc.assert(
      fc.property(payloadsArb, fc.array(fc.nat(), { maxLength: 30 }), (payloads, extra) => {
        const unique = [...new Map(payloads.map((p) => [`${p.partition}/${p.id}`, p])).values()].filter((p) => p.bytes.length <= LIMITS.maxPayloadBytes);
        const chunks = unique.flatMap((p) => splitPayload(p.bytes, { key: 'k', chunkSize: p.chunkSize, payloadId: p.id }).map((c) => ({ ...c, partition: p.partition, id: p.id })));
        // Every chunk once, in an order drawn from `extra`, then some of them again (a redelivered chunk 0 starts a replay).
        const order = chunks.map((c, i) => ({ c, k: extra[i] ?? i })).sort((a, b) => a.k - b.k).map((x) => x.c);
        const messages = [...order, ...pick(chunks, extra)];
        const r = new Reassembler({ ...LIMITS, maxPendingPayloads: 8, maxBufferedBytes: 8 * LIMITS.maxPayloadBytes });
        const completed = new Map<string, Buffer>();
        messages.forEach((m, i) => {
          const out = typed(() => r.accept({ key: m.key, value: m.value, headers: m.headers, partition: m.partition, offset: String(i) }), chunkWhere);
          if (!out.ok) throw out.error;
          if (out.value.status === 'complete' && out.value.payloadId !== undefined) {
            const slot = `${m.partition}/${out.value.payloadId}`;
            const before = completed.get(slot);
            if (before) expect(out.value.payload.equals(before), `${slot} completed again with other bytes`).toBe(true);
            completed.set(slot, out.value.payload);
          }
        });
        for (const p of unique) {
          if (p.bytes.length > p.chunkSize) expect(completed.get(`${p.partition}/${p.id}`)?.equals(p.bytes), `${p.partition}/${p.id}`).toBe(true);
        }
        for (const p of r.pending()) expect(p.received).toBeLessThan(p.chunkCount);
      }),
      fuzzParams('chunks.valid-orders', 1000),
    );
  });
});
