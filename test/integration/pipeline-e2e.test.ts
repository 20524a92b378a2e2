import { describe, expect, it } from 'vitest';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { weightsSha256, unpackTensors } from '../../src/codec/index.ts';
import { deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, quietLogger, readAudit, readVersions, smallManifest, writeManifest } from './pipeline-helpers.ts';

describe('the federated round on the real broker', () => {
  it('one aggregator and 5 node processes run 3 rounds: versions 1..3 with lineage, accuracy rises', async () => {
    const brokers = kafkaBrokers();
    const m = smallManifest({
      data: { source: 'mnist', nodes: 5, partition: 'iid', testExamples: 1000, trainExamples: 2500, seed: 3 },
      rounds: { count: 3, targetUpdates: 5, minUpdates: 5, timeoutMs: 120_000 },
    });
    const { file, dir } = writeManifest(m);
    const agg = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator' });
    const nodeIds = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'];
    const nodes = nodeIds.map((id) => fedstream(['node', '-p', file, '--kafka', brokers, '--node-id', id, '--heartbeat-ms', '1000'], { dir, name: id }));
    await expectExit(agg, 0, 'aggregator');
    for (const [i, n] of nodes.entries()) await expectExit(n, 0, nodeIds[i]!);

    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const versions = await readVersions(t, m);
    expect(versions.map((v) => v.version)).toEqual([0, 1, 2, 3]);
    for (const v of versions.slice(1)) {
      expect(v.parentVersion).toBe(v.version - 1);
      expect(v.round).toBe(v.version);
      expect(v.strategy).toBe('fedavg');
      expect(v.contributors.map((c) => c.nodeId).sort()).toEqual(nodeIds);
      expect(v.contributors.every((c) => c.numExamples === 500)).toBe(true);
      expect(v.totalExamples).toBe(2500);
      expect(weightsSha256(unpackTensors(v.tensors))).toBe(v.weightsSha256);
    }
    const accuracy = versions.map((v) => v.metrics.eval_accuracy!);
    expect(accuracy[0]).toBeLessThan(0.3);
    expect(accuracy[1]).toBeGreaterThan(accuracy[0]! + 0.3);
    expect(accuracy[3]).toBeGreaterThan(accuracy[1]!);
    expect(accuracy[3]).toBeGreaterThan(0.8);

    const audit = await readAudit(t, m);
    expect(audit.filter((e) => e.action === 'UPDATE_ACCEPTED')).toHaveLength(15);
    expect(audit.filter((e) => e.action === 'UPDATE_REJECTED')).toHaveLength(0);
    expect(audit.at(-1)!.action).toBe('PIPELINE_FINISHED');
  });
});
