import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/common/errors.ts';
import { type Dataset, labelHistogram } from '../../src/ml/datasets/dataset.ts';
import { loadMnist, partitionMnist } from '../../src/ml/datasets/mnist.ts';

const distinctLabels = (d: Dataset) => labelHistogram(d).filter((c) => c > 0).length;
// Byte comparison: toEqual walks millions of elements one by one.
const sameBytes = (x: ArrayBufferView, y: ArrayBufferView) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

describe('loadMnist', () => {
  let a: { train: Dataset; test: Dataset };
  beforeAll(() => {
    a = loadMnist({ seed: 42, testExamples: 1000 });
  });

  it('holds out a stratified test set, disjoint from the train pool', () => {
    expect(a.test.n).toBe(1000);
    expect(a.train.n).toBe(9000);
    expect(a.train.xs.length).toBe(9000 * 784);
    const all = new Set([...a.train.index!, ...a.test.index!]);
    expect(all.size).toBe(10_000);
    // The package has 863 fives and 1,127 ones: each class gives its share of the test set.
    const h = labelHistogram(a.test);
    expect(h[5]).toBe(86);
    expect(h[1]).toBe(113);
    expect(h.reduce((x, y) => x + y, 0)).toBe(1000);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    const again = loadMnist({ seed: 42, testExamples: 1000 });
    expect(again.test.index).toEqual(a.test.index);
    expect(again.train.index).toEqual(a.train.index);
    expect(sameBytes(again.train.xs, a.train.xs)).toBe(true);
    const other = loadMnist({ seed: 43, testExamples: 1000 });
    expect(other.test.index).not.toEqual(a.test.index);
  });

  it('gives the digits of the mnist package, in its per-digit order', () => {
    const mnist = createRequire(import.meta.url)('mnist') as Array<{ length: number; get(i: number): number[] }>;
    const offsets = [0];
    for (let d = 0; d < 10; d++) offsets.push(offsets[d]! + mnist[d]!.length);
    for (const row of [0, 1, 4321, 8999]) {
      const global = a.train.index![row]!;
      const d = offsets.findIndex((o, i) => global >= o && global < offsets[i + 1]!);
      expect(a.train.labels[row]).toBe(d);
      expect(Array.from(a.train.xs.subarray(row * 784, (row + 1) * 784))).toEqual(Array.from(Float32Array.from(mnist[d]!.get(global - offsets[d]!))));
    }
  });

  it('cuts the train pool to trainExamples and checks the sizes', () => {
    expect(loadMnist({ seed: 1, testExamples: 500, trainExamples: 2000 }).train.n).toBe(2000);
    expect(() => loadMnist({ seed: 1, testExamples: 10_000 })).toThrow(ConfigError);
    expect(() => loadMnist({ seed: 1, testExamples: 1000, trainExamples: 9001 })).toThrow(/data\.trainExamples: expected an integer from 1 to 9000/);
  });

  describe('partitionMnist', () => {
    it('iid: even sizes that sum to the pool, every node sees all ten labels, deterministic', () => {
      const parts = partitionMnist(a.train, { nodes: 10, partition: 'iid', shardsPerNode: 2, seed: 42 });
      expect(parts.map((p) => p.n)).toEqual(Array(10).fill(900));
      expect(parts.every((p) => distinctLabels(p) === 10)).toBe(true);
      const ids = parts.flatMap((p) => [...p.index!]);
      expect(new Set(ids).size).toBe(9000);
      const again = partitionMnist(a.train, { nodes: 10, partition: 'iid', shardsPerNode: 2, seed: 42 });
      expect(again.map((p) => p.index)).toEqual(parts.map((p) => p.index));
      const uneven = partitionMnist(a.train, { nodes: 7, partition: 'iid', shardsPerNode: 2, seed: 42 });
      expect(uneven.reduce((s, p) => s + p.n, 0)).toBe(9000);
      expect(Math.max(...uneven.map((p) => p.n)) - Math.min(...uneven.map((p) => p.n))).toBeLessThanOrEqual(1);
    });

    it('shards: label skew (few labels per node), sizes sum to the pool, disjoint, deterministic per seed', () => {
      const parts = partitionMnist(a.train, { nodes: 10, partition: 'shards', shardsPerNode: 2, seed: 42 });
      expect(parts.reduce((s, p) => s + p.n, 0)).toBe(9000);
      expect(new Set(parts.flatMap((p) => [...p.index!])).size).toBe(9000);
      for (const p of parts) expect(distinctLabels(p)).toBeLessThanOrEqual(4);
      expect(parts.reduce((s, p) => s + distinctLabels(p), 0) / parts.length).toBeLessThan(3.5);
      const again = partitionMnist(a.train, { nodes: 10, partition: 'shards', shardsPerNode: 2, seed: 42 });
      expect(again.map((p) => p.index)).toEqual(parts.map((p) => p.index));
      const other = partitionMnist(a.train, { nodes: 10, partition: 'shards', shardsPerNode: 2, seed: 7 });
      expect(other.map((p) => p.index)).not.toEqual(parts.map((p) => p.index));
      // The 100-client setting of the paper: each client has at most two shards' labels.
      const many = partitionMnist(a.train, { nodes: 100, partition: 'shards', shardsPerNode: 2, seed: 42 });
      expect(many.every((p) => distinctLabels(p) <= 4 && p.n === 90)).toBe(true);
    });

    it('rejects more shards than examples', () => {
      const small = loadMnist({ seed: 1, testExamples: 1000, trainExamples: 10 });
      expect(() => partitionMnist(small.train, { nodes: 6, partition: 'shards', shardsPerNode: 2, seed: 1 })).toThrow(/data\.shardsPerNode/);
      expect(() => partitionMnist(small.train, { nodes: 11, partition: 'iid', shardsPerNode: 1, seed: 1 })).toThrow(/data\.nodes/);
    });
  });
});
