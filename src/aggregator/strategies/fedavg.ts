import { z } from 'zod';
import { mulberry32, sampleWithoutReplacement } from '../../ml/index.ts';
import type { Weights } from '../../codec/index.ts';
import { FedStreamError } from '../../common/index.ts';
import type { RoundConfig } from '../../protocol/index.ts';
import { WeightedSum, type WeightedSumOptions } from '../kernels/index.ts';
import type { AcceptedUpdate, AggregateResult, Aggregation, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';

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
}

/**
 * FedAvg's section of a manifest: `strategy: { name: fedavg, fraction: C }`. `fraction` is C, the fraction of the
 * known nodes selected per round, in (0, 1] (default 1: every node). Registered in registry.ts.
 */
export const fedavgOptions = z.object({
  name: z.literal('fedavg'),
  fraction: z.number().gt(0, 'expected a number in (0, 1]').lte(1, 'expected a number in (0, 1]').default(1),
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
    return new WeightedMean(base);
  }
}

/** Deterministic sample of m nodes (partial Fisher-Yates with a seeded PRNG), sorted for readability. */
export function sampleNodes(nodes: readonly string[], m: number, seed: number): string[] {
  // The one seeded PRNG of the project (ml/random.ts): the same draws as before it moved there.
  return sampleWithoutReplacement([...nodes].sort(), m, mulberry32(seed >>> 0)).sort();
}

/**
 * Example-weighted mean, folded in float64 by the WebAssembly SIMD kernel (kernels/weighted-sum.ts): the
 * same bits as `foldScaledScalar` (kernels/) applied update after update, with the accumulator read and written once per few
 * updates. Exported for benchmarks and for strategies that reuse it.
 */
export class WeightedMean implements Aggregation {
  private readonly sums: WeightedSum;
  private totalExamples = 0;
  private folded = 0;
  private readonly metricSums = new Map<string, number>();
  private readonly examplesByUpdate = new Map<string, number>();

  /** `options` tune the fold kernel (benchmarks use them); the defaults are the aggregator's. */
  constructor(private readonly base: Weights, options: WeightedSumOptions = {}) {
    this.sums = new WeightedSum(base.map((t) => t.values.length), options);
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
    this.sums.add(update.weights.map((t) => t.values), n);
    this.totalExamples += n;
    this.folded++;
    this.examplesByUpdate.set(update.updateId, n);
    for (const [k, v] of Object.entries(update.metrics)) {
      if (Number.isFinite(v)) this.metricSums.set(k, (this.metricSums.get(k) ?? 0) + v * n);
    }
  }

  finish(_rejections: Rejection[]): AggregateResult {
    if (this.folded === 0) throw new FedStreamError('ROUND_ABANDONED', 'no accepted update to aggregate');
    const inv = 1 / this.totalExamples;
    const averages = this.sums.scaled(inv);
    // The averages are copies: the kernel's memory goes back for the next round's aggregation.
    this.sums.dispose();
    const weights: Weights = this.base.map((t, i) => ({ name: t.name, shape: [...t.shape], values: averages[i]! }));
    const metrics: Record<string, number> = { totalExamples: this.totalExamples, contributors: this.folded };
    for (const [k, v] of this.metricSums) metrics[`train_${k}`] = v * inv;
    const contributionWeights = new Map<string, number>();
    for (const [id, n] of this.examplesByUpdate) contributionWeights.set(id, n * inv);
    return { weights, metrics, contributionWeights };
  }
}
