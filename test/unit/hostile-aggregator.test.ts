/**
 * The aggregator under hostile input, on the in-memory transport (the same code as on Kafka above the transport):
 * a node claiming 1e12 examples or absurd metrics (shared/cases/hostile/num-examples-dominance), one node's share
 * capped, the dead-letter bytes of a round bounded, and dangling chunk sets expired and audited at the round's close.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { CHUNK_HEADERS, packTensors, unpackTensors, type Weights } from '../../src/codec/index.ts';
import type { Transport } from '../../src/transport/index.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

function manifest(limits: Record<string, unknown> = {}, rounds: Record<string, unknown> = {}): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1', tenant: 'sec', name: `repro-${Math.random().toString(36).slice(2, 8)}`,
    model: { inputShape: [784], seed: 7, layers: [{ type: 'dense', units: 32, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 5, partition: 'iid', testExamples: 200, trainExamples: 1000, seed: 11 },
    rounds: { count: 1, targetUpdates: 2, minUpdates: 1, timeoutMs: 60_000, maxExtensions: 0, ...rounds },
    limits,
    // What these tests send is unsigned: the limits hold whoever wrote a record (signatures: aggregator-signatures.test.ts).
    participants: { enrolment: 'open' },
  });
}

interface Run {
  m: Manifest;
  t: Transport;
  base: Weights;
  send(records: Parameters<ReturnType<Transport['producer']>['send']>[0]): Promise<void>;
  update(over: Record<string, unknown>, weights?: Weights): ReturnType<typeof toRecords>;
  finish(): Promise<void>;
  figures(): Record<string, number | string>;
}

async function start(m: Manifest): Promise<Run> {
  const t = createMemoryTransport({ cluster: new MemoryCluster(), logger });
  const agg = await createAggregator({ manifest: m, transport: t, logger, evaluate: false });
  await agg.start();
  const base = unpackTensors((await readVersions(t, m))[0]!.tensors);
  const p = t.producer();
  await p.connect();
  const topics = pipelineTopics(m);
  return {
    m, t, base,
    send: async (records) => { await p.send(records); },
    update: (over, weights = base) => toRecords(topics.updates, 'ModelUpdate', {
      updateId: `u-${Math.random()}`, tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round: 1, baseVersion: 0, numExamples: 100,
      tensors: packTensors(weights), metrics: { loss: 1, accuracy: 0.5 }, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x', ...over,
    }, String(over.nodeId ?? 'node-1'), m.topics.chunkSizeBytes),
    figures: () => agg.health().figures ?? {},
    finish: async () => {
      await agg.done;
      await p.disconnect();
      await agg.stop();
    },
  };
}

const nudge = (base: Weights, d: number): Weights => base.map((x) => ({ ...x, values: Float32Array.from(x.values, (v, i) => v + d * ((i % 7) - 3) * 1e-3) }));
const zeros = (base: Weights): Weights => base.map((x) => ({ ...x, values: new Float32Array(x.values.length) }));

describe('the aggregator under hostile input', () => {
  it('rejects numExamples 1e12 as bad_num_examples and leaves the model to the honest node (num-examples-dominance)', async () => {
    const r = await start(manifest({}, { targetUpdates: 2, minUpdates: 1, timeoutMs: 1500 }));
    await r.send(r.update({ nodeId: 'node-1', updateId: 'honest', numExamples: 500 }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'liar', numExamples: 1e12, metrics: { loss: 1e308, accuracy: -1e308 } }, zeros(r.base)));
    await r.finish();
    const v = (await readVersions(r.t, r.m)).at(-1)!;
    expect(v.contributors.map((c) => [c.updateId, c.weight])).toEqual([['honest', 1]]);
    expect(v.metrics.train_loss).toBe(1);
    const rejected = (await readAudit(r.t, r.m)).filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected.map((e) => [e.updateId, e.details.code])).toEqual([['liar', 'bad_num_examples']]);
    expect(rejected[0]!.reason).toMatch(/outside 1\.\.10000000 \(limits\.maxExamplesPerUpdate\)/);
  });

  it('averages and publishes no metric beyond maxMetricAbs, keeps the update, and audits what it left out', async () => {
    const r = await start(manifest());
    await r.send(r.update({ nodeId: 'node-1', updateId: 'a', numExamples: 10, metrics: { loss: 2, accuracy: 0.5 } }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'b', numExamples: 30, metrics: { loss: 1e308, accuracy: Number.POSITIVE_INFINITY } }, nudge(r.base, -1)));
    await r.finish();
    const v = (await readVersions(r.t, r.m)).at(-1)!;
    expect(v.contributors.map((c) => c.updateId).sort()).toEqual(['a', 'b']);
    expect(v.metrics.train_loss).toBe(2);
    expect(v.metrics.train_accuracy).toBe(0.5);
    const accepted = (await readAudit(r.t, r.m)).filter((e) => e.action === 'UPDATE_ACCEPTED');
    expect(accepted.find((e) => e.updateId === 'b')!.details).toMatchObject({ metricsDropped: 'loss=1e+308,accuracy=Infinity', metricsLimit: '1000000000' });
    expect(accepted.find((e) => e.updateId === 'a')!.details).not.toHaveProperty('metricsDropped');
  });

  it('clamps a node above limits.maxWeightShare to that share and says so in ROUND_CLOSED', async () => {
    const r = await start(manifest({ maxWeightShare: 0.5 }));
    await r.send(r.update({ nodeId: 'node-1', updateId: 'honest', numExamples: 500 }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'big', numExamples: 10_000_000 }, zeros(r.base)));
    await r.finish();
    const v = (await readVersions(r.t, r.m)).at(-1)!;
    const weights = Object.fromEntries(v.contributors.map((c) => [c.updateId, c.weight]));
    expect(weights.big).toBeCloseTo(0.5, 12);
    expect(weights.honest).toBeCloseTo(0.5, 12);
    // Half of the honest node's weights, half zeros.
    const honest = nudge(r.base, 1)[0]!.values;
    expect(unpackTensors(v.tensors)[0]!.values[3]).toBeCloseTo(honest[3]! / 2, 6);
    const closed = (await readAudit(r.t, r.m)).find((e) => e.action === 'ROUND_CLOSED')!;
    expect(closed.details.weightCapped).toMatch(/^big:0\.9999/);
    expect(closed.details.maxWeightShare).toBe('0.5');
  });

  it('keeps at most maxDeadLetterBytesPerRound of rejected bytes for the dead-letter topic, and audits every rejection', async () => {
    const r = await start(manifest({ maxDeadLetterBytesPerRound: 100 }));
    const topics = pipelineTopics(r.m);
    for (const i of [1, 2, 3]) await r.send([{ topic: topics.updates, key: `rogue-${i}`, value: Buffer.alloc(60, i) }]);
    await r.send(r.update({ nodeId: 'node-1', updateId: 'a' }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'b' }, nudge(r.base, -1)));
    await r.finish();
    const rejected = (await readAudit(r.t, r.m)).filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected.map((e) => e.details.deadLetter ?? 'kept')).toEqual(['kept', 'omitted', 'omitted']);
    expect(rejected[1]!.details.deadLetterLimit).toBe('100');
    expect((await readAudit(r.t, r.m)).find((e) => e.action === 'ROUND_CLOSED')!.details.deadLetterOmitted).toBe('2');
    const dead: Buffer[] = [];
    await readToEnd(r.t, topics['dead-letter'], (msg) => { dead.push(msg.value!); });
    expect(dead.reduce((s, b) => s + b.length, 0)).toBe(60);
  });

  it('audits at most maxRejectionsPerRound rejections one by one and counts the rest by code in ROUND_CLOSED', async () => {
    const r = await start(manifest({ maxRejectionsPerRound: 2 }));
    const topics = pipelineTopics(r.m);
    for (const i of [1, 2, 3, 4, 5]) await r.send([{ topic: topics.updates, key: `rogue-${i}`, value: Buffer.from(`junk ${i}`) }]);
    await r.send(r.update({ nodeId: 'node-1', updateId: 'a' }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-1', updateId: 'again' }, nudge(r.base, 2)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'b' }, nudge(r.base, -1)));
    await r.finish();
    const audit = await readAudit(r.t, r.m);
    expect(audit.filter((e) => e.action === 'UPDATE_REJECTED').map((e) => e.details.sourceOffset)).toEqual(['0', '1']);
    expect(audit.find((e) => e.action === 'ROUND_CLOSED')!.details).toMatchObject({ rejected: '6', rejectionsNotItemized: 'undecodable=3,node_already_contributed=1' });
    expect((await readVersions(r.t, r.m)).at(-1)!.rejectedCount).toBe(6);
  });

  it('expires a dangling chunk set at the round\'s close, audits it, and commits past it', async () => {
    const r = await start(manifest({ maxPendingAgeMs: 1 }));
    const topics = pipelineTopics(r.m);
    const chunk = (id: string, count: string, size: string) => ({
      topic: topics.updates, key: 'node-9', value: Buffer.from('x'),
      headers: { [CHUNK_HEADERS.id]: id, [CHUNK_HEADERS.index]: '0', [CHUNK_HEADERS.count]: count, [CHUNK_HEADERS.sha256]: 'a'.repeat(64), [CHUNK_HEADERS.size]: size },
    });
    await r.send([chunk('dangling', '2', '2000'), chunk('bomb', '4294967295', '100')]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await r.send(r.update({ nodeId: 'node-1', updateId: 'a' }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'b' }, nudge(r.base, -1)));
    await r.finish();
    const rejected = (await readAudit(r.t, r.m)).filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected.map((e) => e.reason)).toEqual([expect.stringMatching(/fedstream-chunk-count is 4294967295/), expect.stringMatching(/payload dangling expired incomplete/)]);
    expect(rejected.map((e) => e.details.sourceOffset)).toEqual(['1', '0']);
    const admin = r.t.admin();
    const committed = await admin.fetchCommittedOffsets(`${r.m.tenant}.${r.m.name}.aggregator`, topics.updates);
    await admin.close();
    const admin2 = r.t.admin();
    const end = (await admin2.fetchTopicOffsets(topics.updates))[0]!.high;
    await admin2.close();
    expect(committed[0]!.offset).toBe(end);
  });

  it('holds 400 incomplete 64 KB chunk sets within maxPendingBytes and their dead-letter copies within the round\'s budget, auditing each', async () => {
    const mib = 1024 * 1024;
    const r = await start(manifest({ maxPayloadBytes: mib, maxPendingBytes: mib, maxDeadLetterBytesPerRound: mib }));
    const topics = pipelineTopics(r.m);
    const value = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 400; i += 50) {
      await r.send(Array.from({ length: 50 }, (_, k) => ({
        topic: topics.updates, key: 'node-x', value,
        headers: { [CHUNK_HEADERS.id]: `set-${i + k}`, [CHUNK_HEADERS.index]: '0', [CHUNK_HEADERS.count]: '2', [CHUNK_HEADERS.sha256]: 'a'.repeat(64), [CHUNK_HEADERS.size]: String(2 * value.length) },
      })));
    }
    await r.send(r.update({ nodeId: 'node-1', updateId: 'a' }, nudge(r.base, 1)));
    await r.send(r.update({ nodeId: 'node-2', updateId: 'b' }, nudge(r.base, -1)));
    await r.finish();
    const f = r.figures();
    expect(f.peakBufferedChunkBytes).toBeLessThanOrEqual(mib);
    expect(f.droppedPayloads).toBe(400 - Number(f.pendingPayloads));
    const rejected = (await readAudit(r.t, r.m)).filter((e) => e.action === 'UPDATE_REJECTED');
    expect(rejected).toHaveLength(Number(f.droppedPayloads));
    let dead = 0;
    await readToEnd(r.t, topics['dead-letter'], (msg) => { dead += msg.value!.length; });
    expect(dead).toBeLessThanOrEqual(mib);
    expect(rejected.filter((e) => e.details.deadLetter === 'omitted')).toHaveLength(rejected.length - dead / value.length);
  });
});
