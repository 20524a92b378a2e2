/**
 * Rényi-DP accounting of the (Poisson-)subsampled Gaussian mechanism, for DP-FedAvg's per-round releases.
 *
 * No maintained Node library does this (npm has none of Google's `dp-accounting`, Opacus's or TF Privacy's
 * accountants), so this file ports the computation of Google's `dp-accounting` 0.6.0
 * (`dp_accounting/rdp/rdp_privacy_accountant.py`, Apache-2.0), against which test/unit/privacy-accountant.test.ts
 * holds it to 1% in ε:
 *
 * - RDP of the sampled Gaussian mechanism at order α, sampling rate q, noise multiplier σ (Mironov, Talwar, Zhang,
 *   "Rényi Differential Privacy of the Sampled Gaussian Mechanism", arXiv:1908.10530, 2019, §3.3):
 *     q = 1:  α / (2σ²)  (Mironov, "Rényi Differential Privacy", CSF 2017, Prop. 7)
 *     integer α:   log A_α / (α − 1),  A_α = Σ_{i=0..α} C(α,i) (1−q)^{α−i} q^i exp((i² − i) / (2σ²))
 *     fractional α: A_α as the two series over (−∞, z₀] and [z₀, ∞), z₀ = σ² ln(1/q − 1) + 1/2, with erfc terms.
 * - Composition over T releases: RDP adds up, order by order (Mironov 2017, Prop. 1).
 * - Conversion to (ε, δ): ε = min_α [ r_α + ln(1 − 1/α) − (ln δ + ln α) / (α − 1) ] for α > 1.01 (Balle et al.,
 *   "Hypothesis Testing Interpretations and Rényi DP", AISTATS 2020, Prop. 12; Canonne, Kamath, Steinke 2020),
 *   0 where δ² + expm1(−r_α) > 0, as dp-accounting's `compute_epsilon`.
 * - Orders: dp-accounting's DEFAULT_RDP_ORDERS (1.1..10.9 by 0.1, 11..63, 128, 256, 512, 1024).
 *
 * Units: ε and δ are the usual (ε, δ)-DP parameters; σ is the noise standard deviation divided by the L2
 * sensitivity (the clipping norm C for DP-FedAvg); q is a probability. Which neighbouring relation ε refers to
 * (adding or removing one node's whole data: node-level DP) is the mechanism's, documented in docs/strategies.md.
 */

/** dp-accounting's default RDP orders. */
export const RDP_ORDERS: readonly number[] = [
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128, 256, 512, 1024,
];

function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** Lanczos coefficients (g = 7, n = 9): |relative error| < 1e-15 on the positive axis. */
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log|Γ(x)| (as scipy's gammaln), for any real x that is not a pole; reflection below 0.5. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI) - Math.log(Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

function logComb(n: number, k: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

/**
 * log erfc(x), accurate in the far tail: for x ≥ 0 the Chebyshev fit of Numerical Recipes (erfcc, relative error
 * < 1.2e-7 everywhere) kept in log form, so it never underflows; for x < 0, log(2 − erfc(−x)).
 */
export function logErfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807
    + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  const logPositive = Math.log(t) + poly;
  return x >= 0 ? logPositive : Math.log(2 - Math.exp(logPositive));
}

function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  const log1mq = Math.log1p(-q);
  const logq = Math.log(q);
  for (let i = 0; i <= alpha; i++) {
    logA = logAdd(logA, logComb(alpha, i) + i * logq + (alpha - i) * log1mq + (i * i - i) / (2 * sigma * sigma));
  }
  return logA;
}

function logAFrac(q: number, sigma: number, alpha: number): number {
  let a0 = -Infinity;
  let a1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const log1mq = Math.log1p(-q);
  const logq = Math.log(q);
  let last0 = -Infinity;
  let last1 = -Infinity;
  for (let i = 0; i < 1000; i++) {
    const coef = logComb(alpha, i);
    const j = alpha - i;
    const t0 = coef + i * logq + j * log1mq;
    const t1 = coef + j * logq + i * log1mq;
    const e0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const e1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const s0 = t0 + (i * i - i) / (2 * sigma * sigma) + e0;
    const s1 = t1 + (j * j - j) / (2 * sigma * sigma) + e1;
    a0 = logAdd(a0, s0);
    a1 = logAdd(a1, s1);
    const total = logAdd(a0, a1);
    if (s0 < last0 && s1 < last1 && Math.max(s0, s1) < total - 30) return total;
    last0 = s0;
    last1 = s1;
  }
  return Infinity; // did not converge: the order is left out (its RDP is +∞), as dp-accounting does
}

