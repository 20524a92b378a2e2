/**
 * Strategies by name: each entry is the strategy's own option schema (defined in its own file, with `name` as a
 * literal) and a factory. The manifest's `strategy` section is the discriminated union of those schemas
 * (`strategySectionSchema`); config/ only checks that `strategy.name` is a string, because it sits on a lower floor
 * and must not know the strategies.
 *
 * Adding a strategy: a file under strategies/ exporting its option schema and class, and one entry below.
 */
import { z } from 'zod';
import { ConfigError } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import type { RoundConfig } from '../../protocol/index.ts';
import type { Strategy } from '../strategy.ts';
import { FedAdagrad, fedadagradOptions } from './fedadagrad.ts';
import { FedAdam, fedadamOptions } from './fedadam.ts';
import { FedAvg, fedavgOptions } from './fedavg.ts';
import { FedAvgM, fedavgmOptions } from './fedavgm.ts';
import { FedProx, fedproxOptions } from './fedprox.ts';
import { FedYogi, fedyogiOptions } from './fedyogi.ts';
import { FedMedian, fedmedianOptions } from './fedmedian.ts';
import { FedTrimmedAvg, fedtrimmedavgOptions } from './fedtrimmedavg.ts';
import { Krum, krumOptions } from './krum.ts';
import { Clipped, clipNormOption } from './clipped.ts';
import { withCentralDp } from './dp-registry.ts';

/** What a strategy's factory gets besides its own options. */
export interface StrategyContext {
  /** The round config sent to the nodes, from the manifest's `training` section. */
  config: RoundConfig;
  /** The manifest's model seed: seeds the per-round selection of nodes. */
  seed: number;
  /** `limits.maxWeightShare`: the largest share of a round's weight one update may have (undefined: no cap). */
  maxWeightShare?: number;
}

/** One registered strategy: its option schema (with `name: z.literal(<name>)`, strict) and its factory. */
export interface StrategyDefinition<S extends z.ZodObject = z.ZodObject> {
  options: S;
  create(options: z.infer<S>, context: StrategyContext): Strategy;
}

/**
 * Every strategy also takes `clipNorm` (C, weights; 0 = off, the default): each update's change from the round's
 * base is clipped to at most C in L2 norm before the strategy sees it (strategies/clipped.ts, Sun et al. 2019).
 */
type WithClip<S extends z.ZodObject> = z.ZodObject<S['shape'] & { clipNorm: typeof clipNormOption }, z.core.$strict>;

function define<S extends z.ZodObject>(d: StrategyDefinition<S>): StrategyDefinition<WithClip<S>> {
  const options = d.options.extend({ clipNorm: clipNormOption }) as unknown as WithClip<S>;
  return {
    options,
    create(o, c): Strategy {
      const inner = d.create(o as z.infer<S>, c);
      const { clipNorm } = o as { clipNorm: number };
      return clipNorm > 0 ? new Clipped(inner, clipNorm) : inner;
    },
  };
}

/** The strategies a manifest may name. */
export const STRATEGIES = {
  /** Federated averaging (McMahan et al. 2017). */
  fedavg: define({
    options: fedavgOptions,
    create: (o, c) => new FedAvg(base(o, c)),
  }),
  /** FedProx (Li et al., MLSys 2020): FedAvg whose nodes add μ/2·‖w − w_t‖² to their loss. */
  fedprox: define({
    options: fedproxOptions,
    create: (o, c) => new FedProx({ ...base(o, c), proximalMu: o.proximalMu }),
  }),
  /** FedAvgM (Hsu et al. 2019): server momentum. */
  fedavgm: define({
    options: fedavgmOptions,
    create: (o, c) => new FedAvgM({ ...base(o, c), serverLearningRate: o.serverLearningRate, serverMomentum: o.serverMomentum }),
  }),
  /** FedAdagrad (Reddi et al., ICLR 2021). */
  fedadagrad: define({
    options: fedadagradOptions,
    create: (o, c) => new FedAdagrad({ ...base(o, c), eta: o.eta, tau: o.tau }),
  }),
  /** FedAdam (Reddi et al., ICLR 2021). */
  fedadam: define({
    options: fedadamOptions,
    create: (o, c) => new FedAdam({ ...base(o, c), eta: o.eta, beta1: o.beta1, beta2: o.beta2, tau: o.tau }),
  }),
  /** FedYogi (Reddi et al., ICLR 2021). */
  fedyogi: define({
    options: fedyogiOptions,
    create: (o, c) => new FedYogi({ ...base(o, c), eta: o.eta, beta1: o.beta1, beta2: o.beta2, tau: o.tau }),
  }),
  /** Coordinate-wise median (Yin et al., ICML 2018). */
  fedmedian: define({
    options: fedmedianOptions,
    create: (o, c) => new FedMedian({ ...base(o, c), memoryBudgetBytes: o.memoryBudgetBytes }),
  }),
  /** Coordinate-wise β-trimmed mean (Yin et al., ICML 2018). */
  fedtrimmedavg: define({
    options: fedtrimmedavgOptions,
    create: (o, c) => new FedTrimmedAvg({ ...base(o, c), beta: o.beta, memoryBudgetBytes: o.memoryBudgetBytes }),
  }),
  /** Krum and Multi-Krum (Blanchard et al., NeurIPS 2017). */
  krum: define({
    options: krumOptions,
    create: (o, c) => new Krum({ ...base(o, c), numMaliciousClients: o.numMaliciousClients, numClientsToKeep: o.numClientsToKeep, memoryBudgetBytes: o.memoryBudgetBytes }),
  }),
} as const;

