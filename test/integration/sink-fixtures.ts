/**
 * A known pipeline history for the sink and report tests, written to a pipeline's topics the way the
 * aggregator and the nodes write it (docs/protocol.md): model versions (chunked: the test manifest's
 * chunk size is small), round controls, updates (chunked too), audit events and telemetry.
 */
import { randomUUID } from 'node:crypto';
import { packTensors, weightsSha256, type ModelVersionRecord } from '../../src/codec/index.ts';
import type { Weights } from '../../src/codec/types.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { ephemeralParticipants, ephemeralSigner, type EphemeralParticipants, type Signer } from '../../src/protocol/index.ts';
import type { Producer, ProducerRecord } from '../../src/transport/types.ts';

const teams = new Map<string, EphemeralParticipants<Manifest>>();

/** The private key of participant `id` (a node id, or `aggregator`) of a pipeline made by {@link testManifest}. */
export function signerOf(m: Pick<Manifest, 'tenant' | 'name'>, id: string): Signer {
  const s = teams.get(`${m.tenant}.${m.name}`)?.signerFor(id);
  if (!s) throw new Error(`no key for ${id} in ${m.tenant}.${m.name}`);
  return s;
}

/** A pipeline whose aggregator and nodes node-1..node-10 have keys of their own, listed in its participants. */
export function testManifest(tenant: string, name: string, extra: { partitions?: number } = {}): Manifest {
  const team = ephemeralParticipants(plainManifest(tenant, name, extra), Array.from({ length: 10 }, (_, i) => `node-${i + 1}`));
  teams.set(`${tenant}.${name}`, team);
  return team.manifest;
}

function plainManifest(tenant: string, name: string, extra: { partitions?: number }): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant,
    name,
    model: { inputShape: [20], layers: [{ type: 'dense', units: 20 }] },
    data: { source: 'mnist', nodes: 3 },
    rounds: { count: 2, targetUpdates: 3, minUpdates: 1 },
    topics: { partitions: extra.partitions ?? 2, chunkSizeBytes: 1024 },
    retention: { telemetryDays: 14, updatesDays: 90, auditDays: 400 },
  });
}

/** 20×20 weights + 20 biases: 1,680 bytes of float32, so versions and updates are chunked at 1,024. */
export function weightsFor(seed: number): Weights {
  const w = new Float32Array(400).map((_, i) => Math.sin(seed * 7 + i) / 10);
  const b = new Float32Array(20).map((_, i) => Math.cos(seed + i) / 10);
  return [{ name: 'dense/kernel', shape: [20, 20], values: w }, { name: 'dense/bias', shape: [20], values: b }];
}

export interface History {
  /** Rows each table must hold, exactly once, after the sink read everything. */
  expected: { telemetry: number; heartbeats: number; rounds: number; updates: number; audit: number; rejected: number; versions: number; contributions: number };
  /** Update ids by status. */
  accepted: string[];
  rejected: string[];
  /** Nodes that contributed to each version. */
  contributorsOf: Map<number, string[]>;
  versions: ModelVersionRecord[];
  /** Records the sink must refuse as not signed by their writer's key. */
  refused: number;
}

export interface HistoryOptions {
  nodes?: number;
  rounds?: number;
  /** Extra HEARTBEAT events per node (beyond one per round), to make volume. */
  extraHeartbeats?: number;
  /** Garbage records on the telemetry topic (dead-lettered by the sink). */
  garbage?: number;
  /**
   * What a hostile participant writes (issue 12), each refused or counted: a FINISH, a version and an audit event
   * the aggregator did not sign; an update under another node's id; a replayed copy of an accepted update; and
   * another node's update reusing an accepted update's id. `History.refused` counts the records the sink refuses.
   */
  hostile?: boolean;
}

/**
 * Produces the history and returns what the tables must hold. Round r: every node sends an update;
 * the last node's update in round 2 is rejected (norm_bound); version r has the others as contributors.
 */
