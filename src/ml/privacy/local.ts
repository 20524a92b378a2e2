import type { Weights } from '../../codec/index.ts';
import { SecureGaussian } from './gaussian.ts';

/** The manifest's `privacy.local` (config/privacy.ts): C, Δ, ε, δ of each release. */
export interface LocalDpOptions {
  clippingNorm: number;
  sensitivity: number;
  epsilon: number;
  delta: number;
}

/**
 * The std of local DP's Gaussian noise: σ = Δ·√(2 ln(1.25/δ)) / ε, the classic Gaussian mechanism (Dwork, Roth, "The
 * Algorithmic Foundations of Differential Privacy", 2014, Thm 3.22: (ε, δ)-DP for ε < 1; for ε ≥ 1 the formula is
 * what Flower's LocalDpMod uses, but the theorem no longer applies; docs/strategies.md says so).
 */
export function localDpNoiseStd(o: LocalDpOptions): number {
  return (o.sensitivity * Math.sqrt(2 * Math.log(1.25 / o.delta))) / o.epsilon;
}

/**
 * Local DP on the node, as Flower 1.42's LocalDpMod (flwr/client/mod/localdp_mod.py): the change of the trained
 * weights from the round's base is clipped to L2 norm C (over every tensor together: w' = w_t + Δ·min(1, C/‖Δ‖)),
 * then N(0, σ²) noise, σ = localDpNoiseStd(o), from the CSPRNG (gaussian.ts) is added to every weight. Returns new
 * arrays (the inputs are left as they are), the norm of Δ before clipping and σ.
 *
 * Each release (each update the node publishes) is then (ε, δ)-DP with respect to the node's data when
 * sensitivity ≥ C and ε < 1 (above: see localDpNoiseStd); releases compose over rounds: docs/strategies.md.
 */
export function applyLocalDp(trained: Weights, base: Weights, o: LocalDpOptions, rng = new SecureGaussian()): { weights: Weights; norm: number; std: number } {
  if (trained.length !== base.length) throw new RangeError(`local DP: ${trained.length} tensors against a base of ${base.length}`);
  let sq = 0;
  trained.forEach((t, i) => {
    const b = base[i]!.values;
    if (t.values.length !== b.length) throw new RangeError(`local DP: tensor ${t.name} has ${t.values.length} values, the base ${b.length}`);
    for (let j = 0; j < b.length; j++) {
      const d = t.values[j]! - b[j]!;
      sq += d * d;
    }
  });
  const norm = Math.sqrt(sq);
  const scale = norm > 0 ? Math.min(1, o.clippingNorm / norm) : 1;
  const std = localDpNoiseStd(o);
  const weights = trained.map((t, i) => {
    const b = base[i]!.values;
    const v = new Float32Array(t.values.length);
    for (let j = 0; j < v.length; j++) v[j] = b[j]! + (t.values[j]! - b[j]!) * scale;
    return { ...t, shape: [...t.shape], values: v };
  });
  rng.addNoise(weights.map((t) => t.values), std);
  return { weights, norm, std };
}
