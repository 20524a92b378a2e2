import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { nodeDataset, nodeIdOf, nodeIndex, testDataset } from '../../src/ml/datasets/index.ts';
import { loadMnist, partitionMnist } from '../../src/ml/datasets/mnist.ts';

function manifest(data: Record<string, unknown>, model: Record<string, unknown> = { inputShape: [784], layers: [{ type: 'dense', units: 10, activation: 'softmax' }] }): Manifest {
  return parseManifest({ apiVersion: 'fedstream/v1', tenant: 't', name: 'p', model, data, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 } });
}

describe('node ids', () => {
  it('node-K, "K" and K are the K-th node, partition K-1', () => {
    expect(nodeIndex('node-1', 10)).toBe(0);
    expect(nodeIndex('node-10', 10)).toBe(9);
    expect(nodeIndex('3', 10)).toBe(2);
    expect(nodeIndex(3, 10)).toBe(2);
    expect(nodeIdOf(2)).toBe('node-3');
    for (const bad of ['node-0', 'node-11', 'n3', 0, 2.5]) expect(() => nodeIndex(bad, 10)).toThrow(ConfigError);
    expect(() => nodeIndex('node-11', 10)).toThrow('nodeId: expected node-1 … node-10 (or a number from 1 to 10) for a pipeline with 10 nodes, got "node-11"');
  });

  it('nodeDataset(mnist) is that partition; testDataset is the held-out split', () => {
    const m = manifest({ source: 'mnist', nodes: 5, partition: 'shards', shardsPerNode: 2, testExamples: 1000, trainExamples: 3000, seed: 9 });
    const { train, test } = loadMnist({ seed: 9, testExamples: 1000, trainExamples: 3000 });
    const parts = partitionMnist(train, { nodes: 5, partition: 'shards', shardsPerNode: 2, seed: 9 });
    expect(nodeDataset(m, 'node-3').index).toEqual(parts[2]!.index);
    expect(nodeDataset(m, 5).index).toEqual(parts[4]!.index);
    expect(testDataset(m)!.index).toEqual(test.index);
    expect(() => nodeDataset(m, 'node-6')).toThrow(ConfigError);
  });

  it('mnist needs a model input of 784 values', () => {
    const m = manifest({ source: 'mnist' }, { inputShape: [28, 28, 3], layers: [{ type: 'flatten' }, { type: 'dense', units: 10 }] });
    expect(() => nodeDataset(m, 1)).toThrow(/^model\.inputShape: data\.source mnist gives 784 features/);
  });
});
