/**
 * Robust aggregation on its own terms (issue 14, item 3): the kernels against the papers' equations, their
 * robustness to one sign-flipped ×10 update of five (a property over random honest updates), norm clipping against
 * Sun et al.'s equation, and the memory budget of a round's updates (STRATEGY_MEMORY_BUDGET, never an OOM).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  clipToNorm, coordinateMedian, krumScores, krumSelect, pairwiseSquaredDistances, parseStrategySection, STRATEGIES, trimmedMean, type StrategyDefinition,
} from '../../src/aggregator/index.ts';
import type { Weights } from '../../src/codec/index.ts';
import { FedStreamError } from '../../src/common/index.ts';

const f32 = (xs: number[]) => Float32Array.from(xs);

function strategy(section: Record<string, unknown>) {
  const o = parseStrategySection(section);
  return (STRATEGIES[o.name] as StrategyDefinition).create(o, { config: { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' }, seed: 1 });
}

describe('robust kernels, by their definitions', () => {
  it('median: the middle value (odd n), the mean of the two middle ones (even n), per coordinate', () => {
    expect([...coordinateMedian([f32([1, 9]), f32([5, 2]), f32([3, 4])])]).toEqual([3, 4]);
    expect([...coordinateMedian([f32([1, 9]), f32([5, 2]), f32([3, 4]), f32([8, 8])])]).toEqual([4, 6]);
    expect([...coordinateMedian([f32([2]), f32([2]), f32([7]), f32([2])])]).toEqual([2]);
  });

  it('trimmed mean: ⌊βn⌋ cut from each end, the rest averaged; β = 0 is the mean', () => {
    const xs = [f32([1]), f32([2]), f32([3]), f32([4]), f32([100])];
    expect(trimmedMean(xs, 0)[0]).toBeCloseTo(22, 5);
    expect(trimmedMean(xs, 0.19)[0]).toBeCloseTo(22, 5); // ⌊0.95⌋ = 0: nothing cut
    expect(trimmedMean(xs, 0.2)[0]).toBe(3); // ⌊1⌋ = 1 from each end: (2 + 3 + 4) / 3
    expect(trimmedMean(xs, 0.4)[0]).toBe(3); // ⌊2⌋ = 2: the median
    expect(() => trimmedMean(xs, 0.5)).toThrow(FedStreamError);
  });

  it('Krum: score = sum of the n − f − 2 smallest squared distances to the others; the lowest wins, ties to the earlier', () => {
    const xs = [f32([0]), f32([1]), f32([3]), f32([10])];
    const d = pairwiseSquaredDistances(xs);
    expect([...d]).toEqual([0, 1, 9, 100, 1, 0, 4, 81, 9, 4, 0, 49, 100, 81, 49, 0]);
    // n = 4, f = 1: one closest. s = [1, 1, 4, 49]
    const s = krumScores(d, 4, 1);
    expect([...s]).toEqual([1, 1, 4, 49]);
    expect(krumSelect(s, 0)).toEqual([0]);
    expect(krumSelect(s, 2)).toEqual([0, 1]);
    expect(krumSelect(s, 3)).toEqual([0, 1, 2]);
    // f = 0: two closest. s = [1 + 9, 1 + 4, 4 + 9, 49 + 81]
    expect([...krumScores(d, 4, 0)]).toEqual([10, 5, 13, 130]);
  });

  it('Krum distances, four pairs at a time: each ‖x^i − x^k‖² the one running float64 sum over j in order, bit for bit, for every n', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      (n, p, seed) => {
        let r = seed;
        const next = () => ((r = (Math.imul(r, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 1e3;
        const xs = Array.from({ length: n }, () => Float32Array.from({ length: p }, next));
        const want = new Float64Array(n * n);
        for (let i = 0; i < n; i++) {
          for (let k = 0; k < n; k++) {
            let sum = 0;
            for (let j = 0; j < p; j++) {
              const x = xs[i]![j]! - xs[k]![j]!;
              sum += x * x;
            }
            want[i * n + k] = i === k ? 0 : sum;
          }
        }
        const got = pairwiseSquaredDistances(xs);
        for (let q = 0; q < n * n; q++) expect(Object.is(got[q], want[q]), `n ${n}, p ${p}, entry ${q}`).toBe(true);
      },
    ), { numRuns: 200 });
  });

  it('clipping: w_t + Δ·min(1, C/‖Δ‖₂) over all tensors together (Sun et al. 2019); within C it is the update itself', () => {
    const base = [f32([1, 1]), f32([1])];
    const w = [f32([4, 1]), f32([5])]; // Δ = (3, 0, 4), ‖Δ‖ = 5
    const c = clipToNorm(w, base, 2.5);
    expect(c.norm).toBe(5);
    expect(c.scale).toBe(0.5);
    expect(c.values.map((v) => [...v])).toEqual([[2.5, 1], [3]]);
    const same = clipToNorm(w, base, 5);
    expect(same.scale).toBe(1);
    expect(same.values[0]).toBe(w[0]);
    // The clipped change has norm C exactly (to float32 rounding), for any update.
    fc.assert(fc.property(fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 40 }), fc.float({ min: Math.fround(0.01), max: 10, noNaN: true }), (xs, C) => {
      const b = [new Float32Array(xs.length).fill(0.5)];
      const r = clipToNorm([f32(xs)], b, C);
      const after = Math.hypot(...Array.from(r.values[0]!, (v, j) => v - b[0]![j]!));
      if (r.scale < 1) expect(Math.abs(after - C) / C).toBeLessThan(1e-5);
      else expect(after).toBeLessThanOrEqual(C * (1 + 1e-6));
    }), { numRuns: 200 });
  });
});

describe('one update of five sign-flipped ×10: FedAvg moves far, the robust rules stay near the honest mean', () => {
  const P = 64;
  it('for any honest updates near a common point (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.float({ min: -1, max: 1, noNaN: true }), { minLength: P, maxLength: P }),
      fc.array(fc.array(fc.float({ min: Math.fround(-0.05), max: Math.fround(0.05), noNaN: true }), { minLength: P, maxLength: P }), { minLength: 4, maxLength: 4 }),
      fc.array(fc.float({ min: Math.fround(0.1), max: 1, noNaN: true }), { minLength: P, maxLength: P }),
      fc.integer({ min: 0, max: 4 }),
      (centre, noise, step, at) => {
        // The base, and four honest updates that each move it by +step (± noise); the attacker sends −10·step.
        const base = f32(centre);
        const honest = noise.map((e) => Float32Array.from(base, (b, j) => b + step[j]! + e[j]!));
        const attacker = Float32Array.from(base, (b, j) => b - 10 * step[j]!);
        const all = [...honest];
        all.splice(at, 0, attacker);
        const honestMean = Float32Array.from(base, (_, j) => honest.reduce((a, u) => a + u[j]!, 0) / honest.length);
        const dist = (x: Float32Array) => Math.hypot(...Array.from(x, (v, j) => v - honestMean[j]!));
        const honestStep = Math.hypot(...step);
        const fedavg = Float32Array.from(base, (_, j) => all.reduce((a, u) => a + u[j]!, 0) / all.length);
        const median = coordinateMedian(all);
        const trimmed = trimmedMean(all, 0.2);
        const krum = all[krumSelect(krumScores(pairwiseSquaredDistances(all), 5, 1), 0)[0]!]!;
        const multi = (() => {
          const kept = krumSelect(krumScores(pairwiseSquaredDistances(all), 5, 1), 3);
          return Float32Array.from(base, (_, j) => kept.reduce((a, k) => a + all[k]![j]!, 0) / kept.length);
        })();
        // FedAvg: 11/5 of the honest step away from the honest mean, in the opposite direction.
        expect(dist(fedavg)).toBeGreaterThan(2 * honestStep);
        // The robust rules: within the honest updates' spread (noise ≤ 0.05 per coordinate, √64·0.1 = 0.8 in L2).
        for (const [rule, x] of [['median', median], ['trimmed mean', trimmed], ['krum', krum], ['multi-krum', multi]] as const) {
          expect(dist(x), rule).toBeLessThan(0.1 * Math.sqrt(P));
          expect(krumSelect(krumScores(pairwiseSquaredDistances(all), 5, 1), 3)).not.toContain(at);
        }
      },
    ), { numRuns: 100 });
  });
});

describe('Krum with fewer updates than its options assume', () => {
  const run = (section: Record<string, unknown>, values: number[][]) => {
    const s = strategy(section);
    const base: Weights = [{ name: 'w', shape: [2], values: new Float32Array(2) }];
    const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
    values.forEach((v, k) => agg.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ ...base[0]!, values: f32(v) }], metrics: {} }));
    return agg.finish([]);
  };

  it('Multi-Krum averages at most n − f updates: numClientsToKeep above that no longer takes in the outlier', () => {
    // f = 1, m = 10, a round of three: the paper's m ≤ n − f keeps two; all three (m clamped to n only) took the ×100.
    const r = run({ name: 'krum', numMaliciousClients: 1, numClientsToKeep: 10 }, [[1, 1], [1.1, 1], [100, 100]]);
    expect([...r.weights[0]!.values]).toEqual([f32([1.05])[0], 1]);
    expect(r.contributionWeights.get('u2')).toBe(0);
    expect(r.metrics).toMatchObject({ krum_kept: 2, krum_tolerates_f: 0 });
  });

  it('says whether the round had the 2f + 2 < n updates Krum needs to tolerate f', () => {
    const five = [[1, 1], [1.1, 1], [0.9, 1], [1, 1.1], [50, 50]];
    expect(run({ name: 'krum', numMaliciousClients: 1 }, five).metrics).toMatchObject({ krum_kept: 1, krum_tolerates_f: 1 });
    expect(run({ name: 'krum', numMaliciousClients: 2 }, five).metrics).toMatchObject({ krum_kept: 1, krum_tolerates_f: 0 });
    expect(run({ name: 'krum', numMaliciousClients: 1, numClientsToKeep: 3 }, five).metrics).toMatchObject({ krum_kept: 3, krum_tolerates_f: 1 });
  });
});

describe('memory budget of a round\'s updates', () => {
  const P = 100_000; // 400,000 bytes per update
  const base: Weights = [{ name: 'w', shape: [P], values: new Float32Array(P).fill(0.5) }];
  const update = (k: number) => ({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ name: 'w', shape: [P], values: new Float32Array(P).fill(k) }], metrics: { loss: k } });

  it('within the budget the round aggregates; the update that would pass it is refused with STRATEGY_MEMORY_BUDGET naming budget, count and sizes', () => {
    const s = strategy({ name: 'fedmedian', memoryBudgetBytes: 1_048_576 }); // 2 updates of 400 kB fit, not 3
    const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
    agg.fold(update(1));
    agg.fold(update(3));
    let err: unknown;
    try {
      agg.fold(update(5));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FedStreamError);
    const e = err as FedStreamError;
    expect(e.code).toBe('STRATEGY_MEMORY_BUDGET');
    expect(e.message).toMatch(/3 updates of 400000 bytes .* need 1200000 bytes .* strategy\.memoryBudgetBytes = 1048576/);
    expect(e.details).toMatchObject({ memoryBudgetBytes: 1_048_576, updates: 3, bytesPerUpdate: 400_000, bytesNeeded: 1_200_000 });
    expect(agg.count).toBe(2);
    const r = agg.finish([]);
    expect(r.weights[0]!.values[0]).toBe(2);
    expect(r.metrics).toMatchObject({ contributors: 2, totalExamples: 20, train_loss: 2 });
  });

  it('a round whose known nodes could not all fit is refused at begin, before any update is read', () => {
    const s = strategy({ name: 'krum', memoryBudgetBytes: 1_048_576 });
    expect(() => s.begin(base, { round: 4, baseVersion: 3, knownNodes: ['a', 'b', 'c'] })).toThrow(/round 4 selects 3 nodes/);
    expect(() => strategy({ name: 'fedtrimmedavg', memoryBudgetBytes: 1_048_576, fraction: 0.5 }).begin(base, { round: 1, baseVersion: 0, knownNodes: ['a', 'b', 'c', 'd'] })).not.toThrow();
  });

  it('the budget is checked at start: below 1 MiB, or not an integer, is CONFIG_INVALID with its path', () => {
    expect(() => parseStrategySection({ name: 'fedmedian', memoryBudgetBytes: 1000 })).toThrow(/strategy\.memoryBudgetBytes/);
    expect(() => parseStrategySection({ name: 'krum', numMaliciousClients: -1 })).toThrow(/strategy\.numMaliciousClients/);
    expect(() => parseStrategySection({ name: 'fedtrimmedavg', beta: 0.5 })).toThrow(/strategy\.beta/);
    expect(() => parseStrategySection({ name: 'fedavg', clipNorm: -1 })).toThrow(/strategy\.clipNorm/);
  });
});

describe('clipping in front of a strategy (strategy.clipNorm)', () => {
  it('clips each update before the strategy sees it, counts the clipped, and leaves the caller\'s arrays as they were', () => {
    const base: Weights = [{ name: 'w', shape: [2], values: f32([0, 0]) }];
    const s = strategy({ name: 'fedavg', clipNorm: 1 });
    const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
    const big = f32([30, 40]); // ‖Δ‖ = 50 → (0.6, 0.8)
    agg.fold({ updateId: 'a', nodeId: 'a', round: 1, numExamples: 1, weights: [{ name: 'w', shape: [2], values: big }], metrics: {} });
    agg.fold({ updateId: 'b', nodeId: 'b', round: 1, numExamples: 1, weights: [{ name: 'w', shape: [2], values: f32([0.2, 0]) }], metrics: {} });
    const r = agg.finish([]);
    expect([...r.weights[0]!.values].map((v) => Math.round(v * 1e6) / 1e6)).toEqual([0.4, 0.4]);
    expect(r.metrics.clipped).toBe(1);
    expect([...big]).toEqual([30, 40]);
  });
});

describe('a clipped strategy keeps its inner strategy\'s state', () => {
  it('clipped FedAdam stores and restores its moments; clipped FedAvg has no state to offer', () => {
    const base: Weights = [{ name: 'w', shape: [3], values: f32([1, 1, 1]) }];
    const adam = strategy({ name: 'fedadam', clipNorm: 0.5 });
    const agg = adam.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
    agg.fold({ updateId: 'a', nodeId: 'a', round: 1, numExamples: 5, weights: [{ name: 'w', shape: [3], values: f32([3, 1, 1]) }], metrics: {} });
    agg.finish([]);
    const state = adam.state!()!;
    expect(state.length).toBeGreaterThan(24);
    const again = strategy({ name: 'fedadam', clipNorm: 0.5 });
    again.restore!(state);
    expect(Buffer.from(again.state!()!).equals(Buffer.from(state))).toBe(true);
    const avg = strategy({ name: 'fedavg', clipNorm: 0.5 });
    expect(avg.state).toBeUndefined();
    expect(avg.restore).toBeUndefined();
  });
});
