/**
 * `fedstream experiment robustness` (issue 14, item 6): 10 nodes, 0 to 3 of them Byzantine, and each strategy's
 * held-out accuracy after a fixed number of rounds.
 *
 * Each run is a whole pipeline in this process, as the demo runs it: the aggregator service and ten node runtimes
 * over one in-memory log (the transport is the only thing left out), each record signed by its participant's key and
 * verified, every update through the aggregator's validation (its signature, norm bound, non-finite values) before
 * the strategy sees it. The Byzantine nodes are node runtimes whose trainer corrupts the update before the runtime
 * signs it, or trains on flipped labels (node/byzantine.ts): the aggregator cannot tell them apart by anything but
 * their weights. Training runs on the worker-thread pool (demo/worker-trainer.ts); the final version's weights are
 * evaluated on the held-out digits with the aggregator's own `evaluate`.
 */
import { availableParallelism, loadavg } from 'node:os';
import type { Logger } from '../common/index.ts';
import { ConfigError } from '../common/index.ts';
import { parseManifest, type Manifest } from '../config/index.ts';
import { createAggregator } from '../aggregator/index.ts';
import type { Weights } from '../codec/index.ts';
import { unpackTensors } from '../codec/index.ts';
import { loadTfRuntime, nodeIdOf, testDataset } from '../ml/index.ts';
import { ATTACKS, FedNode, byzantineTrainer, type Attack } from '../node/index.ts';
import { ephemeralParticipants } from '../protocol/index.ts';
import { MemoryCluster, createMemoryTransport } from '../transport/index.ts';
import { WorkerPoolTrainer } from './worker-trainer.ts';

/** The strategies compared, with their options (docs/strategies.md explains each). f = 3: the most Byzantine nodes run. */
export const ROBUSTNESS_STRATEGIES: Record<string, Record<string, unknown>> = {
  fedavg: { name: 'fedavg' },
  'clipped fedavg (C=1)': { name: 'fedavg', clipNorm: 1 },
  fedmedian: { name: 'fedmedian' },
  'fedtrimmedavg (β=0.3)': { name: 'fedtrimmedavg', beta: 0.3 },
  'krum (f=3)': { name: 'krum', numMaliciousClients: 3 },
  'multi-krum (f=3, m=5)': { name: 'krum', numMaliciousClients: 3, numClientsToKeep: 5 },
};

export interface RobustnessOptions {
  logger: Logger;
  /** Rounds per run (default 5). */
  rounds?: number;
  /** Nodes (default 10). */
  nodes?: number;
  /** Numbers of Byzantine nodes (default 0, 1, 2, 3). */
  byzantine?: number[];
  /** Attacks (default all four); each count > 0 is run with each attack. */
  attacks?: Attack[];
  /** Strategy labels of {@link ROBUSTNESS_STRATEGIES} (default all). */
  strategies?: string[];
  /** Training examples in all (default 9,000 of the `mnist` package's 10,000) and held-out ones (default 1,000). */
  trainExamples?: number;
  testExamples?: number;
  seed?: number;
  workers?: number;
  onRun?: (r: RobustnessRun) => void;
}

export interface RobustnessRun {
  strategy: string;
  options: Record<string, unknown>;
  byzantine: number;
  /** null when no node is Byzantine. */
  attack: Attack | null;
  /** Held-out accuracy of the final version. */
  accuracy: number;
  loss: number;
  /** Mean wall time of a round (ms): training on the nodes, validation, aggregation, publication. */
  msPerRound: number;
  /** Updates the aggregator rejected over the run (validation), and accepted. */
  rejected: number;
  accepted: number;
}

export interface RobustnessResult {
  experiment: 'robustness';
  createdAt: string;
  /** The command line that ran it (set by the CLI; absent in a result from an older version). */
  command?: string;
  nodes: number;
  rounds: number;
  trainExamples: number;
  testExamples: number;
  model: Manifest['model'];
  training: Manifest['training'];
  seed: number;
  cores: number;
  loadAverage: number;
  workers: number;
  runs: RobustnessRun[];
  durationMs: number;
}

/** The manifest of one run: a 784-64-10 MLP on IID MNIST shards, every node every round. */
export function robustnessManifest(o: { nodes: number; rounds: number; seed: number; trainExamples: number; testExamples: number; strategy: Record<string, unknown> }): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'experiment',
    name: 'robustness',
    model: { inputShape: [784], seed: o.seed, layers: [{ type: 'dense', units: 64, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: o.nodes, partition: 'iid', testExamples: o.testExamples, trainExamples: o.trainExamples, seed: o.seed },
    training: { epochs: 1, batchSize: 20, learningRate: 0.1, optimizer: 'sgd' },
    rounds: { count: o.rounds, targetUpdates: o.nodes, minUpdates: o.nodes, timeoutMs: 600_000 },
    strategy: o.strategy,
  }, 'experiment');
}

