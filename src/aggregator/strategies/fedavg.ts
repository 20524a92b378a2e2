import { z } from 'zod';
import { mulberry32, sampleWithoutReplacement, type SecureGaussian } from '../../ml/index.ts';
import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import type { RoundConfig } from '../../protocol/index.ts';
import { WeightedSum, type WeightedSumOptions } from '../kernels/index.ts';
import type { AcceptedUpdate, AggregateResult, Aggregation, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import type { NoisesMean } from './mean-noise.ts';

/**
 * Federated averaging: the new weights are the average of the nodes' weights, each weighted by the
 * number of examples it trained on.
 *
 * McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning of Deep Networks
 * from Decentralized Data". AISTATS 2017, Algorithm 1: w_{t+1} = Σ_k (n_k / n) w^k_{t+1}.
 *
 * Updates are folded into float64 running sums, so memory is one accumulator of the model's size
 * (plus at most a few buffered updates, see kernels/) whatever the number of nodes, and the result does
 * not depend on float32 rounding of partial sums.
 */
export interface FedAvgOptions {
  /** Training config sent to nodes. */
  config: RoundConfig;
  /** Fraction C of known nodes selected per round (1 = all). */
  fraction: number;
  /** Seed for the per-round selection of nodes. */
  seed: number;
  /** Largest share of a round's weight one update may have, in [0.5, 1] (`limits.maxWeightShare`; undefined: no cap). See WeightedMean. */
  maxWeightShare?: number;
}

/** C, the fraction of the known nodes selected per round, in (0, 1] (default 1: every node); every strategy built on FedAvg's round takes it. */
export const fractionOption = z.number().gt(0, 'expected a number in (0, 1]').lte(1, 'expected a number in (0, 1]').default(1);

/**
 * FedAvg's section of a manifest: `strategy: { name: fedavg, fraction: C }`. `fraction` is C, the fraction of the
 * known nodes selected per round, in (0, 1] (default 1: every node). Registered in registry.ts.
 */
export const fedavgOptions = z.object({
  name: z.literal('fedavg'),
  fraction: fractionOption,
}).strict();

export type FedAvgSection = z.infer<typeof fedavgOptions>;

export class FedAvg implements Strategy {
  readonly name = 'fedavg';
  constructor(private readonly options: FedAvgOptions) {}

  configureRound(ctx: RoundContext): RoundPlan {
    const { fraction, seed } = this.options;
    if (fraction >= 1 || ctx.knownNodes.length === 0) return { selectedNodes: [], config: { ...this.options.config } };
    const m = Math.max(1, Math.round(fraction * ctx.knownNodes.length));
    return { selectedNodes: sampleNodes(ctx.knownNodes, m, seed * 1_000_003 + ctx.round), config: { ...this.options.config } };
  }

  begin(base: Weights): Aggregation {
    return new WeightedMean(base, {}, { maxWeightShare: this.options.maxWeightShare });
  }
}

/** Deterministic sample of m nodes (partial Fisher-Yates with a seeded PRNG), sorted for readability. */
export function sampleNodes(nodes: readonly string[], m: number, seed: number): string[] {
  // The one seeded PRNG of the project (ml/random.ts): the same draws as before it moved there.
  return sampleWithoutReplacement([...nodes].sort(), m, mulberry32(seed >>> 0)).sort();
}

/** Limits a WeightedMean applies (the manifest's `limits`). */
export interface WeightedMeanLimits {
  /**
   * Largest share of the total weight one update may have, in [0.5, 1]. An update above it is clamped to exactly that
   * share: with n the others' examples, its weight becomes c = share·n / (1 - share). From 0.5 up, only the largest
   * update can exceed the share, before and after clamping, so a copy of the largest update so far (one model's
   * worth of memory) is all the fold keeps; below 0.5 it would need every update that might exceed it. A round with
   * one update is not clamped (its share is 1 whatever its weight).
   */
  maxWeightShare?: number;
}

/**
 * What becomes of the round's example-weighted mean: given the float64 sums of the fold (one array per tensor, Σ n_k·w_k
 * after any share cap) and `inv` = 1 / Σ n_k, returns the new weights (the mean of element j is `sums[t][j] * inv`).
 * Without one, the new weights are the mean itself rounded to float32 (FedAvg). A server optimizer (fedopt.ts) passes
 * one to take its step from the mean in float64, with no extra model-sized copy of it.
 */
export type MeanStep = (sums: readonly Float64Array[], inv: number) => Float32Array[];

/**
 * Example-weighted mean, folded in float64 by the WebAssembly SIMD kernel (kernels/weighted-sum.ts): the
 * same bits as `foldScaledScalar` (kernels/) applied update after update, with the accumulator read and written once per few
 * updates. Exported for benchmarks and for strategies that reuse it.
 *
 * Metrics: each is the example-weighted mean over the updates that reported it with a finite value (the aggregator
 * has already left out values beyond `limits.maxMetricAbs`): a metric some updates lack is not diluted by them.
 */
export class WeightedMean implements Aggregation, NoisesMean {
  private readonly sums: WeightedSum;
  private totalExamples = 0;
  private folded = 0;
  /** Per metric: Σ value·examples and Σ examples over the updates that reported it. */
  private readonly metricSums = new Map<string, { sum: number; examples: number }>();
  private readonly examplesByUpdate = new Map<string, number>();
  private readonly maxWeightShare: number | undefined;
  /** With a share cap: the update with the most examples so far, copied (its arrays may be the kernel's slot). */
  private largest: { updateId: string; examples: number; values: Float32Array[]; metrics: Record<string, number> } | undefined;

  /** `options` tune the fold kernel (benchmarks use them); the defaults are the aggregator's. */
  /** Central DP's noise on the mean before the step (mean-noise.ts), when asked for. */
  private meanNoise?: { std: () => number; rng: SecureGaussian };

  constructor(private readonly base: Weights, options: WeightedSumOptions = {}, limits: WeightedMeanLimits = {}, private readonly step?: MeanStep) {
    this.sums = new WeightedSum(base.map((t) => t.values.length), options);
    const share = limits.maxWeightShare;
    if (share !== undefined && !(share >= 0.5 && share <= 1)) throw new FedStreamError('INTERNAL', `maxWeightShare ${share} is outside [0.5, 1]`);
    this.maxWeightShare = share !== undefined && share < 1 ? share : undefined;
  }

  /** Central DP: N(0, std²) on the mean before the step (mean-noise.ts); false, and nothing, without a step. */
  noiseMeanBeforeStep(std: () => number, rng: SecureGaussian): boolean {
    if (!this.step) return false;
    this.meanNoise = { std, rng };
    return true;
  }

  get count(): number {
    return this.folded;
  }

  reserve(): Float32Array[] | undefined {
    return this.sums.reserve();
  }

  release(values: Float32Array[] | undefined): void {
    this.sums.release(values);
  }

  flush(): void {
    this.sums.flush();
  }

  dispose(): void {
    this.sums.dispose();
  }

  fold(update: AcceptedUpdate): void {
    const n = update.numExamples;
    if (!(n > 0)) throw new FedStreamError('INTERNAL', `update ${update.updateId} has numExamples ${n}; validation should have rejected it`);
    if (update.weights.length !== this.base.length) throw new FedStreamError('INTERNAL', `update ${update.updateId} has ${update.weights.length} tensors, expected ${this.base.length}`);
    if (this.maxWeightShare !== undefined && (!this.largest || n > this.largest.examples)) {
      this.largest = { updateId: update.updateId, examples: n, values: update.weights.map((t) => t.values.slice()), metrics: { ...update.metrics } };
    }
    this.sums.add(update.weights.map((t) => t.values), n);
    this.totalExamples += n;
    this.folded++;
    this.examplesByUpdate.set(update.updateId, n);
    for (const [k, v] of Object.entries(update.metrics)) this.addMetric(k, v, n);
  }

  private addMetric(k: string, v: number, n: number): void {
    if (!Number.isFinite(v)) return;
    const m = this.metricSums.get(k) ?? { sum: 0, examples: 0 };
    m.sum += v * n;
    m.examples += n;
    this.metricSums.set(k, m);
  }

  finish(_rejections: Rejection[]): AggregateResult {
    if (this.folded === 0) throw new FedStreamError('ROUND_ABANDONED', 'no accepted update to aggregate');
    const weightOf = new Map(this.examplesByUpdate);
    let total = this.totalExamples;
    let weightCapped: Map<string, number> | undefined;
    const share = this.maxWeightShare;
    const big = this.largest;
    if (share !== undefined && big && this.folded > 1 && big.examples > share * total) {
      // Clamp the largest to exactly `share` of the new total: fold it once more with weight -(n - c).
      const rest = total - big.examples;
      const clamped = (share * rest) / (1 - share);
      const less = big.examples - clamped;
      this.sums.add(big.values, -less);
      for (const [k, v] of Object.entries(big.metrics)) this.addMetric(k, v, -less);
      total -= less;
      weightOf.set(big.updateId, clamped);
      weightCapped = new Map([[big.updateId, big.examples / this.totalExamples]]);
    }
    this.largest = undefined;
    const inv = 1 / total;
    let averages: Float32Array[];
    try {
      if (this.step && this.meanNoise) {
        // N(0, std²) on the mean Σ n_k x_k · inv is N(0, (std / inv)²) on the sums (mean-noise.ts).
        const { rng } = this.meanNoise;
        const std = this.meanNoise.std();
        if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise standard deviation ${std} is not a finite number ≥ 0`);
        for (const s of this.sums.sums()) for (let j = 0; j < s.length; j++) s[j] = s[j]! + (std * rng.normal()) / inv;
      }
      averages = this.step ? this.step(this.sums.sums(), inv) : this.sums.scaled(inv);
    } finally {
      // The averages are copies: the kernel's memory goes back for the next round's aggregation.
      this.sums.dispose();
    }
    const weights: Weights = this.base.map((t, i) => ({ name: t.name, shape: [...t.shape], values: averages[i]! }));
    const metrics: Record<string, number> = { totalExamples: this.totalExamples, contributors: this.folded };
    for (const [k, m] of this.metricSums) if (m.examples > 0) metrics[`train_${k}`] = m.sum / m.examples;
    const contributionWeights = new Map<string, number>();
    for (const [id, n] of weightOf) contributionWeights.set(id, n * inv);
    return { weights, metrics, contributionWeights, ...(weightCapped ? { weightCapped } : {}) };
  }
}
