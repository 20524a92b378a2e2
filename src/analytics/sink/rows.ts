/**
 * Record → row: what the sink inserts for each record it reads, as pure functions (no ClickHouse, no Kafka).
 * Each row carries the pipeline's tenant and name, the record's fields in the table's column names, and the
 * Kafka coordinates of the record it came from (the tables' deduplication key: docs/clickhouse.md).
 *
 * Rows are JSONEachRow values: 64-bit integers as numbers, times as epoch milliseconds, non-finite floats and −0 as
 * the strings ClickHouse reads (`nan`, `inf`, `-inf`, `-0`). Weights are never part of a row: only their count.
 * Fields a record has and a table does not (a ModelVersion's `strategyState`, say) are left out.
 *
 * A value its column cannot hold as it is (a negative round for a UInt64, a count beyond 2^32 − 1 for a UInt32,
 * which ClickHouse would refuse or silently wrap) is a CodecError CODEC_INVALID naming the record's field and the
 * column: the sink dead-letters such a record whole instead of storing it changed.
 */
import type { AuditEventRecord, ModelUpdateRecord, ModelVersionRecord, RoundControlRecord, TelemetryEventRecord, TensorRecord } from '../../codec/index.ts';
import { CodecError } from '../../common/index.ts';

/** One row of a sink table, in its column names. */
export type Row = Record<string, unknown>;

/** The tables the sink writes, in the order it writes them. */
export const SINK_TABLES = ['telemetry_events', 'rounds', 'updates', 'audit_log', 'rejected_updates', 'model_versions', 'contributions'] as const;
export type SinkTable = (typeof SINK_TABLES)[number];

/** Whose rows: every row names its tenant and pipeline. */
export interface RowScope {
  tenant: string;
  pipeline: string;
}

/** Where a record was read: its topic, partition and offset (of its first chunk, for a chunked payload). */
export interface RowSource {
  topic: string;
  partition: number;
  offset: string;
}

/** Float64 for JSONEachRow: JSON has no NaN, infinity or −0 (JSON.stringify writes 0), ClickHouse reads them as these strings. */
export function float(v: number): number | string {
  if (Number.isFinite(v)) return Object.is(v, -0) ? '-0' : v;
  if (Number.isNaN(v)) return 'nan';
  return v > 0 ? 'inf' : '-inf';
}

/** Largest value of a UInt32 column. */
const UINT32_MAX = 0xffff_ffff;

/**
 * An integer column's value: `v` (a long of the record, at `field`) if the column (`column`, UInt64 or UInt32) holds
 * it exactly; otherwise CODEC_INVALID. Longs are within ±(2^53 − 1) (the codec's range), so only the sign and
 * UInt32's smaller range can fail, and a count computed from a record (`num_params`) beyond 2^53 − 1.
 */
function uint(v: number, field: string, column: string, bits: 32 | 64 = 64): number {
  const max = bits === 32 ? UINT32_MAX : Number.MAX_SAFE_INTEGER;
  if (Number.isInteger(v) && v >= 0 && v <= max) return v;
  throw new CodecError('CODEC_INVALID', `${field} is ${v}, which column ${column} (UInt${bits}) cannot hold: expected an integer in 0..${max}`, {
    details: { field, column, value: String(v) },
  });
}

/** A Kafka offset (decimal string) as a UInt64 column's number, exactly. */
function kafkaOffset(offset: string): number {
  const n = /^\d{1,16}$/.test(offset) ? Number(offset) : NaN;
  if (Number.isSafeInteger(n)) return n;
  throw new CodecError('CODEC_INVALID', `Kafka offset ${JSON.stringify(offset)} is not a decimal integer within 2^53 - 1`, { details: { field: '<offset>', column: 'kafka_offset', value: offset } });
}

/** A metrics map with every value through {@link float}. */
export function floatMap(m: Record<string, number> | undefined): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k] = float(Number(v));
  return out;
}

/**
 * Number of parameters in a set of tensors (the product of each shape, summed), exactly; CODEC_INVALID naming the
 * tensor's shape when a dimension is negative or the count exceeds 2^53 − 1.
 */
export function countParams(tensors: readonly TensorRecord[]): number {
  let n = 0n;
  tensors.forEach((t, i) => {
    let product = 1n;
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 0) uint(d, `tensors[${i}].shape`, 'num_params');
      product *= BigInt(d);
    }
    n += product;
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) uint(Number(n), `tensors[${i}].shape`, 'num_params');
  });
  return Number(n);
}

function optionalUint(v: number | null, field: string, column: string): number | null {
  return v === null ? null : uint(v, field, column);
}

