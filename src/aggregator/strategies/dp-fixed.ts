import type { Strategy } from '../strategy.ts';
import { CentralDp, type CentralDpSettings, type ClippingRule } from './dp-central.ts';

/**
 * Central DP-FedAvg with a fixed clipping norm.
 *
 * McMahan, Ramage, Talwar, Zhang. "Learning Differentially Private Recurrent Language Models". ICLR 2018,
 * Algorithm 1 (DP-FedAvg with FlatClip): each node's update is clipped to L2 norm C, the updates are averaged, and
 * N(0, σ²) noise is added with σ = z·C / m for m sampled nodes (Flower's "fixed" estimator, Flower 1.42
 * DifferentialPrivacyServerSideFixedClipping, whose semantics this follows: the noise on the aggregated weights, C
 * constant; except z·C/n when only n < m updates arrive, where Flower keeps z·C/m: dp-central.ts).
 *
 * The (ε, δ) guarantee is node-level (adding or removing one node's entire contribution), for the RDP of the
 * sampled Gaussian mechanism with noise multiplier z, composed over the versions published (dp-central.ts,
 * ml/privacy/rdp.ts). It assumes each node's update reaches the aggregator with weight at most 1/m of the total,
 * which FedAvg's example weighting does not give: docs/strategies.md says what this means.
 */
export function dpFixedClipping(inner: Strategy, s: CentralDpSettings): CentralDp {
  const rule: ClippingRule = {
    kind: 'fixed',
    weightsNoiseMultiplier: s.noiseMultiplier,
    afterRound: (c) => c,
  };
  return new CentralDp(inner, s, rule);
}
