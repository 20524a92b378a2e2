/**
 * The sink: one consumer group (`<tenant>.<pipeline>.sink`, read_committed) over the telemetry, audit,
 * control, updates and models topics of a pipeline, writing ClickHouse in batches.
 *
 * Delivery is at-least-once, made exact by deduplication (docs/clickhouse.md, "Deduplication"):
 *
 * 1. a batch is cut by rows (`batchRows`) or by age (`batchMs`);
 * 2. its dead-letter records are sent, then every table's rows are inserted, each insert with an
 *    `insert_deduplication_token` derived from the batch's topic/partition/offset ranges and the rows'
 *    hash, so a retried insert of the same batch is dropped by ClickHouse;
 * 3. the updates whose decision is now known get their status row (accepted / rejected);
 * 4. only then are the offsets committed (`autoCommit: false`).
 *
 * A crash between 2 and 4 delivers the same records again in another batch: the tables are
 * ReplacingMergeTrees keyed by each record's natural key, and the queries read FINAL / LIMIT 1 BY, so
 * counts stay exact. When ClickHouse is slow or down the sink pauses the consumer, retries the same
 * batch with backoff, and resumes when it lands: nothing is lost. Unreadable records go to the
 * dead-letter topic with their reason and are counted; nothing crashes the sink.
 *
 * Weights are never stored: updates and model versions are decoded for their metadata only.
 */
import { createHash } from 'node:crypto';
import type { AuditEventRecord, ModelUpdateRecord, ModelVersionRecord, RoundControlRecord, TelemetryEventRecord, TensorRecord } from '../../codec/index.ts';
import { FedStreamError, isFedStreamError, toFedStreamError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { retry } from '../../common/retry.ts';
import type { Manifest } from '../../config/manifest.ts';
import { topicPrefix } from '../../config/manifest.ts';
import { pipelineTopics, waitForTopics, type PipelineTopics } from '../../protocol/topics.ts';
import { readToEnd } from '../../protocol/log.ts';
import { PayloadReader, deadLetterRecords, decode, type Payload, type PayloadFailure } from '../../protocol/wire.ts';
import type { Batch, Consumer, EachBatchContext, Producer, ProducerRecord, TopicPartitionOffset, Transport, TransportMessage } from '../../transport/types.ts';
import { toAnalyticsError, type AnalyticsClient } from '../clickhouse/client.ts';

/** The tables the sink writes, in the order it writes them. */
export const SINK_TABLES = ['telemetry_events', 'rounds', 'updates', 'audit_log', 'rejected_updates', 'model_versions', 'contributions'] as const;
export type SinkTable = (typeof SINK_TABLES)[number];

/** The topic kinds the sink reads (the dead-letter topic it only writes). */
export const SINK_TOPIC_KINDS = ['telemetry', 'audit', 'control', 'updates', 'models'] as const;
type SinkTopicKind = (typeof SINK_TOPIC_KINDS)[number];

/** Reason codes of rejections that say nothing about the update's own fate (a second copy of an accepted update). */
const STATUS_NEUTRAL_CODES = new Set(['duplicate']);

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

export interface SinkHealth {
  success: boolean;
  detail: string;
  state: SinkState;
  lag: number;
  error?: FedStreamError;
}

export interface SinkOptions {
  manifest: Manifest;
  transport: Transport;
  analytics: AnalyticsClient;
  logger: Logger;
  /** A batch is inserted when it holds this many rows (default 10,000)... */
  batchRows?: number;
  /** ...or when its first record is this old (default 1,000 ms). */
  batchMs?: number;
  /** Called after each batch is inserted and committed. */
  onFlush?: (info: FlushInfo) => void;
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
  /** Incomplete chunked payloads with no new chunk for this long are dead-lettered (default 10 min). */
  chunkMaxAgeMs?: number;
  /** How long `stop()` keeps trying to flush when ClickHouse is down (default 30 s); the rest is re-read later. */
  stopTimeoutMs?: number;
  /**
   * Test hook: runs after a batch is inserted and before its offsets are committed. A throw is
   * treated like a crash at that point: the sink halts at once, without committing.
   */
  beforeCommit?: (info: FlushInfo) => void | Promise<void>;
}

type Row = Record<string, unknown>;

/** Where a row came from: for offsets, dead-lettering and poison-row isolation. */
interface Source {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  bytes: Buffer;
}

interface Entry {
  row: Row;
  source: Source;
}

interface Range {
  topic: string;
  partition: number;
  first: bigint;
  last: bigint;
}

/** A batch being filled, then flushed. */
class PendingBatch {
  readonly rows = new Map<SinkTable, Entry[]>();
  rowCount = 0;
  messages = 0;
  startedAt = 0;
  readonly ranges = new Map<string, Range>();
  readonly deadLetters: ProducerRecord[] = [];
  /** Update ids whose status may be decidable after this batch lands. */
  readonly statusIds = new Set<string>();
  finish = false;
  /** Set when the batch is cut: what cut it, and the offsets to commit once it is written. */
  trigger = '';
  commitOffsets: TopicPartitionOffset[] = [];

  /** Nothing to write: no record taken, no row, no dead-letter record (an expired chunk makes the last two alone). */
  isEmpty(): boolean {
    return this.messages === 0 && this.rowCount === 0 && this.deadLetters.length === 0;
  }

  add(table: SinkTable, row: Row, source: Source): void {
    if (this.startedAt === 0) this.startedAt = Date.now();
    let list = this.rows.get(table);
    if (!list) this.rows.set(table, (list = []));
    list.push({ row, source });
    this.rowCount++;
  }

  note(msg: TransportMessage): void {
    if (this.startedAt === 0) this.startedAt = Date.now();
    this.messages++;
    const key = `${msg.topic}/${msg.partition}`;
    const offset = BigInt(msg.offset);
    const r = this.ranges.get(key);
    if (!r) this.ranges.set(key, { topic: msg.topic, partition: msg.partition, first: offset, last: offset });
    else {
      if (offset < r.first) r.first = offset;
      if (offset > r.last) r.last = offset;
    }
  }

  /** `<topic>:<partition>:<first>-<last>` for each partition, sorted: the batch's identity on the log. */
  rangeText(): string {
    return [...this.ranges.values()]
      .map((r) => `${r.topic}:${r.partition}:${r.first}-${r.last}`)
      .sort()
      .join(',');
  }
}

/**
 * What makes a batch's token unique beyond its offsets: the count and the first and last rows. Rows
 * are a pure function of the records, so a retry of the batch gives the same hash; a topic re-created
 * with the same name (offsets from 0 again) holds other records, whose times differ.
 */
function contentHash(values: Row[]): string {
  const h = createHash('sha256').update(String(values.length));
  if (values.length > 0) h.update(JSON.stringify(values[0])).update(JSON.stringify(values[values.length - 1]));
  return h.digest('hex').slice(0, 16);
}

function emptyRowCounts(): Record<SinkTable, number> {
  return Object.fromEntries(SINK_TABLES.map((t) => [t, 0])) as Record<SinkTable, number>;
}

/** Float64 for JSONEachRow: JSON has no NaN or infinity, ClickHouse reads them as these strings. */
function float(v: number): number | string {
  if (Number.isFinite(v)) return v;
  if (Number.isNaN(v)) return 'nan';
  return v > 0 ? 'inf' : '-inf';
}

function floatMap(m: Record<string, number> | undefined): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k] = float(Number(v));
  return out;
}

