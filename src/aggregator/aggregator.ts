import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { packTensors, unpackTensors, weightsSha256, type ModelVersionRecord, type RoundControlRecord, type AuditEventRecord } from '../codec/index.ts';
import type { Weights } from '../codec/types.ts';
import { FedStreamError, isFedStreamError } from '../common/errors.ts';
import { retry } from '../common/retry.ts';
import type { Manifest } from '../config/manifest.ts';
import { topicPrefix } from '../config/manifest.ts';
import { readToEnd } from '../protocol/log.ts';
import { ensureTopics, pipelineTopics, type PipelineTopics } from '../protocol/topics.ts';
import { PayloadReader, deadLetterRecords, decode, decodeView, toRecords, type Payload } from '../protocol/wire.ts';
import type { Producer, ProducerRecord, TopicPartitionOffset, Transport, TransportMessage, Consumer } from '../transport/types.ts';
import type { Aggregation, Rejection, Strategy } from './strategy.ts';
import { validateUpdate, type RoundState } from './validate.ts';

export interface AggregatorOptions {
  manifest: Manifest;
  transport: Transport;
  strategy: Strategy;
  logger: Logger;
  /** Weights of version 0, built from the manifest's model (deterministic for its seed). */
  initialWeights: () => Promise<Weights>;
  /** Evaluates a new version on held-out data; its metrics are published with the version. */
  evaluate?: (weights: Weights) => Promise<Record<string, number>>;
  /** Nodes known to the pipeline, for selection (empty: every node that shows up). */
  knownNodes?: string[];
  /**
   * Fault injection for the recovery tests: `kill:<point>:<round>` sends SIGKILL to this process at
   * that point of that round. Points: `mid-round` (after the first accepted update), `before-commit`
   * (transaction sent, not committed). Read from FEDSTREAM_FAULT by the CLI.
   */
  fault?: string | ((point: 'mid-round' | 'before-commit', round: number) => void);
  /** Called after every published version (for progress displays and tests). */
  onVersion?: (v: ModelVersionRecord, info: { round: number; ms: number; participants: number; rejected: number }) => void;
}

export interface AggregatorSummary {
  finalVersion: number;
  rounds: number;
  versions: number;
}

interface OpenRound {
  round: number;
  baseVersion: number;
  deadline: number;
  minUpdates: number;
  targetUpdates: number;
  selectedNodes: Set<string>;
  extensions: number;
  startedAt: number;
  aggregation: Aggregation;
  acceptedIds: Set<string>;
  contributors: Map<string, { nodeId: string; numExamples: number }>;
  contributedNodes: Set<string>;
  rejections: Rejection[];
  /** Records published with the round's closing transaction (audit, dead-letter). */
  pending: ProducerRecord[];
}

const SDK_ACTOR = 'aggregator';

/**
 * The round state machine of DESIGN.md. Exactly-once comes from Kafka: the consumed offsets of the
 * updates topic are committed in the same transaction as the version they fed, so after a crash the
 * aggregator re-reads exactly the updates that no published version counts yet, and rebuilds the
 * same running sum.
 */
export class Aggregator {
  private readonly m: Manifest;
  private readonly t: Transport;
  private readonly log: Logger;
  private readonly topics: PipelineTopics;
  private readonly groupId: string;
  private readonly transactionalId: string;
  private readonly chunkSize: number;
  private producer!: Producer;
  private consumer?: Consumer;
  private readonly reader = new PayloadReader();
  private version = -1;
  private weights: Weights = [];
  private round: OpenRound | undefined;
  private finished = false;
  private readonly counted = new Map<string, number>();
  /** Next offset to commit per updates partition (last consumed + 1). */
  private readonly consumed = new Map<number, bigint>();
  private lock: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private resolveDone!: (s: AggregatorSummary) => void;
  private rejectDone!: (e: unknown) => void;
  readonly done: Promise<AggregatorSummary>;
  private versionsPublished = 0;
  /** Partitions of the updates topic not yet read up to the end they had at start. */
  private readonly behind = new Map<number, bigint>();

  constructor(private readonly opts: AggregatorOptions) {
    this.m = opts.manifest;
    this.t = opts.transport;
    this.topics = pipelineTopics(this.m);
    this.groupId = `${topicPrefix(this.m)}.aggregator`;
    this.transactionalId = `${topicPrefix(this.m)}.aggregator`;
    this.chunkSize = this.m.topics.chunkSizeBytes;
    this.log = opts.logger.child({ component: 'aggregator', pipeline: topicPrefix(this.m) });
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    this.done.catch(() => undefined);
  }