export async function produceHistory(producer: Producer, m: Manifest, opts: HistoryOptions = {}): Promise<History> {
  const nodes = Array.from({ length: opts.nodes ?? 3 }, (_, i) => `node-${i + 1}`);
  const rounds = opts.rounds ?? 2;
  const topics = pipelineTopics(m);
  const chunk = m.topics.chunkSizeBytes;
  const base = { tenant: m.tenant, pipeline: m.name };
  const t0 = Date.now() - 60_000;
  let clock = t0;
  const tick = (): number => (clock += 10);
  const send = async (records: ProducerRecord[]) => producer.send(records);
  const aggregatorKey = signerOf(m, 'aggregator');
  const auditRecord = (action: string, a: { round?: number; version?: number; nodeId?: string; updateId?: string; reason?: string; details?: Record<string, string> }, signer: Signer | null = aggregatorKey) =>
    toRecords(topics.audit, 'AuditEvent', {
      ...base, eventId: randomUUID(), eventTime: tick(), actor: 'aggregator', action: action as never, round: a.round ?? null, version: a.version ?? null,
      nodeId: a.nodeId ?? null, updateId: a.updateId ?? null, reason: a.reason ?? null, details: a.details ?? {},
    }, a.nodeId ?? action, chunk, {}, signer ?? undefined);
  const control = (kind: 'START' | 'CLOSE' | 'FINISH', round: number, baseVersion: number, signer: Signer | null = aggregatorKey) =>
    toRecords(topics.control, 'RoundControl', {
      ...base, round, baseVersion, kind, config: { epochs: '1' }, selectedNodes: [], deadline: clock + 30_000, minUpdates: 1, targetUpdates: nodes.length, createdAt: tick(),
    }, `round-${round}`, chunk, {}, signer ?? undefined);
  const version = (v: number, round: number, contributors: ModelVersionRecord['contributors'], rejected: number): ModelVersionRecord => {
    const weights = weightsFor(v);
    return {
      ...base, version: v, parentVersion: v - 1, round, strategy: v === 0 ? 'initial' : 'fedavg', createdAt: tick(),
      tensors: packTensors(weights), weightsSha256: weightsSha256(weights), contributors,
      totalExamples: contributors.reduce((s, c) => s + c.numExamples, 0), metrics: v === 0 ? {} : { eval_accuracy: Math.min(0.95, 0.5 + v / 10), eval_loss: 1 / v, train_loss: 1.2 / v, train_accuracy: Math.min(0.9, 0.45 + v / 10) },
      rejectedCount: rejected, modelSpec: JSON.stringify(m.model),
    };
  };

  const h: History = {
    expected: { telemetry: 0, heartbeats: 0, rounds: 0, updates: 0, audit: 0, rejected: 0, versions: 0, contributions: 0 },
    accepted: [], rejected: [], contributorsOf: new Map(), versions: [], refused: 0,
  };
  const v0 = version(0, 0, [], 0);
  h.versions.push(v0);
  await send([
    ...toRecords(topics.models, 'ModelVersion', v0, 'v0', chunk, {}, aggregatorKey),
    ...auditRecord('VERSION_PUBLISHED', { version: 0, round: 0, details: { weightsSha256: v0.weightsSha256 } }),
    ...auditRecord('ROUND_STARTED', { round: 1, version: 0, details: { selectedNodes: '' } }),
    ...control('START', 1, 0),
  ]);
  h.expected.versions++;
  h.expected.audit += 2;
  h.expected.rounds++;

  for (let r = 1; r <= rounds; r++) {
    const decisions: ProducerRecord[] = [];
    const contributors: ModelVersionRecord['contributors'] = [];
    for (const [i, node] of nodes.entries()) {
      const updateId = randomUUID();
      const numExamples = 10 * (i + 1);
      const update = {
        ...base, updateId, nodeId: node, round: r, baseVersion: r - 1, numExamples, tensors: packTensors(weightsFor(100 * r + i)),
        metrics: { loss: 1 / (r + i), accuracy: 0.5 + r / 10 }, trainingMs: 100 + i, createdAt: tick(), sdkVersion: '0.1.0', backend: 'test',
      };
      const [meta] = await send(toRecords(topics.updates, 'ModelUpdate', update, node, chunk, {}, signerOf(m, node)));
      h.expected.updates++;
      const telemetry = [
        toRecords(topics.telemetry, 'TelemetryEvent', { ...base, nodeId: node, kind: 'TRAINING', round: r, eventTime: tick(), metrics: { loss: 1 / (r + i), accuracy: 0.6 }, labels: { updateId }, message: null }, node, chunk),
        toRecords(topics.telemetry, 'TelemetryEvent', { ...base, nodeId: node, kind: 'HEARTBEAT', round: null, eventTime: tick(), metrics: { rssMb: 50 + i }, labels: { state: 'training', backend: 'test' }, message: null }, node, chunk),
      ].flat();
      await send(telemetry);
      h.expected.telemetry += 2;
      h.expected.heartbeats += 1;
      const rejectIt = r === 2 && i === nodes.length - 1 && nodes.length > 1;
      if (rejectIt) {
        h.rejected.push(updateId);
        h.expected.rejected++;
        decisions.push(...auditRecord('UPDATE_REJECTED', {
          round: r, nodeId: node, updateId, reason: `update of ${node} is too far from version ${r - 1}`,
          details: { code: 'norm_bound', sourceTopic: topics.updates, sourcePartition: String(meta?.partition ?? 0), sourceOffset: meta?.baseOffset ?? '0', bytes: '1800' },
        }));
      } else {
        h.accepted.push(updateId);
        contributors.push({ updateId, nodeId: node, numExamples, weight: 0 });
        decisions.push(...auditRecord('UPDATE_ACCEPTED', { round: r, nodeId: node, updateId, details: { numExamples: String(numExamples) } }));
      }
      h.expected.audit++;
    }
    const total = contributors.reduce((s, c) => s + c.numExamples, 0);
    for (const c of contributors) c.weight = c.numExamples / total;
    const v = version(r, r, contributors, r === 2 && nodes.length > 1 ? 1 : 0);
    h.versions.push(v);
    h.contributorsOf.set(r, contributors.map((c) => c.nodeId));
    h.expected.versions++;
    h.expected.contributions += contributors.length;
    await send([
      ...toRecords(topics.models, 'ModelVersion', v, `v${r}`, chunk, {}, aggregatorKey),
      ...decisions,
      ...auditRecord('ROUND_CLOSED', { round: r, version: r, reason: 'target reached' }),
      ...auditRecord('VERSION_PUBLISHED', { round: r, version: r, details: { parentVersion: String(r - 1), weightsSha256: v.weightsSha256 } }),
      ...control('CLOSE', r, r - 1),
    ]);
    h.expected.audit += 2;
    h.expected.rounds++;
    if (r < rounds) {
      await send([...auditRecord('ROUND_STARTED', { round: r + 1, version: r, details: { selectedNodes: '' } }), ...control('START', r + 1, r)]);
      h.expected.audit++;
      h.expected.rounds++;
    }
  }

  for (let k = 0; k < (opts.extraHeartbeats ?? 0); k++) {
    await send(nodes.flatMap((node, i) => toRecords(topics.telemetry, 'TelemetryEvent', {
      ...base, nodeId: node, kind: 'HEARTBEAT', round: null, eventTime: t0 - 1000 * k - i, metrics: { rssMb: 60 + k }, labels: { state: 'idle' }, message: null,
    }, node, chunk)));
    h.expected.telemetry += nodes.length;
    h.expected.heartbeats += nodes.length;
  }
  for (let g = 0; g < (opts.garbage ?? 0); g++) {
    await send([{ topic: topics.telemetry, key: 'node-x', value: Buffer.from(`not avro ${g}`) }]);
    h.expected.rejected++;
  }
  if (opts.hostile) await produceHostile(send, m, h, { tick, auditRecord, control, version, chunk });
  await send([...auditRecord('PIPELINE_FINISHED', { round: rounds, version: rounds }), ...control('FINISH', rounds, rounds)]);
  h.expected.audit++;
  h.expected.rounds++;
  return h;
}

