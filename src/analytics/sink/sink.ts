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
 *
 * This file is the service: its state machine (lifecycle, pause reasons, retry state, the flush loop), kept
 * whole (a little over 400 lines) because its transitions read best side by side. What has no state of its
 * own is beside it: rows.ts (record → row), intake.ts (record → batch), batch.ts and write.ts (batches and
 * their inserts), status.ts (status of updates), finish.ts (lag and finish detection), health.ts.
 */
import { FedStreamError, toFedStreamError } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import { retry } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import { topicPrefix } from '../../config/index.ts';
import { participantRegistry, pipelineTopics, waitForTopics, type PipelineTopics } from '../../protocol/index.ts';
import type { Service } from '../../common/index.ts';
import type { Batch, Consumer, EachBatchContext, Producer, TopicPartitionOffset } from '../../transport/index.ts';
import { PendingBatch, type Entry } from './batch.ts';
import { FinishWatch, Positions } from './finish.ts';
import { sinkHealth } from './health.ts';
import { Intake, SINK_TOPIC_KINDS } from './intake.ts';
import { SINK_TABLES, type RowScope } from './rows.ts';
import type { FlushInfo, SinkHealth, SinkMetrics, SinkOptions, SinkState } from './types.ts';
import { BatchWrite } from './write.ts';

// Also here for callers that import the sink by its file (src/cli); the folder's face is ../index.ts.
export type { FlushInfo, SinkHealth, SinkMetrics, SinkOptions, SinkState } from './types.ts';
export { SINK_TABLES, type SinkTable } from './rows.ts';
export { SINK_TOPIC_KINDS } from './intake.ts';

type PauseReason = 'clickhouse' | 'backpressure' | 'stopping';

/**
 * A pipeline's sink, a {@link Service}. `start()` joins the consumer group and runs until `stop()`;
 * `untilFinished()` resolves once the pipeline's FINISH was consumed and every topic drained and flushed;
 * `done` resolves with the final metrics once the sink has stopped, and rejects if it crashed.
 */
export class Sink implements Service<SinkMetrics> {
  readonly name = 'sink';
  readonly groupId: string;
  readonly done: Promise<SinkMetrics>;
  private settle!: { resolve: (m: SinkMetrics) => void; reject: (err: unknown) => void };
  private readonly opts: SinkOptions;
  private readonly m: Manifest;
  private readonly scope: RowScope;
  private readonly topics: PipelineTopics;
  private readonly log: Logger;
  private readonly batchRows: number;
  private readonly batchMs: number;
  private readonly intake: Intake;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private buffer = new PendingBatch();
  /** Batches cut and waiting to be written, in order; the one being written is not in here. */
  private readonly ready: PendingBatch[] = [];
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pauseReasons = new Set<PauseReason>();
  private accepting = false;
  private readonly abort = new AbortController();
  private state: SinkState = 'new';
  private lastError: FedStreamError | undefined;
  private retryingSince: number | undefined;
  private readonly counts = {
    messages: 0, rows: Object.fromEntries(SINK_TABLES.map((t) => [t, 0])) as SinkMetrics['rows'], statusUpdates: 0, unreadable: 0, refused: 0, deadLettered: 0, batches: 0, retries: 0,
    lastFlushAt: undefined as number | undefined,
  };
  private readonly positions = new Positions();
  private readonly finish: FinishWatch;

