// The analytics SQL files (schemas/clickhouse/queries/*.sql) on chdb, over a small pipeline history
// inserted by hand, with exact expected answers. Duplicated rows (as an at-least-once sink leaves
// them) and rows of another pipeline and another tenant are inserted too: neither may change an answer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchema, createAnalyticsClient, type AnalyticsClient } from '../../src/analytics/index.ts';
import { QUERY_NAMES, runQuery } from '../../src/analytics/queries.ts';
import { createLogger } from '../../src/common/logger.ts';

const logger = createLogger('silent');
const suffix = randomUUID().slice(0, 8);
const tenant = 'acme';
const pipeline = `q_${suffix}`;
// Whole seconds, an hour ago: well inside every TTL, and easy to compare with ClickHouse's text times.
const t0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const at = (s: number): number => t0 + s * 1000;
const text = (s: number): string => new Date(at(s)).toISOString().replace('T', ' ').replace('Z', '');

let root: string;
let ch: AnalyticsClient;

type Row = Record<string, unknown>;

async function insert(table: string, values: Row[]): Promise<void> {
  await ch.client.insert({ table, values, format: 'JSONEachRow' });
}

const params = { tenant, pipeline };
const q = (name: string, extra: Record<string, number> = {}) => runQuery(ch, name, { ...params, ...extra });

