/**
 * The node SDK (`fedstream/node`): use it to run a FedStream node inside another program.
 *
 * ```ts
 * import { createNode } from 'fedstream/node';
 * const node = await createNode({ manifest, transport, nodeId: 'site-7', logger, data: myDataset, signer: loadSigner('site-7.key') });
 * await node.start();
 * await node.done;   // resolves when the pipeline finishes
 * ```
 *
 * Importing this module does not load TensorFlow.js: `createNode` loads it (through ml's `loadTfRuntime`) when it
 * builds the trainer, and a node with its own {@link LocalTrainer} (`new FedNode({ trainer, ... })`) never does.
 */
import type { Logger } from 'pino';
import type { Manifest } from '../config/index.ts';
import { loadDatasetFile, loadTfRuntime, nodeDataset, product, type BackendName, type Dataset } from '../ml/index.ts';
import type { Transport } from '../transport/index.ts';
import { FedNode, type NodeOptions } from './runtime.ts';
import { tfjsLocalTrainer } from './trainer.ts';

export { FedNode, SDK_VERSION, type NodeOptions } from './runtime.ts';
export { tfjsLocalTrainer, trainOptionsOf, type LocalTrainer, type LocalTrainInput, type LocalTrainResult, type RoundTrainOptions } from './trainer.ts';
export { ATTACKS, NOISE_SIGMA, byzantineTrainer, corrupt, type Attack, type LabelFlipTrainer } from './byzantine.ts';
export { decodeRoundConfig, encodeRoundConfig, type RoundConfig } from '../protocol/index.ts';
// A node signs its updates with its own key (`signer: loadSigner('node-7.key')`; docs/security.md, "Signatures").
export { generateKeyPair, loadSigner, participantRegistry, type ParticipantRegistry, type Signer } from '../protocol/index.ts';
export {
  countParameters, labelHistogram, loadDatasetFile, loadMnist, loadTfRuntime, nodeDataset, parseDataset, partitionMnist, testDataset,
  type BackendName, type Dataset, type TfRuntime, type TrainOptions, type TrainResult,
} from '../ml/index.ts';

export interface CreateNodeOptions {
  manifest: Manifest;
  transport: Transport;
  nodeId: string;
  logger: Logger;
  /** The node's local data; default: its MNIST partition or its file from the manifest. */
  data?: Dataset;
  /** A data file (CSV, JSON, JSON Lines; docs/node-data.md) instead of the manifest's source. */
  dataPath?: string;
  backend?: BackendName;
  heartbeatMs?: number;
  fault?: string;
  onUpdate?: NodeOptions['onUpdate'];
  /** This node's private key (`loadSigner(file)`), and the participants (default: the manifest's). */
  signer?: NodeOptions['signer'];
  registry?: NodeOptions['registry'];
  instrumentation?: NodeOptions['instrumentation'];
}

/**
 * A node with the tfjs trainer over its local data. Loads TensorFlow.js and initialises its backend (`backend`, else
 * FEDSTREAM_TFJS_BACKEND, else the fastest available); throws a ConfigError or DATA_INVALID error when the data
 * cannot be loaded.
 */
export async function createNode(o: CreateNodeOptions): Promise<FedNode> {
  const tf = await loadTfRuntime();
  await tf.initBackend(o.backend, { logger: o.logger });
  const m = o.manifest;
  const numClasses = m.data.source === 'file' ? m.data.numClasses : 10;
  const data = o.data ?? (o.dataPath ? loadDatasetFile(o.dataPath, { numClasses, features: product(m.model.inputShape) }) : nodeDataset(m, o.nodeId));
  return new FedNode({
    manifest: m, transport: o.transport, nodeId: o.nodeId, trainer: tfjsLocalTrainer(tf, data), logger: o.logger,
    heartbeatMs: o.heartbeatMs, fault: o.fault, onUpdate: o.onUpdate, signer: o.signer, registry: o.registry, instrumentation: o.instrumentation,
  });
}
