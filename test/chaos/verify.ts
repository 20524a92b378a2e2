/**
 * The chaos run's checks, after the pipeline finished: the versions against the uninterrupted run (SHA-256 of the
 * weights), every accepted update once in the Kafka log (lineage and audit trail), every update a node published
 * there, and every record of the log once in each ClickHouse table it feeds (counted with FINAL: the tables are
 * ReplacingMergeTree on the records' keys, docs/clickhouse.md).
 */
import type { AuditEventRecord, ModelUpdateRecord, ModelVersionRecord, RoundControlRecord, TelemetryEventRecord } from '../../src/codec/index.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { createAnalyticsClient } from '../../src/analytics/index.ts';
import { rejectedUpdateRow } from '../../src/analytics/sink/rows.ts';
import type { Logger } from '../../src/common/index.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { PayloadReader, decode } from '../../src/protocol/wire.ts';
import type { Transport } from '../../src/transport/types.ts';

export interface Verdict {
  /** The final version's weights SHA-256 (the run's) and the reference's. */
  finalSha: string;
  referenceSha: string;
  versionsEqual: boolean;
  lost: number;
  countedTwice: number;
  /** One line per violation: what, expected, got. */
  problems: string[];
  /** Rows per ClickHouse table (FINAL) and what the log says they should be. */
  tables: Record<string, { expected: number; got: number }>;
}

interface Logged<T> { value: T; partition: number; offset: string }

/** Every record of a topic, reassembled and decoded (committed records only, as any reader sees them). */
async function readAll<T>(t: Transport, m: Manifest, topic: string, decodeOne: (b: Buffer) => T): Promise<Logged<T>[]> {
  const reader = new PayloadReader(m.limits);
  const out: Logged<T>[] = [];
  await readToEnd(t, topic, (msg) => {
    const got = reader.accept(msg);
    if (got.payload) out.push({ value: decodeOne(got.payload.bytes), partition: msg.partition, offset: got.payload.firstOffset });
  }, { timeoutMs: 120_000 });
  return out;
}

