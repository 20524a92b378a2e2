/**
 * A server optimizer across a real `kill -9` on the real broker (issue 14, item 2): the aggregator of a FedAdam
 * pipeline is SIGKILLed between publishing round 2's version and committing it — FedAdam's step, and so its m_t and
 * v_t, already taken in memory — and a new aggregator process resumes from the log. Its versions, weights and
 * FedAdam state, equal those of an uninterrupted run with the same updates. The unit test
 * (test/unit/aggregator-optimizer-recovery.test.ts) does the same for every optimizer on the memory transport.
 */
import { describe, expect, it } from 'vitest';
import { decodeOptimizerState } from '../../src/aggregator/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, maxRelativeDifference, quietLogger, readVersions, referenceRun, smallManifest, writeManifest } from './pipeline-helpers.ts';

const NODE_IDS = ['node-1', 'node-2', 'node-3'];

describe('a server optimizer on the real broker', () => {
  it.each([
    { fault: 'kill:before-commit:2', what: 'between its step and the commit' },
    { fault: 'kill:mid-round:2', what: 'mid-round' },
  ])('FedAdam, kill -9 of the aggregator $what: the new aggregator restores m_t, v_t and publishes the same versions', async ({ fault }) => {
    const brokers = kafkaBrokers();
    const m = smallManifest({ strategy: { name: 'fedadam', eta: 0.01, tau: 1e-3 } });
    const reference = await referenceRun(m, NODE_IDS);
    const { file, dir } = writeManifest(m);
    const first = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator-1', env: { FEDSTREAM_FAULT: fault } });
    const nodes = NODE_IDS.map((id) => fedstream(['node', '-p', file, '--kafka', brokers, '--node-id', id, '--heartbeat-ms', '1000'], { dir, name: id }));
    await expectExit(first, 'SIGKILL', 'first aggregator');
    const second = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator-2' });
    await expectExit(second, 0, 'second aggregator');
    for (const [i, n] of nodes.entries()) await expectExit(n, 0, NODE_IDS[i]!);

    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const versions = await readVersions(t, m);
    expect(versions.map((v) => v.version)).toEqual([0, 1, 2, 3]);
    expect(versions.map((v) => v.strategy)).toEqual(['initial', 'fedadam', 'fedadam', 'fedadam']);
    for (let i = 0; i < versions.length; i++) {
      expect(maxRelativeDifference(versions[i]!, reference[i]!), `version ${i}`).toBeLessThanOrEqual(1e-6);
      const ours = versions[i]!.strategyState;
      const ref = reference[i]!.strategyState;
      if (i === 0) {
        expect(ours).toBeNull();
        continue;
      }
      // The state the restarted aggregator went on from, and what it stored after: FedAdam's, one step per round.
      const a = decodeOptimizerState('fedadam', ['m', 'v'], ours!);
      const b = decodeOptimizerState('fedadam', ['m', 'v'], ref!);
      expect(a.steps).toBe(i);
      expect(b.steps).toBe(i);
      expect(Buffer.from(ours!).equals(Buffer.from(ref!)), `version ${i}: strategy state`).toBe(true);
    }
  }, 480_000); // a reference run, then real processes killed and restarted: sized for a loaded two-core machine (issue 13, kind 6)
});
