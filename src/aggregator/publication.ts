/**
 * The aggregator's decisions as Kafka transactions (transaction.ts): the initial version, a round closed into a new
 * version, extended or abandoned, and what follows each (the next START or FINISH, rounds.ts `nextStep`), each with
 * its audit events (records.ts builds the records). A round's transaction commits the consumed offsets of the updates
 * it decided with it, which is the aggregator's exactly-once (DESIGN.md invariant 1).
 */
import { randomUUID } from 'node:crypto';
import type { AuditEventRecord, RoundControlRecord } from '../codec/index.ts';
import { humanDuration, secondsSince, type FedStreamError } from '../common/index.ts';
import { topicPrefix } from '../config/index.ts';
import { encodeRoundConfig } from '../protocol/index.ts';
import type { ProducerRecord } from '../transport/index.ts';
import { auditEvent, auditOut, controlOut, controlRecord, derivedEventId, versionOut, versionRecord, type AuditFields } from './records.ts';
import { nextStep, roundTargets, type RoundDecision } from './rounds.ts';
import type { AggregateResult } from './strategy.ts';
import { faultAt, transact, type FaultPoint } from './transaction.ts';
import { boundsDetails, rejectedCount, type OpenRound } from './open-round.ts';
import { fencedError } from './ownership.ts';
import type { AggregatorRun } from './run.ts';

/** What publishing asks of the aggregator's other parts. */
export interface PublicationHooks {
  /** Opens the round a START record describes (a new aggregation of the strategy). */
  openRound(c: RoundControlRecord, extensions: number): void;
  /** After a round is decided: opens the next one (`start`), or finishes the pipeline. */
  afterDecision(start: RoundControlRecord | undefined): void;
  /** Re-arms the round's deadline timer (after an extension). */
  armDeadline(): void;
  /** Rejects the incomplete payloads gone silent before a round's offsets commit (intake.ts). */
  expireIncomplete(r: OpenRound): void;
}

export class RoundPublisher {
  constructor(private readonly s: AggregatorRun, private readonly hooks: PublicationHooks) {}

  control(kind: RoundControlRecord['kind'], round: number, baseVersion: number, deadline: number, selectedNodes: string[], config: Record<string, string>, targets?: { targetUpdates: number; minUpdates: number }): RoundControlRecord {
    // The records of an open round (EXTEND, CLOSE, ABANDON) carry the targets its START set.
    const own = targets ?? (this.s.round && this.s.round.round === round ? { targetUpdates: this.s.round.targetUpdates, minUpdates: this.s.round.minUpdates } : undefined);
    return controlRecord(this.s.m, { kind, round, baseVersion, deadline, selectedNodes, config, ...(own ? { targets: own } : {}) }, Date.now());
  }

  audit(action: AuditEventRecord['action'], a: AuditFields, eventId: string = randomUUID()): ProducerRecord[] {
    return auditOut(this.s.scope, auditEvent(this.s.m, action, a, Date.now(), eventId));
  }

  /** The PIPELINE_FINISHED audit event of a round the strategy refused (its code and details, as strings). */
  refused(refusal: FedStreamError, round: number, version: number, eventId?: string): ProducerRecord[] {
    const details = Object.fromEntries(Object.entries(refusal.details ?? {}).map(([k, v]) => [k, String(v)]));
    return this.audit('PIPELINE_FINISHED', { round, version, reason: refusal.message, details: { code: refusal.code, ...details } }, eventId);
  }