/** `telemetry_events` row of a TelemetryEvent. */
export function telemetryRow(scope: RowScope, e: TelemetryEventRecord, s: RowSource): Row {
  // The hot path of ingest: fields written one by one, no object spreads (docs/performance.md, "Telemetry ingest").
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    node_id: e.nodeId,
    kind: e.kind,
    round: e.round === null ? null : uint(e.round, 'round', 'round'),
    event_time: Number(e.eventTime),
    metrics: floatMap(e.metrics),
    labels: e.labels ?? {},
    message: e.message ?? '',
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  };
}

/** `rounds` row of a RoundControl (START, CLOSE, EXTEND, ABANDON, FINISH alike). */
export function roundRow(scope: RowScope, c: RoundControlRecord, s: RowSource): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    round: uint(c.round, 'round', 'round'),
    base_version: uint(c.baseVersion, 'baseVersion', 'base_version'),
    kind: c.kind,
    deadline: Number(c.deadline),
    min_updates: uint(c.minUpdates, 'minUpdates', 'min_updates', 32),
    target_updates: uint(c.targetUpdates, 'targetUpdates', 'target_updates', 32),
    event_time: Number(c.createdAt),
    config: c.config ?? {},
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  };
}

/** `updates` row of a ModelUpdate as received (status `received`); `payloadBytes` is the record's encoded size. */
export function updateRow(scope: RowScope, u: ModelUpdateRecord, payloadBytes: number, s: RowSource): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    update_id: u.updateId,
    node_id: u.nodeId,
    round: uint(u.round, 'round', 'round'),
    base_version: uint(u.baseVersion, 'baseVersion', 'base_version'),
    num_examples: uint(u.numExamples, 'numExamples', 'num_examples'),
    num_params: countParams(u.tensors),
    payload_bytes: payloadBytes,
    metrics: floatMap(u.metrics),
    training_ms: uint(u.trainingMs, 'trainingMs', 'training_ms'),
    created_at: Number(u.createdAt),
    status: 'received',
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  };
}

/** `audit_log` row of an AuditEvent. */
export function auditRow(scope: RowScope, e: AuditEventRecord, s: RowSource): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    event_id: e.eventId,
    event_time: Number(e.eventTime),
    actor: e.actor,
    action: e.action,
    round: optionalUint(e.round, 'round', 'round'),
    version: optionalUint(e.version, 'version', 'version'),
    node_id: e.nodeId ?? '',
    update_id: e.updateId ?? '',
    reason: e.reason ?? '',
    details: e.details ?? {},
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  };
}

/**
 * `rejected_updates` row of an UPDATE_REJECTED audit event (undefined for any other action). Keyed by the
 * rejected record's coordinates when the aggregator names them; otherwise (a round abandoned with its
 * updates) by the audit record's own, which are just as unique and stable.
 */
export function rejectedUpdateRow(scope: RowScope, e: AuditEventRecord, s: RowSource): Row | undefined {
  if (e.action !== 'UPDATE_REJECTED') return undefined;
  const details = e.details ?? {};
  // The rejected record's coordinates when the aggregator names them well; otherwise the audit record's own.
  const sourcePartition = Number(details.sourcePartition);
  const hasSource = typeof details.sourceTopic === 'string' && details.sourceTopic !== '' && /^\d{1,16}$/.test(details.sourceOffset ?? '')
    && /^\d{1,10}$/.test(details.sourcePartition ?? '') && sourcePartition <= UINT32_MAX && Number.isSafeInteger(Number(details.sourceOffset));
  const rawSize = Number(details.bytes ?? 0);
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    update_id: e.updateId ?? '',
    node_id: e.nodeId ?? '',
    round: optionalUint(e.round, 'round', 'round'),
    reason: e.reason ?? '',
    reason_code: details.code || 'unknown',
    raw_size: Number.isSafeInteger(rawSize) && rawSize >= 0 ? rawSize : 0,
    event_time: Number(e.eventTime),
    ...(hasSource
      ? { kafka_topic: details.sourceTopic, kafka_partition: sourcePartition, kafka_offset: Number(details.sourceOffset) }
      : { kafka_topic: s.topic, kafka_partition: s.partition, kafka_offset: kafkaOffset(s.offset) }),
  };
}

/**
 * The update whose status an audit event decides, if any: UPDATE_ACCEPTED or UPDATE_REJECTED, whatever the code.
 * A `duplicate` decides too: the update it names under its node is counted as rejected unless that same update was
 * accepted (update_status.sql: acceptance wins), so every duplicate is visible in `updates` and `rejected_updates`.
 */
export function decidedUpdateId(e: AuditEventRecord): string | undefined {
  const decides = e.action === 'UPDATE_ACCEPTED' || e.action === 'UPDATE_REJECTED';
  return decides && e.updateId ? e.updateId : undefined;
}

