/**
 * Issue 13, kind 4: every record kind a component writes, larger than one chunk, is written whole by its real writer
 * and read back by each of its real readers (in-memory transport). Control and audit records used to be written as
 * their first chunk only (aggregator/records.ts took `toRecords(...)[0]`), and the readers of the control topic
 * decoded `msg.value` directly: a RoundControl with a long selectedNodes list never reached anyone.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RoundControlRecord } from '../../src/codec/index.ts';
import type { Weights } from '../../src/codec/types.ts';
import { CHUNK_HEADERS } from '../../src/codec/chunk-headers.ts';
import { createLogger } from '../../src/common/logger.ts';
import type { FedStreamError } from '../../src/common/errors.ts';
import { checkRecordSizes, loadPipeline } from '../../src/service/wiring.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { FedNode, type LocalTrainer } from '../../src/node/index.ts';
import { AUDIT_TEXT_CLIP, auditEvent, auditOut, controlOut, controlRecord, rejectionOut, versionOut, versionRecord, type RecordScope } from '../../src/aggregator/records.ts';
import { readPipelineLog, recoveryPlan } from '../../src/aggregator/recovery.ts';
import { finishOnTopic } from '../../src/analytics/sink/finish.ts';
import { PendingBatch } from '../../src/analytics/sink/batch.ts';
import { Intake } from '../../src/analytics/sink/intake.ts';
import { decode, ensureTopics, ephemeralParticipants, pipelineTopics, readToEnd, toRecords } from '../../src/protocol/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/index.ts';
import type { ProducerRecord, Transport, TransportMessage } from '../../src/transport/types.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const CHUNK = 1024;

const team = ephemeralParticipants(parseManifest({
  apiVersion: 'fedstream/v1', tenant: 'big', name: 'records',
  model: { inputShape: [64], seed: 1, layers: [{ type: 'dense', units: 8 }] },
  data: { source: 'mnist', nodes: 1 },
  rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
  topics: { chunkSizeBytes: CHUNK },
}), ['node-1']);
const m: Manifest = team.manifest;
const topics = pipelineTopics(m);
const scope: RecordScope = { manifest: m, topics, signer: team.signerFor('aggregator') };
const W0: Weights = [
  { name: 'l0_dense/kernel', shape: [64, 8], values: Float32Array.from({ length: 512 }, (_, i) => (i % 17) / 100) },
  { name: 'l0_dense/bias', shape: [8], values: new Float32Array(8) },
];
/** 300 node ids of 30 characters: a RoundControl of about 9 KB, nine chunks of 1 KiB. */
const manyNodes = ['node-1', ...Array.from({ length: 300 }, (_, i) => `node-${String(i).padStart(25, '0')}`)];
const bigDetails = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'x'.repeat(100)]));

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function cluster(): Promise<{ cluster: MemoryCluster; t: Transport; send: (r: ProducerRecord[]) => Promise<void> }> {
  const c = new MemoryCluster();
  const t = createMemoryTransport({ cluster: c, logger });
  const admin = t.admin();
  await ensureTopics(admin, m);
  await admin.close();
  const p = t.producer();
  await p.connect();
  cleanup.push(async () => { await p.disconnect(); await t.close(); });
  return { cluster: c, t, send: async (r) => { await p.send(r); } };
}

const chunked = (records: ProducerRecord[]) => records.length > 1 && records.every((r) => r.headers?.[CHUNK_HEADERS.id] !== undefined);

function control(kind: RoundControlRecord['kind'], round: number, config: Record<string, string> = {}): RoundControlRecord {
  return controlRecord(m, { kind, round, baseVersion: 0, deadline: Date.now() + 60_000, selectedNodes: manyNodes, config }, Date.now());
}

async function everything(t: Transport): Promise<TransportMessage[]> {
  const out: TransportMessage[] = [];
  for (const topic of [topics.control, topics.audit, topics.models, topics.updates, topics.telemetry]) await readToEnd(t, topic, (msg) => { out.push(msg); });
  return out;
}

