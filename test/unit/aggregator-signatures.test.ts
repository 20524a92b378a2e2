/**
 * Who said it, on the aggregator's side (issue 12), on the in-memory transport: updates it cannot attribute to their
 * node are rejected before anything else, audited and dead-lettered; an id computed ahead and sent first no longer
 * pre-empts a node's update; and a forged FINISH or a forged version (its sha256 correct) in the log neither stops
 * nor misleads a restarted aggregator (../shared/cases/hostile/forged-control-finish, adapted).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAggregator } from '../../src/aggregator/index.ts';
import { packTensors, unpackTensors, weightsSha256, type ModelUpdateRecord, type ModelVersionRecord } from '../../src/codec/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { FedNode, type LocalTrainer } from '../../src/node/index.ts';
import { ephemeralParticipants, ephemeralSigner, pipelineTopics, readToEnd, SIGNATURE_HEADERS, toRecords, type Signer } from '../../src/protocol/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/index.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

function pipeline(rounds: number, targetUpdates: number) {
  return ephemeralParticipants(parseManifest({
    apiVersion: 'fedstream/v1', tenant: 'sec', name: `sig-${Math.random().toString(36).slice(2, 8)}`,
    model: { inputShape: [4], seed: 7, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 3, testExamples: 100, trainExamples: 300 },
    rounds: { count: rounds, targetUpdates, minUpdates: 1, timeoutMs: 600_000, maxExtensions: 0 },
  }), ['node-1', 'node-2', 'node-3']);
}

const until = async (what: string, ok: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function update(m: Manifest, base: ModelVersionRecord, over: Partial<ModelUpdateRecord>, shift = 0): ModelUpdateRecord {
  const w = unpackTensors(base.tensors).map((t) => ({ ...t, values: t.values.map((v, i) => v + shift * ((i % 5) - 2) * 1e-3) }));
  return {
    updateId: crypto.randomUUID(), tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round: 1, baseVersion: base.version, numExamples: 10,
    tensors: packTensors(w), metrics: { loss: 1 }, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x', ...over,
  };
}

/** A trainer that moves the weights a little (no tfjs). */
const nudging: LocalTrainer = {
  train: async (i) => ({ weights: i.weights.map((t) => ({ ...t, values: t.values.map((v) => v + 0.01) })), numExamples: 10, metrics: { loss: 1 }, trainingMs: 1, backend: 'test' }),
};

/** One pipeline on a fresh in-memory cluster, its aggregator started; `aggregator()` and `node()` add processes to it. */
async function setUp(rounds: number, targetUpdates: number) {
  const team = pipeline(rounds, targetUpdates);
  const m = team.manifest;
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger });
  const aggregator = async () => {
    const a = await createAggregator({ manifest: m, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, signer: team.signerFor('aggregator') });
    await a.start();
    return a;
  };
  const node = (nodeId: string, trainer: LocalTrainer = nudging) => new FedNode({
    manifest: m, transport: createMemoryTransport({ cluster, logger }), nodeId, trainer, logger, heartbeatMs: 60_000, signer: team.signerFor(nodeId),
  });
  const agg = await aggregator();
  const producer = t.producer();
  await producer.connect();
  return { team, m, cluster, t, agg, topics: pipelineTopics(m), producer, aggregator, node };
}

