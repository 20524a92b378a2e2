// The ClickHouse schema on a real engine: chdb, in this process (vitest gives each file its own
// process, which suits chdb's one-data-directory-per-process rule).
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchema, createAnalyticsClient, defaultSchemaDir, toAnalyticsError, type AnalyticsClient } from '../../src/analytics/index.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { createLogger } from '../../src/common/logger.ts';

const logger = createLogger('silent');
const suffix = randomUUID().slice(0, 8);
const tenant = 'acme';
const pipeline = `p_${suffix}`;
const other = `q_${suffix}`;
// Times relative to now: rows older than their TTL would be dropped by the first merge.
const t0 = Date.now() - 10 * 60_000;
const at = (offsetMs: number): number => t0 + offsetMs;

let root: string;
let ch: AnalyticsClient;

async function rows<T = Record<string, unknown>>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const rs = await ch.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return rs.json<T>();
}

async function count(query: string, params: Record<string, unknown> = { pipeline }): Promise<number> {
  const [row] = await rows<{ n: string | number }>(query, params);
  return Number(row?.n);
}

function errorOf(p: Promise<unknown>): Promise<FedStreamError> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: FedStreamError) => e);
}

const telemetry = (node: string, kind: string, offset: number, ms: number, metrics: Record<string, number> = {}, p = pipeline) => ({
  tenant, pipeline: p, node_id: node, kind, round: 1, event_time: at(ms), metrics, labels: { host: node },
  message: '', kafka_topic: `${tenant}.${p}.telemetry`, kafka_partition: 0, kafka_offset: offset,
});

const update = (id: string, node: string, round: number, loss: number, accuracy: number, ms: number) => ({
  tenant, pipeline, update_id: id, node_id: node, round, base_version: round - 1, num_examples: 100 * (node.length),
  num_params: 1000, payload_bytes: 4000, metrics: { loss, accuracy }, training_ms: 1500, created_at: at(ms), status: 'received',
  kafka_topic: `${tenant}.${pipeline}.updates`, kafka_partition: 0, kafka_offset: Number(id.replace(/\D/g, '')),
});

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-ch-'));
  ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
});