function intake(): { intake: Intake; unreadable: () => number; refused: () => number } {
  let unreadable = 0;
  let refused = 0;
  const i = new Intake({
    scope: { tenant: m.tenant, pipeline: m.name }, topics, limits: m.limits, chunkSizeBytes: CHUNK, deadLetterUpdates: true, log: logger,
    onUnreadable: () => { unreadable++; }, registry: team.registry, onRefused: () => { refused++; },
  });
  return { intake: i, unreadable: () => unreadable, refused: () => refused };
}

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('records larger than one chunk (issue 13, kind 4)', () => {
  it('the aggregator\'s writers chunk control, audit, version and rejection records whole (none is cut to its first chunk)', () => {
    expect(chunked(controlOut(scope, control('START', 1)))).toBe(true);
    const audit = auditEvent(m, 'ROUND_STARTED', { round: 1, details: bigDetails }, Date.now(), '00000000-0000-4000-8000-000000000001');
    expect(chunked(auditOut(scope, audit))).toBe(true);
    const v = versionRecord(m, { version: 0, parent: -1, round: 0, strategy: 'initial', weights: W0, contributors: [], metrics: {}, rejected: 0 }, Date.now());
    expect(chunked(versionOut(scope, v))).toBe(true);
    // A rejection with a long reason: its audit event is chunked, then its dead letter follows in parts.
    const msg: TransportMessage = { topic: topics.updates, partition: 0, offset: '7', key: Buffer.from('node-1'), value: Buffer.alloc(3000, 1), headers: {}, timestamp: 0 };
    const out = rejectionOut(scope, 1, { code: 'undecodable', reason: 'y'.repeat(3000), nodeId: 'node-1', updateId: null, round: null }, msg.value!, msg, Date.now(), '00000000-0000-4000-8000-000000000002');
    expect(out.filter((r) => r.topic === topics.audit).length).toBeGreaterThan(1);
    expect(out.filter((r) => r.topic === topics['dead-letter']).length).toBe(3);
  });

  it('a control record of nine chunks reaches the node (which trains), recovery and the sink\'s finish scan; big audit, version, update and telemetry records reach the sink', async () => {
    const { cluster: c, t, send } = await cluster();
    const v0 = versionRecord(m, { version: 0, parent: -1, round: 0, strategy: 'initial', weights: W0, contributors: [], metrics: {}, rejected: 0 }, Date.now());
    await send(versionOut(scope, v0));
    const startRecords = controlOut(scope, control('START', 1));
    expect(startRecords.length).toBeGreaterThanOrEqual(9);
    await send([...auditOut(scope, auditEvent(m, 'ROUND_STARTED', { round: 1, version: 0, details: bigDetails }, Date.now(), '00000000-0000-4000-8000-000000000003')), ...startRecords]);

    // The node: reassembles the START, finds itself among 301 selected nodes, trains, and publishes a chunked update.
    const updates: number[] = [];
    const trainer: LocalTrainer = { train: async (input) => ({ weights: input.weights, numExamples: 5, metrics: { loss: 1 }, trainingMs: 1, backend: 'test' }) };
    const node = new FedNode({ manifest: m, transport: createMemoryTransport({ cluster: c, logger }), nodeId: 'node-1', signer: team.signerFor('node-1'), trainer, logger, heartbeatMs: 60_000, onUpdate: (u) => updates.push(u.round) });
    cleanup.push(() => node.stop());
    await node.start();
    await until('the node trained round 1 from a 9-chunk START', () => updates.includes(1));
    // The node's telemetry writer: an ERROR event naming a 2,000-character config key is larger than one chunk.
    const longKey = `k${'z'.repeat(2000)}`;
    await send(controlOut(scope, control('START', 2, { [longKey]: '1' })));
    await until('the node refused round 2', () => node.health().figures?.roundsRefused === 1);
    await node.stop();

    // Recovery: the last control record is the 9-chunk START of round 2, whole and verified.
    const log = await readPipelineLog(t, m, topics, logger, team.registry);
    expect(log.refused).toEqual([]);
    expect(log.control?.round).toBe(2);
    expect(log.control?.selectedNodes).toEqual(manyNodes);
    expect(recoveryPlan(log)).toMatchObject({ type: 'resume' });

    // The sink's finish scan: a FINISH of many chunks counts.
    expect(await finishOnTopic(t, topics.control, 'scan-1', logger, team.registry, m.limits)).toBe(false);
    await send(controlOut(scope, control('FINISH', 2)));
    expect(await finishOnTopic(t, topics.control, 'scan-2', logger, team.registry, m.limits)).toBe(true);
    expect(recoveryPlan(await readPipelineLog(t, m, topics, logger, team.registry))).toEqual({ type: 'finished', round: 2 });

    // The sink's intake, fed every message of every topic: one row per record, nothing unreadable or refused.
    const msgs = await everything(t);
    const chunkedTopics = new Set(msgs.filter((x) => x.headers[CHUNK_HEADERS.id] !== undefined).map((x) => x.topic));
    expect([...chunkedTopics].sort()).toEqual([topics.audit, topics.control, topics.models, topics.telemetry, topics.updates].sort());
    const s = intake();
    const b = new PendingBatch();
    for (const x of msgs) s.intake.accept(x, b);
    expect(s.unreadable()).toBe(0);
    expect(s.refused()).toBe(0);
    expect(b.deadLetters).toEqual([]);
    expect(b.rows.get('rounds')?.map((e) => e.row.kind)).toEqual(['START', 'START', 'FINISH']);
    expect(b.rows.get('audit_log')).toHaveLength(1);
    expect(b.rows.get('model_versions')).toHaveLength(1);
    expect(b.rows.get('updates')).toHaveLength(1);
    expect(b.rows.get('telemetry_events')?.some((e) => String(e.row.message).includes(longKey))).toBe(true);
    expect(b.finish).toBe(true);
  });
});

