import { z } from 'zod';
import type { Weights } from '../../codec/index.ts';
import type { Aggregation, RoundContext, RoundPlan, Strategy } from '../strategy.ts';
import { FedAvg, type FedAvgOptions, fractionOption } from './fedavg.ts';

/**
 * FedProx: federated averaging whose nodes minimise a proximal objective.
 *
 * Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith. "Federated Optimization in Heterogeneous Networks". MLSys 2020,
 * Algorithm 2. Node k, from the round's base weights w_t, (inexactly) solves
 *
 *     min_w  h_k(w; w_t) = F_k(w) + μ/2 · ‖w − w_t‖²                                   (eq. 2)
 *
 * and the server averages what comes back, each node weighted by its examples, as FedAvg (eq. 3 there weighs by p_k
 * = n_k / n). The server's only difference from FedAvg is that every round's config carries `proximalMu` = μ
 * (protocol/round-config.ts); the node's trainer adds the term (ml/proximal.ts, `proximalTerm`). As Flower 1.42's
 * `FedProx` (flwr/server/strategy/fedprox.py: `configure_fit` adds `proximal_mu`; `aggregate_fit` is FedAvg's).
 *
 * Partial work: FedProx tolerates nodes that do less than asked (γ-inexact solutions, fewer local epochs or steps):
 * their updates are aggregated like any other, weighted by their examples, never dropped for it.
 */
export interface FedProxOptions extends FedAvgOptions {
  /** μ ≥ 0, the proximal coefficient (dimensionless factor on the squared L2 distance to the base weights). */
  proximalMu: number;
}

/**
 * FedProx's section of a manifest: `strategy: { name: fedprox, proximalMu: μ, fraction: C }`. `proximalMu` is
 * required, as Flower's `proximal_mu` has no default (the paper tries μ ∈ {0.001, 0.01, 0.1, 1}); μ = 0 is FedAvg.
 */
export const fedproxOptions = z.object({
  name: z.literal('fedprox'),
  fraction: fractionOption,
  proximalMu: z.number().min(0).finite(),
}).strict();

export class FedProx implements Strategy {
  readonly name = 'fedprox';
  private readonly fedavg: FedAvg;

  constructor(options: FedProxOptions) {
    const { proximalMu, ...rest } = options;
    this.fedavg = new FedAvg({ ...rest, config: { ...rest.config, proximalMu } });
  }

  /** FedAvg's selection; the config carries `proximalMu`. */
  configureRound(ctx: RoundContext): RoundPlan {
    return this.fedavg.configureRound(ctx);
  }

  /** FedAvg's example-weighted mean. */
  begin(base: Weights): Aggregation {
    return this.fedavg.begin(base);
  }
}
