import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../../src/common/errors.ts';
import {
  CHUNK_HEADERS,
  ChunkedPayloadError,
  Reassembler,
  defaultCodec,
  isChunk,
  splitPayload,
  type AcceptResult,
  type ChunkRecord,
  type CompleteResult,
  type IncomingMessage,
} from '../../src/codec/index.ts';
import { DEFAULTS } from '../../src/config/defaults.ts';
import { samples } from '../fixtures/avro/samples.ts';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** What a consumer hands over: Buffer headers, string offsets. */
function consumed(record: ChunkRecord, offset: number, partition = 0): IncomingMessage {
  const headers: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(record.headers)) headers[k] = Buffer.from(v);
  return { key: typeof record.key === 'string' ? Buffer.from(record.key) : record.key, value: record.value, headers, offset: String(offset), partition };
}

function thrown(fn: () => unknown): ChunkedPayloadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ChunkedPayloadError) return err;
    throw err;
  }
  throw new Error('expected a ChunkedPayloadError');
}

function complete(result: AcceptResult): CompleteResult {
  if (result.status !== 'complete') throw new Error(`expected complete, got ${result.status}`);
  return result;
}

describe('splitPayload', () => {
  it('keeps a payload of at most chunkSize bytes in one record without chunk headers', () => {
    const payload = randomBytes(100);
    const records = splitPayload(payload, { key: 'node-1', chunkSize: 100, headers: { 'content-type': 'avro' } });
    expect(records).toEqual([{ key: 'node-1', value: payload, headers: { 'content-type': 'avro' } }]);
    expect(isChunk(records[0]?.headers)).toBe(false);
    expect(splitPayload(Buffer.alloc(0), { key: null })).toHaveLength(1);
  });

  it('splits a larger payload into ordered chunks with string headers', () => {
    const payload = randomBytes(250);
    const records = splitPayload(payload, { key: 'node-1', chunkSize: 100, payloadId: 'p-1' });
    const sha = createHash('sha256').update(payload).digest('hex');
    expect(records.map((r) => r.value.length)).toEqual([100, 100, 50]);
    expect(Buffer.concat(records.map((r) => r.value)).equals(payload)).toBe(true);
    records.forEach((r, i) => {
      expect(r.key).toBe('node-1');
      expect(r.headers).toEqual({
        'fedstream-chunk-id': 'p-1',
        'fedstream-chunk-index': String(i),
        'fedstream-chunk-count': '3',
        'fedstream-sha256': sha,
        'fedstream-size': '250',
      });
    });
    expect(Object.values(CHUNK_HEADERS).sort()).toEqual(Object.keys(records[0]?.headers ?? {}).sort());
  });

  it('defaults to DEFAULTS.chunkSizeBytes and a random UUID payload id', () => {
    const records = splitPayload(Buffer.alloc(DEFAULTS.chunkSizeBytes + 1), { key: 'k' });
    expect(records).toHaveLength(2);
    expect(records[0]?.headers[CHUNK_HEADERS.id]).toMatch(/^[0-9a-f-]{36}$/);
    expect(records[0]?.value.length).toBe(DEFAULTS.chunkSizeBytes);
  });

  it('refuses a bad chunk size and reserved extra headers', () => {
    expect(() => splitPayload(Buffer.alloc(1), { key: 'k', chunkSize: 0 })).toThrow(CodecError);
    expect(() => splitPayload(Buffer.alloc(1), { key: 'k', chunkSize: 1.5 })).toThrow(/chunkSize/);
    expect(() => splitPayload(Buffer.alloc(1), { key: 'k', headers: { [CHUNK_HEADERS.sha256]: 'x' } })).toThrow(/reserved/);
  });
});