  /** Recovers state from the log, then follows the updates topic until the last round is decided. */
  async start(): Promise<void> {
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
    this.producer = this.t.producer({ transactionalId: this.transactionalId, idempotent: true });
    // Initialising the transactional producer aborts whatever a previous incarnation left open.
    await this.producer.connect();
    await this.recover();
    if (this.finished) {
      this.log.info({ version: this.version }, 'pipeline already finished');
      this.resolveDone(this.summary());
      return;
    }
    // Until the updates that no version counts yet are read again, a deadline must not fire: the
    // round would close on fewer updates than the run that crashed had seen.
    const admin2 = this.t.admin();
    try {
      for (const o of await admin2.fetchTopicOffsets(this.topics.updates)) {
        if (BigInt(o.high) > BigInt(o.low)) this.behind.set(o.partition, BigInt(o.high));
      }
    } finally {
      await admin2.close();
    }
    // A short session: after a crash, the group waits this long for the dead member before the new one takes over.
    this.consumer = this.t.consumer({ groupId: this.groupId, readCommitted: true, fromBeginning: true, sessionTimeoutMs: 10_000 });
    await this.consumer.connect();
    await this.consumer.subscribe([this.topics.updates]);
    await this.consumer.run({
      autoCommit: false,
      onPosition: (p) => {
        const end = this.behind.get(p.partition);
        if (end !== undefined && BigInt(p.nextOffset) >= end) this.behind.delete(p.partition);
      },
      eachBatch: async (batch, ctx) => {
        let next: bigint | undefined;
        for (const msg of batch.messages) {
          if (this.finished || !ctx.isRunning()) break;
          await this.exclusive(() => this.onMessage(msg));
          // Resolving moves the fetch position only; offsets commit in the round's transaction.
          ctx.resolveOffset(msg.offset);
          next = BigInt(msg.offset) + 1n;
          await ctx.heartbeat();
        }
        // Caught up with this partition: nothing more to fold right now, so fold what the strategy buffered while
        // idle (under a backlog it keeps batching). The round's close then has only the last update to fold.
        if (next !== undefined && next >= BigInt(batch.highWatermark)) {
          await this.exclusive(async () => this.round?.aggregation.flush?.());
        }
      },
    });
    this.armDeadline();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.consumer?.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
  }

  private summary(): AggregatorSummary {
    return { finalVersion: this.version, rounds: this.m.rounds.count, versions: this.version + 1 };
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
    this.log.error({ err }, 'aggregator stopped on an error it cannot recover from');
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.rejectDone(err);
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    let latest: ModelVersionRecord | undefined;
    const models = new PayloadReader();
    await readToEnd(this.t, this.topics.models, (msg) => {
      const got = models.accept(msg);
      if (!got.payload) return;
      try {
        const v = decode('ModelVersion', got.payload.bytes);
        if (v.tenant !== this.m.tenant || v.pipeline !== this.m.name) return;
        for (const c of v.contributors) this.counted.set(c.updateId, v.version);
        if (!latest || v.version > latest.version) latest = v;
      } catch (err) {
        this.log.warn({ err, offset: msg.offset }, 'unreadable message in the models topic; ignored during recovery');
      }
    });
    let control: RoundControlRecord | undefined;
    let extensions = 0;
    await readToEnd(this.t, this.topics.control, (msg) => {
      try {
        const c = decode('RoundControl', msg.value ?? Buffer.alloc(0));
        if (!control || c.round !== control.round) extensions = 0;
        if (c.kind === 'EXTEND') extensions++;
        control = c;
      } catch (err) {
        this.log.warn({ err, offset: msg.offset }, 'unreadable message in the control topic; ignored during recovery');
      }
    });

    if (!latest) {
      this.weights = await this.opts.initialWeights();
      this.version = -1;
      await this.publishInitial();
      return;
    }
    this.version = latest.version;
    this.weights = unpackTensors(latest.tensors);
    const sha = weightsSha256(this.weights);
    if (sha !== latest.weightsSha256) {
      throw new FedStreamError('CODEC_CHECKSUM_MISMATCH', `model version ${latest.version} in ${this.topics.models} has weights sha256 ${sha}, its record says ${latest.weightsSha256}`);
    }
    if (!control || control.kind === 'FINISH') {
      this.finished = control?.kind === 'FINISH';
      if (!this.finished) {
        // A version without a round to follow it: start the next one.
        await this.startAfter(Number(latest.round));
      }
      return;
    }
    this.openRound(control, extensions);
    this.log.info({ version: this.version, round: control.round, kind: control.kind, extensions }, 'recovered state from the log');
  }

