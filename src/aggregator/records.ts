/**
 * Builders for the records the aggregator writes: RoundControl, AuditEvent and ModelVersion (schemas/avro/), and
 * the Kafka records that carry them. Pure functions of the manifest and the values given: the clock reading and
 * the event ids are inputs, so that the I/O shell (service.ts) is the only place that reads either.
 */
import { createHash } from 'node:crypto';
import { isFedStreamError } from '../common/index.ts';
import { packTensors, weightsSha256, type AuditEventRecord, type ModelVersionRecord, type RoundControlRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import type { Manifest } from '../config/index.ts';
import type { PipelineTopics } from '../protocol/index.ts';
import { deadLetterRecords, toRecords, type Signer } from '../protocol/index.ts';
import type { ProducerRecord, TransportMessage } from '../transport/index.ts';
import type { Rejection } from './strategy.ts';

/** The `actor` of the aggregator's audit events. */
export const AGGREGATOR_ACTOR = 'aggregator';

/** What the records of one pipeline share. */
export interface RecordScope {
  manifest: Manifest;
  topics: PipelineTopics;
  /** The aggregator's key: control, version and audit records are signed with it (protocol/signing.ts). */
  signer?: Signer;
}

/**
 * A RoundControl record. `deadline` and `now` are ms since the epoch; `config` is the round config's wire map
 * (protocol/round-config.ts, empty for anything but START and EXTEND's `extension`).
 */
export function controlRecord(
  m: Manifest,
  c: { kind: RoundControlRecord['kind']; round: number; baseVersion: number; deadline: number; selectedNodes: string[]; config: Record<string, string>; targets?: { targetUpdates: number; minUpdates: number } },
  now: number,
): RoundControlRecord {
  return {
    tenant: m.tenant,
    pipeline: m.name,
    round: c.round,
    baseVersion: c.baseVersion,
    kind: c.kind,
    config: c.config,
    selectedNodes: c.selectedNodes,
    deadline: c.deadline,
    // A round's own targets (rounds.ts roundTargets) when given, for every record of the round; else the manifest's.
    minUpdates: c.targets?.minUpdates ?? Math.min(m.rounds.minUpdates, m.rounds.targetUpdates),
    targetUpdates: c.targets?.targetUpdates ?? m.rounds.targetUpdates,
    createdAt: now,
  };
}

/** The fields of an audit event a caller chooses; the rest come from the manifest. */
export type AuditFields = Partial<Pick<AuditEventRecord, 'round' | 'version' | 'nodeId' | 'updateId' | 'reason' | 'details'>>;

/** An AuditEvent by the aggregator, with id `eventId` at `now` (ms since the epoch). */
export function auditEvent(m: Manifest, action: AuditEventRecord['action'], a: AuditFields, now: number, eventId: string): AuditEventRecord {
  return {
    tenant: m.tenant,
    pipeline: m.name,
    eventId,
    eventTime: now,
    actor: AGGREGATOR_ACTOR,
    action,
    round: a.round ?? null,
    version: a.version ?? null,
    nodeId: a.nodeId ?? null,
    updateId: a.updateId ?? null,
    reason: a.reason ?? null,
    details: a.details ?? {},
  };
}

export interface VersionValues {
  version: number;
  /** -1 for the initial version. */
  parent: number;
  /** 0 for the initial version. */
  round: number;
  /** The strategy's name, or how the initial weights were made (`initial`). */
  strategy: string;
  weights: Weights;
  contributors: ModelVersionRecord['contributors'];
  metrics: Record<string, number>;
  rejected: number;
  /** The strategy's state after this version (Strategy.state()), or undefined for a stateless strategy. */
  strategyState?: Uint8Array;
  /** Central DP's guarantee after this version (Strategy.privacy()), or undefined without central DP. */
  privacy?: ModelVersionRecord['privacy'];
}

/** A ModelVersion: the weights packed as float32 with their sha256, and the lineage. `now`: ms since the epoch. */
export function versionRecord(m: Manifest, v: VersionValues, now: number): ModelVersionRecord {
  return {
    tenant: m.tenant,
    pipeline: m.name,
    version: v.version,
    parentVersion: v.parent,
    round: v.round,
    strategy: v.strategy,
    createdAt: now,
    tensors: packTensors(v.weights, { dtype: 'float32' }),
    weightsSha256: weightsSha256(v.weights),
    contributors: v.contributors,
    totalExamples: v.contributors.reduce((s, c) => s + Number(c.numExamples), 0),
    metrics: v.metrics,
    rejectedCount: v.rejected,
    modelSpec: JSON.stringify(m.model),
    strategyState: v.strategyState === undefined ? null : Buffer.from(v.strategyState.buffer, v.strategyState.byteOffset, v.strategyState.byteLength),
    privacy: v.privacy ?? null,
  };
}

/**
 * The Kafka records of a control record, keyed by its round (one partition, total order): usually one, but chunked
 * like any payload when larger than `topics.chunkSizeBytes` (a long selectedNodes list, a large round config).
 * Every chunk is written: readers reassemble them (protocol/wire.ts PayloadReader).
 */
export function controlOut(s: RecordScope, c: RoundControlRecord): ProducerRecord[] {
  return toRecords(s.topics.control, 'RoundControl', c, `round-${c.round}`, s.manifest.topics.chunkSizeBytes, {}, s.signer, s.manifest.limits.maxPayloadBytes);
}

/**
 * The Kafka records of an audit event (chunked when large: long details or reason), keyed by its node (or its action).
 * An event above `limits.maxPayloadBytes` (its reason or details quoting hostile input) is not refused, since the
 * trail must not lose it and a rejection must not stop the aggregator: its reason and detail values are clipped to
 * AUDIT_TEXT_CLIP characters each, and `details.clipped` says so with the size it had.
 */
export function auditOut(s: RecordScope, e: AuditEventRecord): ProducerRecord[] {
  const write = (x: AuditEventRecord) => toRecords(s.topics.audit, 'AuditEvent', x, x.nodeId ?? x.action, s.manifest.topics.chunkSizeBytes, {}, s.signer, s.manifest.limits.maxPayloadBytes);
  try {
    return write(e);
  } catch (err) {
    if (!isFedStreamError(err) || err.code !== 'RECORD_TOO_LARGE') throw err;
    const clip = (t: string) => (t.length > AUDIT_TEXT_CLIP ? `${t.slice(0, AUDIT_TEXT_CLIP)}…` : t);
    const details = Object.fromEntries(Object.entries(e.details).slice(0, 100).map(([k, v]) => [clip(k), clip(v)]));
    return write({ ...e, reason: e.reason === null ? null : clip(e.reason), details: { ...details, clipped: `from ${String(err.details.size)} bytes (limits.maxPayloadBytes ${String(err.details.limit)})` } });
  }
}

/** Characters kept of an audit event's reason and of each detail value when the whole event is above limits.maxPayloadBytes. */
export const AUDIT_TEXT_CLIP = 4096;

/** The Kafka records of a version (chunked when large), keyed `v<version>`. */
export function versionOut(s: RecordScope, v: ModelVersionRecord): ProducerRecord[] {
  return toRecords(s.topics.models, 'ModelVersion', v, `v${v.version}`, s.manifest.topics.chunkSizeBytes, {}, s.signer, s.manifest.limits.maxPayloadBytes);
}

/**
 * What a rejected update leaves behind: an UPDATE_REJECTED audit event with its reason and source, and its raw bytes
 * in the dead-letter topic for a person to inspect (chunked when large, like any payload). With `deadLetter` false
 * (the round's budget, `limits.maxDeadLetterBytesPerRound`, is spent) the audit event alone, saying so
 * (`details.deadLetter: omitted`).
 */
export function rejectionOut(s: RecordScope, round: number, rejection: Rejection, bytes: Buffer, msg: TransportMessage, now: number, eventId: string, deadLetter = true): ProducerRecord[] {
  const audit = auditEvent(s.manifest, 'UPDATE_REJECTED', {
    round: rejection.round ?? round,
    nodeId: rejection.nodeId,
    updateId: rejection.updateId,
    reason: rejection.reason,
    details: {
      code: rejection.code, sourceTopic: msg.topic, sourcePartition: String(msg.partition), sourceOffset: msg.offset, bytes: String(bytes.length),
      ...(deadLetter ? {} : { deadLetter: 'omitted', deadLetterLimit: String(s.manifest.limits.maxDeadLetterBytesPerRound) }),
    },
  }, now, eventId);
  if (!deadLetter) return auditOut(s, audit);
  return [...auditOut(s, audit), ...deadLetterRecords({
    topic: s.topics['dead-letter'], bytes, key: msg.key, code: rejection.code, reason: rejection.reason,
    source: `${msg.topic}/${msg.partition}/${msg.offset}`, chunkSize: s.manifest.topics.chunkSizeBytes,
  })];
}

/** A control or version record that recovery refused to act on (unsigned, forged): audited and dead-lettered. */
export interface RefusedRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  bytes: Buffer;
  /** A verdict code (`bad_signature`, `unsigned`...). */
  code: string;
  reason: string;
}

/**
 * An audit event id (UUID-shaped, 32 hex digits of SHA-256) derived from `parts`, for an event that a restart may
 * write again: the same parts give the same id, and the sink keeps one row per id.
 */
export function derivedEventId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * The audit event and dead letter of a record recovery refused. The event id is derived from the record's
 * coordinates, so that a second restart that refuses the same record again writes the same event (the sink keeps one).
 */
export function refusedOut(s: RecordScope, r: RefusedRecord, now: number): ProducerRecord[] {
  const where = `${r.topic}/${r.partition}/${r.offset}`;
  const eventId = derivedEventId('refused', where);
  const audit = auditEvent(s.manifest, 'MESSAGE_DEAD_LETTERED', {
    reason: r.reason,
    details: { code: r.code, sourceTopic: r.topic, sourcePartition: String(r.partition), sourceOffset: r.offset, bytes: String(r.bytes.length), refusedBy: 'recovery' },
  }, now, eventId);
  return [...auditOut(s, audit), ...deadLetterRecords({
    topic: s.topics['dead-letter'], bytes: r.bytes, key: r.key, code: r.code, reason: r.reason, source: where, actor: AGGREGATOR_ACTOR, chunkSize: s.manifest.topics.chunkSizeBytes,
  })];
}
