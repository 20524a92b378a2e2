import type { PrivacySection } from '../../config/index.ts';
import type { Strategy } from '../strategy.ts';
import type { CentralDpSettings } from './dp-central.ts';
import { dpAdaptiveClipping } from './dp-adaptive.ts';
import { dpFixedClipping } from './dp-fixed.ts';

/** δ at which ε is reported when the manifest sets no budget. */
export const DEFAULT_DP_DELTA = 1e-5;
/** Flower's and Andrew et al.'s initial clipping norm for adaptive clipping; fixed clipping's default too. */
export const DEFAULT_CLIPPING_NORM = 0.1;

/**
 * `inner` wrapped in central DP-FedAvg as the manifest's `privacy` section asks (fixed or adaptive clipping,
 * dp-fixed.ts / dp-adaptive.ts); `inner` itself when there is no `privacy.central`. The sampling rate is
 * numSampledClients / population (1 without a population); ε is reported at the budget's δ, else 1e-5.
 */
export function withCentralDp(inner: Strategy, p: PrivacySection | undefined): Strategy {
  const c = p?.central;
  if (!c) return inner;
  const s: CentralDpSettings = {
    noiseMultiplier: c.noiseMultiplier,
    clippingNorm: c.clippingNorm ?? DEFAULT_CLIPPING_NORM,
    numSampledClients: c.numSampledClients,
    samplingRate: c.numSampledClients / (p.population ?? c.numSampledClients),
    delta: p.budget?.delta ?? DEFAULT_DP_DELTA,
    epsilonBudget: p.budget?.epsilon,
  };
  if (c.clipping === 'fixed') return dpFixedClipping(inner, s);
  return dpAdaptiveClipping(inner, s, { targetClippedQuantile: c.targetClippedQuantile, clipNormLr: c.clipNormLr, clippedCountStddev: c.clippedCountStddev });
}
