/**
 * The case ../shared/cases/faults/metric-missing-key (NVFlare #4778; issue 13, kind 1) as it was given, end to end:
 * three updates through the aggregator on the in-memory transport, the version's metrics read back from the models
 * topic. node-1 (10 examples) reports loss 1 and accuracy 0.5; node-2 (30) only loss 2; node-3 (60) loss NaN and
 * accuracy 0.9. Each metric's example-weighted mean is over the nodes that reported it with a finite value:
 * train_accuracy = (0.5·10 + 0.9·60) / 70 = 0.8428571428571429, train_loss = (1·10 + 2·30) / 40 = 1.75
 * (the case's expected.txt; before the fix, 0.59 and 0.7). The other members of the kind: hostile-limits.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { packTensors, unpackTensors } from '../../src/codec/index.ts';
import { readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

describe('case metric-missing-key', () => {
  it('averages accuracy over the two nodes that reported it finite (0.8428571428571429) and loss over the two finite losses (1.75)', async () => {
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'bh', name: `case-${Math.random().toString(36).slice(2, 8)}`,
      model: { inputShape: [4], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 3, partition: 'iid', testExamples: 100, trainExamples: 300, seed: 5 },
      rounds: { count: 1, targetUpdates: 3, minUpdates: 3, timeoutMs: 60_000 },
      // The case's updates are unsigned, as it wrote them.
      participants: { enrolment: 'open' },
    });
    const t = createMemoryTransport({ cluster: new MemoryCluster(), logger });
    const agg = await createAggregator({ manifest: m, transport: t, logger, evaluate: false });
    await agg.start();
    const base = unpackTensors((await readVersions(t, m))[0]!.tensors);
    const p = t.producer();
    await p.connect();
    const sent = [['node-1', 10, { loss: 1, accuracy: 0.5 }], ['node-2', 30, { loss: 2 }], ['node-3', 60, { loss: Number.NaN, accuracy: 0.9 }]] as const;
    for (const [nodeId, numExamples, metrics] of sent) {
      const weights = base.map((x) => ({ ...x, values: Float32Array.from(x.values, (v) => v + 0.01) }));
      await p.send(toRecords(pipelineTopics(m).updates, 'ModelUpdate', {
        updateId: `u-${nodeId}`, tenant: m.tenant, pipeline: m.name, nodeId, round: 1, baseVersion: 0, numExamples,
        tensors: packTensors(weights), metrics: { ...metrics }, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
      }, nodeId, m.topics.chunkSizeBytes));
    }
    await agg.done;
    await p.disconnect();
    await agg.stop();
    const v1 = (await readVersions(t, m))[1]!;
    expect(v1.contributors.map((c) => c.nodeId).sort()).toEqual(['node-1', 'node-2', 'node-3']);
    expect(v1.metrics.train_accuracy).toBe(0.8428571428571429);
    expect(v1.metrics.train_loss).toBe(1.75);
  });
});