/** Runs every (strategy, Byzantine count, attack) and returns each final accuracy. */
export async function runRobustness(o: RobustnessOptions): Promise<RobustnessResult> {
  const started = Date.now();
  const nodes = o.nodes ?? 10;
  const rounds = o.rounds ?? 5;
  const seed = o.seed ?? 1;
  const testExamples = o.testExamples ?? 1000;
  const trainExamples = o.trainExamples ?? 10_000 - testExamples;
  const counts = o.byzantine ?? [0, 1, 2, 3];
  const attacks = o.attacks ?? [...ATTACKS];
  const labels = o.strategies ?? Object.keys(ROBUSTNESS_STRATEGIES);
  if (!Number.isInteger(nodes) || nodes < 2) throw new ConfigError('--nodes', `expected an integer ≥ 2, got ${nodes}`);
  if (!Number.isInteger(rounds) || rounds < 1) throw new ConfigError('--rounds', `expected a positive integer, got ${rounds}`);
  for (const f of counts) if (!Number.isInteger(f) || f < 0 || f >= nodes) throw new ConfigError('--byzantine', `expected integers in [0, ${nodes - 1}], got ${f}`);
  for (const a of attacks) if (!(ATTACKS as readonly string[]).includes(a)) throw new ConfigError('--attacks', `unknown attack ${a}; expected ${ATTACKS.join(', ')}`);
  for (const l of labels) if (!ROBUSTNESS_STRATEGIES[l]) throw new ConfigError('--strategies', `unknown strategy ${l}; expected ${Object.keys(ROBUSTNESS_STRATEGIES).join(', ')}`);
  const settings: Array<{ byzantine: number; attack: Attack | null }> = [];
  for (const f of counts) {
    if (f === 0) settings.push({ byzantine: 0, attack: null });
    else for (const a of attacks) settings.push({ byzantine: f, attack: a });
  }
  const log = o.logger.child({ component: 'experiment' });
  const plain = (strategy: Record<string, unknown>) => robustnessManifest({ nodes, rounds, seed, trainExamples, testExamples, strategy });
  const first = plain(ROBUSTNESS_STRATEGIES[labels[0]!]!);
  const test = testDataset(first)!;
  const tf = await loadTfRuntime();
  const pool = new WorkerPoolTrainer({ manifest: first, logger: o.logger, ...(o.workers ? { size: o.workers } : {}) });
  const runs: RobustnessRun[] = [];
  try {
    await pool.ready();
    for (const s of settings) {
      for (const label of labels) {
        const options = ROBUSTNESS_STRATEGIES[label]!;
        const r = await runOne(plain(options), s.byzantine, s.attack, pool, o.logger);
        const ev = await tf.evaluate({ spec: first.model, weights: r.weights, data: test });
        const run: RobustnessRun = { strategy: label, options, byzantine: s.byzantine, attack: s.attack, accuracy: ev.accuracy, loss: ev.loss, msPerRound: r.msPerRound, rejected: r.rejected, accepted: r.accepted };
        log.info({ ...run, options: undefined }, 'robustness run done');
        runs.push(run);
        o.onRun?.(run);
      }
    }
  } finally {
    await pool.close();
  }
  return {
    experiment: 'robustness', createdAt: new Date(started).toISOString(), nodes, rounds, trainExamples, testExamples,
    model: first.model, training: first.training, seed, cores: availableParallelism(), loadAverage: Number(loadavg()[0]!.toFixed(2)),
    workers: pool.size, runs, durationMs: Date.now() - started,
  };
}

/** One pipeline: the aggregator and `m.data.nodes` node runtimes on one in-memory log; the last `byzantine` nodes attack. */
async function runOne(plain: Manifest, byzantine: number, attack: Attack | null, pool: WorkerPoolTrainer, logger: Logger) {
  const n = plain.data.source === 'mnist' ? plain.data.nodes : 0;
  const ids = Array.from({ length: n }, (_, i) => nodeIdOf(i));
  const team = ephemeralParticipants(plain, ids);
  const m = team.manifest;
  const cluster = new MemoryCluster();
  const quiet = logger.child({}, { level: 'warn' });
  const ms: number[] = [];
  let rejected = 0;
  let accepted = 0;
  let last: Weights | undefined;
  const agg = await createAggregator({
    manifest: m, transport: createMemoryTransport({ cluster, logger: quiet }), logger: quiet, evaluate: false, signer: team.signerFor('aggregator'),
    onVersion: (v, info) => {
      if (Number(v.version) === 0) return;
      ms.push(info.ms);
      rejected += info.rejected;
      accepted += info.participants;
      last = unpackTensors(v.tensors);
    },
  });
  await agg.start();
  const nodes = ids.map((nodeId, i) => new FedNode({
    manifest: m, transport: createMemoryTransport({ cluster, logger: quiet }), nodeId, logger: quiet, signer: team.signerFor(nodeId), heartbeatMs: 5_000,
    trainer: attack && i >= n - byzantine ? byzantineTrainer(pool, nodeId, attack) : pool.trainerFor(nodeId),
  }));
  try {
    for (const node of nodes) await node.start();
    await agg.done;
    await Promise.all(nodes.map((x) => x.done));
  } finally {
    await Promise.all(nodes.map((x) => x.stop()));
    await agg.stop();
  }
  if (!last) throw new ConfigError('--rounds', 'the pipeline published no version after the initial one');
  return { weights: last, msPerRound: ms.reduce((a, b) => a + b, 0) / ms.length, rejected, accepted };
}