afterAll(async () => {
  await ch?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('embedded client', () => {
  it('reports health with the engine version and database', async () => {
    const h = await ch.health();
    expect(h.success).toBe(true);
    expect(h.detail).toMatch(/^ClickHouse \d+\.\d+/);
    expect(h.detail).toContain('database fedstream');
    expect(ch.kind).toBe('embedded');
    expect(ch.location).toBe(join(root, 'clickhouse'));
  });

  it('runs unqualified statements in its database', async () => {
    expect(await rows('SELECT currentDatabase() AS db')).toEqual([{ db: 'fedstream' }]);
  });

  it('shares the engine between clients on the same directory and refuses a second directory', async () => {
    const again = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
    expect(again.client).toBe(ch.client);
    await again.close();
    expect((await ch.health()).success).toBe(true); // the first client still works

    const err = await errorOf(createAnalyticsClient({ path: join(root, 'elsewhere'), logger }));
    expect(err.code).toBe('ANALYTICS_UNAVAILABLE');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain('one data directory per process');
    expect(err.message).toContain(join(root, 'clickhouse'));
  });

  it('maps a statement error to ANALYTICS_QUERY with the server message', async () => {
    const err = await ch.client.query({ query: 'SELECT * FROM no_such_table' }).then(() => undefined, (e: unknown) => e);
    const mapped = toAnalyticsError(err, 'reading');
    expect(mapped.code).toBe('ANALYTICS_QUERY');
    expect(mapped.retriable).toBe(false);
    expect(mapped.message).toMatch(/^reading: .*no_such_table/);
    expect(mapped.details.clickhouseType).toBe('UNKNOWN_TABLE');
  });
});

describe('applySchema', () => {
  it('applies every file once; a second run is a no-op', async () => {
    const first = await applySchema(ch, { logger });
    expect(first.applied).toEqual(['001_telemetry.sql', '002_training.sql', '003_audit.sql', '004_rollups.sql', '005_nonfinite.sql', '006_privacy.sql']);
    // 006_privacy.sql added central DP's columns to model_versions.
    const dp = await rows("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'model_versions' AND name LIKE 'dp\\_%' ORDER BY position");
    expect(dp.map((c) => `${String(c.name)} ${String(c.type)}`)).toEqual([
      'dp_epsilon Nullable(Float64)', 'dp_delta Nullable(Float64)', 'dp_noise_multiplier Nullable(Float64)', 'dp_sampling_rate Nullable(Float64)',
      'dp_steps Nullable(UInt64)', 'dp_mechanism LowCardinality(String)',
    ]);
    const tables = await rows<{ name: string }>("SELECT name FROM system.tables WHERE database = 'fedstream' ORDER BY name");

    const second = await applySchema(ch, { logger });
    expect(second.applied).toEqual([]);
    expect(second.skipped).toEqual(first.applied);
    expect(second.warnings).toEqual([]);
    expect(await rows("SELECT name FROM system.tables WHERE database = 'fedstream' ORDER BY name")).toEqual(tables);
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining([
      'telemetry_events', 'heartbeats', 'updates', 'rejected_updates', 'model_versions', 'contributions', 'rounds',
      'audit_log', 'node_health_1m', 'round_summary', 'round_stats', 'schema_migrations',
    ]));
    const migrations = await rows<{ file: string; sha256: string }>('SELECT file, sha256 FROM fedstream.schema_migrations FINAL ORDER BY file');
    expect(migrations.map((m) => m.file)).toEqual(first.applied);
    expect(migrations.every((m) => /^[0-9a-f]{64}$/.test(m.sha256))).toBe(true);
  });

  it('puts the retention variables into each table TTL', async () => {
    const ttl = async (db: string, table: string): Promise<string> => {
      const [row] = await rows<{ statement: string }>(`SHOW CREATE TABLE ${db}.${table}`);
      return row?.statement ?? '';
    };
    for (const [table, days] of [['telemetry_events', 30], ['heartbeats', 30], ['updates', 365], ['rejected_updates', 365], ['model_versions', 3650],
      ['contributions', 3650], ['rounds', 3650], ['audit_log', 3650], ['node_health_1m', 90], ['round_summary', 3650]] as const) {
      expect(await ttl('fedstream', table), table).toMatch(new RegExp(`TTL .*toIntervalDay\\(${days}\\)`));
    }

    const custom = await applySchema(ch, { database: `custom_${suffix}`, variables: { retention_days_telemetry: 7, retention_days_audit: 400 }, logger });
    expect(custom.applied).toHaveLength(6);
    expect(await ttl(`custom_${suffix}`, 'telemetry_events')).toMatch(/TTL .*toIntervalDay\(7\)/);
    expect(await ttl(`custom_${suffix}`, 'audit_log')).toMatch(/TTL .*toIntervalDay\(400\)/);
    expect(await ttl(`custom_${suffix}`, 'audit_log')).toContain('PARTITION BY toYYYYMM(event_time)');

    // Same files, other retention: nothing re-runs, and the caller is told the TTL did not change.
    const changed = await applySchema(ch, { database: `custom_${suffix}`, variables: { retention_days_telemetry: 14, retention_days_audit: 400 }, logger });
    expect(changed.applied).toEqual([]);
    expect(changed.warnings.join('\n')).toMatch(/001_telemetry\.sql .*retention_days_telemetry.*MODIFY TTL/);
  });

  it('refuses a schema file that changed after it was applied, or re-runs it with a warning', async () => {
    const dir = join(root, 'schema-copy');
    cpSync(defaultSchemaDir(), dir, { recursive: true });
    const db = `changed_${suffix}`;
    await applySchema(ch, { dir, database: db, logger });
    appendFileSync(join(dir, '003_audit.sql'), `\nCREATE TABLE IF NOT EXISTS \${database}.extra (x UInt8) ENGINE = MergeTree ORDER BY x;\n`);

    const err = await errorOf(applySchema(ch, { dir, database: db, logger }));
    expect(err.code).toBe('ANALYTICS_DDL');
    expect(err.message).toContain('003_audit.sql changed since it was applied');
    expect(err.message).toContain('007_<change>.sql');

    const warned = await applySchema(ch, { dir, database: db, onChecksumMismatch: 'warn', logger });
    expect(warned.applied).toEqual(['003_audit.sql']);
    expect(warned.warnings[0]).toContain('003_audit.sql changed');
    expect(await count(`SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'extra'`, { db })).toBe(1);
    expect((await applySchema(ch, { dir, database: db, logger })).applied).toEqual([]);
  });

  it('raises ANALYTICS_DDL naming the file, statement and server message for a broken statement', async () => {
    const dir = join(root, 'broken');
    cpSync(defaultSchemaDir(), dir, { recursive: true, filter: (src) => !src.endsWith('.sql') || src.endsWith('001_telemetry.sql') });
    writeFileSync(join(dir, '002_broken.sql'), [
      '-- a good statement, then a bad one',
      'CREATE TABLE IF NOT EXISTS ${database}.fine (x UInt8) ENGINE = MergeTree ORDER BY x;',
      '',
      'CREATE TABLE IF NOT EXISTS ${database}.bad (x UInt8) ENGINE = MergeTree ORDER BY nope_column;',
    ].join('\n'));
    const db = `broken_${suffix}`;
    const err = await errorOf(applySchema(ch, { dir, database: db, logger }));
    expect(err).toBeInstanceOf(FedStreamError);
    expect(err.code).toBe('ANALYTICS_DDL');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain('schema file 002_broken.sql, statement 2 of 2 (line 4');
    expect(err.message).toContain('nope_column');
    expect(err.details).toMatchObject({ file: '002_broken.sql', statement: 2, line: 4 });
    // The good file was recorded, the broken one was not: after a fix it runs again from the top.
    const applied = await rows<{ file: string }>(`SELECT file FROM ${db}.schema_migrations FINAL`);
    expect(applied.map((r) => r.file)).toEqual(['001_telemetry.sql']);
  });

  it('raises ANALYTICS_DDL for a variable nobody defined, before executing anything', async () => {
    const dir = mkdtempSync(join(root, 'novar-'));
    writeFileSync(join(dir, '001_x.sql'), 'CREATE TABLE IF NOT EXISTS ${database}.t (x UInt8) ENGINE = MergeTree ORDER BY x TTL now() + INTERVAL ${retention_days_forever} DAY;\n');
    const err = await errorOf(applySchema(ch, { dir, database: `novar_${suffix}`, logger }));
    expect(err.code).toBe('ANALYTICS_DDL');
    expect(err.message).toContain('001_x.sql, statement 1 of 1');
    expect(err.message).toContain('${retention_days_forever}');
  });
});

describe('tables, deduplication and materialized views', () => {
  beforeAll(async () => {
    const insert = (table: string, values: Record<string, unknown>[]) => ch.client.insert({ table, values, format: 'JSONEachRow' });
    await insert('telemetry_events', [
      telemetry('n1', 'HEARTBEAT', 1, 1_000),
      telemetry('n1', 'METRICS', 2, 2_000, { cpu: 0.5, loss: 2 }),
      telemetry('n2', 'HEARTBEAT', 3, 3_000),
      telemetry('n1', 'HEARTBEAT', 4, 61_000),
      telemetry('n2', 'METRICS', 5, 62_000, { cpu: 0.9 }),
      telemetry('n9', 'HEARTBEAT', 1, 1_000, {}, other),
    ]);
    await insert('rounds', [
      { tenant, pipeline, round: 1, base_version: 0, kind: 'OPEN', deadline: at(120_000), min_updates: 2, target_updates: 3, event_time: at(0) },
      { tenant, pipeline, round: 1, base_version: 0, kind: 'EXTEND', deadline: at(180_000), min_updates: 2, target_updates: 3, event_time: at(120_000) },
    ]);
    await insert('updates', [
      update('u1', 'n1', 1, 0.9, 0.6, 10_000),
      update('u2', 'n2', 1, 0.7, 0.7, 20_000),
      update('u3', 'n3', 1, 0.5, 0.8, 30_000),
      update('u4', 'n4', 1, 9.9, 0.1, 40_000),
    ]);
    await insert('rejected_updates', [
      { tenant, pipeline, update_id: 'u4', node_id: 'n4', round: 1, reason: 'update norm 1e6 exceeds the bound 1000', reason_code: 'NORM_BOUND', raw_size: 4000, event_time: at(41_000), kafka_topic: `${tenant}.${pipeline}.audit`, kafka_partition: 0, kafka_offset: 7 },
      { tenant, pipeline, update_id: '', node_id: '', round: null, reason: 'not Avro', reason_code: 'CODEC_BAD_MAGIC', raw_size: 12, event_time: at(42_000), kafka_topic: `${tenant}.${pipeline}.dead-letter`, kafka_partition: 0, kafka_offset: 0 },
    ]);
    await insert('model_versions', [
      { tenant, pipeline, version: 0, parent_version: null, round: 0, strategy: 'fedavg', weights_sha256: 'a'.repeat(64), total_examples: 0, num_contributors: 0, rejected_count: 0, metrics: {}, created_at: at(-1_000) },
      { tenant, pipeline, version: 1, parent_version: 0, round: 1, strategy: 'fedavg', weights_sha256: 'b'.repeat(64), total_examples: 600, num_contributors: 3, rejected_count: 1, metrics: { loss: 0.6 }, created_at: at(50_000) },
    ]);
    await insert('contributions', [
      { tenant, pipeline, version: 1, update_id: 'u1', node_id: 'n1', round: 1, num_examples: 200, weight: 200 / 600, created_at: at(50_000) },
      { tenant, pipeline, version: 1, update_id: 'u2', node_id: 'n2', round: 1, num_examples: 200, weight: 200 / 600, created_at: at(50_000) },
      { tenant, pipeline, version: 1, update_id: 'u3', node_id: 'n3', round: 1, num_examples: 200, weight: 200 / 600, created_at: at(50_000) },
    ]);
    await insert('audit_log', [
      { tenant, pipeline, event_id: 'e1', event_time: at(41_000), actor: 'aggregator', action: 'UPDATE_REJECTED', round: 1, version: null, node_id: 'n4', update_id: 'u4', reason: 'norm bound', details: { norm: '1e6' } },
      { tenant, pipeline, event_id: 'e2', event_time: at(50_000), actor: 'aggregator', action: 'VERSION_PUBLISHED', round: 1, version: 1, details: {} },
    ]);

    // The at-least-once sink after a crash: part of a batch again, in a different block, plus new rows.
    await insert('telemetry_events', [telemetry('n1', 'HEARTBEAT', 1, 1_000), telemetry('n1', 'METRICS', 2, 2_000, { cpu: 0.5, loss: 2 }), telemetry('n2', 'HEARTBEAT', 6, 63_000)]);
    await insert('updates', [update('u2', 'n2', 1, 0.7, 0.7, 20_000), update('u3', 'n3', 1, 0.5, 0.8, 30_000)]);
    await insert('contributions', [{ tenant, pipeline, version: 1, update_id: 'u3', node_id: 'n3', round: 1, num_examples: 200, weight: 200 / 600, created_at: at(50_000) }]);
    await insert('audit_log', [{ tenant, pipeline, event_id: 'e2', event_time: at(50_000), actor: 'aggregator', action: 'VERSION_PUBLISHED', round: 1, version: 1, details: {} }]);
    await insert('model_versions', [{ tenant, pipeline, version: 1, parent_version: 0, round: 1, strategy: 'fedavg', weights_sha256: 'b'.repeat(64), total_examples: 600, num_contributors: 3, rejected_count: 1, metrics: { loss: 0.6 }, created_at: at(50_000) }]);
    // The aggregator's decision on u1, written over its 'received' row.
    await insert('updates', [{ ...update('u1', 'n1', 1, 0.9, 0.6, 10_000), status: 'accepted' }]);
  });

  it('reads rows back with parameterized queries, one pipeline at a time', async () => {
    expect(await count('SELECT count() AS n FROM telemetry_events FINAL WHERE pipeline = {pipeline:String}')).toBe(6);
    expect(await count('SELECT count() AS n FROM telemetry_events FINAL WHERE pipeline = {pipeline:String}', { pipeline: other })).toBe(1);
    const versions = await rows(
      'SELECT version, parent_version, weights_sha256 FROM model_versions FINAL WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} ORDER BY version',
      { tenant, pipeline },
    );
    expect(versions).toEqual([
      { version: '0', parent_version: null, weights_sha256: 'a'.repeat(64) },
      { version: '1', parent_version: '0', weights_sha256: 'b'.repeat(64) },
    ]);
    const audit = await rows<{ action: string; details: Record<string, string> }>(
      'SELECT action, details FROM audit_log FINAL WHERE pipeline = {pipeline:String} AND update_id = {update:String}', { pipeline, update: 'u4' });
    expect(audit).toEqual([{ action: 'UPDATE_REJECTED', details: { norm: '1e6' } }]);
  });

  it('keeps redelivered rows until merged, and FINAL / LIMIT 1 BY / argMax give exact answers', async () => {
    expect(await count('SELECT count() AS n FROM telemetry_events WHERE pipeline = {pipeline:String}')).toBeGreaterThan(6);
    expect(await count('SELECT count() AS n FROM (SELECT 1 FROM telemetry_events WHERE pipeline = {pipeline:String} ORDER BY inserted_at DESC LIMIT 1 BY kafka_partition, kafka_offset)')).toBe(6);

    expect(await count('SELECT count() AS n FROM updates WHERE pipeline = {pipeline:String}')).toBe(7);
    expect(await count('SELECT count() AS n FROM updates FINAL WHERE pipeline = {pipeline:String}')).toBe(4);
    const status = await rows('SELECT update_id, status FROM updates FINAL WHERE pipeline = {pipeline:String} ORDER BY update_id', { pipeline });
    expect(status).toEqual([
      { update_id: 'u1', status: 'accepted' }, { update_id: 'u2', status: 'received' }, { update_id: 'u3', status: 'received' }, { update_id: 'u4', status: 'received' },
    ]);
    const viaArgMax = await rows('SELECT update_id, argMax(status, status_rank) AS status FROM updates WHERE pipeline = {pipeline:String} GROUP BY update_id ORDER BY update_id', { pipeline });
    expect(viaArgMax).toEqual(status);

    expect(await count('SELECT count() AS n FROM contributions FINAL WHERE pipeline = {pipeline:String} AND version = 1')).toBe(3);
    expect(await count('SELECT sum(num_examples) AS n FROM contributions FINAL WHERE pipeline = {pipeline:String} AND version = 1')).toBe(600);
    expect(await count('SELECT count() AS n FROM audit_log FINAL WHERE pipeline = {pipeline:String}')).toBe(2);
    expect(await count('SELECT count() AS n FROM model_versions FINAL WHERE pipeline = {pipeline:String}')).toBe(2);
  });

  it('drops a retried insert block at once: identical rows, or the same insert_deduplication_token', async () => {
    // Every column given (inserted_at too, else its DEFAULT differs between the two inserts).
    const insertedAt = Date.now();
    const block = [telemetry('n7', 'HEARTBEAT', 100, 5_000, { cpu: 0.2 }), telemetry('n7', 'HEARTBEAT', 101, 6_000, { cpu: 0.4 })].map((r) => ({ ...r, inserted_at: insertedAt }));
    await ch.client.insert({ table: 'telemetry_events', values: block, format: 'JSONEachRow' });
    await ch.client.insert({ table: 'telemetry_events', values: block, format: 'JSONEachRow' });
    expect(await count("SELECT count() AS n FROM telemetry_events WHERE pipeline = {pipeline:String} AND node_id = 'n7'")).toBe(2);
    expect(await count("SELECT count() AS n FROM heartbeats WHERE pipeline = {pipeline:String} AND node_id = 'n7'")).toBe(2);
    // The roll-up target dropped the retried block too, so even the average is exact.
    const [avg] = await rows<{ cpu: number }>("SELECT avgMapMerge(metrics_avg)['cpu'] AS cpu FROM node_health_1m WHERE pipeline = {pipeline:String} AND node_id = 'n7'", { pipeline });
    expect(avg?.cpu).toBeCloseTo(0.3, 9);

    // A token names the batch (topic, partition, offsets), whatever the rows' defaults.
    const token = { insert_deduplication_token: `${tenant}.${pipeline}.telemetry:0:200-200` };
    for (let i = 0; i < 2; i++) {
      await ch.client.insert({ table: 'telemetry_events', values: [telemetry('n8', 'HEARTBEAT', 200, 7_000)], format: 'JSONEachRow', clickhouse_settings: token });
    }
    expect(await count("SELECT count() AS n FROM telemetry_events WHERE pipeline = {pipeline:String} AND node_id = 'n8'")).toBe(1);
    expect(await count("SELECT count() AS n FROM heartbeats WHERE pipeline = {pipeline:String} AND node_id = 'n8'")).toBe(1);
    // The token applied to its insert only (chdb would otherwise keep it for the session).
    await ch.client.insert({ table: 'telemetry_events', values: [telemetry('n8', 'HEARTBEAT', 201, 8_000)], format: 'JSONEachRow' });
    expect(await count("SELECT count() AS n FROM telemetry_events WHERE pipeline = {pipeline:String} AND node_id = 'n8'")).toBe(2);
    expect(await rows("SELECT value FROM system.settings WHERE name = 'insert_deduplication_token'")).toEqual([{ value: '' }]);
  });

  it('answers "which nodes\' data shaped version N?" from the lineage tables', async () => {
    const lineage = await rows(
      `SELECT c.node_id AS node_id, c.update_id AS update_id, c.num_examples AS num_examples, v.weights_sha256 AS sha
       FROM contributions AS c FINAL
       INNER JOIN (SELECT tenant, pipeline, version, weights_sha256 FROM model_versions FINAL) AS v USING (tenant, pipeline, version)
       WHERE c.pipeline = {pipeline:String} AND c.version = {version:UInt64}
       ORDER BY node_id`,
      { pipeline, version: 1 },
    );
    expect(lineage).toEqual(['n1', 'n2', 'n3'].map((n, i) => ({ node_id: n, update_id: `u${i + 1}`, num_examples: '200', sha: 'b'.repeat(64) })));
  });

  it('fills heartbeats from telemetry, HEARTBEAT records only', async () => {
    const hb = await rows('SELECT node_id, count() AS n FROM heartbeats FINAL WHERE pipeline = {pipeline:String} GROUP BY node_id ORDER BY node_id', { pipeline });
    expect(hb).toEqual([{ node_id: 'n1', n: '2' }, { node_id: 'n2', n: '2' }, { node_id: 'n7', n: '2' }, { node_id: 'n8', n: '2' }]);
  });

  it('keeps node_health_1m per node per minute, counting redelivered events once', async () => {
    const health = await rows<{ node_id: string; minute: string; events: string; heartbeats: string; cpu_max: number; last_round: string }>(
      `SELECT node_id, minute, uniqExactMerge(events) AS events, uniqExactMerge(heartbeats) AS heartbeats,
              maxMap(metrics_max)['cpu'] AS cpu_max, max(last_round) AS last_round
       FROM node_health_1m WHERE pipeline = {pipeline:String} AND node_id IN ('n1', 'n2')
       GROUP BY node_id, minute ORDER BY node_id, minute`,
      { pipeline },
    );
    const minuteOf = (ms: number): string => new Date(Math.floor(at(ms) / 60_000) * 60_000).toISOString().replace('T', ' ').slice(0, 19);
    const expected = new Map<string, { events: number; heartbeats: number; cpu: number }>();
    const add = (node: string, ms: number, hb: boolean, cpu = 0): void => {
      const key = `${node} ${minuteOf(ms)}`;
      const e = expected.get(key) ?? { events: 0, heartbeats: 0, cpu: 0 };
      expected.set(key, { events: e.events + 1, heartbeats: e.heartbeats + (hb ? 1 : 0), cpu: Math.max(e.cpu, cpu) });
    };
    add('n1', 1_000, true); add('n1', 2_000, false, 0.5); add('n2', 3_000, true); add('n1', 61_000, true); add('n2', 62_000, false, 0.9); add('n2', 63_000, true);
    expect(health.map((h) => [`${h.node_id} ${h.minute}`, { events: Number(h.events), heartbeats: Number(h.heartbeats), cpu: h.cpu_max }]))
      .toEqual([...expected.entries()].sort(([a], [b]) => a.localeCompare(b)));
    expect(health.every((h) => h.last_round === '1')).toBe(true);
  });

  it('keeps round_summary exact under redelivery, readable through round_stats', async () => {
    const [r] = await rows<Record<string, unknown>>('SELECT * FROM round_stats WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND round = 1', { tenant, pipeline });
    expect(r).toMatchObject({
      base_version: '0', version: '1', participants: '4', updates: '4', accepted: '3', rejected: '1', min_updates: 2, target_updates: 3,
      update_span_ms: '30000', duration_ms: '50000',
    });
    expect((r?.loss_values as number[]).slice().sort((a, b) => a - b)).toEqual([0.5, 0.7, 0.9, 9.9]);
    expect((r?.loss_quantiles as number[])).toHaveLength(5);
    expect((r?.loss_quantiles as number[])[2]).toBeCloseTo(0.8, 6); // median of 0.5, 0.7, 0.9, 9.9
    expect((r?.accuracy_values as number[]).slice().sort()).toEqual([0.1, 0.6, 0.7, 0.8]);
    expect(new Date(`${String(r?.deadline)}Z`).getTime()).toBe(at(180_000));
    expect(new Date(`${String(r?.opened_at)}Z`).getTime()).toBe(at(0));

    // Stragglers by query: nodes with an update after the round's deadline, or none at all.
    const late = await rows(
      `SELECT u.node_id AS node_id FROM updates AS u FINAL
       INNER JOIN (SELECT tenant, pipeline, round, deadline FROM round_stats) AS s USING (tenant, pipeline, round)
       WHERE u.pipeline = {pipeline:String} AND u.created_at > s.deadline`,
      { pipeline },
    );
    expect(late).toEqual([]);
  });

  it('keeps tenants and pipelines apart in every roll-up', async () => {
    expect(await count('SELECT count() AS n FROM round_stats WHERE pipeline = {pipeline:String}', { pipeline: other })).toBe(0);
    expect(await count('SELECT uniqExactMerge(heartbeats) AS n FROM node_health_1m WHERE pipeline = {pipeline:String}', { pipeline: other })).toBe(1);
  });
});

describe('closing', () => {
  it('maps use after close to a non-retriable ANALYTICS_UNAVAILABLE, and frees the directory for another one', async () => {
    const extra = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
    const raw = extra.client;
    await extra.close();
    await extra.close(); // idempotent
    await ch.close();
    const h = await ch.health();
    expect(h.success).toBe(false);
    expect(h.error?.code).toBe('ANALYTICS_UNAVAILABLE');
    expect(h.error?.retriable).toBe(false);
    await expect(raw.query({ query: 'SELECT 1' })).rejects.toThrow(/closed/);

    const moved = await createAnalyticsClient({ path: join(root, 'elsewhere'), database: 'fedstream_other', logger });
    try {
      expect((await moved.health()).success).toBe(true);
      const rs = await moved.client.query({ query: 'SELECT currentDatabase() AS db', format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ db: 'fedstream_other' }]);
    } finally {
      await moved.close();
    }
    // Reopening the first directory finds its data again.
    ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
    expect(await count('SELECT count() AS n FROM updates FINAL WHERE pipeline = {pipeline:String}')).toBe(4);
  });
});
