import type { RoundControlRecord } from '../codec/index.ts';
import { retry, type Service, type ServiceHealth } from '../common/index.ts';
import { topicPrefix } from '../config/index.ts';
import { ensureTopics } from '../protocol/index.ts';
import type { TransportMessage } from '../transport/index.ts';
import { recoverRun } from './recovery.ts';
import { decide, type RoundDecision } from './rounds.ts';
import type { AggregatorOptions, AggregatorSummary } from './options.ts';
import { healthOf, openRound, policyState, type Phase } from './open-round.ts';
import { awaitNoLiveHolder, fencedError, isFenced } from './ownership.ts';
import { RoundPublisher } from './publication.ts';
import { UpdateIntake } from './intake.ts';
import { aggregatorRun, type AggregatorRun } from './run.ts';

export { roundLine } from './publication.ts';

/**
 * The aggregator service: the I/O shell around the round policy (rounds.ts). It consumes the updates topic,
 * decodes and validates each update (validate.ts), asks the policy what to do, folds accepted updates into the
 * strategy's aggregation, and publishes each decision in one Kafka transaction (records.ts builds the records).
 * This file is its lifecycle (start, stop, health, the lock, the deadline timer, failure); its parts are intake.ts
 * (the updates), publication.ts (the decisions' transactions) and recovery.ts (the restart), sharing run.ts's state.
 * Exactly-once comes from Kafka: the consumed offsets of the updates topic are committed in the same transaction as
 * the version they fed, so after a crash the aggregator re-reads exactly the updates that no published version
 * counts yet (recovery.ts), and rebuilds the same running sum.
 */
export class Aggregator implements Service<AggregatorSummary> {
  readonly name = 'aggregator';
  private readonly s: AggregatorRun;
  private readonly publisher: RoundPublisher;
  private readonly intake: UpdateIntake;
  private phase: Phase = 'idle';
  private failure: unknown;
  private lock: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private resolveDone!: (s: AggregatorSummary) => void;
  private rejectDone!: (e: unknown) => void;
  readonly done: Promise<AggregatorSummary>;

  constructor(private readonly opts: AggregatorOptions) {
    this.s = aggregatorRun(opts);
    this.publisher = new RoundPublisher(this.s, {
      openRound: (c, extensions) => this.openRound(c, extensions),
      afterDecision: (start) => this.afterDecision(start),
      armDeadline: () => this.armDeadline(),
      expireIncomplete: (r) => this.intake.expireIncomplete(r),
    });
    this.intake = new UpdateIntake(this.s, this.publisher);
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    this.done.catch(() => undefined);
  }

