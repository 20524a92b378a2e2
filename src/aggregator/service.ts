import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeRoundConfig } from '../protocol/index.ts';
import { ChunkedPayloadError, unpackTensors, weightsSha256, type AuditEventRecord, type ModelUpdateRecord, type RoundControlRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import { humanDuration, noInstrumentation, retry, secondsSince, type Instrumentation } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import { topicPrefix } from '../config/index.ts';
import { HeartbeatFollower, ensureTopics, pipelineTopics, type PipelineTopics } from '../protocol/index.ts';
import { checkOwnKey, decodeView, participantRegistry, verifyRecord, type ParticipantRegistry, type Payload, type PayloadFailure } from '../protocol/index.ts';
import type { FedStreamError, Service, ServiceHealth } from '../common/index.ts';
import type { Producer, ProducerRecord, Transport, TransportMessage } from '../transport/index.ts';
import { auditEvent, auditOut, controlOut, controlRecord, refusedOut, rejectionOut, versionOut, versionRecord, type AuditFields, type RecordScope } from './records.ts';
import { readPipelineLog, recoveryPlan } from './recovery.ts';
import { decide, nextStep, roundPolicy, roundTargets, type RoundDecision, type RoundPolicy } from './rounds.ts';
import type { AggregateResult, Rejection } from './strategy.ts';
import { faultAt, transact, type FaultPoint, type ProducerSlot } from './transaction.ts';
import type { AggregatorOptions, AggregatorSummary } from './options.ts';
import { boundsDetails, healthOf, openRound, policyState, rejectedCount, validationState, type OpenRound, type Phase } from './open-round.ts';
import { UpdatesLog } from './updates-log.ts';
import { updatesLogReader, type UpdateLogReader } from './log-reread.ts';
import { awaitNoLiveHolder, fencedError, isFenced } from './ownership.ts';
import { saneMetrics, validateUpdate, validationLimits } from './validate.ts';

/**
 * The aggregator service: the I/O shell around the round policy (rounds.ts). It consumes the updates topic,
 * decodes and validates each update (validate.ts), asks the policy what to do, folds accepted updates into the
 * strategy's aggregation, and publishes each decision in one Kafka transaction (records.ts builds the records).
 * Exactly-once comes from Kafka: the consumed offsets of the updates topic are committed in the same transaction as
 * the version they fed, so after a crash the aggregator re-reads exactly the updates that no published version
 * counts yet (recovery.ts), and rebuilds the same running sum.
 */
export class Aggregator implements Service<AggregatorSummary> {
  readonly name = 'aggregator';
  private readonly m: Manifest;
  private readonly t: Transport;
  private readonly log: Logger;
  private readonly topics: PipelineTopics;
  private readonly scope: RecordScope;
  private readonly registry: ParticipantRegistry;
  private readonly policy: RoundPolicy;
  private readonly groupId: string;
  private readonly transactionalId: string;
  private readonly updates: UpdatesLog;
  /** The nodes' heartbeats, followed when `rounds.targetAliveNodes` is on. */
  private readonly liveness: HeartbeatFollower | undefined;
  /** Reads accepted updates again (robust strategies beyond their memory budget). */
  private readonly reread: UpdateLogReader;
  private readonly slot: ProducerSlot = { producer: undefined as unknown as Producer };
  private readonly events: Instrumentation;
  private version = -1;
  private weights: Weights = [];
  private round: OpenRound | undefined;
  private finished = false;
  /** The pipeline's last decided round, and how many rounds this process decided (the summary's figures). */
  private decidedRound = 0;
  private roundsRun = 0;
  private phase: Phase = 'idle';
  private failure: unknown;
  /** Set when the strategy refused the next round (privacy budget): the pipeline finishes and `done` rejects with it. */
  private refusal: FedStreamError | undefined;
  private readonly counted = new Map<string, number>();
  private lock: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private resolveDone!: (s: AggregatorSummary) => void;
  private rejectDone!: (e: unknown) => void;
  readonly done: Promise<AggregatorSummary>;

  constructor(private readonly opts: AggregatorOptions) {
    this.m = opts.manifest;
    this.t = opts.transport;
    this.topics = pipelineTopics(this.m);
    // Who may speak for the pipeline, and this aggregator's own key: a missing or unlisted key fails here, at start.
    this.registry = opts.registry ?? participantRegistry(this.m);
    checkOwnKey(this.registry, opts.signer, this.registry.aggregatorId, 'aggregator');
    this.scope = { manifest: this.m, topics: this.topics, ...(opts.signer ? { signer: opts.signer } : {}) };
    this.updates = new UpdatesLog(this.t, this.topics.updates, this.m.limits);
    this.log = opts.logger.child({ component: 'aggregator', pipeline: topicPrefix(this.m) });
    this.reread = updatesLogReader(this.t, this.topics.updates, this.m.limits, this.log);
    this.policy = roundPolicy(this.m);
    this.liveness = this.m.rounds.targetAliveNodes ? new HeartbeatFollower(this.t, this.m, this.topics.telemetry, this.m.rounds.aliveWindowMs, opts.logger.child({ component: 'aggregator-liveness' })) : undefined;
    this.groupId = `${topicPrefix(this.m)}.aggregator`;
    this.transactionalId = `${topicPrefix(this.m)}.aggregator`;
    this.events = opts.instrumentation ?? noInstrumentation;
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    this.done.catch(() => undefined);
  }

  /** Recovers state from the log, then follows the updates topic until the last round is decided. */
  async start(): Promise<void> {
    this.phase = 'starting';
    // Topic creation is idempotent; a broker that just started may not host the new partitions at once.
    await retry(async () => {
      const admin = this.t.admin();
      try {
        const created = await ensureTopics(admin, this.m);
        if (created.length) this.log.info({ topics: created }, 'created topics');
      } finally {
        await admin.close();
      }
    }, { retries: 10, initialDelayMs: 500, onRetry: (err, attempt) => this.log.warn({ err, attempt }, 'creating topics failed; retrying') });
    // Before fencing anybody: is another aggregator running this pipeline? (ownership.ts)
    await this.awaitNoLiveHolder();
    // The heartbeats of the last aliveWindowMs, read before the first START sizes its target on them.
    await this.liveness?.start();
    this.slot.producer = this.t.producer({ transactionalId: this.transactionalId, idempotent: true });
    // Initialising the transactional producer aborts whatever a previous incarnation left open.
    await this.slot.producer.connect();
    await this.recover();
    if (this.finished) {
      this.log.info({ version: this.version }, 'pipeline already finished');
      this.phase = 'finished';
      this.settle();
      return;
    }
    // Until the updates that no version counts yet are read again, a deadline must not fire: the
    // round would close on fewer updates than the run that crashed had seen (rounds.ts, RECOVERING).
    await this.updates.follow({
      groupId: this.groupId,
      stopped: () => this.finished,
      onMessage: (msg) => this.exclusive(() => this.onMessage(msg)),
      // Caught up with a partition: nothing more to fold right now, so fold what the strategy buffered while
      // idle (under a backlog it keeps batching). The round's close then has only the last update to fold.
      onCaughtUp: () => this.exclusive(async () => this.round?.aggregation.flush?.()),
      // A member joined or left the group: if another aggregator took over, it fenced this one before joining.
      onRebalance: () => void this.exclusive(() => this.checkNotFenced()).catch(() => undefined),
    });
    // Once now as well: a takeover that fenced this one while it was starting had no rebalance left to announce.
    void this.exclusive(() => this.checkNotFenced()).catch(() => undefined);
    if (!this.finished) this.phase = 'running';
    this.armDeadline();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.phase !== 'finished' && this.phase !== 'failed') this.phase = 'stopped';
    await this.updates.close();
    await this.liveness?.stop();
    await this.slot.producer?.disconnect().catch(() => undefined);
  }

  /** The phase (`starting`, `recovering` while re-reading the log after a restart, `running`, `finished`, `stopped`, `failed`) and the open round. */
  health(): ServiceHealth {
    const h = healthOf(this.phase, this.version, this.round, this.updates.catchingUp, this.failure);
    // The updates reader's own counters: what incomplete chunked payloads hold now and at most (limits.maxPending*).
    const s = this.updates.reader.stats(this.topics.updates);
    return { ...h, figures: { ...h.figures, pendingPayloads: s.pendingPayloads, bufferedChunkBytes: s.bufferedBytes, peakBufferedChunkBytes: s.peakBufferedBytes, droppedPayloads: s.evicted + s.expired, refusedChunks: s.refused } };
  }

  private summary(): AggregatorSummary {
    return { finalVersion: this.version, rounds: this.decidedRound, roundsRun: this.roundsRun, versions: this.version + 1 };
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
    if (this.phase === 'failed') return;
    const fenced = fencedError(err, { pipeline: topicPrefix(this.m), transactionalId: this.transactionalId, groupId: this.groupId });
    this.finished = true;
    this.phase = 'failed';
    this.failure = fenced ?? err;
    if (this.timer) clearTimeout(this.timer);
    if (fenced) {
      this.log.error({ err: fenced, transactionalId: this.transactionalId, groupId: this.groupId }, fenced.message);
      // Give the updates partitions back now, not when the process ends: the aggregator that took over waits for them.
      void this.updates.close();
      void this.liveness?.stop();
      void this.slot.producer?.disconnect().catch(() => undefined);
    } else {
      this.log.error({ err }, 'aggregator stopped on an error it cannot recover from');
    }
    this.rejectDone(fenced ?? err);
  }

  // ---------------------------------------------------------------- one aggregator per pipeline (ownership.ts)

  private async awaitNoLiveHolder(): Promise<void> {
    const admin = this.t.admin();
    try {
      await awaitNoLiveHolder({ admin, groupId: this.groupId, pipeline: topicPrefix(this.m), takeOver: this.opts.takeOver ?? false, log: this.log });
    } finally {
      await admin.close();
    }
  }

  /** Asks the transaction coordinator whether this aggregator was fenced; throws TRANSPORT_FENCED if so. */
  private async checkNotFenced(): Promise<void> {
    if (this.finished) return;
    try {
      await this.slot.producer.checkFenced(this.groupId);
    } catch (err) {
      if (isFenced(err)) throw err;
      this.log.warn({ err }, 'could not ask whether another aggregator fenced this one; the next transaction will tell');
    }
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    const got = await readPipelineLog(this.t, this.m, this.topics, this.log, this.registry);
    for (const [id, v] of got.counted) this.counted.set(id, v);
    if (got.refused.length > 0) {
      // Nothing else writes these: records in control or models that the aggregator did not sign (a forged FINISH, a
      // forged version) are audited and dead-lettered here, each time recovery meets them (same event id each time).
      await this.transact(`audit ${got.refused.length} refused records`, got.refused.flatMap((r) => refusedOut(this.scope, r, Date.now())), false);
    }
    if (got.latest) {
      this.version = got.latest.version;
      this.weights = got.latest.weights;
      this.events.emit({ type: 'version.recovered', version: this.version });
      if (got.latest.strategyState) {
        if (this.opts.strategy.restore) this.opts.strategy.restore(got.latest.strategyState);
        else this.log.warn({ version: this.version, strategy: this.opts.strategy.name }, 'the latest version carries a strategy state that this strategy cannot restore; ignored');
      }
    }
    const plan = recoveryPlan(got);
    switch (plan.type) {
      case 'initial':
        this.weights = await this.opts.initialWeights();
        this.version = -1;
        await this.publishInitial();
        return;
      case 'finished':
        this.decidedRound = plan.round;
        if (plan.round < this.m.rounds.count) {
          await this.continueAfter(plan.round);
          return;
        }
        this.finished = true;
        this.log.info({ version: this.version, round: plan.round, roundsCount: this.m.rounds.count },
          `the pipeline finished after round ${plan.round}; rounds.count ${this.m.rounds.count} asks for no more (raise it to continue)`);
        return;
      case 'start-after':
        this.decidedRound = plan.round;
        // A version without a round to follow it: start the next one.
        await this.startAfter(plan.round);
        return;
      case 'resume':
        this.decidedRound = Number(plan.control.round) - 1;
        this.openRound(plan.control, plan.extensions);
        this.log.info({ version: this.version, round: plan.control.round, kind: plan.control.kind, extensions: plan.extensions }, 'recovered state from the log');
    }
  }

  private openRound(c: RoundControlRecord, extensions: number): void {
    const aggregation = this.opts.strategy.begin(this.weights, { round: Number(c.round), baseVersion: Number(c.baseVersion), knownNodes: this.opts.knownNodes ?? [], log: this.reread });
    this.round = openRound(c, extensions, aggregation, Date.now());
    this.events.emit({ type: 'round.started', round: this.round.round, baseVersion: this.round.baseVersion, deadline: this.round.deadline, targetUpdates: this.round.targetUpdates, minUpdates: this.round.minUpdates });
  }

  // ---------------------------------------------------------------- messages

  private async onMessage(msg: TransportMessage): Promise<void> {
    this.updates.consumedMessage(msg);
    const r = this.round;
    if (!r || this.finished) return;
    const got = this.updates.reader.accept(msg);
    for (const f of got.failures) this.rejectUnreadable(r, f, msg);
    if (got.payload) await this.onPayload(r, got.payload, msg);
  }

  /** Audits (and dead-letters) what the reader refused or dropped, under the source of its first chunk. */
  private rejectUnreadable(r: OpenRound, f: PayloadFailure, msg?: TransportMessage): void {
    const first = f.error instanceof ChunkedPayloadError ? f.error.messages[0] : undefined;
    const key = first?.key ?? msg?.key ?? null;
    const src: TransportMessage = {
      topic: this.topics.updates, partition: first?.partition ?? msg?.partition ?? 0, offset: first?.offset ?? msg?.offset ?? '0',
      key: key === null || key === undefined ? null : Buffer.from(key), value: null, headers: {}, timestamp: msg?.timestamp ?? Date.now(),
    };
    this.reject(r, { updateId: null, nodeId: src.key?.toString('utf8') ?? null, round: null, code: 'undecodable', reason: `${f.error.message} (${src.topic}[${src.partition}]@${src.offset})` }, f.bytes, src);
  }

  /** Expires incomplete payloads gone silent (limits.maxPendingAgeMs) before a round's offsets commit: they no longer hold them back. */
  private expireIncomplete(r: OpenRound): void {
    for (const f of this.updates.reader.expire()) this.rejectUnreadable(r, f);
  }

  private async onPayload(r: OpenRound, p: Payload, msg: TransportMessage): Promise<void> {
    let update;
    let weights: Weights;
    // Decoded straight into the aggregation's memory where it offers some (the fold kernel's slots): one copy of
    // the tensor bytes fewer. Given back below unless the update is folded.
    const into = r.aggregation.reserve?.();
    try {
      // Tensor bytes as views into the payload, copied once, by unpackTensors, into the slot.
      update = decodeView('ModelUpdate', p.bytes);
      weights = unpackTensors(update.tensors, into);
    } catch (err) {
      r.aggregation.release?.(into);
      const e = err as Error;
      this.reject(r, { updateId: null, nodeId: p.key, round: null, code: 'undecodable', reason: `${e.message} (${p.topic}[${p.partition}]@${p.firstOffset})` }, p.bytes, msg);
      return;
    }
    const state = validationState(this.m, r, this.counted);
    const candidate = { ...update, round: Number(update.round), baseVersion: Number(update.baseVersion), numExamples: Number(update.numExamples), weights };
    // Who said it comes first: an update not signed by its node's key is never validated against the round, so it
    // can neither count nor take an id or a node's place in the round (DESIGN.md invariant 6).
    const rejection = this.unattributed(update, p, weights) ?? validateUpdate(candidate, state, this.weights, validationLimits(this.m.limits));
    const verdict = decide(this.policy, policyState(r, this.updates.catchingUp), rejection ? { type: 'validated', rejection } : { type: 'validated' });
    if (verdict.type === 'reject') {
      r.aggregation.release?.(into);
      this.reject(r, verdict.rejection, p.bytes, msg);
      return;
    }
    // Out-of-range metrics are neither averaged nor published (limits.maxMetricAbs); the update itself stays.
    const metrics = saneMetrics(update.metrics, this.m.limits.maxMetricAbs);
    if (metrics.dropped.length) this.log.info({ round: r.round, nodeId: update.nodeId, updateId: update.updateId, dropped: metrics.dropped }, 'metrics out of range; not averaged');
    const foldStart = performance.now();
    r.aggregation.fold({ updateId: update.updateId, nodeId: update.nodeId, round: r.round, numExamples: candidate.numExamples, weights, metrics: metrics.kept, source: { partition: p.partition, offset: p.firstOffset } });
    this.events.emit({ type: 'update.accepted', round: r.round, nodeId: update.nodeId, foldSeconds: secondsSince(foldStart) });
    r.acceptedIds.add(update.updateId);
    r.contributedNodes.add(update.nodeId);
    r.contributors.set(update.updateId, { nodeId: update.nodeId, numExamples: candidate.numExamples });
    r.pending.push(...this.audit('UPDATE_ACCEPTED', { round: r.round, nodeId: update.nodeId, updateId: update.updateId, details: {
      numExamples: String(candidate.numExamples), offset: p.firstOffset, partition: String(p.partition),
      ...(metrics.dropped.length ? { metricsDropped: metrics.dropped.join(','), metricsLimit: String(this.m.limits.maxMetricAbs) } : {}),
    } }));
    this.log.debug({ round: r.round, nodeId: update.nodeId, updateId: update.updateId, accepted: r.acceptedIds.size }, 'update accepted');
    this.maybeFault('mid-round', r.round);
    const then = decide(this.policy, policyState(r, this.updates.catchingUp), { type: 'accepted' });
    if (then.type === 'close') await this.closeRound(then.why);
  }

  /** The rejection of an update that its node's key did not sign (protocol/participants.ts `verifyRecord`), else null. */
  private unattributed(update: ModelUpdateRecord, p: Payload, weights: Weights): Rejection | null {
    if (!this.registry.verifies('ModelUpdate')) return null;
    const verdict = verifyRecord(this.registry, 'ModelUpdate', update, p.bytes, p.headers, { tensorsSha256: weightsSha256(weights) });
    return verdict.ok ? null : { updateId: update.updateId, nodeId: update.nodeId, round: Number(update.round), code: verdict.code, reason: verdict.reason };
  }

  private reject(r: OpenRound, rejection: Rejection, bytes: Buffer, msg: TransportMessage): void {
    this.events.emit({ type: 'update.rejected', round: r.round, nodeId: rejection.nodeId, code: rejection.code });
    // Held in memory until the round's transaction: past limits.maxRejectionsPerRound only counted, by code.
    if (r.rejections.length >= this.m.limits.maxRejectionsPerRound) {
      if (r.notItemized.size === 0) this.log.warn({ round: r.round, limit: this.m.limits.maxRejectionsPerRound }, 'too many rejections in one round; the rest are counted by code in the round\'s closing audit event');
      r.notItemized.set(rejection.code, (r.notItemized.get(rejection.code) ?? 0) + 1);
      return;
    }
    r.rejections.push(rejection);
    this.log.info({ round: r.round, nodeId: rejection.nodeId, updateId: rejection.updateId, code: rejection.code, reason: rejection.reason }, 'update rejected');
    // Raw bytes wait in memory for the round's transaction: at most limits.maxDeadLetterBytesPerRound of them.
    const keep = r.deadLetterBytes + bytes.length <= this.m.limits.maxDeadLetterBytesPerRound;
    if (keep) r.deadLetterBytes += bytes.length;
    else if (r.deadLetterOmitted++ === 0) this.log.warn({ round: r.round, bytes: bytes.length, limit: this.m.limits.maxDeadLetterBytesPerRound }, 'dead-letter budget of the round spent; its further rejections are audited without their bytes');
    r.pending.push(...rejectionOut(this.scope, r.round, rejection, bytes, msg, Date.now(), randomUUID(), keep));
  }

  // ---------------------------------------------------------------- rounds

  private armDeadline(): void {
    const r = this.round;
    if (!r) {
      if (this.timer) clearTimeout(this.timer);
      return;
    }
    this.armAt(r.round, r.deadline);
  }

  private armAt(round: number, at: number): void {
    if (this.timer) clearTimeout(this.timer);
    if (!this.round || this.finished) return;
    this.timer = setTimeout(() => {
      void this.exclusive(() => this.onDeadline(round)).catch(() => undefined);
    }, Math.max(0, at - Date.now()));
  }

  private async onDeadline(round: number): Promise<void> {
    const r = this.round;
    if (!r || r.round !== round || this.finished) return;
    const d: RoundDecision = decide(this.policy, policyState(r, this.updates.catchingUp), { type: 'deadline', now: Date.now() });
    switch (d.type) {
      case 'wait':
        // Not yet (a timer that fired early), or still re-reading the log after a restart: ask again then.
        return this.armAt(round, d.until ?? r.deadline);
      case 'close':
        return this.closeRound(d.why);
      case 'extend':
        return this.extendRound(r, d);
      case 'abandon':
        return this.abandonRound(r, d.why);
      default:
        return undefined;
    }
  }

  private control(kind: RoundControlRecord['kind'], round: number, baseVersion: number, deadline: number, selectedNodes: string[], config: Record<string, string>, targets?: { targetUpdates: number; minUpdates: number }): RoundControlRecord {
    // The records of an open round (EXTEND, CLOSE, ABANDON) carry the targets its START set.
    const own = targets ?? (this.round && this.round.round === round ? { targetUpdates: this.round.targetUpdates, minUpdates: this.round.minUpdates } : undefined);
    return controlRecord(this.m, { kind, round, baseVersion, deadline, selectedNodes, config, ...(own ? { targets: own } : {}) }, Date.now());
  }

  private audit(action: AuditEventRecord['action'], a: AuditFields): ProducerRecord[] {
    return auditOut(this.scope, auditEvent(this.m, action, a, Date.now(), randomUUID()));
  }

  private async publishInitial(): Promise<void> {
    const metrics = this.opts.evaluate ? await this.opts.evaluate(this.weights) : {};
    const v = versionRecord(this.m, { version: 0, parent: -1, round: 0, strategy: 'initial', weights: this.weights, contributors: [], metrics, rejected: 0, strategyState: this.opts.strategy.state?.(), privacy: this.opts.strategy.privacy?.() }, Date.now());
    const { records, start } = this.followUp(0, 0);
    await this.transact('publish initial version', [
      ...versionOut(this.scope, v),
      ...this.audit('VERSION_PUBLISHED', { version: 0, round: 0, details: { weightsSha256: v.weightsSha256, strategy: 'initial' } }),
      ...records,
    ], false);
    this.version = 0;
    this.opts.onVersion?.(v, { round: 0, ms: 0, participants: 0, rejected: 0 });
    this.events.emit({ type: 'version.published', version: 0, round: 0, at: Date.now() });
    if (!start) {
      this.finished = true; // the strategy refused round 1 (privacy budget); start() settles
      return;
    }
    this.openRound(start, 0);
    this.log.info({ version: 0, round: 1 }, 'published the initial version and started round 1');
  }

  private async closeRound(why: string): Promise<void> {
    const r = this.round!;
    const t0 = Date.now();
    const decided = performance.now();
    this.expireIncomplete(r);
    // A robust strategy past its memory budget re-reads its round from the log here; the others have nothing to settle.
    await r.aggregation.settle?.();
    const result = r.aggregation.finish(r.rejections);
    const metrics: Record<string, number> = { ...result.metrics, roundMs: t0 - r.startedAt };
    if (this.opts.evaluate) Object.assign(metrics, await this.opts.evaluate(result.weights));
    const nextVersion = this.version + 1;
    const contributors = [...r.contributors].map(([updateId, c]) => ({ updateId, nodeId: c.nodeId, numExamples: c.numExamples, weight: result.contributionWeights.get(updateId) ?? 0 }));
    const v = versionRecord(this.m, {
      version: nextVersion, parent: this.version, round: r.round, strategy: this.opts.strategy.name, weights: result.weights, contributors, metrics,
      rejected: rejectedCount(r), strategyState: this.opts.strategy.state?.(), privacy: this.opts.strategy.privacy?.(),
    }, Date.now());
    const out: ProducerRecord[] = [
      ...versionOut(this.scope, v),
      ...r.pending,
      ...this.audit('ROUND_CLOSED', { round: r.round, version: nextVersion, reason: why, details: {
        accepted: String(contributors.length), rejected: String(rejectedCount(r)), ...cappedDetails(result, this.m.limits.maxWeightShare), ...boundsDetails(r),
      } }),
      ...this.audit('VERSION_PUBLISHED', { round: r.round, version: nextVersion, details: { parentVersion: String(this.version), weightsSha256: v.weightsSha256, strategy: v.strategy, contributors: String(contributors.length) } }),
      ...controlOut(this.scope, this.control('CLOSE', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})),
    ];
    const { records, start } = this.followUp(r.round, nextVersion);
    out.push(...records);
    await this.transact(`close round ${r.round}`, out, true, r.round);
    for (const c of contributors) this.counted.set(c.updateId, nextVersion);
    this.version = nextVersion;
    this.decidedRound = r.round;
    this.roundsRun++;
    this.weights = result.weights;
    const info = { round: r.round, ms: Date.now() - r.startedAt, participants: contributors.length, rejected: rejectedCount(r) };
    this.log.info({ version: nextVersion, ...info, why, evalAccuracy: metrics.eval_accuracy }, roundLine(r.round, why, nextVersion, info, metrics.eval_accuracy));
    this.opts.onVersion?.(v, info);
    this.events.emit({ type: 'round.decided', round: r.round, outcome: 'closed', why, decisionSeconds: secondsSince(decided), roundSeconds: (t0 - r.startedAt) / 1000,
      accepted: contributors.length, rejected: info.rejected, version: nextVersion, ...(metrics.eval_accuracy === undefined ? {} : { evalAccuracy: metrics.eval_accuracy }) });
    this.events.emit({ type: 'version.published', version: nextVersion, round: r.round, at: Date.now() });
    this.afterDecision(start);
  }

  /** Resolves `done` with the summary, or rejects it with the strategy's refusal (PRIVACY_BUDGET_EXHAUSTED). */
  private settle(): void {
    if (!this.refusal) {
      this.resolveDone(this.summary());
      return;
    }
    this.failure = this.refusal;
    this.log.error({ err: this.refusal, code: this.refusal.code, version: this.version }, `pipeline stopped: ${this.refusal.message}`);
    this.rejectDone(this.refusal);
  }

  private afterDecision(start: RoundControlRecord | undefined): void {
    if (start) {
      this.openRound(start, 0);
      this.armDeadline();
    } else {
      this.round = undefined;
      this.finished = true;
      this.phase = 'finished';
      if (this.timer) clearTimeout(this.timer);
      this.log.info({ version: this.version }, 'last round decided; pipeline finished');
      this.settle();
    }
  }

  private async extendRound(r: OpenRound, d: Extract<RoundDecision, { type: 'extend' }>): Promise<void> {
    r.extensions = d.extensions;
    r.deadline = d.deadline;
    const c = this.control('EXTEND', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], { extension: String(r.extensions) });
    // No offsets here: the updates accepted so far live only in memory until the round closes.
    await this.transact(`extend round ${r.round}`, [...this.audit('ROUND_EXTENDED', { round: r.round, reason: d.why }), ...controlOut(this.scope, c)], false);
    this.log.warn({ round: r.round, accepted: r.acceptedIds.size, minUpdates: r.minUpdates, extension: r.extensions },
      `round ${r.round} below quorum at its deadline (${r.acceptedIds.size} of ${r.minUpdates} updates); extended (extension ${r.extensions})`);
    this.events.emit({ type: 'round.extended', round: r.round, extension: r.extensions, accepted: r.acceptedIds.size, minUpdates: r.minUpdates });
    this.armDeadline();
  }

  private async abandonRound(r: OpenRound, reason: string): Promise<void> {
    const decided = performance.now();
    this.expireIncomplete(r);
    const out: ProducerRecord[] = [...r.pending];
    for (const [updateId, c] of r.contributors) {
      out.push(...this.audit('UPDATE_REJECTED', { round: r.round, nodeId: c.nodeId, updateId, reason: `round ${r.round} abandoned: ${reason}`, details: { code: 'round_abandoned' } }));
    }
    out.push(...this.audit('ROUND_ABANDONED', { round: r.round, version: this.version, reason, details: boundsDetails(r) }));
    out.push(...controlOut(this.scope, this.control('ABANDON', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})));
    const { records, start } = this.followUp(r.round, this.version);
    out.push(...records);
    await this.transact(`abandon round ${r.round}`, out, true, r.round);
    r.aggregation.dispose?.();
    this.decidedRound = r.round;
    this.roundsRun++;
    this.log.warn({ round: r.round, reason }, `round ${r.round} abandoned: ${reason}; version ${this.version} stays current`);
    this.events.emit({ type: 'round.decided', round: r.round, outcome: 'abandoned', why: reason, decisionSeconds: secondsSince(decided), roundSeconds: (Date.now() - r.startedAt) / 1000,
      accepted: r.acceptedIds.size, rejected: rejectedCount(r), version: this.version });
    this.afterDecision(start);
  }

  /**
   * What follows a decided round (or the initial version, round 0), as rounds.ts `next` says: the START of the next
   * round from `baseVersion`, or FINISH after the manifest's last round, each with its audit event.
   */
  private followUp(decidedRound: number, baseVersion: number): { records: ProducerRecord[]; start?: RoundControlRecord } {
    const step = nextStep(this.policy, decidedRound, Date.now());
    if (step.type === 'finish') {
      return { records: [...this.audit('PIPELINE_FINISHED', { round: decidedRound, version: baseVersion }), ...controlOut(this.scope, this.control('FINISH', decidedRound, baseVersion, Date.now(), [], {}))] };
    }
    const ctx = { round: step.round, baseVersion, knownNodes: this.opts.knownNodes ?? [] };
    // A strategy may refuse the round (central DP: it would exceed privacy.budget): audited, then FINISH.
    const refusal = this.opts.strategy.admitRound?.(ctx);
    if (refusal) {
      this.refusal = refusal;
      const details = Object.fromEntries(Object.entries(refusal.details ?? {}).map(([k, v]) => [k, String(v)]));
      return { records: [
        ...this.audit('PIPELINE_FINISHED', { round: decidedRound, version: baseVersion, reason: refusal.message, details: { code: refusal.code, ...details } }),
        ...controlOut(this.scope, this.control('FINISH', decidedRound, baseVersion, Date.now(), [], {})),
      ] };
    }
    const plan = this.opts.strategy.configureRound(ctx);
    const alive = this.liveness?.book.alive(Date.now(), this.m.rounds.aliveWindowMs);
    const targets = roundTargets(this.policy, alive?.length);
    if (alive) this.log.info({ round: step.round, alive: alive.length, targetUpdates: targets.targetUpdates, manifestTarget: this.policy.targetUpdates }, `round ${step.round}: ${alive.length} nodes alive, target ${targets.targetUpdates} updates`);
    const start = this.control('START', step.round, baseVersion, step.deadline, plan.selectedNodes, encodeRoundConfig(plan.config), targets);
    const audit = this.audit('ROUND_STARTED', { round: step.round, version: baseVersion, details: { selectedNodes: plan.selectedNodes.join(','), deadline: String(start.deadline) } });
    return { records: [...audit, ...controlOut(this.scope, start)], start };
  }

  /**
   * Continues a finished pipeline whose manifest now asks for more rounds (rounds.count raised): one transaction with
   * a PIPELINE_CONTINUED audit event and the START of the round after the last decided one, from the last version
   * and with the strategy state stored with it, as if the FINISH had not been written.
   */
  private async continueAfter(finishedRound: number): Promise<void> {
    const refusal = this.opts.strategy.admitRound?.({ round: finishedRound + 1, baseVersion: this.version, knownNodes: this.opts.knownNodes ?? [] });
    if (refusal) {
      // Finished already (its FINISH is in the log): nothing to write, the refusal stands.
      this.refusal = refusal;
      this.finished = true;
      return;
    }
    const { records, start } = this.followUp(finishedRound, this.version);
    const reason = `rounds.count raised to ${this.m.rounds.count}: continuing after round ${finishedRound} from version ${this.version}`;
    await this.transact(`continue after round ${finishedRound}`, [
      ...this.audit('PIPELINE_CONTINUED', { round: finishedRound, version: this.version, reason, details: { finishedRound: String(finishedRound), roundsCount: String(this.m.rounds.count) } }),
      ...records,
    ], false);
    this.log.info({ version: this.version, round: finishedRound, roundsCount: this.m.rounds.count }, `the pipeline had finished; ${reason}`);
    this.openRound(start!, 0);
  }

  /** Starts the round after `decidedRound` outside a close (recovery found a version with no round after it). */
  private async startAfter(decidedRound: number): Promise<void> {
    const { records, start } = this.followUp(decidedRound, this.version);
    await this.transact(start ? `start round ${start.round}` : 'finish', records, false);
    if (start) this.openRound(start, 0);
    else this.finished = true;
  }

  /** One transaction (transaction.ts), with the consumed offsets when `withOffsets`. */
  private async transact(what: string, records: ProducerRecord[], withOffsets: boolean, round?: number): Promise<void> {
    await transact({
      transport: this.t, slot: this.slot, transactionalId: this.transactionalId, groupId: this.groupId, log: this.log, what, records,
      offsets: withOffsets ? this.updates.offsetsToCommit() : [], beforeCommit: round !== undefined ? () => this.maybeFault('before-commit', round) : undefined,
    }).catch((err: unknown) => {
      // Also during start (recovery publishes), where no fail() rewords it: fenced says who took over.
      throw fencedError(err, { pipeline: topicPrefix(this.m), transactionalId: this.transactionalId, groupId: this.groupId }) ?? err;
    });
  }

  private maybeFault(point: FaultPoint, round: number): void {
    faultAt(this.opts.fault, point, round, this.log);
  }
}

/** The one human line per closed round: `round 3 closed (target reached): version 3, 5 updates, 1 rejected, eval accuracy 0.912, 4.2 s`. */
export function roundLine(round: number, why: string, version: number, info: { ms: number; participants: number; rejected: number }, evalAccuracy: number | undefined): string {
  const acc = evalAccuracy === undefined ? '' : `, eval accuracy ${evalAccuracy.toFixed(3)}`;
  return `round ${round} closed (${why}): version ${version}, ${info.participants} update${info.participants === 1 ? '' : 's'}, ${info.rejected} rejected${acc}, ${humanDuration(info.ms)}`;
}

/** ROUND_CLOSED details naming the updates whose weight limits.maxWeightShare clamped: `updateId:share before`. */
function cappedDetails(result: AggregateResult, maxWeightShare: number | undefined): Record<string, string> {
  if (!result.weightCapped?.size) return {};
  return { weightCapped: [...result.weightCapped].map(([id, share]) => `${id}:${share}`).join(','), maxWeightShare: String(maxWeightShare) };
}