function countBy<T>(xs: T[], key: (x: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(key(x), (m.get(key(x)) ?? 0) + 1);
  return m;
}

export interface VerifyInput {
  transport: Transport;
  manifest: Manifest;
  nodeIds: string[];
  reference: ModelVersionRecord[];
  /** Update ids the nodes logged as published (every incarnation's log). */
  publishedUpdateIds: string[];
  chdbPath: string;
  logger: Logger;
}

export async function verify(o: VerifyInput): Promise<Verdict> {
  const { transport: t, manifest: m } = o;
  const topics = pipelineTopics(m);
  const problems: string[] = [];
  let lost = 0;
  let twice = 0;
  const expectOnce = (what: string, counts: Map<string, number>) => {
    for (const [k, n] of counts) if (n > 1) { twice += n - 1; problems.push(`${what} ${k}: ${n} times in the log, expected once`); }
  };

  // ---- Kafka: versions and their lineage against the uninterrupted run.
  const versions = (await readAll(t, m, topics.models, (b) => decode('ModelVersion', b))).map((x) => x.value);
  expectOnce('model version', countBy(versions, (v) => String(v.version)));
  const byVersion = new Map(versions.map((v) => [Number(v.version), v]));
  let versionsEqual = versions.length > 0 && byVersion.size === o.reference.length;
  if (byVersion.size !== o.reference.length) problems.push(`versions: ${byVersion.size} distinct, the uninterrupted run has ${o.reference.length}`);
  for (const ref of o.reference) {
    const v = byVersion.get(Number(ref.version));
    if (!v) { lost++; versionsEqual = false; problems.push(`version ${ref.version}: missing from the log`); continue; }
    if (v.weightsSha256 !== ref.weightsSha256) { versionsEqual = false; problems.push(`version ${ref.version}: weights sha256 ${v.weightsSha256}, uninterrupted run ${ref.weightsSha256}`); }
    if (Number(v.parentVersion) !== Number(ref.parentVersion)) problems.push(`version ${ref.version}: parent ${v.parentVersion}, expected ${ref.parentVersion}`);
    const nodes = v.contributors.map((c) => c.nodeId).sort().join(',');
    const want = ref.contributors.map((c) => c.nodeId).sort().join(',');
    if (nodes !== want) { versionsEqual = false; problems.push(`version ${ref.version}: contributors ${nodes}, uninterrupted run ${want}`); }
  }
  const final = byVersion.get(Math.max(...byVersion.keys()));
  const finalRef = o.reference.at(-1);

  // ---- Kafka: every accepted update once in the lineage and once in the audit trail; every published update logged.
  const audit = await readAll(t, m, topics.audit, (b) => decode('AuditEvent', b));
  expectOnce('audit event', countBy(audit, (e) => e.value.eventId));
  const accepted = audit.filter((e) => e.value.action === 'UPDATE_ACCEPTED').map((e) => e.value.updateId ?? '');
  expectOnce('UPDATE_ACCEPTED of update', countBy(accepted, (id) => id));
  const contributions = versions.flatMap((v) => v.contributors.map((c) => ({ version: Number(v.version), ...c })));
  expectOnce('contribution of update', countBy(contributions, (c) => c.updateId));
  expectOnce('contribution of node and round', countBy(contributions, (c) => `${c.nodeId} to version ${c.version}`));
  const acceptedSet = new Set(accepted);
  for (const c of contributions) if (!acceptedSet.has(c.updateId)) { lost++; problems.push(`update ${c.updateId} (${c.nodeId}, version ${c.version}): counted in a version, no UPDATE_ACCEPTED in the audit trail`); }
  const contributed = new Set(contributions.map((c) => c.updateId));
  for (const id of acceptedSet) if (!contributed.has(id)) { lost++; problems.push(`update ${id}: UPDATE_ACCEPTED, but in no version`); }
  const published = audit.filter((e) => e.value.action === 'VERSION_PUBLISHED').length;
  if (published !== byVersion.size) problems.push(`VERSION_PUBLISHED events: ${published}, versions: ${byVersion.size}`);

  const updates = await readAll(t, m, topics.updates, (b) => decode('ModelUpdate', b));
  const inLog = new Set(updates.map((u) => u.value.updateId));
  for (const id of new Set(o.publishedUpdateIds)) if (!inLog.has(id)) { lost++; problems.push(`update ${id}: a node logged it published; not in the updates topic`); }
  const telemetry = await readAll(t, m, topics.telemetry, (b) => decode('TelemetryEvent', b));
  const control = await readAll(t, m, topics.control, (b) => decode('RoundControl', b));

  // ---- ClickHouse: each table's rows (FINAL) against the records of the log that feed it, by the table's key.
  const distinct = <T>(xs: T[], key: (x: T) => string) => new Set(xs.map(key)).size;
  const scope = { tenant: m.tenant, pipeline: m.name };
  const expected: Record<string, number> = {
    telemetry_events: telemetry.length,
    heartbeats: telemetry.filter((e) => (e.value as TelemetryEventRecord).kind === 'HEARTBEAT').length,
    rounds: distinct(control, (c) => { const r = c.value as RoundControlRecord; return `${r.round}/${r.createdAt}/${r.kind}`; }),
    updates: distinct(updates, (u) => { const r = u.value as ModelUpdateRecord; return `${r.round}/${r.nodeId}/${r.updateId}`; }),
    'updates accepted': acceptedSet.size,
    audit_log: distinct(audit, (e) => `${(e.value as AuditEventRecord).eventTime}/${e.value.eventId}`),
    rejected_updates: distinct(audit.flatMap((e) => {
      const row = rejectedUpdateRow(scope, e.value, { topic: topics.audit, partition: e.partition, offset: e.offset });
      return row ? [row] : [];
    }), (r) => `${r.event_time}/${r.kafka_topic}/${r.kafka_partition}/${r.kafka_offset}`),
    model_versions: byVersion.size,
    contributions: distinct(contributions, (c) => `${c.version}/${c.updateId}`),
  };
  const tables: Verdict['tables'] = {};
  const ch = await createAnalyticsClient({ path: o.chdbPath, database: m.analytics.database, logger: o.logger });
  try {
    const where = `WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}`;
    for (const [name, want] of Object.entries(expected)) {
      const table = name === 'updates accepted' ? 'updates' : name;
      const filter = name === 'updates accepted' ? ` AND status = 'accepted'` : '';
      const rs = await ch.client.query({ query: `SELECT count() AS n FROM ${ch.database}.${table} FINAL ${where}${filter}`, query_params: scope, format: 'JSONEachRow' });
      const got = Number(((await rs.json()) as { n: string }[])[0]!.n);
      tables[name] = { expected: want, got };
      if (got < want) { lost += want - got; problems.push(`ClickHouse ${name}: ${got} rows, the log has ${want} (${want - got} lost)`); }
      if (got > want) { twice += got - want; problems.push(`ClickHouse ${name}: ${got} rows, the log has ${want} (${got - want} counted twice)`); }
    }
  } finally {
    await ch.close();
  }
  return { finalSha: final?.weightsSha256 ?? '(none)', referenceSha: finalRef?.weightsSha256 ?? '(none)', versionsEqual: versionsEqual && problems.every((p) => !p.startsWith('version')), lost, countedTwice: twice, problems, tables };
}
