/**
 * Putting chunked payloads back together (see chunk-split.ts for the layout): the Reassembler buffers chunks per
 * payload id until all have arrived, concatenates them once, and checks the size and sha256 of the whole.
 */
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../common/index.ts';
import { CHUNK_HEADERS, CHUNK_HEADER_NAMES, ChunkedPayloadError, headerValues, isChunk, type IncomingMessage } from './chunk-headers.ts';

export interface CompleteResult {
  status: 'complete';
  payload: Buffer;
  /** Undefined for a message that was not chunked. */
  payloadId: string | undefined;
  key: string | Buffer | null | undefined;
  partition: number | undefined;
  /** Lowest and highest offsets among the payload's messages (duplicates included). */
  firstOffset: string | undefined;
  lastOffset: string | undefined;
  chunkCount: number;
  /** Incomplete payloads evicted to stay within the buffer bounds while accepting this message. */
  dropped?: ChunkedPayloadError[];
}

export interface PendingResult {
  status: 'pending';
  payloadId: string;
  received: number;
  chunkCount: number;
  /**
   * Set when this message was an identical copy of a chunk already received (Kafka redelivery, including a
   * late copy of a chunk of a payload already completed): it was ignored.
   */
  duplicate?: true;
  dropped?: ChunkedPayloadError[];
}

export type AcceptResult = CompleteResult | PendingResult;

export interface PendingPayloadInfo {
  payloadId: string;
  key: string | Buffer | null | undefined;
  partition: number | undefined;
  chunkCount: number;
  received: number;
  /** Indices not received yet. */
  missing: number[];
  /** Declared size of the whole payload, and bytes buffered so far. */
  size: number;
  bufferedBytes: number;
  firstOffset: string | undefined;
  lastOffset: string | undefined;
  /** Clock readings (`now()`, ms) of the first and latest chunk. */
  firstSeenAt: number;
  lastSeenAt: number;
}

export interface ReassemblerOptions {
  /** Most bytes buffered over all incomplete payloads (default 256 MiB); the least recently active are evicted. */
  maxBufferedBytes?: number;
  /** Most incomplete payloads at once (default 1024). */
  maxPendingPayloads?: number;
  /** Ids of completed payloads remembered to recognise late duplicate chunks (default 1024). */
  rememberCompleted?: number;
  /** Clock for `expire` (default Date.now). */
  now?: () => number;
}

interface ChunkHeaders {
  id: string;
  index: number;
  count: number;
  size: number;
  sha256: string;
}

interface Pending extends ChunkHeaders {
  key: string | Buffer | null | undefined;
  partition: number | undefined;
  chunks: (IncomingMessage | undefined)[];
  /** Every accepted message, duplicates included: what a dead-letter copy needs. */
  messages: IncomingMessage[];
  received: number;
  bufferedBytes: number;
  firstOffset: string | undefined;
  lastOffset: string | undefined;
  firstSeenAt: number;
  lastSeenAt: number;
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

function sameKey(a: string | Buffer | null | undefined, b: string | Buffer | null | undefined): boolean {
  if (a === undefined || a === null || b === undefined || b === null) return (a ?? null) === (b ?? null);
  return Buffer.from(a).equals(Buffer.from(b));
}

function minOffset(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return BigInt(a) <= BigInt(b) ? a : b;
}

function maxOffset(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return BigInt(a) >= BigInt(b) ? a : b;
}

function missingIndices(p: Pending): number[] {
  const out: number[] = [];
  for (let i = 0; i < p.count; i++) if (!p.chunks[i]) out.push(i);
  return out;
}

/**
 * Reassembles chunked payloads from consumed messages; chunks of several payloads may interleave and arrive
 * in any order. Not thread-safe (one per consumer). Offsets: a consumer should not commit past the
 * `firstOffset` of a pending payload (`lowestPendingOffset`), or a restart would lose its first chunks.
 */
export class Reassembler {
  private readonly payloads = new Map<string, Pending>();
  private readonly completed = new Map<string, { count: number; size: number; sha256: string }>();
  private readonly maxBufferedBytes: number;
  private readonly maxPendingPayloads: number;
  private readonly rememberCompleted: number;
  private readonly now: () => number;
  private buffered = 0;

