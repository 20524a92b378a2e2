/**
 * What the Reassembler (chunk-reassemble.ts) takes and gives: its options (the hostile-input bounds), the result of
 * accepting one message, and its counters.
 */
import type { ChunkedPayloadError } from './chunk-headers.ts';

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
  /** Declared number of chunks, and how many distinct chunks arrived (what is missing is never listed: see `drop`). */
  chunkCount: number;
  received: number;
  /** Declared size of the whole payload, and bytes buffered so far. */
  size: number;
  bufferedBytes: number;
  firstOffset: string | undefined;
  lastOffset: string | undefined;
  /** Clock readings (`now()`, ms) of the first and latest chunk. */
  firstSeenAt: number;
  lastSeenAt: number;
}

/**
 * Bounds on what chunk headers may declare and what incomplete payloads may hold (docs/security.md, "Hostile-input
 * limits"). Pipeline readers get them from the manifest's `limits` (protocol/wire.ts `reassemblerOptions`); the
 * defaults below are for a bare Reassembler.
 */
export interface ReassemblerOptions {
  /** Largest declared `fedstream-size` of a payload, in bytes (default: `maxBufferedBytes`); larger is CODEC_LIMIT. */
  maxPayloadBytes?: number;
  /** Most bytes buffered over all incomplete payloads (default 256 MiB); the least recently active are evicted. */
  maxBufferedBytes?: number;
  /** Most incomplete payloads at once (default 1024); the least recently active is evicted beyond it. */
  maxPendingPayloads?: number;
  /** Incomplete payloads with no chunk for this long (ms) are expired by `accept` itself (default: only by `expire`). */
  maxAgeMs?: number;
  /**
   * Smallest and largest chunk size any writer may have used, in bytes (default 1 and unbounded). A header set is
   * refused unless ceil(size / maxChunkBytes) <= count <= ceil(size / minChunkBytes), and a chunk value larger than
   * maxChunkBytes is refused: a count can never make the reader allocate or wait for more than the size allows.
   */
  minChunkBytes?: number;
  maxChunkBytes?: number;
  /** Ids of completed (and of dropped) payloads remembered, to recognise late chunks (default 1024 each). */
  rememberCompleted?: number;
  /** Clock for ages (default Date.now). */
  now?: () => number;
}

/** The reassembler's own counters: what it holds now, the most it ever held, and what it let go. */
export interface ReassemblerStats {
  pendingPayloads: number;
  bufferedBytes: number;
  peakPendingPayloads: number;
  peakBufferedBytes: number;
  /** Payloads dropped incomplete: evicted to stay within the bounds, or expired by age. */
  evicted: number;
  expired: number;
  /** Messages refused outright (bad or over-limit headers, late chunks of dropped payloads, conflicting duplicates). */
  refused: number;
}
