/**
 * The attack table of the adversarial suite (docs/adversarial.md lists it for people). Each entry says what it
 * sends, into which topic, in which round, and what must happen. `judge` says how its verdict is found:
 *
 * - `update`: an update the aggregator must reject: an UPDATE_REJECTED (or MESSAGE_DEAD_LETTERED) audit event signed
 *   by the aggregator names one of its records' offsets, for every payload it sent; its update ids are never counted.
 * - `metric`: mallory's own contribution with absurd metrics: the metrics must be refused (not averaged, audited on the
 *   aggregator's UPDATE_ACCEPTED event or by rejecting the update); every published metric stays finite and sane.
 * - `record`: a record of control, models, audit or telemetry: refused by its readers (the sink's row in ClickHouse
 *   `rejected_updates`, a node's MESSAGE_REFUSED log line, or the aggregator's recovery audit) and never acted on.
 */
import { randomUUID } from 'node:crypto';
import { packTensors, type AuditEventRecord, type TelemetryEventRecord } from '../../src/codec/index.ts';
import { SIGNATURE_HEADERS } from '../../src/protocol/index.ts';
import {
  chunk, claimingKeyId, control, encoded, forgedVersion, malloryUpdate, mapWeights, predictableUpdateId, randomPayload, raw, records, sha256, shortDataTensors,
  signedByHand,
  type AttackContext, type AttackTopic, type Launch, type Unit,
} from './kit.ts';

export type Judge = 'update' | 'metric' | 'record';

export interface Attack {
  name: string;
  topic: AttackTopic;
  /** The round during which it is sent. */
  wave: 1 | 2 | 3;
  judge: Judge;
  /**
   * Sent after the other attacks of its wave: an insider's update that a missing check would count, which would then
   * make mallory's later attacks of that round fail as node_already_contributed and hide whether their own check works.
   */
  last?: boolean;
  /** What it sends, and what must happen (for docs/adversarial.md and the failure messages). */
  sends: string;
  expected: string;
  launch(ctx: AttackContext): Launch;
}

/** Dangling sets: 1,025 small ones (the row), and a few hundred of 64 KB (scaled down from 4,000). */
export const DANGLING_SMALL = 1025;
export const DANGLING_64K = 300;

const one = (units: Unit[], updateIds?: string[]): Launch => ({ units, ...(updateIds ? { updateIds } : {}) });

/** A signed, valid-but-for-`over` update from mallory. */
function malloryAttack(ctx: AttackContext, over: Parameters<typeof malloryUpdate>[1], weights?: Parameters<typeof malloryUpdate>[2]): Launch {
  const u = malloryUpdate(ctx, over, weights);
  return one([records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory)], [u.updateId]);
}

function auditEvent(ctx: AttackContext, over: Partial<AuditEventRecord>): AuditEventRecord {
  return {
    tenant: ctx.m.tenant, pipeline: ctx.m.name, eventId: randomUUID(), eventTime: Date.now(), actor: 'aggregator', action: 'UPDATE_ACCEPTED',
    round: ctx.view.round, version: null, nodeId: 'mallory', updateId: randomUUID(), reason: null, details: { numExamples: '1000000' }, ...over,
  };
}

function telemetry(ctx: AttackContext): TelemetryEventRecord {
  return { tenant: ctx.m.tenant, pipeline: ctx.m.name, nodeId: 'mallory', kind: 'HEARTBEAT', round: null, eventTime: Date.now(), metrics: { uptimeS: 1 }, labels: {}, message: null };
}

