/**
 * Large models: updates and versions of more than 4M float32 parameters (16 MB) travel through a
 * broker with Kafka's default message limit (1 MB) by chunking.
 */
import { describe, expect, it } from 'vitest';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { countParameters } from '../../src/ml/model.ts';
import { unpackTensors, weightsSha256 } from '../../src/codec/index.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, quietLogger, readAudit, readVersions, smallManifest, writeManifest } from './pipeline-helpers.ts';

describe('large models on the real broker', () => {
  it('a 4M-parameter model: 16 MB updates and versions cross the 1 MB message limit in chunks', async () => {
    const brokers = kafkaBrokers();
    const m = smallManifest({
      model: { inputShape: [784], seed: 7, layers: [{ type: 'dense', units: 5120, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, partition: 'iid', testExamples: 200, trainExamples: 200, seed: 11 },
      training: { epochs: 1, batchSize: 50, learningRate: 0.05 },
      rounds: { count: 1, targetUpdates: 2, minUpdates: 2, timeoutMs: 300_000 },
    });
    const params = countParameters(m.model);
    expect(params).toBeGreaterThanOrEqual(4_000_000);

    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const admin = t.admin();
    deferCleanup(() => admin.close());

    const { file, dir } = writeManifest(m);
    const agg = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator' });
    const nodes = ['node-1', 'node-2'].map((id) => fedstream(['node', '-p', file, '--kafka', brokers, '--node-id', id], { dir, name: id }));
    await expectExit(agg, 0, 'aggregator');
    for (const n of nodes) await expectExit(n, 0, 'node');

    // The broker kept Kafka's default limit; every message is under it.
    const topics = pipelineTopics(m);
    const { configs } = await admin.describeTopic(topics.updates);
    expect(configs['max.message.bytes']).toBeUndefined();
    let updateChunks = 0;
    let largest = 0;
    await readToEnd(t, topics.updates, (msg) => {
      largest = Math.max(largest, msg.value?.length ?? 0);
      if (msg.headers['fedstream-chunk-index']) updateChunks++;
    });
    expect(largest).toBeLessThan(1_048_576);
    expect(updateChunks).toBeGreaterThanOrEqual(2 * Math.ceil((params * 4) / m.topics.chunkSizeBytes));

    const versions = await readVersions(t, m);
    expect(versions.map((v) => v.version)).toEqual([0, 1]);
    const w = unpackTensors(versions[1]!.tensors);
    expect(w.reduce((s, x) => s + x.values.length, 0)).toBe(params);
    expect(weightsSha256(w)).toBe(versions[1]!.weightsSha256);
    expect(versions[1]!.contributors.map((c) => c.nodeId).sort()).toEqual(['node-1', 'node-2']);
    const audit = await readAudit(t, m);
    expect(audit.filter((e) => e.action === 'UPDATE_ACCEPTED')).toHaveLength(2);
    expect(audit.filter((e) => e.action === 'UPDATE_REJECTED')).toHaveLength(0);
  });
});
