/**
 * The compliance report, from ClickHouse alone (plus, for the hash check, the models topic): which nodes and
 * updates shaped each version (lineage, with the examples they counted), the audit trail of decisions and
 * rejections, the retention in force (manifest and the tables' TTLs), and the sha256 chain of versions, each
 * hash checked against the audit log and, when a transport is given, recomputed from the weights on the
 * models topic (OK / MISMATCH). Every figure comes from the named queries in `schemas/clickhouse/queries/`.
 */
import { ConfigError } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import { participantRegistry, type ParticipantRegistry } from '../../protocol/index.ts';
import { pipelineTopics, topicSpecs } from '../../protocol/index.ts';
import type { Transport } from '../../transport/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import { toAnalyticsError } from '../clickhouse/errors.ts';
import { SCHEMA_VARIABLE_DEFAULTS, retentionVariables } from '../clickhouse/ddl.ts';
import type { Block, Document, Report, Section } from './document.ts';
import { engine, fixed, int, naturalCompare, num, q, retentionText, stamp, str, time, type Row } from './format.ts';
import { renderHtml } from './html.ts';
import { privacyBlocks } from './privacy.ts';
import { renderMarkdown } from './markdown.ts';
import { checkChain, hashesOnTopic, type ChainEntry } from './chain.ts';

export type { ChainEntry, ChainStatus } from './chain.ts';

/** What the compliance report reads, and about which version. */
export interface ComplianceReportOptions {
  analytics: AnalyticsClient;
  manifest: Manifest;
  /** Report on this version and its ancestors (default: the latest version). */
  version?: number;
  /** When given, every version's weights are read back from the models topic and their sha256 recomputed. */
  transport?: Transport;
  logger?: Logger;
  /** Timestamp printed in the report (default now). */
  now?: Date;
}

/** The compliance report, rendered, with the figures it was built from. */
export interface ComplianceReport extends Report {
  version: number | undefined;
  chain: ChainEntry[];
  /** Rows of the `lineage` query for the reported version. */
  lineage: Row[];
  /** Rows of the `lineage_nodes` query: the nodes whose data shaped the reported version. */
  nodes: Row[];
  retention: RetentionEntry[];
  /** Who may speak for the pipeline: its enrolment mode and keys (`error` when they could not be read). */
  participants: ParticipantsEntry;
}

/** The participants section of the report. */
export interface ParticipantsEntry {
  /** `registry`, `open`, or `none` (the manifest lists no participants: nothing it runs can be verified). */
  enrolment: 'registry' | 'open' | 'none';
  /** Participants by role with their key ids and windows, when the keys could be read. */
  keys: { participant: string; role: string; keyId: string; validFrom?: string; validUntil?: string }[];
  error?: string;
}

/** The manifest's participants, as the report states them (never key material: ids and windows only). */
export function participantsOf(m: Manifest): ParticipantsEntry {
  if (!m.participants) return { enrolment: 'none', keys: [] };
  let reg: ParticipantRegistry;
  try {
    reg = participantRegistry(m);
  } catch (err) {
    return { enrolment: m.participants.enrolment, keys: [], error: (err as Error).message };
  }
  const iso = (ms?: number) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const keys = reg.keys().map((k) => ({ participant: k.participant, role: k.role, keyId: k.keyId, ...(k.validFrom === undefined ? {} : { validFrom: iso(k.validFrom) }), ...(k.validUntil === undefined ? {} : { validUntil: iso(k.validUntil) }) }));
  keys.sort((a, b) => a.role.localeCompare(b.role) || a.participant.localeCompare(b.participant) || a.keyId.localeCompare(b.keyId));
  return { enrolment: reg.enrolment, keys };
}

function enrolmentText(p: ParticipantsEntry): string {
  switch (p.enrolment) {
    case 'registry': return 'registry: an update counts only when signed by the key listed for its node; control, versions and audit only when signed by the aggregator\'s key';
    case 'open': return 'OPEN ENROLMENT: any node may join, and updates are not verified against a registry (the manifest asks for it: participants.enrolment: open)';
    default: return 'NONE: the manifest lists no participants; its records cannot be attributed';
  }
}

/** One table's retention: the TTL in force and the manifest's. */
export interface RetentionEntry {
  table: string;
  /** The TTL clause in force, from SHOW CREATE TABLE ('' when the table has none or is missing). */
  ttl: string;
  /** Days in that TTL, when it is `+ INTERVAL n DAY` (toIntervalDay(n)). */
  days: number | undefined;
  /** Days the manifest asks for. */
  expectedDays: number;
}

