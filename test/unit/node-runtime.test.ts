import { afterEach, describe, expect, it } from 'vitest';
import { packTensors, weightsSha256, type ModelVersionRecord, type RoundControlRecord, type TelemetryEventRecord } from '../../src/codec/index.ts';
import type { Weights } from '../../src/codec/types.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { encodeRoundConfig, FedNode, type LocalTrainer, type LocalTrainInput } from '../../src/node/index.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { ensureTopics, pipelineTopics } from '../../src/protocol/topics.ts';
import { decode, toRecords } from '../../src/protocol/wire.ts';
import { ephemeralParticipants, ephemeralSigner, type Signer } from '../../src/protocol/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/index.ts';
import type { Producer, Transport } from '../../src/transport/types.ts';

/**
 * The node runtime on the in-memory transport, with a recording trainer (no tfjs): the test plays the aggregator,
 * writing version 0 and the round control records by hand, so that it can send configs no aggregator would.
 */
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

// The node and the aggregator the test plays have keys of their own, listed in the manifest.
const team = ephemeralParticipants(parseManifest({
  apiVersion: 'fedstream/v1',
  tenant: 'test',
  name: 'node-runtime',
  model: { inputShape: [2], seed: 1, layers: [{ type: 'dense', units: 2 }] },
  data: { source: 'mnist', nodes: 2, partition: 'iid', testExamples: 100, trainExamples: 200, seed: 1 },
  training: { epochs: 2, batchSize: 10, learningRate: 0.05, optimizer: 'sgd' },
  rounds: { count: 3, targetUpdates: 1, minUpdates: 1 },
}), ['node-1', 'node-2']);
const manifest: Manifest = team.manifest;
const aggregatorKey = team.signerFor('aggregator')!;
const topics = pipelineTopics(manifest);
const W0: Weights = [
  { name: 'l0_dense/kernel', shape: [2, 2], values: Float32Array.from([0.1, -0.2, 0.3, 0.4]) },
  { name: 'l0_dense/bias', shape: [2], values: Float32Array.from([0, 0]) },
];

interface Harness {
  t: Transport;
  producer: Producer;
  node: FedNode;
  calls: LocalTrainInput[];
  updates: number[];
}

let running: Harness | undefined;

afterEach(async () => {
  await running?.node.stop();
  await running?.producer.disconnect();
  running = undefined;
});

async function harness(): Promise<Harness> {
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger });
  const admin = t.admin();
  await ensureTopics(admin, manifest);
  await admin.close();
  const producer = t.producer();
  await producer.connect();
  const v0: ModelVersionRecord = {
    tenant: manifest.tenant, pipeline: manifest.name, version: 0, parentVersion: -1, round: 0, strategy: 'fedavg', createdAt: Date.now(),
    tensors: packTensors(W0), weightsSha256: weightsSha256(W0), contributors: [], totalExamples: 0, metrics: {}, rejectedCount: 0,
    modelSpec: JSON.stringify(manifest.model),
  };
  await producer.send(toRecords(topics.models, 'ModelVersion', v0, 'version-0', manifest.topics.chunkSizeBytes, {}, aggregatorKey));
  const calls: LocalTrainInput[] = [];
  const updates: number[] = [];
  const trainer: LocalTrainer = {
    train: async (input) => {
      calls.push(input);
      return { weights: input.weights, numExamples: 5, metrics: { loss: 1 }, trainingMs: 1, backend: 'test' };
    },
  };
  const node = new FedNode({
    manifest, transport: createMemoryTransport({ cluster, logger }), nodeId: 'node-1', signer: team.signerFor('node-1'), trainer, logger, heartbeatMs: 60_000,
    onUpdate: (u) => updates.push(u.round),
  });
  running = { t, producer, node, calls, updates };
  return running;
}

