/**
 * Differential privacy in the aggregator (issue 14, item 4), on the in-memory transport with the real aggregator:
 * each ModelVersion carries its (ε, δ) (schema field `privacy`) and the DP state (clipping norm, accountant) in
 * `strategyState`; the budget stops the pipeline before the round that would exceed it, with a PIPELINE_FINISHED
 * audit event naming PRIVACY_BUDGET_EXHAUSTED, a FINISH, and `done` rejecting with that typed error; a new
 * aggregator over the same log restores the accountant and refuses again without publishing anything.
 * Local DP (privacy.local, applied by the node runtime before it publishes): clipping and noise by their formulas.
 */
import { describe, expect, it } from 'vitest';
import { createAggregator } from '../../src/aggregator/index.ts';
import { FedStreamError } from '../../src/common/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { RdpAccountant, applyLocalDp, localDpNoiseStd } from '../../src/ml/index.ts';
import { createMemoryTransport } from '../../src/transport/index.ts';
import { oneNodeMemoryPipeline } from '../support/memory-pipeline.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

/** ε after `steps` releases at q = 1, z = 1, δ = 1e-5. */
const epsAfter = (steps: number) => {
  const a = new RdpAccountant();
  a.step({ samplingRate: 1, noiseMultiplier: 1 }, steps);
  return a.epsilon(1e-5);
};

describe('central DP in the aggregator', () => {
  it('stores (ε, δ) with each version, stops at the budget with PRIVACY_BUDGET_EXHAUSTED, and a restart refuses again', async () => {
    // A budget between ε after 2 and after 3 versions: rounds 1 and 2 run, round 3 is refused.
    const budget = (epsAfter(2) + epsAfter(3)) / 2;
    const { m, signer, cluster, t, p, sendUpdate, published, onVersion } = await oneNodeMemoryPipeline('dp', {
      rounds: { count: 5, targetUpdates: 1, minUpdates: 1, timeoutMs: 60_000 },
      privacy: { central: { clipping: 'fixed', noiseMultiplier: 1, clippingNorm: 0.5, numSampledClients: 1 }, budget: { epsilon: budget, delta: 1e-5 } },
    }, logger);

    const a = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, onVersion });
    await a.start();
    let next = published(1);
    await sendUpdate(1);
    await next;
    next = published(2);
    await sendUpdate(2);
    await next;
    const err = await a.done.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).code).toBe('PRIVACY_BUDGET_EXHAUSTED');
    expect((err as FedStreamError).message).toMatch(/round 3 would take ε from .* above the budget/);
    await a.stop();

    const vs = await readVersions(t, m);
    expect(vs.map((v) => v.version)).toEqual([0, 1, 2]);
    expect(vs.map((v) => v.strategy)).toEqual(['initial', 'fedavg+dp-fixed', 'fedavg+dp-fixed']);
    expect(vs[0]!.privacy).toMatchObject({ epsilon: 0, steps: 0, mechanism: 'central-fixed' });
    for (const k of [1, 2]) {
      expect(vs[k]!.privacy).toMatchObject({ delta: 1e-5, noiseMultiplier: 1, samplingRate: 1, steps: k, clippingNorm: 0.5, mechanism: 'central-fixed' });
      expect(vs[k]!.privacy!.epsilon).toBeCloseTo(epsAfter(k), 10);
      expect(vs[k]!.metrics.dp_epsilon).toBeCloseTo(epsAfter(k), 10);
      expect(vs[k]!.metrics.dp_noise_std).toBeCloseTo(0.5, 12); // z·C/m
    }
    const finished = (await readAudit(t, m)).filter((e) => e.action === 'PIPELINE_FINISHED');
    expect(finished).toHaveLength(1);
    expect(finished[0]!.details).toMatchObject({ code: 'PRIVACY_BUDGET_EXHAUSTED', round: '3', budget: String(budget) });
    expect(finished[0]!.reason).toMatch(/above the budget privacy\.budget\.epsilon/);

    // A new aggregator over the same log: the accountant comes back from version 2 and refuses round 3 again.
    const b = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false });
    await b.start();
    const again = await b.done.then(() => undefined, (e: unknown) => e);
    expect((again as FedStreamError).code).toBe('PRIVACY_BUDGET_EXHAUSTED');
    expect((again as FedStreamError).details.epsilon as number).toBeCloseTo(epsAfter(2), 10);
    await b.stop();
    expect((await readVersions(t, m)).map((v) => v.version)).toEqual([0, 1, 2]);
    await p.disconnect();
  }, 120_000);
});

describe('local DP (privacy.local, Flower\'s LocalDpMod)', () => {
  it('clips the change to C and adds noise of std Δ·√(2 ln(1.25/δ))/ε from the CSPRNG', () => {
    const o = { clippingNorm: 0.5, sensitivity: 0.5, epsilon: 2, delta: 1e-5 };
    expect(localDpNoiseStd(o)).toBeCloseTo((0.5 * Math.sqrt(2 * Math.log(1.25 / 1e-5))) / 2, 12);
    const n = 50_000;
    const base = [{ name: 'w', shape: [n], values: new Float32Array(n).fill(1) }];
    const trained = [{ name: 'w', shape: [n], values: Float32Array.from({ length: n }, (_, j) => 1 + (j % 2 ? 0.01 : -0.01)) }];
    // Without noise (ε huge): exactly the clipped change, norm 0.01·√n = 2.24 scaled to 0.5.
    const clipped = applyLocalDp(trained, base, { ...o, sensitivity: 0 });
    expect(clipped.std).toBe(0);
    expect(clipped.norm).toBeCloseTo(0.01 * Math.sqrt(n), 4);
    let sq = 0;
    for (let j = 0; j < n; j++) sq += (clipped.weights[0]!.values[j]! - 1) ** 2;
    expect(Math.sqrt(sq)).toBeCloseTo(0.5, 4);
    expect(trained[0]!.values[1]).toBeCloseTo(1.01, 6); // the input is left as it was
    // With noise: the difference from the noise-free result has the formula's std (within 3%; sampling error 0.3%).
    const noisy = applyLocalDp(trained, base, o);
    let s2 = 0;
    for (let j = 0; j < n; j++) s2 += (noisy.weights[0]!.values[j]! - clipped.weights[0]!.values[j]!) ** 2;
    expect(Math.abs(Math.sqrt(s2 / n) / noisy.std - 1)).toBeLessThan(0.03);
  });

  it('is refused in a manifest with a δ outside (0, 1) or a negative sensitivity, naming the field', () => {
    const base = {
      apiVersion: 'fedstream/v1', tenant: 't', name: 'n', model: { inputShape: [4], layers: [{ type: 'dense', units: 3 }] },
      data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    };
    expect(() => parseManifest({ ...base, privacy: { local: { clippingNorm: 1, sensitivity: 1, epsilon: 1, delta: 1 } } })).toThrow(/privacy\.local\.delta/);
    expect(() => parseManifest({ ...base, privacy: { local: { clippingNorm: 1, sensitivity: -1, epsilon: 1, delta: 1e-5 } } })).toThrow(/privacy\.local\.sensitivity/);
    expect(() => parseManifest({ ...base, privacy: { budget: { epsilon: 1, delta: 1e-5 } } })).toThrow(/privacy\.budget/);
  });
});
