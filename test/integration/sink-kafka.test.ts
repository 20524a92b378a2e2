// The sink over the real Kafka broker (started by the integration global setup) into chdb: a known
// pipeline history produced with toRecords, read by the sink's consumer group, every table exactly
// once; then a crash between insert and commit and a second sink that finishes the job.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchema, createAnalyticsClient, runQuery, Sink, type AnalyticsClient } from '../../src/analytics/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { waitFor } from '../../src/common/retry.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { pipelineTopics, topicSpecs } from '../../src/protocol/topics.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import type { Transport } from '../../src/transport/types.ts';
import { connectedProducer, deferCleanup, kafkaBrokers } from './helpers.ts';
import { produceHistory, signerOf, testManifest, weightsFor, type History } from './sink-fixtures.ts';
import { auditEvent, auditOut, controlOut, controlRecord, versionOut, versionRecord, type RecordScope } from '../../src/aggregator/records.ts';
import { toRecords } from '../../src/protocol/wire.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let root: string;
let ch: AnalyticsClient;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-sink-kafka-'));
  ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
  await applySchema(ch, { logger });
});

afterAll(async () => {
  await ch?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function kafkaPipeline(): Promise<{ m: Manifest; transport: Transport }> {
  const m = testManifest('acme', `k_${randomUUID().slice(0, 8)}`, { partitions: 2 });
  const transport = createKafkaTransport({ brokers: kafkaBrokers().split(','), clientId: 'fedstream-sink-test', logger, maxWaitTimeMs: 200 });
  deferCleanup(() => transport.close());
  const admin = transport.admin();
  deferCleanup(async () => {
    await admin.deleteTopics(topicSpecs(m).map((s) => s.topic)).catch(() => undefined);
    await admin.close();
  });
  await admin.createTopics(topicSpecs(m));
  return { m, transport };
}

async function counts(m: Manifest): Promise<History['expected']> {
  const n = async (table: string): Promise<number> => {
    const rs = await ch.client.query({
      query: `SELECT count() AS n FROM ${table} FINAL WHERE tenant = {t:String} AND pipeline = {p:String}`,
      query_params: { t: m.tenant, p: m.name },
      format: 'JSONEachRow',
    });
    return Number((await rs.json<{ n: string }>())[0]?.n);
  };
  return {
    telemetry: await n('telemetry_events'), heartbeats: await n('heartbeats'), rounds: await n('rounds'), updates: await n('updates'),
    audit: await n('audit_log'), rejected: await n('rejected_updates'), versions: await n('model_versions'), contributions: await n('contributions'),
  };
}

describe('sink over Kafka', () => {
  it('writes a produced history exactly once, survives a crash before commit, and answers the lineage', async () => {
    const { m, transport } = await kafkaPipeline();
    const producer = await connectedProducer(transport, { idempotent: true });
    const h = await produceHistory(producer, m, { nodes: 3, rounds: 2, extraHeartbeats: 60, garbage: 1 });

    let flushes = 0;
    const first = new Sink({
      manifest: m, transport, analytics: ch, logger, batchRows: 80, batchMs: 100,
      beforeCommit: () => {
        if (++flushes === 2) throw new Error('simulated crash after the insert, before the commit');
      },
    });
    deferCleanup(() => first.kill());
    await first.start();
    await waitFor(() => first.metrics().state === 'crashed', { timeoutMs: 60_000, what: 'the first sink to crash' });

    const second = new Sink({ manifest: m, transport, analytics: ch, logger, batchRows: 80, batchMs: 100 });
    deferCleanup(() => second.stop());
    await second.start();
    await second.untilFinished();

    expect(await counts(m)).toEqual(h.expected);
    const statuses = await runQuery(ch, 'participation_matrix', { tenant: m.tenant, pipeline: m.name });
    expect(statuses.filter((r) => r.status === 'accepted').length).toBe(h.accepted.length);
    expect(statuses.filter((r) => r.status === 'rejected').length).toBe(h.rejected.length);
    const nodes = await runQuery(ch, 'lineage_nodes', { tenant: m.tenant, pipeline: m.name, version: 2 });
    expect(nodes.map((r) => r.node_id)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(second.metrics().deadLettered + first.metrics().deadLettered).toBeGreaterThanOrEqual(1);

    // Everything the sink read is committed: the group has no lag left on any topic.
    const admin = transport.admin();
    deferCleanup(() => admin.close());
    for (const topic of [pipelineTopics(m).telemetry, pipelineTopics(m).updates]) {
      const ends = await admin.fetchTopicOffsets(topic);
      const committed = await admin.fetchCommittedOffsets(second.groupId, topic);
      for (const e of ends) expect(committed.find((c) => c.partition === e.partition)?.offset).toBe(e.high);
    }
    await second.stop();
    expect((await second.health()).state).toBe('stopped');
  });

  it('records of every kind larger than one chunk, from the aggregator\'s and the node\'s writers, reach ClickHouse whole (issue 13, kind 4)', async () => {
    const { m, transport } = await kafkaPipeline();
    const topics = pipelineTopics(m);
    expect(m.topics.chunkSizeBytes).toBe(1024);
    const scope: RecordScope = { manifest: m, topics, signer: signerOf(m, 'aggregator') };
    const many = Array.from({ length: 200 }, (_, i) => `node-${String(i).padStart(30, '0')}`);
    const control = (kind: 'START' | 'FINISH') => controlOut(scope, controlRecord(m, { kind, round: 1, baseVersion: 0, deadline: Date.now() + 60_000, selectedNodes: many, config: {} }, Date.now()));
    const details = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'd'.repeat(100)]));
    const records = [
      ...versionOut(scope, versionRecord(m, { version: 0, parent: -1, round: 0, strategy: 'initial', weights: weightsFor(0), contributors: [], metrics: {}, rejected: 0 }, Date.now())),
      ...auditOut(scope, auditEvent(m, 'ROUND_STARTED', { round: 1, version: 0, details }, Date.now(), randomUUID())),
      ...control('START'),
      // The node's telemetry writer (node/runtime.ts sendTelemetry) is toRecords with the manifest's chunk size and limit.
      ...toRecords(topics.telemetry, 'TelemetryEvent', {
        tenant: m.tenant, pipeline: m.name, nodeId: 'node-1', kind: 'ERROR', round: 1, eventTime: Date.now(), metrics: {}, labels: { key: 'l'.repeat(3000) }, message: 'm'.repeat(2000),
      }, 'node-1', m.topics.chunkSizeBytes, {}, undefined, m.limits.maxPayloadBytes),
      ...control('FINISH'),
    ];
    for (const topic of [topics.models, topics.audit, topics.control, topics.telemetry]) expect(records.filter((r) => r.topic === topic).length, topic).toBeGreaterThan(1);
    const producer = await connectedProducer(transport, { idempotent: true });
    await producer.send(records);

    const sink = new Sink({ manifest: m, transport, analytics: ch, logger, batchRows: 80, batchMs: 100 });
    deferCleanup(() => sink.stop());
    await sink.start();
    await sink.untilFinished();
    expect(sink.metrics().deadLettered).toBe(0);
    expect(await counts(m)).toMatchObject({ rounds: 2, audit: 1, versions: 1, telemetry: 1 });
    const rs = await ch.client.query({
      query: 'SELECT length(mapKeys(details)) AS n FROM audit_log FINAL WHERE tenant = {t:String} AND pipeline = {p:String}',
      query_params: { t: m.tenant, p: m.name }, format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: string }>())[0]?.n)).toBe(60);
    await sink.stop();
  });
});
