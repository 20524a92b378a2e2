/**
 * A sink started after the pipeline finished looks for FINISH on the control topic (sink/finish.ts): only a FINISH
 * the aggregator signed counts, so a forged one cannot make a late sink stop waiting (issue 12).
 */
import { describe, expect, it } from 'vitest';
import { finishOnTopic } from '../../src/analytics/sink/finish.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { ensureTopics, ephemeralParticipants, ephemeralSigner, pipelineTopics, toRecords, type Signer } from '../../src/protocol/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/index.ts';

const logger = createLogger('silent');

describe('finishOnTopic', () => {
  it('finds a FINISH only when the aggregator signed it', async () => {
    const team = ephemeralParticipants(parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'sec', name: 'scan',
      model: { inputShape: [2], layers: [{ type: 'dense', units: 2 }] },
      data: { source: 'mnist', nodes: 1 },
      rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    }), ['node-1']);
    const m = team.manifest;
    const t = createMemoryTransport({ cluster: new MemoryCluster(), logger });
    const admin = t.admin();
    await ensureTopics(admin, m);
    await admin.close();
    const p = t.producer();
    await p.connect();
    const topic = pipelineTopics(m).control;
    const finish = (signer?: Signer) => toRecords(topic, 'RoundControl', {
      tenant: m.tenant, pipeline: m.name, round: 1, baseVersion: 0, kind: 'FINISH', config: {}, selectedNodes: [], deadline: 0, minUpdates: 1, targetUpdates: 1, createdAt: Date.now(),
    }, 'round-1', m.topics.chunkSizeBytes, {}, signer);
    const scan = () => finishOnTopic(t, topic, `scan-${Math.random()}`, logger, team.registry, m.limits);
    await p.send([...finish(), ...finish(team.signerFor('node-1')), ...finish(ephemeralSigner())]);
    expect(await scan()).toBe(false);
    await p.send(finish(team.signerFor('aggregator')));
    expect(await scan()).toBe(true);
    await p.disconnect();
    await t.close();
  });
});