describe('records no reader could take (above limits.maxPayloadBytes)', () => {
  const thrown = (fn: () => unknown): FedStreamError => {
    try {
      fn();
    } catch (err) {
      return err as FedStreamError;
    }
    throw new Error('expected an error');
  };
  const small = { ...m, limits: { ...m.limits, maxPayloadBytes: 4096, maxPendingBytes: 4096 } };
  const smallScope: RecordScope = { ...scope, manifest: small };

  it('a writer refuses the record before writing anything: RECORD_TOO_LARGE names the kind, its size and the limit', () => {
    const err = thrown(() => controlOut(smallScope, control('START', 1)));
    expect(err.code).toBe('RECORD_TOO_LARGE');
    expect(err.message).toMatch(/^RoundControl for big\.records\.control encodes to \d+ bytes, above limits\.maxPayloadBytes \(4096\)/);
    expect(err.details).toMatchObject({ kind: 'RoundControl', limit: 4096 });
    expect(Number(err.details.size)).toBeGreaterThan(4096);
    const telemetry = { tenant: 'big', pipeline: 'records', nodeId: 'node-1', kind: 'ERROR' as const, round: 1, eventTime: 0, metrics: {}, labels: { key: 'q'.repeat(5000) }, message: null };
    expect(thrown(() => toRecords(topics.telemetry, 'TelemetryEvent', telemetry, 'node-1', CHUNK, {}, undefined, 4096)).details).toMatchObject({ kind: 'TelemetryEvent', limit: 4096 });
    // At the limit it is written, chunked.
    expect(toRecords(topics.telemetry, 'TelemetryEvent', telemetry, 'node-1', CHUNK, {}, undefined, 1_000_000).length).toBe(5);
  });

  it('an audit event above the limit is not lost: its reason and detail values are clipped, and it says so', () => {
    const e = auditEvent(small, 'UPDATE_REJECTED', { round: 1, nodeId: 'node-1', reason: 'r'.repeat(AUDIT_TEXT_CLIP * 3), details: { code: 'undecodable', echo: 'e'.repeat(AUDIT_TEXT_CLIP * 3) } }, Date.now(), '00000000-0000-4000-8000-000000000009');
    const records = auditOut({ ...smallScope, manifest: { ...small, limits: { ...small.limits, maxPayloadBytes: 3 * AUDIT_TEXT_CLIP, maxPendingBytes: 3 * AUDIT_TEXT_CLIP } } }, e);
    expect(records.length).toBeGreaterThan(1);
    const s = intake();
    const b = new PendingBatch();
    records.forEach((r, i) => s.intake.accept({ topic: r.topic, partition: 0, offset: String(i), key: Buffer.from(String(r.key)), value: r.value as Buffer, headers: Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k, Buffer.from(String(v))])), timestamp: 0 }, b));
    const payload = Buffer.concat(records.map((r) => r.value as Buffer));
    const back = decode('AuditEvent', payload);
    expect(back.reason).toHaveLength(AUDIT_TEXT_CLIP + 1);
    expect(back.details.code).toBe('undecodable');
    expect(back.details.clipped).toMatch(/^from \d+ bytes \(limits\.maxPayloadBytes 12288\)$/);
    expect(b.rows.get('audit_log')).toHaveLength(1);
  });

  it('a manifest whose model makes versions and updates larger than limits.maxPayloadBytes is refused when it is loaded, naming the limit', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'big-records-'));
    const file = path.join(dir, 'p.yaml');
    // 784 × 100 + 100 parameters: 314,000 bytes of float32 weights, above a 256 KiB limit.
    writeFileSync(file, [
      'apiVersion: fedstream/v1', 'tenant: big', 'name: model', 'model: { inputShape: [784], layers: [{ type: dense, units: 100 }] }',
      'data: { source: mnist }', 'rounds: { count: 1, targetUpdates: 1, minUpdates: 1 }', 'limits: { maxPayloadBytes: 262144, maxPendingBytes: 262144 }', '',
    ].join('\n'));
    const err = thrown(() => loadPipeline(file, {}, { logger, env: {} }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('limits.maxPayloadBytes: the model has 78500 parameters, so each ModelVersion and ModelUpdate carries at least 314000 bytes');
    expect(err.details).toMatchObject({ path: 'limits.maxPayloadBytes', parameters: 78500, bytes: 314000, limit: 262144 });
    // With room for them it loads.
    expect(checkRecordSizes({ ...m, limits: { ...m.limits, maxPayloadBytes: 314_000 } }).name).toBe('records');
  });
});