  constructor(options: SinkOptions) {
    this.opts = options;
    this.m = options.manifest;
    this.scope = { tenant: this.m.tenant, pipeline: this.m.name };
    this.topics = pipelineTopics(this.m);
    this.groupId = options.groupId ?? `${topicPrefix(this.m)}.sink`;
    this.batchRows = Math.max(1, options.batchRows ?? 10_000);
    this.batchMs = Math.max(1, options.batchMs ?? 1_000);
    this.log = options.logger.child({ component: 'sink', pipeline: topicPrefix(this.m), groupId: this.groupId });
    const registry = options.registry ?? participantRegistry(this.m);
    this.intake = new Intake({
      scope: this.scope, topics: this.topics, limits: this.m.limits, chunkSizeBytes: this.m.topics.chunkSizeBytes, deadLetterUpdates: options.deadLetterUpdates === true,
      log: this.log, onUnreadable: () => { this.counts.unreadable++; },
      registry, onRefused: () => { this.counts.refused++; },
    });
    this.finish = new FinishWatch({
      transport: options.transport, controlTopic: this.topics.control, sourceTopics: this.sourceTopics, groupId: this.groupId,
      quietMs: Math.max(1_000, 2 * this.batchMs), positions: this.positions, log: this.log, figures: () => this.metrics(),
      registry, limits: this.m.limits,
      idle: (paused) => !this.inflight && this.ready.length === 0 && this.buffer.isEmpty() && (!paused || this.pauseReasons.size === 0),
    });
    this.done = new Promise<SinkMetrics>((resolve, reject) => { this.settle = { resolve, reject }; });
    // A crash is reported through health() and untilFinished() too: nobody has to await `done`.
    this.done.catch(() => undefined);
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
    this.positions.resumedAt = Date.now();
    await this.consumer.run({
      autoCommit: false,
      eachBatch: (batch, ctx) => this.eachBatch(batch, ctx),
      onPosition: (p) => this.positions.update(p.topic, p.partition, BigInt(p.nextOffset), BigInt(p.highWatermark), false),
    });
    const tick = Math.max(10, Math.min(250, Math.floor(this.batchMs / 2)));
    this.timer = setInterval(() => this.tick(), tick);
    // Not unref()ed: a running sink is a service and keeps its process alive until stop().
    this.log.info({ topics: this.sourceTopics, batchRows: this.batchRows, batchMs: this.batchMs }, 'sink started');
  }

