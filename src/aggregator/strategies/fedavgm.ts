import { z } from 'zod';
import { type ServerOptimizerBase, ServerOptimizer, type TensorStep } from './fedopt.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedAvgM: federated averaging with server momentum.
 *
 * Hsu, Qi, Brown. "Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification".
 * arXiv:1909.06335 (2019), §3: with the pseudo-gradient g_t = x_t − Σ_k (n_k / n) x^k_{t+1} (fedopt.ts),
 *
 *     v_t = β·v_{t−1} + g_t,    v_0 = 0
 *     x_{t+1} = x_t − η·v_t
 *
 * exactly as Flower 1.42's `FedAvgM` (flwr/server/strategy/fedavgm.py, `server_momentum` β and
 * `server_learning_rate` η), which this equals on identical inputs. With Flower's defaults (η = 1, β = 0) the step is
 * x_t − (x_t − mean) = the mean, and Flower then returns FedAvg's mean untouched: so does this (bit for bit FedAvg,
 * no state). With β = 0 and η ≠ 1 there is no momentum to keep either. Memory: one float32 array of the model's size
 * (v_t) when β > 0, stored with each version.
 */
export interface FedAvgMOptions extends ServerOptimizerBase {
  /** Server learning rate η: the fraction of the (momentum-accumulated) pseudo-gradient applied, dimensionless. */
  serverLearningRate: number;
  /** Server momentum β in [0, 1). */
  serverMomentum: number;
}

/** FedAvgM's section of a manifest; defaults are Flower 1.42's (`server_learning_rate=1.0, server_momentum=0.0`). */
export const fedavgmOptions = z.object({
  name: z.literal('fedavgm'),
  fraction: fractionOption,
  serverLearningRate: z.number().positive().finite().default(1),
  serverMomentum: z.number().min(0).lt(1).default(0),
}).strict();

export class FedAvgM extends ServerOptimizer {
  readonly name = 'fedavgm';
  constructor(private readonly o: FedAvgMOptions) {
    super(o, o.serverMomentum > 0 ? ['momentum'] : []);
  }

  protected stepTensor({ x, sums, inv, out, state }: TensorStep): void {
    const { serverLearningRate: eta, serverMomentum: beta } = this.o;
    if (eta === 1 && beta === 0) {
      // Flower's `server_opt` is false: FedAvg's mean, rounded to float32 as WeightedSum.scaled rounds it.
      for (let j = 0; j < x.length; j++) out[j] = sums[j]! * inv;
      return;
    }
    const v = state.momentum;
    for (let j = 0; j < x.length; j++) {
      const g = x[j]! - sums[j]! * inv;
      let step = g;
      if (v) {
        step = beta * v[j]! + g;
        v[j] = step;
      }
      out[j] = x[j]! - eta * step;
    }
  }
}