/** `model_versions` row of a ModelVersion (parent -1, the initial model's, becomes NULL). */
export function modelVersionRow(scope: RowScope, v: ModelVersionRecord, s: RowSource): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    version: uint(v.version, 'version', 'version'),
    parent_version: v.parentVersion === -1 ? null : uint(v.parentVersion, 'parentVersion', 'parent_version'),
    round: uint(v.round, 'round', 'round'),
    strategy: v.strategy,
    weights_sha256: v.weightsSha256,
    total_examples: uint(v.totalExamples, 'totalExamples', 'total_examples'),
    num_contributors: v.contributors.length,
    rejected_count: uint(v.rejectedCount, 'rejectedCount', 'rejected_count', 32),
    metrics: floatMap(v.metrics),
    // Central DP's guarantee (schemas/clickhouse/006_privacy.sql); NULL without it.
    dp_epsilon: v.privacy ? float(Number(v.privacy.epsilon)) : null,
    dp_delta: v.privacy ? float(Number(v.privacy.delta)) : null,
    dp_noise_multiplier: v.privacy ? float(Number(v.privacy.noiseMultiplier)) : null,
    dp_sampling_rate: v.privacy ? float(Number(v.privacy.samplingRate)) : null,
    dp_steps: v.privacy ? uint(v.privacy.steps, 'privacy.steps', 'dp_steps') : null,
    dp_mechanism: v.privacy?.mechanism ?? '',
    created_at: Number(v.createdAt),
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  };
}

/** `contributions` rows of a ModelVersion: one per contributor, in the record's order. */
export function contributionRows(scope: RowScope, v: ModelVersionRecord, s: RowSource): Row[] {
  const version = uint(v.version, 'version', 'version');
  const round = uint(v.round, 'round', 'round');
  return v.contributors.map((c, i) => ({
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    version,
    update_id: c.updateId,
    node_id: c.nodeId,
    round,
    num_examples: uint(c.numExamples, `contributors[${i}].numExamples`, 'num_examples'),
    weight: float(Number(c.weight)),
    created_at: Number(v.createdAt),
    kafka_topic: s.topic,
    kafka_partition: s.partition,
    kafka_offset: kafkaOffset(s.offset),
  }));
}

/** What the sink knows of a record it could not read. */
export interface Unreadable extends RowSource {
  /** The error code (e.g. `CODEC_INVALID`). */
  code: string;
  message: string;
  /** Size of the raw bytes. */
  rawSize: number;
  /** The Kafka record's timestamp (epoch ms). */
  eventTime: number;
}

/**
 * `rejected_updates` row of a record the sink dead-letters (round NULL, the record's coordinates): `unreadable`
 * (it could not be decoded) or `refused` (its writer's key did not sign it; `code` is the verdict).
 */
export function unreadableRow(scope: RowScope, u: Unreadable, what: 'unreadable' | 'refused' = 'unreadable'): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    round: null,
    reason: `${what} record on ${u.topic}: ${u.message}`.slice(0, 2000),
    reason_code: u.code,
    raw_size: u.rawSize,
    event_time: u.eventTime,
    kafka_topic: u.topic,
    kafka_partition: u.partition,
    kafka_offset: Number(u.offset),
  };
}

/** A status row's metrics as read back: numbers only (a null or string would change the value the row replaces). */
function exactMetrics(m: unknown, updateId: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries((m ?? {}) as Record<string, unknown>)) {
    if (typeof v !== 'number') {
      throw new CodecError('CODEC_INVALID', `metric ${k} of update ${updateId} was read back as ${JSON.stringify(v)}, not a number: its status row would change it`, {
        details: { field: `metrics.${k}`, column: 'metrics', value: String(v) },
      });
    }
    out[k] = v;
  }
  return out;
}

/**
 * `updates` status row from a row of the `update_status` query (the update read back, with its decided
 * status): the same row as received, with `status` accepted or rejected. The query's metrics come back as the
 * numbers stored (runQuery decodes NaN, ±Infinity and -0 exactly), and go back through {@link floatMap}, so the
 * status row holds bit for bit the metrics of the row it replaces (issue 13: `loss = +Inf` once came back as
 * JSON null and was written as `nan`).
 */
export function statusRow(scope: RowScope, r: Row): Row {
  return {
    tenant: scope.tenant,
    pipeline: scope.pipeline,
    update_id: r.update_id,
    node_id: r.node_id,
    round: Number(r.round),
    base_version: Number(r.base_version),
    num_examples: Number(r.num_examples),
    num_params: Number(r.num_params),
    payload_bytes: Number(r.payload_bytes),
    metrics: floatMap(exactMetrics(r.metrics, String(r.update_id))),
    training_ms: Number(r.training_ms),
    created_at: Number(r.created_at),
    status: r.status,
    kafka_topic: r.kafka_topic,
    kafka_partition: Number(r.kafka_partition),
    kafka_offset: Number(r.kafka_offset),
  };
}
