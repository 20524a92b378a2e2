/**
 * The node SDK: use it to run a FedStream node inside another program.
 *
 * ```ts
 * import { createNode } from 'fedstream/node';
 * const node = await createNode({ manifest, transport, nodeId: 'site-7', logger, data: myDataset });
 * await node.start();
 * await node.done;   // resolves when the pipeline finishes
 * ```
 */
import type { Logger } from 'pino';
import type { Manifest } from '../config/manifest.ts';
import type { Transport } from '../transport/types.ts';
import { FedNode, type LocalTrainer } from './runtime.ts';
import type { Dataset } from '../ml/data.ts';

export { FedNode, updateIdFor, SDK_VERSION, type LocalTrainer, type NodeOptions } from './runtime.ts';
export { initBackend, backendInfo, type BackendName } from '../ml/backend.ts';
export { buildModel, getWeights, setWeights, initialWeights, countParameters } from '../ml/model.ts';
export { nodeDataset, testDataset, loadDatasetFile, parseDataset, loadMnist, partitionMnist, labelHistogram, type Dataset } from '../ml/data.ts';
export { Trainer, train, evaluate, type TrainOptions, type TrainResult } from '../ml/trainer.ts';

export interface CreateNodeOptions {
  manifest: Manifest;
  transport: Transport;
  nodeId: string;
  logger: Logger;
  /** The node's local data; default: its MNIST partition or its file from the manifest. */
  data?: Dataset;
  /** A data file (CSV, JSON, JSON Lines; docs/node-data.md) instead of the manifest's source. */
  dataPath?: string;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  heartbeatMs?: number;
  fault?: string;
  onUpdate?: ConstructorParameters<typeof FedNode>[0]['onUpdate'];
}

/** A node with the tfjs trainer over its local data. */
export async function createNode(o: CreateNodeOptions): Promise<FedNode> {
  const { initBackend } = await import('../ml/backend.ts');
  const { nodeDataset, loadDatasetFile, product } = await import('../ml/data.ts');
  const { train } = await import('../ml/trainer.ts');
  await initBackend(o.backend, { logger: o.logger });
  const m = o.manifest;
  const numClasses = m.data.source === 'file' ? m.data.numClasses : 10;
  const data = o.data ?? (o.dataPath ? loadDatasetFile(o.dataPath, { numClasses, features: product(m.model.inputShape) }) : nodeDataset(m, o.nodeId));
  const trainer: LocalTrainer = {
    train: (input) => train({ ...input, data, optimizer: m.training.optimizer }),
  };
  return new FedNode({ manifest: m, transport: o.transport, nodeId: o.nodeId, trainer, logger: o.logger, heartbeatMs: o.heartbeatMs, fault: o.fault, onUpdate: o.onUpdate });
}