  /** Flushes what is buffered (trying for at most `stopTimeoutMs` when ClickHouse is down), commits, and leaves the group. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'crashed' || this.state === 'new') {
      if (this.state === 'new') {
        this.state = 'stopped';
        this.settle.resolve(this.metrics());
      }
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
    this.finish.rejectWaiters(new FedStreamError('TRANSPORT_CLOSED', `sink ${this.groupId} stopped before the pipeline finished`));
    this.log.info(this.metrics(), 'sink stopped');
    this.settle.resolve(this.metrics());
  }

  /** Halts at once, like a killed process: nothing more is written or committed. */
  async kill(reason: unknown = 'killed'): Promise<void> {
    if (this.state === 'crashed' || this.state === 'stopped') return;
    this.state = 'crashed';
    this.accepting = false;
    this.lastError = toFedStreamError(reason);
    this.abort.abort();
    await this.shutdown();
    this.finish.rejectWaiters(this.lastError);
    this.settle.reject(this.lastError);
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
      this.finish.wait().then(resolve, reject);
    });
  }

  metrics(): SinkMetrics {
    const d = this.counts;
    return {
      state: this.state,
      messages: d.messages,
      rows: { ...d.rows },
      rowsTotal: Object.values(d.rows).reduce((a, b) => a + b, 0),
      statusUpdates: d.statusUpdates,
      unreadable: d.unreadable,
      refused: d.refused,
      deadLettered: d.deadLettered,
      batches: d.batches,
      retries: d.retries,
      lag: this.positions.lag(),
      bufferedRows: this.ready.reduce((n, b) => n + b.rowCount, this.buffer.rowCount),
      paused: this.pauseReasons.size > 0,
      finishSeen: this.finish.seen,
      ...(d.lastFlushAt === undefined ? {} : { lastFlushAt: d.lastFlushAt }),
      ...(this.lastError ? { lastError: this.lastError.message } : {}),
    };
  }

  /** A value, never an exception: running and writing, or why not. */
  health(): SinkHealth {
    return sinkHealth({ groupId: this.groupId, metrics: this.metrics(), lastError: this.lastError, retryingSince: this.retryingSince });
  }

  // ------------------------------------------------------------------ consuming

  private async eachBatch(batch: Batch, ctx: EachBatchContext): Promise<void> {
    for (const msg of batch.messages) {
      // Unresolved records are delivered again (to this sink or to the next owner of the partition).
      if (!this.accepting || !ctx.isRunning()) break;
      this.counts.messages++;
      this.intake.accept(msg, this.buffer);
      ctx.resolveOffset(msg.offset);
      this.positions.update(msg.topic, msg.partition, BigInt(msg.offset) + 1n, BigInt(batch.highWatermark), true);
      if (this.buffer.rowCount >= this.batchRows) this.cut('rows');
    }
    if (this.ready.length > 0) {
      this.requestFlush();
      // A batch is being written and the next one is full: stop fetching until the first lands.
      if (this.inflight && this.ready.length > 0) this.pause('backpressure');
    }
    await ctx.heartbeat();
  }

  // ------------------------------------------------------------------ flushing

  private tick(): void {
    if (this.state !== 'running' && this.state !== 'retrying') return;
    this.intake.expire(this.buffer, this.opts.chunkMaxAgeMs);
    if (!this.buffer.isEmpty() && Date.now() - this.buffer.startedAt >= this.batchMs) {
      this.cut('time');
      this.requestFlush();
    }
    this.finish.check();
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
    const offsets = batch.commitOffsets;
    const write = new BatchWrite(batch, {
      analytics: this.opts.analytics, scope: this.scope, producer: this.producer!, log: this.log,
      deadLetterPoison: (entries) => this.deadLetterPoison(entries),
    });
    let retries = 0;
    await retry(async () => {
      if (this.state === 'crashed') throw new FedStreamError('INTERNAL', 'sink crashed', { retriable: false });
      try {
        await write.attempt();
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
        this.counts.retries++;
        this.lastError = err;
        if (this.state === 'running') {
          this.state = 'retrying';
          this.retryingSince = Date.now();
        }
        this.pause('clickhouse');
        const log = err.code === 'ANALYTICS_UNAVAILABLE' || err.code.startsWith('TRANSPORT_') ? this.log.warn.bind(this.log) : this.log.error.bind(this.log);
        log({ err, attempt, delayMs, rows: batch.rowCount, ranges: write.ranges }, `writing a batch failed (attempt ${attempt}); consumption paused, retrying in ${delayMs} ms`);
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
    const inserted = write.inserted;
    inserted.updates += write.statusUpdates;
    const info: FlushInfo = {
      rows: inserted, messages: batch.messages, deadLettered: batch.deadLetters.length + write.poisonRecords, statusUpdates: write.statusUpdates,
      offsets, retries, ms: 0, trigger: batch.trigger,
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
    const d = this.counts;
    for (const t of SINK_TABLES) d.rows[t] += inserted[t];
    d.statusUpdates += write.statusUpdates;
    d.deadLettered += info.deadLettered;
    d.batches++;
    d.lastFlushAt = Date.now();
    if (batch.finish) this.finish.consumed();
    this.unpause('clickhouse');
    this.log.debug({ ...info, rowsTotal: Object.values(inserted).reduce((a, b) => a + b, 0) }, 'batch written');
    this.opts.onFlush?.(info);
    this.opts.instrumentation?.emit({ type: 'sink.batch', seconds: info.ms / 1000, rows: { ...inserted }, messages: info.messages, deadLettered: info.deadLettered, retries, trigger: info.trigger });
  }

  /** Offsets to commit after `batch`: past its last record, but never past the first chunk of a payload still incomplete. */
  private offsetsOf(batch: PendingBatch): TopicPartitionOffset[] {
    return [...batch.ranges.values()].map((r) => {
      const low = this.intake.pendingLowWatermark(r.topic, r.partition);
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

  private async deadLetterPoison(entries: Entry[]): Promise<number> {
    const records = this.intake.poisonRecords(entries);
    if (records.length > 0) await this.producer!.send(records);
    return records.length;
  }

  // ------------------------------------------------------------------ pause, finish, shutdown

  private pause(reason: PauseReason): void {
    const was = this.pauseReasons.size > 0;
    this.pauseReasons.add(reason);
    if (was || !this.consumer) return;
    try {
      this.consumer.pause(this.sourceTopics);
    } catch (err) {
      this.log.debug({ err }, 'pause failed');
    }
  }

  private unpause(reason: Exclude<PauseReason, 'stopping'>): void {
    if (!this.pauseReasons.delete(reason) || this.pauseReasons.size > 0 || !this.consumer) return;
    if (this.state !== 'running') return;
    try {
      this.consumer.resume(this.sourceTopics);
      this.positions.resumedAt = Date.now();
    } catch (err) {
      this.log.debug({ err }, 'resume failed');
    }
  }

  /** A method rather than a field test: the state changes across awaits, which narrowing does not see. */
  private isCrashed(): boolean {
    return this.state === 'crashed';
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