function countParams(tensors: readonly TensorRecord[]): number {
  let n = 0;
  for (const t of tensors) n += t.shape.reduce((a, b) => a * Number(b), 1);
  return n;
}

/**
 * ClickHouse exception types that mean "this row cannot be stored as it is" rather than "try again":
 * such rows are isolated by bisection and dead-lettered so that one bad record never blocks the rest.
 */
const DATA_ERROR_TYPES = new Set([
  'TYPE_MISMATCH', 'INCORRECT_DATA', 'ILLEGAL_TYPE_OF_ARGUMENT', 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE', 'TOO_LARGE_STRING_SIZE',
  'CANNOT_READ_ALL_DATA', 'ATTEMPT_TO_READ_AFTER_EOF', 'INCORRECT_NUMBER_OF_COLUMNS', 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN',
  'ARGUMENT_OUT_OF_BOUND', 'TOO_LARGE_ARRAY_SIZE', 'DECIMAL_OVERFLOW', 'UNKNOWN_ELEMENT_OF_ENUM', 'INCORRECT_DATA_FORMAT',
]);

function isDataError(err: FedStreamError): boolean {
  if (err.code !== 'ANALYTICS_QUERY') return false;
  const type = String(err.details.clickhouseType ?? '');
  return DATA_ERROR_TYPES.has(type) || type.startsWith('CANNOT_PARSE');
}

/**
 * A pipeline's sink. `start()` joins the consumer group and runs until `stop()`; `untilFinished()`
 * resolves once the pipeline's FINISH was consumed and every topic drained and flushed.
 */
export class Sink {
  readonly groupId: string;
  private readonly opts: SinkOptions;
  private readonly m: Manifest;
  private readonly topics: PipelineTopics;
  private readonly topicKinds = new Map<string, SinkTopicKind>();
  private readonly log: Logger;
  private readonly batchRows: number;
  private readonly batchMs: number;
  private readonly reader = new PayloadReader();
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private buffer = new PendingBatch();
  /** Batches cut and waiting to be written, in order; the one being written is not in here. */
  private readonly ready: PendingBatch[] = [];
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pauseReasons = new Set<'clickhouse' | 'backpressure' | 'stopping'>();
  private accepting = false;
  private readonly abort = new AbortController();
  private state: SinkState = 'new';
  private lastError: FedStreamError | undefined;
  private retryingSince: number | undefined;
  private readonly metricsData = {
    messages: 0, rows: emptyRowCounts(), statusUpdates: 0, unreadable: 0, deadLettered: 0, batches: 0, retries: 0,
    lastFlushAt: undefined as number | undefined,
  };
  /** Per topic-partition: next offset to read, last known high watermark, time of the last delivered record. */
  private readonly positions = new Map<string, { next: bigint; high: bigint; deliveredAt: number }>();
  private resumedAt = 0;
  private finishSeen = false;
  private readonly finishedWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private drainCheck: Promise<void> | undefined;
  private finishScan: Promise<void> | undefined;
  private lastDrainCheck = 0;

