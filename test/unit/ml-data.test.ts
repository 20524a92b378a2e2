import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, FedStreamError } from '../../src/common/errors.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import {
  type Dataset, labelHistogram, loadDatasetFile, loadMnist, mulberry32, nodeDataset, nodeIdOf, nodeIndex, parseDataset, partitionMnist, permutation, testDataset,
} from '../../src/ml/data.ts';

const FIXTURES = 'test/fixtures/data';

function manifest(data: Record<string, unknown>, model: Record<string, unknown> = { inputShape: [784], layers: [{ type: 'dense', units: 10, activation: 'softmax' }] }): Manifest {
  return parseManifest({ apiVersion: 'fedstream/v1', tenant: 't', name: 'p', model, data, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 } });
}

const distinctLabels = (d: Dataset) => labelHistogram(d).filter((c) => c > 0).length;
// Byte comparison: toEqual walks millions of elements one by one.
const sameBytes = (x: ArrayBufferView, y: ArrayBufferView) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

function thrown(fn: () => unknown): FedStreamError {
  try {
    fn();
  } catch (e) {
    return e as FedStreamError;
  }
  throw new Error('expected an error');
}

const cases: Array<[string, string]> = [
  ['bad-feature.csv', "test/fixtures/data/bad-feature.csv line 4: feature f1 is not a number ('abc')"],
  ['bad-empty.csv', 'test/fixtures/data/bad-empty.csv line 2: feature f1 is empty'],
  ['bad-label.csv', 'test/fixtures/data/bad-label.csv line 3: label 7 is outside 0..2 (numClasses 3)'],
  ['bad-count.csv', 'test/fixtures/data/bad-count.csv line 3: expected 5 fields (label and 4 features), found 4'],
  ['bad-header.csv', 'test/fixtures/data/bad-header.csv line 1: expected a header "label,f0,f1,…", found "x,f0,f1,f2,f3"'],
  ['wrong-width.csv', 'test/fixtures/data/wrong-width.csv line 1 (header): 3 features, but the model expects 4 (the product of model.inputShape)'],
  ['bad-syntax.json', "test/fixtures/data/bad-syntax.json line 4, column 43: JSON syntax error: Unexpected token ']'"],
  ['bad-feature.json', 'test/fixtures/data/bad-feature.json examples[1]: features[2] is not a number ("x")'],
  ['bad-syntax.jsonl', "test/fixtures/data/bad-syntax.jsonl line 3, column 13: JSON syntax error: Expected ',' or '}' after property value"],
  ['bad-width.jsonl', 'test/fixtures/data/bad-width.jsonl line 2: 3 features, but the model expects 4 (the product of model.inputShape)'],
];

describe('seeded randomness', () => {
  it('is pinned: partitions must not change between releases or machines', () => {
    expect(Array.from(permutation(10, mulberry32(1)))).toEqual(Array.from(permutation(10, mulberry32(1))));
    const rng = mulberry32(42);
    expect([rng(), rng(), rng()].map((v) => v.toFixed(10))).toEqual(['0.6011037519', '0.4482905590', '0.8524657935']);
  });
});

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