describe('the aggregator and records it cannot attribute', () => {
  it('rejects unsigned, other-node, unknown-key and tampered updates before validating them; audits and dead-letters each', async () => {
    const { team, m, t, agg, topics, producer: p } = await setUp(1, 3);
    const [v0] = await readVersions(t, m);
    const send = (u: ModelUpdateRecord, signer?: Signer) => p.send(toRecords(topics.updates, 'ModelUpdate', u, u.nodeId, m.topics.chunkSizeBytes, {}, signer));
    const n1 = team.signerFor('node-1')!;
    // Unsigned; under node-1's id with node-2's key; with a key nobody listed; node-1's signature over other numbers.
    await send(update(m, v0!, { nodeId: 'node-1' }));
    await send(update(m, v0!, { nodeId: 'node-1' }), team.signerFor('node-2'));
    await send(update(m, v0!, { nodeId: 'node-1' }), ephemeralSigner());
    const honest = update(m, v0!, { nodeId: 'node-1' });
    const [signed] = toRecords(topics.updates, 'ModelUpdate', honest, 'node-1', m.topics.chunkSizeBytes, {}, n1);
    const [inflated] = toRecords(topics.updates, 'ModelUpdate', { ...honest, numExamples: 1_000_000 }, 'node-1', m.topics.chunkSizeBytes);
    await p.send([{ ...inflated!, headers: signed!.headers }]);
    // The aggregator's own key cannot sign for a node either.
    await send(update(m, v0!, { nodeId: 'node-1' }), team.signerFor('aggregator'));
    // Then the three real ones: none of the forgeries took node-1's place in the round.
    await send(update(m, v0!, { nodeId: 'node-1' }, 1), n1);
    await send(update(m, v0!, { nodeId: 'node-2' }, 2), team.signerFor('node-2'));
    await send(update(m, v0!, { nodeId: 'node-3' }, 3), team.signerFor('node-3'));
    await agg.done;

    const audit = await readAudit(t, m);
    const rejected = audit.filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected.map((e) => e.details.code)).toEqual(['unsigned', 'wrong_signer', 'unknown_signer', 'bad_signature', 'wrong_signer']);
    expect(rejected.every((e) => e.nodeId === 'node-1' && e.reason)).toBe(true);
    expect(rejected[1]!.reason).toMatch(/signed by node node-2's key: a node speaks only for itself/);
    expect(rejected[4]!.reason).toMatch(/signed by aggregator aggregator's key; only the node signs a ModelUpdate/);
    const dead: string[] = [];
    await readToEnd(t, topics['dead-letter'], (msg) => { dead.push(msg.headers['fedstream-dlq-code']!.toString()); });
    expect(dead).toEqual(rejected.map((e) => e.details.code));
    const [, v1] = await readVersions(t, m, team.registry);
    expect(v1!.contributors.map((c) => c.nodeId).sort()).toEqual(['node-1', 'node-2', 'node-3']);
    expect(v1!.totalExamples).toBe(30);
    await agg.stop();
  });

  it('signs what it writes: versions, control and audit carry a signature by its key, which the registry verifies', async () => {
    const { team, m, t, agg, topics } = await setUp(1, 1);
    for (const topic of [topics.models, topics.control, topics.audit]) {
      const keyIds: string[] = [];
      await readToEnd(t, topic, (msg) => { keyIds.push(msg.headers[SIGNATURE_HEADERS.keyId]!.toString()); });
      expect(keyIds.length).toBeGreaterThan(0);
      expect(new Set(keyIds)).toEqual(new Set([team.signerFor('aggregator')!.keyId]));
    }
    expect(await readVersions(t, m, team.registry)).toHaveLength(1);
    await agg.stop();
  });

  it('an update id computed from public values and sent first no longer pre-empts the node\'s update', async () => {
    const { team, m, t, agg, topics, producer: p, node } = await setUp(1, 2);
    const [v0] = await readVersions(t, m);
    // What ids used to be: sha256(tenant, pipeline, node, round, base version), as a UUID. node-2 sends it first, signed
    // with its own key under its own id (accepted, it is node-2's update), and once more under node-1's id (refused).
    const h = createHash('sha256').update(`${m.tenant}\u0000${m.name}\u0000node-1\u00001\u00000`).digest('hex');
    const predicted = `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
    await p.send(toRecords(topics.updates, 'ModelUpdate', update(m, v0!, { nodeId: 'node-1', updateId: predicted }), 'node-1', m.topics.chunkSizeBytes, {}, team.signerFor('node-2')));
    await p.send(toRecords(topics.updates, 'ModelUpdate', update(m, v0!, { nodeId: 'node-2', updateId: predicted }), 'node-2', m.topics.chunkSizeBytes, {}, team.signerFor('node-2')));
    const one = node('node-1');
    await one.start();
    await agg.done;
    await one.done;
    const [, v1] = await readVersions(t, m, team.registry);
    const byNode = new Map(v1!.contributors.map((c) => [c.nodeId, c.updateId]));
    expect([...byNode.keys()].sort()).toEqual(['node-1', 'node-2']);
    expect(byNode.get('node-2')).toBe(predicted);
    expect(byNode.get('node-1')).not.toBe(predicted);
    expect(byNode.get('node-1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const codes = (await readAudit(t, m)).filter((e) => e.action === 'UPDATE_REJECTED').map((e) => e.details.code);
    expect(codes).toEqual(['wrong_signer']);
    await one.stop();
    await agg.stop();
  });

  it('a forged FINISH and a forged version with a correct sha256: nodes keep following, a restarted aggregator resumes round 1 from version 0', async () => {
    const { team, m, t, agg, topics, producer: p, aggregator, node } = await setUp(3, 3);
    const nodes = ['node-1', 'node-2'].map((nodeId) => node(nodeId));
    for (const n of nodes) await n.start();
    await until('two round-1 updates', async () => (await readAudit(t, m)).length > 0 && nodes.every((n) => n.health().figures?.roundsTrained === 1));

    // A participant writes a FINISH (unsigned) and version 1 with weights of its own and their correct sha256, signed
    // with its own (node) key; then a START of round 2 from that version, unsigned.
    const [v0] = await readVersions(t, m);
    const evil = unpackTensors(v0!.tensors).map((x) => ({ ...x, values: x.values.map(() => 0.5) }));
    const forgedVersion: ModelVersionRecord = { ...v0!, version: 1, parentVersion: 0, round: 1, tensors: packTensors(evil), weightsSha256: weightsSha256(evil), createdAt: Date.now() };
    const now = Date.now();
    await p.send(toRecords(topics.control, 'RoundControl', { tenant: m.tenant, pipeline: m.name, round: 1, baseVersion: 0, kind: 'FINISH', config: {}, selectedNodes: [], deadline: now, minUpdates: 1, targetUpdates: 3, createdAt: now }, 'round-1', m.topics.chunkSizeBytes));
    await p.send(toRecords(topics.models, 'ModelVersion', forgedVersion, 'v1', m.topics.chunkSizeBytes, {}, team.signerFor('node-1')));
    await p.send(toRecords(topics.control, 'RoundControl', { tenant: m.tenant, pipeline: m.name, round: 2, baseVersion: 1, kind: 'START', config: {}, selectedNodes: [], deadline: now + 600_000, minUpdates: 1, targetUpdates: 3, createdAt: now }, 'round-2', m.topics.chunkSizeBytes));
    await until('the nodes refuse the three records', () => nodes.every((n) => n.health().figures?.recordsRefused === 3));
    const stopped = await Promise.race([nodes[0]!.done.then(() => true), new Promise((r) => setTimeout(() => r(false), 300))]);
    expect(stopped).toBe(false);
    expect(nodes.map((n) => n.health().state)).toEqual(['idle', 'idle']);

    // The aggregator goes away mid-round; its successor reads the log back.
    await agg.stop();
    const again = await aggregator();
    // Not 'finished at version 0', not version 1: round 1 again, from version 0, with the two updates read back.
    await until('round 1 resumed with its two updates', () => again.health().figures?.accepted === 2);
    expect(again.health()).toMatchObject({ healthy: true, figures: { version: 0, round: 1, accepted: 2 } });
    const third = node('node-3');
    await third.start();
    const summary = await again.done;
    expect(summary).toMatchObject({ finalVersion: 3, versions: 4 });
    await Promise.all([...nodes, third].map((n) => n.done));

    const real = await readVersions(t, m, team.registry);
    expect(real.map((v) => [v.version, v.parentVersion])).toEqual([[0, -1], [1, 0], [2, 1], [3, 2]]);
    expect(real[1]!.weightsSha256).not.toBe(forgedVersion.weightsSha256);
    for (const v of real.slice(1)) expect(v.contributors.map((c) => c.nodeId).sort()).toEqual(['node-1', 'node-2', 'node-3']);
    // Recovery audited and dead-lettered each forged record.
    const refused = (await readAudit(t, m)).filter((e) => e.action === 'MESSAGE_DEAD_LETTERED');
    expect(refused.map((e) => e.details.code).sort()).toEqual(['unsigned', 'unsigned', 'wrong_signer']);
    expect(refused.every((e) => e.details.refusedBy === 'recovery' && e.reason)).toBe(true);
    await Promise.all([...nodes, third].map((n) => n.stop()));
    await again.stop();
  });
  it('a genuine control record replayed later (the START of a closed round) is refused by nodes and by recovery', async () => {
    const { m, cluster, t, agg, topics, producer: p, aggregator, node } = await setUp(3, 2);
    // The nodes train round 1 only (their trainer fails after that): round 2 stays open while the replay lands.
    const once = (): LocalTrainer => {
      let calls = 0;
      return { train: async (i) => { if (++calls > 1) throw new Error('this test trains one round'); return nudging.train(i); } };
    };
    const nodes = ['node-1', 'node-2'].map((nodeId) => node(nodeId, once()));
    for (const n of nodes) await n.start();
    await until('round 2 open', () => agg.health().figures?.round === 2);
    await Promise.all(nodes.map((n) => n.stop()));

    // Copy the aggregator's own START of round 1, signature and all, back onto the control topic.
    const start1 = cluster.topic(topics.control).partitions[0]!.records.find((r) => !r.control && r.value && r.key?.toString() === 'round-1');
    expect(start1).toBeDefined();
    await p.send([{ topic: topics.control, key: start1!.key!.toString(), value: start1!.value!, headers: Object.fromEntries(Object.entries(start1!.headers).map(([k, v]) => [k, v.toString()])) }]);

    // A node starting now reads the log: it follows round 2 and refuses the replay.
    const late = node('node-3');
    await late.start();
    await until('node-3 refuses the replay', () => late.health().figures?.recordsRefused === 1);

    // A restarted aggregator resumes round 2, not round 1, and audits the replay.
    await agg.stop();
    const again = await aggregator();
    expect(again.health().figures).toMatchObject({ version: 1, round: 2 });
    const refused = (await readAudit(t, m)).filter((e) => e.action === 'MESSAGE_DEAD_LETTERED');
    expect(refused.map((e) => e.details.code)).toEqual(['replayed']);
    expect(refused[0]!.reason).toMatch(/START of round 1 replayed after START of round 2/);
    await late.stop();
    await again.stop();
  });
});