  constructor(options: SinkOptions) {
    this.opts = options;
    this.m = options.manifest;
    this.topics = pipelineTopics(this.m);
    for (const kind of SINK_TOPIC_KINDS) this.topicKinds.set(this.topics[kind], kind);
    this.groupId = options.groupId ?? `${topicPrefix(this.m)}.sink`;
    this.batchRows = Math.max(1, options.batchRows ?? 10_000);
    this.batchMs = Math.max(1, options.batchMs ?? 1_000);
    this.log = options.logger.child({ component: 'sink', pipeline: topicPrefix(this.m), groupId: this.groupId });
  }

  /** The topics the sink consumes. */
  get sourceTopics(): string[] {
    return SINK_TOPIC_KINDS.map((k) => this.topics[k]);
  }

  /** Joins the consumer group and starts consuming. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new FedStreamError('INTERNAL', `sink ${this.groupId} was already started`);
    this.state = 'running';
    this.producer = this.opts.transport.producer({ idempotent: true });
    await this.producer.connect();
    await waitForTopics(this.opts.transport, this.sourceTopics, { logger: this.log, isStopped: () => this.state !== 'running' });
    this.consumer = this.opts.transport.consumer({ groupId: this.groupId, readCommitted: true, fromBeginning: true });
    await this.consumer.connect();
    await this.consumer.subscribe(this.sourceTopics);
    this.accepting = true;
    this.resumedAt = Date.now();
    await this.consumer.run({
      autoCommit: false,
      eachBatch: (batch, ctx) => this.eachBatch(batch, ctx),
      onPosition: (p) => this.position(p.topic, p.partition, BigInt(p.nextOffset), BigInt(p.highWatermark), false),
    });
    const tick = Math.max(10, Math.min(250, Math.floor(this.batchMs / 2)));
    this.timer = setInterval(() => this.tick(), tick);
    // Not unref()ed: a running sink is a service and keeps its process alive until stop().
    this.log.info({ topics: this.sourceTopics, batchRows: this.batchRows, batchMs: this.batchMs }, 'sink started');
  }

  /** Flushes what is buffered (trying for at most `stopTimeoutMs` when ClickHouse is down), commits, and leaves the group. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'crashed' || this.state === 'new') {
      this.state = this.state === 'new' ? 'stopped' : this.state;
      return;
    }
    this.state = 'stopping';
    this.accepting = false;
    this.pause('stopping');
    const giveUp = setTimeout(() => this.abort.abort(), this.opts.stopTimeoutMs ?? 30_000);
    giveUp.unref();
    try {
      this.cut('stop');
      this.requestFlush();
      while (this.inflight) await this.inflight;
    } finally {
      clearTimeout(giveUp);
    }
    const left = this.ready.reduce((n, b) => n + b.messages, this.buffer.messages);
    if (left > 0) this.log.warn({ messages: left }, 'stopping with records not written; they will be read again');
    await this.shutdown();
    this.state = 'stopped';
    this.rejectWaiters(new FedStreamError('TRANSPORT_CLOSED', `sink ${this.groupId} stopped before the pipeline finished`));
    this.log.info(this.metrics(), 'sink stopped');
  }

  /** Halts at once, like a killed process: nothing more is written or committed. */
  async kill(reason: unknown = 'killed'): Promise<void> {
    if (this.state === 'crashed' || this.state === 'stopped') return;
    this.state = 'crashed';
    this.accepting = false;
    this.lastError = toFedStreamError(reason);
    this.abort.abort();
    await this.shutdown();
    this.rejectWaiters(this.lastError);
  }

