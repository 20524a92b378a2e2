import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { createAggregator, strategyFor, type Strategy } from '../../src/aggregator/index.ts';
import { createNode } from '../../src/node/index.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { ephemeralParticipants, type EphemeralParticipants } from '../../src/protocol/participants.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { packTensors, unpackTensors, weightsSha256, type ModelVersionRecord } from '../../src/codec/index.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

const NODE_IDS = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6'];
const teams = new Map<string, EphemeralParticipants<Manifest>>();
/** The private key of a participant of the pipeline `m` (made with its manifest, in memory). */
const signer = (m: Manifest, id: string) => teams.get(m.name)!.signerFor(id);

/** A pipeline whose aggregator and nodes have keys of their own (listed in its participants section). */
function manifest(over: Record<string, unknown> = {}): Manifest {
  const team = ephemeralParticipants(plainManifest(over), NODE_IDS);
  teams.set(team.manifest.name, team);
  return team.manifest;
}

function plainManifest(over: Record<string, unknown> = {}): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'test',
    name: `mem-${Math.random().toString(36).slice(2, 8)}`,
    model: { inputShape: [784], seed: 3, layers: [{ type: 'dense', units: 32, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 3, partition: 'iid', testExamples: 500, trainExamples: 1500, seed: 5 },
    training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    rounds: { count: 3, targetUpdates: 3, minUpdates: 2, timeoutMs: 60_000 },
    ...over,
  });
}

