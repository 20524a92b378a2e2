/**
 * Central and local DP tried as a careless operator and a restarted aggregator would (issue 14, item 4): the ε a
 * pipeline reports must cover every version it published, whatever happened between runs.
 *
 * - The accountant's state travels in JSON inside the strategy state: orders at +∞ (series that did not converge,
 *   σ = 0) must come back as +∞, not as JSON's null read as 0 (ε = 0 right after a restart, in the budget refusal).
 * - A damaged accountant state (missing, negative, NaN, fractional steps) is refused with STRATEGY_STATE_INVALID.
 * - `privacy.central` added to a pipeline that already published versions without it: the accountant would start at
 *   0 and report an ε that leaves those releases out; the round is refused with PRIVACY_HISTORY_INCOMPLETE, on the
 *   strategy and through the real aggregator on the in-memory transport.
 * - Adaptive clipping noises with the norm the round clipped with (the sensitivity), not the updated one.
 * - Local DP with a sensitivity below the clipping norm (0: no noise at all) is refused in the manifest.
 */
import { describe, expect, it } from 'vitest';
import { createAggregator, STRATEGIES, decodeOptimizerState, parseStrategySection, withCentralDp, type Strategy, type StrategyDefinition } from '../../src/aggregator/index.ts';
import type { Weights } from '../../src/codec/index.ts';
import { FedStreamError } from '../../src/common/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { privacySchema } from '../../src/config/index.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { RDP_ORDERS, RdpAccountant, mulberry32, sampledGaussianRdp } from '../../src/ml/index.ts';
import { createMemoryTransport } from '../../src/transport/index.ts';
import { oneNodeMemoryPipeline } from '../support/memory-pipeline.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const CONFIG = { epochs: 1, batchSize: 32, learningRate: 0.1, optimizer: 'sgd' as const };

function dpStrategy(privacy: Record<string, unknown>, strategy: Record<string, unknown> = { name: 'fedavg' }): Strategy {
  const options = parseStrategySection(strategy);
  const inner = (STRATEGIES[options.name] as StrategyDefinition).create(options, { config: CONFIG, seed: 1 });
  return withCentralDp(inner, privacySchema.parse(privacy));
}

/** Runs `rounds` rounds of `s` on three small updates around a zero base; returns the last weights. */
function run(s: Strategy, rounds: number, fromVersion = 0) {
  let base: Weights = [{ name: 'w', shape: [8], values: new Float32Array(8) }];
  for (let v = fromVersion; v < fromVersion + rounds; v++) {
    const ctx = { round: v + 1, baseVersion: v, knownNodes: [] };
    expect(s.admitRound?.(ctx)).toBeUndefined();
    const agg = s.begin(base, ctx);
    for (let k = 0; k < 3; k++) {
      agg.fold({ updateId: `u${v}-${k}`, nodeId: `n${k}`, round: v + 1, numExamples: 10, weights: [{ ...base[0]!, values: base[0]!.values.map((x, j) => x + 0.1 * (k + 1) * (j % 2 ? 1 : -1)) }], metrics: {} });
    }
    base = agg.finish([]).weights;
  }
  return base;
}

/** The strategy state with its JSON header edited by `edit` (the DP state format of dp-central.ts). */
function editedState(state: Uint8Array, edit: (h: Record<string, unknown>) => void): Uint8Array {
  const length = new DataView(state.buffer, state.byteOffset, state.byteLength).getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(state.subarray(4, 4 + length))) as Record<string, unknown>;
  edit(h);
  const text = new TextEncoder().encode(JSON.stringify(h));
  const out = new Uint8Array(4 + text.length);
  new DataView(out.buffer).setUint32(0, text.length, true);
  out.set(text, 4);
  return out;
}

