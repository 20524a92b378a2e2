/**
 * TypeScript shapes of the five wire records, written by hand to match `schemas/avro/*.avsc` (a unit test
 * checks the field names against the schemas). Field meanings, units and writers are in the schemas' `doc`s.
 *
 * Representation choices, the same on encode and decode:
 * - Avro `long` is a JS `number`, limited to ±MAX_LONG (2^53 − 1, Number.MAX_SAFE_INTEGER): values outside are
 *   refused on encode and decode rather than rounded. Versions, rounds, counts and ms timestamps fit easily.
 * - `timestamp-millis` is a plain `number` of milliseconds since the Unix epoch (UTC): no logical-type class is
 *   registered with avsc, so it neither produces nor expects `Date` objects.
 * - `bytes` is a `Buffer`; maps are plain objects; `["null", T]` unions are `T | null`.
 */

/** Largest magnitude of an Avro `long` FedStream reads or writes: the largest exact integer of a JS number. */
export const MAX_LONG = Number.MAX_SAFE_INTEGER;

export const RECORD_KINDS = ['ModelUpdate', 'ModelVersion', 'RoundControl', 'TelemetryEvent', 'AuditEvent'] as const;
/** The name of a record schema, without namespace (the full name is `io.fedstream.<kind>`). */
export type RecordKind = (typeof RECORD_KINDS)[number];

export const TENSOR_DTYPES = ['FLOAT32', 'FLOAT16', 'INT8'] as const;
export type TensorDtypeSymbol = (typeof TENSOR_DTYPES)[number];

export interface TensorRecord {
  name: string;
  /** Row-major dimensions; `[]` is a scalar. */
  shape: number[];
  dtype: TensorDtypeSymbol;
  /** INT8: value = int8 × scale. FLOAT32 / FLOAT16: 1. */
  scale: number;
  /** product(shape) × element size bytes, little-endian. */
  data: Buffer;
}

export interface ModelUpdateRecord {
  updateId: string;
  tenant: string;
  pipeline: string;
  nodeId: string;
  round: number;
  baseVersion: number;
  numExamples: number;
  tensors: TensorRecord[];
  metrics: Record<string, number>;
  trainingMs: number;
  /** ms since the epoch. */
  createdAt: number;
  sdkVersion: string;
  backend: string;
}

export interface ContributorRecord {
  updateId: string;
  nodeId: string;
  numExamples: number;
  weight: number;
}

export interface ModelVersionRecord {
  tenant: string;
  pipeline: string;
  version: number;
  /** -1 for the initial version. */
  parentVersion: number;
  round: number;
  strategy: string;
  /** ms since the epoch. */
  createdAt: number;
  tensors: TensorRecord[];
  weightsSha256: string;
  contributors: ContributorRecord[];
  totalExamples: number;
  metrics: Record<string, number>;
  rejectedCount: number;
  modelSpec: string;
  /**
   * The strategy's state after this version (`Strategy.state()`), opaque bytes in the strategy's own encoding; null
   * (or absent, when writing) for a stateless strategy. Versions written with schema v0 read as null.
   */
  strategyState?: Buffer | null;
  /** Central DP's (ε, δ) after this version (schema field `privacy`); null without central DP and for versions written with schemas v0, v1. */
  privacy?: PrivacyGuaranteeRecord | null;
}

/** ModelVersion's `privacy`: the (ε, δ)-DP guarantee of all versions up to this one (docs/strategies.md). */
export interface PrivacyGuaranteeRecord {
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  samplingRate: number;
  steps: number;
  clippingNorm: number;
  mechanism: string;
}

export const ROUND_CONTROL_KINDS = ['START', 'EXTEND', 'CLOSE', 'ABANDON', 'FINISH'] as const;
export type RoundControlKind = (typeof ROUND_CONTROL_KINDS)[number];

export interface RoundControlRecord {
  tenant: string;
  pipeline: string;
  round: number;
  baseVersion: number;
  kind: RoundControlKind;
  config: Record<string, string>;
  /** Empty: every node. */
  selectedNodes: string[];
  /** ms since the epoch. */
  deadline: number;
  minUpdates: number;
  targetUpdates: number;
  /** ms since the epoch. */
  createdAt: number;
}

export const TELEMETRY_KINDS = ['HEARTBEAT', 'TRAINING', 'EVALUATION', 'ERROR'] as const;
export type TelemetryKind = (typeof TELEMETRY_KINDS)[number];

export interface TelemetryEventRecord {
  tenant: string;
  pipeline: string;
  nodeId: string;
  kind: TelemetryKind;
  round: number | null;
  /** ms since the epoch. */
  eventTime: number;
  metrics: Record<string, number>;
  labels: Record<string, string>;
  message: string | null;
}

export const AUDIT_ACTIONS = [
  'UPDATE_ACCEPTED',
  'UPDATE_REJECTED',
  'ROUND_STARTED',
  'ROUND_CLOSED',
  'ROUND_EXTENDED',
  'ROUND_ABANDONED',
  'VERSION_PUBLISHED',
  'MESSAGE_DEAD_LETTERED',
  'PIPELINE_FINISHED',
  'PIPELINE_CONTINUED',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEventRecord {
  tenant: string;
  pipeline: string;
  eventId: string;
  /** ms since the epoch. */
  eventTime: number;
  actor: string;
  action: AuditAction;
  round: number | null;
  version: number | null;
  nodeId: string | null;
  updateId: string | null;
  /** Required for rejections, abandonments, extensions and dead-lettering. */
  reason: string | null;
  details: Record<string, string>;
}

/** Kind → record type, for `AvroCodec.encode` / `decode`. */
export interface RecordTypes {
  ModelUpdate: ModelUpdateRecord;
  ModelVersion: ModelVersionRecord;
  RoundControl: RoundControlRecord;
  TelemetryEvent: TelemetryEventRecord;
  AuditEvent: AuditEventRecord;
}

/** What `AvroCodec.decodeAny` returns: a record of whichever kind the fingerprint names. */
export type AnyRecord = { [K in RecordKind]: { kind: K; value: RecordTypes[K] } }[RecordKind];
