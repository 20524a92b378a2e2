import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import { type Dataset, nodeIdOf, nodeIndex, product } from './dataset.ts';
import { loadDatasetFile } from './file.ts';
import { loadMnist, MNIST_FEATURES, partitionMnist } from './mnist.ts';

/**
 * The data sources a manifest's `data.source` may name, one file each (mnist.ts, file.ts); this file picks one.
 * A new source is a new file here and a branch in {@link nodeDataset} and {@link testDataset}.
 */
export * from './dataset.ts';
export * from './file.ts';
export * from './mnist.ts';

export interface NodeDataOptions {
  /** Directory that relative data paths are resolved against; default the working directory. */
  baseDir?: string;
}

function expectMnistShape(manifest: Manifest): void {
  const f = product(manifest.model.inputShape);
  if (f !== MNIST_FEATURES) {
    throw new ConfigError('model.inputShape', `data.source mnist gives ${MNIST_FEATURES} features (28×28) per digit; expected a shape such as [784] or [28, 28, 1], got [${manifest.model.inputShape.join(', ')}]`);
  }
}

/** The id that replaces `{nodeId}` in a file path: numbers become `node-K`; ids must be safe as a file name. */
function fileNodeId(nodeId: string | number): string {
  const id = typeof nodeId === 'number' ? nodeIdOf(nodeId - 1) : nodeId;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) || id.includes('..')) {
    throw new ConfigError('nodeId', `expected letters, digits, ".", "_" or "-" (no "..") for a node id used in a file path, got "${id}"`);
  }
  return id;
}

/**
 * The local data of one node. For `mnist`, node `node-K` (or K) gets partition K-1 of
 * {@link partitionMnist} over the train pool of {@link loadMnist}. For `file`, `{nodeId}` in `data.path`
 * is replaced by the node id and the file is read; relative paths resolve against `baseDir`.
 */
export function nodeDataset(manifest: Manifest, nodeId: string | number, options: NodeDataOptions = {}): Dataset {
  const data = manifest.data;
  if (data.source === 'mnist') {
    expectMnistShape(manifest);
    const index = nodeIndex(nodeId, data.nodes);
    const { train } = loadMnist({ seed: data.seed, testExamples: data.testExamples, ...(data.trainExamples !== undefined ? { trainExamples: data.trainExamples } : {}) });
    return partitionMnist(train, { nodes: data.nodes, partition: data.partition, shardsPerNode: data.shardsPerNode, seed: data.seed })[index]!;
  }
  const shown = data.path.replaceAll('{nodeId}', fileNodeId(nodeId));
  const path = isAbsolute(shown) ? shown : resolve(options.baseDir ?? process.cwd(), shown);
  return loadDatasetFile(path, { numClasses: data.numClasses, features: product(manifest.model.inputShape), displayName: shown });
}

/** The held-out evaluation set: MNIST's test split, or `data.testPath` for files (undefined when absent). */
export function testDataset(manifest: Manifest, options: NodeDataOptions = {}): Dataset | undefined {
  const data = manifest.data;
  if (data.source === 'mnist') {
    expectMnistShape(manifest);
    return loadMnist({ seed: data.seed, testExamples: data.testExamples, ...(data.trainExamples !== undefined ? { trainExamples: data.trainExamples } : {}) }).test;
  }
  if (data.testPath === undefined) return undefined;
  const path = isAbsolute(data.testPath) ? data.testPath : resolve(options.baseDir ?? process.cwd(), data.testPath);
  return loadDatasetFile(path, { numClasses: data.numClasses, features: product(manifest.model.inputShape), displayName: data.testPath });
}
