import { FedStreamError } from '../../common/index.ts';
import type { Strategy } from '../strategy.ts';
import { CentralDp, type CentralDpSettings, type ClippingRule } from './dp-central.ts';

/** Options of adaptive clipping beside the common central-DP settings (the manifest's `privacy.central`). */
export interface AdaptiveClippingOptions {
  /** γ: the quantile of the update norms C should track, i.e. the fraction of updates left unclipped (default 0.5). */
  targetClippedQuantile: number;
  /** η_C: learning rate of the geometric update (default 0.2). */
  clipNormLr: number;
  /** σ_b: std of the noise on the count of unclipped updates (default m / 20, Andrew et al.'s recommendation). */
  clippedCountStddev?: number;
}

/**
 * Central DP-FedAvg with adaptive clipping.
 *
 * Andrew, Thakkar, McMahan, Ramaswamy. "Differentially Private Learning with Adaptive Clipping". NeurIPS 2021,
 * Algorithm 1: the clipping norm C tracks the γ-quantile of the update norms with a geometric update from the
 * noised fraction of updates that were not clipped,
 *
 *     b̃ = (Σ_i 1[‖Δ_i‖ ≤ C] + N(0, σ_b²)) / m_received,      C ← C · exp(−η_C (b̃ − γ))
 *
 * and the noise multiplier of the weights is reduced so that the two Gaussian mechanisms (weights with z_Δ, count
 * with σ_b) together cost what one with the requested z does (Thm 1):  z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2).
 * As Flower 1.42 DifferentialPrivacyServerSideAdaptiveClipping (flwr/server/strategy/dp_adaptive_clipping.py and
 * `compute_adaptive_noise_params`): the updates are clipped with the round's C, the aggregated weights are noised
 * with z_Δ·C / m, C is then updated; with z = 0, σ_b defaults to 0 and nothing is noised. Flower noises with the
 * updated C instead (less noise than the round's sensitivity C/m needs whenever C shrinks); this follows the paper's
 * Algorithm 1, where the noise uses the round's C^t and C^{t+1} comes after.
 *
 * A second difference from Flower, on purpose: Flower 1.42 counts the updates that WERE clipped (`norm_bit` is
 * `scaling_factor < 1`) and uses their fraction as b̄, so with more updates clipped than γ it shrinks C further and C
 * runs away to 0 (or infinity) instead of tracking a quantile. This file uses the paper's b̄ (unclipped). The two
 * agree exactly when Flower is given γ_F = 1 − γ and η_F = −η, which is how test/unit/strategies-flower-dp.test.ts
 * compares them.
 *
 * Throws PRIVACY_CONFIG_INVALID when z ≥ 2σ_b (no z_Δ exists), naming both, as Flower raises ValueError.
 */
export function dpAdaptiveClipping(inner: Strategy, s: CentralDpSettings, o: AdaptiveClippingOptions): CentralDp {
  const z = s.noiseMultiplier;
  let countStd = 0;
  let zWeights = 0;
  if (z > 0) {
    countStd = o.clippedCountStddev ?? s.numSampledClients / 20;
    if (z >= 2 * countStd) {
      throw new FedStreamError('PRIVACY_CONFIG_INVALID',
        `privacy.central: noiseMultiplier ${z} must be below 2 × clippedCountStddev (${countStd}${o.clippedCountStddev === undefined ? ', the default numSampledClients / 20' : ''}): raise privacy.central.clippedCountStddev or numSampledClients, or lower noiseMultiplier`,
        { details: { path: 'privacy.central.clippedCountStddev', noiseMultiplier: z, clippedCountStddev: countStd } });
    }
    zWeights = (z ** -2 - (2 * countStd) ** -2) ** -0.5;
  } else {
    countStd = o.clippedCountStddev ?? 0;
  }
  const rule: ClippingRule = {
    kind: 'adaptive',
    weightsNoiseMultiplier: zWeights,
    afterRound(c, unclipped, received, rng) {
      // The paper's b̄: the noised fraction of updates that were NOT clipped (see the comment above on Flower).
      const noised = unclipped + (countStd > 0 ? countStd * rng.normal() : 0);
      const fraction = noised / received;
      return c * Math.exp(-o.clipNormLr * (fraction - o.targetClippedQuantile));
    },
  };
  return new CentralDp(inner, s, rule);
}