describe('the accountant\'s state across a restart', () => {
  // q = 0.5, σ = 1: some fractional orders' series do not converge here and are at +∞.
  const release = { samplingRate: 0.5, noiseMultiplier: 1 };

  it('keeps the orders at +∞ through JSON (null reads as +∞), so ε after a restart is ε before', () => {
    expect(sampledGaussianRdp(release.samplingRate, release.noiseMultiplier).some((r) => r === Infinity)).toBe(true);
    const a = new RdpAccountant();
    a.step(release, 5);
    const b = new RdpAccountant(JSON.parse(JSON.stringify(a.toJSON())) as ReturnType<RdpAccountant['toJSON']>);
    expect(a.epsilon(1e-5)).toBeGreaterThan(1);
    expect(b.epsilon(1e-5)).toBe(a.epsilon(1e-5));
    expect(b.steps).toBe(5);
  });

  it('refuses a state that is not one, naming the order or the steps', () => {
    const good = new RdpAccountant({ rdp: RDP_ORDERS.map(() => 1), steps: 2 }).toJSON();
    expect(() => new RdpAccountant({ ...good, rdp: good.rdp.map((v, k) => (k === 3 ? -1 : v)) })).toThrow(`order ${RDP_ORDERS[3]} is -1`);
    expect(() => new RdpAccountant({ ...good, rdp: good.rdp.map((v, k) => (k === 0 ? Number.NaN : v)) })).toThrow(/order 1\.1 is .*not a number ≥ 0/);
    expect(() => new RdpAccountant({ ...good, rdp: good.rdp.map((v, k) => (k === 0 ? ('1' as unknown as number) : v)) })).toThrow(/order 1\.1 is "1"/);
    expect(() => new RdpAccountant({ ...good, steps: 1.5 })).toThrow(/steps 1\.5/);
    expect(() => new RdpAccountant({ rdp: good.rdp } as unknown as RdpAccountant['toJSON'] extends () => infer S ? S : never)).toThrow(/steps/);
  });

  it('a DP wrapper restored from its version\'s state reports the same ε, and its budget refusal names it', () => {
    const privacy = { central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 5 }, population: 10 };
    const s = dpStrategy(privacy);
    run(s, 4);
    const before = s.privacy!()!.epsilon;
    expect(before).toBeGreaterThan(0);
    const restarted = dpStrategy({ ...privacy, budget: { epsilon: before, delta: 1e-5 } });
    restarted.restore!(s.state!()!);
    expect(restarted.privacy!()!.epsilon).toBe(before);
    const refusal = restarted.admitRound!({ round: 5, baseVersion: 4, knownNodes: [] })!;
    expect(refusal.code).toBe('PRIVACY_BUDGET_EXHAUSTED');
    expect(refusal.details.epsilon).toBe(before);
  });

  it('a damaged accountant in the DP state is STRATEGY_STATE_INVALID, never a fresh accountant', () => {
    const privacy = { central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 3 } };
    const s = dpStrategy(privacy);
    run(s, 2);
    const state = s.state!()!;
    const cases: Array<[string, (h: Record<string, unknown>) => void, RegExp]> = [
      ['no accountant', (h) => delete h.accountant, /has no accountant/],
      ['accountant null', (h) => (h.accountant = null), /has no accountant/],
      ['negative RDP', (h) => ((h.accountant as { rdp: number[] }).rdp[7] = -5), /order .* is -5/],
      ['steps missing', (h) => delete (h.accountant as { steps?: number }).steps, /steps/],
    ];
    for (const [what, edit, message] of cases) {
      const fresh = dpStrategy(privacy);
      let err: unknown;
      try {
        fresh.restore!(editedState(state, edit));
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(FedStreamError);
      expect((err as FedStreamError).code, what).toBe('STRATEGY_STATE_INVALID');
      expect((err as FedStreamError).message, what).toMatch(message);
    }
  });
});

describe('the clipping norm across a restart', () => {
  it('fixed clipping takes the manifest\'s clippingNorm after a restart (a changed one is not silently ignored); adaptive continues from its own', () => {
    const fixed = (c: number) => dpStrategy({ central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: c, numSampledClients: 3 } });
    const before = fixed(0.5);
    run(before, 2);
    const after = fixed(2);
    after.restore!(before.state!()!);
    expect(after.privacy!()!.clippingNorm).toBe(2);
    expect(after.privacy!()!.steps).toBe(2);
    const adaptive = (c: number) => dpStrategy({ central: { clipping: 'adaptive', noiseMultiplier: 0, clippingNorm: c, numSampledClients: 3 } });
    const a = adaptive(0.5);
    run(a, 2);
    const reached = a.privacy!()!.clippingNorm;
    expect(reached).not.toBe(0.5);
    const b = adaptive(0.5);
    b.restore!(a.state!()!);
    expect(b.privacy!()!.clippingNorm).toBe(reached);
  });
});

