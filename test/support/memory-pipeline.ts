/**
 * A one-node pipeline on the in-memory transport for driving the real aggregator by hand: a tiny dense model, the
 * node's and aggregator's ephemeral keys, a connected producer, `sendUpdate(round)` (node-1's signed update that
 * returns the latest version's weights unchanged, 10 examples) and `published(version)`, resolved by `onVersion`
 * (pass it to createAggregator) when that version is published.
 */
import type { Logger } from 'pino';
import type { ModelVersionRecord } from '../../src/codec/index.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { ephemeralParticipants } from '../../src/protocol/participants.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { createMemoryTransport, MemoryCluster, type Producer, type Transport } from '../../src/transport/index.ts';
import { readVersions } from './pipeline-log.ts';

export interface OneNodePipeline {
  m: Manifest;
  signer: ReturnType<ReturnType<typeof ephemeralParticipants>['signerFor']>;
  cluster: MemoryCluster;
  t: Transport;
  p: Producer;
  sendUpdate: (round: number) => Promise<void>;
  published: (version: number) => Promise<void>;
  onVersion: (v: ModelVersionRecord) => void;
}

/** `namePrefix` gets a random suffix; `extra` (e.g. `rounds`, `privacy`) is merged over the manifest's top level. */
export async function oneNodeMemoryPipeline(namePrefix: string, extra: Record<string, unknown>, logger: Logger): Promise<OneNodePipeline> {
  const team = ephemeralParticipants(parseManifest({
    apiVersion: 'fedstream/v1', tenant: 'test', name: `${namePrefix}-${Math.random().toString(36).slice(2, 8)}`,
    model: { inputShape: [4], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 1, testExamples: 100, trainExamples: 200 },
    ...extra,
  }), ['node-1']);
  const m = team.manifest;
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger });
  const p = t.producer();
  await p.connect();
  const sendUpdate = async (round: number) => {
    const base = (await readVersions(t, m)).at(-1)!;
    await p.send(toRecords(pipelineTopics(m).updates, 'ModelUpdate', {
      updateId: `u${round}`, tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round, baseVersion: base.version,
      numExamples: 10, tensors: base.tensors, metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
    }, 'node-1', m.topics.chunkSizeBytes, {}, team.signerFor('node-1')));
  };
  const waiters = new Map<number, () => void>();
  return {
    m, signer: team.signerFor('aggregator'), cluster, t, p, sendUpdate,
    published: (version) => new Promise<void>((resolve) => waiters.set(version, resolve)),
    onVersion: (v) => waiters.get(v.version)?.(),
  };
}
