/**
 * Putting chunked payloads back together (see chunk-split.ts for the layout): the Reassembler buffers chunks per
 * payload id until all have arrived, concatenates them once, and checks the size and sha256 of the whole.
 */
import { createHash } from 'node:crypto';
import { CHUNK_HEADERS, CHUNK_HEADER_NAMES, ChunkedPayloadError, headerValues, isChunk, readChunkHeaders, reject, type ChunkHeaders, type IncomingMessage } from './chunk-headers.ts';
import type { AcceptResult, CompleteResult, PendingPayloadInfo, ReassemblerOptions, ReassemblerStats } from './chunk-types.ts';

export type { AcceptResult, CompleteResult, PendingPayloadInfo, PendingResult, ReassemblerOptions, ReassemblerStats } from './chunk-types.ts';

interface Pending extends ChunkHeaders {
  /** `<partition>/<id>`: the map key (payload ids are only unique within a partition). */
  slot: string;
  key: string | Buffer | null | undefined;
  partition: number | undefined;
  /** Chunks by index, in arrival order: what a dead-letter copy needs. Sized by arrivals, never by the declared count. */
  chunks: Map<number, IncomingMessage>;
  bufferedBytes: number;
  firstOffset: string | undefined;
  lastOffset: string | undefined;
  firstSeenAt: number;
  lastSeenAt: number;
}

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

/**
 * Reassembles chunked payloads from consumed messages; chunks of several payloads may interleave and arrive in any
 * order. Not thread-safe (one per consumer and topic). Offsets: a consumer should not commit past the `firstOffset`
 * of a pending payload (`lowestPendingOffset`), or a restart would lose its first chunks; a payload dropped
 * (evicted, expired, refused) no longer holds any offset back.
 *
 * Hostile input costs O(1) per message: headers are checked against the limits before anything is kept, memory is
 * bounded by `maxBufferedBytes` and `maxPendingPayloads`, and the incomplete payloads are kept in a Map ordered by
 * their latest chunk, so that the least recently active one (eviction) and the stale ones (expiry) are at its front.
 */
export class Reassembler {
  /** Incomplete payloads by slot, least recently active first (a chunk moves its payload to the end). */
  private readonly payloads = new Map<string, Pending>();
  private readonly completed = new Map<string, { count: number; size: number; sha256: string }>();
  /** Slots of payloads dropped incomplete, oldest first: their late chunks are refused, not buffered again. */
  private readonly droppedSlots = new Map<string, 'evicted' | 'expired'>();
  readonly maxPayloadBytes: number;
  private readonly maxBufferedBytes: number;
  private readonly maxPendingPayloads: number;
  private readonly maxAgeMs: number | undefined;
  readonly minChunkBytes: number;
  readonly maxChunkBytes: number;
  private readonly rememberCompleted: number;
  private readonly now: () => number;
  private buffered = 0;
  private readonly counters = { peakPendingPayloads: 0, peakBufferedBytes: 0, evicted: 0, expired: 0, refused: 0 };