describe('central DP cannot join a running pipeline', () => {
  it('a DP wrapper with fewer releases than the base version refuses the round with PRIVACY_HISTORY_INCOMPLETE', () => {
    const s = dpStrategy({ central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 3 } });
    expect(s.admitRound!({ round: 1, baseVersion: 0, knownNodes: [] })).toBeUndefined();
    const refusal = s.admitRound!({ round: 4, baseVersion: 3, knownNodes: [] })!;
    expect(refusal.code).toBe('PRIVACY_HISTORY_INCOMPLETE');
    expect(refusal.message).toMatch(/versions 1\.\.3 were published without central DP/);
    expect(refusal.details).toMatchObject({ round: 4, baseVersion: 3, steps: 0 });
    // Restored at version 2 of a DP pipeline, it starts round 3 (and refuses a round from a later version).
    run(s, 2);
    const restored = dpStrategy({ central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 3 } });
    restored.restore!(s.state!()!);
    expect(restored.admitRound!({ round: 3, baseVersion: 2, knownNodes: [] })).toBeUndefined();
    expect(restored.admitRound!({ round: 6, baseVersion: 5, knownNodes: [] })!.code).toBe('PRIVACY_HISTORY_INCOMPLETE');
  });

  it('the aggregator of a FedAvg pipeline restarted with privacy.central and more rounds publishes nothing more', async () => {
    const { m, signer, cluster, t, p, sendUpdate, published, onVersion } = await oneNodeMemoryPipeline('late-dp', {
      rounds: { count: 2, targetUpdates: 1, minUpdates: 1, timeoutMs: 60_000 },
    }, logger);

    const a = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, onVersion });
    await a.start();
    for (const round of [1, 2]) {
      const next = published(round);
      await sendUpdate(round);
      await next;
    }
    await a.done;
    await a.stop();

    // The operator adds central DP with a budget and asks for two more rounds.
    const withDp = { ...m, rounds: { ...m.rounds, count: 4 }, privacy: privacySchema.parse({ central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 1 }, budget: { epsilon: 50, delta: 1e-5 } }) };
    const b = await createAggregator({ manifest: withDp, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false });
    await b.start();
    const err = await b.done.then(() => undefined, (e: unknown) => e);
    await b.stop();
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).code).toBe('PRIVACY_HISTORY_INCOMPLETE');
    expect((await readVersions(t, m)).map((v) => v.version)).toEqual([0, 1, 2]);
    // The pipeline had finished (its FINISH is in the log): the refusal writes no new version, FINISH or START.
    const starts = (await readAudit(t, m)).filter((e) => e.action === 'ROUND_STARTED').map((e) => e.round);
    expect(starts).toEqual([1, 2]);
    // The refusal is audited, as the budget's is when a round is refused in a running pipeline (issue 14: "the
    // aggregator refuses to start a round that would exceed it, with an audit event"), once per refusal.
    const finished = (await readAudit(t, m)).filter((e) => e.action === 'PIPELINE_FINISHED');
    expect(finished.at(-1)!.details).toMatchObject({ code: 'PRIVACY_HISTORY_INCOMPLETE', baseVersion: '2', steps: '0' });
    await p.disconnect();
  }, 120_000);
});