/**
 * RDP at each order of one release of the Poisson-subsampled Gaussian mechanism: sampling rate q ∈ [0, 1], noise
 * multiplier σ ≥ 0 (σ = 0: no privacy, +∞ at every order). Throws RangeError on values out of range.
 */
export function sampledGaussianRdp(q: number, sigma: number, orders: readonly number[] = RDP_ORDERS): number[] {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate ${q} is not in [0, 1]`);
  if (!(sigma >= 0)) throw new RangeError(`noise multiplier ${sigma} is not ≥ 0`);
  return orders.map((alpha) => {
    if (q === 0) return 0;
    if (!Number.isFinite(alpha) || sigma === 0) return Infinity;
    if (q === 1) return alpha / (2 * sigma * sigma);
    const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
    return logA / (alpha - 1);
  });
}

/** (ε, the optimal order) for RDP values `rdp` at `orders` and δ ∈ (0, 1) (dp-accounting's `compute_epsilon`). */
export function rdpToEpsilon(rdp: readonly number[], delta: number, orders: readonly number[] = RDP_ORDERS): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`δ ${delta} is not in (0, 1)`);
  let best = { epsilon: Infinity, order: orders[0]! };
  orders.forEach((a, k) => {
    const r = rdp[k]!;
    let e: number;
    if (r < 0 || delta * delta + Math.expm1(-r) > 0) e = 0;
    else if (a > 1.01) e = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else e = Infinity;
    if (e < best.epsilon) best = { epsilon: e, order: a };
  });
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}

/** What one noised release costs: its sampling rate and noise multiplier. */
export interface GaussianRelease {
  samplingRate: number;
  noiseMultiplier: number;
}

/**
 * The accountant's state as it travels in JSON (a strategy state): RDP at each of RDP_ORDERS, `null` standing for +∞
 * (JSON has no ∞; an order whose series did not converge, or σ = 0, is at +∞), and the number of releases composed.
 */
export interface RdpAccountantState {
  rdp: Array<number | null>;
  steps: number;
}

/**
 * The running RDP of a sequence of sampled-Gaussian releases (one per model version): compose with `step`, read
 * (ε, δ) with `epsilon`. The state is the RDP vector over RDP_ORDERS and the number of steps, so releases with
 * different (q, σ) compose exactly; `toJSON` and the constructor carry it in a strategy state, +∞ as `null`.
 */
export class RdpAccountant {
  private rdp: number[];
  steps: number;

  /**
   * From a state `toJSON` wrote (or a fresh accountant without one). Throws RangeError naming the entry when the state
   * is not one: another number of orders, an RDP value that is negative, NaN or not a number (`null` reads as +∞, as
   * JSON writes it: never as 0, which would forget the releases at that order), or steps that are not an integer ≥ 0.
   */
  constructor(state?: { rdp: ReadonlyArray<number | null>; steps: number }) {
    if (state === undefined) {
      this.rdp = RDP_ORDERS.map(() => 0);
      this.steps = 0;
      return;
    }
    if (typeof state !== 'object' || state === null || !Array.isArray(state.rdp)) throw new RangeError('an RDP state needs an array rdp and a number steps');
    if (state.rdp.length !== RDP_ORDERS.length) throw new RangeError(`an RDP state of ${state.rdp.length} orders, expected ${RDP_ORDERS.length}`);
    this.rdp = state.rdp.map((v, k) => {
      if (v === null) return Infinity;
      if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`the RDP at order ${RDP_ORDERS[k]} is ${JSON.stringify(v) ?? String(v)}, not a number ≥ 0`);
      return v;
    });
    if (!Number.isSafeInteger(state.steps) || state.steps < 0) throw new RangeError(`the RDP state's steps ${JSON.stringify(state.steps)} is not an integer ≥ 0`);
    this.steps = state.steps;
  }

  /** Composes `count` more releases of `r`. */
  step(r: GaussianRelease, count = 1): void {
    const one = sampledGaussianRdp(r.samplingRate, r.noiseMultiplier);
    this.rdp = this.rdp.map((v, k) => v + count * one[k]!);
    this.steps += count;
  }

  /** ε at δ after the releases so far (0 before the first). */
  epsilon(delta: number): number {
    return this.steps === 0 ? 0 : rdpToEpsilon(this.rdp, delta).epsilon;
  }

  /** ε at δ if `r` were released once more: what the aggregator checks against the budget before a round. */
  epsilonAfter(r: GaussianRelease, delta: number): number {
    const next = new RdpAccountant(this.toJSON());
    next.step(r);
    return next.epsilon(delta);
  }

  /** The state, JSON-safe: +∞ as `null` (read back as +∞ by the constructor). */
  toJSON(): RdpAccountantState {
    return { rdp: this.rdp.map((v) => (v === Infinity ? null : v)), steps: this.steps };
  }
}
