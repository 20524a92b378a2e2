// Non-finite floats through ClickHouse (issue 13, kind 2), on the real embedded engine (chdb) with the real schema:
// +Inf, -Inf, NaN, -0, ±the largest double and the smallest denormal are written by the sink's row mapping, read
// back exactly (bit for bit) from every table and materialized view that holds a float or a metric map, through the
// named queries the reports use, and after a status row replaced an update's first row. Every aggregate of a round
// counts each update once. The case ../shared/cases/faults/inf-metric-json-null is the first test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applySchema, auditRow, contributionRows, createAnalyticsClient, modelVersionRow, queryRows, runQuery, telemetryRow, updateRow,
  type AnalyticsClient, type Row, type RowScope,
} from '../../src/analytics/index.ts';
import { Sink } from '../../src/analytics/index.ts';
import { insertWithToken } from '../../src/analytics/sink/batch.ts';
import { writeStatus } from '../../src/analytics/sink/status.ts';
import { trainingReport } from '../../src/analytics/reports/training.ts';
import type { AuditEventRecord, ModelUpdateRecord, ModelVersionRecord, TelemetryEventRecord } from '../../src/codec/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { packTensors, weightsSha256 } from '../../src/codec/index.ts';
import { ensureTopics, pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { samples } from '../fixtures/avro/samples.ts';
import { signerOf, testManifest, weightsFor } from './sink-fixtures.ts';

const logger = createLogger('silent');
/** Every value a Float64 must keep, in a fixed order: name → value. */
const VALUES: Array<[string, number]> = [
  ['pinf', Number.POSITIVE_INFINITY], ['ninf', Number.NEGATIVE_INFINITY], ['nan', Number.NaN], ['nzero', -0], ['zero', 0],
  ['max', Number.MAX_VALUE], ['nmax', -Number.MAX_VALUE], ['denormal', Number.MIN_VALUE], ['one', 1],
];
const NON_FINITE = VALUES.filter(([, v]) => !Number.isFinite(v)).length;

/** The IEEE 754 bits of a double, as ClickHouse's reinterpretAsUInt64 gives them (NaN: any NaN). */
function bits(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b.readBigUInt64LE().toString();
}
const bitsOf = (vs: unknown[]): string[] => vs.map((v) => (typeof v === 'number' ? bits(v) : `not a number: ${JSON.stringify(v)}`));
/** SQL bits as text: NaN of any payload is 'NaN', like {@link bits}. */
const sqlBits = (expr: string): string => `if(isNaN(${expr}), 'NaN', toString(reinterpretAsUInt64(${expr})))`;

let root: string;
let ch: AnalyticsClient;
const t0 = Date.now() - 3_600_000;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-nonfinite-'));
  ch = await createAnalyticsClient({ path: join(root, 'ch'), logger });
  await applySchema(ch, { logger });
});

afterAll(async () => {
  await ch?.close();
  rmSync(root, { recursive: true, force: true });
});

function scopeOf(): RowScope {
  return { tenant: 'nf', pipeline: `p_${randomUUID().slice(0, 8)}` };
}

const source = (topic: string, offset: number) => ({ topic, partition: 0, offset: String(offset) });

function update(scope: RowScope, nodeId: string, metrics: Record<string, number>, offset: number): ModelUpdateRecord {
  return { ...samples().ModelUpdate, tenant: scope.tenant, pipeline: scope.pipeline, updateId: `u-${nodeId}-${offset}`, nodeId, round: 1, baseVersion: 0, metrics, createdAt: t0 + offset };
}

function accepted(scope: RowScope, u: ModelUpdateRecord, offset: number): AuditEventRecord {
  return {
    ...samples().AuditEvent, tenant: scope.tenant, pipeline: scope.pipeline, eventId: `e-${u.updateId}`, eventTime: t0 + 1000 + offset,
    action: 'UPDATE_ACCEPTED', round: 1, version: null, nodeId: u.nodeId, updateId: u.updateId, reason: '', details: {},
  };
}

/** Inserts rows as the sink does (JSONEachRow, with a deduplication token). */
async function insert(table: string, rows: Row[], token = randomUUID()): Promise<void> {
  await insertWithToken(ch, table, rows, token);
}

