/**
 * The RDP accountant (src/ml/privacy/rdp.ts) against Google's `dp-accounting` (PyPI, pinned in scripts/flower.mjs,
 * installed into .cache/bench-venv with flwr; test/support/dp_reference.py): ε for the same sampling rate q, noise
 * multiplier σ, steps and δ, held to 1% relative (issue 14, item 5). Measured on this machine: the largest relative
 * difference is below 1e-6 (printed by the test). Also the accountant's own invariants: ε grows with steps and
 * shrinks with σ, state round-trips, composing steps one by one equals composing them at once, q = 1 without
 * subsampling matches the closed form α/(2σ²).
 *
 * Without the venv: a failure under CI=true; skipped with the reason only outside CI where it cannot be installed.
 */
import { describe, expect, it } from 'vitest';
import { RDP_ORDERS, RdpAccountant, rdpToEpsilon, sampledGaussianRdp } from '../../src/ml/index.ts';
import { DP_ACCOUNTING_VERSION } from '../../scripts/flower.mjs';
import { DP_REFERENCE, useReferencePython } from '../support/flower-harness.ts';

/** (q, σ, steps, δ): DP-SGD's usual regimes and DP-FedAvg's (few rounds, large q), small and large ε. */
const CASES = [
  { q: 0.01, sigma: 1.1, steps: 1000, delta: 1e-5 },
  { q: 0.001, sigma: 2.0, steps: 10_000, delta: 1e-5 },
  { q: 0.1, sigma: 1.0, steps: 50, delta: 1e-5 },
  { q: 0.05, sigma: 0.8, steps: 200, delta: 1e-6 },
  { q: 0.5, sigma: 0.8, steps: 100, delta: 1e-6 },
  { q: 1, sigma: 1.0, steps: 10, delta: 1e-5 },
  { q: 1, sigma: 4.0, steps: 30, delta: 1e-5 },
  { q: 0.2, sigma: 5.0, steps: 20, delta: 1e-5 },
  { q: 0.3, sigma: 1.5, steps: 5, delta: 1e-3 },
  { q: 0.02, sigma: 0.6, steps: 1, delta: 1e-5 },
].map((c) => ({ id: `q=${c.q} σ=${c.sigma} T=${c.steps} δ=${c.delta}`, ...c }));

const reference = useReferencePython('privacy-accountant');

function ours(c: { q: number; sigma: number; steps: number; delta: number }): number {
  const a = new RdpAccountant();
  a.step({ samplingRate: c.q, noiseMultiplier: c.sigma }, c.steps);
  return a.epsilon(c.delta);
}

describe(`RDP accountant vs dp-accounting ${DP_ACCOUNTING_VERSION}`, () => {
  it('gives ε within 1% of dp-accounting for every (q, σ, steps, δ)', async (ctx) => {
    if (reference.unavailable) ctx.skip(reference.unavailable);
    const ref = await reference.run<{ dp_accounting: string; epsilon: Record<string, number> }>(DP_REFERENCE, { accountant: CASES }, 300_000);
    expect(ref.dp_accounting).toBe(DP_ACCOUNTING_VERSION);
    let worst = 0;
    const rows: string[] = [];
    for (const c of CASES) {
      const theirs = ref.epsilon[c.id]!;
      const mine = ours(c);
      expect(Number.isFinite(theirs) && theirs > 0, c.id).toBe(true);
      const rel = Math.abs(mine - theirs) / theirs;
      worst = Math.max(worst, rel);
      rows.push(`${c.id}: ε ${mine.toPrecision(8)} vs ${theirs.toPrecision(8)} (rel ${rel.toExponential(2)})`);
      expect(rel, `${c.id}: ours ${mine}, dp-accounting ${theirs}`).toBeLessThan(0.01);
    }
    process.stderr.write(`[privacy-accountant] largest relative difference ${worst.toExponential(2)}\n  ${rows.join('\n  ')}\n`);
  }, 300_000);
});

describe('RDP accountant: its own invariants', () => {
  it('without subsampling (q = 1) the RDP is the Gaussian mechanism\'s α/(2σ²) (Mironov 2017, Prop. 7)', () => {
    const rdp = sampledGaussianRdp(1, 1.3);
    RDP_ORDERS.forEach((a, k) => expect(rdp[k]).toBeCloseTo(a / (2 * 1.3 * 1.3), 12));
  });

  it('q → 1 from below agrees with q = 1 (the integer-order series meets the closed form)', () => {
    const near = sampledGaussianRdp(1 - 1e-9, 2, [2, 3, 8, 32]);
    const exact = sampledGaussianRdp(1, 2, [2, 3, 8, 32]);
    near.forEach((v, k) => expect(v / exact[k]!).toBeCloseTo(1, 6));
  });

  it('ε grows with steps and with q, and shrinks with σ', () => {
    const e = (q: number, sigma: number, steps: number) => ours({ q, sigma, steps, delta: 1e-5 });
    expect(e(0.1, 1, 20)).toBeGreaterThan(e(0.1, 1, 10));
    expect(e(0.2, 1, 10)).toBeGreaterThan(e(0.1, 1, 10));
    expect(e(0.1, 2, 10)).toBeLessThan(e(0.1, 1, 10));
    expect(new RdpAccountant().epsilon(1e-5)).toBe(0);
  });

  it('composes step by step as at once, and its state round-trips (what a restarted aggregator restores)', () => {
    const once = new RdpAccountant();
    once.step({ samplingRate: 0.3, noiseMultiplier: 1.2 }, 7);
    let byStep = new RdpAccountant();
    for (let i = 0; i < 7; i++) {
      byStep = new RdpAccountant(JSON.parse(JSON.stringify(byStep.toJSON())) as { rdp: number[]; steps: number });
      byStep.step({ samplingRate: 0.3, noiseMultiplier: 1.2 });
    }
    expect(byStep.steps).toBe(7);
    expect(byStep.epsilon(1e-5)).toBeCloseTo(once.epsilon(1e-5), 10);
    expect(once.epsilonAfter({ samplingRate: 0.3, noiseMultiplier: 1.2 }, 1e-5)).toBeCloseTo(ours({ q: 0.3, sigma: 1.2, steps: 8, delta: 1e-5 }), 10);
  });

  it('σ = 0 gives no privacy (ε = ∞); q = 0 costs nothing; out-of-range inputs throw', () => {
    expect(ours({ q: 0.5, sigma: 0, steps: 1, delta: 1e-5 })).toBe(Infinity);
    expect(ours({ q: 0, sigma: 1, steps: 10, delta: 1e-5 })).toBe(0);
    expect(() => sampledGaussianRdp(1.5, 1)).toThrow(/sampling rate/);
    expect(() => sampledGaussianRdp(0.5, -1)).toThrow(/noise multiplier/);
    expect(() => rdpToEpsilon(sampledGaussianRdp(0.5, 1), 0)).toThrow(/δ/);
  });
});
