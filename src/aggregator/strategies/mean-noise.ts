import type { SecureGaussian } from '../../ml/index.ts';
import type { Aggregation } from '../strategy.ts';

/**
 * An aggregation that can take central DP's Gaussian noise on the example-weighted mean of the round's updates,
 * before a server optimizer's step (FedAvgM, FedAdagrad, FedAdam, FedYogi: WeightedMean with a MeanStep), rather than
 * on the weights the step produced.
 *
 * Why: DP-FedAvg's noise N(0, (z·C/m)²) is calibrated to the sensitivity C/m of the *mean* of m clipped updates.
 * A server optimizer maps that mean through a nonlinear, history-dependent step (FedAdam with τ = 1e-9 moves every
 * coordinate by about ±η whatever the mean's size), so one node can move the step's output by far more than C/m and
 * noise added after it protects nothing. Noised before the step, the step and its state (moments) are
 * post-processing of a Gaussian release, and the accountant's ε holds (Andrew et al., NeurIPS 2021, Algorithm 1:
 * Δ̃ = (Σ Δ_i + N(0, σ²C²))/m, then the server optimizer). Flower 1.42's DP wrappers noise the optimizer's output.
 */
export interface NoisesMean {
  /**
   * Asks the aggregation to add N(0, std()²) to every coordinate of the mean before its step (`std` is read then, at
   * finish, when the round's updates are all in). Returns false when it has no step to protect (a plain mean: the
   * caller noises the result, the same release) and then does nothing.
   */
  noiseMeanBeforeStep(std: () => number, rng: SecureGaussian): boolean;
}

/** True when `a` (or what it wraps) can take the noise on its mean: see {@link NoisesMean}. */
export function noisesMean(a: Aggregation): a is Aggregation & NoisesMean {
  return typeof (a as Partial<NoisesMean>).noiseMeanBeforeStep === 'function';
}
