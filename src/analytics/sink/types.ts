/**
 * The sink's public types: its options, what each flush wrote, its counters and its health.
 */
import type { FedStreamError } from '../../common/index.ts';
import type { Instrumentation, Logger } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import type { ServiceHealth } from '../../common/index.ts';
import type { ParticipantRegistry } from '../../protocol/index.ts';
import type { TopicPartitionOffset, Transport } from '../../transport/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import type { SinkTable } from './rows.ts';

/** What one batch wrote, given to `onFlush` after its offsets were committed. */
export interface FlushInfo {
  /** Rows inserted per table by this batch (status rows of `updates` included). */
  rows: Record<SinkTable, number>;
  /** Kafka records the batch covered. */
  messages: number;
  /** Raw records sent to the dead-letter topic by this batch. */
  deadLettered: number;
  /** Updates whose status (accepted / rejected) this batch wrote. */
  statusUpdates: number;
  /** Offsets committed after the insert. */
  offsets: TopicPartitionOffset[];
  /** Failed attempts before this batch landed. */
  retries: number;
  /** From cut to commit. */
  ms: number;
  /** What cut the batch: `rows`, `time`, `stop` or `finish`. */
  trigger: string;
}

/** The sink's counters, for progress lines and tests. */
export interface SinkMetrics {
  state: SinkState;
  /** Kafka records taken from the topics (redeliveries included). */
  messages: number;
  /** Rows inserted per table (redelivered rows included: ClickHouse collapses them). */
  rows: Record<SinkTable, number>;
  rowsTotal: number;
  /** Status rows written to `updates` once the aggregator's decision was known. */
  statusUpdates: number;
  /** Records that could not be read (bad bytes, unknown schema, chunk failures, rows ClickHouse refused). */
  unreadable: number;
  /** Records refused as not signed by their writer's key (forged or unsigned control, versions, audit, updates). */
  refused: number;
  /** Raw records the sink sent to the dead-letter topic. */
  deadLettered: number;
  /** Batches inserted and committed. */
  batches: number;
  /** Failed insert attempts that were retried. */
  retries: number;
  /** Records behind the high watermarks of the assigned partitions, as of the last fetch. */
  lag: number;
  /** Rows waiting for the next batch. */
  bufferedRows: number;
  /** True while consumption is paused (ClickHouse failing, or a batch in flight and the next one full). */
  paused: boolean;
  /** A FINISH round control was consumed. */
  finishSeen: boolean;
  lastFlushAt?: number;
  lastError?: string;
}

export type SinkState = 'new' | 'running' | 'retrying' | 'stopping' | 'stopped' | 'crashed';

/** The sink's health, a value: the Service shape plus what `fedstream sink` and the tests read. */
export interface SinkHealth extends ServiceHealth {
  /** Same as `healthy` (the name clickhouse-js' `ping()` uses). */
  success: boolean;
  state: SinkState;
  lag: number;
  /** What made the sink stop or retry. */
  error?: FedStreamError;
}

/** What a sink needs and how it batches; only the first four are required. */
export interface SinkOptions {
  manifest: Manifest;
  transport: Transport;
  analytics: AnalyticsClient;
  logger: Logger;
  /** The pipeline's participants, against which records are verified (default: the manifest's, `participantRegistry`). */
  registry?: ParticipantRegistry;
  /** A batch is inserted when it holds this many rows (default 10,000)... */
  batchRows?: number;
  /** ...or when its first record is this old (default 1,000 ms). */
  batchMs?: number;
  /** Called after each batch is inserted and committed. */
  onFlush?: (info: FlushInfo) => void;
  /** Where the sink's instrumentation events go (metrics); default nowhere. */
  instrumentation?: Instrumentation;
  /** Default `<tenant>.<pipeline>.sink`. */
  groupId?: string;
  /** Backoff of a failing batch: first delay (default 200 ms) and cap (default 10 s). Retries never stop. */
  retryInitialDelayMs?: number;
  retryMaxDelayMs?: number;
  /**
   * Also dead-letter unreadable records of the updates topic (default false: the aggregator owns
   * the verdict on updates and already puts their raw bytes on the dead-letter topic, with an
   * UPDATE_REJECTED audit event the sink records; a second copy would double-count them).
   */
  deadLetterUpdates?: boolean;
  /** Incomplete chunked payloads with no new chunk for this long are dead-lettered (default the manifest's `limits.maxPendingAgeMs`). */
  chunkMaxAgeMs?: number;
  /** How long `stop()` keeps trying to flush when ClickHouse is down (default 30 s); the rest is re-read later. */
  stopTimeoutMs?: number;
  /**
   * Test hook: runs after a batch is inserted and before its offsets are committed. A throw is
   * treated like a crash at that point: the sink halts at once, without committing.
   */
  beforeCommit?: (info: FlushInfo) => void | Promise<void>;
}
