import { z } from 'zod';

/**
 * The manifest's `privacy` section: differential privacy (docs/strategies.md, "Differential privacy").
 *
 *     privacy:
 *       central:             # DP-FedAvg on the aggregator, around whatever `strategy` names
 *         clipping: fixed    # fixed (McMahan et al., ICLR 2018) | adaptive (Andrew et al., NeurIPS 2021)
 *         noiseMultiplier: 1.0
 *         clippingNorm: 1.0  # fixed: C; adaptive: the initial C (default 0.1)
 *         numSampledClients: 10
 *       population: 100      # nodes the round's sample is drawn from: q = numSampledClients / population
 *       budget: { epsilon: 8, delta: 1.0e-5 }
 *       local:               # on each node before it publishes (Flower's LocalDpMod)
 *         clippingNorm: 1.0
 *         sensitivity: 1.0
 *         epsilon: 10
 *         delta: 1.0e-5
 *
 * Units: norms are L2 norms of a weight change (the model's weights' own unit); ε is in nats (the usual); δ a
 * probability; the noise multiplier is the noise's standard deviation over the clipping norm.
 */
const positive = z.number().positive().finite();
const probability = z.number().gt(0, 'expected a number in (0, 1)').lt(1, 'expected a number in (0, 1)');

export const centralDpSchema = z.object({
  clipping: z.enum(['fixed', 'adaptive']).default('fixed'),
  /** z: noise std over the clipping norm. 0 disables the noise (clipping only; ε is then infinite). */
  noiseMultiplier: z.number().min(0).finite(),
  /** fixed: the clipping norm C; adaptive: its initial value (Flower's default 0.1). */
  clippingNorm: positive.optional(),
  /** m: nodes sampled per round; the noise std is z·C/m (Flower's `num_sampled_clients`), z·C/n when a round brings n < m. */
  numSampledClients: z.number().int().positive(),
  /** Adaptive only: the quantile of update norms the clipping norm tracks (default 0.5). */
  targetClippedQuantile: z.number().min(0).max(1).default(0.5),
  /** Adaptive only: η_C, the learning rate of the geometric update of C (default 0.2). */
  clipNormLr: positive.default(0.2),
  /** Adaptive only: σ_b, the std of the noise on the count of unclipped updates (default numSampledClients / 20). */
  clippedCountStddev: z.number().min(0).finite().optional(),
}).strict();

export const localDpSchema = z.object({
  /** C: the node's weight change is clipped to this L2 norm before noise. */
  clippingNorm: positive,
  /**
   * Δ: the L2 sensitivity the noise is calibrated to, at least clippingNorm (a clipped change moves by up to C, so a
   * smaller Δ, 0 say, adds less noise than the (ε, δ) every report states for each release; refused).
   */
  sensitivity: z.number().min(0).finite(),
  /** ε of each release (each update the node publishes), Gaussian mechanism: std = Δ·√(2 ln(1.25/δ))/ε. */
  epsilon: positive,
  /** δ of each release, in (0, 1). */
  delta: probability,
}).strict()
  .refine((l) => l.sensitivity >= l.clippingNorm, {
    message: 'sensitivity must be at least clippingNorm (the L2 norm a clipped change can move by): a smaller one adds less noise than the stated (ε, δ) needs',
    path: ['sensitivity'],
  });

export const privacySchema = z.object({
  central: centralDpSchema.optional(),
  /** Number of nodes the round's sample is drawn from (q = numSampledClients / population; default: q = 1). */
  population: z.number().int().positive().optional(),
  /** The pipeline's budget: no round starts whose release would take ε (at δ) above `epsilon`. */
  budget: z.object({ epsilon: positive, delta: probability }).strict().optional(),
  local: localDpSchema.optional(),
}).strict()
  .refine((p) => p.population === undefined || p.central === undefined || p.population >= p.central.numSampledClients,
    { message: 'population must be at least central.numSampledClients', path: ['population'] })
  .refine((p) => p.budget === undefined || p.central !== undefined, { message: 'a budget needs central DP (privacy.central) to account for', path: ['budget'] });

export type PrivacySection = z.infer<typeof privacySchema>;
export type CentralDpSection = z.infer<typeof centralDpSchema>;
export type LocalDpSection = z.infer<typeof localDpSchema>;