/** Which schema variable sets each table's TTL. */
const TTL_VARIABLE: Record<string, keyof typeof SCHEMA_VARIABLE_DEFAULTS> = {
  telemetry_events: 'retention_days_telemetry',
  heartbeats: 'retention_days_telemetry',
  node_health_1m: 'retention_days_health',
  updates: 'retention_days_updates',
  rejected_updates: 'retention_days_updates',
  rounds: 'retention_days_lineage',
  model_versions: 'retention_days_lineage',
  contributions: 'retention_days_lineage',
  round_summary: 'retention_days_lineage',
  audit_log: 'retention_days_audit',
};

async function retentionInForce(analytics: AnalyticsClient, m: Manifest): Promise<RetentionEntry[]> {
  const vars = { ...SCHEMA_VARIABLE_DEFAULTS, ...retentionVariables(m.retention) } as Record<string, string | number>;
  const out: RetentionEntry[] = [];
  for (const [table, variable] of Object.entries(TTL_VARIABLE)) {
    let statement = '';
    try {
      const rs = await analytics.client.query({ query: `SHOW CREATE TABLE ${analytics.database}.${table}`, format: 'JSONEachRow' });
      statement = String((await rs.json<{ statement: string }>())[0]?.statement ?? '');
    } catch (err) {
      const e = toAnalyticsError(err, `SHOW CREATE TABLE ${analytics.database}.${table}`);
      if (e.code === 'ANALYTICS_UNAVAILABLE') throw e;
    }
    const ttl = /\bTTL\s+([\s\S]+?)\s*(?:\bSETTINGS\b|\bCOMMENT\b|$)/.exec(statement)?.[1]?.replace(/\s+/g, ' ').trim() ?? '';
    const days = /toIntervalDay\((\d+)\)|INTERVAL\s+(\d+)\s+DAY/i.exec(ttl);
    out.push({ table, ttl, days: days ? Number(days[1] ?? days[2]) : undefined, expectedDays: Number(vars[variable]) });
  }
  return out;
}

/**
 * The compliance report: lineage, audit trail, retention, and the sha256 chain of versions.
 * Throws CONFIG_INVALID when `version` is not in ClickHouse.
 */
