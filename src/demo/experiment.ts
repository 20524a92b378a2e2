/**
 * `fedstream experiment fedavg-vs-fedsgd`: the shape of McMahan et al. 2017 ("Communication-Efficient
 * Learning of Deep Networks from Decentralized Data", AISTATS, Tables 1-2), on the 10,000 digits of the
 * `mnist` package: how many communication rounds FedSGD (E=1, B=∞) and FedAvg (E=5, B=10) need to reach
 * a target accuracy on held-out digits, with IID and pathological non-IID partitions, and the speed-up.
 *
 * Each round runs the pipeline's own round logic in-process: the aggregator's round policy (`decide`, `nextStep` of
 * aggregator/rounds.ts) sequences and closes the rounds, the manifest's strategy from the registry (FedAvg)
 * selects C·K clients (`configureRound`) and folds their updates (`begin` → `fold` → `finish`, the
 * example-weighted mean), the clients train with the node SDK's tfjs trainer on the worker-thread pool,
 * and the new weights are evaluated on the held-out digits with the same `evaluate` the aggregator uses.
 * What is left out is the transport and the wire (Avro, Kafka or memory log, sha256 checks): hundreds of
 * FedSGD rounds are milliseconds of compute each, and the demo already covers that path.
 *
 * FedSGD is FedAvg with one full-batch step per client: the weighted mean of w − η∇F_k(w) is
 * w − η Σ (n_k/n) ∇F_k(w), one gradient step on the selected clients' data (the paper's §2).
 */
import { availableParallelism, loadavg } from 'node:os';
import type { Weights } from '../codec/index.ts';
import type { Logger } from '../common/index.ts';
import { ConfigError, FedStreamError } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import { decide, nextStep, roundPolicy, strategyFor, type OpenRoundState } from '../aggregator/index.ts';
import { countParameters, deriveSeed, loadTfRuntime, nodeIdOf, testDataset } from '../ml/index.ts';
import { WorkerPoolTrainer } from './worker-trainer.ts';
import {
  ALL_SETTINGS, DEFAULT_LEARNING_RATES, LEARNING_RATE_GRID, METHOD, PAPER_ROUNDS, experimentManifest,
  type Algorithm, type ExperimentOptions, type ExperimentResult, type ExperimentSetting, type GridEntry, type LearningRateGrid, type Partition, type SettingResult,
} from './experiment-setup.ts';

export * from './experiment-setup.ts';
export * from './experiment-report.ts';

function clientSeed(round: number, nodeId: string, seed: number): number {
  return deriveSeed(seed, 'client', nodeId, round);
}

