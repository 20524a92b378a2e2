/**
 * The aggregator's intake of the updates topic: each message reassembled into a payload (chunked payloads, wire.ts),
 * decoded, checked for its node's signature (DESIGN.md invariant 6) and validated against the open round
 * (validate.ts), then folded into the strategy's aggregation or rejected. A rejection is held with the round until
 * its transaction: audited, and its raw bytes dead-lettered within the round's budget (limits.*PerRound).
 */
import { randomUUID } from 'node:crypto';
import { ChunkedPayloadError, unpackTensors, weightsSha256, type ModelUpdateRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import { secondsSince } from '../common/index.ts';
import { decodeView, verifyRecord, type Payload, type PayloadFailure } from '../protocol/index.ts';
import type { TransportMessage } from '../transport/index.ts';
import { rejectionOut } from './records.ts';
import { decide } from './rounds.ts';
import type { Rejection } from './strategy.ts';
import { policyState, validationState, type OpenRound } from './open-round.ts';
import type { RoundPublisher } from './publication.ts';
import type { AggregatorRun } from './run.ts';
import { saneMetrics, validateUpdate, validationLimits } from './validate.ts';

export class UpdateIntake {
  constructor(private readonly s: AggregatorRun, private readonly publisher: RoundPublisher) {}

  async onMessage(msg: TransportMessage): Promise<void> {
    const s = this.s;
    s.updates.consumedMessage(msg);
    const r = s.round;
    if (!r || s.finished) return;
    const got = s.updates.reader.accept(msg);
    for (const f of got.failures) this.rejectUnreadable(r, f, msg);
    if (got.payload) await this.onPayload(r, got.payload, msg);
  }

  /** Expires incomplete payloads gone silent (limits.maxPendingAgeMs) before a round's offsets commit: they no longer hold them back. */
  expireIncomplete(r: OpenRound): void {
    for (const f of this.s.updates.reader.expire()) this.rejectUnreadable(r, f);
  }

  /** Audits (and dead-letters) what the reader refused or dropped, under the source of its first chunk. */
  private rejectUnreadable(r: OpenRound, f: PayloadFailure, msg?: TransportMessage): void {
    const first = f.error instanceof ChunkedPayloadError ? f.error.messages[0] : undefined;
    const key = first?.key ?? msg?.key ?? null;
    const src: TransportMessage = {
      topic: this.s.topics.updates, partition: first?.partition ?? msg?.partition ?? 0, offset: first?.offset ?? msg?.offset ?? '0',
      key: key === null || key === undefined ? null : Buffer.from(key), value: null, headers: {}, timestamp: msg?.timestamp ?? Date.now(),
    };
    this.reject(r, { updateId: null, nodeId: src.key?.toString('utf8') ?? null, round: null, code: 'undecodable', reason: `${f.error.message} (${src.topic}[${src.partition}]@${src.offset})` }, f.bytes, src);
  }

  private async onPayload(r: OpenRound, p: Payload, msg: TransportMessage): Promise<void> {
    const s = this.s;
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
    const state = validationState(s.m, r, s.counted);
    const candidate = { ...update, round: Number(update.round), baseVersion: Number(update.baseVersion), numExamples: Number(update.numExamples), weights };
    // Who said it comes first: an update not signed by its node's key is never validated against the round, so it
    // can neither count nor take an id or a node's place in the round (DESIGN.md invariant 6).
    const rejection = this.unattributed(update, p, weights) ?? validateUpdate(candidate, state, s.weights, validationLimits(s.m.limits));
    const verdict = decide(s.policy, policyState(r, s.updates.catchingUp), rejection ? { type: 'validated', rejection } : { type: 'validated' });
    if (verdict.type === 'reject') {
      r.aggregation.release?.(into);
      this.reject(r, verdict.rejection, p.bytes, msg);
      return;
    }
    // Out-of-range metrics are neither averaged nor published (limits.maxMetricAbs); the update itself stays.
    const metrics = saneMetrics(update.metrics, s.m.limits.maxMetricAbs);
    if (metrics.dropped.length) s.log.info({ round: r.round, nodeId: update.nodeId, updateId: update.updateId, dropped: metrics.dropped }, 'metrics out of range; not averaged');
    const foldStart = performance.now();
    r.aggregation.fold({ updateId: update.updateId, nodeId: update.nodeId, round: r.round, numExamples: candidate.numExamples, weights, metrics: metrics.kept, source: { partition: p.partition, offset: p.firstOffset } });
    s.events.emit({ type: 'update.accepted', round: r.round, nodeId: update.nodeId, foldSeconds: secondsSince(foldStart) });
    r.acceptedIds.add(update.updateId);
    r.contributedNodes.add(update.nodeId);
    r.contributors.set(update.updateId, { nodeId: update.nodeId, numExamples: candidate.numExamples });
    r.pending.push(...this.publisher.audit('UPDATE_ACCEPTED', { round: r.round, nodeId: update.nodeId, updateId: update.updateId, details: {
      numExamples: String(candidate.numExamples), offset: p.firstOffset, partition: String(p.partition),
      ...(metrics.dropped.length ? { metricsDropped: metrics.dropped.join(','), metricsLimit: String(s.m.limits.maxMetricAbs) } : {}),
    } }));
    s.log.debug({ round: r.round, nodeId: update.nodeId, updateId: update.updateId, accepted: r.acceptedIds.size }, 'update accepted');
    this.publisher.maybeFault('mid-round', r.round);
    const then = decide(s.policy, policyState(r, s.updates.catchingUp), { type: 'accepted' });
    if (then.type === 'close') await this.publisher.closeRound(then.why);
  }

  /** The rejection of an update that its node's key did not sign (protocol/participants.ts `verifyRecord`), else null. */
  private unattributed(update: ModelUpdateRecord, p: Payload, weights: Weights): Rejection | null {
    if (!this.s.registry.verifies('ModelUpdate')) return null;
    const verdict = verifyRecord(this.s.registry, 'ModelUpdate', update, p.bytes, p.headers, { tensorsSha256: weightsSha256(weights) });
    return verdict.ok ? null : { updateId: update.updateId, nodeId: update.nodeId, round: Number(update.round), code: verdict.code, reason: verdict.reason };
  }

  private reject(r: OpenRound, rejection: Rejection, bytes: Buffer, msg: TransportMessage): void {
    const s = this.s;
    s.events.emit({ type: 'update.rejected', round: r.round, nodeId: rejection.nodeId, code: rejection.code });
    // Held in memory until the round's transaction: past limits.maxRejectionsPerRound only counted, by code.
    if (r.rejections.length >= s.m.limits.maxRejectionsPerRound) {
      if (r.notItemized.size === 0) s.log.warn({ round: r.round, limit: s.m.limits.maxRejectionsPerRound }, 'too many rejections in one round; the rest are counted by code in the round\'s closing audit event');
      r.notItemized.set(rejection.code, (r.notItemized.get(rejection.code) ?? 0) + 1);
      return;
    }
    r.rejections.push(rejection);
    s.log.info({ round: r.round, nodeId: rejection.nodeId, updateId: rejection.updateId, code: rejection.code, reason: rejection.reason }, 'update rejected');
    // Raw bytes wait in memory for the round's transaction: at most limits.maxDeadLetterBytesPerRound of them.
    const keep = r.deadLetterBytes + bytes.length <= s.m.limits.maxDeadLetterBytesPerRound;
    if (keep) r.deadLetterBytes += bytes.length;
    else if (r.deadLetterOmitted++ === 0) s.log.warn({ round: r.round, bytes: bytes.length, limit: s.m.limits.maxDeadLetterBytesPerRound }, 'dead-letter budget of the round spent; its further rejections are audited without their bytes');
    r.pending.push(...rejectionOut(s.scope, r.round, rejection, bytes, msg, Date.now(), randomUUID(), keep));
  }
}
