import { z } from 'zod';
import { type ServerOptimizerBase, ServerOptimizer, type TensorStep } from './fedopt.ts';
import { fractionOption } from './fedavg.ts';

/**
 * FedYogi: Yogi as the server optimizer: Adam's second moment grows or shrinks by (1 − β2)·Δ² towards Δ², so it
 * does not forget a large past step as fast as Adam's.
 *
 * Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan. "Adaptive Federated Optimization". ICLR 2021,
 * Algorithm 2 (FedYogi), with Δ_t the example-weighted mean of the nodes' changes (fedopt.ts):
 *
 *     m_t = β1·m_{t−1} + (1 − β1)·Δ_t
 *     v_t = v_{t−1} − (1 − β2)·Δ_t²·sign(v_{t−1} − Δ_t²)
 *     x_{t+1} = x_t + η · m_t / (√v_t + τ)
 *
 * with m_0 = v_0 = 0 (Flower's `np.zeros_like`; the paper takes v_{−1} ≥ τ²) and no bias correction, exactly as
 * Flower 1.42's `FedYogi` (flwr/server/strategy/fedyogi.py), which this equals on identical inputs. sign(0) = 0.
 * Memory: two float32 arrays of the model's size (m_t, v_t), stored with each version.
 */
export interface FedYogiOptions extends ServerOptimizerBase {
  /** Server learning rate η (weight units per unit of m/√v). */
  eta: number;
  /** Decay β1 of the first moment, in [0, 1). */
  beta1: number;
  /** β2 in [0, 1): each round moves v_t by (1 − β2)·Δ_t² towards Δ_t². */
  beta2: number;
  /** Adaptivity τ > 0, added to √v_t (weight units). */
  tau: number;
}

/** FedYogi's section of a manifest; defaults are Flower 1.42's (`eta=1e-2, beta_1=0.9, beta_2=0.99, tau=1e-3`). */
export const fedyogiOptions = z.object({
  name: z.literal('fedyogi'),
  fraction: fractionOption,
  eta: z.number().positive().finite().default(0.01),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.99),
  tau: z.number().positive().finite().default(1e-3),
}).strict();

export class FedYogi extends ServerOptimizer {
  readonly name = 'fedyogi';
  constructor(private readonly o: FedYogiOptions) {
    super(o, ['m', 'v']);
  }

  protected stepTensor({ x, sums, inv, out, state }: TensorStep): void {
    const { eta, beta1, beta2, tau } = this.o;
    const m = state.m!;
    const v = state.v!;
    for (let j = 0; j < x.length; j++) {
      const d = sums[j]! * inv - x[j]!;
      const d2 = d * d;
      const mj = beta1 * m[j]! + (1 - beta1) * d;
      const vj = v[j]! - (1 - beta2) * d2 * Math.sign(v[j]! - d2);
      m[j] = mj;
      v[j] = vj;
      out[j] = x[j]! + (eta * mj) / (Math.sqrt(vj) + tau);
    }
  }
}