  /**
   * Resolves when the pipeline is over for the sink: a FINISH round control was consumed, every
   * partition has been read to its end, and the last batch is written and committed.
   */
  untilFinished(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.state === 'stopped' || this.state === 'crashed') {
        reject(new FedStreamError('TRANSPORT_CLOSED', `sink ${this.groupId} is ${this.state}`));
        return;
      }
      this.finishedWaiters.push({ resolve, reject });
      this.scanForFinish();
    });
  }

  /**
   * A sink restarted after the pipeline finished will never consume FINISH again (it was committed):
   * look for it on the control topic once, so that `untilFinished()` still resolves after draining.
   */
  private scanForFinish(): void {
    if (this.finishScan || this.finishSeen) return;
    let found = false;
    this.finishScan = readToEnd(this.opts.transport, this.topics.control, (msg) => {
      if (found) return;
      try {
        if (decode('RoundControl', msg.value ?? Buffer.alloc(0)).kind === 'FINISH') found = true;
      } catch {
        // The sink itself dead-letters what it cannot read; here it only looks for FINISH.
      }
    }, { groupPrefix: `${this.groupId}.finish-scan` }).then(() => {
      if (found && !this.finishSeen) {
        this.finishSeen = true;
        this.log.info('the pipeline had finished before this sink started (FINISH on the control topic)');
      }
    }, (err: unknown) => {
      this.log.warn({ err }, 'could not scan the control topic for FINISH; waiting to consume it');
    });
  }

  metrics(): SinkMetrics {
    const d = this.metricsData;
    let lag = 0;
    for (const p of this.positions.values()) if (p.high > p.next) lag += Number(p.high - p.next);
    return {
      state: this.state,
      messages: d.messages,
      rows: { ...d.rows },
      rowsTotal: Object.values(d.rows).reduce((a, b) => a + b, 0),
      statusUpdates: d.statusUpdates,
      unreadable: d.unreadable,
      deadLettered: d.deadLettered,
      batches: d.batches,
      retries: d.retries,
      lag,
      bufferedRows: this.ready.reduce((n, b) => n + b.rowCount, this.buffer.rowCount),
      paused: this.pauseReasons.size > 0,
      finishSeen: this.finishSeen,
      ...(d.lastFlushAt === undefined ? {} : { lastFlushAt: d.lastFlushAt }),
      ...(this.lastError ? { lastError: this.lastError.message } : {}),
    };
  }

  /** A value, never an exception: running and writing, or why not. */
  async health(): Promise<SinkHealth> {
    const m = this.metrics();
    const counts = `${m.rowsTotal} rows, ${m.batches} batches, ${m.deadLettered} dead-lettered, lag ${m.lag}`;
    if (this.state === 'running') return { success: true, state: this.state, lag: m.lag, detail: `sink ${this.groupId} running: ${counts}` };
    if (this.state === 'retrying') {
      const since = this.retryingSince === undefined ? 0 : Date.now() - this.retryingSince;
      return {
        success: false, state: this.state, lag: m.lag, ...(this.lastError ? { error: this.lastError } : {}),
        detail: `sink ${this.groupId} paused, retrying a batch for ${Math.round(since / 1000)} s: ${this.lastError?.message ?? 'unknown error'}`,
      };
    }
    return {
      success: false, state: this.state, lag: m.lag, ...(this.lastError ? { error: this.lastError } : {}),
      detail: `sink ${this.groupId} ${this.state}${this.lastError ? `: ${this.lastError.message}` : ''} (${counts})`,
    };
  }

  // ------------------------------------------------------------------ consuming

  private async eachBatch(batch: Batch, ctx: EachBatchContext): Promise<void> {
    for (const msg of batch.messages) {
      // Unresolved records are delivered again (to this sink or to the next owner of the partition).
      if (!this.accepting || !ctx.isRunning()) break;
      this.accept(msg);
      ctx.resolveOffset(msg.offset);
      this.position(msg.topic, msg.partition, BigInt(msg.offset) + 1n, BigInt(batch.highWatermark), true);
      if (this.buffer.rowCount >= this.batchRows) this.cut('rows');
    }
    if (this.ready.length > 0) {
      this.requestFlush();
      // A batch is being written and the next one is full: stop fetching until the first lands.
      if (this.inflight && this.ready.length > 0) this.pause('backpressure');
    }
    await ctx.heartbeat();
  }

  private position(topic: string, partition: number, next: bigint, high: bigint, delivered: boolean): void {
    const key = `${topic}/${partition}`;
    const p = this.positions.get(key);
    if (!p) {
      this.positions.set(key, { next, high, deliveredAt: delivered ? Date.now() : 0 });
      return;
    }
    if (next > p.next) p.next = next;
    if (high > p.high) p.high = high;
    if (delivered) p.deliveredAt = Date.now();
  }

  /** Turns one Kafka record into rows (or a dead-letter record) in the current batch. */
  private accept(msg: TransportMessage): void {
    this.metricsData.messages++;
    const b = this.buffer;
    b.note(msg);
    const kind = this.topicKinds.get(msg.topic);
    if (!kind) return;
    const { payload, failures } = this.reader.accept(msg);
    for (const f of failures) this.unreadable(kind, f, msg);
    if (!payload) return;
    const source: Source = { topic: msg.topic, partition: msg.partition, offset: payload.firstOffset, key: msg.key, bytes: payload.bytes };
    try {
      switch (kind) {
        case 'telemetry': this.telemetry(decode('TelemetryEvent', payload.bytes), source); break;
        case 'control': this.control(decode('RoundControl', payload.bytes), source); break;
        case 'updates': this.update(decode('ModelUpdate', payload.bytes), payload, source); break;
        case 'audit': this.auditEvent(decode('AuditEvent', payload.bytes), source); break;
        case 'models': this.modelVersion(decode('ModelVersion', payload.bytes), source); break;
      }
    } catch (err) {
      this.unreadable(kind, { error: err as Error, bytes: payload.bytes }, msg, source);
    }
  }

  private base(): Row {
    return { tenant: this.m.tenant, pipeline: this.m.name };
  }

  private coords(s: Source): Row {
    return { kafka_topic: s.topic, kafka_partition: s.partition, kafka_offset: Number(s.offset) };
  }

  private telemetry(e: TelemetryEventRecord, s: Source): void {
    // The hot path of ingest: fields written one by one, no object spreads (docs/performance.md, "Telemetry ingest").
    this.buffer.add('telemetry_events', {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      node_id: e.nodeId,
      kind: e.kind,
      round: e.round === null ? null : Number(e.round),
      event_time: Number(e.eventTime),
      metrics: floatMap(e.metrics),
      labels: e.labels ?? {},
      message: e.message ?? '',
      kafka_topic: s.topic,
      kafka_partition: s.partition,
      kafka_offset: Number(s.offset),
    }, s);
  }

  private control(c: RoundControlRecord, s: Source): void {
    this.buffer.add('rounds', {
      ...this.base(),
      round: Number(c.round),
      base_version: Number(c.baseVersion),
      kind: c.kind,
      deadline: Number(c.deadline),
      min_updates: Number(c.minUpdates),
      target_updates: Number(c.targetUpdates),
      event_time: Number(c.createdAt),
      config: c.config ?? {},
      ...this.coords(s),
    }, s);
    if (c.kind === 'FINISH') this.buffer.finish = true;
  }

  private update(u: ModelUpdateRecord, p: Payload, s: Source): void {
    this.buffer.add('updates', {
      ...this.base(),
      update_id: u.updateId,
      node_id: u.nodeId,
      round: Number(u.round),
      base_version: Number(u.baseVersion),
      num_examples: Number(u.numExamples),
      num_params: countParams(u.tensors),
      payload_bytes: p.bytes.length,
      metrics: floatMap(u.metrics),
      training_ms: Number(u.trainingMs),
      created_at: Number(u.createdAt),
      status: 'received',
      ...this.coords(s),
    }, s);
    this.buffer.statusIds.add(u.updateId);
  }

  private auditEvent(e: AuditEventRecord, s: Source): void {
    const details = e.details ?? {};
    this.buffer.add('audit_log', {
      ...this.base(),
      event_id: e.eventId,
      event_time: Number(e.eventTime),
      actor: e.actor,
      action: e.action,
      round: e.round === null ? null : Number(e.round),
      version: e.version === null ? null : Number(e.version),
      node_id: e.nodeId ?? '',
      update_id: e.updateId ?? '',
      reason: e.reason ?? '',
      details,
      ...this.coords(s),
    }, s);
    const code = details.code ?? '';
    if (e.action === 'UPDATE_REJECTED') {
      // Keyed by the rejected record's coordinates when the aggregator names them; otherwise (a round
      // abandoned with its updates) by this audit record's own, which are just as unique and stable.
      const hasSource = details.sourceTopic !== undefined && details.sourcePartition !== undefined && details.sourceOffset !== undefined;
      this.buffer.add('rejected_updates', {
        ...this.base(),
        update_id: e.updateId ?? '',
        node_id: e.nodeId ?? '',
        round: e.round === null ? null : Number(e.round),
        reason: e.reason ?? '',
        reason_code: code || 'unknown',
        raw_size: Number(details.bytes ?? 0) || 0,
        event_time: Number(e.eventTime),
        ...(hasSource
          ? { kafka_topic: details.sourceTopic, kafka_partition: Number(details.sourcePartition), kafka_offset: Number(details.sourceOffset) }
          : this.coords(s)),
      }, s);
    }
    const decides = e.action === 'UPDATE_ACCEPTED' || (e.action === 'UPDATE_REJECTED' && !STATUS_NEUTRAL_CODES.has(code));
    if (decides && e.updateId) this.buffer.statusIds.add(e.updateId);
  }

  private modelVersion(v: ModelVersionRecord, s: Source): void {
    const version = Number(v.version);
    this.buffer.add('model_versions', {
      ...this.base(),
      version,
      parent_version: Number(v.parentVersion) < 0 ? null : Number(v.parentVersion),
      round: Number(v.round),
      strategy: v.strategy,
      weights_sha256: v.weightsSha256,
      total_examples: Number(v.totalExamples),
      num_contributors: v.contributors.length,
      rejected_count: Number(v.rejectedCount),
      metrics: floatMap(v.metrics),
      created_at: Number(v.createdAt),
      ...this.coords(s),
    }, s);
    for (const c of v.contributors) {
      this.buffer.add('contributions', {
        ...this.base(),
        version,
        update_id: c.updateId,
        node_id: c.nodeId,
        round: Number(v.round),
        num_examples: Number(c.numExamples),
        weight: float(Number(c.weight)),
        created_at: Number(v.createdAt),
        ...this.coords(s),
      }, s);
    }
  }

  /** A record that cannot be read: dead-lettered (raw bytes, reason headers), counted, logged; never thrown. */
  private unreadable(kind: SinkTopicKind, f: PayloadFailure, msg: TransportMessage, source?: Source): void {
    this.metricsData.unreadable++;
    const err = isFedStreamError(f.error) ? f.error : toFedStreamError(f.error, 'CODEC_INVALID');
    const first = (f.error as { messages?: readonly { offset?: string; partition?: number }[] }).messages?.[0];
    const partition = first?.partition ?? msg.partition;
    const offset = first?.offset ?? source?.offset ?? msg.offset;
    const where = `${msg.topic}/${partition}/${offset}`;
    const owned = kind !== 'updates' || this.opts.deadLetterUpdates === true;
    // One line per record, shaped like an audit event, so that it can be found next to the audit trail.
    this.log.warn({ audit: 'MESSAGE_DEAD_LETTERED', actor: 'sink', code: err.code, source: where, bytes: f.bytes.length, deadLettered: owned },
      `unreadable record at ${where}: ${err.message}${owned ? '' : ' (left to the aggregator, which dead-letters updates)'}`);
    if (!owned) return;
    this.buffer.deadLetters.push(...this.deadLetterRecords(f.bytes, msg.key, err.code, err.message, where));
    this.buffer.add('rejected_updates', {
      ...this.base(),
      round: null,
      reason: `unreadable record on ${msg.topic}: ${err.message}`.slice(0, 2000),
      reason_code: err.code,
      raw_size: f.bytes.length,
      event_time: msg.timestamp,
      kafka_topic: msg.topic,
      kafka_partition: partition,
      kafka_offset: Number(offset),
    }, { topic: msg.topic, partition, offset, key: msg.key, bytes: f.bytes });
  }

  private deadLetterRecords(bytes: Buffer, key: Buffer | null, code: string, reason: string, where: string): ProducerRecord[] {
    return deadLetterRecords({ topic: this.topics['dead-letter'], bytes, key, code, reason, source: where, actor: 'sink', chunkSize: this.m.topics.chunkSizeBytes });
  }


  // ------------------------------------------------------------------ flushing

  private tick(): void {
    if (this.state !== 'running' && this.state !== 'retrying') return;
    for (const f of this.reader.expire(this.opts.chunkMaxAgeMs ?? 600_000)) {
      const m = (f.error as { messages?: readonly { offset?: string; partition?: number }[] }).messages?.[0];
      const topic = this.topicOfChunkFailure(f);
      const kind = this.topicKinds.get(topic) ?? 'telemetry';
      this.unreadable(kind, f, { topic, partition: m?.partition ?? 0, offset: m?.offset ?? '0', key: null, value: null, headers: {}, timestamp: Date.now() });
    }
    if (!this.buffer.isEmpty() && Date.now() - this.buffer.startedAt >= this.batchMs) {
      this.cut('time');
      this.requestFlush();
    }
    if (this.finishSeen && this.finishedWaiters.length > 0) this.checkFinished();
  }

  private topicOfChunkFailure(f: PayloadFailure): string {
    // The reassemblers are per topic-partition but the error does not name the topic: models is the one
    // with payloads large enough to be chunked and slow enough to expire.
    const details = (f.error as FedStreamError).details ?? {};
    return typeof details.topic === 'string' ? details.topic : this.topics.models;
  }

  /**
   * Closes the current batch. Its commit offsets are fixed now: never past the first chunk of a
   * payload still incomplete at this point, even if a later batch completes it (a crash between the
   * two commits would otherwise lose that payload's first chunks).
   */
  private cut(trigger: string): void {
    const b = this.buffer;
    if (b.isEmpty()) return;
    b.trigger = trigger;
    b.commitOffsets = this.offsetsOf(b);
    this.ready.push(b);
    this.buffer = new PendingBatch();
  }

  private requestFlush(): void {
    if (!this.inflight && this.ready.length > 0) {
      this.inflight = this.flushLoop().finally(() => { this.inflight = undefined; });
    }
  }

  private async flushLoop(): Promise<void> {
    for (let batch = this.ready.shift(); batch; batch = this.ready.shift()) {
      try {
        await this.flush(batch);
      } catch (err) {
        if (this.isCrashed()) return;
        // Only an abort (stop timeout) ends the retries: the records were not committed and will be read again.
        this.ready.unshift(batch);
        this.log.warn({ err }, 'batch not written');
        return;
      }
      if (this.ready.length === 0) this.unpause('backpressure');
    }
  }

  private async flush(batch: PendingBatch): Promise<void> {
    const t0 = Date.now();
    const ranges = batch.rangeText();
    const offsets = batch.commitOffsets;
    const trigger = batch.trigger;
    const done = new Set<string>();
    const inserted = emptyRowCounts();
    const poison: Entry[] = [];
    let statusUpdates = 0;
    let poisonRecords = 0;
    let retries = 0;

    const attempt = async (): Promise<void> => {
      if (!done.has('dead-letter') && batch.deadLetters.length > 0) {
        await this.producer!.send(batch.deadLetters);
        done.add('dead-letter');
      }
      for (const table of SINK_TABLES) {
        const entries = batch.rows.get(table);
        if (!entries || entries.length === 0 || done.has(table)) continue;
        const bad = await this.insert(table, entries, `${table}|${ranges}`);
        inserted[table] = entries.length - bad.length;
        poison.push(...bad);
        done.add(table);
      }
      if (!done.has('poison') && poison.length > 0) {
        poisonRecords = await this.deadLetterPoison(poison);
        done.add('poison');
      }
      if (!done.has('status') && batch.statusIds.size > 0) {
        statusUpdates = await this.writeStatus([...batch.statusIds], `updates:status|${ranges}`);
        done.add('status');
      }
    };
    await retry(async () => {
      if (this.state === 'crashed') throw new FedStreamError('INTERNAL', 'sink crashed', { retriable: false });
      try {
        await attempt();
      } catch (raw) {
        // Whatever failed, the batch is retried: a ClickHouse that is down, a Kafka that is down, or a
        // table an operator dropped by mistake all heal from outside, and then the sink catches up.
        const err = toFedStreamError(raw);
        if (err.retriable || this.isCrashed()) throw err;
        throw new FedStreamError(err.code, err.message, { cause: err, retriable: true, details: err.details });
      }
    }, {
      retries: Number.POSITIVE_INFINITY,
      initialDelayMs: this.opts.retryInitialDelayMs ?? 200,
      maxDelayMs: this.opts.retryMaxDelayMs ?? 10_000,
      signal: this.abort.signal,
      onRetry: (err, attempt, delayMs) => {
        retries++;
        this.metricsData.retries++;
        this.lastError = err;
        if (this.state === 'running') {
          this.state = 'retrying';
          this.retryingSince = Date.now();
        }
        this.pause('clickhouse');
        const log = err.code === 'ANALYTICS_UNAVAILABLE' || err.code.startsWith('TRANSPORT_') ? this.log.warn.bind(this.log) : this.log.error.bind(this.log);
        log({ err, attempt, delayMs, rows: batch.rowCount, ranges }, `writing a batch failed (attempt ${attempt}); consumption paused, retrying in ${delayMs} ms`);
      },
    }).catch((err: unknown) => {
      throw toFedStreamError(err);
    });

    if (this.state === 'retrying') {
      this.state = 'running';
      this.log.info({ retries, downMs: Date.now() - (this.retryingSince ?? Date.now()) }, 'batch written after retries; resuming consumption');
      this.retryingSince = undefined;
      this.lastError = undefined;
    }
    inserted.updates += statusUpdates;
    const info: FlushInfo = {
      rows: inserted, messages: batch.messages, deadLettered: batch.deadLetters.length + poisonRecords, statusUpdates,
      offsets, retries, ms: 0, trigger,
    };

    if (this.opts.beforeCommit) {
      try {
        await this.opts.beforeCommit(info);
      } catch (err) {
        this.log.error({ err }, 'crash before commit (test hook): halting without committing');
        await this.kill(err);
        throw err;
      }
    }
    await this.commit(offsets);
    info.ms = Date.now() - t0;
    const d = this.metricsData;
    for (const t of SINK_TABLES) d.rows[t] += inserted[t];
    d.statusUpdates += statusUpdates;
    d.deadLettered += info.deadLettered;
    d.batches++;
    d.lastFlushAt = Date.now();
    if (batch.finish && !this.finishSeen) {
      this.finishSeen = true;
      this.log.info('the pipeline finished (FINISH consumed)');
    }
    this.unpause('clickhouse');
    this.log.debug({ ...info, rowsTotal: Object.values(inserted).reduce((a, b) => a + b, 0) }, 'batch written');
    this.opts.onFlush?.(info);
  }

  /** Offsets to commit after `batch`: past its last record, but never past the first chunk of a payload still incomplete. */
  private offsetsOf(batch: PendingBatch): TopicPartitionOffset[] {
    return [...batch.ranges.values()].map((r) => {
      const low = this.reader.pendingLowWatermark(r.topic, r.partition);
      const next = r.last + 1n;
      return { topic: r.topic, partition: r.partition, offset: String(low !== undefined && low < next ? low : next) };
    });
  }

  private async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    if (offsets.length === 0 || !this.consumer) return;
    try {
      await retry(() => this.consumer!.commitOffsets(offsets), { retries: 5, initialDelayMs: 100, maxDelayMs: 2_000, signal: this.abort.signal });
    } catch (err) {
      // The rows are in; an uncommitted batch is read again after a restart or rebalance and deduplicated.
      this.log.warn({ err, offsets }, 'committing offsets failed; the batch may be read again (deduplicated)');
    }
  }

  /**
   * Inserts one table's rows. The token makes a retry of the same batch a no-op; the rows' hash in it
   * keeps it unique even when a topic is re-created and its offsets start again at 0 (the demo does
   * that with each run on the same ClickHouse directory). Rows ClickHouse refuses as data errors are
   * isolated by bisection and returned; any other failure is thrown (and retried).
   */
  private async insert(table: SinkTable, entries: Entry[], token: string): Promise<Entry[]> {
    const values = entries.map((e) => e.row);
    const hash = contentHash(values);
    try {
      await this.opts.analytics.client.insert({
        table,
        values,
        format: 'JSONEachRow',
        clickhouse_settings: { insert_deduplication_token: `${token}#${hash}` },
      });
      return [];
    } catch (raw) {
      const err = toAnalyticsError(raw, `inserting ${values.length} rows into ${this.opts.analytics.database}.${table}`);
      if (!isDataError(err)) throw err;
      if (entries.length === 1) {
        this.log.warn({ err, table, source: `${entries[0]!.source.topic}/${entries[0]!.source.partition}/${entries[0]!.source.offset}` }, 'ClickHouse refused a row; its record goes to the dead-letter topic');
        return entries;
      }
      const mid = Math.ceil(entries.length / 2);
      return [...await this.insert(table, entries.slice(0, mid), `${token}/a`), ...await this.insert(table, entries.slice(mid), `${token}/b`)];
    }
  }

  private async deadLetterPoison(entries: Entry[]): Promise<number> {
    const seen = new Set<string>();
    const records: ProducerRecord[] = [];
    for (const e of entries) {
      const where = `${e.source.topic}/${e.source.partition}/${e.source.offset}`;
      if (seen.has(where)) continue;
      seen.add(where);
      this.metricsData.unreadable++;
      records.push(...this.deadLetterRecords(e.source.bytes, e.source.key, 'ANALYTICS_QUERY', 'ClickHouse refused the row made from this record', where));
    }
    if (records.length > 0) await this.producer!.send(records);
    return records.length;
  }

  /**
   * Writes the status row of updates whose decision is known: the update's metadata read back from
   * `updates`, the decision from `audit_log` (accepted if any UPDATE_ACCEPTED, else rejected). Both
   * tables were written before this runs, so the update and its decision meet here whichever arrives
   * first, and whichever sink instance consumed them. Returns the number of rows written.
   */
  private async writeStatus(ids: string[], token: string): Promise<number> {
    const client = this.opts.analytics.client;
    const params = { tenant: this.m.tenant, pipeline: this.m.name, ids };
    let rows: Row[];
    try {
      const rs = await client.query({
        query: `
          SELECT u.update_id AS update_id, u.node_id AS node_id, u.round AS round, u.base_version AS base_version,
                 u.num_examples AS num_examples, u.num_params AS num_params, u.payload_bytes AS payload_bytes,
                 u.metrics AS metrics, u.training_ms AS training_ms, toUnixTimestamp64Milli(u.created_at) AS created_at,
                 u.kafka_topic AS kafka_topic, u.kafka_partition AS kafka_partition, u.kafka_offset AS kafka_offset, d.status AS status
          FROM (
            SELECT * FROM updates FINAL
            WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND update_id IN {ids:Array(String)}
          ) AS u
          INNER JOIN (
            SELECT update_id, if(countIf(action = 'UPDATE_ACCEPTED') > 0, 'accepted', 'rejected') AS status
            FROM audit_log
            WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND update_id IN {ids:Array(String)}
              AND (action = 'UPDATE_ACCEPTED' OR (action = 'UPDATE_REJECTED' AND details['code'] NOT IN ('${[...STATUS_NEUTRAL_CODES].join("', '")}')))
            GROUP BY update_id
          ) AS d ON u.update_id = d.update_id
          WHERE u.status != d.status`,
        query_params: params,
        format: 'JSONEachRow',
      });
      rows = await rs.json<Row>();
    } catch (err) {
      throw toAnalyticsError(err, 'reading the decisions of updates');
    }
    if (rows.length === 0) return 0;
    const values = rows.map((r) => ({
      ...this.base(),
      update_id: r.update_id,
      node_id: r.node_id,
      round: Number(r.round),
      base_version: Number(r.base_version),
      num_examples: Number(r.num_examples),
      num_params: Number(r.num_params),
      payload_bytes: Number(r.payload_bytes),
      metrics: Object.fromEntries(Object.entries((r.metrics ?? {}) as Record<string, number | null>).map(([k, v]) => [k, v === null ? 'nan' : v])),
      training_ms: Number(r.training_ms),
      created_at: Number(r.created_at),
      status: r.status,
      kafka_topic: r.kafka_topic,
      kafka_partition: Number(r.kafka_partition),
      kafka_offset: Number(r.kafka_offset),
    }));
    const hash = contentHash(values);
    try {
      await client.insert({ table: 'updates', values, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: `${token}#${hash}` } });
    } catch (err) {
      throw toAnalyticsError(err, `writing the status of ${values.length} updates`);
    }
    return values.length;
  }

  // ------------------------------------------------------------------ pause, finish, shutdown

  private pause(reason: 'clickhouse' | 'backpressure' | 'stopping'): void {
    const was = this.pauseReasons.size > 0;
    this.pauseReasons.add(reason);
    if (was || !this.consumer) return;
    try {
      this.consumer.pause(this.sourceTopics);
    } catch (err) {
      this.log.debug({ err }, 'pause failed');
    }
  }

  private unpause(reason: 'clickhouse' | 'backpressure'): void {
    if (!this.pauseReasons.delete(reason) || this.pauseReasons.size > 0 || !this.consumer) return;
    if (this.state !== 'running') return;
    try {
      this.consumer.resume(this.sourceTopics);
      this.resumedAt = Date.now();
    } catch (err) {
      this.log.debug({ err }, 'resume failed');
    }
  }

  /**
   * Finished = FINISH consumed, nothing buffered or in flight, and every partition read to the end
   * it has now. A transactional topic ends with a commit marker no reader receives, so a partition
   * also counts as read when it delivered nothing for a while although consumption was not paused.
   */
  private checkFinished(): void {
    if (this.drainCheck || Date.now() - this.lastDrainCheck < 200) return;
    if (this.inflight || this.ready.length > 0 || !this.buffer.isEmpty() || this.pauseReasons.size > 0) return;
    this.lastDrainCheck = Date.now();
    this.drainCheck = this.drained().then((done) => {
      if (!done || this.inflight || this.ready.length > 0 || !this.buffer.isEmpty()) return;
      this.log.info(this.metrics(), 'pipeline finished and every topic drained');
      for (const w of this.finishedWaiters.splice(0)) w.resolve();
    }).catch((err: unknown) => {
      this.log.debug({ err }, 'drain check failed; trying again');
    }).finally(() => { this.drainCheck = undefined; });
  }

  private async drained(): Promise<boolean> {
    const quietMs = Math.max(1_000, 2 * this.batchMs);
    const admin = this.opts.transport.admin();
    try {
      for (const topic of this.sourceTopics) {
        for (const o of await admin.fetchTopicOffsets(topic)) {
          const high = BigInt(o.high);
          if (high <= BigInt(o.low)) continue;
          const p = this.positions.get(`${topic}/${o.partition}`);
          if (p && p.next >= high) continue;
          const lastActivity = Math.max(p?.deliveredAt ?? 0, this.resumedAt);
          if (Date.now() - lastActivity < quietMs) return false;
        }
      }
      return true;
    } finally {
      await admin.close().catch(() => undefined);
    }
  }

  /** A method rather than a field test: the state changes across awaits, which narrowing does not see. */
  private isCrashed(): boolean {
    return this.state === 'crashed';
  }

  private rejectWaiters(err: unknown): void {
    for (const w of this.finishedWaiters.splice(0)) w.reject(err);
  }

  private async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.consumer?.disconnect().catch((err: unknown) => this.log.warn({ err }, 'consumer disconnect failed'));
    await this.producer?.disconnect().catch((err: unknown) => this.log.warn({ err }, 'producer disconnect failed'));
  }
}

/** Creates and starts a sink (see {@link Sink}). */
export async function runSink(options: SinkOptions): Promise<Sink> {
  const sink = new Sink(options);
  await sink.start();
  return sink;
}
