import { z } from 'zod';
import { type ServerOptimizerBase, ServerOptimizer, type TensorStep } from './fedopt.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedAdam: Adam as the server optimizer, applied to the pseudo-gradient of each round.
 *
 * Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan. "Adaptive Federated Optimization". ICLR 2021,
 * Algorithm 2 (FedAdam), with Δ_t the example-weighted mean of the nodes' changes (fedopt.ts):
 *
 *     m_t = β1·m_{t−1} + (1 − β1)·Δ_t
 *     v_t = β2·v_{t−1} + (1 − β2)·Δ_t²
 *     x_{t+1} = x_t + η_t · m_t / (√v_t + τ)
 *
 * with m_0 = v_0 = 0. As Flower 1.42's `FedAdam` (flwr/server/strategy/fedadam.py), which this equals on identical
 * inputs (test/unit/strategies-flower.test.ts), the learning rate carries Adam's bias correction (Kingma & Ba 2015,
 * the line before §2.1), which the paper's Algorithm 2 does not:
 *
 *     η_t = η · √(1 − β2^(r+1)) / (1 − β1^(r+1)),    r the round number (Flower's `server_round`, from 1)
 *
 * Rounds are numbered by the aggregator: a round abandoned without a version still advances r, as a Flower round
 * without results does. Memory: two float32 arrays of the model's size (m_t, v_t), stored with each version.
 */
export interface FedAdamOptions extends ServerOptimizerBase {
  /** Server learning rate η (weight units per unit of m/√v). */
  eta: number;
  /** Decay β1 of the first moment, in [0, 1). */
  beta1: number;
  /** Decay β2 of the second moment, in [0, 1). */
  beta2: number;
  /** Adaptivity τ > 0: added to √v_t (weight units); larger τ is closer to SGD with momentum. */
  tau: number;
}

/** FedAdam's section of a manifest; defaults are Flower 1.42's (`eta=1e-1, beta_1=0.9, beta_2=0.99, tau=1e-9`). */
export const fedadamOptions = z.object({
  name: z.literal('fedadam'),
  fraction: fractionOption,
  eta: z.number().positive().finite().default(0.1),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.99),
  tau: z.number().positive().finite().default(1e-9),
}).strict();

export class FedAdam extends ServerOptimizer {
  readonly name = 'fedadam';
  constructor(private readonly o: FedAdamOptions) {
    super(o, ['m', 'v']);
  }

  protected stepTensor({ x, sums, inv, out, state, round }: TensorStep): void {
    const { eta, beta1, beta2, tau } = this.o;
    const m = state.m!;
    const v = state.v!;
    const etaNorm = (eta * Math.sqrt(1 - Math.pow(beta2, round + 1))) / (1 - Math.pow(beta1, round + 1));
    for (let j = 0; j < x.length; j++) {
      const d = sums[j]! * inv - x[j]!;
      const mj = beta1 * m[j]! + (1 - beta1) * d;
      const vj = beta2 * v[j]! + (1 - beta2) * (d * d);
      m[j] = mj;
      v[j] = vj;
      out[j] = x[j]! + (etaNorm * mj) / (Math.sqrt(vj) + tau);
    }
  }
}
