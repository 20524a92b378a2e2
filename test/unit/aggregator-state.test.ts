import { describe, expect, it } from 'vitest';
import { createAggregator, strategyFor, type Strategy } from '../../src/aggregator/index.ts';
import type { ModelVersionRecord } from '../../src/codec/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { ephemeralParticipants } from '../../src/protocol/participants.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/index.ts';
import { readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

/** FedAvg that also counts the rounds it has finished: a stand-in for FedAdam's moments or a privacy accountant. */
class CountingStrategy implements Strategy {
  readonly name = 'fedavg';
  finished = 0;
  restored: number | undefined;
  private readonly inner: Strategy;
  constructor(m: Manifest) {
    this.inner = strategyFor(m);
  }
  configureRound: Strategy['configureRound'] = (ctx) => this.inner.configureRound(ctx);
  begin: Strategy['begin'] = (base, ctx) => {
    const agg = this.inner.begin(base, ctx);
    return {
      get count() { return agg.count; },
      fold: (u) => agg.fold(u),
      finish: (r) => {
        const result = agg.finish(r);
        this.finished++;
        return result;
      },
    };
  };
  state(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify({ finished: this.finished }));
  }
  restore(state: Uint8Array): void {
    this.finished = (JSON.parse(new TextDecoder().decode(state)) as { finished: number }).finished;
    this.restored = this.finished;
  }
}

const stateOf = (v: ModelVersionRecord) => (v.strategyState ? JSON.parse(v.strategyState.toString('utf8')) as unknown : null);

describe('strategy state', () => {
  it('is stored with each version and restored by a new aggregator over the same log', async () => {
    const team = ephemeralParticipants(parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'test', name: `state-${Math.random().toString(36).slice(2, 8)}`,
      model: { inputShape: [4], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, testExamples: 100, trainExamples: 200 },
      rounds: { count: 3, targetUpdates: 1, minUpdates: 1, timeoutMs: 60_000 },
    }), ['node-1']);
    const m = team.manifest;
    const signer = team.signerFor('aggregator');
    const cluster = new MemoryCluster();
    const t = createMemoryTransport({ cluster, logger });
    const topics = pipelineTopics(m);
    const p = t.producer();
    await p.connect();
    const sendUpdate = async (round: number) => {
      const base = (await readVersions(t, m)).at(-1)!;
      await p.send(toRecords(topics.updates, 'ModelUpdate', {
        updateId: `u${round}`, tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round, baseVersion: base.version,
        numExamples: 10, tensors: base.tensors, metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
      }, 'node-1', m.topics.chunkSizeBytes, {}, team.signerFor('node-1')));
    };
    // Resolves when a version is published (onVersion is called after its transaction commits).
    const waiters = new Map<number, () => void>();
    const published = (version: number) => new Promise<void>((resolve) => waiters.set(version, resolve));
    const onVersion = (v: ModelVersionRecord) => waiters.get(v.version)?.();

    // The first incarnation runs rounds 1 and 2, then goes away.
    const first = new CountingStrategy(m);
    const a = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, strategy: first, onVersion });
    await a.start();
    let next = published(1);
    await sendUpdate(1);
    await next;
    next = published(2);
    await sendUpdate(2);
    await next;
    await a.stop();
    expect(first.finished).toBe(2);

    // A new one, with a fresh strategy object: the count comes back from the log, and goes on from there.
    const second = new CountingStrategy(m);
    const b = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, strategy: second });
    await b.start();
    expect(second.restored).toBe(2);
    await sendUpdate(3);
    await b.done;
    await b.stop();

    const vs = await readVersions(t, m);
    expect(vs.map((v) => v.version)).toEqual([0, 1, 2, 3]);
    expect(vs.map(stateOf)).toEqual([{ finished: 0 }, { finished: 1 }, { finished: 2 }, { finished: 3 }]);
  }, 60_000);

  it('FedAvg is stateless: its versions carry no state', async () => {
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'test', name: `stateless-${Math.random().toString(36).slice(2, 8)}`,
      model: { inputShape: [4], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, testExamples: 100, trainExamples: 200 },
      rounds: { count: 1, targetUpdates: 1, minUpdates: 1, timeoutMs: 60_000 },
      // Open enrolment with no aggregator key: an aggregator runs without one (nothing it writes can be verified).
      participants: { enrolment: 'open' },
    });
    expect(strategyFor(m).state).toBeUndefined();
    const t = createMemoryTransport({ cluster: new MemoryCluster(), logger });
    const agg = await createAggregator({ manifest: m, transport: t, logger, evaluate: false });
    expect(agg.health()).toMatchObject({ healthy: false, state: 'idle' });
    await agg.start();
    const [v0] = await readVersions(t, m);
    expect(v0!.strategyState).toBeNull();
    // The aggregator is a Service: health as a value.
    expect(agg.name).toBe('aggregator');
    expect(agg.health()).toMatchObject({ healthy: true, state: 'running', figures: { version: 0, round: 1, accepted: 0 } });
    await agg.stop();
    expect(agg.health()).toMatchObject({ healthy: false, state: 'stopped' });
  }, 60_000);
});