  private openRound(c: RoundControlRecord, extensions: number): void {
    this.round = {
      round: Number(c.round),
      baseVersion: Number(c.baseVersion),
      deadline: Number(c.deadline),
      minUpdates: c.minUpdates,
      targetUpdates: c.targetUpdates,
      selectedNodes: new Set(c.selectedNodes),
      extensions,
      startedAt: Date.now(),
      aggregation: this.opts.strategy.begin(this.weights, { round: Number(c.round), baseVersion: Number(c.baseVersion), knownNodes: this.opts.knownNodes ?? [] }),
      acceptedIds: new Set(),
      contributors: new Map(),
      contributedNodes: new Set(),
      rejections: [],
      pending: [],
    };
  }

  // ---------------------------------------------------------------- messages

  private async onMessage(msg: TransportMessage): Promise<void> {
    const offset = BigInt(msg.offset);
    this.consumed.set(msg.partition, offset + 1n);
    const end = this.behind.get(msg.partition);
    if (end !== undefined && offset + 1n >= end) this.behind.delete(msg.partition);
    const r = this.round;
    if (!r || this.finished) return;
    const got = this.reader.accept(msg);
    for (const f of got.failures) {
      this.reject(r, { updateId: null, nodeId: msg.key?.toString('utf8') ?? null, round: null, code: 'undecodable', reason: `${f.error.message} (${msg.topic}[${msg.partition}]@${msg.offset})` }, f.bytes, msg);
    }
    if (got.payload) await this.onPayload(r, got.payload, msg);
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
    const state: RoundState = {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      round: r.round,
      baseVersion: r.baseVersion,
      open: true,
      selectedNodes: r.selectedNodes,
      acceptedIds: r.acceptedIds,
      contributedNodes: r.contributedNodes,
      countedIds: this.counted,
    };
    const candidate = { ...update, round: Number(update.round), baseVersion: Number(update.baseVersion), numExamples: Number(update.numExamples), weights };
    const rejection = validateUpdate(candidate, state, this.weights, { maxUpdateNorm: this.m.limits.maxUpdateNorm, maxExamples: 1e12 });
    if (rejection) {
      r.aggregation.release?.(into);
      this.reject(r, rejection, p.bytes, msg);
      return;
    }
    r.aggregation.fold({ updateId: update.updateId, nodeId: update.nodeId, round: r.round, numExamples: candidate.numExamples, weights, metrics: update.metrics });
    r.acceptedIds.add(update.updateId);
    r.contributedNodes.add(update.nodeId);
    r.contributors.set(update.updateId, { nodeId: update.nodeId, numExamples: candidate.numExamples });
    r.pending.push(this.audit('UPDATE_ACCEPTED', { round: r.round, nodeId: update.nodeId, updateId: update.updateId, details: { numExamples: String(candidate.numExamples), offset: p.firstOffset, partition: String(p.partition) } }));
    this.log.debug({ round: r.round, nodeId: update.nodeId, updateId: update.updateId, accepted: r.acceptedIds.size }, 'update accepted');
    this.maybeFault('mid-round', r.round);
    if (r.acceptedIds.size >= r.targetUpdates) await this.closeRound('target reached');
  }

  private reject(r: OpenRound, rejection: Rejection, bytes: Buffer, msg: TransportMessage): void {
    r.rejections.push(rejection);
    this.log.info({ round: r.round, nodeId: rejection.nodeId, updateId: rejection.updateId, code: rejection.code, reason: rejection.reason }, 'update rejected');
    r.pending.push(this.audit('UPDATE_REJECTED', {
      round: rejection.round ?? r.round,
      nodeId: rejection.nodeId,
      updateId: rejection.updateId,
      reason: rejection.reason,
      details: { code: rejection.code, sourceTopic: msg.topic, sourcePartition: String(msg.partition), sourceOffset: msg.offset, bytes: String(bytes.length) },
    }));
    // The raw bytes, for a person to inspect; a large rejected payload is chunked like any other.
    r.pending.push(...deadLetterRecords({
      topic: this.topics['dead-letter'], bytes, key: msg.key, code: rejection.code, reason: rejection.reason,
      source: `${msg.topic}/${msg.partition}/${msg.offset}`, chunkSize: this.chunkSize,
    }));
  }