export const ATTACKS: readonly Attack[] = [
  // ------------------------------------------------------------------ the table
  {
    name: 'chunk-count bomb', topic: 'updates', wave: 1, judge: 'update',
    sends: 'one 64-byte chunk whose headers declare 4,294,967,295 chunks of a 100-byte payload',
    expected: 'refused before anything is allocated (CODEC_LIMIT / CODEC_INVALID), audited as undecodable; the aggregator lives on',
    launch: (ctx) => one([[chunk(ctx, 'updates', Buffer.alloc(64, 'x'), { id: `${ctx.tag}-bomb`, index: 0, count: 4294967295, sha256: 'a'.repeat(64), size: 100 })]]),
  },
  {
    name: '1,025 dangling small chunk sets', topic: 'updates', wave: 1, judge: 'update',
    sends: `${DANGLING_SMALL} chunk sets (count 2, size 2000) whose second chunk never comes, ~100 KB in all`,
    expected: 'each evicted or expired (bounded count and bytes), audited and dead-lettered; offsets move past them',
    launch: (ctx) => one(Array.from({ length: DANGLING_SMALL }, (_, i) => [chunk(ctx, 'updates', Buffer.alloc(64, 'd'), { id: `dangling-${i}`, index: 0, count: 2, sha256: 'b'.repeat(64), size: 2000 })])),
  },
  {
    name: `${DANGLING_64K} dangling 64 KB chunk sets`, topic: 'updates', wave: 1, judge: 'update',
    sends: `${DANGLING_64K} chunk sets whose first 64 KB chunk arrives and second never does (~19 MB; the issue's 4,000 scaled down)`,
    expected: 'bounded by limits.maxPendingPayloads / maxPendingBytes, evicted or expired, each audited',
    launch: (ctx) => {
      const value = randomPayload(65536);
      return one(Array.from({ length: DANGLING_64K }, (_, i) => [chunk(ctx, 'updates', value, { id: `${ctx.tag}-${i}`, index: 0, count: 2, sha256: 'c'.repeat(64), size: 131072 })]));
    },
  },
  {
    name: 'numExamples 1e12', topic: 'updates', wave: 1, judge: 'update', last: true,
    sends: 'mallory\'s signed update claiming 10^12 examples (it would take ~100% of the round\'s weight)',
    expected: 'rejected bad_num_examples (limits.maxExamplesPerUpdate)',
    launch: (ctx) => malloryAttack(ctx, { numExamples: 1e12 }, mapWeights(ctx.view.weights, (x) => x + 0.01)),
  },
  {
    name: 'update under another node\'s id', topic: 'updates', wave: 1, judge: 'update',
    sends: 'an update with nodeId node-2, signed with mallory\'s key',
    expected: 'rejected wrong_signer: a node speaks only for itself',
    launch: (ctx) => malloryAttack(ctx, { nodeId: 'node-2' }),
  },
  {
    name: 'pre-empting a node\'s update id', topic: 'updates', wave: 1, judge: 'update',
    sends: 'an update for node-3 under an id computed from public values (tenant, pipeline, node, round), sent before node-3\'s',
    expected: 'rejected (wrong_signer); node-3\'s own update (random 128-bit id) is accepted',
    launch: (ctx) => malloryAttack(ctx, { nodeId: 'node-3', updateId: predictableUpdateId(ctx.m, 'node-3', ctx.view.round) }),
  },
  {
    name: 'forged RoundControl FINISH (unsigned)', topic: 'control', wave: 2, judge: 'record',
    sends: 'a FINISH for the open round, no signature',
    expected: 'refused (unsigned) by nodes and the sink, never acted on: nodes train every round',
    launch: (ctx) => one([records(ctx, 'control', 'RoundControl', control(ctx, { kind: 'FINISH' }), undefined, `round-${ctx.view.round}`)]),
  },
  {
    name: 'forged ModelVersion with a correct sha256', topic: 'models', wave: 2, judge: 'record',
    sends: 'version base+1 with weights all 0.25 and their correct weightsSha256, signed with mallory\'s node key',
    expected: 'refused wrong_signer by nodes and the sink; never adopted, never stored as a version',
    launch: (ctx) => {
      const v = forgedVersion(ctx, 0.25);
      return { units: [records(ctx, 'models', 'ModelVersion', v, ctx.mallory, `v${v.version}`)], forgedWeights: [v.weightsSha256] };
    },
  },
  {
    name: 'metrics like loss 1e308', topic: 'updates', wave: 2, judge: 'metric',
    sends: 'mallory\'s otherwise valid contribution with metrics loss 1e308 and accuracy 1e300',
    expected: 'the metrics are neither averaged nor published (audited on the update\'s event); every version\'s metrics stay finite',
    launch: (ctx) => malloryAttack(ctx, { metrics: { loss: 1e308, accuracy: 1e300 } }),
  },
  // ------------------------------------------------------------------ updates, the kinds handled before
  {
    name: 'wrong round (future)', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update for round 99',
    expected: 'rejected (wrong round)',
    launch: (ctx) => malloryAttack(ctx, { round: 99 }),
  },
  {
    name: 'stale round', topic: 'updates', wave: 2, judge: 'update',
    sends: 'mallory\'s signed update for the previous round',
    expected: 'rejected (wrong round)',
    launch: (ctx) => malloryAttack(ctx, { round: ctx.view.round - 1 }),
  },
  {
    name: 'wrong base version', topic: 'updates', wave: 2, judge: 'update',
    sends: 'mallory\'s signed update claiming base version +7',
    expected: 'rejected (wrong base version)',
    launch: (ctx) => malloryAttack(ctx, { baseVersion: ctx.view.baseVersion + 7 }),
  },
  {
    name: 'replay of an earlier real update', topic: 'updates', wave: 2, judge: 'update',
    sends: 'the exact Kafka record (value and signature headers) of an honest node\'s round-1 update, again in round 2',
    expected: 'rejected (wrong round or duplicate); never counted twice',
    launch: (ctx) => {
      const seen = ctx.honest.find((h) => h.update.round === 1)!;
      return one([[{ topic: ctx.topics.updates, key: seen.message.key, value: seen.message.value!, headers: { ...seen.message.headers } }]]);
    },
  },
  {
    name: 'duplicate update id', topic: 'updates', wave: 2, judge: 'update',
    sends: 'mallory\'s own signed, otherwise valid update reusing the id of an honest update of the open round',
    expected: 'rejected duplicate; the honest update stays counted once',
    launch: (ctx) => {
      const seen = ctx.honest.filter((h) => h.update.round === ctx.view.round).at(-1)!;
      const u = malloryUpdate(ctx, { updateId: seen.update.updateId });
      return one([records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory)]);
    },
  },
  {
    name: 'second update for the same (node, round)', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a second signed, valid update from mallory (new id) in a round she already contributed to',
    expected: 'rejected node_already_contributed',
    launch: (ctx) => malloryAttack(ctx, {}),
  },
  {
    name: 'NaN in tensors', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update with one NaN weight',
    expected: 'rejected (non-finite)',
    launch: (ctx) => malloryAttack(ctx, {}, mapWeights(ctx.view.weights, (x, i) => (i === 3 ? NaN : x), 0)),
  },
  {
    name: 'Infinity in tensors', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update with +Infinity weights',
    expected: 'rejected (non-finite)',
    launch: (ctx) => malloryAttack(ctx, {}, mapWeights(ctx.view.weights, (x, i) => (i % 2 ? Infinity : x), 1)),
  },
  {
    name: 'wrong tensor shape', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update whose first tensor is reshaped (same element count, other dims)',
    expected: 'rejected shape_mismatch',
    launch: (ctx) => malloryAttack(ctx, {}, ctx.view.weights.map((t, k) => (k === 0 ? { ...t, shape: [t.values.length] } : t))),
  },
  {
    name: 'missing tensor', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update with one tensor fewer than the model',
    expected: 'rejected shape_mismatch',
    launch: (ctx) => malloryAttack(ctx, {}, ctx.view.weights.slice(0, -1)),
  },
  {
    name: 'wrong dtype layout', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a FLOAT32 tensor carrying 2 bytes per element, signed by hand by mallory',
    expected: 'rejected undecodable (CODEC_TRUNCATED)',
    launch: (ctx) => {
      const u = malloryUpdate(ctx, { tensors: shortDataTensors(ctx.view.weights) });
      return one([signedByHand(ctx, ctx.mallory, u, '0'.repeat(64))], [u.updateId]);
    },
  },
  {
    name: 'int8 tensor with NaN scale', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s update whose first tensor is INT8 with scale NaN',
    expected: 'rejected (undecodable or non-finite)',
    launch: (ctx) => {
      const tensors = packTensors(ctx.view.weights, { dtype: 'int8' }).map((t, k) => (k === 0 ? { ...t, scale: NaN } : t));
      const u = malloryUpdate(ctx, { tensors });
      return one([signedByHand(ctx, ctx.mallory, u, '0'.repeat(64))], [u.updateId]);
    },
  },
  {
    name: 'random bytes', topic: 'updates', wave: 1, judge: 'update',
    sends: '512 random bytes',
    expected: 'rejected undecodable, dead-lettered',
    launch: (ctx) => one([raw(ctx, 'updates', randomPayload(512))]),
  },
  {
    name: 'empty record', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a record with an empty value',
    expected: 'rejected undecodable',
    launch: (ctx) => one([raw(ctx, 'updates', Buffer.alloc(0))]),
  },
  {
    name: 'truncated body', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update cut to half its bytes (signature headers kept)',
    expected: 'rejected undecodable',
    launch: (ctx) => {
      const [r] = records(ctx, 'updates', 'ModelUpdate', malloryUpdate(ctx), ctx.mallory);
      return one([[{ ...r!, value: (r!.value as Buffer).subarray(0, (r!.value as Buffer).length >> 1) }]]);
    },
  },
  {
    name: 'unknown schema fingerprint', topic: 'updates', wave: 1, judge: 'update',
    sends: 'C3 01, 8 random fingerprint bytes, then a valid update body',
    expected: 'rejected undecodable (unknown fingerprint)',
    launch: (ctx) => {
      const bytes = Buffer.from(encoded('ModelUpdate', malloryUpdate(ctx)));
      randomPayload(8).copy(bytes, 2);
      return one([raw(ctx, 'updates', bytes)]);
    },
  },
  {
    name: 'bad SHA-256 of a chunk set', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update in two complete chunks whose fedstream-sha256 is wrong',
    expected: 'rejected CODEC_CHECKSUM_MISMATCH',
    launch: (ctx) => {
      const u = malloryUpdate(ctx);
      const [whole] = records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory);
      const bytes = whole!.value as Buffer;
      const half = Math.ceil(bytes.length / 2);
      const sig = { [SIGNATURE_HEADERS.signature]: whole!.headers![SIGNATURE_HEADERS.signature] as string, [SIGNATURE_HEADERS.keyId]: ctx.mallory.keyId };
      const h = { id: `${ctx.tag}-sha`, count: 2, sha256: sha256(Buffer.from('not these bytes')), size: bytes.length };
      return one([[chunk(ctx, 'updates', bytes.subarray(0, half), { ...h, index: 0 }, ctx.tag, sig), chunk(ctx, 'updates', bytes.subarray(half), { ...h, index: 1 }, ctx.tag, sig)]], [u.updateId]);
    },
  },
  {
    name: 'duplicate chunk with different bytes', topic: 'updates', wave: 1, judge: 'update',
    sends: 'chunk 0 of a 3-chunk set twice, with different bytes (the set never completes)',
    expected: 'the conflicting chunk refused CODEC_CHUNK_DUPLICATE, the set dropped; audited',
    launch: (ctx) => {
      const h = { id: `${ctx.tag}-dup`, count: 3, sha256: 'e'.repeat(64), size: 3 * 2048 };
      return one([[chunk(ctx, 'updates', Buffer.alloc(2048, 1), { ...h, index: 0 }), chunk(ctx, 'updates', Buffer.alloc(2048, 2), { ...h, index: 0 })]]);
    },
  },
  {
    name: 'oversized declared payload', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a chunk declaring a 1 TB payload in 1,100,000 chunks',
    expected: 'refused CODEC_LIMIT before anything is allocated',
    launch: (ctx) => one([[chunk(ctx, 'updates', Buffer.alloc(1024, 'o'), { id: `${ctx.tag}-big`, index: 0, count: 1_100_000, sha256: 'f'.repeat(64), size: 1e12 })]]),
  },
  {
    name: 'chunk index >= count', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a chunk with index 5 of a 2-chunk set',
    expected: 'refused CODEC_INVALID',
    launch: (ctx) => one([[chunk(ctx, 'updates', Buffer.alloc(1024, 'i'), { id: `${ctx.tag}-idx`, index: 5, count: 2, sha256: 'f'.repeat(64), size: 2048 })]]),
  },
  {
    name: 'unsigned update', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a valid update from mallory with no signature headers',
    expected: 'rejected unsigned',
    launch: (ctx) => {
      const u = malloryUpdate(ctx);
      return one([records(ctx, 'updates', 'ModelUpdate', u)], [u.updateId]);
    },
  },
  {
    name: 'unknown signer', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a valid update from "eve", signed with a key no participant holds',
    expected: 'rejected unknown_signer',
    launch: (ctx) => {
      const u = malloryUpdate(ctx, { nodeId: 'eve' });
      return one([records(ctx, 'updates', 'ModelUpdate', u, ctx.outsider)], [u.updateId]);
    },
  },
  {
    name: 'field tampered after signing', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update re-encoded with numExamples 10 → 5000, signature headers kept',
    expected: 'rejected bad_signature',
    launch: (ctx) => {
      const u = malloryUpdate(ctx);
      const [r] = records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory);
      return one([[{ ...r!, value: encoded('ModelUpdate', { ...u, numExamples: 5000 }) }]], [u.updateId]);
    },
  },
  {
    name: 'malformed signature header', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s update with a signature header that is not 128 hex digits',
    expected: 'rejected bad_signature',
    launch: (ctx) => {
      const u = malloryUpdate(ctx);
      const [r] = records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory);
      return one([[{ ...r!, headers: { ...r!.headers, [SIGNATURE_HEADERS.signature]: 'zz'.repeat(70) } }]], [u.updateId]);
    },
  },
  {
    name: 'norm bound exceeded', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update with every weight moved by +50',
    expected: 'rejected norm_bound (limits.maxUpdateNorm)',
    launch: (ctx) => malloryAttack(ctx, {}, mapWeights(ctx.view.weights, (x) => x + 50)),
  },
  {
    name: 'numExamples 0', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update claiming 0 examples',
    expected: 'rejected bad_num_examples',
    launch: (ctx) => malloryAttack(ctx, { numExamples: 0 }),
  },
  {
    name: 'numExamples negative', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed update claiming -5 examples',
    expected: 'rejected bad_num_examples',
    launch: (ctx) => malloryAttack(ctx, { numExamples: -5 }),
  },
  {
    name: 'update for another pipeline', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed, otherwise valid update naming another pipeline',
    expected: 'rejected: it belongs to no round of this pipeline',
    launch: (ctx) => malloryAttack(ctx, { pipeline: `${ctx.m.name}-other` }),
  },
  {
    name: 'update for another tenant', topic: 'updates', wave: 1, judge: 'update',
    sends: 'mallory\'s signed, otherwise valid update naming another tenant',
    expected: 'rejected: it belongs to no round of this pipeline',
    launch: (ctx) => malloryAttack(ctx, { tenant: 'other' }),
  },
  {
    name: 'update claiming another node\'s key id', topic: 'updates', wave: 1, judge: 'update',
    sends: 'an update for node-4 signed with mallory\'s key, its key-id header naming node-4\'s (public) key',
    expected: 'rejected bad_signature',
    launch: (ctx) => {
      const u = malloryUpdate(ctx, { nodeId: 'node-4' });
      return one([claimingKeyId(records(ctx, 'updates', 'ModelUpdate', u, ctx.mallory), ctx.keyIds['node-4']!)], [u.updateId]);
    },
  },
  {
    name: 'chunk count inconsistent with the declared size', topic: 'updates', wave: 1, judge: 'update',
    sends: 'a chunk declaring 1,000 chunks for a 2,000-byte payload (more than any chunk size allows)',
    expected: 'refused before anything is kept (CODEC_LIMIT / CODEC_INVALID)',
    launch: (ctx) => one([[chunk(ctx, 'updates', Buffer.alloc(64, 'n'), { id: `${ctx.tag}-count`, index: 0, count: 1000, sha256: 'f'.repeat(64), size: 2000 })]]),
  },
  {
    name: 'straggler chunk of a dropped set', topic: 'updates', wave: 2, judge: 'update',
    sends: 'the never-sent second chunk of the last dangling small set, a round after that set was dropped',
    expected: 'refused (CODEC_CHUNK_MISSING), or held and expired again; audited either way',
    launch: (ctx) => one([[chunk(ctx, 'updates', Buffer.alloc(64, 'd'), { id: `dangling-${DANGLING_SMALL - 1}`, index: 1, count: 2, sha256: 'b'.repeat(64), size: 2000 })]]),
  },
  // ------------------------------------------------------------------ control, models, audit, telemetry
  {
    name: 'forged FINISH signed by a node key', topic: 'control', wave: 3, judge: 'record',
    sends: 'a FINISH for the open round signed with mallory\'s (node) key',
    expected: 'refused wrong_signer by nodes and the sink; nodes train the remaining rounds',
    launch: (ctx) => one([records(ctx, 'control', 'RoundControl', control(ctx, { kind: 'FINISH' }), ctx.mallory, `round-${ctx.view.round}`)]),
  },
  {
    name: 'forged START by an unknown key', topic: 'control', wave: 2, judge: 'record',
    sends: 'a START of round 50 on the base version, signed with a key no participant holds',
    expected: 'refused unknown_signer; no node trains round 50',
    launch: (ctx) => one([records(ctx, 'control', 'RoundControl', control(ctx, { kind: 'START', round: 50 }), ctx.outsider, 'round-50')]),
  },
  {
    name: 'random bytes into control', topic: 'control', wave: 2, judge: 'record',
    sends: '200 random bytes',
    expected: 'refused by nodes (skipped, logged) and dead-lettered by the sink',
    launch: (ctx) => one([raw(ctx, 'control', randomPayload(200))]),
  },
  {
    name: 'forged ModelVersion, unsigned', topic: 'models', wave: 2, judge: 'record',
    sends: 'version base+1 with weights all -0.5 and their correct sha256, no signature',
    expected: 'refused unsigned; never adopted or stored',
    launch: (ctx) => {
      const v = forgedVersion(ctx, -0.5);
      return { units: [records(ctx, 'models', 'ModelVersion', v, undefined, `v${v.version}`)], forgedWeights: [v.weightsSha256] };
    },
  },
  {
    name: 'forged ModelVersion by an unknown key', topic: 'models', wave: 3, judge: 'record',
    sends: 'version base+1 (weights all 0.1, correct sha256) signed with a key no participant holds',
    expected: 'refused unknown_signer; never adopted or stored',
    launch: (ctx) => {
      const v = forgedVersion(ctx, 0.1);
      return { units: [records(ctx, 'models', 'ModelVersion', v, ctx.outsider, `v${v.version}`)], forgedWeights: [v.weightsSha256] };
    },
  },
  {
    name: 'forged EXTEND signed by a node key', topic: 'control', wave: 3, judge: 'record',
    sends: 'an EXTEND of the open round with a deadline 10 minutes on, signed with mallory\'s key',
    expected: 'refused wrong_signer by nodes and the sink; the round closes as it would',
    launch: (ctx) => one([records(ctx, 'control', 'RoundControl', control(ctx, { kind: 'EXTEND', deadline: Date.now() + 600_000 }), ctx.mallory, `round-${ctx.view.round}`)]),
  },
  {
    name: 'forged ModelVersion claiming the aggregator\'s key id', topic: 'models', wave: 2, judge: 'record',
    sends: 'version base+1 (weights all 0.3, correct sha256) signed with mallory\'s key, its key-id header naming the aggregator\'s key',
    expected: 'refused bad_signature; never adopted or stored',
    launch: (ctx) => {
      const v = forgedVersion(ctx, 0.3);
      return { units: [claimingKeyId(records(ctx, 'models', 'ModelVersion', v, ctx.mallory, `v${v.version}`), ctx.keyIds.aggregator!)], forgedWeights: [v.weightsSha256] };
    },
  },
  {
    name: 'random bytes into models', topic: 'models', wave: 2, judge: 'record',
    sends: '300 random bytes',
    expected: 'skipped by nodes, dead-lettered by the sink',
    launch: (ctx) => one([raw(ctx, 'models', randomPayload(300))]),
  },
  {
    name: 'forged audit event, unsigned', topic: 'audit', wave: 2, judge: 'record',
    sends: 'an UPDATE_ACCEPTED for a made-up update of mallory, no signature',
    expected: 'refused unsigned by the sink; not in audit_log',
    launch: (ctx) => {
      const e = auditEvent(ctx, {});
      return { units: [records(ctx, 'audit', 'AuditEvent', e)], forgedEvents: [e.eventId] };
    },
  },
  {
    name: 'forged audit event signed by a node key', topic: 'audit', wave: 2, judge: 'record',
    sends: 'a PIPELINE_FINISHED audit event signed with mallory\'s key',
    expected: 'refused wrong_signer by the sink; not in audit_log',
    launch: (ctx) => {
      const e = auditEvent(ctx, { action: 'PIPELINE_FINISHED', nodeId: null, updateId: null, details: {} });
      return { units: [records(ctx, 'audit', 'AuditEvent', e, ctx.mallory)], forgedEvents: [e.eventId] };
    },
  },
  {
    name: 'random bytes into audit', topic: 'audit', wave: 2, judge: 'record',
    sends: '256 random bytes',
    expected: 'dead-lettered by the sink',
    launch: (ctx) => one([raw(ctx, 'audit', randomPayload(256))]),
  },
  {
    name: 'telemetry junk: random bytes', topic: 'telemetry', wave: 1, judge: 'record',
    sends: '128 random bytes',
    expected: 'dead-lettered by the sink, counted',
    launch: (ctx) => one([raw(ctx, 'telemetry', randomPayload(128))]),
  },
  {
    name: 'telemetry junk: truncated event', topic: 'telemetry', wave: 1, judge: 'record',
    sends: 'a heartbeat cut to 12 bytes',
    expected: 'dead-lettered by the sink',
    launch: (ctx) => one([raw(ctx, 'telemetry', encoded('TelemetryEvent', telemetry(ctx)).subarray(0, 12))]),
  },
  {
    name: 'telemetry junk: unknown fingerprint', topic: 'telemetry', wave: 1, judge: 'record',
    sends: 'a heartbeat whose schema fingerprint is random',
    expected: 'dead-lettered by the sink',
    launch: (ctx) => {
      const bytes = Buffer.from(encoded('TelemetryEvent', telemetry(ctx)));
      randomPayload(8).copy(bytes, 2);
      return one([raw(ctx, 'telemetry', bytes)]);
    },
  },
];
