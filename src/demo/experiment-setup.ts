/**
 * The settings, options, results and manifests of `fedstream experiment fedavg-vs-fedsgd` (experiment.ts runs it,
 * experiment-report.ts writes it up): McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from
 * Decentralized Data" (AISTATS), Tables 1-2.
 */
import type { Logger } from '../common/index.ts';
import { parseManifest, type Manifest } from '../config/index.ts';

export type Algorithm = 'fedsgd' | 'fedavg';
export type Partition = 'iid' | 'non-iid';

export interface ExperimentSetting {
  algorithm: Algorithm;
  partition: Partition;
  epochs: number;
  /** 0 = B=∞ (each client's whole data in one batch). */
  batchSize: number;
  learningRate: number;
}

/**
 * Rounds to reach the target reported by the paper, C = 0.1 on the full MNIST. 2NN (target 97%): Table 1, one local
 * epoch, FedSGD = B=∞, FedAvg = B=10 (u = 60 local steps per round). CNN (target 99%): Table 2, FedSGD against
 * FedAvg E=5, B=10 (u = 300).
 */
export const PAPER_ROUNDS = {
  '2NN': { iid: { fedsgd: 1474, fedavg: 87 }, 'non-iid': { fedsgd: 1796, fedavg: 664 }, target: 0.97 },
  CNN: { iid: { fedsgd: 626, fedavg: 20 }, 'non-iid': { fedsgd: 483, fedavg: 229 }, target: 0.99 },
} as const;

/** The paper's 2NN: two hidden layers of 200 ReLU units (199,210 parameters). */
export const TWO_NN = {
  inputShape: [784],
  seed: 1,
  layers: [
    { type: 'dense', units: 200, activation: 'relu' },
    { type: 'dense', units: 200, activation: 'relu' },
    { type: 'dense', units: 10, activation: 'softmax' },
  ],
} as const;

/** The learning rates {@link runLearningRateGrid} tries per algorithm. */
export const LEARNING_RATE_GRID: Record<Algorithm, number[]> = {
  fedsgd: [0.2, 0.5, 1.0],
  fedavg: [0.05, 0.1, 0.2, 0.5],
};

/**
 * Learning rates, one per (algorithm, partition): of {@link LEARNING_RATE_GRID}, the one that reached the target in
 * the fewest rounds on this data (bench/results/fedavg-vs-fedsgd-lr-grid.json). The paper also tuned η per
 * setting, over a finer grid.
 */
export const DEFAULT_LEARNING_RATES: Record<Algorithm, Record<Partition, number>> = {
  fedsgd: { iid: 0.5, 'non-iid': 0.5 },
  fedavg: { iid: 0.2, 'non-iid': 0.2 },
};

export interface ExperimentOptions {
  /** Accuracy on the held-out digits that counts as reached. Default 0.93. */
  target?: number;
  /** Round cap of FedSGD (default 1500); FedAvg stops at the same cap. */
  maxRounds?: number;
  /** K clients (default 100). */
  nodes?: number;
  /** C, the fraction of clients per round (default 0.1). */
  fraction?: number;
  /** Digits held out for evaluation (default 1000; the other 9,000 are split across the clients). */
  testExamples?: number;
  /** Seeds the split, the partitions, the initial weights and the client selection. Default 1. */
  seed?: number;
  learningRates?: Partial<Record<Algorithm, Partial<Record<Partition, number>>>>;
  /** Which settings to run (default all four). */
  only?: Array<{ algorithm: Algorithm; partition: Partition }>;
  /** A smoke run: 2 rounds per setting, 20 clients, 2,000 train digits. */
  quick?: boolean;
  /** Worker threads (default one per core). */
  workers?: number;
  logger: Logger;
  onRound?: (info: { setting: ExperimentSetting; round: number; accuracy: number; loss: number; elapsedMs: number }) => void;
}

export interface SettingResult extends ExperimentSetting {
  /** First round whose version reached the target on the held-out digits; null when it did not within maxRounds. */
  roundsToTarget: number | null;
  roundsRun: number;
  maxRounds: number;
  bestAccuracy: number;
  finalAccuracy: number;
  /** Held-out accuracy after each round (index 0 = round 1). */
  accuracy: number[];
  loss: number[];
  /** Local SGD steps per client per round (u in the paper = E·n/B). */
  stepsPerRound: number;
  ms: number;
}

export interface ExperimentResult {
  experiment: 'fedavg-vs-fedsgd';
  createdAt: string;
  quick: boolean;
  target: number;
  maxRounds: number;
  nodes: number;
  fraction: number;
  clientsPerRound: number;
  trainExamples: number;
  testExamples: number;
  examplesPerClient: number;
  seed: number;
  model: { name: '2NN'; parameters: number };
  backend: string;
  workers: number;
  cores: number;
  /** 1-minute load average when the run ended: other work on the machine slows the wall times (not the round counts). */
  loadAverage: number;
  /** How the rounds were run. */
  method: string;
  settings: SettingResult[];
  /** FedSGD rounds / FedAvg rounds per partition (null when either did not reach the target). */
  speedup: Record<Partition, number | null>;
  paper: typeof PAPER_ROUNDS;
  durationMs: number;
}

/** The four settings, in the order they run. */
export const ALL_SETTINGS: Array<{ algorithm: Algorithm; partition: Partition }> = [
  { algorithm: 'fedsgd', partition: 'iid' },
  { algorithm: 'fedavg', partition: 'iid' },
  { algorithm: 'fedsgd', partition: 'non-iid' },
  { algorithm: 'fedavg', partition: 'non-iid' },
];

export const METHOD = 'in-process rounds: the aggregator\'s FedAvg strategy (client selection, example-weighted fold) + the node SDK\'s tfjs trainer on worker threads; no transport';

/** The manifest of one partition: the 2NN, K clients, C, the seeds. Its `training` is unused (settings say it). */
export function experimentManifest(o: { nodes: number; fraction: number; partition: Partition; seed: number; testExamples: number; trainExamples?: number }): Manifest {
  const perRound = Math.max(1, Math.round(o.fraction * o.nodes));
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'experiment',
    name: `fedavg-vs-fedsgd-${o.partition}`,
    model: { ...TWO_NN, seed: o.seed, layers: TWO_NN.layers.map((l) => ({ ...l })) },
    data: {
      source: 'mnist', nodes: o.nodes, partition: o.partition === 'iid' ? 'iid' : 'shards', shardsPerNode: 2,
      testExamples: o.testExamples, seed: o.seed, ...(o.trainExamples !== undefined ? { trainExamples: o.trainExamples } : {}),
    },
    training: { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' },
    rounds: { count: 1, targetUpdates: perRound, minUpdates: perRound },
    strategy: { name: 'fedavg', fraction: o.fraction },
  }, 'experiment');
}

export interface GridEntry {
  algorithm: Algorithm;
  partition: Partition;
  learningRate: number;
  maxRounds: number;
  /** Held-out accuracy after each round, until `gridTarget` or `maxRounds`. */
  accuracy: number[];
  ms: number;
}

export interface LearningRateGrid {
  experiment: 'fedavg-vs-fedsgd-lr-grid';
  createdAt: string;
  /** Each run went on until this accuracy (or its cap): rounds to any lower target can be read off its curve. */
  gridTarget: number;
  nodes: number;
  fraction: number;
  seed: number;
  entries: GridEntry[];
}