  // ---------------------------------------------------------------- rounds

  private armDeadline(): void {
    if (this.timer) clearTimeout(this.timer);
    const r = this.round;
    if (!r || this.finished) return;
    const wait = Math.max(0, r.deadline - Date.now());
    this.timer = setTimeout(() => {
      void this.exclusive(() => this.onDeadline(r.round)).catch(() => undefined);
    }, wait);
  }

  private async onDeadline(round: number): Promise<void> {
    const r = this.round;
    if (!r || r.round !== round || this.finished) return;
    if (Date.now() < r.deadline) return this.armDeadline();
    if (this.behind.size > 0) {
      // Still re-reading the log after a restart; decide once caught up.
      this.timer = setTimeout(() => { void this.exclusive(() => this.onDeadline(round)).catch(() => undefined); }, 50);
      return;
    }
    const accepted = r.acceptedIds.size;
    if (accepted >= r.minUpdates) {
      await this.closeRound(`deadline with ${accepted} of ${r.targetUpdates} updates`);
    } else if (r.extensions < this.m.rounds.maxExtensions) {
      await this.extendRound(r);
    } else {
      await this.abandonRound(r);
    }
  }

  private controlRecord(kind: RoundControlRecord['kind'], round: number, baseVersion: number, deadline: number, selectedNodes: string[], config: Record<string, string>): RoundControlRecord {
    return {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      round,
      baseVersion,
      kind,
      config,
      selectedNodes,
      deadline,
      minUpdates: Math.min(this.m.rounds.minUpdates, this.m.rounds.targetUpdates),
      targetUpdates: this.m.rounds.targetUpdates,
      createdAt: Date.now(),
    };
  }

  private controlOut(c: RoundControlRecord): ProducerRecord {
    // Control records are small and never chunked: key = round, one partition, total order.
    return toRecords(this.topics.control, 'RoundControl', c, `round-${c.round}`, this.chunkSize)[0]!;
  }

  private audit(action: AuditEventRecord['action'], a: Partial<Pick<AuditEventRecord, 'round' | 'version' | 'nodeId' | 'updateId' | 'reason' | 'details'>>): ProducerRecord {
    const e: AuditEventRecord = {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      eventId: randomUUID(),
      eventTime: Date.now(),
      actor: SDK_ACTOR,
      action,
      round: a.round ?? null,
      version: a.version ?? null,
      nodeId: a.nodeId ?? null,
      updateId: a.updateId ?? null,
      reason: a.reason ?? null,
      details: a.details ?? {},
    };
    return toRecords(this.topics.audit, 'AuditEvent', e, e.nodeId ?? action, this.chunkSize)[0]!;
  }

  /** Offsets to commit: past everything consumed, except incomplete chunked payloads, which must be read again after a crash. */
  private offsetsToCommit(): TopicPartitionOffset[] {
    return [...this.consumed].map(([partition, next]) => {
      const low = this.reader.pendingLowWatermark(this.topics.updates, partition);
      const offset = low !== undefined && low < next ? low : next;
      return { topic: this.topics.updates, partition, offset: offset.toString() };
    });
  }

  private async publishInitial(): Promise<void> {
    const metrics = this.opts.evaluate ? await this.opts.evaluate(this.weights) : {};
    const v = this.versionRecord(0, -1, 0, 'initial', this.weights, [], metrics, 0);
    const { records, start } = this.followUp(0, 0);
    await this.transact('publish initial version', [
      ...toRecords(this.topics.models, 'ModelVersion', v, 'v0', this.chunkSize),
      this.audit('VERSION_PUBLISHED', { version: 0, round: 0, details: { weightsSha256: v.weightsSha256, strategy: 'initial' } }),
      ...records,
    ], false);
    this.version = 0;
    this.versionsPublished++;
    this.opts.onVersion?.(v, { round: 0, ms: 0, participants: 0, rejected: 0 });
    this.openRound(start!, 0);
    this.log.info({ version: 0, round: 1 }, 'published the initial version and started round 1');
  }