/** Writes a control record, signed by the aggregator's key unless another signer (or none: `null`) is given. */
async function control(h: Harness, round: number, kind: RoundControlRecord['kind'], config: Record<string, string>, signer: Signer | null = aggregatorKey, baseVersion = 0): Promise<void> {
  const c: RoundControlRecord = {
    tenant: manifest.tenant, pipeline: manifest.name, round, baseVersion, kind, config, selectedNodes: [],
    deadline: Date.now() + 60_000, minUpdates: 1, targetUpdates: 1, createdAt: Date.now(),
  };
  await h.producer.send(toRecords(topics.control, 'RoundControl', c, `round-${round}`, manifest.topics.chunkSizeBytes, {}, signer ?? undefined));
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function telemetry(h: Harness, kind: TelemetryEventRecord['kind']): Promise<TelemetryEventRecord[]> {
  const out: TelemetryEventRecord[] = [];
  await readToEnd(h.t, topics.telemetry, (msg) => { out.push(decode('TelemetryEvent', msg.value!)); });
  return out.filter((e) => e.kind === kind);
}

describe('FedNode and the round config', () => {
  it('passes the decoded round config to its trainer: adam reaches it, missing keys come from the manifest', async () => {
    const h = await harness();
    await h.node.start();
    await control(h, 1, 'START', encodeRoundConfig({ epochs: 3, batchSize: 7, learningRate: 0.01, optimizer: 'adam' }));
    await until('round 1 trained', () => h.updates.includes(1));
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]!.config).toEqual({ epochs: 3, batchSize: 7, learningRate: 0.01, optimizer: 'adam' });
    expect(h.calls[0]!.spec).toEqual(manifest.model);

    await control(h, 2, 'START', { optimizer: 'adam' });
    await until('round 2 trained', () => h.updates.includes(2));
    expect(h.calls[1]!.config).toEqual({ epochs: 2, batchSize: 10, learningRate: 0.05, optimizer: 'adam' });
    expect(h.node.health()).toMatchObject({ healthy: true, state: 'idle', figures: { roundsTrained: 2, roundsRefused: 0 } });
  });

  it('refuses a round whose config it cannot honour, says why, and trains the next one', async () => {
    const h = await harness();
    await h.node.start();
    await control(h, 1, 'START', { ...encodeRoundConfig({ epochs: 1, batchSize: 10, learningRate: 0.1, optimizer: 'sgd' }), lossScale: '128' });
    await until('round 1 refused', () => h.node.health().figures?.roundsRefused === 1);
    await control(h, 2, 'START', { optimizer: 'rmsprop' });
    await until('round 2 refused', () => h.node.health().figures?.roundsRefused === 2);
    expect(h.calls).toHaveLength(0);

    // Still running: the next round with a config it knows is trained.
    await control(h, 3, 'START', { epochs: '1' });
    await until('round 3 trained', () => h.updates.includes(3));
    expect(h.calls.map((c) => c.config)).toEqual([{ epochs: 1, batchSize: 10, learningRate: 0.05, optimizer: 'sgd' }]);
    expect(h.node.health()).toMatchObject({ healthy: true, figures: { roundsTrained: 1, roundsRefused: 2 } });
    expect(h.node.health().detail).toContain('2 refused');

    // Each refusal is an ERROR event naming the key, on the telemetry topic the sink reads.
    let errors: TelemetryEventRecord[] = [];
    for (let i = 0; i < 100 && errors.length < 2; i++) errors = await telemetry(h, 'ERROR');
    expect(errors.map((e) => e.round)).toEqual([1, 2]);
    expect(errors[0]!.labels).toMatchObject({ errorCode: 'CONFIG_INVALID', key: 'lossScale', path: 'round 1 config.lossScale', action: 'round-skipped' });
    expect(errors[0]!.message).toMatch(/^round 1 not trained: round 1 config\.lossScale: unknown training key lossScale: this node honours epochs, batchSize, learningRate, optimizer, proximalMu/);
    expect(errors[1]!.labels.key).toBe('optimizer');
    expect(errors[1]!.message).toContain('"rmsprop"');

    await control(h, 3, 'FINISH', {});
    await h.node.done;
    expect(h.node.health()).toMatchObject({ healthy: false, state: 'finished' });
  });

  it('trains an EXTEND of a round it missed with that round\'s START config, not with the extension key', async () => {
    const h = await harness();
    // Both records are in the log before the node starts: it acts on the latest, the EXTEND.
    await control(h, 1, 'START', encodeRoundConfig({ epochs: 4, batchSize: 5, learningRate: 0.2, optimizer: 'adam' }));
    await control(h, 1, 'EXTEND', { extension: '1' });
    await h.node.start();
    await until('round 1 trained', () => h.updates.includes(1));
    expect(h.calls[0]!.config).toEqual({ epochs: 4, batchSize: 5, learningRate: 0.2, optimizer: 'adam' });
  });
});