  constructor(options: ReassemblerOptions = {}) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? 256 * 1024 * 1024;
    this.maxPayloadBytes = options.maxPayloadBytes ?? this.maxBufferedBytes;
    this.maxPendingPayloads = options.maxPendingPayloads ?? 1024;
    this.maxAgeMs = options.maxAgeMs;
    this.minChunkBytes = options.minChunkBytes ?? 1;
    this.maxChunkBytes = options.maxChunkBytes ?? Infinity;
    this.rememberCompleted = options.rememberCompleted ?? 1024;
    this.now = options.now ?? Date.now;
  }

  /** Bytes held by incomplete payloads. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** What it holds now, the most it held, and what it dropped or refused (a copy). */
  stats(): ReassemblerStats {
    return { pendingPayloads: this.payloads.size, bufferedBytes: this.buffered, ...this.counters };
  }

  /**
   * Takes one consumed message. A message without chunk headers is complete by itself. Throws a
   * ChunkedPayloadError for a message it refuses (bad or over-limit headers, a late chunk of a payload it dropped,
   * a conflicting duplicate) and for a payload that fails its size or sha256 check once complete (that payload is
   * then discarded). Payloads it drops to keep within its bounds come back in `dropped` (CODEC_CHUNK_MISSING).
   */
  accept(message: IncomingMessage): AcceptResult {
    // Expired first, so that a refused message still reports them (on the error's `dropped`).
    const stale = this.maxAgeMs === undefined ? [] : this.expire(this.maxAgeMs);
    try {
      return withDropped(this.take(message), stale);
    } catch (err) {
      if (err instanceof ChunkedPayloadError) {
        if (err.messages.length === 1 && err.messages[0] === message) this.counters.refused++;
        err.dropped.push(...stale);
      }
      throw err;
    }
  }

  private take(message: IncomingMessage): AcceptResult {
    const value = message.value;
    if (message.offset !== undefined && !/^\d+$/.test(message.offset)) {
      throw reject('CODEC_INVALID', `offset ${JSON.stringify(message.offset)} is not a decimal string`, undefined, message);
    }
    const hasId = isChunk(message.headers);
    if (!hasId) {
      const stray = CHUNK_HEADER_NAMES.find((h) => headerValues(message.headers, h).length > 0);
      if (stray) throw reject('CODEC_INVALID', `header ${stray} without ${CHUNK_HEADERS.id}`, undefined, message, { header: stray });
      if (!value) throw reject('CODEC_INVALID', 'message has no value', undefined, message);
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

    const h = readChunkHeaders(message, this);
    if (!value) throw reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} has no value`, h.id, message, { index: h.index });
    if (value.length > this.maxChunkBytes) {
      throw reject('CODEC_LIMIT', `chunk ${h.index} of payload ${h.id} holds ${value.length} bytes, more than any chunk size (${this.maxChunkBytes})`, h.id, message, {
        index: h.index, bytes: value.length, limit: this.maxChunkBytes,
      });
    }
    const slot = `${message.partition ?? ''}/${h.id}`;

    const done = this.completed.get(slot);
    if (done && !this.payloads.has(slot)) {
      // A late copy of a chunk of a payload already delivered. Index 0 starts a genuine replay.
      if (h.index !== 0 && done.count === h.count && done.size === h.size && done.sha256 === h.sha256) {
        return { status: 'pending', payloadId: h.id, received: h.count, chunkCount: h.count, duplicate: true };
      }
      this.completed.delete(slot);
    }
    const gone = this.droppedSlots.get(slot);
    if (gone && !this.payloads.has(slot)) {
      // A straggler of a payload dropped incomplete would only start a payload that can never complete. Index 0
      // is a replay (a redelivery after a rebalance) and starts over.
      if (h.index !== 0) {
        throw reject('CODEC_CHUNK_MISSING', `chunk ${h.index} of payload ${h.id} arrived after the payload was ${gone} incomplete; refused`, h.id, message, { index: h.index, reason: gone });
      }
      this.droppedSlots.delete(slot);
    }

    let p = this.payloads.get(slot);
    if (p) {
      this.checkConsistent(p, h, message);
      const existing = p.chunks.get(h.index);
      if (existing) {
        if (!(existing.value as Buffer).equals(value)) {
          throw reject('CODEC_CHUNK_DUPLICATE', `chunk ${h.index} of payload ${h.id} arrived twice with different content (the first copy is kept)`, h.id, message, {
            index: h.index,
            offset: message.offset,
            firstCopyOffset: existing.offset,
          });
        }
        // An identical copy (a redelivery) is not kept: repeating a chunk costs nothing.
        this.touch(p, message);
        return { status: 'pending', payloadId: h.id, received: p.chunks.size, chunkCount: p.count, duplicate: true };
      }
    }
    const held = p?.bufferedBytes ?? 0;
    if (held + value.length > h.size) {
      throw reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} brings its chunks to ${held + value.length} bytes, more than its ${CHUNK_HEADERS.size} ${h.size}`, h.id, message, {
        header: CHUNK_HEADERS.size, index: h.index, size: h.size, bytes: held + value.length,
      });
    }
    if (!p) {
      p = {
        ...h,
        slot,
        key: message.key,
        partition: message.partition,
        chunks: new Map(),
        bufferedBytes: 0,
        firstOffset: undefined,
        lastOffset: undefined,
        firstSeenAt: this.now(),
        lastSeenAt: 0,
      };
      this.payloads.set(slot, p);
    }

    p.chunks.set(h.index, message);
    p.bufferedBytes += value.length;
    this.buffered += value.length;
    this.touch(p, message);

    if (p.chunks.size === p.count) return this.complete(p);

    const dropped = this.enforceBounds(p);
    this.counters.peakPendingPayloads = Math.max(this.counters.peakPendingPayloads, this.payloads.size);
    this.counters.peakBufferedBytes = Math.max(this.counters.peakBufferedBytes, this.buffered);
    return withDropped({ status: 'pending', payloadId: p.id, received: p.chunks.size, chunkCount: p.count }, dropped);
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
        received: p.chunks.size,
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
   * error per payload, with the raw messages received, for the caller to dead-letter and audit. O(expired): the
   * stale payloads are at the front of the map.
   */
  expire(olderThanMs: number, now: number = this.now()): ChunkedPayloadError[] {
    const dropped: ChunkedPayloadError[] = [];
    for (const p of this.payloads.values()) {
      if (now - p.lastSeenAt < olderThanMs) break;
      dropped.push(this.drop(p, `no chunk for ${now - p.lastSeenAt} ms`, 'expired'));
    }
    return dropped;
  }

  private checkConsistent(p: Pending, h: ChunkHeaders, message: IncomingMessage): void {
    const differ = (['count', 'size', 'sha256'] as const).find((k) => p[k] !== h[k]);
    if (differ) {
      const header = CHUNK_HEADERS[differ];
      throw reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} says ${header} ${h[differ]}, earlier chunks said ${p[differ]}`, h.id, message, {
        header,
        index: h.index,
        expected: p[differ],
        actual: h[differ],
      });
    }
    if (!sameKey(p.key, message.key) || p.partition !== message.partition) {
      throw reject('CODEC_INVALID', `chunk ${h.index} of payload ${h.id} arrived under another key or partition than its earlier chunks`, h.id, message, {
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
    // To the end of the map: the front is then always the least recently active payload.
    this.payloads.delete(p.slot);
    this.payloads.set(p.slot, p);
  }

  private forget(p: Pending): void {
    this.payloads.delete(p.slot);
    this.buffered -= p.bufferedBytes;
  }

  /** The raw messages of a payload, in arrival order. */
  private messagesOf(p: Pending): IncomingMessage[] {
    return [...p.chunks.values()];
  }

  private complete(p: Pending): CompleteResult {
    this.forget(p);
    const parts: Buffer[] = [];
    for (let i = 0; i < p.count; i++) parts.push(p.chunks.get(i)!.value as Buffer);
    const payload = Buffer.concat(parts, p.bufferedBytes);
    const where = { chunkCount: p.count, firstOffset: p.firstOffset, lastOffset: p.lastOffset, partition: p.partition };
    if (payload.length !== p.size) {
      throw new ChunkedPayloadError('CODEC_CHECKSUM_MISMATCH', `payload ${p.id} reassembled to ${payload.length} bytes, its chunks declare ${p.size}`, p.id, this.messagesOf(p), {
        ...where,
        expectedSize: p.size,
        actualSize: payload.length,
      });
    }
    const sha256 = createHash('sha256').update(payload).digest('hex');
    if (sha256 !== p.sha256) {
      throw new ChunkedPayloadError('CODEC_CHECKSUM_MISMATCH', `payload ${p.id} reassembled to sha256 ${sha256}, its chunks declare ${p.sha256}`, p.id, this.messagesOf(p), {
        ...where,
        expected: p.sha256,
        actual: sha256,
      });
    }
    remember(this.completed, p.slot, { count: p.count, size: p.size, sha256: p.sha256 }, this.rememberCompleted);
    return { status: 'complete', payload, payloadId: p.id, key: p.key, partition: p.partition, firstOffset: p.firstOffset, lastOffset: p.lastOffset, chunkCount: p.count };
  }

  /** Evicts the least recently active other payloads while over a bound: each one O(1), from the front of the map. */
  private enforceBounds(current: Pending): ChunkedPayloadError[] {
    const dropped: ChunkedPayloadError[] = [];
    while (this.buffered > this.maxBufferedBytes || this.payloads.size > this.maxPendingPayloads) {
      let victim: Pending | undefined;
      for (const p of this.payloads.values()) {
        if (p !== current) {
          victim = p;
          break;
        }
      }
      if (!victim) break;
      const why = this.buffered > this.maxBufferedBytes ? `more than ${this.maxBufferedBytes} bytes buffered` : `more than ${this.maxPendingPayloads} incomplete payloads`;
      dropped.push(this.drop(victim, why, 'evicted'));
    }
    return dropped;
  }

  /** Drops an incomplete payload; says how many chunks arrived, never which are missing (the count may be huge). */
  private drop(p: Pending, why: string, reason: 'expired' | 'evicted'): ChunkedPayloadError {
    this.forget(p);
    this.counters[reason]++;
    remember(this.droppedSlots, p.slot, reason, this.rememberCompleted);
    return new ChunkedPayloadError('CODEC_CHUNK_MISSING', `payload ${p.id} ${reason} incomplete (${why}): ${p.chunks.size} of ${p.count} chunks received`, p.id, this.messagesOf(p), {
      reason,
      received: p.chunks.size,
      chunkCount: p.count,
      size: p.size,
      bufferedBytes: p.bufferedBytes,
      partition: p.partition,
      firstOffset: p.firstOffset,
      lastOffset: p.lastOffset,
    });
  }
}

/** Sets `key` in an insertion-ordered map, forgetting the oldest entry beyond `most`. */
function remember<V>(map: Map<string, V>, key: string, value: V, most: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > most) map.delete(map.keys().next().value as string);
}

function withDropped<R extends AcceptResult>(result: R, dropped: ChunkedPayloadError[]): R {
  if (dropped.length) result.dropped = [...(result.dropped ?? []), ...dropped];
  return result;
}