  async publishInitial(): Promise<void> {
    const s = this.s;
    const metrics = s.opts.evaluate ? await s.opts.evaluate(s.weights) : {};
    const v = versionRecord(s.m, { version: 0, parent: -1, round: 0, strategy: 'initial', weights: s.weights, contributors: [], metrics, rejected: 0, strategyState: s.opts.strategy.state?.(), privacy: s.opts.strategy.privacy?.() }, Date.now());
    const { records, start } = this.followUp(0, 0);
    await this.transact('publish initial version', [
      ...versionOut(s.scope, v),
      ...this.audit('VERSION_PUBLISHED', { version: 0, round: 0, details: { weightsSha256: v.weightsSha256, strategy: 'initial' } }),
      ...records,
    ], false);
    s.version = 0;
    s.opts.onVersion?.(v, { round: 0, ms: 0, participants: 0, rejected: 0 });
    s.events.emit({ type: 'version.published', version: 0, round: 0, at: Date.now() });
    if (!start) {
      s.finished = true; // the strategy refused round 1 (privacy budget); start() settles
      return;
    }
    this.hooks.openRound(start, 0);
    s.log.info({ version: 0, round: 1 }, 'published the initial version and started round 1');
  }

  async closeRound(why: string): Promise<void> {
    const s = this.s;
    const r = s.round!;
    const t0 = Date.now();
    const decided = performance.now();
    this.hooks.expireIncomplete(r);
    // A robust strategy past its memory budget re-reads its round from the log here; the others have nothing to settle.
    await r.aggregation.settle?.();
    const result = r.aggregation.finish(r.rejections);
    const metrics: Record<string, number> = { ...result.metrics, roundMs: t0 - r.startedAt };
    if (s.opts.evaluate) Object.assign(metrics, await s.opts.evaluate(result.weights));
    const nextVersion = s.version + 1;
    const contributors = [...r.contributors].map(([updateId, c]) => ({ updateId, nodeId: c.nodeId, numExamples: c.numExamples, weight: result.contributionWeights.get(updateId) ?? 0 }));
    const v = versionRecord(s.m, {
      version: nextVersion, parent: s.version, round: r.round, strategy: s.opts.strategy.name, weights: result.weights, contributors, metrics,
      rejected: rejectedCount(r), strategyState: s.opts.strategy.state?.(), privacy: s.opts.strategy.privacy?.(),
    }, Date.now());
    const out: ProducerRecord[] = [
      ...versionOut(s.scope, v),
      ...r.pending,
      ...this.audit('ROUND_CLOSED', { round: r.round, version: nextVersion, reason: why, details: {
        accepted: String(contributors.length), rejected: String(rejectedCount(r)), ...cappedDetails(result, s.m.limits.maxWeightShare), ...boundsDetails(r),
      } }),
      ...this.audit('VERSION_PUBLISHED', { round: r.round, version: nextVersion, details: { parentVersion: String(s.version), weightsSha256: v.weightsSha256, strategy: v.strategy, contributors: String(contributors.length) } }),
      ...controlOut(s.scope, this.control('CLOSE', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})),
    ];
    const { records, start } = this.followUp(r.round, nextVersion);
    out.push(...records);
    await this.transact(`close round ${r.round}`, out, true, r.round);
    for (const c of contributors) s.counted.set(c.updateId, nextVersion);
    s.version = nextVersion;
    s.decidedRound = r.round;
    s.roundsRun++;
    s.weights = result.weights;
    const info = { round: r.round, ms: Date.now() - r.startedAt, participants: contributors.length, rejected: rejectedCount(r) };
    s.log.info({ version: nextVersion, ...info, why, evalAccuracy: metrics.eval_accuracy }, roundLine(r.round, why, nextVersion, info, metrics.eval_accuracy));
    s.opts.onVersion?.(v, info);
    s.events.emit({ type: 'round.decided', round: r.round, outcome: 'closed', why, decisionSeconds: secondsSince(decided), roundSeconds: (t0 - r.startedAt) / 1000,
      accepted: contributors.length, rejected: info.rejected, version: nextVersion, ...(metrics.eval_accuracy === undefined ? {} : { evalAccuracy: metrics.eval_accuracy }) });
    s.events.emit({ type: 'version.published', version: nextVersion, round: r.round, at: Date.now() });
    this.hooks.afterDecision(start);
  }

  async extendRound(r: OpenRound, d: Extract<RoundDecision, { type: 'extend' }>): Promise<void> {
    const s = this.s;
    r.extensions = d.extensions;
    r.deadline = d.deadline;
    const c = this.control('EXTEND', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], { extension: String(r.extensions) });
    // No offsets here: the updates accepted so far live only in memory until the round closes.
    await this.transact(`extend round ${r.round}`, [...this.audit('ROUND_EXTENDED', { round: r.round, reason: d.why }), ...controlOut(s.scope, c)], false);
    s.log.warn({ round: r.round, accepted: r.acceptedIds.size, minUpdates: r.minUpdates, extension: r.extensions },
      `round ${r.round} below quorum at its deadline (${r.acceptedIds.size} of ${r.minUpdates} updates); extended (extension ${r.extensions})`);
    s.events.emit({ type: 'round.extended', round: r.round, extension: r.extensions, accepted: r.acceptedIds.size, minUpdates: r.minUpdates });
    this.hooks.armDeadline();
  }

  async abandonRound(r: OpenRound, reason: string): Promise<void> {
    const s = this.s;
    const decided = performance.now();
    this.hooks.expireIncomplete(r);
    const out: ProducerRecord[] = [...r.pending];
    for (const [updateId, c] of r.contributors) {
      out.push(...this.audit('UPDATE_REJECTED', { round: r.round, nodeId: c.nodeId, updateId, reason: `round ${r.round} abandoned: ${reason}`, details: { code: 'round_abandoned' } }));
    }
    out.push(...this.audit('ROUND_ABANDONED', { round: r.round, version: s.version, reason, details: boundsDetails(r) }));
    out.push(...controlOut(s.scope, this.control('ABANDON', r.round, r.baseVersion, r.deadline, [...r.selectedNodes], {})));
    const { records, start } = this.followUp(r.round, s.version);
    out.push(...records);
    await this.transact(`abandon round ${r.round}`, out, true, r.round);
    r.aggregation.dispose?.();
    s.decidedRound = r.round;
    s.roundsRun++;
    s.log.warn({ round: r.round, reason }, `round ${r.round} abandoned: ${reason}; version ${s.version} stays current`);
    s.events.emit({ type: 'round.decided', round: r.round, outcome: 'abandoned', why: reason, decisionSeconds: secondsSince(decided), roundSeconds: (Date.now() - r.startedAt) / 1000,
      accepted: r.acceptedIds.size, rejected: rejectedCount(r), version: s.version });
    this.hooks.afterDecision(start);
  }

  /**
   * What follows a decided round (or the initial version, round 0), as rounds.ts `next` says: the START of the next
   * round from `baseVersion`, or FINISH after the manifest's last round, each with its audit event.
   */
  followUp(decidedRound: number, baseVersion: number): { records: ProducerRecord[]; start?: RoundControlRecord } {
    const s = this.s;
    const step = nextStep(s.policy, decidedRound, Date.now());
    if (step.type === 'finish') {
      return { records: [...this.audit('PIPELINE_FINISHED', { round: decidedRound, version: baseVersion }), ...controlOut(s.scope, this.control('FINISH', decidedRound, baseVersion, Date.now(), [], {}))] };
    }
    const ctx = { round: step.round, baseVersion, knownNodes: s.opts.knownNodes ?? [] };
    // A strategy may refuse the round (central DP: it would exceed privacy.budget): audited, then FINISH.
    const refusal = s.opts.strategy.admitRound?.(ctx);
    if (refusal) {
      s.refusal = refusal;
      return { records: [
        ...this.refused(refusal, decidedRound, baseVersion),
        ...controlOut(s.scope, this.control('FINISH', decidedRound, baseVersion, Date.now(), [], {})),
      ] };
    }
    const plan = s.opts.strategy.configureRound(ctx);
    const alive = s.liveness?.book.alive(Date.now(), s.m.rounds.aliveWindowMs);
    const targets = roundTargets(s.policy, alive?.length);
    if (alive) s.log.info({ round: step.round, alive: alive.length, targetUpdates: targets.targetUpdates, manifestTarget: s.policy.targetUpdates }, `round ${step.round}: ${alive.length} nodes alive, target ${targets.targetUpdates} updates`);
    const start = this.control('START', step.round, baseVersion, step.deadline, plan.selectedNodes, encodeRoundConfig(plan.config), targets);
    const audit = this.audit('ROUND_STARTED', { round: step.round, version: baseVersion, details: { selectedNodes: plan.selectedNodes.join(','), deadline: String(start.deadline) } });
    return { records: [...audit, ...controlOut(s.scope, start)], start };
  }

  /**
   * Continues a finished pipeline whose manifest now asks for more rounds (rounds.count raised): one transaction with
   * a PIPELINE_CONTINUED audit event and the START of the round after the last decided one, from the last version
   * and with the strategy state stored with it, as if the FINISH had not been written.
   */
  async continueAfter(finishedRound: number): Promise<void> {
    const s = this.s;
    const refusal = s.opts.strategy.admitRound?.({ round: finishedRound + 1, baseVersion: s.version, knownNodes: s.opts.knownNodes ?? [] });
    if (refusal) {
      // Finished already (its FINISH is in the log): no second FINISH, but the refusal is audited like a running
      // pipeline's (issue 14: a round refused for privacy is an audit event). Its id is derived from the pipeline,
      // round and code, so a restart that refuses again writes the same event (the sink keeps one).
      s.refusal = refusal;
      const eventId = derivedEventId('continuation-refused', topicPrefix(s.m), String(finishedRound), refusal.code);
      await this.transact(`audit the refused continuation after round ${finishedRound}`, this.refused(refusal, finishedRound, s.version, eventId), false);
      s.log.warn({ version: s.version, round: finishedRound, code: refusal.code }, `the pipeline stays finished: ${refusal.message}`);
      s.finished = true;
      return;
    }
    const { records, start } = this.followUp(finishedRound, s.version);
    const reason = `rounds.count raised to ${s.m.rounds.count}: continuing after round ${finishedRound} from version ${s.version}`;
    await this.transact(`continue after round ${finishedRound}`, [
      ...this.audit('PIPELINE_CONTINUED', { round: finishedRound, version: s.version, reason, details: { finishedRound: String(finishedRound), roundsCount: String(s.m.rounds.count) } }),
      ...records,
    ], false);
    s.log.info({ version: s.version, round: finishedRound, roundsCount: s.m.rounds.count }, `the pipeline had finished; ${reason}`);
    this.hooks.openRound(start!, 0);
  }

  /** Starts the round after `decidedRound` outside a close (recovery found a version with no round after it). */
  async startAfter(decidedRound: number): Promise<void> {
    const { records, start } = this.followUp(decidedRound, this.s.version);
    await this.transact(start ? `start round ${start.round}` : 'finish', records, false);
    if (start) this.hooks.openRound(start, 0);
    else this.s.finished = true;
  }

  /** One transaction (transaction.ts), with the consumed offsets when `withOffsets`. */
  async transact(what: string, records: ProducerRecord[], withOffsets: boolean, round?: number): Promise<void> {
    const s = this.s;
    await transact({
      transport: s.t, slot: s.slot, transactionalId: s.transactionalId, groupId: s.groupId, log: s.log, what, records,
      offsets: withOffsets ? s.updates.offsetsToCommit() : [], beforeCommit: round !== undefined ? () => this.maybeFault('before-commit', round) : undefined,
    }).catch((err: unknown) => {
      // Also during start (recovery publishes), where no fail() rewords it: fenced says who took over.
      throw fencedError(err, { pipeline: topicPrefix(s.m), transactionalId: s.transactionalId, groupId: s.groupId }) ?? err;
    });
  }

  /** Fault injection (AggregatorOptions.fault) at `point` of `round`. */
  maybeFault(point: FaultPoint, round: number): void {
    faultAt(this.s.opts.fault, point, round, this.s.log);
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
