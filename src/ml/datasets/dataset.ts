import { ConfigError } from '../../common/index.ts';

/** The Dataset type every source produces, the helpers that work on any dataset, and node ids. */

/**
 * A node's local examples as plain typed arrays (the trainer makes tensors batch by batch), so that
 * memory is explicit: `xs` holds n × features float32 values, row-major.
 */
export interface Dataset {
  xs: Float32Array;
  labels: Uint8Array | Int32Array;
  n: number;
  features: number;
  numClasses: number;
  /** Position of each example in its source: the MNIST digit index (0..9999) or the file's line number. */
  index?: Int32Array;
}

/** Number of values in a tensor of `shape` (1 for []): the features per example of `model.inputShape`. */
export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A label array that fits `numClasses`: one byte per label up to 256 classes. */
export function labelArray(n: number, numClasses: number): Uint8Array | Int32Array {
  return numClasses <= 256 ? new Uint8Array(n) : new Int32Array(n);
}

/** The examples at `rows`, in that order, copied into a new dataset. */
export function subsetDataset(ds: Dataset, rows: ArrayLike<number>): Dataset {
  const n = rows.length;
  const F = ds.features;
  const xs = new Float32Array(n * F);
  const labels = labelArray(n, ds.numClasses);
  const index = ds.index ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    xs.set(ds.xs.subarray(r * F, (r + 1) * F), i * F);
    labels[i] = ds.labels[r]!;
    if (index) index[i] = ds.index![r]!;
  }
  return { xs, labels, n, features: F, numClasses: ds.numClasses, ...(index ? { index } : {}) };
}

/** Examples per class, `numClasses` long: what telemetry reports about a node's (non-)IIDness. */
export function labelHistogram(ds: Pick<Dataset, 'labels' | 'n' | 'numClasses'>): number[] {
  const h = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.n; i++) h[ds.labels[i]!]! += 1;
  return h;
}

/** The id of the node holding partition `index` (0-based): `node-1`, `node-2`, … */
export function nodeIdOf(index: number): string {
  return `node-${index + 1}`;
}

/**
 * The 0-based partition of a node: `node-K`, `K` (a string of digits) and the number `K` all mean the K-th node,
 * counted from 1, so `node-1` holds partition 0. Throws a ConfigError when K is outside 1..nodes.
 */
export function nodeIndex(nodeId: string | number, nodes: number): number {
  const m = typeof nodeId === 'number' ? [String(nodeId), String(nodeId)] : /^(?:node-)?(\d+)$/.exec(nodeId.trim());
  const k = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(k) || k < 1 || k > nodes) {
    throw new ConfigError('nodeId', `expected node-1 … node-${nodes} (or a number from 1 to ${nodes}) for a pipeline with ${nodes} nodes, got "${nodeId}"`);
  }
  return k - 1;
}

