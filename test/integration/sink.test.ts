// The sink over the in-memory transport, writing to chdb with the real schema: every table exactly
// once, the decided status of updates, dead-lettering of unreadable records, a crash between insert
// and commit, and ClickHouse down then back (through a fault-injecting connection).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchema, createAnalyticsClient, retentionVariables, runQuery, Sink, type AnalyticsClient, type SinkOptions } from '../../src/analytics/index.ts';
import { withFaults } from '../support/fault-connection.ts';
import { waitFor } from '../../src/common/retry.ts';
import { createLogger } from '../../src/common/logger.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { ensureTopics, pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import type { Transport, TransportMessage } from '../../src/transport/types.ts';
import { produceHistory, testManifest, type History } from './sink-fixtures.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let root: string;
let ch: AnalyticsClient;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-sink-'));
  ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
  await applySchema(ch, { logger, variables: retentionVariables(testManifest('t', 'p').retention) });
});

afterAll(async () => {
  await ch?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function setup(partitions = 2): Promise<{ m: Manifest; transport: Transport }> {
  const m = testManifest('acme', `s_${randomUUID().slice(0, 8)}`, { partitions });
  const transport = createMemoryTransport({ cluster: new MemoryCluster(), logger });
  const admin = transport.admin();
  await ensureTopics(admin, m);
  await admin.close();
  return { m, transport };
}

async function count(m: Manifest, table: string, where = ''): Promise<number> {
  const rs = await ch.client.query({
    query: `SELECT count() AS n FROM ${table} FINAL WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} ${where}`,
    query_params: { tenant: m.tenant, pipeline: m.name },
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string }>();
  return Number(row?.n);
}

async function expectExact(m: Manifest, h: History): Promise<void> {
  const e = h.expected;
  expect({
    telemetry: await count(m, 'telemetry_events'),
    heartbeats: await count(m, 'heartbeats'),
    rounds: await count(m, 'rounds'),
    updates: await count(m, 'updates'),
    audit: await count(m, 'audit_log'),
    rejected: await count(m, 'rejected_updates'),
    versions: await count(m, 'model_versions'),
    contributions: await count(m, 'contributions'),
  }).toEqual(e);
  expect(await count(m, 'updates', "AND status = 'accepted'")).toBe(h.accepted.length);
  expect(await count(m, 'updates', "AND status = 'rejected'")).toBe(h.rejected.length);
  const participation = await runQuery(ch, 'participation', { tenant: m.tenant, pipeline: m.name });
  expect(participation.reduce((s, r) => s + Number(r.accepted), 0)).toBe(h.accepted.length);
  expect(participation.reduce((s, r) => s + Number(r.updates_sent), 0)).toBe(e.updates);
}

function sinkOptions(m: Manifest, transport: Transport, extra: Partial<SinkOptions> = {}): SinkOptions {
  return { manifest: m, transport, analytics: ch, logger, batchRows: 100, batchMs: 50, retryInitialDelayMs: 20, retryMaxDelayMs: 200, ...extra };
}

/** Records on the topics the sink reads. */
async function recordsOn(transport: Transport, m: Manifest): Promise<number> {
  const admin = transport.admin();
  const topics = pipelineTopics(m);
  let n = 0;
  for (const t of [topics.telemetry, topics.audit, topics.control, topics.updates, topics.models]) {
    for (const o of await admin.fetchTopicOffsets(t)) n += Number(o.high) - Number(o.low);
  }
  await admin.close();
  return n;
}

async function readAll(transport: Transport, topic: string): Promise<TransportMessage[]> {
  const { readToEnd } = await import('../../src/protocol/log.ts');
  const out: TransportMessage[] = [];
  await readToEnd(transport, topic, (msg) => { out.push(msg); });
  return out;
}

describe('sink over the in-memory transport', () => {
  it('writes every table exactly once, with decided statuses, and dead-letters unreadable records', async () => {
    const { m, transport } = await setup();
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 3, rounds: 2, garbage: 2 });
    const flushes: number[] = [];
    const sink = new Sink(sinkOptions(m, transport, { onFlush: (f) => flushes.push(f.messages) }));
    await sink.start();
    await sink.untilFinished();
    await expectExact(m, h);

    const metrics = sink.metrics();
    expect(metrics.deadLettered).toBe(2);
    expect(metrics.unreadable).toBe(2);
    expect(metrics.rows.model_versions).toBe(3);
    expect(metrics.statusUpdates).toBe(h.accepted.length + h.rejected.length);
    expect(metrics.finishSeen).toBe(true);
    expect(metrics.lag).toBe(0);
    expect(flushes.length).toBe(metrics.batches);
    expect((await sink.health()).success).toBe(true);

    // Weights never reach ClickHouse, only their size and count.
    const rs = await ch.client.query({ query: 'SELECT num_params, payload_bytes FROM updates FINAL WHERE pipeline = {p:String} LIMIT 1', query_params: { p: m.name }, format: 'JSONEachRow' });
    const [u] = await rs.json<{ num_params: string; payload_bytes: string }>();
    expect(Number(u!.num_params)).toBe(420);
    expect(Number(u!.payload_bytes)).toBeGreaterThan(1680);

    const dlq = await readAll(transport, pipelineTopics(m)['dead-letter']);
    expect(dlq.map((d) => d.value?.toString())).toEqual(expect.arrayContaining(['not avro 0', 'not avro 1']));
    expect(dlq[0]!.headers['fedstream-dlq-code']?.toString()).toBe('CODEC_BAD_MAGIC');
    expect(dlq[0]!.headers['fedstream-dlq-reason']?.toString()).toMatch(/not an Avro single-object message/);
    expect(dlq[0]!.headers['fedstream-dlq-source']?.toString()).toMatch(new RegExp(`^${m.tenant}\\.${m.name}\\.telemetry/\\d+/\\d+$`));
    expect(await count(m, 'rejected_updates', "AND reason_code = 'CODEC_BAD_MAGIC' AND round IS NULL")).toBe(2);

    // Which nodes' data shaped version 2? From ClickHouse alone.
    const nodes = await runQuery(ch, 'lineage_nodes', { tenant: m.tenant, pipeline: m.name, version: 2 });
    expect(nodes.map((r) => r.node_id)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(nodes.find((r) => r.node_id === 'node-3')!.versions).toEqual(['1']);

    await sink.stop();
    expect((await sink.health()).state).toBe('stopped');
    await producer.disconnect();
    await transport.close();
  });

  it('stores nothing its writer did not sign, counts and dead-letters it, and keeps every duplicate visible', async () => {
    const { m, transport } = await setup();
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 3, rounds: 2, hostile: true });
    const sink = new Sink(sinkOptions(m, transport));
    await sink.start();
    await sink.untilFinished();
    // The forged FINISH (round 1) neither finished the sink early nor became a row: the tables hold the real history.
    await expectExact(m, h);
    expect(sink.metrics()).toMatchObject({ refused: h.refused, unreadable: 0, finishSeen: true });
    expect(await count(m, 'rounds', "AND kind = 'FINISH'")).toBe(1);
    expect(await count(m, 'model_versions', 'AND version = 99')).toBe(0);
    for (const code of ['unsigned', 'wrong_signer', 'unknown_signer']) {
      expect(await count(m, 'rejected_updates', `AND reason_code = '${code}' AND kafka_topic != '${pipelineTopics(m).updates}'`), code).toBe(1);
    }
    // The update under node-1's id, signed by node-2: not in `updates`; the aggregator's rejection is.
    expect(await count(m, 'rejected_updates', "AND reason_code = 'wrong_signer' AND node_id = 'node-1'")).toBe(1);
    // Duplicates: one rejected_updates row per copy; the reused id under another node is counted as rejected.
    expect(await count(m, 'rejected_updates', "AND reason_code = 'duplicate'")).toBe(2);
    const dupId = h.versions[1]!.contributors[0]!.updateId;
    const statuses = await (await ch.client.query({
      query: 'SELECT node_id, status FROM updates FINAL WHERE pipeline = {p:String} AND update_id = {u:String} ORDER BY node_id', query_params: { p: m.name, u: dupId }, format: 'JSONEachRow',
    })).json<{ node_id: string; status: string }>();
    expect(statuses.map((r) => r.status).sort()).toEqual(['accepted', 'rejected']);
    const dlq = await readAll(transport, pipelineTopics(m)['dead-letter']);
    // The forged version is larger than a chunk: its dead letter comes in parts, one code.
    expect([...new Set(dlq.map((d) => d.headers['fedstream-dlq-code']?.toString()))].sort()).toEqual(['unknown_signer', 'unsigned', 'wrong_signer']);
    await sink.stop();
    await producer.disconnect();
    await transport.close();
  });

  it('a crash between insert and commit loses nothing and counts nothing twice', async () => {
    const { m, transport } = await setup();
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 3, rounds: 2, extraHeartbeats: 150 });
    let flushes = 0;
    let crashedBatch = 0;
    const first = new Sink(sinkOptions(m, transport, {
      batchRows: 120,
      beforeCommit: (info) => {
        if (++flushes === 3) {
          crashedBatch = info.messages;
          throw new Error('simulated crash after the insert, before the commit');
        }
      },
    }));
    await first.start();
    await waitFor(() => first.metrics().state === 'crashed', { timeoutMs: 90_000, what: 'the first sink to crash' });
    expect(crashedBatch).toBeGreaterThan(0);
    // Two batches were committed, the third inserted but not committed.
    const committed = await transport.admin().fetchCommittedOffsets(first.groupId, pipelineTopics(m).telemetry);
    expect(committed.some((c) => Number(c.offset) > 0)).toBe(true);

    const second = new Sink(sinkOptions(m, transport, { batchRows: 120 }));
    await second.start();
    await second.untilFinished();
    await expectExact(m, h);
    // The second sink read the crashed batch again: its rows reached ClickHouse twice and were collapsed.
    const raw = await ch.client.query({ query: 'SELECT count() AS n FROM telemetry_events WHERE pipeline = {p:String}', query_params: { p: m.name }, format: 'JSONEachRow' });
    const [{ n }] = (await raw.json<{ n: string }>()) as [{ n: string }];
    expect(Number(n)).toBeGreaterThanOrEqual(h.expected.telemetry);
    expect(second.metrics().messages).toBeGreaterThanOrEqual(crashedBatch);
    expect(first.metrics().messages + second.metrics().messages).toBeGreaterThanOrEqual(await recordsOn(transport, m) + crashedBatch);
    await second.stop();
    await producer.disconnect();
    await transport.close();
  });

  it('pauses while ClickHouse is down, retries with backoff, and catches up with nothing lost', async () => {
    const { m, transport } = await setup();
    const { analytics, faults } = withFaults(ch);
    faults.fail('refused');
    const sink = new Sink(sinkOptions(m, transport, { analytics }));
    await sink.start();
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 3, rounds: 2, extraHeartbeats: 20 });

    await waitFor(() => sink.metrics().retries >= 3, { timeoutMs: 90_000, what: 'three failed attempts' });
    const down = await sink.health();
    expect(down).toMatchObject({ success: false, state: 'retrying' });
    expect(down.detail).toMatch(/ECONNREFUSED/);
    expect(down.error?.code).toBe('ANALYTICS_UNAVAILABLE');
    expect(sink.metrics().paused).toBe(true);
    expect(sink.metrics().batches).toBe(0);
    // Nothing committed while nothing could be written.
    const committed = await transport.admin().fetchCommittedOffsets(sink.groupId, pipelineTopics(m).telemetry);
    expect(committed.every((c) => c.offset === '-1')).toBe(true);
    expect(await count(m, 'telemetry_events')).toBe(0);

    faults.heal();
    await sink.untilFinished();
    await expectExact(m, h);
    expect((await sink.health()).success).toBe(true);
    expect(sink.metrics().paused).toBe(false);
    await sink.stop();
    await producer.disconnect();
    await transport.close();
  });

  it('keeps up with a slow ClickHouse by pausing on a full buffer', async () => {
    const { m, transport } = await setup(1);
    const { analytics, faults } = withFaults(ch);
    faults.slow(150);
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 2, rounds: 1, extraHeartbeats: 100 });
    const sink = new Sink(sinkOptions(m, transport, { analytics, batchRows: 40 }));
    await sink.start();
    await sink.untilFinished();
    faults.slow(0);
    await expectExact(m, h);
    expect(sink.metrics().batches).toBeGreaterThan(3);
    await sink.stop();
    await producer.disconnect();
    await transport.close();
  });

  it('isolates a row ClickHouse refuses, dead-letters its record, and writes the rest', async () => {
    const { m, transport } = await setup();
    // A client whose inserts fail like ClickHouse refusing bad input whenever the poisoned node's row is in them.
    const refuse = Object.assign(new Error('Cannot parse input: expected \'"\' before: node-poison (CANNOT_PARSE_INPUT_ASSERTION_FAILED)'), { code: '27', type: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED' });
    const client = new Proxy(ch.client, {
      get(target, prop, receiver) {
        if (prop === 'insert') {
          return async (params: { values: Array<Record<string, unknown>> }) => {
            if (params.values.some((v) => v.node_id === 'node-poison')) throw refuse;
            return target.insert(params as unknown as Parameters<typeof target.insert>[0]);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const analytics: AnalyticsClient = { ...ch, client };
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 2, rounds: 1, extraHeartbeats: 30 });
    await producer.send(toRecords(pipelineTopics(m).telemetry, 'TelemetryEvent', {
      tenant: m.tenant, pipeline: m.name, nodeId: 'node-poison', kind: 'HEARTBEAT', round: null, eventTime: Date.now(), metrics: {}, labels: {}, message: null,
    }, 'node-poison', m.topics.chunkSizeBytes));
    const sink = new Sink(sinkOptions(m, transport, { analytics, batchRows: 1000 }));
    await sink.start();
    await sink.untilFinished();
    await expectExact(m, h);
    expect(sink.metrics()).toMatchObject({ unreadable: 1, deadLettered: 1 });
    const dlq = await readAll(transport, pipelineTopics(m)['dead-letter']);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.headers['fedstream-dlq-code']?.toString()).toBe('ANALYTICS_QUERY');
    expect(dlq[0]!.key?.toString()).toBe('node-poison');
    await sink.stop();
    await producer.disconnect();
    await transport.close();
  });

  it('stop() flushes what is buffered and commits it', async () => {
    const { m, transport } = await setup();
    const producer = transport.producer();
    await producer.connect();
    const h = await produceHistory(producer, m, { nodes: 2, rounds: 1 });
    // A batch this large and this slow is only ever cut by stop().
    const sink = new Sink(sinkOptions(m, transport, { batchRows: 1_000_000, batchMs: 3_600_000 }));
    await sink.start();
    const total = await recordsOn(transport, m);
    await waitFor(() => sink.metrics().messages >= total, { timeoutMs: 90_000, what: 'everything buffered' });
    expect(sink.metrics().batches).toBe(0);
    await sink.stop();
    await expectExact(m, h);
    const committed = await transport.admin().fetchCommittedOffsets(sink.groupId, pipelineTopics(m).control);
    expect(Number(committed[0]!.offset)).toBeGreaterThan(0);
    await producer.disconnect();
    await transport.close();
  });
});
