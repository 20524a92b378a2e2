import { describe, expect, it } from 'vitest';
import {
  FEDOPT_STATE_FORMAT, FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi, decodeOptimizerState, encodeOptimizerState, parseStrategySection, strategyFor,
  type AcceptedUpdate, type Strategy,
} from '../../src/aggregator/index.ts';
import type { Weights } from '../../src/codec/index.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import type { RoundConfig } from '../../src/protocol/index.ts';

const CONFIG: RoundConfig = { epochs: 5, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' };
const common = { config: CONFIG, fraction: 1, seed: 1 };
const w = (...values: number[]): Weights => [{ name: 'w', shape: [values.length], values: Float32Array.from(values) }];
const update = (id: string, numExamples: number, weights: Weights, metrics: Record<string, number> = {}): AcceptedUpdate =>
  ({ updateId: id, nodeId: `node-${id}`, round: 1, numExamples, weights, metrics });

/** One round: fold the updates onto `base`, finish. */
function round(s: Strategy, base: Weights, r: number, updates: AcceptedUpdate[]): Float32Array {
  const agg = s.begin(base, { round: r, baseVersion: r - 1, knownNodes: [] });
  for (const u of updates) agg.fold({ ...u, round: r });
  return agg.finish([]).weights[0]!.values;
}

function stateError(fn: () => unknown): FedStreamError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).code).toBe('STRATEGY_STATE_INVALID');
    return err as FedStreamError;
  }
  throw new Error('expected STRATEGY_STATE_INVALID');
}

