/**
 * The attacker's kit for the adversarial suite: what a participant holding mallory's key (a registered node, an
 * insider) and an unregistered key can put on a pipeline's topics, built only from the public protocol and codec
 * APIs. Chunk-level attacks are raw Kafka records whose chunk headers are written by hand from CHUNK_HEADERS, so that
 * they do not depend on how the codec's own splitter or reassembler work.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  CHUNK_HEADERS, packTensors, unpackTensors, weightsSha256,
  type ModelUpdateRecord, type ModelVersionRecord, type RecordKind, type RecordTypes, type RoundControlRecord, type TensorRecord, type Weights,
} from '../../src/codec/index.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import {
  SIGNATURE_HEADERS, canonicalBytes, codec, sha256Hex, toRecords,
  type PipelineTopics, type Signer, type UpdateBinding,
} from '../../src/protocol/index.ts';
import type { ProducerRecord, TransportMessage } from '../../src/transport/index.ts';

/** The topics an attacker writes (dead-letter is only ever read). */
export type AttackTopic = 'updates' | 'control' | 'models' | 'audit' | 'telemetry';

/** The round open when an attack is sent, as the attacker read it from the (verified) control and models topics. */
export interface RoundView {
  control: RoundControlRecord;
  round: number;
  baseVersion: number;
  base: ModelVersionRecord;
  weights: Weights;
}

/** An honest node's update as the attacker saw it on the updates topic: its value and its exact Kafka record. */
export interface SeenUpdate {
  update: ModelUpdateRecord;
  message: TransportMessage;
}

export interface AttackContext {
  m: Manifest;
  topics: PipelineTopics;
  view: RoundView;
  /** mallory's own key: a registered node of the pipeline. */
  mallory: Signer;
  /** A key no participant holds. */
  outsider: Signer;
  /** The registered key ids (public: the manifest lists the keys), by participant. */
  keyIds: Readonly<Record<string, string>>;
  /** Honest updates seen so far on the updates topic, oldest first. */
  honest: readonly SeenUpdate[];
  /** A unique tag for this attack (used in keys and ids so that its verdict can be found). */
  tag: string;
}

/** One payload's Kafka records (several for a chunk set): a unit of verdict. */
export type Unit = ProducerRecord[];

/** What an attack put on the wire, to look its verdict up by. */
export interface Launch {
  units: Unit[];
  /** Update ids the attack carries: they must never be counted. */
  updateIds?: string[];
  /** Weights SHA-256 of forged versions: never adopted. */
  forgedWeights?: string[];
  /** Event ids of forged audit events: never stored as the aggregator's. */
  forgedEvents?: string[];
}

// ------------------------------------------------------------------------------------------------ records

/** A well-formed update from mallory for the open round: base weights, 10 examples. Valid unless `over` spoils it. */
export function malloryUpdate(ctx: AttackContext, over: Partial<ModelUpdateRecord> = {}, weights: Weights = ctx.view.weights): ModelUpdateRecord {
  return {
    updateId: randomUUID(),
    tenant: ctx.m.tenant,
    pipeline: ctx.m.name,
    nodeId: 'mallory',
    round: ctx.view.round,
    baseVersion: ctx.view.baseVersion,
    numExamples: 10,
    tensors: packTensors(weights),
    metrics: { loss: 1, accuracy: 0.5 },
    trainingMs: 5,
    createdAt: Date.now(),
    sdkVersion: 'adversary',
    backend: 'cpu',
    ...over,
  };
}

/** The encoded record as Kafka records for its topic (chunked if large), signed by `signer` when given. */
export function records<K extends RecordKind>(ctx: AttackContext, topic: AttackTopic, kind: K, value: RecordTypes[K], signer?: Signer, key = ctx.tag): Unit {
  return toRecords(ctx.topics[topic], kind, value, key, ctx.m.topics.chunkSizeBytes, {}, signer);
}