describe('noise and its sensitivity', () => {
  it('adaptive clipping noises the weights with the norm the round clipped with, then updates it', () => {
    const s = dpStrategy({ central: { clipping: 'adaptive', noiseMultiplier: 0.3, clippingNorm: 0.8, numSampledClients: 20 } });
    const base = [{ name: 'w', shape: [8], values: new Float32Array(8) }];
    const ctx = { round: 1, baseVersion: 0, knownNodes: [] };
    const agg = s.begin(base, ctx);
    for (let k = 0; k < 3; k++) agg.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ ...base[0]!, values: new Float32Array(8).fill(0.01 * (k + 1)) }], metrics: {} });
    const r = agg.finish([]);
    const zWeights = (0.3 ** -2 - (2 * (20 / 20)) ** -2) ** -0.5;
    expect(r.metrics.dp_clipping_norm).toBe(0.8);
    expect(r.metrics.dp_noise_std).toBeCloseTo((zWeights * 0.8) / 3, 12); // 3 updates of m = 20: C/3 each
    // Every update was unclipped: the fraction is above γ = 0.5 (up to the count's noise), so C moved.
    expect(s.privacy!()!.clippingNorm).not.toBe(0.8);
  });

  it('an adaptive clipping norm driven to 0 or ∞ by a huge clipNormLr refuses the next round (PRIVACY_CONFIG_INVALID), its state stays restorable', () => {
    // z = 0 (no noise anywhere): the count is exact. Small updates all unclipped push C down, large ones all clipped up.
    for (const [size, to] of [[0.001, 0], [10, Infinity]] as const) {
      const privacy = { central: { clipping: 'adaptive', noiseMultiplier: 0, clippingNorm: 1, numSampledClients: 3, clipNormLr: 5000 } };
      const s = dpStrategy(privacy);
      const base: Weights = [{ name: 'w', shape: [4], values: new Float32Array(4) }];
      const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
      for (let k = 0; k < 3; k++) agg.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ ...base[0]!, values: new Float32Array(4).fill(size) }], metrics: {} });
      const r = agg.finish([]);
      expect(r.weights[0]!.values.every((v) => Number.isFinite(v))).toBe(true);
      const refusal = s.admitRound!({ round: 2, baseVersion: 1, knownNodes: [] })!;
      expect(refusal.code, `C → ${to}`).toBe('PRIVACY_CONFIG_INVALID');
      expect(refusal.message).toMatch(/privacy\.central\.clipNormLr/);
      expect(refusal.details).toMatchObject({ clippingNorm: 1, nextClippingNorm: to });
      const restored = dpStrategy(privacy);
      restored.restore!(s.state!()!);
      expect(restored.privacy!()!.clippingNorm).toBe(1);
    }
  });

  it.for([
    { id: 'fedadam', strategy: { name: 'fedadam' } },
    { id: 'fedadam with clipNorm (the Clipped wrapper between)', strategy: { name: 'fedadam', clipNorm: 100 } },
  ])('around a server optimizer ($id), the noise goes on the mean before the step: its moments carry it', ({ strategy }) => {
    // FedAdam's first moment after one step is m_1 = (1 − β1)·Δ̃, Δ̃ the (noised) mean change; noise added after the
    // step instead would leave m_1 noise-free, and one node could move the step (≈ ±η per coordinate with τ = 1e-9)
    // far more than the C/m the noise is calibrated to.
    const P = 20_000;
    const rand = mulberry32(11);
    const base: Weights = [{ name: 'w', shape: [P], values: new Float32Array(P) }];
    const updates = Array.from({ length: 5 }, () => Float32Array.from({ length: P }, () => 0.01 * (rand() - 0.5)));
    const firstMoment = (z: number) => {
      const s = dpStrategy({ central: { clipping: 'fixed', noiseMultiplier: z, clippingNorm: 0.5, numSampledClients: 5 } }, strategy);
      const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
      updates.forEach((u, k) => agg.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ ...base[0]!, values: u }], metrics: {} }));
      const r = agg.finish([]);
      const state = s.state!()!;
      const length = new DataView(state.buffer, state.byteOffset).getUint32(0, true);
      const m = decodeOptimizerState('fedadam', ['m', 'v'], state.subarray(4 + length)).slots.get('m')![0]!;
      return { m, std: r.metrics.dp_noise_std! };
    };
    const clean = firstMoment(0);
    const noisy = firstMoment(1);
    expect(noisy.std).toBeCloseTo(0.1, 12); // z·C/m
    let s2 = 0;
    for (let j = 0; j < P; j++) s2 += ((noisy.m[j]! - clean.m[j]!) / (1 - 0.9)) ** 2;
    const measured = Math.sqrt(s2 / P);
    expect(Math.abs(measured / noisy.std - 1), `std of the mean's noise ${measured} vs ${noisy.std}`).toBeLessThan(0.03);
  });

  it('a round with fewer updates than numSampledClients gets the noise their mean needs, z·C/n; m or more, Flower\'s z·C/m', () => {
    const std = (m: number, n: number) => {
      const s = dpStrategy({ central: { clipping: 'fixed', noiseMultiplier: 2, clippingNorm: 0.5, numSampledClients: m } });
      const base: Weights = [{ name: 'w', shape: [4], values: new Float32Array(4) }];
      const agg = s.begin(base, { round: 1, baseVersion: 0, knownNodes: [] });
      for (let k = 0; k < n; k++) agg.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: 10, weights: [{ ...base[0]!, values: new Float32Array(4).fill(0.01) }], metrics: {} });
      return agg.finish([]).metrics.dp_noise_std!;
    };
    expect(std(10, 2)).toBeCloseTo((2 * 0.5) / 2, 12); // one of 2 moves the mean by C/2, not C/10
    expect(std(10, 10)).toBeCloseTo((2 * 0.5) / 10, 12);
    expect(std(4, 6)).toBeCloseTo((2 * 0.5) / 4, 12);
  });

  it('local DP with a sensitivity below the clipping norm (0: no noise at all) is refused, naming the field', () => {
    const manifest = (local: Record<string, number>) => ({
      apiVersion: 'fedstream/v1', tenant: 't', name: 'n', model: { inputShape: [4], layers: [{ type: 'dense', units: 3 }] },
      data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 }, privacy: { local },
    });
    for (const sensitivity of [0, 0.5]) {
      expect(() => parseManifest(manifest({ clippingNorm: 1, sensitivity, epsilon: 1, delta: 1e-5 }))).toThrow(/privacy\.local\.sensitivity.*at least clippingNorm/);
    }
    expect(parseManifest(manifest({ clippingNorm: 1, sensitivity: 1, epsilon: 1, delta: 1e-5 })).privacy!.local!.sensitivity).toBe(1);
  });
});
