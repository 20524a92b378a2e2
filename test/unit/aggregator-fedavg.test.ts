import { describe, expect, it } from 'vitest';
import type { Weights } from '../../src/codec/types.ts';
import { foldScaledScalar } from '../../src/aggregator/kernels/index.ts';
import { FedAvg, WeightedMean, sampleNodes } from '../../src/aggregator/strategies/fedavg.ts';
import { validateUpdate, type CandidateUpdate, type RoundState } from '../../src/aggregator/validate.ts';

const w = (...vals: number[][]): Weights => vals.map((v, i) => ({ name: `t${i}`, shape: [v.length], values: Float32Array.from(v) }));

describe('FedAvg', () => {
  it('averages weights weighted by numExamples', () => {
    const agg = new WeightedMean(w([0, 0], [0]));
    agg.fold({ updateId: 'a', nodeId: 'n1', round: 1, numExamples: 1, weights: w([1, 2], [3]), metrics: { loss: 1 } });
    agg.fold({ updateId: 'b', nodeId: 'n2', round: 1, numExamples: 3, weights: w([5, 6], [7]), metrics: { loss: 3 } });
    const r = agg.finish([]);
    expect(Array.from(r.weights[0]!.values)).toEqual([4, 5]);
    expect(Array.from(r.weights[1]!.values)).toEqual([6]);
    expect(r.metrics.train_loss).toBeCloseTo(2.5);
    expect(r.metrics.totalExamples).toBe(4);
    expect(r.contributionWeights.get('b')).toBeCloseTo(0.75);
    expect(agg.count).toBe(2);
  });

  it('is independent of the order of folding within float64 precision', () => {
    const ups = Array.from({ length: 20 }, (_, k) => ({
      updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 1 + (k * 37) % 11, metrics: {},
      weights: w(Array.from({ length: 100 }, (_, i) => Math.sin(i * 0.1 + k) * 3)),
    }));
    const a = new WeightedMean(w(new Array(100).fill(0)));
    const b = new WeightedMean(w(new Array(100).fill(0)));
    ups.forEach((u) => a.fold(u));
    [...ups].reverse().forEach((u) => b.fold(u));
    const ra = a.finish([]).weights[0]!.values;
    const rb = b.finish([]).weights[0]!.values;
    for (let i = 0; i < 100; i++) expect(ra[i]).toBeCloseTo(rb[i]!, 6);
  });

  it('refuses to finish a round with nothing folded', () => {
    expect(() => new WeightedMean(w([0])).finish([])).toThrow(/no accepted update/);
  });

  it('the scalar fold handles lengths that are not a multiple of 4', () => {
    const acc = new Float64Array(7);
    foldScaledScalar(acc, Float32Array.from([1, 2, 3, 4, 5, 6, 7]), 2);
    expect(Array.from(acc)).toEqual([2, 4, 6, 8, 10, 12, 14]);
  });

  it('selects a deterministic fraction of nodes per round', () => {
    const nodes = Array.from({ length: 10 }, (_, i) => `node-${i + 1}`);
    const config = { epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' } as const;
    const s = new FedAvg({ config, fraction: 0.3, seed: 7 });
    const r1 = s.configureRound({ round: 1, baseVersion: 0, knownNodes: nodes });
    expect(r1.selectedNodes).toHaveLength(3);
    expect(s.configureRound({ round: 1, baseVersion: 0, knownNodes: nodes })).toEqual(r1);
    expect(new FedAvg({ config, fraction: 1, seed: 7 }).configureRound({ round: 1, baseVersion: 0, knownNodes: nodes }).selectedNodes).toEqual([]);
    expect(new Set(sampleNodes(nodes, 10, 1)).size).toBe(10);
  });
});

describe('update validation', () => {
  const base = w([0, 0, 0]);
  const state: RoundState = {
    tenant: 't', pipeline: 'p', round: 3, baseVersion: 2, open: true,
    selectedNodes: new Set(), acceptedIds: new Set(['seen']), contributedNodes: new Set(['n9']), countedIds: new Map([['old', 1]]),
  };
  const limits = { maxUpdateNorm: 10, maxExamples: 1_000_000 };
  const u = (over: Partial<CandidateUpdate> = {}): CandidateUpdate => ({
    updateId: 'u1', nodeId: 'n1', tenant: 't', pipeline: 'p', round: 3, baseVersion: 2, numExamples: 5, weights: w([1, 1, 1]), ...over,
  });
  const code = (over: Partial<CandidateUpdate>, st: Partial<RoundState> = {}) => validateUpdate(u(over), { ...state, ...st }, base, limits)?.code ?? null;

  it('accepts a good update', () => expect(code({})).toBeNull());
  it('rejects each kind of bad update with its reason', () => {
    expect(code({ tenant: 'x' })).toBe('wrong_pipeline');
    expect(code({ updateId: 'old' })).toBe('duplicate');
    expect(code({ updateId: 'seen' })).toBe('duplicate');
    expect(code({ round: 2 })).toBe('stale_round');
    expect(code({}, { open: false })).toBe('stale_round');
    expect(code({ round: 4 })).toBe('future_round');
    expect(code({ baseVersion: 1 })).toBe('wrong_base_version');
    expect(code({}, { selectedNodes: new Set(['n2']) })).toBe('not_selected');
    expect(code({ nodeId: 'n9' })).toBe('node_already_contributed');
    expect(code({ numExamples: 0 })).toBe('bad_num_examples');
    expect(code({ numExamples: 1.5 })).toBe('bad_num_examples');
    expect(code({ weights: w([1, 1, 1], [2]) })).toBe('shape_mismatch');
    expect(code({ weights: w([1, 1]) })).toBe('shape_mismatch');
    expect(code({ weights: w([1, NaN, 1]) })).toBe('non_finite');
    expect(code({ weights: w([1, Infinity, 1]) })).toBe('non_finite');
    expect(code({ weights: w([10, 10, 10]) })).toBe('norm_bound');
  });
  it('names the node and the tensor in the reason', () => {
    const r = validateUpdate(u({ weights: w([1, NaN, 1]) }), state, base, limits);
    expect(r?.reason).toContain('n1');
    expect(r?.reason).toContain('t0');
    expect(r?.reason).toContain('index 1');
  });
  it('finds the first non-finite value and measures the norm across the unrolled loop and its tail', () => {
    const long = (vals: number[]) => w(vals);
    const zeros = long(Array.from({ length: 11 }, () => 0));
    const at = (i: number, v: number) => long(Array.from({ length: 11 }, (_, j) => (j === i ? v : j === 10 ? -Infinity : 0.5)));
    for (const i of [0, 3, 4, 7, 8, 9]) {
      const r = validateUpdate(u({ weights: at(i, NaN) }), state, zeros, limits);
      expect(r?.reason).toContain(`holds NaN at index ${i}`);
    }
    expect(validateUpdate(u({ weights: at(3, 0.5) }), state, zeros, limits)?.reason).toContain('holds -Infinity at index 10');
    const vals = Array.from({ length: 11 }, (_, j) => (j % 3) - 1.25);
    const want = Math.sqrt(vals.reduce((s, v) => s + v * v, 0));
    const r = validateUpdate(u({ weights: long(vals) }), state, zeros, { ...limits, maxUpdateNorm: 1 });
    expect(r?.code).toBe('norm_bound');
    expect(r?.reason).toContain(want.toFixed(3));
  });
});