describe('the server optimizers, worked by hand', () => {
  // Two nodes, 1 and 3 examples: the mean of [1, 2] and [3, 6] weighted 1:3 is [2.5, 5]; from base [2, 4], Δ = [0.5, 1].
  const base = w(2, 4);
  const updates = [update('a', 1, w(1, 2)), update('b', 3, w(3, 6))];

  it('FedAdam round 1: m = (1−β1)Δ, v = (1−β2)Δ², x + η√(1−β2²)/(1−β1²) · m/(√v+τ) (Flower\'s bias correction, r + 1 = 2)', () => {
    const s = new FedAdam({ ...common, eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 });
    const got = round(s, base, 1, updates);
    const etaNorm = (0.1 * Math.sqrt(1 - 0.99 ** 2)) / (1 - 0.9 ** 2);
    [0.5, 1].forEach((d, j) => {
      const m = 0.1 * d;
      const v = 0.01 * d * d;
      expect(got[j]).toBeCloseTo(base[0]!.values[j]! + (etaNorm * m) / (Math.sqrt(v) + 1e-9), 6);
    });
    const st = decodeOptimizerState('fedadam', ['m', 'v'], s.state()!);
    expect(st.steps).toBe(1);
    expect(Array.from(st.slots.get('m')![0]!)).toEqual([Math.fround(0.05), Math.fround(0.1)]);
    expect(Array.from(st.slots.get('v')![0]!)).toEqual([Math.fround(0.0025), Math.fround(0.01)]);
  });

  it('FedYogi round 2 uses v − (1−β2)Δ²·sign(v − Δ²); FedAdagrad sums Δ²', () => {
    const yogi = new FedYogi({ ...common, eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    const x1 = round(yogi, base, 1, updates);
    // Round 2 from x1, the nodes at x1 + [0.2, −0.3] (Δ2; not ±0.1, where v1 = Δ2² would make the sign a tie of roundings).
    const base2 = w(...x1);
    const d1 = [0.5, 1];
    const d2 = [0.2, -0.3];
    const x2 = round(yogi, base2, 2, [update('c', 5, w(x1[0]! + d2[0]!, x1[1]! + d2[1]!))]);
    d1.forEach((a, j) => {
      const b = d2[j]!;
      const m1 = 0.1 * a;
      const v1 = 0.01 * a * a; // v0 = 0: 0 − 0.01·a²·sign(−a²)
      const m2 = 0.9 * m1 + 0.1 * b;
      const v2 = v1 - 0.01 * b * b * Math.sign(v1 - b * b);
      expect(x2[j]).toBeCloseTo(Math.fround(x1[j]!) + (0.01 * m2) / (Math.sqrt(v2) + 1e-3), 5);
    });
    const ada = new FedAdagrad({ ...common, eta: 0.1, tau: 1e-9 });
    const y1 = round(ada, base, 1, updates);
    [0.5, 1].forEach((d, j) => expect(y1[j]).toBeCloseTo(base[0]!.values[j]! + (0.1 * d) / (Math.abs(d) + 1e-9), 6));
  });

  it('FedAvgM: v = βv + (x − mean), x − ηv; with Flower\'s defaults (η = 1, β = 0) it is FedAvg, bit for bit, with no state', () => {
    const m = new FedAvgM({ ...common, serverLearningRate: 0.5, serverMomentum: 0.9 });
    const x1 = round(m, base, 1, updates);
    expect(Array.from(x1)).toEqual([Math.fround(2 - 0.5 * -0.5), Math.fround(4 - 0.5 * -1)]);
    const x2 = round(m, w(...x1), 2, [update('c', 1, w(x1[0]! + 0.2, x1[1]!))]);
    // v2 = 0.9·(−0.5) + (−0.2) at element 0.
    expect(x2[0]).toBeCloseTo(x1[0]! - 0.5 * (0.9 * -0.5 - 0.2), 6);
    const plain = new FedAvgM({ ...common, serverLearningRate: 1, serverMomentum: 0 });
    const fedavg = new FedAvg(common);
    const noisy = [update('a', 7, w(0.1, 0.2)), update('b', 3, w(0.3, 0.7)), update('c', 11, w(-0.4, 0.9))];
    expect(Buffer.from(round(plain, base, 1, noisy).buffer).equals(Buffer.from(round(fedavg, base, 1, noisy).buffer))).toBe(true);
    expect(plain.state()).toBeUndefined();
  });
});

describe('FedProx', () => {
  it('aggregates nodes that did less than asked (fewer epochs or steps) like any other, weighted by their examples', () => {
    const s = new FedProx({ ...common, proximalMu: 0.01 });
    expect(s.configureRound({ round: 1, baseVersion: 0, knownNodes: [] }).config).toEqual({ ...CONFIG, proximalMu: 0.01 });
    const agg = s.begin(w(0, 0));
    // Asked 5 epochs: one node ran 5, one stopped after 1 epoch, one after 3 of its 40 steps.
    agg.fold(update('full', 100, w(1, 1), { epochs: 5, steps: 50 }));
    agg.fold(update('one-epoch', 300, w(3, 3), { epochs: 1, steps: 30 }));
    agg.fold(update('few-steps', 400, w(-1, 2), { epochs: 0, steps: 3 }));
    const r = agg.finish([]);
    expect(r.metrics.contributors).toBe(3);
    expect(Object.fromEntries(r.contributionWeights)).toEqual({ full: 0.125, 'one-epoch': 0.375, 'few-steps': 0.5 });
    expect(Array.from(r.weights[0]!.values)).toEqual([Math.fround((100 + 900 - 400) / 800), Math.fround((100 + 900 + 800) / 800)]);
  });
});

describe('server optimizer state', () => {
  const m = (strategy: Record<string, unknown>) => parseManifest({
    apiVersion: 'fedstream/v1', tenant: 't', name: 'opt',
    model: { inputShape: [2], seed: 1, layers: [{ type: 'dense', units: 2, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 3 },
    rounds: { count: 3, targetUpdates: 1, minUpdates: 1 },
    strategy,
  });

  it('the manifest selects each optimizer with Flower 1.42\'s defaults', () => {
    expect(parseStrategySection({ name: 'fedadam' })).toEqual({ name: 'fedadam', fraction: 1, eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9, clipNorm: 0 });
    expect(parseStrategySection({ name: 'fedyogi' })).toEqual({ name: 'fedyogi', fraction: 1, eta: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3, clipNorm: 0 });
    expect(parseStrategySection({ name: 'fedadagrad' })).toEqual({ name: 'fedadagrad', fraction: 1, eta: 0.1, tau: 1e-9, clipNorm: 0 });
    expect(parseStrategySection({ name: 'fedavgm' })).toEqual({ name: 'fedavgm', fraction: 1, serverLearningRate: 1, serverMomentum: 0, clipNorm: 0 });
    expect(parseStrategySection({ name: 'fedprox', proximalMu: 0.1 })).toEqual({ name: 'fedprox', fraction: 1, proximalMu: 0.1, clipNorm: 0 });
    expect(strategyFor(m({ name: 'fedadam', eta: 0.01 }))).toBeInstanceOf(FedAdam);
    expect(strategyFor(m({ name: 'fedyogi' })).name).toBe('fedyogi');
    expect(strategyFor(m({ name: 'fedadagrad' })).name).toBe('fedadagrad');
    expect(strategyFor(m({ name: 'fedavgm', serverMomentum: 0.9 })).name).toBe('fedavgm');
    expect(strategyFor(m({ name: 'fedprox', proximalMu: 1 })).name).toBe('fedprox');
  });

  it('none before the first step; after it, bytes that restore into a fresh strategy', () => {
    const s = strategyFor(m({ name: 'fedadam' }));
    expect(s.state!()).toBeUndefined();
    round(s, w(1, 2), 1, [update('a', 2, w(1.5, 1))]);
    const bytes = s.state!()!;
    // Header, then m and v: 2 slots × 2 parameters × 4 bytes.
    const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    expect(JSON.parse(Buffer.from(bytes.subarray(4, 4 + headerLength)).toString())).toEqual({
      format: FEDOPT_STATE_FORMAT, strategy: 'fedadam', steps: 1, slots: ['m', 'v'], tensors: [{ name: 'w', length: 2 }],
    });
    expect(bytes.length).toBe(4 + headerLength + 16);
    const fresh = strategyFor(m({ name: 'fedadam' }));
    fresh.restore!(bytes);
    expect(Buffer.from(fresh.state!()!).equals(Buffer.from(bytes))).toBe(true);
  });

  it('refuses another strategy\'s state, damaged bytes and another model\'s shapes with STRATEGY_STATE_INVALID', () => {
    const adam = strategyFor(m({ name: 'fedadam' }));
    round(adam, w(1, 2), 1, [update('a', 2, w(1.5, 1))]);
    const bytes = adam.state!()!;
    expect(stateError(() => strategyFor(m({ name: 'fedyogi' })).restore!(bytes)).message).toMatch(/written by strategy "fedadam"; the manifest names fedyogi/);
    expect(stateError(() => strategyFor(m({ name: 'fedadam' })).restore!(bytes.subarray(0, bytes.length - 1))).message).toMatch(/bytes, expected/);
    expect(stateError(() => strategyFor(m({ name: 'fedadam' })).restore!(new TextEncoder().encode('{"finished":2}'))).message).toMatch(/header claims|not JSON/);
    expect(stateError(() => strategyFor(m({ name: 'fedadam' })).restore!(new Uint8Array(2))).message).toMatch(/too short/);
    const other = encodeOptimizerState('fedadam', { steps: 1, tensors: [{ name: 'w', length: 2 }], slots: new Map([['momentum', [new Float32Array(2)]]]) });
    expect(stateError(() => strategyFor(m({ name: 'fedadam' })).restore!(other)).message).toMatch(/slots momentum, expected m, v/);
    // Restores (it is fedadam's), but the model has three parameters: refused at the next step, the state untouched.
    const s = strategyFor(m({ name: 'fedadam' }));
    s.restore!(bytes);
    expect(stateError(() => round(s, w(1, 2, 3), 2, [update('b', 1, w(1, 1, 1))])).message).toMatch(/tensors \[w:2\], the model has \[w:3\]/);
    expect(Buffer.from(s.state!()!).equals(Buffer.from(bytes))).toBe(true);
  });

  it('refuses a state whose values no step writes (NaN, a negative second moment), naming slot, tensor and index, before a step spreads them', () => {
    const state = (slots: Array<[string, number[]]>) =>
      encodeOptimizerState('fedadam', { steps: 1, tensors: [{ name: 'w', length: 2 }], slots: new Map(slots.map(([k, v]) => [k, [Float32Array.from(v)]])) });
    const cases: Array<[Array<[string, number[]]>, RegExp]> = [
      [[['m', [0.1, Number.NaN]], ['v', [0.01, 0.01]]], /slot m of tensor w holds NaN at \[1\]/],
      [[['m', [0.1, 0.1]], ['v', [-Infinity, 0.01]]], /slot v of tensor w holds -Infinity at \[0\]/],
      [[['m', [0.1, 0.1]], ['v', [0.01, -1]]], /slot v of tensor w holds -1 at \[1\] \(second moments are ≥ 0\)/],
    ];
    for (const [slots, message] of cases) expect(stateError(() => strategyFor(m({ name: 'fedadam' })).restore!(state(slots))).message).toMatch(message);
    // The same values, undamaged, restore and step to finite weights; so does a v that overflowed float32 to +∞ (huge
    // updates under a large limits.maxUpdateNorm): the restart must continue as the uninterrupted run would.
    const s = strategyFor(m({ name: 'fedadam' }));
    s.restore!(state([['m', [0.1, -0.1]], ['v', [0.01, 0]]]));
    expect(round(s, w(1, 2), 2, [update('a', 1, w(1.5, 1))]).every((x) => Number.isFinite(x))).toBe(true);
    const overflowed = strategyFor(m({ name: 'fedadam' }));
    overflowed.restore!(state([['m', [0.1, 0.1]], ['v', [Infinity, 0.01]]]));
    expect(round(overflowed, w(1, 2), 2, [update('a', 1, w(1.5, 1))]).every((x) => Number.isFinite(x))).toBe(true);
  });

  it('a round that is abandoned (never finished) leaves the state as it was', () => {
    const s = strategyFor(m({ name: 'fedyogi' }));
    round(s, w(1, 2), 1, [update('a', 2, w(1.5, 1))]);
    const before = Buffer.from(s.state!()!);
    const agg = s.begin(w(1, 2), { round: 2, baseVersion: 1, knownNodes: [] });
    agg.fold(update('b', 1, w(3, 3)));
    agg.dispose?.();
    expect(Buffer.from(s.state!()!).equals(before)).toBe(true);
  });
});
