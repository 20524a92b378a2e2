import { z } from 'zod';
import { type ServerOptimizerBase, ServerOptimizer, type TensorStep } from './fedopt.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedAdagrad: Adagrad as the server optimizer: each parameter's step shrinks with the sum of its past squared
 * pseudo-gradients.
 *
 * Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan. "Adaptive Federated Optimization". ICLR 2021,
 * Algorithm 2 (FedAdagrad), with Δ_t the example-weighted mean of the nodes' changes (fedopt.ts) and β1 = 0 as in
 * Flower 1.42's `FedAdagrad` (flwr/server/strategy/fedadagrad.py, which fixes `beta_1=0.0`), so m_t = Δ_t:
 *
 *     v_t = v_{t−1} + Δ_t²
 *     x_{t+1} = x_t + η · Δ_t / (√v_t + τ)
 *
 * with v_0 = 0 (Flower's `np.zeros_like`; the paper takes v_{−1} ≥ τ²), equal to Flower's on identical inputs.
 * Memory: one float32 array of the model's size (v_t), stored with each version.
 */
export interface FedAdagradOptions extends ServerOptimizerBase {
  /** Server learning rate η (weight units per unit of Δ/√v). */
  eta: number;
  /** Adaptivity τ > 0, added to √v_t (weight units). */
  tau: number;
}

/** FedAdagrad's section of a manifest; defaults are Flower 1.42's (`eta=1e-1, tau=1e-9`). */
export const fedadagradOptions = z.object({
  name: z.literal('fedadagrad'),
  fraction: fractionOption,
  eta: z.number().positive().finite().default(0.1),
  tau: z.number().positive().finite().default(1e-9),
}).strict();

export class FedAdagrad extends ServerOptimizer {
  readonly name = 'fedadagrad';
  constructor(private readonly o: FedAdagradOptions) {
    super(o, ['v']);
  }

  protected stepTensor({ x, sums, inv, out, state }: TensorStep): void {
    const { eta, tau } = this.o;
    const v = state.v!;
    for (let j = 0; j < x.length; j++) {
      const d = sums[j]! * inv - x[j]!;
      const vj = v[j]! + d * d;
      v[j] = vj;
      out[j] = x[j]! + (eta * d) / (Math.sqrt(vj) + tau);
    }
  }
}