describe('Reassembler', () => {
  it('passes an unchunked message through as complete', () => {
    const r = new Reassembler();
    const result = complete(r.accept({ key: Buffer.from('k'), value: Buffer.from('abc'), headers: {}, offset: '41', partition: 2 }));
    expect(result).toMatchObject({ payloadId: undefined, firstOffset: '41', lastOffset: '41', chunkCount: 1, partition: 2 });
    expect(result.payload.toString()).toBe('abc');
  });

  it('reassembles a 16 MB model version split into chunks and decodes it', () => {
    const codec = defaultCodec();
    const version = samples().ModelVersion;
    version.tensors = [{ name: 'big', shape: [4 * 1024 * 1024], dtype: 'FLOAT32', scale: 1, data: randomBytes(16 * 1024 * 1024) }];
    const payload = codec.encode('ModelVersion', version);
    const records = splitPayload(payload, { key: 'mnist', chunkSize: DEFAULTS.chunkSizeBytes });
    expect(records.length).toBe(Math.ceil(payload.length / DEFAULTS.chunkSizeBytes));
    const r = new Reassembler();
    let result: AcceptResult | undefined;
    records.forEach((rec, i) => {
      result = r.accept(consumed(rec, 1000 + i));
      if (i < records.length - 1) expect(result).toMatchObject({ status: 'pending', received: i + 1, chunkCount: records.length });
    });
    const done = complete(result as AcceptResult);
    expect(done.payload.equals(payload)).toBe(true);
    expect(done).toMatchObject({ firstOffset: '1000', lastOffset: String(1000 + records.length - 1), chunkCount: records.length });
    expect(codec.decode('ModelVersion', done.payload).tensors[0]?.data.equals(version.tensors[0]?.data as Buffer)).toBe(true);
    expect(r.pending()).toEqual([]);
    expect(r.bufferedBytes).toBe(0);
  });

  it.each([1, 2, 3])('reassembles 3 interleaved payloads delivered in a shuffled order (seed %i)', (seed) => {
    const rand = prng(seed);
    const payloads = [randomBytes(1000), randomBytes(2345), randomBytes(777)];
    const messages = payloads.flatMap((p, n) => splitPayload(p, { key: `node-${n}`, chunkSize: 97, payloadId: `p${n}` })).map((rec, i) => consumed(rec, i));
    const r = new Reassembler();
    const done = new Map<string, CompleteResult>();
    for (const m of shuffle(messages, rand)) {
      const result = r.accept(m);
      if (result.status === 'complete') done.set(result.payloadId as string, result);
    }
    expect([...done.keys()].sort()).toEqual(['p0', 'p1', 'p2']);
    payloads.forEach((p, n) => expect(done.get(`p${n}`)?.payload.equals(p)).toBe(true));
    expect(done.get('p1')?.key?.toString()).toBe('node-1');
    expect(r.pending()).toEqual([]);
  });

  it('reassembles interleaved payloads in per-key order, as one Kafka partition delivers them', () => {
    const rand = prng(9);
    const perKey = [randomBytes(500), randomBytes(900), randomBytes(300)].map((p, n) => splitPayload(p, { key: `node-${n}`, chunkSize: 64, payloadId: `q${n}` }));
    const r = new Reassembler();
    const queues = perKey.map((recs) => [...recs]);
    let offset = 0;
    const completed: string[] = [];
    while (queues.some((q) => q.length)) {
      const nonEmpty = queues.filter((q) => q.length);
      const rec = (nonEmpty[Math.floor(rand() * nonEmpty.length)] as ChunkRecord[]).shift() as ChunkRecord;
      const result = r.accept(consumed(rec, offset++));
      if (result.status === 'complete') completed.push(result.payloadId as string);
    }
    expect(completed.sort()).toEqual(['q0', 'q1', 'q2']);
  });

  it('ignores an identical duplicate chunk, before and after completion', () => {
    const payload = randomBytes(300);
    const records = splitPayload(payload, { key: 'k', chunkSize: 100, payloadId: 'dup' });
    const r = new Reassembler();
    expect(r.accept(consumed(records[0] as ChunkRecord, 10))).toMatchObject({ status: 'pending', received: 1 });
    expect(r.accept(consumed(records[0] as ChunkRecord, 11))).toMatchObject({ status: 'pending', received: 1, duplicate: true });
    expect(r.accept(consumed(records[1] as ChunkRecord, 12)).status).toBe('pending');
    const done = complete(r.accept(consumed(records[2] as ChunkRecord, 13)));
    expect(done.payload.equals(payload)).toBe(true);
    expect(done).toMatchObject({ firstOffset: '10', lastOffset: '13' });
    // A late copy of the last chunk (a producer retry) does not start a new, never-completing payload.
    expect(r.accept(consumed(records[2] as ChunkRecord, 14))).toMatchObject({ status: 'pending', duplicate: true });
    expect(r.pending()).toEqual([]);
    // A full replay from the first chunk is delivered again.
    records.forEach((rec, i) => r.accept(consumed(rec, 20 + i)));
    expect(r.pending()).toEqual([]);
  });

  it('refuses a duplicate chunk with different content, keeps the first copy, and the sha decides', () => {
    const payload = randomBytes(300);
    const records = splitPayload(payload, { key: 'k', chunkSize: 100, payloadId: 'conflict' });
    const r = new Reassembler();
    r.accept(consumed(records[0] as ChunkRecord, 0));
    const forged = { ...(records[0] as ChunkRecord), value: Buffer.alloc(100, 1) };
    const err = thrown(() => r.accept(consumed(forged, 1)));
    expect(err.code).toBe('CODEC_CHUNK_DUPLICATE');
    expect(err.details).toMatchObject({ payloadId: 'conflict', index: 0, offset: '1', firstCopyOffset: '0' });
    expect(err.messages).toHaveLength(1);
    expect(err.messages[0]?.value?.equals(forged.value)).toBe(true);
    r.accept(consumed(records[1] as ChunkRecord, 2));
    expect(complete(r.accept(consumed(records[2] as ChunkRecord, 3))).payload.equals(payload)).toBe(true);
  });

  it('reports a checksum mismatch after reassembly and discards the payload', () => {
    const payload = randomBytes(300);
    const records = splitPayload(payload, { key: 'k', chunkSize: 100, payloadId: 'bad-sha' });
    const value = Buffer.from(records[1]?.value as Buffer);
    value.writeUInt8(value.readUInt8(5) ^ 0xff, 5);
    const corrupt = { ...(records[1] as ChunkRecord), value };
    const r = new Reassembler();
    r.accept(consumed(records[0] as ChunkRecord, 0));
    r.accept(consumed(corrupt, 1));
    const err = thrown(() => r.accept(consumed(records[2] as ChunkRecord, 2)));
    expect(err.code).toBe('CODEC_CHECKSUM_MISMATCH');
    expect(err.details).toMatchObject({ payloadId: 'bad-sha', expected: records[0]?.headers[CHUNK_HEADERS.sha256], firstOffset: '0', lastOffset: '2' });
    expect(err.messages.map((m) => m.offset)).toEqual(['0', '1', '2']);
    expect(r.pending()).toEqual([]);
    expect(r.bufferedBytes).toBe(0);
  });

  it('reports a size mismatch as a checksum mismatch', () => {
    const records = splitPayload(randomBytes(200), { key: 'k', chunkSize: 100, payloadId: 'size' });
    const r = new Reassembler();
    r.accept(consumed(records[0] as ChunkRecord, 0));
    const short = { ...(records[1] as ChunkRecord), value: (records[1] as ChunkRecord).value.subarray(0, 50) };
    expect(thrown(() => r.accept(consumed(short, 1))).message).toMatch(/150 bytes, its chunks declare 200/);
  });

  it('refuses chunks whose count disagrees, whose index is out of range, or whose headers are malformed', () => {
    const records = splitPayload(randomBytes(300), { key: 'k', chunkSize: 100, payloadId: 'hdr' });
    const r = new Reassembler();
    r.accept(consumed(records[0] as ChunkRecord, 0));
    const withHeaders = (patch: Record<string, string | undefined>): IncomingMessage => {
      const rec = records[1] as ChunkRecord;
      const headers: Record<string, string> = { ...rec.headers };
      for (const [k, v] of Object.entries(patch)) {
        if (v === undefined) delete headers[k];
        else headers[k] = v;
      }
      return { key: 'k', value: rec.value, headers, offset: '5', partition: 0 };
    };
    const count = thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.count]: '4' })));
    expect(count.code).toBe('CODEC_INVALID');
    expect(count.details).toMatchObject({ header: CHUNK_HEADERS.count, expected: 3, actual: 4 });
    const range = thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.index]: '3' })));
    expect(range.message).toMatch(/out of range 0\.\.2/);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.index]: '-1' }))).details.header).toBe(CHUNK_HEADERS.index);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.index]: '01' }))).details.header).toBe(CHUNK_HEADERS.index);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.sha256]: 'XYZ' }))).details.header).toBe(CHUNK_HEADERS.sha256);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.size]: undefined }))).message).toMatch(/fedstream-size is missing/);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.id]: undefined }))).message).toMatch(/without fedstream-chunk-id/);
    expect(thrown(() => r.accept(withHeaders({ [CHUNK_HEADERS.id]: '' }))).code).toBe('CODEC_INVALID');
    expect(thrown(() => r.accept({ ...withHeaders({}), key: 'other' })).message).toMatch(/another key/);
    expect(thrown(() => r.accept({ ...withHeaders({}), value: null })).message).toMatch(/has no value/);
    expect(thrown(() => r.accept({ value: null })).message).toMatch(/has no value/);
    expect(thrown(() => r.accept({ value: Buffer.alloc(1), offset: 'x' })).message).toMatch(/not a decimal string/);
    // None of that disturbed the payload in progress.
    expect(r.pending()[0]).toMatchObject({ payloadId: 'hdr', received: 1, chunkCount: 3 });
  });

  it('accepts repeated identical header values (kafkajs arrays) and refuses conflicting ones', () => {
    const records = splitPayload(randomBytes(200), { key: 'k', chunkSize: 100, payloadId: 'arr' });
    const r = new Reassembler();
    const rec = records[0] as ChunkRecord;
    const headers = { ...rec.headers, [CHUNK_HEADERS.index]: ['0', Buffer.from('0')] };
    expect(r.accept({ key: 'k', value: rec.value, headers }).status).toBe('pending');
    const conflicting = { ...(records[1] as ChunkRecord).headers, [CHUNK_HEADERS.index]: ['1', '0'] };
    expect(thrown(() => r.accept({ key: 'k', value: records[1]?.value ?? null, headers: conflicting })).message).toMatch(/repeated with different values/);
  });

  it('expires incomplete payloads as CODEC_CHUNK_MISSING with their raw messages', () => {
    let now = 1_000;
    const r = new Reassembler({ now: () => now });
    const a = splitPayload(randomBytes(500), { key: 'a', chunkSize: 100, payloadId: 'a' });
    const b = splitPayload(randomBytes(300), { key: 'b', chunkSize: 100, payloadId: 'b' });
    r.accept(consumed(a[0] as ChunkRecord, 7));
    r.accept(consumed(a[2] as ChunkRecord, 9));
    now = 5_000;
    r.accept(consumed(b[0] as ChunkRecord, 10));
    expect(r.pending().map((p) => [p.payloadId, p.received, p.chunkCount, p.firstOffset])).toEqual([
      ['a', 2, 5, '7'],
      ['b', 1, 3, '10'],
    ]);
    expect(r.lowestPendingOffset(0)).toBe('7');
    now = 34_000; // a: silent for 33 s, b: for 29 s
    const dropped = r.expire(30_000);
    expect(dropped).toHaveLength(1);
    const err = dropped[0] as ChunkedPayloadError;
    expect(err).toBeInstanceOf(CodecError);
    expect(err.code).toBe('CODEC_CHUNK_MISSING');
    expect(err.payloadId).toBe('a');
    expect(err.details).toMatchObject({ reason: 'expired', received: 2, chunkCount: 5, firstOffset: '7', lastOffset: '9' });
    expect(err.details).not.toHaveProperty('missing');
    expect(err.messages.map((m) => m.offset)).toEqual(['7', '9']);
    expect(r.pending().map((p) => p.payloadId)).toEqual(['b']);
    expect(r.lowestPendingOffset(0)).toBe('10');
    expect(r.bufferedBytes).toBe(100);
    // A straggler of the expired payload is refused at once: it could only start a payload that never completes.
    const late = thrown(() => r.accept(consumed(a[1] as ChunkRecord, 11)));
    expect(late.code).toBe('CODEC_CHUNK_MISSING');
    expect(late.details).toMatchObject({ reason: 'expired', index: 1 });
    expect(r.pending().map((p) => p.payloadId)).toEqual(['b']);
  });

  it('evicts the least recently active payloads beyond the buffer bounds and reports them', () => {
    let now = 0;
    const r = new Reassembler({ maxBufferedBytes: 1000, maxPendingPayloads: 2, now: () => ++now });
    const parts = ['x', 'y', 'z'].map((id) => splitPayload(randomBytes(600), { key: id, chunkSize: 300, payloadId: id }));
    expect(r.accept(consumed(parts[0]?.[0] as ChunkRecord, 0)).status).toBe('pending');
    expect(r.accept(consumed(parts[1]?.[0] as ChunkRecord, 1)).status).toBe('pending');
    const third = r.accept(consumed(parts[2]?.[0] as ChunkRecord, 2));
    expect(third.status).toBe('pending');
    expect(third.dropped?.map((e) => [e.code, e.payloadId, e.details.reason])).toEqual([['CODEC_CHUNK_MISSING', 'x', 'evicted']]);
    expect(r.pending().map((p) => p.payloadId)).toEqual(['y', 'z']);
    // Bytes: 600 buffered + 300 = 900 fits; another 300 would pass 1000, so the oldest other payload goes.
    const more = r.accept(consumed(parts[2]?.[1] as ChunkRecord, 3));
    expect(more.status).toBe('complete');
    expect(r.bufferedBytes).toBe(300);
    const big = splitPayload(randomBytes(2000), { key: 'big', chunkSize: 500, payloadId: 'big' });
    const tooBig = thrown(() => r.accept(consumed(big[0] as ChunkRecord, 4)));
    expect(tooBig.code).toBe('CODEC_LIMIT');
    expect(tooBig.details).toMatchObject({ header: CHUNK_HEADERS.size, size: 2000, limit: 1000 });
  });

  it('keeps chunks of the same payload id on different partitions apart', () => {
    const payload = randomBytes(200);
    const records = splitPayload(payload, { key: 'k', chunkSize: 100, payloadId: 'same' });
    const r = new Reassembler();
    r.accept(consumed(records[0] as ChunkRecord, 0, 0));
    expect(r.accept(consumed(records[1] as ChunkRecord, 0, 1))).toMatchObject({ status: 'pending', received: 1 });
    expect(r.pending().map((p) => p.partition).sort()).toEqual([0, 1]);
    expect(complete(r.accept(consumed(records[1] as ChunkRecord, 1, 0))).payload.equals(payload)).toBe(true);
    expect(r.lowestPendingOffset(1)).toBe('0');
  });
});