export async function complianceReport(o: ComplianceReportOptions): Promise<ComplianceReport> {
  const { analytics, manifest: m } = o;
  const now = o.now ?? new Date();
  const versions = await q(analytics, m, 'convergence');
  const latest = versions.length > 0 ? num(versions[versions.length - 1]!.version) : undefined;
  if (o.version !== undefined && !versions.some((v) => num(v.version) === o.version)) {
    throw new ConfigError('--version', `version ${o.version} of ${m.tenant}/${m.name} is not in ClickHouse (${latest === undefined ? 'no versions yet' : `versions 0 to ${latest}`})`);
  }
  const target = o.version ?? latest;
  const targetRow = versions.find((v) => num(v.version) === target);
  const [lineage, nodes, chainRows, audit, reasons, retention] = await Promise.all([
    target === undefined ? Promise.resolve([]) : q(analytics, m, 'lineage', { version: target }),
    target === undefined ? Promise.resolve([]) : q(analytics, m, 'lineage_nodes', { version: target }),
    q(analytics, m, 'version_chain'),
    q(analytics, m, 'audit_trail'),
    q(analytics, m, 'rejections_by_reason'),
    retentionInForce(analytics, m),
  ]);
  // Nodes in natural order (node-2 before node-10), as every report lists them; the lineage by version first.
  nodes.sort((a, b) => naturalCompare(String(a.node_id), String(b.node_id)));
  lineage.sort((a, b) => num(b.version) - num(a.version) || naturalCompare(String(a.node_id), String(b.node_id)) || String(a.update_id).localeCompare(String(b.update_id)));
  const topicHashes = o.transport ? await hashesOnTopic(o.transport, m, target, o.logger) : undefined;
  const chainScope = target === undefined ? chainRows : chainRows.filter((r) => num(r.version) <= target);
  const chain = checkChain(chainScope, topicHashes, target);

  const targetRound = targetRow ? num(targetRow.round) : Number.POSITIVE_INFINITY;
  const trail = audit.filter((e) => {
    if (o.version === undefined) return true;
    if (e.round !== null && e.round !== undefined) return num(e.round) <= targetRound;
    return e.version === null || e.version === undefined || num(e.version) <= target!;
  });

  const sections: Section[] = [];
  const shaped = nodes.map((n) => String(n.node_id));
  const examples = nodes.reduce((s, n) => s + num(n.examples), 0);
  const updates = nodes.reduce((s, n) => s + num(n.updates), 0);
  const summary: Block[] = [];
  if (target === undefined) {
    summary.push({ kind: 'paragraph', text: 'No model version has been written to ClickHouse for this pipeline yet.' });
  } else {
    summary.push({
      kind: 'paragraph',
      text: shaped.length > 0
        ? `**Version ${target}** was shaped by the data of **${shaped.length} node${shaped.length === 1 ? '' : 's'}** (${shaped.join(', ')}), through ${updates} accepted update${updates === 1 ? '' : 's'} counting ${examples.toLocaleString('en-US')} examples over its lineage of ${new Set(lineage.map((l) => String(l.version))).size} versions.`
        : `**Version ${target}** has no contributors in its lineage: it is the initial model.`,
    });
    const bad = chain.filter((c) => c.status !== 'OK');
    summary.push({
      kind: 'verdict',
      ok: bad.length === 0,
      text: bad.length === 0
        ? `the sha256 chain of versions 0 to ${target} is intact${topicHashes ? ', and every hash matches the weights on the models topic' : ' (checked against the audit log; the models topic was not read)'}.`
        : `the sha256 chain has problems at version${bad.length === 1 ? '' : 's'} ${bad.map((b) => b.version).join(', ')}: see "Version hash chain".`,
    });
  }
  sections.push({ id: 'summary', title: 'Summary', blocks: summary });

  sections.push({
    id: 'lineage-nodes',
    title: `Nodes whose data shaped version ${str(target)}`,
    blocks: [{
      kind: 'table',
      headers: ['node', 'versions contributed to', 'accepted updates', 'examples'],
      align: ['l', 'l', 'r', 'r'],
      rows: nodes.map((n) => [String(n.node_id), (n.versions as unknown[]).join(', '), int(n.updates), int(n.examples)]),
      empty: 'No node contributed.',
    }],
  });

  sections.push({ id: 'privacy', title: 'Differential privacy', blocks: privacyBlocks(m, await q(analytics, m, 'privacy')) });

  sections.push({
    id: 'lineage',
    title: 'Lineage: the updates behind each version',
    blocks: [
      { kind: 'paragraph', text: `Version ${str(target)} and its ancestors, newest first. Weight is what the strategy gave the update (FedAvg: its share of the round's examples). Query: \`lineage\`.` },
      {
        kind: 'table',
        headers: ['version', 'parent', 'round', 'strategy', 'node', 'update id', 'examples', 'weight'],
        align: ['r', 'r', 'r', 'l', 'l', 'l', 'r', 'r'],
        rows: lineage.map((l) => [str(l.version), str(l.parent_version), str(l.round), str(l.strategy), str(l.node_id), str(l.update_id), l.update_id ? int(l.num_examples) : '—', l.update_id ? fixed(l.weight, 4) : '—']),
        empty: 'No lineage.',
      },
    ],
  });

  sections.push({
    id: 'chain',
    title: 'Version hash chain',
    blocks: [
      {
        kind: 'paragraph',
        text: `Each version's \`weights_sha256\` as stored in ClickHouse, its parent, the hash announced in the audit log` +
          (topicHashes ? ', and the hash recomputed from the weights read back from the models topic.' : '. The models topic was not read (no Kafka given), so the weights were not re-hashed.'),
      },
      {
        kind: 'table',
        headers: ['version', 'parent', 'weights sha256', 'parent found', 'audit log', 'models topic', 'status', 'problems'],
        align: ['r', 'r', 'l', 'l', 'l', 'l', 'l', 'l'],
        rows: chain.map((c) => [
          String(c.version), str(c.parentVersion), c.weightsSha256 || '—', c.parentOk ? 'yes' : 'NO', c.auditOk ? 'OK' : 'MISMATCH',
          c.topic ?? 'not checked', c.status, c.problems.join('; '),
        ]),
        empty: 'No versions.',
      },
    ],
  });

  sections.push({
    id: 'rejections',
    title: 'Rejections by reason',
    blocks: [{
      kind: 'table',
      headers: ['reason code', 'rejections', 'nodes', 'rounds', 'first', 'last', 'example reason'],
      align: ['l', 'r', 'r', 'r', 'l', 'l', 'l'],
      rows: reasons.map((r) => [String(r.reason_code), int(r.rejections), int(r.nodes), int(r.rounds), time(r.first_at), time(r.last_at), str(r.example_reason)]),
      empty: 'No update was rejected.',
    }],
  });

  sections.push({
    id: 'audit',
    title: 'Audit trail',
    blocks: [
      { kind: 'paragraph', text: `${trail.length} decision${trail.length === 1 ? '' : 's'}${o.version === undefined ? '' : ` up to round ${targetRound} (version ${target})`}, in time order (UTC). Query: \`audit_trail\`.` },
      {
        kind: 'table',
        headers: ['time', 'action', 'round', 'version', 'node', 'update id', 'code', 'reason'],
        align: ['l', 'l', 'r', 'r', 'l', 'l', 'l', 'l'],
        rows: trail.map((e) => [time(e.event_time), String(e.action), str(e.round), str(e.version), str(e.node_id), str(e.update_id), str(e.code), str(e.reason)]),
        empty: 'No audit events.',
      },
    ],
  });

  const participants = participantsOf(m);
  sections.push({
    id: 'participants',
    title: 'Who may speak for the pipeline',
    blocks: [
      { kind: 'paragraph', text: `Enrolment: ${enrolmentText(participants)}. Records are signed with Ed25519 (RFC 8032) and verified by every reader (docs/security.md, "Signatures").` },
      participants.enrolment === 'registry' && !participants.error
        ? { kind: 'verdict', ok: true, text: `only the ${participants.keys.filter((k) => k.role === 'node').length} listed node keys and the aggregator's can write what the pipeline acts on.` }
        : { kind: 'verdict', ok: false, text: participants.error ? `the participants' keys could not be read: ${participants.error}` : `${enrolmentText(participants)}.` },
      {
        kind: 'table',
        headers: ['participant', 'role', 'key id', 'valid from', 'valid until'],
        align: ['l', 'l', 'l', 'l', 'l'],
        rows: participants.keys.map((k) => [k.participant, k.role, k.keyId, k.validFrom ?? '—', k.validUntil ?? '—']),
        empty: 'No keys listed.',
      },
    ],
  });

  const topicRetention = topicSpecs(m).map((spec) => `${spec.topic.slice(m.tenant.length + m.name.length + 2)} ${retentionText(Number(spec.configs?.['retention.ms'] ?? -1))}`);
  const ttlMismatch = retention.filter((r) => r.days !== undefined && r.days !== r.expectedDays);
  sections.push({
    id: 'retention',
    title: 'Retention in force',
    blocks: [
      {
        kind: 'list',
        items: [
          `Manifest: telemetry ${m.retention.telemetryDays} days, updates ${m.retention.updatesDays} days, audit ${m.retention.auditDays} days (lineage follows audit, node health follows telemetry, at least 90 days).`,
          `Kafka topics (\`retention.ms\`, from the manifest's \`topics.retention\` or the defaults): ${topicRetention.join(', ')}. The models topic always keeps every version.`,
        ],
      },
      {
        kind: 'table',
        headers: ['table', 'TTL in force (SHOW CREATE TABLE)', 'days', 'manifest days', 'matches'],
        align: ['l', 'l', 'r', 'r', 'l'],
        rows: retention.map((r) => [r.table, r.ttl || '—', r.days === undefined ? '—' : String(r.days), String(r.expectedDays), r.days === undefined ? '—' : r.days === r.expectedDays ? 'yes' : 'NO']),
      },
      ttlMismatch.length === 0
        ? { kind: 'verdict', ok: true, text: 'every table keeps its rows as long as the manifest asks.' }
        : {
          kind: 'verdict', ok: false,
          text: `${ttlMismatch.map((r) => r.table).join(', ')} keep${ttlMismatch.length === 1 ? 's' : ''} rows for a different time than the manifest asks: tables keep the TTL they were created with; apply the new one with ALTER TABLE … MODIFY TTL (docs/clickhouse.md, "Variables and retention").`,
        },
    ],
  });

  const doc: Document = {
    title: `Compliance report: ${m.tenant}/${m.name}`,
    subtitle: 'Which nodes and updates shaped each model version, every decision and rejection, the retention in force, and the integrity of the version hash chain.',
    meta: [
      { key: 'Pipeline', value: `${m.tenant}/${m.name}${m.description ? ` — ${m.description}` : ''}` },
      { key: 'Version', value: target === undefined ? 'none yet' : `${target}${o.version === undefined ? ' (latest)' : ''}` },
      { key: 'Source', value: engine(analytics) },
      { key: 'Enrolment', value: participants.enrolment === 'open' ? 'OPEN (any node may join; updates not verified)' : participants.enrolment === 'none' ? 'none (no participants listed)' : 'registry (signed records only)' },
      { key: 'Hash check', value: topicHashes ? `against the audit log and the weights on the models topic (${pipelineTopics(m).models}, ${topicHashes.size} versions re-hashed)` : 'against the audit log (no Kafka given: the weights were not re-hashed)' },
      { key: 'Generated', value: stamp(now) },
    ],
    sections,
  };
  return {
    title: doc.title, document: doc, markdown: renderMarkdown(doc), html: renderHtml(doc),
    version: target, chain, lineage, nodes, retention, participants,
  };
}