describe('FedNode and records it cannot attribute', () => {
  /** Version 1 with weights `w`, its sha256 correct, signed by `signer` (none: `null`). */
  async function version1(h: Harness, w: Weights, signer: Signer | null): Promise<void> {
    const v: ModelVersionRecord = {
      tenant: manifest.tenant, pipeline: manifest.name, version: 1, parentVersion: 0, round: 1, strategy: 'fedavg', createdAt: Date.now(),
      tensors: packTensors(w), weightsSha256: weightsSha256(w), contributors: [], totalExamples: 0, metrics: {}, rejectedCount: 0,
      modelSpec: JSON.stringify(manifest.model),
    };
    await h.producer.send(toRecords(topics.models, 'ModelVersion', v, 'v1', manifest.topics.chunkSizeBytes, {}, signer ?? undefined));
  }

  it('ignores a FINISH the aggregator did not sign (unsigned, another participant\'s key, an unknown key) and follows the real rounds', async () => {
    const h = await harness();
    await h.node.start();
    await control(h, 1, 'START', {});
    await until('round 1 trained', () => h.updates.includes(1));
    await control(h, 1, 'FINISH', {}, null);
    await control(h, 1, 'FINISH', {}, team.signerFor('node-2')!);
    await control(h, 1, 'FINISH', {}, ephemeralSigner());
    await until('three records refused', () => h.node.health().figures?.recordsRefused === 3);
    expect(h.node.health()).toMatchObject({ healthy: true, state: 'idle' });
    // The real round 2 is still trained, and only the aggregator's FINISH ends the node.
    await control(h, 2, 'START', {});
    await until('round 2 trained', () => h.updates.includes(2));
    await control(h, 2, 'FINISH', {});
    await h.node.done;
    expect(h.node.health()).toMatchObject({ state: 'finished', figures: { roundsTrained: 2, recordsRefused: 3 } });
  });

  it('never trains from a forged version, even with a correct sha256; it trains from the aggregator\'s', async () => {
    const h = await harness();
    await h.node.start();
    const forged: Weights = W0.map((t) => ({ ...t, values: t.values.map(() => 42) }));
    await version1(h, forged, null);
    await version1(h, forged, team.signerFor('node-2')!);
    await control(h, 2, 'START', {}, aggregatorKey, 1);
    await until('two versions refused', () => h.node.health().figures?.recordsRefused === 2);
    // Waiting for version 1: the forged ones are not it.
    await new Promise((r) => setTimeout(r, 200));
    expect(h.calls).toHaveLength(0);
    const real: Weights = W0.map((t) => ({ ...t, values: t.values.map((x) => x + 1) }));
    await version1(h, real, aggregatorKey);
    await until('round 2 trained', () => h.updates.includes(2));
    expect(h.calls).toHaveLength(1);
    expect(h.calls[0]!.weights.map((t) => [...t.values])).toEqual(real.map((t) => [...t.values]));
  });
});