/** The fixture history of one pipeline (the scenario is spelled out in the comments). */
function history(t: string, p: string): Record<string, Row[]> {
  const base = { tenant: t, pipeline: p };
  const topic = (k: string) => `${t}.${p}.${k}`;
  const control = (round: number, kind: string, s: number, deadline: number, baseVersion: number, offset: number) => ({
    ...base, round, base_version: baseVersion, kind, deadline: at(deadline), min_updates: 1, target_updates: 3, event_time: at(s),
    config: {}, kafka_topic: topic('control'), kafka_partition: 0, kafka_offset: offset,
  });
  const update = (id: string, node: string, round: number, examples: number, s: number, status: string, loss: number, accuracy: number, offset: number) => ({
    ...base, update_id: id, node_id: node, round, base_version: round - 1, num_examples: examples, num_params: 10, payload_bytes: 100,
    metrics: { loss, accuracy }, training_ms: 1000, created_at: at(s), status, kafka_topic: topic('updates'), kafka_partition: 0, kafka_offset: offset,
  });
  const beat = (node: string, s: number, offset: number) => ({
    ...base, node_id: node, kind: 'HEARTBEAT', round: null, event_time: at(s), metrics: { rssMb: 100 + offset }, labels: { state: 'idle' },
    message: '', kafka_topic: topic('telemetry'), kafka_partition: 0, kafka_offset: offset,
  });
  const contribution = (version: number, id: string, node: string, round: number, examples: number, weight: number, s: number) => ({
    ...base, version, update_id: id, node_id: node, round, num_examples: examples, weight, created_at: at(s),
    kafka_topic: topic('models'), kafka_partition: 0, kafka_offset: version,
  });
  const version = (v: number, parent: number | null, round: number, s: number, sha: string, total: number, contributors: number, rejected: number, metrics: Record<string, number>) => ({
    ...base, version: v, parent_version: parent, round, strategy: v === 0 ? 'initial' : 'fedavg', weights_sha256: sha, total_examples: total,
    num_contributors: contributors, rejected_count: rejected, metrics, created_at: at(s), kafka_topic: topic('models'), kafka_partition: 0, kafka_offset: v,
  });
  const audit = (id: string, s: number, action: string, a: { round?: number; version?: number; node?: string; update?: string; reason?: string; details?: Record<string, string> }, offset: number) => ({
    ...base, event_id: id, event_time: at(s), actor: 'aggregator', action, round: a.round ?? null, version: a.version ?? null,
    node_id: a.node ?? '', update_id: a.update ?? '', reason: a.reason ?? '', details: a.details ?? {},
    kafka_topic: topic('audit'), kafka_partition: 0, kafka_offset: offset,
  });
  const rejected = (id: string, node: string, round: number | null, code: string, s: number, offset: number, onTopic = 'updates') => ({
    ...base, update_id: id, node_id: node, round, reason: `rejected: ${code}`, reason_code: code, raw_size: 100, event_time: at(s),
    kafka_topic: topic(onTopic), kafka_partition: 0, kafka_offset: offset,
  });
  return {
    rounds: [
      // Round 1: every node selected, deadline at 60 s, closed at 80 s by version 1.
      control(1, 'START', 0, 60, 0, 1), control(1, 'CLOSE', 80, 60, 0, 3),
      // Round 2: n1, n2, n4, n5 selected; closed at 130 s by version 2.
      control(2, 'START', 90, 150, 1, 4), control(2, 'CLOSE', 130, 150, 1, 6),
      // Round 3: everyone; extended once, then abandoned at 210 s.
      control(3, 'START', 140, 170, 2, 7), control(3, 'EXTEND', 170, 200, 2, 8), control(3, 'ABANDON', 210, 200, 2, 9),
    ],
    telemetry_events: [
      beat('n1', 5, 1), beat('n2', 5, 2), beat('n3', 5, 3), beat('n4', 5, 4), beat('n5', 6, 5), // round 1: all five alive
      beat('n2', 150, 6), // round 3: only n2 heard from (then it sends nothing: missed)
    ],
    updates: [
      update('u1', 'n1', 1, 100, 10, 'accepted', 1.0, 0.5, 1),
      update('u2', 'n2', 1, 200, 20, 'accepted', 0.8, 0.6, 2),
      update('u3', 'n3', 1, 300, 70, 'accepted', 0.6, 0.7, 3), // after the 60 s deadline: late, still accepted
      update('u7', 'n4', 1, 40, 95, 'rejected', 0.9, 0.4, 4), // round 1 had closed: stale
      update('u4', 'n1', 2, 100, 100, 'accepted', 0.5, 0.8, 5),
      update('u5', 'n2', 2, 200, 110, 'rejected', 9.0, 0.1, 6), // norm bound
      update('u6', 'n4', 2, 50, 120, 'accepted', 0.4, 0.9, 7),
      update('u8', 'n1', 3, 100, 160, 'rejected', 0.3, 0.9, 8), // its round was abandoned
    ],
    model_versions: [
      version(0, null, 0, -10, 'sha0', 0, 0, 0, {}),
      version(1, 0, 1, 80, 'sha1', 600, 3, 0, { eval_accuracy: 0.7, eval_loss: 0.9, train_loss: 0.7, train_accuracy: 0.65, roundMs: 80000 }),
      version(2, 1, 2, 130, 'sha2', 150, 2, 2, { eval_accuracy: 0.8, eval_loss: 0.6, train_loss: 0.45, train_accuracy: 0.85, roundMs: 40000 }),
    ],
    contributions: [
      contribution(1, 'u1', 'n1', 1, 100, 1 / 6, 80), contribution(1, 'u2', 'n2', 1, 200, 2 / 6, 80), contribution(1, 'u3', 'n3', 1, 300, 3 / 6, 80),
      contribution(2, 'u4', 'n1', 2, 100, 2 / 3, 130), contribution(2, 'u6', 'n4', 2, 50, 1 / 3, 130),
    ],
    rejected_updates: [
      rejected('u7', 'n4', 1, 'stale_round', 96, 4),
      rejected('u5', 'n2', 2, 'norm_bound', 125, 6),
      rejected('u8', 'n1', 3, 'round_abandoned', 210, 20, 'audit'),
      rejected('', '', null, 'CODEC_BAD_MAGIC', 30, 99, 'telemetry'),
    ],
    audit_log: [
      audit('e01', -10, 'VERSION_PUBLISHED', { version: 0, round: 0, details: { weightsSha256: 'sha0' } }, 1),
      audit('e02', 0, 'ROUND_STARTED', { round: 1, version: 0, details: { selectedNodes: '' } }, 2),
      audit('e03', 80, 'UPDATE_ACCEPTED', { round: 1, node: 'n1', update: 'u1' }, 3),
      audit('e04', 80, 'UPDATE_ACCEPTED', { round: 1, node: 'n2', update: 'u2' }, 4),
      audit('e05', 80, 'UPDATE_ACCEPTED', { round: 1, node: 'n3', update: 'u3' }, 5),
      audit('e06', 80, 'VERSION_PUBLISHED', { round: 1, version: 1, details: { weightsSha256: 'sha1' } }, 6),
      audit('e07', 90, 'ROUND_STARTED', { round: 2, version: 1, details: { selectedNodes: 'n1,n2,n4,n5' } }, 7),
      audit('e08', 130, 'UPDATE_REJECTED', { round: 1, node: 'n4', update: 'u7', reason: 'round 1 is closed', details: { code: 'stale_round' } }, 8),
      audit('e09', 130, 'UPDATE_REJECTED', { round: 2, node: 'n2', update: 'u5', reason: 'norm 9 above 5', details: { code: 'norm_bound' } }, 9),
      audit('e10', 130, 'UPDATE_ACCEPTED', { round: 2, node: 'n1', update: 'u4' }, 10),
      audit('e11', 130, 'UPDATE_ACCEPTED', { round: 2, node: 'n4', update: 'u6' }, 11),
      // The hash announced for version 2 differs from the one stored with it: the chain check must say so.
      audit('e12', 130, 'VERSION_PUBLISHED', { round: 2, version: 2, details: { weightsSha256: 'tampered' } }, 12),
      audit('e13', 140, 'ROUND_STARTED', { round: 3, version: 2, details: { selectedNodes: '' } }, 13),
      audit('e14', 210, 'UPDATE_REJECTED', { round: 3, node: 'n1', update: 'u8', reason: 'round 3 abandoned', details: { code: 'round_abandoned' } }, 14),
      audit('e15', 210, 'ROUND_ABANDONED', { round: 3, version: 2, reason: '0 of 1 required updates' }, 15),
    ],
  };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-queries-'));
  ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
  await applySchema(ch, { logger });
  const mine = history(tenant, pipeline);
  for (const [table, rows] of Object.entries(mine)) {
    await insert(table, rows);
    // An at-least-once sink's redelivery: the same records again, in another insert.
    await insert(table, rows);
  }
  // The decision rows of updates arrive as 'received' first: the decision must win.
  await insert('updates', mine.updates!.map((u) => ({ ...u, status: 'received' })));
  for (const [t, p] of [[tenant, `other_${suffix}`], ['globex', pipeline]] as const) {
    for (const [table, rows] of Object.entries(history(t, p))) await insert(table, rows);
  }
});