  private versionRecord(version: number, parent: number, round: number, strategy: string, weights: Weights, contributors: ModelVersionRecord['contributors'], metrics: Record<string, number>, rejected: number): ModelVersionRecord {
    return {
      tenant: this.m.tenant,
      pipeline: this.m.name,
      version,
      parentVersion: parent,
      round,
      strategy,
      createdAt: Date.now(),
      tensors: packTensors(weights, { dtype: 'float32' }),
      weightsSha256: weightsSha256(weights),
      contributors,
      totalExamples: contributors.reduce((s, c) => s + Number(c.numExamples), 0),
      metrics,
      rejectedCount: rejected,
      modelSpec: JSON.stringify(this.m.model),
    };
  }

  private async closeRound(why: string): Promise<void> {
    const r = this.round!;
    const t0 = Date.now();
    const result = r.aggregation.finish(r.rejections);
    const metrics: Record<string, number> = { ...result.metrics, roundMs: t0 - r.startedAt };
    if (this.opts.evaluate) Object.assign(metrics, await this.opts.evaluate(result.weights));
    const next = this.version + 1;
    const contributors = [...r.contributors].map(([updateId, c]) => ({ updateId, nodeId: c.nodeId, numExamples: c.numExamples, weight: result.contributionWeights.get(updateId) ?? 0 }));
    const v = this.versionRecord(next, this.version, r.round, this.opts.strategy.name, result.weights, contributors, metrics, r.rejections.length);
    const out: ProducerRecord[] = [
      ...toRecords(this.topics.models, 'ModelVersion', v, `v${next}`, this.chunkSize),
      ...r.pending,
      this.audit('ROUND_CLOSED', { round: r.round, version: next, reason: why, details: { accepted: String(contributors.length), rejected: String(r.rejections.length) } }),
      this.audit('VERSION_PUBLISHED', { round: r.round, version: next, details: { parentVersion: String(this.version), weightsSha256: v.weightsSha256, strategy: v.strategy, contributors: String(contributors.length) } }),
      this.controlOut(this.controlRecord('CLOSE', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})),
    ];
    const { records, start } = this.followUp(r.round, next);
    out.push(...records);
    await this.transact(`close round ${r.round}`, out, true, r.round);
    for (const c of contributors) this.counted.set(c.updateId, next);
    this.version = next;
    this.weights = result.weights;
    this.versionsPublished++;
    const info = { round: r.round, ms: Date.now() - r.startedAt, participants: contributors.length, rejected: r.rejections.length };
    this.log.info({ version: next, ...info, why, evalAccuracy: metrics.eval_accuracy }, 'published version');
    this.opts.onVersion?.(v, info);
    this.afterDecision(start);
  }

  private afterDecision(start: RoundControlRecord | undefined): void {
    if (start) {
      this.openRound(start, 0);
      this.armDeadline();
    } else {
      this.round = undefined;
      this.finished = true;
      if (this.timer) clearTimeout(this.timer);
      this.log.info({ version: this.version }, 'last round decided; pipeline finished');
      this.resolveDone(this.summary());
    }
  }

  private async extendRound(r: OpenRound): Promise<void> {
    r.extensions++;
    r.deadline = Date.now() + this.m.rounds.timeoutMs;
    const c = this.controlRecord('EXTEND', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], { extension: String(r.extensions) });
    // No offsets here: the updates accepted so far live only in memory until the round closes.
    await this.transact(`extend round ${r.round}`, [
      this.audit('ROUND_EXTENDED', { round: r.round, reason: `${r.acceptedIds.size} of ${r.minUpdates} required updates at the deadline; extension ${r.extensions} of ${this.m.rounds.maxExtensions}` }),
      this.controlOut(c),
    ], false);
    this.log.warn({ round: r.round, accepted: r.acceptedIds.size, minUpdates: r.minUpdates, extension: r.extensions }, 'round below quorum at its deadline; extended');
    this.armDeadline();
  }

  private async abandonRound(r: OpenRound): Promise<void> {
    const reason = `${r.acceptedIds.size} of ${r.minUpdates} required updates after ${r.extensions} extensions`;
    const out: ProducerRecord[] = [...r.pending];
    for (const [updateId, c] of r.contributors) {
      out.push(this.audit('UPDATE_REJECTED', { round: r.round, nodeId: c.nodeId, updateId, reason: `round ${r.round} abandoned: ${reason}`, details: { code: 'round_abandoned' } }));
    }
    out.push(this.audit('ROUND_ABANDONED', { round: r.round, version: this.version, reason }));
    out.push(this.controlOut(this.controlRecord('ABANDON', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})));
    const { records, start } = this.followUp(r.round, this.version);
    out.push(...records);
    await this.transact(`abandon round ${r.round}`, out, true, r.round);
    r.aggregation.dispose?.();
    this.log.warn({ round: r.round, reason }, 'round abandoned');
    this.afterDecision(start);
  }

  /**
   * What follows a decided round (or the initial version, round 0): the START of the next round from
   * `baseVersion`, or FINISH after the manifest's last round, each with its audit event.
   */
  private followUp(decidedRound: number, baseVersion: number): { records: ProducerRecord[]; start?: RoundControlRecord } {
    const round = decidedRound + 1;
    if (round > this.m.rounds.count) {
      return { records: [this.audit('PIPELINE_FINISHED', { round: decidedRound, version: baseVersion }), this.controlOut(this.controlRecord('FINISH', decidedRound, baseVersion, Date.now(), [], {}))] };
    }
    const plan = this.opts.strategy.configureRound({ round, baseVersion, knownNodes: this.opts.knownNodes ?? [] });
    const start = this.controlRecord('START', round, baseVersion, Date.now() + this.m.rounds.timeoutMs, plan.selectedNodes, plan.config);
    const audit = this.audit('ROUND_STARTED', { round, version: baseVersion, details: { selectedNodes: plan.selectedNodes.join(','), deadline: String(start.deadline) } });
    return { records: [audit, this.controlOut(start)], start };
  }

  /** Starts the round after `decidedRound` outside a close (recovery found a version with no round after it). */
  private async startAfter(decidedRound: number): Promise<void> {
    const { records, start } = this.followUp(decidedRound, this.version);
    await this.transact(start ? `start round ${start.round}` : 'finish', records, false);
    if (start) this.openRound(start, 0);
    else this.finished = true;
  }

  /**
   * One Kafka transaction: the records, and (when `withOffsets`) the consumed offsets of the updates
   * topic. A retriable failure aborts and retries the whole transaction with a new producer; the
   * in-memory round state is untouched until it commits.
   */
  private async transact(what: string, records: ProducerRecord[], withOffsets: boolean, round?: number): Promise<void> {
    const offsets = withOffsets ? this.offsetsToCommit() : [];
    await retry(async (attempt) => {
      if (attempt > 0) {
        await this.producer.disconnect().catch(() => undefined);
        this.producer = this.t.producer({ transactionalId: this.transactionalId, idempotent: true });
        await this.producer.connect();
      }
      const tx = await this.producer.transaction();
      try {
        // One send: the transport keeps the records' order per partition (chunks of a payload stay in order)
        // and splits requests at the broker's size limit; 106 awaited sends cost ~140 ms (docs/performance.md).
        await tx.send(records);
        if (offsets.length) await tx.sendOffsets(this.groupId, offsets);
        if (round !== undefined) this.maybeFault('before-commit', round);
        await tx.commit();
      } catch (err) {
        await tx.abort().catch(() => undefined);
        throw err;
      }
    }, {
      retries: 20,
      initialDelayMs: 200,
      maxDelayMs: 5_000,
      onRetry: (err, attempt, delayMs) => this.log.warn({ err, attempt, delayMs, what }, 'transaction failed; retrying'),
    }).catch((err) => {
      throw isFedStreamError(err) ? err : new FedStreamError('TRANSPORT_TRANSACTION', `${what}: ${(err as Error).message}`, { cause: err });
    });
  }

  private maybeFault(point: 'mid-round' | 'before-commit', round: number): void {
    const f = this.opts.fault;
    if (!f) return;
    if (typeof f === 'function') return f(point, round);
    const [action, p, r] = f.split(':');
    if (action === 'kill' && p === point && Number(r) === round) {
      this.log.warn({ point, round }, 'fault injection: SIGKILL');
      process.kill(process.pid, 'SIGKILL');
    }
  }
}
