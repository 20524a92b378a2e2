/**
 * Extra loss terms of local training (trainer.ts adds them inside `optimizer.minimize`): the {@link ExtraLoss} port,
 * and FedProx's proximal term, one file for the algorithm as the aggregator's side has strategies/fedprox.ts.
 */
import { ConfigError } from '../common/index.ts';
import { tf } from './backend.ts';

/**
 * An extra loss term, added to the mean cross-entropy of every batch inside `optimizer.minimize`, so that its
 * gradient reaches the weights: FedProx's proximal term `μ/2 · Σ‖w − w_base‖²` is
 * `(trainable, base) => tf.mul(μ / 2, tf.addN(trainable.map((w, i) => tf.sum(tf.squaredDifference(w, base[i]!)))))`.
 *
 * `trainable` are the model's trainable variables in model order; `base[i]` holds the value `trainable[i]` had when
 * training started (the base version's weights), and does not change during training. Called once per step inside
 * a tidy scope: intermediate tensors are disposed by the trainer. Must return a scalar; the reported loss includes it.
 */
export type ExtraLoss = (trainable: readonly tf.Variable[], base: readonly tf.Tensor[]) => tf.Scalar;

/**
 * FedProx's proximal term (Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith. "Federated Optimization in Heterogeneous
 * Networks". MLSys 2020, eq. 2): `h_k(w; w_t) = F_k(w) + μ/2 · ‖w − w_t‖²`, the squared L2 distance summed over every
 * trainable tensor, w_t the base version's weights. Its gradient with respect to w is μ(w − w_t), so one SGD step is
 * `w ← w − η(∇F_k(w) + μ(w − w_t))`. Flower's FedProx asks the same of its clients
 * (`loss += (proximal_mu / 2) * Σ ‖w − w_global‖²`, flwr/server/strategy/fedprox.py). μ: dimensionless factor on the
 * squared distance, ≥ 0.
 */
export function proximalTerm(mu: number): ExtraLoss {
  if (!(mu >= 0) || !Number.isFinite(mu)) throw new ConfigError('training.proximalMu', `expected a finite number ≥ 0, got ${mu}`);
  return (trainable, base) => tf.mul(mu / 2, tf.addN(trainable.map((w, i) => tf.sum(tf.squaredDifference(w, base[i]!))))) as tf.Scalar;
}

/** The extra loss of a training run: `extraLoss` and the proximal term of `proximalMu`, each when present. */
export function extraLossOf(o: { extraLoss?: ExtraLoss; proximalMu?: number }): ExtraLoss | undefined {
  const prox = o.proximalMu === undefined || o.proximalMu === 0 ? undefined : proximalTerm(o.proximalMu);
  const extra = o.extraLoss;
  if (!prox || !extra) return prox ?? extra;
  return (trainable, base) => tf.add(extra(trainable, base), prox(trainable, base)) as tf.Scalar;
}