/** FedAvg's options (selection, round config, share cap), which every strategy here builds on. */
function base(o: { fraction: number }, c: StrategyContext) {
  return { config: c.config, fraction: o.fraction, seed: c.seed, maxWeightShare: c.maxWeightShare };
}

export type StrategyName = keyof typeof STRATEGIES;

/** The parsed `strategy` section of a manifest: one strategy's options, discriminated by `name`. */
export type StrategySection = { [K in StrategyName]: z.infer<(typeof STRATEGIES)[K]['options']> }[StrategyName];

/** The names a manifest may use, in registry order. */
export const STRATEGY_NAMES = Object.keys(STRATEGIES) as StrategyName[];

/** The schema of a manifest's `strategy` section: the discriminated union (on `name`) of the registered option schemas. */
export function strategySectionSchema() {
  const [first, ...rest] = Object.values(STRATEGIES).map((d) => d.options);
  return z.discriminatedUnion('name', [first!, ...rest]);
}

/**
 * Validates a manifest's `strategy` section with the named strategy's own schema. Returns its typed options (defaults
 * filled in); throws ConfigError with path `strategy.<field>` (`strategy.name`, listing the known names, when the
 * strategy is unknown).
 */
export function parseStrategySection(raw: unknown): StrategySection {
  const name = typeof raw === 'object' && raw !== null ? (raw as { name?: unknown }).name : undefined;
  if (typeof name !== 'string' || !Object.hasOwn(STRATEGIES, name)) {
    throw new ConfigError('strategy.name', `unknown strategy ${JSON.stringify(name)}; known strategies: ${STRATEGY_NAMES.join(', ')}`);
  }
  const result = strategySectionSchema().safeParse(raw);
  if (result.success) return result.data as StrategySection;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    throw new ConfigError(`strategy.${keys[0]}`, `unknown option${keys.length > 1 ? 's' : ''} ${keys.join(', ')} of strategy ${name}`);
  }
  const field = issue.path.map(String).join('.');
  const got = field ? (raw as Record<string, unknown>)[String(issue.path[0])] : raw;
  throw new ConfigError(`strategy${field ? `.${field}` : ''}`, `${issue.message}, got ${shown(got)}`);
}

/** A value as a manifest would write it: JSON, except the numbers JSON has no word for (NaN, ±Infinity; JSON says null). */
function shown(v: unknown): string {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v) ?? String(v);
}

/** The round config a manifest's `training` section asks of the nodes (same keys, in the same order, as on the wire). */
export function trainingConfig(m: Pick<Manifest, 'training'>): RoundConfig {
  return { epochs: m.training.epochs, batchSize: m.training.batchSize, learningRate: m.training.learningRate, optimizer: m.training.optimizer };
}

/** The strategy a manifest names, with its options checked by its own schema (ConfigError otherwise), wrapped in central DP when `privacy.central` asks for it. */
export function strategyFor(m: Pick<Manifest, 'strategy' | 'training' | 'model' | 'limits' | 'privacy'>): Strategy {
  const options = parseStrategySection(m.strategy);
  const definition = STRATEGIES[options.name] as StrategyDefinition;
  const inner = definition.create(options, { config: trainingConfig(m), seed: m.model.seed, maxWeightShare: m.limits.maxWeightShare });
  // Central DP (privacy.central) wraps whichever strategy the manifest names (dp-registry.ts).
  return withCentralDp(inner, m.privacy);
}