/** Runs the four settings (or `only`) and returns the measured rounds-to-target beside the paper's. */
export async function runFedAvgVsFedSgd(o: ExperimentOptions): Promise<ExperimentResult> {
  const started = Date.now();
  const quick = o.quick ?? false;
  const target = o.target ?? 0.93;
  const maxRounds = o.maxRounds ?? (quick ? 2 : 1500);
  const nodes = o.nodes ?? (quick ? 20 : 100);
  const fraction = o.fraction ?? 0.1;
  const seed = o.seed ?? 1;
  const testExamples = o.testExamples ?? (quick ? 500 : 1000);
  const trainExamples = quick ? 2000 : undefined;
  if (!(target > 0 && target < 1)) throw new ConfigError('--target', `expected an accuracy between 0 and 1, got ${target}`);
  if (!Number.isInteger(maxRounds) || maxRounds < 1) throw new ConfigError('--max-rounds', `expected a positive integer, got ${maxRounds}`);
  if (!Number.isInteger(nodes) || nodes < 1) throw new ConfigError('--nodes', `expected a positive integer, got ${nodes}`);
  if (!(fraction > 0 && fraction <= 1)) throw new ConfigError('--fraction', `expected a number in (0, 1], got ${fraction}`);
  const log = o.logger.child({ component: 'experiment' });
  const { initBackend, initialWeights } = await loadTfRuntime();
  const backend = await initBackend(undefined, { logger: o.logger });

  const manifests: Record<Partition, Manifest> = {
    iid: experimentManifest({ nodes, fraction, partition: 'iid', seed, testExamples, trainExamples }),
    'non-iid': experimentManifest({ nodes, fraction, partition: 'non-iid', seed, testExamples, trainExamples }),
  };
  const base = manifests.iid;
  const test = testDataset(base)!;
  const trainTotal = trainExamples ?? 10_000 - testExamples;
  const w0 = await initialWeights(base.model);
  const pool = new WorkerPoolTrainer({ manifest: base, logger: o.logger, ...(o.workers ? { size: o.workers } : {}) });
  const results: SettingResult[] = [];
  try {
    await pool.ready();
    for (const which of o.only ?? ALL_SETTINGS) {
      const setting: ExperimentSetting = {
        ...which,
        epochs: which.algorithm === 'fedsgd' ? 1 : 5,
        batchSize: which.algorithm === 'fedsgd' ? 0 : 10,
        learningRate: o.learningRates?.[which.algorithm]?.[which.partition] ?? DEFAULT_LEARNING_RATES[which.algorithm][which.partition],
      };
      results.push(await runSetting(setting, { manifest: manifests[which.partition], w0, test, pool, target, maxRounds, seed, log, onRound: o.onRound }));
    }
  } finally {
    await pool.close();
  }
  const rounds = (a: Algorithm, p: Partition) => results.find((r) => r.algorithm === a && r.partition === p)?.roundsToTarget ?? null;
  const ratio = (p: Partition): number | null => {
    const s = rounds('fedsgd', p);
    const f = rounds('fedavg', p);
    return s !== null && f !== null ? s / f : null;
  };
  return {
    experiment: 'fedavg-vs-fedsgd',
    createdAt: new Date(started).toISOString(),
    quick,
    target,
    maxRounds,
    nodes,
    fraction,
    clientsPerRound: Math.max(1, Math.round(fraction * nodes)),
    trainExamples: trainTotal,
    testExamples,
    examplesPerClient: trainTotal / nodes,
    seed,
    model: { name: '2NN', parameters: countParameters(base.model) },
    backend,
    workers: pool.size,
    cores: availableParallelism(),
    loadAverage: Number(loadavg()[0]!.toFixed(2)),
    method: METHOD,
    settings: results,
    speedup: { iid: ratio('iid'), 'non-iid': ratio('non-iid') },
    paper: PAPER_ROUNDS,
    durationMs: Date.now() - started,
  };
}

export interface SettingContext {
  manifest: Manifest;
  w0: Weights;
  test: NonNullable<ReturnType<typeof testDataset>>;
  pool: WorkerPoolTrainer;
  target: number;
  maxRounds: number;
  seed: number;
  log: Logger;
  onRound: ExperimentOptions['onRound'];
}