/** An update signed by `signer` over a binding the attacker chooses (e.g. one whose tensors cannot be unpacked). */
export function signedByHand(ctx: AttackContext, signer: Signer, value: ModelUpdateRecord, tensorsSha256: string): Unit {
  const payload = codec().encode('ModelUpdate', value);
  const binding: UpdateBinding = {
    tenant: value.tenant, pipeline: value.pipeline, nodeId: value.nodeId, round: value.round, baseVersion: value.baseVersion, updateId: value.updateId, tensorsSha256,
  };
  const signature = signer.sign(canonicalBytes('ModelUpdate', binding, sha256Hex(payload))).toString('hex');
  return [{ topic: ctx.topics.updates, key: ctx.tag, value: payload, headers: { [SIGNATURE_HEADERS.signature]: signature, [SIGNATURE_HEADERS.keyId]: signer.keyId } }];
}

/** The records with their key-id header replaced: signed by one key, claiming another's id. */
export function claimingKeyId(unit: Unit, keyId: string): Unit {
  return unit.map((r) => ({ ...r, headers: { ...r.headers, [SIGNATURE_HEADERS.keyId]: keyId } }));
}

/** Raw bytes on a topic, under the attack's key. */
export function raw(ctx: AttackContext, topic: AttackTopic, value: Buffer, headers: Record<string, string> = {}): Unit {
  return [{ topic: ctx.topics[topic], key: ctx.tag, value, headers }];
}

export interface ChunkHeaderValues {
  id: string;
  index: number | string;
  count: number | string;
  sha256: string;
  size: number | string;
}

/** One chunk with hand-written chunk headers (names from CHUNK_HEADERS). */
export function chunk(ctx: AttackContext, topic: AttackTopic, value: Buffer, h: ChunkHeaderValues, key = ctx.tag, extra: Record<string, string> = {}): ProducerRecord {
  return {
    topic: ctx.topics[topic],
    key,
    value,
    headers: {
      ...extra,
      [CHUNK_HEADERS.id]: h.id,
      [CHUNK_HEADERS.index]: String(h.index),
      [CHUNK_HEADERS.count]: String(h.count),
      [CHUNK_HEADERS.sha256]: h.sha256,
      [CHUNK_HEADERS.size]: String(h.size),
    },
  };
}

/** The encoded bytes of a record. */
export function encoded<K extends RecordKind>(kind: K, value: RecordTypes[K]): Buffer {
  return codec().encode(kind, value);
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Weights with every value replaced by `f(value, index)` of tensor `which` (all tensors when undefined). */
export function mapWeights(w: Weights, f: (x: number, i: number) => number, which?: number): Weights {
  return w.map((t, k) => (which !== undefined && k !== which ? t : { ...t, values: Float32Array.from(t.values, f) }));
}

/** Tensor records whose first tensor's FLOAT32 data holds 2 bytes per element instead of 4. */
export function shortDataTensors(w: Weights): TensorRecord[] {
  const t = packTensors(w);
  return t.map((r, k) => (k === 0 ? { ...r, data: r.data.subarray(0, r.data.length / 2) } : r));
}

/** An update id computed from public values only, the way a predictable id would be. */
export function predictableUpdateId(m: Manifest, nodeId: string, round: number): string {
  const h = createHash('sha256').update(`${m.tenant}/${m.name}/${nodeId}/${round}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A forged version: the base model with its weights replaced, a correct weights SHA-256 and plausible lineage. */
export function forgedVersion(ctx: AttackContext, fill: number, version = ctx.view.baseVersion + 1): ModelVersionRecord {
  const evil = mapWeights(ctx.view.weights, () => fill);
  return {
    ...ctx.view.base,
    version,
    parentVersion: version - 1,
    round: version,
    tensors: packTensors(evil),
    weightsSha256: weightsSha256(evil),
    contributors: [{ updateId: randomUUID(), nodeId: 'mallory', numExamples: 1_000_000, weight: 1 }],
    totalExamples: 1_000_000,
    metrics: { eval_accuracy: 0.99 },
    createdAt: Date.now(),
  };
}

/** A control record for this pipeline, as the aggregator would write it. */
export function control(ctx: AttackContext, over: Partial<RoundControlRecord>): RoundControlRecord {
  const now = Date.now();
  return { ...ctx.view.control, createdAt: now, deadline: now + 60_000, ...over };
}

export function randomPayload(n: number): Buffer {
  return randomBytes(n);
}

/** The weights of a version record. */
export function weightsOf(v: ModelVersionRecord): Weights {
  return unpackTensors(v.tensors);
}
