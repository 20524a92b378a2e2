/**
 * One aggregator per pipeline: how fencing is recognised and reported (error mapping, exit codes), and the start-time
 * check for a live holder of the pipeline's consumer group, on the in-memory transport.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { FedStreamError } from '../../src/common/errors.ts';
import { waitFor } from '../../src/common/retry.ts';
import { createLogger } from '../../src/common/logger.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { awaitNoLiveHolder, describeMembers, fencedError, isFenced } from '../../src/aggregator/ownership.ts';
import { parseManifest, topicPrefix, type Manifest } from '../../src/config/index.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { readAudit, readVersions } from '../support/pipeline-log.ts';
import { EXIT, exitCodeFor } from '../../src/service/runner.ts';
import { fromKafkaJsError } from '../../src/transport/kafka/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { deferCleanup, uniqueName } from '../integration/helpers.ts';

const { KafkaJSProtocolError, KafkaJSNumberOfRetriesExceeded } = kafkajs as unknown as Record<string, new (...args: unknown[]) => Error>;
const protocolError = (type: string, code: number, message = type): Error => new KafkaJSProtocolError!({ message, type, code, retriable: false });

describe('fencing errors from kafkajs', () => {
  it('maps INVALID_PRODUCER_EPOCH and PRODUCER_FENCED to TRANSPORT_FENCED, never retriable, in or out of a transaction', () => {
    for (const inTransaction of [false, true]) {
      const e = fromKafkaJsError(protocolError('INVALID_PRODUCER_EPOCH', 47), 'producer p.aggregator: commit', inTransaction);
      expect(e).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false, details: { kafkaType: 'INVALID_PRODUCER_EPOCH' } });
      expect(e.message).toContain('another instance of this service');
    }
    expect(fromKafkaJsError(protocolError('PRODUCER_FENCED', 90), 'send', true)).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false });
  });

  it('recognises code 90, which kafkajs 2.2.4 does not know by name, and fencing wrapped in a retries-exhausted error', () => {
    const unknown = protocolError('KAFKAJS_UNKNOWN_ERROR_CODE', -99, 'Unknown error code 90');
    expect(fromKafkaJsError(unknown, 'commit', true).code).toBe('TRANSPORT_FENCED');
    expect(fromKafkaJsError(protocolError('KAFKAJS_UNKNOWN_ERROR_CODE', -99, 'Unknown error code 9'), 'commit', true).code).toBe('TRANSPORT_TRANSACTION');
    const wrapped = new KafkaJSNumberOfRetriesExceeded!(protocolError('INVALID_PRODUCER_EPOCH', 47), { retryCount: 5, retryTime: 1000 });
    expect(fromKafkaJsError(wrapped, 'commit')).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false });
  });

  it('keeps an ACL refusal of the transactional id and other transaction errors apart from fencing', () => {
    const authz = fromKafkaJsError(protocolError('TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 53), 'init transactions', true);
    expect(authz.code).toBe('TRANSPORT_AUTHORIZATION');
    expect(fromKafkaJsError(protocolError('CONCURRENT_TRANSACTIONS', 51), 'commit').code).toBe('TRANSPORT_TRANSACTION');
    expect(fromKafkaJsError(protocolError('INVALID_TXN_STATE', 48), 'commit').code).toBe('TRANSPORT_TRANSACTION');
  });

  it('gives fencing and a held pipeline exit codes of their own', () => {
    expect(exitCodeFor(new FedStreamError('TRANSPORT_FENCED', 'x'))).toBe(EXIT.fenced);
    expect(exitCodeFor(new FedStreamError('PIPELINE_HELD', 'x'))).toBe(EXIT.held);
    expect(new Set(Object.values(EXIT)).size).toBe(Object.keys(EXIT).length);
    expect([EXIT.fenced, EXIT.held]).toEqual([3, 4]);
    expect(exitCodeFor(new FedStreamError('TRANSPORT_TRANSACTION', 'x'))).toBe(EXIT.failure);
    expect(exitCodeFor(new FedStreamError('CONFIG_INVALID', 'x'))).toBe(EXIT.config);
  });

  it('words the aggregator\'s error with the pipeline, its transactional id and the takeover; other errors are not fencing', () => {
    const cause = fromKafkaJsError(protocolError('INVALID_PRODUCER_EPOCH', 47), 'producer it.p.aggregator: commit', true);
    const e = fencedError(cause, { pipeline: 'it.p', transactionalId: 'it.p.aggregator', groupId: 'it.p.aggregator' })!;
    expect(e).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false, cause, details: { pipeline: 'it.p', transactionalId: 'it.p.aggregator', kafkaType: 'INVALID_PRODUCER_EPOCH' } });
    expect(e.message).toMatch(/pipeline it\.p was fenced: another aggregator instance took over transactional id it\.p\.aggregator/);
    expect(fencedError(new FedStreamError('TRANSPORT_TRANSACTION', 'x'), { pipeline: 'a', transactionalId: 'b', groupId: 'c' })).toBeUndefined();
    expect(fencedError(e, { pipeline: 'it.p', transactionalId: 'it.p.aggregator', groupId: 'it.p.aggregator' })).toBe(e);
    expect(isFenced(new Error('INVALID_PRODUCER_EPOCH'))).toBe(false);
  });
});

describe('a live holder of the pipeline at start (memory transport)', () => {
  const log = createLogger('silent');

  async function member(cluster: MemoryCluster, groupId: string, topic: string): Promise<{ leave: () => Promise<void> }> {
    const t = createMemoryTransport({ cluster, logger: log });
    deferCleanup(() => t.close());
    const admin = t.admin();
    await admin.createTopics([{ topic }]);
    const c = t.consumer({ groupId });
    await c.connect();
    await c.subscribe([topic]);
    await c.run({ eachBatch: async () => undefined });
    return { leave: () => c.disconnect() };
  }

  it('returns at once when the group has no member', async () => {
    const t = createMemoryTransport({ logger: log });
    const admin = t.admin();
    const t0 = Date.now();
    await awaitNoLiveHolder({ admin, groupId: uniqueName('g'), pipeline: 'it.p', takeOver: false, log, sessionTimeoutMs: 5_000 });
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect((await admin.describeGroup(uniqueName('never'))).state).toBe('Dead');
  });

  it('refuses with PIPELINE_HELD, naming the holder, when a member stays past the session timeout', async () => {
    const cluster = new MemoryCluster();
    const groupId = uniqueName('g');
    await member(cluster, groupId, uniqueName('updates'));
    const admin = createMemoryTransport({ cluster, logger: log }).admin();
    const group = await admin.describeGroup(groupId);
    expect(group).toMatchObject({ state: 'Stable', members: [{ clientId: 'memory', clientHost: 'in-process' }] });
    const err = await awaitNoLiveHolder({ admin, groupId, pipeline: 'it.p', takeOver: false, log, sessionTimeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PIPELINE_HELD', retriable: false, details: { pipeline: 'it.p', groupId } });
    expect((err as Error).message).toContain(`another aggregator (${describeMembers(group.members)}) holds pipeline it.p`);
    expect((err as Error).message).toContain('--take-over');
  });

  it('with takeOver, goes ahead at once; without, goes ahead once the holder is gone within the wait', async () => {
    const cluster = new MemoryCluster();
    const groupId = uniqueName('g');
    const holder = await member(cluster, groupId, uniqueName('updates'));
    const admin = createMemoryTransport({ cluster, logger: log }).admin();
    await awaitNoLiveHolder({ admin, groupId, pipeline: 'it.p', takeOver: true, log, sessionTimeoutMs: 60_000 });
    setTimeout(() => void holder.leave(), 300);
    const t0 = Date.now();
    await awaitNoLiveHolder({ admin, groupId, pipeline: 'it.p', takeOver: false, log, sessionTimeoutMs: 60_000 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await admin.describeGroup(groupId)).members).toEqual([]);
  });
});

describe('a fenced aggregator (memory transport)', () => {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

  function manifest(strategy?: { name: string }): Manifest {
    return parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'test', name: uniqueName('fence').toLowerCase(),
      model: { inputShape: [4], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, testExamples: 100, trainExamples: 200 },
      rounds: { count: 2, targetUpdates: 1, minUpdates: 1, timeoutMs: 60_000 },
      // Fencing does not depend on signatures: unsigned test updates, open enrolment.
      participants: { enrolment: 'open' },
      ...(strategy ? { strategy } : {}),
    });
  }

  async function sendUpdate(cluster: MemoryCluster, m: Manifest, updateId: string, round: number): Promise<void> {
    const t = createMemoryTransport({ cluster, logger: log });
    const base = (await readVersions(t, m)).at(-1)!;
    const p = t.producer();
    await p.connect();
    await p.send(toRecords(pipelineTopics(m).updates, 'ModelUpdate', {
      updateId, tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', round, baseVersion: base.version,
      numExamples: 10, tensors: base.tensors, metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
    }, 'node-1', m.topics.chunkSizeBytes));
    await t.close();
  }

  // fedmedian: a robust strategy, whose round close awaits its aggregation's settle; that await shifted the close's
  // transaction so that the test's read of the models topic noted its end while the transaction was open.
  it.each([['fedavg', undefined], ['fedmedian', { name: 'fedmedian' }]] as const)('%s: stops at the rebalance a takeover causes, leaves the group, and the new one finishes; every update counted once', async (_name, strategy) => {
    const m = manifest(strategy);
    const cluster = new MemoryCluster();
    const groupId = `${topicPrefix(m)}.aggregator`;
    const old = await createAggregator({ manifest: m, transport: createMemoryTransport({ cluster, logger: log }), logger: log, evaluate: false });
    deferCleanup(() => old.stop());
    await old.start();
    const fresh = await createAggregator({ manifest: m, transport: createMemoryTransport({ cluster, logger: log }), logger: log, evaluate: false, takeOver: true });
    deferCleanup(() => fresh.stop());
    await fresh.start();
    const err = await old.done.then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_FENCED', details: { pipeline: topicPrefix(m), transactionalId: groupId } });
    expect(old.health()).toMatchObject({ healthy: false, state: 'failed' });
    const admin = createMemoryTransport({ cluster, logger: log }).admin();
    await waitFor(async () => (await admin.describeGroup(groupId)).members.length === 1, { timeoutMs: 2_000, what: 'the fenced aggregator to leave' });

    await sendUpdate(cluster, m, 'u1', 1);
    await waitFor(async () => (await readVersions(createMemoryTransport({ cluster, logger: log }), m)).length === 2, { timeoutMs: 5_000, what: 'version 1' });
    await sendUpdate(cluster, m, 'u2', 2);
    expect(await fresh.done).toMatchObject({ finalVersion: 2 });
    const t = createMemoryTransport({ cluster, logger: log });
    expect((await readVersions(t, m)).map((v) => v.contributors.map((c) => c.updateId))).toEqual([[], ['u1'], ['u2']]);
    expect((await readAudit(t, m)).filter((e) => e.action === 'UPDATE_ACCEPTED').map((e) => e.updateId)).toEqual(['u1', 'u2']);
  });

  it('fenced when it publishes: fails once with TRANSPORT_FENCED, no retry, nothing published, the group left', async () => {
    const m = manifest();
    const cluster = new MemoryCluster();
    const groupId = `${topicPrefix(m)}.aggregator`;
    const old = await createAggregator({ manifest: m, transport: createMemoryTransport({ cluster, logger: log }), logger: log, evaluate: false });
    deferCleanup(() => old.stop());
    await old.start();
    // A newer producer with the aggregator's transactional id, not (yet) in the group: no rebalance tells the old one.
    const usurper = createMemoryTransport({ cluster, logger: log }).producer({ transactionalId: groupId });
    await usurper.connect();
    expect(old.health()).toMatchObject({ state: 'running' });
    await sendUpdate(cluster, m, 'u1', 1);
    const err = await old.done.then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false });
    expect((err as Error).message).toContain(`another aggregator instance took over transactional id ${groupId}`);
    const admin = createMemoryTransport({ cluster, logger: log }).admin();
    await waitFor(async () => (await admin.describeGroup(groupId)).members.length === 0, { timeoutMs: 2_000, what: 'the fenced aggregator to leave' });
    const t = createMemoryTransport({ cluster, logger: log });
    expect((await readVersions(t, m)).map((v) => v.version)).toEqual([0]);
    expect((await readAudit(t, m)).filter((e) => e.action === 'UPDATE_ACCEPTED')).toEqual([]);
  });
});