/** Sends updates, their acceptance and the status rows, the way the sink's batches do. */
async function acceptAll(scope: RowScope, updates: ModelUpdateRecord[]): Promise<number> {
  await insert('updates', updates.map((u, i) => updateRow(scope, u, 100, source('updates', i))));
  await insert('audit_log', updates.map((u, i) => auditRow(scope, accepted(scope, u, i), source('audit', i))));
  return writeStatus(ch, scope, updates.map((u) => u.updateId), `status|${randomUUID()}`);
}

describe('non-finite floats through ClickHouse', () => {
  it('case inf-metric-json-null: an accepted update with loss +Inf keeps it after its status row, and the round sees 2 losses', async () => {
    const scope = scopeOf();
    const u1 = update(scope, 'node-1', { loss: Number.POSITIVE_INFINITY, accuracy: 0.1 }, 1);
    const u2 = update(scope, 'node-2', { loss: 1, accuracy: 0.5 }, 2);
    expect(await acceptAll(scope, [u1, u2])).toBe(2);
    const p = { p: scope.pipeline };
    const final = await queryRows<{ node_id: string; status: string; loss: string }>(ch, `SELECT toString(node_id) AS node_id, toString(status) AS status, toString(metrics['loss']) AS loss FROM updates FINAL WHERE pipeline = {p:String} ORDER BY node_id`, p);
    // expected.txt: updates FINAL: node-1 metrics['loss'] = inf, node-2 = 1
    expect(final.map((r) => `${r.node_id}:${r.status}:${r.loss}`)).toEqual(['node-1:accepted:inf', 'node-2:accepted:1']);
    // Every row still stored for an update (the status row, and the received one until a merge drops it) holds the same loss.
    const all = await queryRows<{ node_id: string; loss: string }>(ch, `SELECT toString(node_id) AS node_id, toString(metrics['loss']) AS loss FROM updates WHERE pipeline = {p:String}`, p);
    expect(new Set(all.map((r) => `${r.node_id}:${r.loss}`))).toEqual(new Set(['node-1:inf', 'node-2:1']));
    // expected.txt: round_stats round 1 loss_values = [1, inf] (2 values for 2 updates)
    const [stats] = await queryRows<{ lv: string[]; n: string }>(ch, `SELECT arrayMap(x -> toString(x), loss_values) AS lv, updates AS n FROM round_stats WHERE pipeline = {p:String} AND round = 1`, p);
    expect([...stats!.lv].sort()).toEqual(['1', 'inf']);
    expect(stats!.n).toBe('2');
  });

  it('case inf-metric-json-null through the sink: signed records on the topics, the Sink writes rows and status rows', async () => {
    const m = testManifest('nf', `sink_${randomUUID().slice(0, 8)}`);
    const transport = createMemoryTransport({ cluster: new MemoryCluster(), logger });
    const admin = transport.admin();
    await ensureTopics(admin, m);
    await admin.close();
    const producer = transport.producer();
    await producer.connect();
    const topics = pipelineTopics(m);
    const chunk = m.topics.chunkSizeBytes;
    const base = { tenant: m.tenant, pipeline: m.name };
    const agg = signerOf(m, 'aggregator');
    let clock = Date.now() - 60_000;
    const tick = (): number => (clock += 10);
    const audit = (action: string, a: { round?: number; version?: number; nodeId?: string; updateId?: string }) => toRecords(topics.audit, 'AuditEvent', {
      ...base, eventId: randomUUID(), eventTime: tick(), actor: 'aggregator', action: action as never, round: a.round ?? null, version: a.version ?? null,
      nodeId: a.nodeId ?? null, updateId: a.updateId ?? null, reason: null, details: {},
    }, a.nodeId ?? action, chunk, {}, agg);
    const control = (kind: 'START' | 'CLOSE' | 'FINISH', round: number, baseVersion: number) => toRecords(topics.control, 'RoundControl', {
      ...base, round, baseVersion, kind, config: {}, selectedNodes: [], deadline: clock + 30_000, minUpdates: 2, targetUpdates: 2, createdAt: tick(),
    }, `round-${round}`, chunk, {}, agg);
    const version = (v: number, contributors: ModelVersionRecord['contributors'], metrics: Record<string, number>): ModelVersionRecord => ({
      ...base, version: v, parentVersion: v - 1, round: v, strategy: v === 0 ? 'initial' : 'fedavg', createdAt: tick(), tensors: packTensors(weightsFor(v)),
      weightsSha256: weightsSha256(weightsFor(v)), contributors, totalExamples: contributors.reduce((t, c) => t + c.numExamples, 0), metrics,
      rejectedCount: 0, modelSpec: JSON.stringify(m.model), strategyState: null,
    });
    await producer.send([...toRecords(topics.models, 'ModelVersion', version(0, [], {}), 'v0', chunk, {}, agg), ...control('START', 1, 0)]);
    // node-1 diverged: loss +Inf; node-2: loss 1 (the case's input).
    const sent = [['node-1', Number.POSITIVE_INFINITY, 0.1], ['node-2', 1, 0.5]] as const;
    const ids: string[] = [];
    for (const [node, loss, accuracy] of sent) {
      const updateId = randomUUID();
      ids.push(updateId);
      await producer.send(toRecords(topics.updates, 'ModelUpdate', {
        ...base, updateId, nodeId: node, round: 1, baseVersion: 0, numExamples: 10, tensors: packTensors(weightsFor(7)), metrics: { loss, accuracy },
        trainingMs: 1, createdAt: tick(), sdkVersion: 'x', backend: 'x',
      }, node, chunk, {}, signerOf(m, node)));
    }
    await producer.send([
      ...audit('UPDATE_ACCEPTED', { round: 1, nodeId: 'node-1', updateId: ids[0] }), ...audit('UPDATE_ACCEPTED', { round: 1, nodeId: 'node-2', updateId: ids[1] }),
      ...toRecords(topics.models, 'ModelVersion', version(1, sent.map(([node], i) => ({ updateId: ids[i]!, nodeId: node, numExamples: 10, weight: 0.5 })), { train_loss: Number.POSITIVE_INFINITY }), 'v1', chunk, {}, agg),
      ...control('CLOSE', 1, 0), ...audit('PIPELINE_FINISHED', { round: 1, version: 1 }), ...control('FINISH', 1, 1),
    ]);
    await producer.disconnect();
    const sink = new Sink({ manifest: m, transport, analytics: ch, logger, batchRows: 100, batchMs: 50 });
    await sink.start();
    await sink.untilFinished();
    await sink.stop();
    expect(sink.metrics().statusUpdates).toBe(2);

    const p = { p: m.name };
    const final = await queryRows<{ node_id: string; status: string; loss: string }>(ch, `SELECT toString(node_id) AS node_id, toString(status) AS status, toString(metrics['loss']) AS loss FROM updates FINAL WHERE pipeline = {p:String} ORDER BY node_id`, p);
    expect(final.map((r) => `${r.node_id}:${r.status}:${r.loss}`)).toEqual(['node-1:accepted:inf', 'node-2:accepted:1']);
    const [stats] = await queryRows<{ lv: string[] }>(ch, `SELECT arrayMap(x -> toString(x), loss_values) AS lv FROM round_stats WHERE pipeline = {p:String} AND round = 1`, p);
    expect([...stats!.lv].sort()).toEqual(['1', 'inf']);
    const [v1] = (await runQuery<{ version: string; train_loss: number }>(ch, 'convergence', { tenant: m.tenant, pipeline: m.name })).filter((v) => v.version === '1');
    expect(v1!.train_loss).toBe(Number.POSITIVE_INFINITY);
  });

  it('updates: every value written, read back exactly, and still itself after the status row replaced the first row', async () => {
    const scope = scopeOf();
    const metrics = Object.fromEntries(VALUES);
    const updates = VALUES.map(([name, v], i) => update(scope, `node-${name}`, { ...metrics, loss: v, accuracy: v }, i + 1));
    expect(await acceptAll(scope, updates)).toBe(VALUES.length);
    const p = { p: scope.pipeline };

    // Stored bits, read in SQL (independent of the JSON read path), of the row FINAL keeps: the status row, which
    // replaced the received one (a background merge may already have dropped that one).
    const stored = await queryRows<{ node_id: string; status: string; b: string[] }>(ch,
      `SELECT toString(node_id) AS node_id, toString(status) AS status, [${VALUES.map(([k]) => sqlBits(`metrics['${k}']`)).join(', ')}, ${sqlBits("metrics['loss']")}] AS b
       FROM updates FINAL WHERE pipeline = {p:String} ORDER BY node_id`, p);
    expect(stored.map((r) => r.status)).toEqual(VALUES.map(() => 'accepted'));
    for (const r of stored) {
      const own = VALUES.find(([k]) => r.node_id === `node-${k}`)![1];
      expect(r.b, `${r.node_id} ${r.status}`).toEqual(bitsOf([...VALUES.map(([, v]) => v), own]));
    }
    // Read back through JSON (queryRows), FINAL: the decided status, the metrics as numbers.
    const final = await queryRows<{ node_id: string; status: string; metrics: Record<string, number> }>(ch,
      `SELECT toString(node_id) AS node_id, toString(status) AS status, metrics FROM updates FINAL WHERE pipeline = {p:String} ORDER BY node_id`, p);
    expect(final.map((r) => r.status)).toEqual(VALUES.map(() => 'accepted'));
    for (const r of final) expect(bitsOf(VALUES.map(([k]) => r.metrics[k])), r.node_id).toEqual(bitsOf(VALUES.map(([, v]) => v)));

    // A second status pass finds nothing to change (the stored status already says accepted).
    expect(await writeStatus(ch, scope, updates.map((u) => u.updateId), `status|${randomUUID()}`)).toBe(0);
  });

  it('round_summary / round_stats: one value per update, each as stored; quantiles over the finite values', async () => {
    const scope = scopeOf();
    const updates = VALUES.map(([name, v], i) => update(scope, `node-${name}`, { loss: v, accuracy: v }, i + 1));
    await acceptAll(scope, updates);
    // Redelivery: the same received rows and the same status rows once more, in other batches.
    await insert('updates', updates.map((u, i) => updateRow(scope, u, 100, source('updates', i))));
    await writeStatus(ch, scope, updates.map((u) => u.updateId), `status|${randomUUID()}`);
    const [s] = await queryRows<Record<string, unknown>>(ch, 'SELECT * FROM round_stats WHERE tenant = {t:String} AND pipeline = {p:String} AND round = 1', { t: scope.tenant, p: scope.pipeline });
    const byValue = (a: unknown): string[] => bitsOf(a as number[]).sort();
    expect(byValue(s!.loss_values)).toEqual(bitsOf(VALUES.map(([, v]) => v)).sort());
    expect(byValue(s!.accuracy_values)).toEqual(bitsOf(VALUES.map(([, v]) => v)).sort());
    expect(s).toMatchObject({ updates: String(VALUES.length), participants: String(VALUES.length), loss_nonfinite: String(NON_FINITE), accuracy_nonfinite: String(NON_FINITE) });
    const finite = VALUES.map(([, v]) => v).filter(Number.isFinite);
    const quantiles = s!.loss_quantiles as number[];
    expect(quantiles).toHaveLength(5);
    expect(quantiles.every(Number.isFinite)).toBe(true);
    // Interpolated median of the six finite values: between the third and the fourth.
    const sorted = [...finite].sort((a, b) => a - b);
    expect(quantiles[2]).toBeGreaterThanOrEqual(sorted[2]!);
    expect(quantiles[2]).toBeLessThanOrEqual(sorted[3]!);

    // The named query the report reads: the same counts.
    const [r] = await runQuery(ch, 'round_summary', { ...scope });
    expect(r).toMatchObject({ round: '1', updates: String(VALUES.length), loss_nonfinite: String(NON_FINITE) });
    expect(r!.loss_quantiles).toEqual(quantiles);
  });

  it('round_stats counts an update once even when its stored rows disagree (a status row written by the old sink)', async () => {
    const scope = scopeOf();
    const u1 = update(scope, 'node-1', { loss: Number.POSITIVE_INFINITY }, 1);
    const u2 = update(scope, 'node-2', { loss: 1 }, 2);
    await insert('updates', [updateRow(scope, u1, 100, source('updates', 1)), updateRow(scope, u2, 100, source('updates', 2))]);
    // What the sink wrote before this fix: the +Inf read back as JSON null, rewritten as nan.
    await insert('updates', [{ ...updateRow(scope, u1, 100, source('updates', 1)), status: 'accepted', metrics: { loss: 'nan' } }]);
    const [s] = await queryRows<{ n: number; nonfinite: string }>(ch, 'SELECT length(loss_values) AS n, loss_nonfinite AS nonfinite FROM round_stats WHERE pipeline = {p:String}', { p: scope.pipeline });
    expect(s).toEqual({ n: '2', nonfinite: '1' });
  });

  it('participation_matrix: a node\'s loss is its value as stored when it is its only one; averages skip non-finite values', async () => {
    const scope = scopeOf();
    const updates = VALUES.map(([name, v], i) => update(scope, `node-${name}`, { loss: v }, i + 1));
    // node-mix: two updates in the round, one diverged: the mean of the finite one, and one non-finite counted.
    updates.push(update(scope, 'node-mix', { loss: 2 }, 50), update(scope, 'node-mix', { loss: Number.NaN }, 51));
    await acceptAll(scope, updates);
    const rows = await runQuery<{ node_id: string; loss: number | null; loss_nonfinite: string; accuracy: number | null }>(ch, 'participation_matrix', { ...scope });
    const byNode = new Map(rows.map((r) => [r.node_id, r]));
    for (const [name, v] of VALUES) {
      const r = byNode.get(`node-${name}`)!;
      // avg of a single -0 is 0 (a sum starts at +0): the value, not its sign, for an average.
      expect(name === 'nzero' ? r.loss === 0 : Object.is(r.loss, v), `${name}: ${String(r.loss)}`).toBe(true);
      expect(r.loss_nonfinite).toBe(Number.isFinite(v) ? '0' : '1');
      expect(r.accuracy).toBeNull();
    }
    expect(byNode.get('node-mix')).toMatchObject({ loss: 2, loss_nonfinite: '1', updates: '2' });
  });

  it('telemetry_events, heartbeats, node_health_1m: every value as sent; the minute average skips non-finite values', async () => {
    const scope = scopeOf();
    // One heartbeat per node (its own minute), carrying one value, plus the whole set under other names.
    const minute = Math.floor(t0 / 60_000) * 60_000;
    const events: TelemetryEventRecord[] = VALUES.map(([name, v]) => ({
      ...samples().TelemetryEvent, tenant: scope.tenant, pipeline: scope.pipeline, nodeId: `node-${name}`, kind: 'HEARTBEAT', round: null,
      eventTime: minute + 1000, metrics: { ...Object.fromEntries(VALUES), value: v },
    }));
    await insert('telemetry_events', events.map((e, i) => telemetryRow(scope, e, source('telemetry', i))));
    const p = { p: scope.pipeline };
    for (const table of ['telemetry_events', 'heartbeats']) {
      const rows = await queryRows<{ node_id: string; metrics: Record<string, number> }>(ch, `SELECT toString(node_id) AS node_id, metrics FROM ${table} FINAL WHERE pipeline = {p:String} ORDER BY node_id`, p);
      expect(rows, table).toHaveLength(VALUES.length);
      for (const r of rows) {
        const own = VALUES.find(([k]) => r.node_id === `node-${k}`)![1];
        expect(bitsOf([...VALUES.map(([k]) => r.metrics[k]), r.metrics.value]), `${table} ${r.node_id}`).toEqual(bitsOf([...VALUES.map(([, v]) => v), own]));
      }
    }
    const health = await runQuery<{ node_id: string; metrics_avg: Record<string, number>; metrics_max: Record<string, number>; metrics_min: Record<string, number> }>(ch, 'node_health', { ...scope });
    expect(health).toHaveLength(VALUES.length);
    for (const h of health) {
      const own = VALUES.find(([k]) => h.node_id === `node-${k}`)![1];
      // One event in the minute: max and min are the value as sent, -0 and NaN included.
      expect(bitsOf([h.metrics_max.value, h.metrics_min.value]), h.node_id).toEqual(bitsOf([own, own]));
      expect(bitsOf(VALUES.map(([k]) => h.metrics_max[k])), h.node_id).toEqual(bitsOf(VALUES.map(([, v]) => v)));
      // The average: finite values only (a non-finite metric has no average).
      if (Number.isFinite(own)) expect(h.metrics_avg.value, h.node_id).toBe(own === 0 ? 0 : own);
      else expect(h.metrics_avg.value, h.node_id).toBeUndefined();
      expect(Object.keys(h.metrics_avg).sort(), h.node_id).toEqual(expect.arrayContaining(VALUES.filter(([, v]) => Number.isFinite(v)).map(([k]) => k)));
      expect(h.metrics_avg.pinf ?? h.metrics_avg.nan ?? h.metrics_avg.ninf).toBeUndefined();
    }
  });

  it('model_versions, contributions, round_summary: version metrics and contribution weights as themselves', async () => {
    const scope = scopeOf();
    const versions: ModelVersionRecord[] = VALUES.map(([name, v], i) => ({
      ...samples().ModelVersion, tenant: scope.tenant, pipeline: scope.pipeline, version: i + 1, parentVersion: i, round: i + 1, createdAt: t0 + i,
      metrics: { train_loss: v, train_accuracy: v, eval_loss: v, eval_accuracy: v, roundMs: 5 },
      contributors: [{ updateId: `u-${name}`, nodeId: `node-${name}`, numExamples: 10, weight: v }],
    }));
    await insert('model_versions', versions.map((v, i) => modelVersionRow(scope, v, source('models', i))));
    await insert('contributions', versions.flatMap((v, i) => contributionRows(scope, v, source('models', i))));

    const convergence = await runQuery<Record<string, number>>(ch, 'convergence', { ...scope });
    expect(convergence).toHaveLength(VALUES.length);
    for (const key of ['train_loss', 'train_accuracy', 'eval_loss', 'eval_accuracy']) {
      expect(bitsOf(convergence.map((c) => c[key])), key).toEqual(bitsOf(VALUES.map(([, v]) => v)));
    }
    const stored = await queryRows<{ b: string }>(ch, `SELECT ${sqlBits("metrics['train_loss']")} AS b FROM model_versions FINAL WHERE pipeline = {p:String} ORDER BY version`, { p: scope.pipeline });
    expect(stored.map((r) => r.b)).toEqual(bitsOf(VALUES.map(([, v]) => v)));

    const lineage = await runQuery<{ version: string; weight: number | null }>(ch, 'lineage', { ...scope, version: VALUES.length });
    const weights = new Map(lineage.map((l) => [Number(l.version), l.weight]));
    expect(bitsOf(VALUES.map((_, i) => weights.get(i + 1)))).toEqual(bitsOf(VALUES.map(([, v]) => v)));
    const contributed = await runQuery<{ version: string; weight: number }>(ch, 'data_contributed', { ...scope });
    expect(bitsOf(contributed.map((c) => c.weight))).toEqual(bitsOf(VALUES.map(([, v]) => (Object.is(v, -0) ? 0 : v)))); // a sum of one -0 is 0
    const [summary] = await queryRows<{ version: string; rounds: string }>(ch, 'SELECT max(version) AS version, count() AS rounds FROM round_stats WHERE pipeline = {p:String}', { p: scope.pipeline });
    expect(summary).toEqual({ version: String(VALUES.length), rounds: String(VALUES.length) });
  });

  it('the training report prints +Inf, -Inf and NaN, not the dash of a missing value', async () => {
    const scope = scopeOf();
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: scope.tenant, name: scope.pipeline,
      model: { inputShape: [4], layers: [{ type: 'dense', units: 3, activation: 'softmax' }] }, data: { source: 'mnist', nodes: 3 },
      rounds: { count: 3, targetUpdates: 1, minUpdates: 1 },
    });
    const values = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN];
    const versions: ModelVersionRecord[] = values.map((v, i) => ({
      ...samples().ModelVersion, tenant: scope.tenant, pipeline: scope.pipeline, version: i + 1, parentVersion: i, round: i + 1, createdAt: t0 + i,
      metrics: { train_loss: v, eval_loss: 0.5 }, contributors: [],
    }));
    await insert('model_versions', versions.map((v, i) => modelVersionRow(scope, v, source('models', i))));
    const r = await trainingReport({ analytics: ch, manifest: m, logger });
    const section = r.document.sections.find((x) => x.id === 'convergence');
    const table = section?.blocks.find((b) => b.kind === 'table');
    if (table?.kind !== 'table') throw new Error('no convergence table');
    const column = table.headers.indexOf('train loss');
    expect(table.rows.map((row) => row[column])).toEqual(['+Inf', '-Inf', 'NaN']);
    expect(r.markdown).toContain('| +Inf |');
    expect(r.convergence.map((c) => c.train_loss)).toEqual(values);
  });
});
