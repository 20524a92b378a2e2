import { z } from 'zod';
import type { Weights } from '../../codec/index.ts';
import { clipToNorm } from '../kernels/index.ts';
import type { SecureGaussian } from '../../ml/index.ts';
import type { AcceptedUpdate, AggregateResult, Aggregation, Rejection, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { noisesMean, type NoisesMean } from './mean-noise.ts';

/**
 * Norm clipping of each update relative to the round's base, in front of any strategy: before the strategy sees an
 * update w, its change Δ = w − w_t is scaled to at most C in L2 norm,
 *
 *     w' = w_t + Δ · min(1, C / ‖Δ‖₂)
 *
 * Sun, Kairouz, Suresh, McMahan. "Can You Really Backdoor Federated Learning?" arXiv:1911.07963, 2019, §4 (norm
 * thresholding of updates: a boosted, backdoored update loses its boost); the same FlatClip as McMahan, Ramage,
 * Talwar, Zhang, ICLR 2018 (DP-FedAvg), and as Flower 1.42's `compute_clip_model_update`
 * (flwr/supercore/differential_privacy.py), which its DP fixed-clipping wrappers apply before the inner strategy.
 *
 * A wrapper, not an option of each strategy, so that clipping composes with every strategy (FedAvg, the server
 * optimizers, median, trimmed mean, Krum) without any of them knowing of it, as Flower's DP wrappers take any
 * strategy. Selected in a manifest with `strategy.clipNorm` (C, weights; 0 = off), an option every strategy takes
 * (registry.ts). Unlike `limits.maxUpdateNorm`, which rejects an update above the bound, clipping keeps the update and
 * shortens it: a node with a large honest step still counts, a boosted one loses its boost.
 *
 * Memory: a clipped update is copied once (one update's worth, transient); an update within C is passed as it came.
 */
export const clipNormOption = z.number().min(0, 'expected a number ≥ 0 (0: no clipping)').finite().default(0);

export class Clipped implements Strategy {
  readonly name: string;
  /** The inner strategy's, when it has state (a clipped FedAdam keeps its moments); absent otherwise, as on the inner. */
  readonly state?: () => Uint8Array | undefined;
  readonly restore?: (state: Uint8Array) => void;

  constructor(private readonly inner: Strategy, readonly clipNorm: number) {
    this.name = inner.name;
    if (inner.state) this.state = () => inner.state!();
    if (inner.restore) this.restore = (state) => inner.restore!(state);
  }

  configureRound(ctx: RoundContext): RoundPlan {
    return this.inner.configureRound(ctx);
  }

  begin(base: Weights, ctx: RoundContext): Aggregation {
    return new ClippedAggregation(this.inner.begin(base, ctx), base.map((t) => t.values), this.clipNorm);
  }
}

/**
 * An aggregation in front of another that clips each update's change from the round's base to `clipNorm` (L2, over
 * every tensor together, w' = w_t + Δ · min(1, C / ‖Δ‖₂)) before the inner one folds it; counts the updates received
 * and clipped. Both clipping wrappers build on it: `Clipped` here and central DP (dp-central.ts), so the two clip
 * bit for bit alike. Subclasses say what `finish` adds.
 */
export abstract class ClippingAggregation implements Aggregation, NoisesMean {
  /** Updates folded so far, and how many of them were clipped (scale < 1). */
  protected received = 0;
  protected clipped = 0;
  /** The inner aggregation's, when it has one (the aggregator awaits it only then). */
  readonly settle?: () => Promise<void>;
  constructor(protected readonly inner: Aggregation, private readonly base: Float32Array[], private readonly clipNorm: number) {
    if (inner.settle) this.settle = () => inner.settle!();
  }

  get count(): number {
    return this.inner.count;
  }

  /** The inner aggregation's (a server optimizer's mean), for central DP around a clipped strategy. */
  noiseMeanBeforeStep(std: () => number, rng: SecureGaussian): boolean {
    return noisesMean(this.inner) && this.inner.noiseMeanBeforeStep(std, rng);
  }

  reserve(): Float32Array[] | undefined {
    return this.inner.reserve?.();
  }

  release(values: Float32Array[] | undefined): void {
    this.inner.release?.(values);
  }

  flush(): void {
    this.inner.flush?.();
  }

  dispose(): void {
    this.inner.dispose?.();
  }

  fold(update: AcceptedUpdate): void {
    const c = clipToNorm(update.weights.map((t) => t.values), this.base, this.clipNorm);
    this.received++;
    if (!(c.scale < 1)) {
      this.inner.fold(update);
      return;
    }
    this.clipped++;
    // The clipped copy is folded; the update's own arrays are left as they came (given back if they were a slot
    // reserved from the inner aggregation; `release` ignores any other arrays). The scale is noted for a robust
    // strategy that re-reads the update from the log beyond its memory budget.
    this.inner.release?.(update.weights.map((t) => t.values));
    this.inner.fold({ ...update, weights: update.weights.map((t, i) => ({ ...t, values: c.values[i]! })), deltaScales: [...(update.deltaScales ?? []), c.scale] });
  }

  abstract finish(rejections: Rejection[]): AggregateResult;
}

/** Clips each update, then folds it into the inner aggregation; counts how many were clipped (metric `clipped`). */
class ClippedAggregation extends ClippingAggregation {
  finish(rejections: Rejection[]): AggregateResult {
    const r = this.inner.finish(rejections);
    return { ...r, metrics: { ...r.metrics, clipped: this.clipped } };
  }
}