  constructor(options: ReassemblerOptions = {}) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? 256 * 1024 * 1024;
    this.maxPendingPayloads = options.maxPendingPayloads ?? 1024;
    this.rememberCompleted = options.rememberCompleted ?? 1024;
    this.now = options.now ?? Date.now;
  }

  /** Bytes held by incomplete payloads. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Takes one consumed message. A message without chunk headers is complete by itself. Throws a
   * ChunkedPayloadError for a message it refuses (bad headers, conflicting duplicate) and for a payload that
   * fails its size or sha256 check once complete (that payload is then discarded).
   */
  accept(message: IncomingMessage): AcceptResult {
    const value = message.value;
    if (message.offset !== undefined && !/^\d+$/.test(message.offset)) {
      throw this.reject('CODEC_INVALID', `offset ${JSON.stringify(message.offset)} is not a decimal string`, undefined, message);
    }
    const hasId = isChunk(message.headers);
    if (!hasId) {
      const stray = CHUNK_HEADER_NAMES.find((h) => headerValues(message.headers, h).length > 0);
      if (stray) throw this.reject('CODEC_INVALID', `header ${stray} without ${CHUNK_HEADERS.id}`, undefined, message, { header: stray });
      if (!value) throw this.reject('CODEC_INVALID', 'message has no value', undefined, message);
      return {
        status: 'complete',
        payload: value,
        payloadId: undefined,
        key: message.key,
        partition: message.partition,
        firstOffset: message.offset,
        lastOffset: message.offset,
        chunkCount: 1,
      };
    }

    const h = this.parseHeaders(message);
    if (!value) throw this.reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} has no value`, h.id, message, { index: h.index });

    const done = this.completed.get(h.id);
    if (done && !this.payloads.has(h.id)) {
      // A late copy of a chunk of a payload already delivered. Index 0 starts a genuine replay.
      if (h.index !== 0 && done.count === h.count && done.size === h.size && done.sha256 === h.sha256) {
        return { status: 'pending', payloadId: h.id, received: h.count, chunkCount: h.count, duplicate: true };
      }
      this.completed.delete(h.id);
    }

    let p = this.payloads.get(h.id);
    if (p) {
      this.checkConsistent(p, h, message);
      const existing = p.chunks[h.index];
      if (existing) {
        if (!(existing.value as Buffer).equals(value)) {
          throw this.reject('CODEC_CHUNK_DUPLICATE', `chunk ${h.index} of payload ${h.id} arrived twice with different content (the first copy is kept)`, h.id, message, {
            index: h.index,
            offset: message.offset,
            firstCopyOffset: existing.offset,
          });
        }
        this.touch(p, message);
        p.messages.push(message);
        return { status: 'pending', payloadId: h.id, received: p.received, chunkCount: p.count, duplicate: true };
      }
    } else {
      p = {
        ...h,
        key: message.key,
        partition: message.partition,
        chunks: new Array<IncomingMessage | undefined>(h.count),
        messages: [],
        received: 0,
        bufferedBytes: 0,
        firstOffset: undefined,
        lastOffset: undefined,
        firstSeenAt: this.now(),
        lastSeenAt: 0,
      };
      this.payloads.set(h.id, p);
    }

    p.chunks[h.index] = message;
    p.messages.push(message);
    p.received++;
    p.bufferedBytes += value.length;
    this.buffered += value.length;
    this.touch(p, message);

    if (p.received === p.count) return this.complete(p);

    const dropped = this.enforceBounds(p);
    const result: PendingResult = { status: 'pending', payloadId: p.id, received: p.received, chunkCount: p.count };
    if (dropped.length) result.dropped = dropped;
    return result;
  }

  /** Incomplete payloads, oldest first. */
  pending(): PendingPayloadInfo[] {
    return [...this.payloads.values()]
      .sort((a, b) => a.firstSeenAt - b.firstSeenAt)
      .map((p) => ({
        payloadId: p.id,
        key: p.key,
        partition: p.partition,
        chunkCount: p.count,
        received: p.received,
        missing: missingIndices(p),
        size: p.size,
        bufferedBytes: p.bufferedBytes,
        firstOffset: p.firstOffset,
        lastOffset: p.lastOffset,
        firstSeenAt: p.firstSeenAt,
        lastSeenAt: p.lastSeenAt,
      }));
  }

  /** Lowest offset of any incomplete payload on `partition` (undefined when none): commit below it only. */
  lowestPendingOffset(partition?: number): string | undefined {
    let lowest: string | undefined;
    for (const p of this.payloads.values()) if (p.partition === partition) lowest = minOffset(lowest, p.firstOffset);
    return lowest;
  }

  /**
   * Drops incomplete payloads that received no chunk for `olderThanMs` and returns one CODEC_CHUNK_MISSING
   * error per payload, with the raw messages received, for the caller to dead-letter and audit.
   */
  expire(olderThanMs: number, now: number = this.now()): ChunkedPayloadError[] {
    const dropped: ChunkedPayloadError[] = [];
    for (const p of [...this.payloads.values()]) {
      if (now - p.lastSeenAt >= olderThanMs) dropped.push(this.drop(p, `no chunk for ${now - p.lastSeenAt} ms`, 'expired'));
    }
    return dropped;
  }

  private parseHeaders(message: IncomingMessage): ChunkHeaders {
    const single = (name: string, payloadId: string | undefined): string | undefined => {
      const values = headerValues(message.headers, name);
      if (values.some((v) => v !== values[0])) {
        throw this.reject('CODEC_INVALID', `header ${name} is repeated with different values: ${values.join(', ')}`, payloadId, message, { header: name });
      }
      return values[0];
    };
    const id = single(CHUNK_HEADERS.id, undefined) ?? '';
    if (id === '') throw this.reject('CODEC_INVALID', `header ${CHUNK_HEADERS.id} is empty, expected a payload id`, undefined, message, { header: CHUNK_HEADERS.id });
    const text = (name: string, pattern: RegExp, expected: string): string => {
      const v = single(name, id);
      if (v === undefined || !pattern.test(v)) {
        throw this.reject('CODEC_INVALID', `chunk of payload ${id}: header ${name} is ${v === undefined ? 'missing' : JSON.stringify(v)}, expected ${expected}`, id, message, { header: name });
      }
      return v;
    };
    const index = Number(text(CHUNK_HEADERS.index, DECIMAL, 'a decimal integer >= 0'));
    const count = Number(text(CHUNK_HEADERS.count, DECIMAL, 'a decimal integer >= 1'));
    const size = Number(text(CHUNK_HEADERS.size, DECIMAL, 'a decimal byte count'));
    const sha256 = text(CHUNK_HEADERS.sha256, SHA256_HEX, '64 lowercase hex digits');
    if (count < 1) throw this.reject('CODEC_INVALID', `chunk of payload ${id}: ${CHUNK_HEADERS.count} is 0`, id, message, { header: CHUNK_HEADERS.count });
    if (index >= count) {
      throw this.reject('CODEC_INVALID', `chunk index ${index} of payload ${id} is out of range 0..${count - 1}`, id, message, { header: CHUNK_HEADERS.index, index, count });
    }
    if (size > this.maxBufferedBytes) {
      throw this.reject('CODEC_INVALID', `payload ${id} of ${size} bytes exceeds the reassembly bound of ${this.maxBufferedBytes} bytes`, id, message, { header: CHUNK_HEADERS.size, size });
    }
    return { id, index, count, size, sha256 };
  }

  private checkConsistent(p: Pending, h: ChunkHeaders, message: IncomingMessage): void {
    const differ = (['count', 'size', 'sha256'] as const).find((k) => p[k] !== h[k]);
    if (differ) {
      const header = CHUNK_HEADERS[differ];
      throw this.reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} says ${header} ${h[differ]}, earlier chunks said ${p[differ]}`, h.id, message, {
        header,
        index: h.index,
        expected: p[differ],
        actual: h[differ],
      });
    }
    if (!sameKey(p.key, message.key) || p.partition !== message.partition) {
      throw this.reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} arrived under another key or partition than its earlier chunks`, h.id, message, {
        index: h.index,
        partition: message.partition,
        expectedPartition: p.partition,
      });
    }
  }

  private touch(p: Pending, message: IncomingMessage): void {
    p.lastSeenAt = this.now();
    p.firstOffset = minOffset(p.firstOffset, message.offset);
    p.lastOffset = maxOffset(p.lastOffset, message.offset);
  }

  private forget(p: Pending): void {
    this.payloads.delete(p.id);
    this.buffered -= p.bufferedBytes;
  }

  private complete(p: Pending): CompleteResult {
    this.forget(p);
    const payload = Buffer.concat(
      p.chunks.map((c) => (c as IncomingMessage).value as Buffer),
      p.bufferedBytes,
    );
    const where = { chunkCount: p.count, firstOffset: p.firstOffset, lastOffset: p.lastOffset, partition: p.partition };
    if (payload.length !== p.size) {
      throw new ChunkedPayloadError('CODEC_CHECKSUM_MISMATCH', `payload ${p.id} reassembled to ${payload.length} bytes, its chunks declare ${p.size}`, p.id, p.messages, {
        ...where,
        expectedSize: p.size,
        actualSize: payload.length,
      });
    }
    const sha256 = createHash('sha256').update(payload).digest('hex');
    if (sha256 !== p.sha256) {
      throw new ChunkedPayloadError('CODEC_CHECKSUM_MISMATCH', `payload ${p.id} reassembled to sha256 ${sha256}, its chunks declare ${p.sha256}`, p.id, p.messages, {
        ...where,
        expected: p.sha256,
        actual: sha256,
      });
    }
    this.completed.set(p.id, { count: p.count, size: p.size, sha256: p.sha256 });
    if (this.completed.size > this.rememberCompleted) this.completed.delete(this.completed.keys().next().value as string);
    return { status: 'complete', payload, payloadId: p.id, key: p.key, partition: p.partition, firstOffset: p.firstOffset, lastOffset: p.lastOffset, chunkCount: p.count };
  }

  /** Evicts the least recently active other payloads while over a bound. */
  private enforceBounds(current: Pending): ChunkedPayloadError[] {
    const dropped: ChunkedPayloadError[] = [];
    while (this.buffered > this.maxBufferedBytes || this.payloads.size > this.maxPendingPayloads) {
      let victim: Pending | undefined;
      for (const p of this.payloads.values()) if (p !== current && (!victim || p.lastSeenAt < victim.lastSeenAt)) victim = p;
      if (!victim) break;
      const why = this.buffered > this.maxBufferedBytes ? `more than ${this.maxBufferedBytes} bytes buffered` : `more than ${this.maxPendingPayloads} incomplete payloads`;
      dropped.push(this.drop(victim, why, 'evicted'));
    }
    return dropped;
  }

  private drop(p: Pending, why: string, reason: 'expired' | 'evicted'): ChunkedPayloadError {
    this.forget(p);
    const missing = missingIndices(p);
    const shown = missing.length > 20 ? `${missing.slice(0, 20).join(', ')}, ...` : missing.join(', ');
    return new ChunkedPayloadError('CODEC_CHUNK_MISSING', `payload ${p.id} ${reason} incomplete (${why}): ${p.received} of ${p.count} chunks, missing ${shown}`, p.id, p.messages, {
      reason,
      received: p.received,
      chunkCount: p.count,
      missing: missing.slice(0, 100),
      missingCount: missing.length,
      partition: p.partition,
      firstOffset: p.firstOffset,
      lastOffset: p.lastOffset,
    });
  }

  private reject(code: Extract<ErrorCode, `CODEC_${string}`>, message: string, payloadId: string | undefined, incoming: IncomingMessage, details: Record<string, unknown> = {}): ChunkedPayloadError {
    return new ChunkedPayloadError(code, message, payloadId, [incoming], { offset: incoming.offset, partition: incoming.partition, ...details });
  }
}