describe('data files', () => {
  const load = (file: string, numClasses = 3, features: number | undefined = 4) => loadDatasetFile(`${FIXTURES}/${file}`, { numClasses, ...(features ? { features } : {}) });

  it('reads CSV, CRLF CSV, JSON and JSON Lines to the same examples', () => {
    const csv = load('good.csv');
    expect(csv.n).toBe(3);
    expect(csv.features).toBe(4);
    expect(Array.from(csv.labels)).toEqual([0, 1, 2]);
    expect(csv.labels).toBeInstanceOf(Uint8Array);
    expect(Array.from(csv.index!)).toEqual([2, 3, 5]); // line numbers; the blank line is skipped
    for (const other of ['good.json', 'good.jsonl']) {
      const d = load(other);
      expect(d.xs).toEqual(csv.xs);
      expect(d.labels).toEqual(csv.labels);
    }
    expect(Array.from(load('good-crlf.csv').labels)).toEqual([2, 1]);
    expect(load('good.csv', 1000).labels).toBeInstanceOf(Int32Array);
    expect(labelHistogram(csv)).toEqual([1, 1, 1]);
  });

  it.each(cases)('%s: DATA_INVALID naming file, line and field', (file, message) => {
    const err = thrown(() => load(file));
    expect(err).toBeInstanceOf(FedStreamError);
    expect(err.code).toBe('DATA_INVALID');
    expect(err.message).toBe(message);
    expect(err.details.file).toBe(`${FIXTURES}/${file}`);
  });

  it('checks feature counts between rows even without a model', () => {
    expect(() => parseDataset('{"label":0,"features":[1,2]}\n{"label":1,"features":[1]}\n', { file: 'x.jsonl', numClasses: 2 })).toThrow('x.jsonl line 2: 1 features, but earlier examples have 2');
    expect(() => parseDataset('label,f0\n', { file: 'e.csv', numClasses: 2 })).toThrow('e.csv: no examples');
    expect(parseDataset('\uFEFFlabel,f0\n1,2\n', { file: 'bom.csv', numClasses: 2 }).n).toBe(1);
    expect(() => parseDataset('label,f0\n1,Infinity\n', { file: 'i.csv', numClasses: 2 })).toThrow("i.csv line 2: feature f0 is not a finite number ('Infinity')");
    expect(() => parseDataset('label,f0\n1.5,1\n', { file: 'l.csv', numClasses: 2 })).toThrow('l.csv line 2: label is not an integer ("1.5")');
  });

  it('locates JSON syntax errors where V8 gives no position', () => {
    const text = '{"examples": [\n  {"label": 0, "features": [1, 2]},\n  {"label": 1, "features": [1, 2}]}';
    expect(() => parseDataset(text, { file: 'p.json', numClasses: 2 })).toThrow(/^p\.json line 3, column 33: JSON syntax error/);
  });

  it('reports a missing file as CONFIG_NOT_FOUND', () => {
    expect(thrown(() => load('nope.csv')).code).toBe('CONFIG_NOT_FOUND');
  });

  it('nodeDataset(file) substitutes {nodeId} and resolves against baseDir', () => {
    const csv = manifest({ source: 'file', path: 'nodes/{nodeId}.csv', numClasses: 3 }, { inputShape: [2, 2], layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }] });
    const d = nodeDataset(csv, 'node-1', { baseDir: resolve(FIXTURES) });
    expect(d.n).toBe(2);
    expect(nodeDataset(csv, 1, { baseDir: resolve(FIXTURES) }).xs).toEqual(d.xs);
    const jsonl = manifest({ source: 'file', path: `${FIXTURES}/nodes/{nodeId}.jsonl`, testPath: `${FIXTURES}/good.csv`, numClasses: 3 }, { inputShape: [4], layers: [{ type: 'dense', units: 3 }] });
    expect(Array.from(nodeDataset(jsonl, 'hospital-a').labels)).toEqual([2, 0, 1]);
    expect(testDataset(jsonl)!.n).toBe(3);
    expect(thrown(() => nodeDataset(jsonl, 'node-2')).message).toBe(`data file not found: ${FIXTURES}/nodes/node-2.jsonl (${resolve(FIXTURES, 'nodes/node-2.jsonl')})`);
    expect(() => nodeDataset(jsonl, '../good')).toThrow(ConfigError);
  });
});

describe('docs/node-data.md', () => {
  const doc = readFileSync('docs/node-data.md', 'utf8');

  it('has examples that parse', () => {
    const blocks = [...doc.matchAll(/```(csv|json|jsonl)\n([\s\S]*?)```/g)];
    expect(blocks.map((b) => b[1])).toEqual(['csv', 'json', 'jsonl']);
    for (const [, format, text] of blocks) {
      const d = parseDataset(text!, { file: `doc.${format}`, numClasses: 3, features: 4, format: format as 'csv' | 'json' | 'jsonl' });
      expect(d.n).toBeGreaterThan(1);
    }
  });

  it('lists the messages the fixtures really produce', () => {
    for (const [file, message] of cases) expect(doc).toContain(`| \`${file}\` | \`${message}\` |`);
  });
});
