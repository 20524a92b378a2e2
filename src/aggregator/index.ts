import type { Logger } from 'pino';
import type { Manifest } from '../config/index.ts';
import type { Transport } from '../transport/index.ts';
import type { ModelVersionRecord } from '../codec/index.ts';
import { Aggregator } from './service.ts';
import type { AggregatorOptions } from './options.ts';
import { strategyFor } from './strategies/registry.ts';
import type { Strategy } from './strategy.ts';

export { Aggregator } from './service.ts';
export type { AggregatorOptions, AggregatorSummary } from './options.ts';
export { FedAvg, WeightedMean, sampleNodes, fedavgOptions, fractionOption, type FedAvgOptions, type FedAvgSection, type MeanStep, type WeightedMeanLimits } from './strategies/fedavg.ts';
export { FedProx, fedproxOptions, type FedProxOptions } from './strategies/fedprox.ts';
export {
  FEDOPT_STATE_FORMAT, ServerOptimizer, decodeOptimizerState, encodeOptimizerState, type OptimizerState, type ServerOptimizerBase, type TensorStep,
} from './strategies/fedopt.ts';
export { FedAvgM, fedavgmOptions, type FedAvgMOptions } from './strategies/fedavgm.ts';
export { FedAdagrad, fedadagradOptions, type FedAdagradOptions } from './strategies/fedadagrad.ts';
export { FedAdam, fedadamOptions, type FedAdamOptions } from './strategies/fedadam.ts';
export { FedYogi, fedyogiOptions, type FedYogiOptions } from './strategies/fedyogi.ts';
export { DEFAULT_MEMORY_BUDGET_BYTES, BufferedAggregation, RobustStrategy, memoryBudgetOption, type BlockRule, type BufferedOptions, type KeptUpdate } from './strategies/buffered.ts';
export { aggregateFromLog, blockSize } from './strategies/spill.ts';
export { updatesLogReader, type LogPosition, type UpdateLogReader } from './log-reread.ts';
export { FedMedian, fedmedianOptions, type FedMedianOptions } from './strategies/fedmedian.ts';
export { FedTrimmedAvg, fedtrimmedavgOptions, type FedTrimmedAvgOptions } from './strategies/fedtrimmedavg.ts';
export { Krum, krumOptions, type KrumOptions } from './strategies/krum.ts';
export { Clipped, clipNormOption } from './strategies/clipped.ts';
export {
  STRATEGIES, STRATEGY_NAMES, parseStrategySection, strategyFor, strategySectionSchema, trainingConfig,
  type StrategyContext, type StrategyDefinition, type StrategyName, type StrategySection,
} from './strategies/registry.ts';
export { decide, nextStep, roundPolicy, stateOf, ROUND_STATES, type NextStep, type OpenRoundState, type RoundDecision, type RoundEvent, type RoundPolicy, type RoundStateName } from './rounds.ts';
export { clipToNorm, coordinateMedian, foldScaledScalar, krumScores, krumSelect, pairwiseSquaredDistances, trimmedMean } from './kernels/index.ts';
export type * from './strategy.ts';
export { AGGREGATOR_SESSION_TIMEOUT_MS, awaitNoLiveHolder, describeMembers, fencedError, isFenced, type HolderCheck } from './ownership.ts';
export { saneMetrics, validateUpdate, validationLimits, type CandidateUpdate, type RoundState, type ValidationLimits } from './validate.ts';

export interface CreateAggregatorOptions {
  manifest: Manifest;
  transport: Transport;
  logger: Logger;
  /** Evaluate each version on the manifest's held-out data (default true). */
  evaluate?: boolean;
  fault?: AggregatorOptions['fault'];
  /** Fence a running aggregator of the same pipeline instead of refusing to start (AggregatorOptions.takeOver). */
  takeOver?: boolean;
  /** The strategy (default: the one the manifest names, `strategyFor`): the SDK's extension point. */
  strategy?: Strategy;
  onVersion?: (v: ModelVersionRecord, info: { round: number; ms: number; participants: number; rejected: number }) => void;
  /** The aggregator's private key (`loadSigner(file)`), and the participants (default: the manifest's). */
  signer?: AggregatorOptions['signer'];
  registry?: AggregatorOptions['registry'];
  instrumentation?: AggregatorOptions['instrumentation'];
}

/** An aggregator for a manifest, with tfjs for the initial weights and the held-out evaluation. */
export async function createAggregator(o: CreateAggregatorOptions): Promise<Aggregator> {
  const { loadTfRuntime, testDataset, nodeIdOf } = await import('../ml/index.ts');
  const { initBackend, initialWeights, evaluate } = await loadTfRuntime();
  await initBackend(undefined, { logger: o.logger });
  const m = o.manifest;
  const test = o.evaluate === false ? undefined : testDataset(m);
  const knownNodes = m.data.source === 'mnist' ? Array.from({ length: m.data.nodes }, (_, i) => nodeIdOf(i)) : [];
  return new Aggregator({
    manifest: m,
    transport: o.transport,
    strategy: o.strategy ?? strategyFor(m),
    logger: o.logger,
    initialWeights: () => initialWeights(m.model),
    evaluate: test
      ? async (weights) => {
          const r = await evaluate({ spec: m.model, weights, data: test });
          return { eval_loss: r.loss, eval_accuracy: r.accuracy, eval_examples: r.numExamples };
        }
      : undefined,
    knownNodes,
    fault: o.fault,
    takeOver: o.takeOver,
    onVersion: o.onVersion,
    ...(o.signer ? { signer: o.signer } : {}),
    ...(o.registry ? { registry: o.registry } : {}),
    ...(o.instrumentation ? { instrumentation: o.instrumentation } : {}),
  });
}
export { CentralDp, DP_STATE_FORMAT, type CentralDpSettings, type ClippingRule } from './strategies/dp-central.ts';
export { dpFixedClipping } from './strategies/dp-fixed.ts';
export { dpAdaptiveClipping, type AdaptiveClippingOptions } from './strategies/dp-adaptive.ts';
export { DEFAULT_CLIPPING_NORM, DEFAULT_DP_DELTA, withCentralDp } from './strategies/dp-registry.ts';