interface Writers {
  tick: () => number;
  auditRecord: (action: string, a: { round?: number; version?: number; nodeId?: string; updateId?: string; reason?: string; details?: Record<string, string> }, signer?: Signer | null) => ProducerRecord[];
  control: (kind: 'START' | 'CLOSE' | 'FINISH', round: number, baseVersion: number, signer?: Signer | null) => ProducerRecord[];
  version: (v: number, round: number, contributors: ModelVersionRecord['contributors'], rejected: number) => ModelVersionRecord;
  chunk: number;
}

/** The hostile records of `HistoryOptions.hostile`, with what the sink must make of them (in `h`). */
async function produceHostile(send: (r: ProducerRecord[]) => Promise<unknown>, m: Manifest, h: History, w: Writers): Promise<void> {
  const topics = pipelineTopics(m);
  const base = { tenant: m.tenant, pipeline: m.name };
  // Refused by the sink, each a rejected_updates row of its own (and dead-lettered): not the aggregator's signature.
  await send(w.control('FINISH', 1, 0, null));
  await send(toRecords(topics.models, 'ModelVersion', w.version(99, 1, [], 0), 'v99', w.chunk, {}, signerOf(m, 'node-1')));
  await send(w.auditRecord('UPDATE_ACCEPTED', { round: 1, nodeId: 'node-1', updateId: randomUUID() }, ephemeralSigner()));
  h.refused += 3;
  h.expected.rejected += 3;

  // An update under node-1's id signed by node-2's key: the sink does not store it; the aggregator's rejection it does.
  const forgedId = randomUUID();
  const forged = {
    ...base, updateId: forgedId, nodeId: 'node-1', round: 2, baseVersion: 1, numExamples: 1, tensors: packTensors(weightsFor(7)),
    metrics: {}, trainingMs: 1, createdAt: w.tick(), sdkVersion: 'x', backend: 'x',
  };
  const [fm] = await send(toRecords(topics.updates, 'ModelUpdate', forged, 'node-1', w.chunk, {}, signerOf(m, 'node-2'))) as { partition: number; baseOffset: string }[];
  h.refused++;
  await send(w.auditRecord('UPDATE_REJECTED', {
    round: 2, nodeId: 'node-1', updateId: forgedId, reason: "signed by node node-2's key",
    details: { code: 'wrong_signer', sourceTopic: topics.updates, sourcePartition: String(fm?.partition ?? 0), sourceOffset: fm?.baseOffset ?? '0', bytes: '1800' },
  }));
  h.expected.rejected++;
  h.expected.audit++;

  // Duplicates, each visible: a replayed copy of an accepted update (one `updates` row, status accepted, and a
  // rejected_updates row for the copy), and node-2's update reusing that id (a row of its own, status rejected).
  const v1 = h.versions[1]!.contributors[0]!;
  const again = {
    ...base, updateId: v1.updateId, nodeId: v1.nodeId, round: 1, baseVersion: 0, numExamples: v1.numExamples, tensors: packTensors(weightsFor(100)),
    metrics: { loss: 1, accuracy: 0.6 }, trainingMs: 100, createdAt: w.tick(), sdkVersion: '0.1.0', backend: 'test',
  };
  const other = v1.nodeId === 'node-2' ? 'node-3' : 'node-2';
  const reused = { ...again, nodeId: other, createdAt: w.tick() };
  const [am] = await send(toRecords(topics.updates, 'ModelUpdate', again, again.nodeId, w.chunk, {}, signerOf(m, again.nodeId))) as { partition: number; baseOffset: string }[];
  const [rm] = await send(toRecords(topics.updates, 'ModelUpdate', reused, other, w.chunk, {}, signerOf(m, other))) as { partition: number; baseOffset: string }[];
  for (const [u, meta] of [[again, am], [reused, rm]] as const) {
    await send(w.auditRecord('UPDATE_REJECTED', {
      round: 1, nodeId: u.nodeId, updateId: u.updateId, reason: `update ${u.updateId} was already counted in version 1`,
      details: { code: 'duplicate', sourceTopic: topics.updates, sourcePartition: String(meta?.partition ?? 0), sourceOffset: meta?.baseOffset ?? '0', bytes: '1800' },
    }));
  }
  h.expected.updates++;
  h.expected.rejected += 2;
  h.expected.audit += 2;
  h.rejected.push(reused.updateId);
}
