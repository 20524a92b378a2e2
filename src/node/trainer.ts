import type { Weights } from '../codec/index.ts';
import type { ModelSpec } from '../config/index.ts';
import type { Dataset, TfRuntime, TrainOptions } from '../ml/index.ts';
import type { RoundConfig } from '../protocol/index.ts';

/**
 * The node's `LocalTrainer` port: what a node needs from whatever trains its model. The node decodes each round's
 * config (protocol/round-config.ts) and passes it through as a typed object; the trainer honours every key of it.
 * The tfjs trainer over the node's own data ({@link tfjsLocalTrainer}) is one implementation; the demo's pool of
 * worker threads (demo/worker-trainer.ts) is another.
 */

export interface LocalTrainInput {
  /** The model, as the base version records it. */
  spec: ModelSpec;
  /** The base version's weights; training starts from them. */
  weights: Weights;
  /** The round's training configuration, with the manifest's `training` section filling what the round leaves out. */
  config: RoundConfig;
  /** Seeds batch order and dropout: the same (round, node) gives the same run. */
  seed: number;
}

export interface LocalTrainResult {
  weights: Weights;
  /** Examples in the local data set: the weight FedAvg gives this update. */
  numExamples: number;
  /** Figures of the last epoch (`loss`, `accuracy`, …), published with the update. */
  metrics: Record<string, number>;
  trainingMs: number;
  /** The tfjs backend that trained (`wasm`, `tensorflow`, `cpu`). */
  backend: string;
}

export interface LocalTrainer {
  train(input: LocalTrainInput): Promise<LocalTrainResult>;
}

/** The training options of the ml trainer that a round config sets. */
export type RoundTrainOptions = Pick<TrainOptions, 'epochs' | 'batchSize' | 'learningRate' | 'optimizer' | 'proximalMu'>;

/**
 * Maps a round config onto the ml trainer's options, key by key. A key added to RoundConfig fails to compile here
 * until it is mapped, so the node never ignores one. FedProx's `proximalMu` (μ) becomes the trainer's `proximalMu`,
 * which adds μ/2·‖w − w_t‖² to the local loss (ml/proximal.ts, `proximalTerm`); absent, there is no such key.
 */
export function trainOptionsOf(config: RoundConfig): RoundTrainOptions {
  const { epochs, batchSize, learningRate, optimizer, proximalMu, ...rest } = config;
  const unmapped: Record<string, never> = rest;
  void unmapped;
  return { epochs, batchSize, learningRate, optimizer, ...(proximalMu !== undefined ? { proximalMu } : {}) };
}

/** The tfjs trainer (from `loadTfRuntime()`) over one node's data, as a {@link LocalTrainer}. */
export function tfjsLocalTrainer(runtime: Pick<TfRuntime, 'train'>, data: Dataset): LocalTrainer {
  return {
    train: ({ spec, weights, config, seed }) => runtime.train({ spec, weights, data, seed, ...trainOptionsOf(config) }),
  };
}
