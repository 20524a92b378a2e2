/** Messages between {@link WorkerPoolTrainer} and its training worker threads (structured clone). */
import type { Weights } from '../codec/index.ts';
import type { ErrorCode } from '../common/index.ts';
import type { Manifest, ModelSpec } from '../config/index.ts';
import type { RoundConfig } from '../node/index.ts';

export interface TrainRequest {
  id: number;
  /** The pipeline manifest: the worker loads the node's data from its `data` section. */
  manifest: Manifest;
  nodeId: string;
  spec: ModelSpec;
  weights: Weights;
  /** The round's training configuration (epochs, batch size, learning rate, optimizer, …), honoured key by key. */
  config: RoundConfig;
  seed: number;
  /** Train on labels y → numClasses − 1 − y (a label-flipping Byzantine node, node/byzantine.ts). */
  flipLabels?: boolean;
  /** The tfjs backend to ask for (default: the usual order). */
  backend?: string;
}

/** What a worker's training job produced. */
export interface TrainOutcome {
  weights: Weights;
  numExamples: number;
  metrics: Record<string, number>;
  trainingMs: number;
  backend: string;
  steps: number;
  batchSize: number;
}

export type TrainReply =
  | { type: 'ready' }
  | ({ type: 'result'; id: number } & TrainOutcome)
  | { type: 'error'; id: number; error: { code: ErrorCode; message: string; details: Record<string, unknown>; retriable: boolean } };
