// Record → row, without ClickHouse or Kafka: each record kind maps to the row the sink inserts.
import { describe, expect, it } from 'vitest';
import {
  SINK_TABLES, auditRow, contributionRows, countParams, decidedUpdateId, float, floatMap, modelVersionRow,
  rejectedUpdateRow, roundRow, statusRow, telemetryRow, unreadableRow, updateRow,
} from '../../src/analytics/index.ts';
import { loadQuery } from '../../src/analytics/queries.ts';
import type { AuditEventRecord } from '../../src/codec/index.ts';
import { samples } from '../fixtures/avro/samples.ts';

const scope = { tenant: 'acme', pipeline: 'mnist' };
const at = (topic: string, partition = 1, offset = '42') => ({ topic, partition, offset });
const coords = (topic: string, partition = 1, offset = 42) => ({ kafka_topic: topic, kafka_partition: partition, kafka_offset: offset });

describe('sink rows', () => {
  it('writes the tables in a fixed order', () => {
    expect(SINK_TABLES).toEqual(['telemetry_events', 'rounds', 'updates', 'audit_log', 'rejected_updates', 'model_versions', 'contributions']);
  });

  it('maps a TelemetryEvent to its telemetry_events row', () => {
    const e = samples().TelemetryEvent;
    expect(telemetryRow(scope, e, at('acme.mnist.telemetry'))).toEqual({
      tenant: 'acme', pipeline: 'mnist', node_id: 'node-7', kind: 'TRAINING', round: 3, event_time: 1_760_000_000_500,
      metrics: { epoch: 1, loss: 0.4 }, labels: { backend: 'wasm' }, message: '', ...coords('acme.mnist.telemetry'),
    });
    const heartbeat = telemetryRow(scope, { ...e, kind: 'HEARTBEAT', round: null, labels: null as never, message: 'alive', metrics: { rssMb: Number.NaN } }, at('t', 0, '0'));
    expect(heartbeat).toMatchObject({ kind: 'HEARTBEAT', round: null, labels: {}, message: 'alive', metrics: { rssMb: 'nan' }, kafka_partition: 0, kafka_offset: 0 });
  });

  it('maps a RoundControl to its rounds row', () => {
    const c = samples().RoundControl;
    expect(roundRow(scope, c, at('acme.mnist.control', 0, '7'))).toEqual({
      tenant: 'acme', pipeline: 'mnist', round: 4, base_version: 3, kind: 'START', deadline: 1_760_000_061_000, min_updates: 2, target_updates: 3,
      event_time: 1_760_000_001_000, config: { epochs: '1', batchSize: '32', learningRate: '0.1' }, ...coords('acme.mnist.control', 0, 7),
    });
  });

  it('maps a ModelUpdate to its updates row: the weights counted, never stored', () => {
    const u = samples().ModelUpdate;
    const row = updateRow(scope, u, 1234, at('acme.mnist.updates'));
    expect(row).toEqual({
      tenant: 'acme', pipeline: 'mnist', update_id: u.updateId, node_id: 'node-7', round: 3, base_version: 2, num_examples: 600,
      num_params: 8, payload_bytes: 1234, metrics: { loss: 0.31, accuracy: 0.91 }, training_ms: 1234, created_at: 1_760_000_000_123,
      status: 'received', ...coords('acme.mnist.updates'),
    });
    expect(JSON.stringify(row)).not.toContain('tensors');
  });

  it('maps an AuditEvent to its audit_log row, and an UPDATE_REJECTED to a rejected_updates row as well', () => {
    const e = samples().AuditEvent;
    const s = at('acme.mnist.audit', 2, '9');
    expect(auditRow(scope, e, s)).toEqual({
      tenant: 'acme', pipeline: 'mnist', event_id: e.eventId, event_time: 1_760_000_001_000, actor: 'aggregator/a1', action: 'UPDATE_REJECTED',
      round: 3, version: 2, node_id: 'node-9', update_id: e.updateId, reason: e.reason, details: e.details, ...coords('acme.mnist.audit', 2, 9),
    });
    // No reason code in the details: `unknown`; no source coordinates: the audit record's own.
    expect(rejectedUpdateRow(scope, e, s)).toEqual({
      tenant: 'acme', pipeline: 'mnist', update_id: e.updateId, node_id: 'node-9', round: 3, reason: e.reason, reason_code: 'unknown',
      raw_size: 0, event_time: 1_760_000_001_000, ...coords('acme.mnist.audit', 2, 9),
    });
    const sourced: AuditEventRecord = { ...e, details: { code: 'norm_bound', bytes: '2048', sourceTopic: 'acme.mnist.updates', sourcePartition: '3', sourceOffset: '77' } };
    expect(rejectedUpdateRow(scope, sourced, s)).toMatchObject({ reason_code: 'norm_bound', raw_size: 2048, ...coords('acme.mnist.updates', 3, 77) });
    expect(rejectedUpdateRow(scope, { ...e, action: 'UPDATE_ACCEPTED' }, s)).toBeUndefined();
    const empty = auditRow(scope, { ...e, action: 'ROUND_STARTED', round: null, version: null, nodeId: null, updateId: null, reason: null, details: null as never }, s);
    expect(empty).toMatchObject({ round: null, version: null, node_id: '', update_id: '', reason: '', details: {} });
  });

  it('knows which audit events decide an update\'s status', () => {
    const e = samples().AuditEvent;
    expect(decidedUpdateId({ ...e, action: 'UPDATE_ACCEPTED' })).toBe(e.updateId);
    expect(decidedUpdateId({ ...e, details: { code: 'norm_bound' } })).toBe(e.updateId);
    // A duplicate decides too (rejected, unless the same node's update with that id was accepted: update_status.sql).
    expect(decidedUpdateId({ ...e, details: { code: 'duplicate' } })).toBe(e.updateId);
    expect(decidedUpdateId({ ...e, action: 'VERSION_PUBLISHED' })).toBeUndefined();
    expect(decidedUpdateId({ ...e, action: 'UPDATE_ACCEPTED', updateId: null })).toBeUndefined();
  });

  it('maps a ModelVersion to its model_versions row and one contributions row per contributor', () => {
    const v = samples().ModelVersion;
    const s = at('acme.mnist.models', 0, '3');
    expect(modelVersionRow(scope, v, s)).toEqual({
      tenant: 'acme', pipeline: 'mnist', version: 3, parent_version: 2, round: 3, strategy: 'fedavg', weights_sha256: 'ab'.repeat(32),
      total_examples: 1000, num_contributors: 2, rejected_count: 1, metrics: { loss: 0.3, accuracy: 0.92 }, created_at: 1_760_000_001_000,
      // Central DP's guarantee (ModelVersion.privacy) in the dp_* columns (006_privacy.sql).
      dp_epsilon: 2.5, dp_delta: 1e-5, dp_noise_multiplier: 1.1, dp_sampling_rate: 0.2, dp_steps: 4, dp_mechanism: 'central-adaptive',
      ...coords('acme.mnist.models', 0, 3),
    });
    // Without central DP: NULLs and no mechanism; with no noise, ε = ∞ is written as ClickHouse's inf.
    expect(modelVersionRow(scope, { ...v, privacy: null }, s)).toMatchObject({ dp_epsilon: null, dp_delta: null, dp_noise_multiplier: null, dp_sampling_rate: null, dp_steps: null, dp_mechanism: '' });
    expect(modelVersionRow(scope, { ...v, privacy: { ...v.privacy!, epsilon: Infinity, noiseMultiplier: 0 } }, s)).toMatchObject({ dp_epsilon: 'inf', dp_mechanism: 'central-adaptive' });
    expect(contributionRows(scope, v, s)).toEqual(v.contributors.map((c) => ({
      tenant: 'acme', pipeline: 'mnist', version: 3, update_id: c.updateId, node_id: c.nodeId, round: 3, num_examples: c.numExamples,
      weight: c.weight, created_at: 1_760_000_001_000, ...coords('acme.mnist.models', 0, 3),
    })));
    // The initial model has no parent; fields the table does not have (a strategy's state) are left out.
    const initial = modelVersionRow(scope, { ...v, version: 0, parentVersion: -1, contributors: [], strategyState: 'xyz' } as unknown as typeof v, s);
    expect(initial).toMatchObject({ version: 0, parent_version: null, num_contributors: 0 });
    expect(Object.keys(initial)).not.toContain('strategy_state');
    expect(JSON.stringify(initial)).not.toContain('xyz');
  });

  it('maps an unreadable record to a rejected_updates row with its coordinates', () => {
    expect(unreadableRow(scope, { topic: 'acme.mnist.telemetry', partition: 1, offset: '5', code: 'CODEC_BAD_MAGIC', message: 'bad', rawSize: 3, eventTime: 99 })).toEqual({
      tenant: 'acme', pipeline: 'mnist', round: null, reason: 'unreadable record on acme.mnist.telemetry: bad', reason_code: 'CODEC_BAD_MAGIC',
      raw_size: 3, event_time: 99, ...coords('acme.mnist.telemetry', 1, 5),
    });
    const long = unreadableRow(scope, { topic: 't', partition: 0, offset: '0', code: 'X', message: 'y'.repeat(3000), rawSize: 0, eventTime: 0 });
    expect(String(long.reason)).toHaveLength(2000);
  });

  it('maps an update_status answer back to an updates row with the decided status', () => {
    const r = {
      update_id: 'u1', node_id: 'n1', round: '2', base_version: '1', num_examples: '30', num_params: '420', payload_bytes: '2000',
      metrics: { loss: 0.5, accuracy: Number.NaN, up: Infinity, down: -Infinity, zero: -0 }, training_ms: '12', created_at: '1760000000123', kafka_topic: 'acme.mnist.updates',
      kafka_partition: 1, kafka_offset: '17', status: 'accepted',
    };
    expect(statusRow(scope, r)).toEqual({
      tenant: 'acme', pipeline: 'mnist', update_id: 'u1', node_id: 'n1', round: 2, base_version: 1, num_examples: 30, num_params: 420,
      payload_bytes: 2000, metrics: { loss: 0.5, accuracy: 'nan', up: 'inf', down: '-inf', zero: '-0' }, training_ms: 12, created_at: 1_760_000_000_123, status: 'accepted',
      ...coords('acme.mnist.updates', 1, 17),
    });
  });

  it('refuses a status row whose metric was read back as anything but a number (it would change the stored value)', () => {
    const r = { update_id: 'u1', node_id: 'n1', round: '2', metrics: { loss: null }, status: 'accepted' };
    expect(() => statusRow(scope, r)).toThrow(/metric loss of update u1 was read back as null/);
  });

  it('decides the status of an update by its id and its node, duplicates included (update_status.sql)', () => {
    const sql = loadQuery('update_status').sql;
    expect(sql).toMatch(/ON u\.update_id = d\.update_id AND u\.nid = d\.nid/);
    expect(sql).not.toMatch(/NOT IN/);
  });

  it('writes non-finite floats as ClickHouse reads them, and counts parameters from shapes', () => {
    expect([float(1.5), float(Number.NaN), float(Infinity), float(-Infinity)]).toEqual([1.5, 'nan', 'inf', '-inf']);
    expect(floatMap(undefined)).toEqual({});
    expect(floatMap({ a: 1, b: Number.NaN })).toEqual({ a: 1, b: 'nan' });
    expect(countParams(samples().ModelUpdate.tensors)).toBe(8);
    expect(countParams([])).toBe(0);
  });
});