afterAll(async () => {
  await ch?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('analytics queries on known data', () => {
  it('convergence: one row per version with eval and train metrics', async () => {
    const rows = await q('convergence');
    expect(rows.map((r) => [r.version, r.parent_version, r.round, r.contributors, r.total_examples, r.rejected, r.eval_accuracy, r.eval_loss, r.train_loss, r.train_accuracy])).toEqual([
      ['0', null, '0', 0, '0', 0, null, null, null, null],
      ['1', '0', '1', 3, '600', 0, 0.7, 0.9, 0.7, 0.65],
      ['2', '1', '2', 2, '150', 2, 0.8, 0.6, 0.45, 0.85],
    ]);
    expect(rows[1]).toMatchObject({ strategy: 'fedavg', created_at: text(80), round_ms: 80000 });
  });

  it('participation: per node, updates sent, accepted, rejected and examples', async () => {
    const rows = await q('participation');
    expect(rows.map((r) => [r.node_id, r.updates_sent, r.rounds_participated, r.accepted, r.rejected, r.versions_contributed, r.examples_contributed])).toEqual([
      ['n1', '3', '3', '2', '1', '2', '200'],
      ['n2', '2', '2', '1', '1', '1', '200'],
      ['n3', '1', '1', '1', '0', '1', '300'],
      ['n4', '2', '2', '1', '1', '1', '50'],
    ]);
    expect(rows[0]).toMatchObject({ first_update: text(10), last_update: text(160) });
    expect(Number(rows[0]!.weight_total)).toBeCloseTo(1 / 6 + 2 / 3, 12);
  });

  it('participation_matrix: node x round with the decided status', async () => {
    const rows = await q('participation_matrix');
    expect(rows.map((r) => [r.round, r.node_id, r.status, r.updates, r.examples])).toEqual([
      ['1', 'n1', 'accepted', '1', '100'],
      ['1', 'n2', 'accepted', '1', '200'],
      ['1', 'n3', 'accepted', '1', '300'],
      ['1', 'n4', 'rejected', '1', '0'],
      ['2', 'n1', 'accepted', '1', '100'],
      ['2', 'n2', 'rejected', '1', '0'],
      ['2', 'n4', 'accepted', '1', '50'],
      ['3', 'n1', 'rejected', '1', '0'],
    ]);
    expect(rows[0]).toMatchObject({ loss: 1, accuracy: 0.5 });
  });

  it('stragglers: missed (selected or active), stale and late', async () => {
    const rows = await q('stragglers');
    expect(rows.map((r) => [r.round, r.node_id, r.kind, r.expected_as, r.reason_code])).toEqual([
      ['1', 'n3', 'late', 'active', ''],
      ['1', 'n4', 'stale', 'active', 'stale_round'],
      ['1', 'n5', 'missed', 'active', ''],
      ['2', 'n5', 'missed', 'selected', ''],
      ['3', 'n2', 'missed', 'active', ''],
    ]);
    expect(rows[0]).toMatchObject({ deadline: text(60), closed_at: text(80), update_created_at: text(70), last_heartbeat: text(5) });
    expect(rows[1]).toMatchObject({ update_created_at: text(95) });
    expect(rows[3]).toMatchObject({ update_created_at: null, last_heartbeat: text(6) });
    expect(rows[4]).toMatchObject({ closed_at: text(210), last_heartbeat: text(150) });
  });

  it('rejections_by_reason: one row per code, counted once despite redelivery', async () => {
    const rows = await q('rejections_by_reason');
    expect(rows.map((r) => [r.reason_code, r.rejections, r.nodes, r.rounds, r.topics])).toEqual([
      ['CODEC_BAD_MAGIC', '1', '0', '0', [`${tenant}.${pipeline}.telemetry`]],
      ['norm_bound', '1', '1', '1', [`${tenant}.${pipeline}.updates`]],
      ['round_abandoned', '1', '1', '1', [`${tenant}.${pipeline}.audit`]],
      ['stale_round', '1', '1', '1', [`${tenant}.${pipeline}.updates`]],
    ]);
    expect(rows[1]).toMatchObject({ first_at: text(125), last_at: text(125), example_reason: 'rejected: norm_bound' });
  });

  it('node_health: per node per minute from the roll-up, exact counts', async () => {
    const rows = await q('node_health');
    const n2 = rows.filter((r) => r.node_id === 'n2');
    expect(n2.map((r) => [r.events, r.heartbeats])).toEqual([['1', '1'], ['1', '1']]);
    expect(n2[1]).toMatchObject({ last_seen: text(150) });
    expect(new Set(rows.map((r) => r.node_id))).toEqual(new Set(['n1', 'n2', 'n3', 'n4', 'n5']));
    const n1 = rows.find((r) => r.node_id === 'n1')!;
    expect(n1.metrics_max).toEqual({ rssMb: 101 });
  });

  it('data_contributed: examples, weight and share per node per version', async () => {
    const rows = await q('data_contributed');
    expect(rows.map((r) => [r.version, r.round, r.node_id, r.updates, r.examples])).toEqual([
      ['1', '1', 'n1', '1', '100'],
      ['1', '1', 'n2', '1', '200'],
      ['1', '1', 'n3', '1', '300'],
      ['2', '2', 'n1', '1', '100'],
      ['2', '2', 'n4', '1', '50'],
    ]);
    expect(rows.map((r) => Number(r.share))).toEqual([1 / 6, 2 / 6, 3 / 6, 2 / 3, 1 / 3].map((x) => expect.closeTo(x, 12)));
  });

  it('lineage: version N and its ancestors, one row per contributing update', async () => {
    const rows = await q('lineage', { version: 2 });
    expect(rows.map((r) => [r.version, r.depth, r.parent_version, r.node_id, r.update_id, r.num_examples])).toEqual([
      ['2', '0', '1', 'n1', 'u4', '100'],
      ['2', '0', '1', 'n4', 'u6', '50'],
      ['1', '1', '0', 'n1', 'u1', '100'],
      ['1', '1', '0', 'n2', 'u2', '200'],
      ['1', '1', '0', 'n3', 'u3', '300'],
      ['0', '2', null, '', '', '0'],
    ]);
    expect(rows[0]).toMatchObject({ round: '2', strategy: 'fedavg', weights_sha256: 'sha2', version_created_at: text(130), total_examples: '150' });
    expect((await q('lineage', { version: 1 })).map((r) => r.update_id)).toEqual(['u1', 'u2', 'u3', '']);
    expect(await q('lineage', { version: 9 })).toEqual([]);
  });

  it('lineage_nodes: "which nodes\' data shaped version N?" in one query', async () => {
    const rows = await q('lineage_nodes', { version: 2 });
    expect(rows.map((r) => [r.node_id, r.versions, r.updates, r.examples])).toEqual([
      ['n1', ['1', '2'], '2', '200'],
      ['n2', ['1'], '1', '200'],
      ['n3', ['1'], '1', '300'],
      ['n4', ['2'], '1', '50'],
    ]);
    expect((await q('lineage_nodes', { version: 1 })).map((r) => r.node_id)).toEqual(['n1', 'n2', 'n3']);
  });

  it('version_chain: parents found, and the announced hash compared with the stored one', async () => {
    const rows = await q('version_chain');
    expect(rows.map((r) => [r.version, r.parent_version, r.weights_sha256, r.parent_sha256, r.published_sha256, r.parent_ok, r.audit_ok])).toEqual([
      ['0', null, 'sha0', null, 'sha0', 1, 1],
      ['1', '0', 'sha1', 'sha0', 'sha1', 1, 1],
      ['2', '1', 'sha2', 'sha1', 'tampered', 1, 0],
    ]);
  });

  it('audit_trail: every event once, in time order, with the rejection code', async () => {
    const rows = await q('audit_trail');
    expect(rows.map((r) => r.event_id)).toEqual(['e01', 'e02', 'e03', 'e04', 'e05', 'e06', 'e07', 'e08', 'e09', 'e10', 'e11', 'e12', 'e13', 'e14', 'e15']);
    expect(rows.find((r) => r.event_id === 'e09')).toMatchObject({ action: 'UPDATE_REJECTED', round: '2', node_id: 'n2', update_id: 'u5', code: 'norm_bound', reason: 'norm 9 above 5', event_time: text(130) });
  });

  it('round_summary: participants, decisions, quantiles, outcome and timing per round', async () => {
    const rows = await q('round_summary');
    expect(rows.map((r) => [r.round, r.outcome, r.base_version, r.version, r.participants, r.updates, r.accepted, r.rejected, r.extensions])).toEqual([
      ['1', 'closed', '0', '1', '4', '4', '3', '1', '0'],
      ['2', 'closed', '1', '2', '3', '3', '2', '1', '0'],
      ['3', 'abandoned', '2', null, '1', '1', '0', '1', '1'],
    ]);
    expect(rows[0]).toMatchObject({ opened_at: text(0), deadline: text(60), first_update: text(10), last_update: text(95), closed_at: text(80), duration_ms: '80000' });
    expect((rows[0]!.loss_quantiles as number[]).length).toBe(5);
  });

  it('every query answers nothing for a tenant that has no such pipeline', async () => {
    for (const name of QUERY_NAMES) {
      expect(await runQuery(ch, name, { tenant: 'nobody', pipeline, version: 1, ids: ['u1'] }), name).toEqual([]);
    }
  });
});