  /** Recovers state from the log, then follows the updates topic until the last round is decided. */
  async start(): Promise<void> {
    const s = this.s;
    this.phase = 'starting';
    // Topic creation is idempotent; a broker that just started may not host the new partitions at once.
    await retry(async () => {
      const admin = s.t.admin();
      try {
        const created = await ensureTopics(admin, s.m);
        if (created.length) s.log.info({ topics: created }, 'created topics');
      } finally {
        await admin.close();
      }
    }, { retries: 10, initialDelayMs: 500, onRetry: (err, attempt) => s.log.warn({ err, attempt }, 'creating topics failed; retrying') });
    // Before fencing anybody: is another aggregator running this pipeline? (ownership.ts)
    await this.awaitNoLiveHolder();
    // The heartbeats of the last aliveWindowMs, read before the first START sizes its target on them.
    await s.liveness?.start();
    s.slot.producer = s.t.producer({ transactionalId: s.transactionalId, idempotent: true });
    // Initialising the transactional producer aborts whatever a previous incarnation left open.
    await s.slot.producer.connect();
    await recoverRun(s, this.publisher, (c, extensions) => this.openRound(c, extensions));
    if (s.finished) {
      s.log.info({ version: s.version }, 'pipeline already finished');
      this.phase = 'finished';
      this.settle();
      return;
    }
    // Until the updates that no version counts yet are read again, a deadline must not fire: the
    // round would close on fewer updates than the run that crashed had seen (rounds.ts, RECOVERING).
    await s.updates.follow({
      groupId: s.groupId,
      stopped: () => s.finished,
      onMessage: (msg: TransportMessage) => this.exclusive(() => this.intake.onMessage(msg)),
      // Caught up with a partition: nothing more to fold right now, so fold what the strategy buffered while
      // idle (under a backlog it keeps batching). The round's close then has only the last update to fold.
      onCaughtUp: () => this.exclusive(async () => s.round?.aggregation.flush?.()),
      // A member joined or left the group: if another aggregator took over, it fenced this one before joining.
      onRebalance: () => void this.exclusive(() => this.checkNotFenced()).catch(() => undefined),
    });
    // Once now as well: a takeover that fenced this one while it was starting had no rebalance left to announce.
    void this.exclusive(() => this.checkNotFenced()).catch(() => undefined);
    if (!s.finished) this.phase = 'running';
    this.armDeadline();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.phase !== 'finished' && this.phase !== 'failed') this.phase = 'stopped';
    await this.s.updates.close();
    await this.s.liveness?.stop();
    await this.s.slot.producer?.disconnect().catch(() => undefined);
  }

  /** The phase (`starting`, `recovering` while re-reading the log after a restart, `running`, `finished`, `stopped`, `failed`) and the open round. */
  health(): ServiceHealth {
    const h = healthOf(this.phase, this.s.version, this.s.round, this.s.updates.catchingUp, this.failure);
    // The updates reader's own counters: what incomplete chunked payloads hold now and at most (limits.maxPending*).
    const s = this.s.updates.reader.stats(this.s.topics.updates);
    return { ...h, figures: { ...h.figures, pendingPayloads: s.pendingPayloads, bufferedChunkBytes: s.bufferedBytes, peakBufferedChunkBytes: s.peakBufferedBytes, droppedPayloads: s.evicted + s.expired, refusedChunks: s.refused } };
  }

  private summary(): AggregatorSummary {
    return { finalVersion: this.s.version, rounds: this.s.decidedRound, roundsRun: this.s.roundsRun, versions: this.s.version + 1 };
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(() => undefined, () => undefined);
    return run.catch((err) => {
      this.fail(err);
      throw err;
    });
  }

  private fail(err: unknown): void {
    const s = this.s;
    if (this.phase === 'failed') return;
    const fenced = fencedError(err, { pipeline: topicPrefix(s.m), transactionalId: s.transactionalId, groupId: s.groupId });
    s.finished = true;
    this.phase = 'failed';
    this.failure = fenced ?? err;
    if (this.timer) clearTimeout(this.timer);
    if (fenced) {
      s.log.error({ err: fenced, transactionalId: s.transactionalId, groupId: s.groupId }, fenced.message);
      // Give the updates partitions back now, not when the process ends: the aggregator that took over waits for them.
      void s.updates.close();
      void s.liveness?.stop();
      void s.slot.producer?.disconnect().catch(() => undefined);
    } else {
      s.log.error({ err }, 'aggregator stopped on an error it cannot recover from');
    }
    this.rejectDone(fenced ?? err);
  }

  // ---------------------------------------------------------------- one aggregator per pipeline (ownership.ts)

  private async awaitNoLiveHolder(): Promise<void> {
    const admin = this.s.t.admin();
    try {
      await awaitNoLiveHolder({ admin, groupId: this.s.groupId, pipeline: topicPrefix(this.s.m), takeOver: this.opts.takeOver ?? false, log: this.s.log });
    } finally {
      await admin.close();
    }
  }

  /** Asks the transaction coordinator whether this aggregator was fenced; throws TRANSPORT_FENCED if so. */
  private async checkNotFenced(): Promise<void> {
    if (this.s.finished) return;
    try {
      await this.s.slot.producer.checkFenced(this.s.groupId);
    } catch (err) {
      if (isFenced(err)) throw err;
      this.s.log.warn({ err }, 'could not ask whether another aggregator fenced this one; the next transaction will tell');
    }
  }

  // ---------------------------------------------------------------- rounds

  private openRound(c: RoundControlRecord, extensions: number): void {
    const s = this.s;
    const aggregation = this.opts.strategy.begin(s.weights, { round: Number(c.round), baseVersion: Number(c.baseVersion), knownNodes: this.opts.knownNodes ?? [], log: s.reread });
    s.round = openRound(c, extensions, aggregation, Date.now());
    s.events.emit({ type: 'round.started', round: s.round.round, baseVersion: s.round.baseVersion, deadline: s.round.deadline, targetUpdates: s.round.targetUpdates, minUpdates: s.round.minUpdates });
  }

  private armDeadline(): void {
    const r = this.s.round;
    if (!r) {
      if (this.timer) clearTimeout(this.timer);
      return;
    }
    this.armAt(r.round, r.deadline);
  }

  private armAt(round: number, at: number): void {
    if (this.timer) clearTimeout(this.timer);
    if (!this.s.round || this.s.finished) return;
    this.timer = setTimeout(() => {
      void this.exclusive(() => this.onDeadline(round)).catch(() => undefined);
    }, Math.max(0, at - Date.now()));
  }

  private async onDeadline(round: number): Promise<void> {
    const r = this.s.round;
    if (!r || r.round !== round || this.s.finished) return;
    const d: RoundDecision = decide(this.s.policy, policyState(r, this.s.updates.catchingUp), { type: 'deadline', now: Date.now() });
    switch (d.type) {
      case 'wait':
        // Not yet (a timer that fired early), or still re-reading the log after a restart: ask again then.
        return this.armAt(round, d.until ?? r.deadline);
      case 'close':
        return this.publisher.closeRound(d.why);
      case 'extend':
        return this.publisher.extendRound(r, d);
      case 'abandon':
        return this.publisher.abandonRound(r, d.why);
      default:
        return undefined;
    }
  }

  /** Resolves `done` with the summary, or rejects it with the strategy's refusal (PRIVACY_BUDGET_EXHAUSTED). */
  private settle(): void {
    const refusal = this.s.refusal;
    if (!refusal) {
      this.resolveDone(this.summary());
      return;
    }
    this.failure = refusal;
    this.s.log.error({ err: refusal, code: refusal.code, version: this.s.version }, `pipeline stopped: ${refusal.message}`);
    this.rejectDone(refusal);
  }

  private afterDecision(start: RoundControlRecord | undefined): void {
    if (start) {
      this.openRound(start, 0);
      this.armDeadline();
    } else {
      this.s.round = undefined;
      this.s.finished = true;
      this.phase = 'finished';
      if (this.timer) clearTimeout(this.timer);
      this.s.log.info({ version: this.s.version }, 'last round decided; pipeline finished');
      this.settle();
    }
  }
}