/** Runs one setting's rounds until the target or the cap (exported for tuning scripts). */
export async function runSetting(setting: ExperimentSetting, c: SettingContext): Promise<SettingResult> {
  const started = Date.now();
  const m = c.manifest;
  const strategy = strategyFor(m);
  const knownNodes = Array.from({ length: m.data.source === 'mnist' ? m.data.nodes : 0 }, (_, i) => nodeIdOf(i));
  let weights = c.w0;
  const accuracy: number[] = [];
  const loss: number[] = [];
  let roundsToTarget: number | null = null;
  let stepsPerRound = 0;
  // The aggregator's round policy (aggregator/rounds.ts) decides, as in the pipeline: which round follows, and when a
  // round closes. In-process no client drops out or sends a bad update, so each round closes at its target, after
  // the last selected client's update; deadlines never come into it.
  const policy = roundPolicy({ rounds: { ...m.rounds, count: c.maxRounds } });
  for (let step = nextStep(policy, 0, 0); step.type === 'start'; step = nextStep(policy, step.round, 0)) {
    const round = step.round;
    const ctx = { round, baseVersion: round - 1, knownNodes };
    const plan = strategy.configureRound(ctx);
    const selected = plan.selectedNodes.length > 0 ? plan.selectedNodes : knownNodes;
    const base = weights;
    const updates = await Promise.all(selected.map((nodeId) => c.pool.train(nodeId, {
      spec: m.model, weights: base, config: { epochs: setting.epochs, batchSize: setting.batchSize, learningRate: setting.learningRate, optimizer: m.training.optimizer }, seed: clientSeed(round, nodeId, c.seed),
    }, m)));
    stepsPerRound = updates.reduce((s, u) => s + u.steps, 0) / updates.length;
    // Folded in selection order, whatever order the workers finished in: the result does not depend on timing.
    const aggregation = strategy.begin(base, ctx);
    const state: OpenRoundState = { round, accepted: 0, minUpdates: selected.length, targetUpdates: selected.length, extensions: 0, deadline: Infinity, catchingUp: false };
    let closed = false;
    for (const [i, u] of updates.entries()) {
      if (decide(policy, state, { type: 'validated' }).type !== 'accept') continue;
      aggregation.fold({ updateId: `${setting.algorithm}-${round}-${selected[i]}`, nodeId: selected[i]!, round, numExamples: u.numExamples, weights: u.weights, metrics: u.metrics });
      state.accepted++;
      closed = decide(policy, state, { type: 'accepted' }).type === 'close';
    }
    if (!closed) throw new FedStreamError('INTERNAL', `round ${round}: ${state.accepted} of ${selected.length} updates folded, and the round policy did not close it`);
    weights = aggregation.finish([]).weights;
    const { evaluate } = await loadTfRuntime();
    const ev = await evaluate({ spec: m.model, weights, data: c.test });
    accuracy.push(ev.accuracy);
    loss.push(ev.loss);
    c.onRound?.({ setting, round, accuracy: ev.accuracy, loss: ev.loss, elapsedMs: Date.now() - started });
    if (!Number.isFinite(ev.loss)) {
      c.log.warn({ ...setting, round }, 'the loss diverged; stopping this setting');
      break;
    }
    if (ev.accuracy >= c.target) {
      roundsToTarget = round;
      break;
    }
  }
  const result: SettingResult = {
    ...setting,
    roundsToTarget,
    roundsRun: accuracy.length,
    maxRounds: c.maxRounds,
    bestAccuracy: Math.max(...accuracy),
    finalAccuracy: accuracy.at(-1) ?? 0,
    accuracy,
    loss,
    stepsPerRound,
    ms: Date.now() - started,
  };
  c.log.info({ algorithm: setting.algorithm, partition: setting.partition, roundsToTarget, roundsRun: result.roundsRun, best: result.bestAccuracy, ms: result.ms }, 'setting done');
  return result;
}


// ------------------------------------------------------------------------------------------------ learning rates

/**
 * Runs every setting with every learning rate of {@link LEARNING_RATE_GRID} up to `gridTarget` (default 0.95)
 * and keeps the accuracy curves. Slow: an hour or so on 2 cores.
 */
export async function runLearningRateGrid(o: Omit<ExperimentOptions, 'target' | 'learningRates'> & { gridTarget?: number; fedavgMaxRounds?: number }): Promise<LearningRateGrid> {
  const started = Date.now();
  const gridTarget = o.gridTarget ?? 0.95;
  const entries: GridEntry[] = [];
  for (const which of o.only ?? ALL_SETTINGS) {
    for (const lr of LEARNING_RATE_GRID[which.algorithm]) {
      const cap = o.quick ? 2 : which.algorithm === 'fedavg' ? (o.fedavgMaxRounds ?? 300) : (o.maxRounds ?? 1500);
      const r = await runFedAvgVsFedSgd({ ...o, only: [which], target: gridTarget, maxRounds: cap, learningRates: { [which.algorithm]: { [which.partition]: lr } } });
      const s = r.settings[0]!;
      entries.push({ algorithm: s.algorithm, partition: s.partition, learningRate: lr, maxRounds: cap, accuracy: s.accuracy, ms: s.ms });
    }
  }
  return { experiment: 'fedavg-vs-fedsgd-lr-grid', createdAt: new Date(started).toISOString(), gridTarget, nodes: o.nodes ?? 100, fraction: o.fraction ?? 0.1, seed: o.seed ?? 1, entries };
}