describe('a federated pipeline on the in-memory transport', () => {
  it('runs rounds end to end: versions with lineage, accuracy rises, rejections audited and dead-lettered', async () => {
    const m = manifest();
    const cluster = new MemoryCluster();
    const t = createMemoryTransport({ cluster, logger });
    const agg = await createAggregator({ signer: signer(m, 'aggregator'), manifest: m, transport: t, logger });
    await agg.start();
    const nodes = await Promise.all(['node-1', 'node-2', 'node-3'].map((nodeId) => createNode({ manifest: m, transport: createMemoryTransport({ cluster, logger }), nodeId, signer: signer(m, nodeId), logger, heartbeatMs: 200 })));

    // A rogue producer: garbage bytes, and a well-formed update for a round that does not exist.
    const topics = pipelineTopics(m);
    const rogue = t.producer();
    await rogue.connect();
    await rogue.send([{ topic: topics.updates, key: 'rogue', value: Buffer.from('not avro at all') }]);

    for (const n of nodes) await n.start();
    const summary = await agg.done;
    await Promise.all(nodes.map((n) => n.done));
    expect(summary.finalVersion).toBe(3);

    const vs = await readVersions(t, m);
    expect(vs.map((v) => v.version)).toEqual([0, 1, 2, 3]);
    for (const v of vs.slice(1)) {
      expect(v.parentVersion).toBe(v.version - 1);
      expect(v.round).toBe(v.version);
      expect(v.strategy).toBe('fedavg');
      expect(v.contributors.map((c) => c.nodeId).sort()).toEqual(['node-1', 'node-2', 'node-3']);
      expect(v.totalExamples).toBe(1500);
      expect(weightsSha256(unpackTensors(v.tensors))).toBe(v.weightsSha256);
      expect(v.contributors.reduce((s, c) => s + c.weight, 0)).toBeCloseTo(1, 9);
    }
    const acc = vs.slice(1).map((v) => v.metrics.eval_accuracy!);
    expect(acc[2]!).toBeGreaterThan(0.6);
    expect(acc[2]!).toBeGreaterThan(acc[0]! - 0.02);

    const a = await readAudit(t, m);
    const rejected = a.filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.details.code).toBe('undecodable');
    expect(rejected[0]!.reason).toMatch(/single-object.*expected c301/);
    expect(a.filter((e) => e.action === 'UPDATE_ACCEPTED')).toHaveLength(9);
    expect(a.filter((e) => e.action === 'VERSION_PUBLISHED')).toHaveLength(4);
    expect(a.at(-1)!.action).toBe('PIPELINE_FINISHED');

    const dead: Buffer[] = [];
    await readToEnd(t, topics['dead-letter'], (msg) => { dead.push(msg.value!); });
    expect(dead.map((b) => b.toString())).toEqual(['not avro at all']);
    await Promise.all(nodes.map((n) => n.stop()));
    await agg.stop();
  }, 120_000);

  async function run(m: Manifest, fault?: { point: 'mid-round' | 'before-commit'; round: number }) {
    const cluster = new MemoryCluster();
    const t = createMemoryTransport({ cluster, logger });
    const nodes = await Promise.all(['node-1', 'node-2', 'node-3'].map((nodeId) => createNode({ manifest: m, transport: createMemoryTransport({ cluster, logger }), nodeId, signer: signer(m, nodeId), logger, heartbeatMs: 1000 })));
    let crashes = 0;
    const first = await createAggregator({
      signer: signer(m, 'aggregator'), manifest: m, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false,
      fault: fault && ((point, round) => {
        if (point === fault.point && round === fault.round) { crashes++; throw new Error(`simulated crash at ${point} of round ${round}`); }
      }),
    });
    await first.start();
    for (const n of nodes) await n.start();
    let agg = first;
    const outcome = await first.done.then(() => 'finished', () => 'crashed');
    if (outcome === 'crashed') {
      await first.stop();
      // A new incarnation: same transactional id and consumer group, nothing but the log to go on.
      agg = await createAggregator({ signer: signer(m, 'aggregator'), manifest: m, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false });
      await agg.start();
      await agg.done;
    }
    await Promise.all(nodes.map((n) => n.done));
    await Promise.all(nodes.map((n) => n.stop()));
    await agg.stop();
    return { versions: await readVersions(t, m), audits: await readAudit(t, m), crashes };
  }

  function expectSameWeights(a: ModelVersionRecord[], b: ModelVersionRecord[]) {
    expect(a.map((v) => v.version)).toEqual(b.map((v) => v.version));
    for (let i = 0; i < a.length; i++) {
      const wa = unpackTensors(a[i]!.tensors);
      const wb = unpackTensors(b[i]!.tensors);
      for (let t = 0; t < wa.length; t++) {
        const x = wa[t]!.values;
        const y = wb[t]!.values;
        let maxRel = 0;
        for (let j = 0; j < x.length; j++) maxRel = Math.max(maxRel, Math.abs(x[j]! - y[j]!) / Math.max(1e-12, Math.abs(y[j]!)));
        expect(maxRel, `version ${a[i]!.version} tensor ${wa[t]!.name}`).toBeLessThanOrEqual(1e-6);
      }
      // Update ids are random (nobody can compute one ahead), so two runs compare by who contributed.
      expect(a[i]!.contributors.map((c) => c.nodeId).sort()).toEqual(b[i]!.contributors.map((c) => c.nodeId).sort());
    }
  }

  it.each([
    { point: 'mid-round' as const, round: 2 },
    { point: 'before-commit' as const, round: 1 },
  ])('recovers from an aggregator crash ($point, round $round) with the versions of an uninterrupted run', async (fault) => {
    const m = manifest({ rounds: { count: 2, targetUpdates: 3, minUpdates: 3, timeoutMs: 60_000 } });
    const reference = await run(m);
    const crashed = await run(m, fault);
    expect(crashed.crashes).toBe(1);
    expectSameWeights(crashed.versions, reference.versions);
    // Each update accepted exactly once in the committed audit trail.
    const accepted = crashed.audits.filter((e) => e.action === 'UPDATE_ACCEPTED').map((e) => e.updateId);
    expect(accepted).toHaveLength(6);
    expect(new Set(accepted).size).toBe(6);
  }, 120_000);

  it('rejects forged updates with a reason each, and keeps their bytes', async () => {
    const m = manifest({ rounds: { count: 1, targetUpdates: 3, minUpdates: 3, timeoutMs: 60_000 } });
    const cluster = new MemoryCluster();
    const t = createMemoryTransport({ cluster, logger });
    const agg = await createAggregator({ signer: signer(m, 'aggregator'), manifest: m, transport: t, logger, evaluate: false });
    await agg.start();
    const topics = pipelineTopics(m);
    const [v0] = await readVersions(t, m);
    const base = unpackTensors(v0!.tensors);
    const forged = (over: Record<string, unknown>, mutate?: (w: typeof base) => void) => {
      const w = base.map((x) => ({ ...x, values: Float32Array.from(x.values) }));
      mutate?.(w);
      const u = {
        updateId: `forged-${Math.random()}`, tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round: 1, baseVersion: 0,
        numExamples: 10, tensors: packTensors(w), metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x', ...over,
      };
      // Signed by the node it names: these test what validation refuses of a node's own well-signed update.
      return toRecords(topics.updates, 'ModelUpdate', u, u.nodeId, m.topics.chunkSizeBytes, {}, signer(m, u.nodeId));
    };
    // The accepted updates differ (base + a small shift of their own), so that an average read from the wrong slot
    // (one a rejected update was decoded into, or a reused one) cannot pass for the right one.
    const shift = (d: number) => (w: typeof base) => { for (const x of w) for (let i = 0; i < x.values.length; i++) x.values[i] = x.values[i]! + d * ((i % 7) - 3) * 1e-3; };
    const p = t.producer();
    await p.connect();
    await p.send(forged({ round: 7 }));
    await p.send(forged({ baseVersion: 3 }));
    await p.send(forged({ nodeId: 'node-2' }, (w) => { w[0]!.values[5] = Number.NaN; }));
    await p.send(forged({ nodeId: 'node-3' }, (w) => { w[1]!.values.fill(1e6); }));
    const good = forged({ updateId: 'dup-1', nodeId: 'node-1', numExamples: 10 }, shift(1));
    await p.send(good);
    await p.send(good);
    await p.send(forged({ nodeId: 'node-2', updateId: 'ok-2', numExamples: 30 }, shift(-2)));
    await p.send(forged({ nodeId: 'node-3', updateId: 'ok-3', numExamples: 60 }, shift(5)));
    await agg.done;
    const a = await readAudit(t, m);
    const codes = a.filter((e) => e.action === 'UPDATE_REJECTED').map((e) => e.details.code);
    expect(codes).toEqual(['future_round', 'wrong_base_version', 'non_finite', 'norm_bound', 'duplicate']);
    const dead: string[] = [];
    await readToEnd(t, topics['dead-letter'], (msg) => { dead.push(msg.headers['fedstream-dlq-code']!.toString()); });
    expect(dead).toEqual(codes);
    const vs = await readVersions(t, m);
    expect(vs.at(-1)!.contributors.map((c) => c.updateId).sort()).toEqual(['dup-1', 'ok-2', 'ok-3']);
    // FedAvg of the three, in float64 in log order, then float32: the bits the version must hold.
    const accepted = [[1, 10], [-2, 30], [5, 60]] as const;
    const want = base.map((x) => {
      const sum = new Float64Array(x.values.length);
      for (const [d, n] of accepted) {
        const w = [{ ...x, values: Float32Array.from(x.values) }];
        shift(d)(w);
        for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + w[0]!.values[i]! * n;
      }
      return Float32Array.from(sum, (v) => v * (1 / 100));
    });
    const got = unpackTensors(vs.at(-1)!.tensors);
    got.forEach((x, i) => expect(Buffer.from(x.values.buffer, x.values.byteOffset, x.values.byteLength).equals(Buffer.from(want[i]!.buffer))).toBe(true));
    await agg.stop();
  }, 60_000);

  it('folds what the strategy buffered once it has caught up with the updates topic, not before', async () => {
    const m = manifest({ rounds: { count: 1, targetUpdates: 6, minUpdates: 6, timeoutMs: 60_000 } });
    const cluster = new MemoryCluster();
    const t = createMemoryTransport({ cluster, logger });
    const events: string[] = [];
    const fedavg = strategyFor(m);
    const spy: Strategy = {
      name: fedavg.name,
      configureRound: (ctx) => fedavg.configureRound(ctx),
      begin: (base, ctx) => {
        const inner = fedavg.begin(base, ctx);
        return {
          get count() { return inner.count; },
          reserve: () => inner.reserve?.(),
          release: (v) => inner.release?.(v),
          fold: (u) => { events.push('fold'); inner.fold(u); },
          flush: () => { events.push('flush'); inner.flush?.(); },
          finish: (r) => inner.finish(r),
        };
      },
    };
    const agg = await createAggregator({ signer: signer(m, 'aggregator'), manifest: m, transport: t, logger, evaluate: false, strategy: spy });
    await agg.start();
    const topics = pipelineTopics(m);
    const [v0] = await readVersions(t, m);
    const update = (j: number) => toRecords(topics.updates, 'ModelUpdate', {
      updateId: `u${j}`, tenant: m.tenant, pipeline: m.name, nodeId: `node-${j}`, round: 1, baseVersion: 0,
      numExamples: 10, tensors: v0!.tensors, metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
    }, `node-${j}`, m.topics.chunkSizeBytes, {}, signer(m, `node-${j}`));
    const p = t.producer();
    await p.connect();
    const seen = async (what: string, n: number) => { while (events.filter((e) => e === what).length < n) await new Promise((r) => setTimeout(r, 5)); };
    // One at a time: each fold is followed by a flush (the aggregator is idle in between).
    for (const j of [1, 2, 3]) {
      await p.send(update(j));
      await seen('flush', j);
    }
    expect(events).toEqual(['fold', 'flush', 'fold', 'flush', 'fold', 'flush']);
    // A backlog (three updates in one append): folded back to back, one flush once drained.
    await p.send([...update(4), ...update(5), ...update(6)]);
    await agg.done;
    expect(events.slice(6)).toEqual(['fold', 'fold', 'fold']);
    expect(events.filter((e) => e === 'flush')).toHaveLength(3);
    await agg.stop();
  }, 60_000);
});
