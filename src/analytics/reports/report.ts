/**
 * Reports from ClickHouse alone (plus, for the compliance report's hash check, the models topic):
 *
 * - `complianceReport`: which nodes and updates shaped each version (lineage, with the examples they
 *   counted), the audit trail of decisions and rejections, the retention in force (manifest and the
 *   tables' TTLs), and the sha256 chain of versions, each hash checked against the audit log and,
 *   when a transport is given, recomputed from the weights on the models topic (OK / MISMATCH).
 * - `trainingReport`: convergence and participation, with plots.
 *
 * Each comes as Markdown and as one self-contained HTML file (inline CSS, plots as inline SVG, no
 * scripts, no external resources). Every figure comes from the named queries in
 * `schemas/clickhouse/queries/`, so an analyst can reproduce any table of a report.
 */
import { unpackTensors, weightsSha256 } from '../../codec/index.ts';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { Manifest } from '../../config/manifest.ts';
import { readToEnd } from '../../protocol/log.ts';
import { pipelineTopics, topicSpecs } from '../../protocol/topics.ts';
import { PayloadReader, decode } from '../../protocol/wire.ts';
import type { Transport } from '../../transport/types.ts';
import { toAnalyticsError, type AnalyticsClient } from '../clickhouse/client.ts';
import { SCHEMA_VARIABLE_DEFAULTS, retentionVariables } from '../clickhouse/ddl.ts';
import { runQuery, type QueryName } from '../queries.ts';
import { PALETTE, barChart, escapeXml, heatmap, lineChart } from './svg.ts';

type Row = Record<string, unknown>;

export interface Report {
  title: string;
  markdown: string;
  html: string;
}

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

export interface TrainingReportOptions {
  analytics: AnalyticsClient;
  manifest: Manifest;
  logger?: Logger;
  now?: Date;
}

export type ChainStatus = 'OK' | 'MISMATCH';

/** One version's hash check. `topic` is undefined when the models topic was not read. */
export interface ChainEntry {
  version: number;
  parentVersion: number | null;
  weightsSha256: string;
  /** The parent exists in ClickHouse (or this is the initial model). */
  parentOk: boolean;
  /** The hash announced in the VERSION_PUBLISHED audit event equals the stored one. */
  auditOk: boolean;
  /** The models topic: OK (recomputed hash = stored hash), MISMATCH, MISSING (no such version on the topic). */
  topic?: 'OK' | 'MISMATCH' | 'MISSING';
  /** The hash recomputed from the weights on the models topic. */
  recomputedSha256?: string;
  status: ChainStatus;
  /** What is wrong, for people; empty when OK. */
  problems: string[];
}

export interface ComplianceReport extends Report {
  version: number | undefined;
  chain: ChainEntry[];
  /** Rows of the `lineage` query for the reported version. */
  lineage: Row[];
  /** Rows of the `lineage_nodes` query: the nodes whose data shaped the reported version. */
  nodes: Row[];
  retention: RetentionEntry[];
}

export interface RetentionEntry {
  table: string;
  /** The TTL clause in force, from SHOW CREATE TABLE ('' when the table has none or is missing). */
  ttl: string;
  /** Days in that TTL, when it is `+ INTERVAL n DAY` (toIntervalDay(n)). */
  days: number | undefined;
  /** Days the manifest asks for. */
  expectedDays: number;
}

export interface TrainingReport extends Report {
  convergence: Row[];
  participation: Row[];
}

// ---------------------------------------------------------------------------------------------
// Document model, rendered to Markdown and HTML alike

type Align = 'l' | 'r';

type Block =
  | { kind: 'p'; text: string }
  | { kind: 'list'; items: string[] }
  | { kind: 'table'; headers: string[]; rows: string[][]; align?: Align[]; empty?: string }
  | { kind: 'figure'; svg: string; caption: string }
  | { kind: 'verdict'; ok: boolean; text: string };

interface Section {
  id: string;
  title: string;
  blocks: Block[];
}

interface Doc {
  title: string;
  subtitle: string;
  meta: Array<[string, string]>;
  sections: Section[];
}

function mdCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Plain text with `**bold**` and `code` spans: the only markup the report's prose uses. */
function inlineHtml(text: string): string {
  return escapeXml(text)
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

function renderMarkdown(doc: Doc): string {
  const out: string[] = [`# ${doc.title}`, '', doc.subtitle, ''];
  for (const [k, v] of doc.meta) out.push(`- **${k}:** ${v}`);
  out.push('');
  for (const s of doc.sections) {
    out.push(`## ${s.title}`, '');
    for (const b of s.blocks) {
      if (b.kind === 'p') out.push(b.text, '');
      else if (b.kind === 'verdict') out.push(`**${b.ok ? 'OK' : 'ATTENTION'}:** ${b.text}`, '');
      else if (b.kind === 'list') out.push(...b.items.map((i) => `- ${i}`), '');
      else if (b.kind === 'figure') out.push(`_Plot: ${b.caption} (drawn in the HTML report)._`, '');
      else if (b.rows.length === 0) out.push(`_${b.empty ?? 'None.'}_`, '');
      else {
        const align = b.headers.map((_, i) => (b.align?.[i] === 'r' ? '---:' : '---'));
        out.push(`| ${b.headers.map(mdCell).join(' | ')} |`, `| ${align.join(' | ')} |`);
        for (const r of b.rows) out.push(`| ${r.map(mdCell).join(' | ')} |`);
        out.push('');
      }
    }
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; margin: 0; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid #e5e5e5; }
p.subtitle { color: #555; margin: 0 0 12px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0 8px; color: #333; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
nav.toc { margin: 12px 0 0; font-size: 13px; }
nav.toc a { margin-right: 14px; color: #0072B2; text-decoration: none; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 13px; min-width: 50%; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 240px; }
th { background: #f4f6f8; font-weight: 600; position: sticky; top: 0; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfbfc; }
code, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
figure { margin: 12px 0 20px; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; border-radius: 4px; }
figcaption { color: #555; font-size: 12px; margin-top: 4px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
.verdict { padding: 8px 12px; border-radius: 4px; margin: 8px 0 12px; }
.verdict.ok { background: #e8f5ee; border-left: 4px solid #009E73; }
.verdict.bad { background: #fdeee8; border-left: 4px solid #D55E00; }
.status-OK { color: #00734f; font-weight: 600; }
.status-MISMATCH, .status-MISSING { color: #b34700; font-weight: 600; }
.empty { color: #777; font-style: italic; }
footer { margin-top: 40px; color: #777; font-size: 12px; }
`;

function renderHtml(doc: Doc): string {
  const body: string[] = [];
  body.push(`<h1>${escapeXml(doc.title)}</h1>`, `<p class="subtitle">${inlineHtml(doc.subtitle)}</p>`);
  body.push(`<dl class="meta">${doc.meta.map(([k, v]) => `<dt>${escapeXml(k)}</dt><dd>${inlineHtml(v)}</dd>`).join('')}</dl>`);
  body.push(`<nav class="toc">${doc.sections.map((s) => `<a href="#${s.id}">${escapeXml(s.title)}</a>`).join('')}</nav>`);
  for (const s of doc.sections) {
    body.push(`<section id="${s.id}"><h2>${escapeXml(s.title)}</h2>`);
    let figures: string[] = [];
    const flushFigures = (): void => {
      if (figures.length > 0) body.push(`<div class="figures">${figures.join('')}</div>`);
      figures = [];
    };
    for (const b of s.blocks) {
      if (b.kind === 'figure') {
        figures.push(`<figure>${b.svg}<figcaption>${inlineHtml(b.caption)}</figcaption></figure>`);
        continue;
      }
      flushFigures();
      if (b.kind === 'p') body.push(`<p>${inlineHtml(b.text)}</p>`);
      else if (b.kind === 'verdict') body.push(`<div class="verdict ${b.ok ? 'ok' : 'bad'}"><strong>${b.ok ? 'OK' : 'ATTENTION'}:</strong> ${inlineHtml(b.text)}</div>`);
      else if (b.kind === 'list') body.push(`<ul>${b.items.map((i) => `<li>${inlineHtml(i)}</li>`).join('')}</ul>`);
      else if (b.rows.length === 0) body.push(`<p class="empty">${escapeXml(b.empty ?? 'None.')}</p>`);
      else {
        const cls = (i: number, text: string): string => {
          const c: string[] = [];
          if (b.align?.[i] === 'r') c.push('r');
          if (/^[0-9a-f]{64}$/.test(text) || /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(text)) c.push('mono');
          if (text.length > 60) c.push('wrap');
          if (/^(OK|MISMATCH|MISSING)$/.test(text)) c.push(`status-${text}`);
          return c.length ? ` class="${c.join(' ')}"` : '';
        };
        const head = b.headers.map((h, i) => `<th${b.align?.[i] === 'r' ? ' class="r"' : ''}>${escapeXml(h)}</th>`).join('');
        const rows = b.rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i, c)}>${escapeXml(c)}</td>`).join('')}</tr>`).join('');
        body.push(`<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></div>`);
      }
    }
    flushFigures();
    body.push('</section>');
  }
  body.push(`<footer>Generated by FedStream from ClickHouse; every table comes from a named query in <code>schemas/clickhouse/queries/</code>.</footer>`);
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>${escapeXml(doc.title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n<main>\n${body.join('\n')}\n</main>\n</body>\n</html>\n`;
}

// ---------------------------------------------------------------------------------------------
// Value formatting

function num(v: unknown): number {
  if (v === null || v === undefined || v === '') return Number.NaN;
  return Number(v);
}

function optNum(v: unknown): number | null {
  const n = num(v);
  return Number.isFinite(n) ? n : null;
}

function int(v: unknown): string {
  const n = num(v);
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

function fixed(v: unknown, digits = 4): string {
  const n = num(v);
  return Number.isFinite(n) ? String(Number(n.toFixed(digits))) : '—';
}

function pct(v: unknown): string {
  const n = num(v);
  return Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : '—';
}

function str(v: unknown): string {
  return v === null || v === undefined || v === '' ? '—' : String(v);
}

/** ClickHouse's `2026-01-02 03:04:05.678` (UTC), shortened to seconds. */
function time(v: unknown): string {
  if (v === null || v === undefined || v === '') return '—';
  return String(v).replace(/\.\d+$/, '');
}

function retentionText(retentionMs: number): string {
  if (retentionMs < 0) return 'forever';
  const days = retentionMs / 86_400_000;
  return Number.isInteger(days) ? `${days} day${days === 1 ? '' : 's'}` : `${Math.round(retentionMs / 3_600_000)} h`;
}

function ms(v: unknown): string {
  const n = num(v);
  if (!Number.isFinite(n)) return '—';
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

// ---------------------------------------------------------------------------------------------
// Shared

async function q(analytics: AnalyticsClient, m: Manifest, name: QueryName, extra: Record<string, number> = {}): Promise<Row[]> {
  return runQuery<Row>(analytics, name, { tenant: m.tenant, pipeline: m.name, ...extra });
}

function engine(a: AnalyticsClient): string {
  return `${a.kind === 'embedded' ? 'embedded ClickHouse (chdb)' : 'ClickHouse server'} at ${a.location}, database ${a.database}`;
}

function stamp(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
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

// ---------------------------------------------------------------------------------------------
// Compliance

/** Reads every ModelVersion on the models topic and recomputes its weights' sha256. */
async function hashesOnTopic(transport: Transport, m: Manifest, upTo: number | undefined, logger?: Logger): Promise<Map<number, { declared: string; recomputed: string }>> {
  const reader = new PayloadReader();
  const out = new Map<number, { declared: string; recomputed: string }>();
  await readToEnd(transport, pipelineTopics(m).models, (msg) => {
    const { payload, failures } = reader.accept(msg);
    for (const f of failures) logger?.warn({ err: f.error, offset: msg.offset }, 'unreadable record on the models topic');
    if (!payload) return;
    try {
      const v = decode('ModelVersion', payload.bytes);
      if (upTo !== undefined && Number(v.version) > upTo) return;
      out.set(Number(v.version), { declared: v.weightsSha256, recomputed: weightsSha256(unpackTensors(v.tensors)) });
    } catch (err) {
      logger?.warn({ err, offset: payload.firstOffset }, 'unreadable model version on the models topic');
    }
  }, { groupPrefix: `${m.tenant}.${m.name}.report` });
  return out;
}

function checkChain(rows: Row[], topic: Map<number, { declared: string; recomputed: string }> | undefined, upTo: number | undefined): ChainEntry[] {
  const entries: ChainEntry[] = rows.map((r) => {
    const version = num(r.version);
    const sha = String(r.weights_sha256);
    const problems: string[] = [];
    const parentOk = Number(r.parent_ok) === 1;
    const auditOk = Number(r.audit_ok) === 1;
    if (!parentOk) problems.push(`parent version ${str(r.parent_version)} is not in ClickHouse`);
    if (!auditOk) problems.push(r.published_sha256 ? `the VERSION_PUBLISHED audit event announced ${r.published_sha256}` : 'no VERSION_PUBLISHED audit event');
    const e: ChainEntry = { version, parentVersion: optNum(r.parent_version), weightsSha256: sha, parentOk, auditOk, status: 'OK', problems };
    if (topic) {
      const t = topic.get(version);
      if (!t) {
        e.topic = 'MISSING';
        problems.push('not on the models topic');
      } else {
        e.recomputedSha256 = t.recomputed;
        e.topic = t.recomputed === sha && t.declared === sha ? 'OK' : 'MISMATCH';
        if (t.recomputed !== sha) problems.push(`the weights on the models topic hash to ${t.recomputed}`);
        if (t.declared !== t.recomputed) problems.push(`the record on the topic declares ${t.declared}`);
      }
    }
    e.status = problems.length === 0 ? 'OK' : 'MISMATCH';
    return e;
  });
  if (topic) {
    const known = new Set(entries.map((e) => e.version));
    for (const [version, t] of [...topic].sort((a, b) => a[0] - b[0])) {
      if (known.has(version) || (upTo !== undefined && version > upTo)) continue;
      entries.push({
        version, parentVersion: null, weightsSha256: '', parentOk: false, auditOk: false, topic: 'OK', recomputedSha256: t.recomputed,
        status: 'MISMATCH', problems: ['on the models topic but not in ClickHouse (the sink has not written it)'],
      });
    }
  }
  return entries.sort((a, b) => a.version - b.version);
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
    summary.push({ kind: 'p', text: 'No model version has been written to ClickHouse for this pipeline yet.' });
  } else {
    summary.push({
      kind: 'p',
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

  sections.push({
    id: 'lineage',
    title: 'Lineage: the updates behind each version',
    blocks: [
      { kind: 'p', text: `Version ${str(target)} and its ancestors, newest first. Weight is what the strategy gave the update (FedAvg: its share of the round's examples). Query: \`lineage\`.` },
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
        kind: 'p',
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
      { kind: 'p', text: `${trail.length} decision${trail.length === 1 ? '' : 's'}${o.version === undefined ? '' : ` up to round ${targetRound} (version ${target})`}, in time order (UTC). Query: \`audit_trail\`.` },
      {
        kind: 'table',
        headers: ['time', 'action', 'round', 'version', 'node', 'update id', 'code', 'reason'],
        align: ['l', 'l', 'r', 'r', 'l', 'l', 'l', 'l'],
        rows: trail.map((e) => [time(e.event_time), String(e.action), str(e.round), str(e.version), str(e.node_id), str(e.update_id), str(e.code), str(e.reason)]),
        empty: 'No audit events.',
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

  const doc: Doc = {
    title: `Compliance report: ${m.tenant}/${m.name}`,
    subtitle: 'Which nodes and updates shaped each model version, every decision and rejection, the retention in force, and the integrity of the version hash chain.',
    meta: [
      ['Pipeline', `${m.tenant}/${m.name}${m.description ? ` — ${m.description}` : ''}`],
      ['Version', target === undefined ? 'none yet' : `${target}${o.version === undefined ? ' (latest)' : ''}`],
      ['Source', engine(analytics)],
      ['Hash check', topicHashes ? `against the audit log and the weights on the models topic (${pipelineTopics(m).models}, ${topicHashes.size} versions re-hashed)` : 'against the audit log (no Kafka given: the weights were not re-hashed)'],
      ['Generated', stamp(now)],
    ],
    sections,
  };
  return {
    title: doc.title, markdown: renderMarkdown(doc), html: renderHtml(doc),
    version: target, chain, lineage, nodes, retention,
  };
}

// ---------------------------------------------------------------------------------------------
// Training

/** The training report: convergence and participation, with plots. */
export async function trainingReport(o: TrainingReportOptions): Promise<TrainingReport> {
  const { analytics, manifest: m } = o;
  const now = o.now ?? new Date();
  const [convergence, participation, matrix, rounds, stragglers, reasons, contributed, health] = await Promise.all([
    q(analytics, m, 'convergence'),
    q(analytics, m, 'participation'),
    q(analytics, m, 'participation_matrix'),
    q(analytics, m, 'round_summary'),
    q(analytics, m, 'stragglers'),
    q(analytics, m, 'rejections_by_reason'),
    q(analytics, m, 'data_contributed'),
    q(analytics, m, 'node_health'),
  ]);

  const nodeIds = [...new Set([
    ...participation.map((p) => String(p.node_id)),
    ...matrix.map((p) => String(p.node_id)),
    ...stragglers.map((s) => String(s.node_id)),
  ])].sort(naturalCompare);
  const last = convergence[convergence.length - 1];
  const first = convergence.find((c) => optNum(c.eval_accuracy) !== null);
  const sections: Section[] = [];

  const summary: string[] = [];
  summary.push(`${convergence.length} model version${convergence.length === 1 ? '' : 's'} over ${rounds.length} round${rounds.length === 1 ? '' : 's'} (${rounds.filter((r) => r.outcome === 'abandoned').length} abandoned), ${nodeIds.length} node${nodeIds.length === 1 ? '' : 's'}.`);
  if (last && optNum(last.eval_accuracy) !== null) {
    summary.push(`Evaluation accuracy of version ${str(last.version)}: **${pct(last.eval_accuracy)}**${first && first !== last ? ` (version ${str(first.version)}: ${pct(first.eval_accuracy)})` : ''}; loss ${fixed(last.eval_loss)}.`);
  } else if (last && optNum(last.train_accuracy) !== null) {
    summary.push(`Training accuracy reported for version ${str(last.version)}: **${pct(last.train_accuracy)}** (no held-out evaluation).`);
  }
  const accepted = participation.reduce((s, p) => s + num(p.accepted), 0);
  const rejected = participation.reduce((s, p) => s + num(p.rejected), 0);
  summary.push(`${accepted} update${accepted === 1 ? '' : 's'} accepted, ${rejected} rejected; ${stragglers.filter((s) => s.kind === 'missed').length} missed round participations, ${stragglers.filter((s) => s.kind !== 'missed').length} stale or late updates.`);
  sections.push({ id: 'summary', title: 'Summary', blocks: [{ kind: 'list', items: summary }] });

  // Convergence
  const byVersion = (key: string): Array<[number, number | null]> => convergence.map((c) => [num(c.version), optNum(c[key])]);
  const accValues = convergence.flatMap((c) => [optNum(c.eval_accuracy), optNum(c.train_accuracy)]).filter((v): v is number => v !== null);
  const unitRange = accValues.length > 0 && accValues.every((v) => v >= 0 && v <= 1);
  const accuracySeries = [
    { name: 'evaluation accuracy', points: byVersion('eval_accuracy'), color: PALETTE[0] },
    { name: 'training accuracy (nodes, weighted)', points: byVersion('train_accuracy'), color: PALETTE[1], dashed: true },
  ].filter((s) => s.points.some(([, y]) => y !== null));
  const lossSeries = [
    { name: 'evaluation loss', points: byVersion('eval_loss'), color: PALETTE[3] },
    { name: 'training loss (nodes, weighted)', points: byVersion('train_loss'), color: PALETTE[4], dashed: true },
  ].filter((s) => s.points.some(([, y]) => y !== null));
  sections.push({
    id: 'convergence',
    title: 'Convergence',
    blocks: [
      { kind: 'figure', caption: 'Accuracy by model version. Evaluation on the held-out set; training accuracy is the example-weighted mean the nodes reported.', svg: lineChart({ title: 'Accuracy by version', xLabel: 'model version', yLabel: 'accuracy', series: accuracySeries, ...(unitRange ? { yMin: 0, yMax: 1 } : {}), width: 540 }) },
      { kind: 'figure', caption: 'Loss by model version.', svg: lineChart({ title: 'Loss by version', xLabel: 'model version', yLabel: 'loss', series: lossSeries, width: 540 }) },
      {
        kind: 'table',
        headers: ['version', 'round', 'contributors', 'examples', 'rejected', 'eval accuracy', 'eval loss', 'train accuracy', 'train loss', 'round time', 'published (UTC)'],
        align: ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        rows: convergence.map((c) => [str(c.version), str(c.round), int(c.contributors), int(c.total_examples), int(c.rejected), pct(c.eval_accuracy), fixed(c.eval_loss), pct(c.train_accuracy), fixed(c.train_loss), ms(c.round_ms), time(c.created_at)]),
        empty: 'No versions yet.',
      },
    ],
  });

  // Participation
  const roundsSeen = [...new Set([...matrix.map((r) => num(r.round)), ...rounds.map((r) => num(r.round)), ...stragglers.map((s) => num(s.round))])].filter(Number.isFinite).sort((a, b) => a - b);
  const mostInRound = new Map<string, number>();
  for (const r of matrix) mostInRound.set(String(r.round), Math.max(mostInRound.get(String(r.round)) ?? 0, num(r.examples)));
  const cells = matrix.map((r) => {
    const most = mostInRound.get(String(r.round)) ?? 0;
    return {
      row: String(r.node_id),
      column: String(r.round),
      status: String(r.status),
      label: r.status === 'accepted' ? int(r.examples) : r.status === 'rejected' ? '✕' : '',
      // Darker for more examples: relative to the node that counted the most in the round.
      intensity: r.status === 'accepted' && most > 0 ? 0.35 + 0.65 * (num(r.examples) / most) : 1,
    };
  });
  const covered = new Set(cells.map((c) => `${c.row}/${c.column}`));
  for (const s of stragglers) {
    if (s.kind === 'missed' && !covered.has(`${s.node_id}/${s.round}`)) cells.push({ row: String(s.node_id), column: String(s.round), status: 'missed', label: '', intensity: 1 });
  }
  const byNode = new Map(participation.map((p) => [String(p.node_id), p]));
  sections.push({
    id: 'participation',
    title: 'Participation',
    blocks: [
      {
        kind: 'figure',
        caption: 'Who took part in which round. Accepted cells show the examples counted (darker: a larger share of the round); missed: expected (selected, or alive) but sent nothing.',
        svg: heatmap({
          title: 'Participation by node and round',
          xLabel: 'round',
          yLabel: 'node',
          rows: nodeIds,
          columns: roundsSeen.map(String),
          cells,
          legend: [
            { status: 'accepted', label: 'accepted', color: PALETTE[2] },
            { status: 'rejected', label: 'rejected', color: PALETTE[3] },
            { status: 'received', label: 'no decision', color: '#8c8c8c' },
            { status: 'missed', label: 'missed', color: PALETTE[1] },
          ],
          emptyLabel: 'not expected',
          width: 760,
        }),
      },
      {
        kind: 'figure',
        caption: 'Updates per node: accepted into a version, or rejected.',
        svg: barChart({
          title: 'Updates per node',
          xLabel: 'node',
          yLabel: 'updates',
          categories: nodeIds,
          series: [
            { name: 'accepted', values: nodeIds.map((n) => optNum(byNode.get(n)?.accepted) ?? 0), color: PALETTE[2] },
            { name: 'rejected', values: nodeIds.map((n) => optNum(byNode.get(n)?.rejected) ?? 0), color: PALETTE[3] },
          ],
        }),
      },
      {
        kind: 'figure',
        caption: 'Examples each node contributed, summed over every version.',
        svg: barChart({
          title: 'Examples contributed per node',
          xLabel: 'node',
          yLabel: 'examples',
          categories: nodeIds,
          series: [{ name: 'examples in accepted updates', values: nodeIds.map((n) => optNum(byNode.get(n)?.examples_contributed) ?? 0), color: PALETTE[0] }],
        }),
      },
      {
        kind: 'table',
        headers: ['node', 'updates sent', 'rounds', 'accepted', 'rejected', 'versions', 'examples', 'first update', 'last update'],
        align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l'],
        rows: [...participation].sort((a, b) => naturalCompare(String(a.node_id), String(b.node_id))).map((p) => [
          String(p.node_id), int(p.updates_sent), int(p.rounds_participated), int(p.accepted), int(p.rejected), int(p.versions_contributed), int(p.examples_contributed), time(p.first_update), time(p.last_update),
        ]),
        empty: 'No node sent an update.',
      },
    ],
  });

  // Rounds
  sections.push({
    id: 'rounds',
    title: 'Rounds',
    blocks: [
      {
        kind: 'figure',
        caption: 'Updates per round by outcome.',
        svg: barChart({
          title: 'Updates per round',
          xLabel: 'round',
          yLabel: 'updates',
          categories: rounds.map((r) => String(r.round)),
          series: [
            { name: 'accepted', values: rounds.map((r) => optNum(r.accepted)), color: PALETTE[2] },
            { name: 'rejected', values: rounds.map((r) => optNum(r.rejected)), color: PALETTE[3] },
          ],
          stacked: true,
        }),
      },
      {
        kind: 'table',
        headers: ['round', 'outcome', 'base', 'version', 'participants', 'accepted', 'rejected', 'extensions', 'median loss', 'median accuracy', 'duration', 'opened (UTC)'],
        align: ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        rows: rounds.map((r) => [
          str(r.round), str(r.outcome), str(r.base_version), str(r.version), int(r.participants), int(r.accepted), int(r.rejected), int(r.extensions),
          fixed((r.loss_quantiles as unknown[] | undefined)?.[2]), pct((r.accuracy_quantiles as unknown[] | undefined)?.[2]), ms(r.duration_ms), time(r.opened_at),
        ]),
        empty: 'No rounds yet.',
      },
    ],
  });

  sections.push({
    id: 'stragglers',
    title: 'Stragglers',
    blocks: [
      { kind: 'p', text: 'Missed: expected in the round (selected by its START, or alive while it was open when every node was selected) but sent no update. Stale: the update came after its round closed, or from an older version. Late: created after the deadline.' },
      {
        kind: 'table',
        headers: ['round', 'node', 'kind', 'expected as', 'deadline (UTC)', 'update created', 'code', 'last heartbeat'],
        align: ['r', 'l', 'l', 'l', 'l', 'l', 'l', 'l'],
        rows: stragglers.map((s) => [str(s.round), str(s.node_id), str(s.kind), str(s.expected_as), time(s.deadline), time(s.update_created_at), str(s.reason_code), time(s.last_heartbeat)]),
        empty: 'No stragglers.',
      },
      {
        kind: 'table',
        headers: ['rejection code', 'rejections', 'nodes', 'rounds', 'example reason'],
        align: ['l', 'r', 'r', 'r', 'l'],
        rows: reasons.map((r) => [String(r.reason_code), int(r.rejections), int(r.nodes), int(r.rounds), str(r.example_reason)]),
        empty: 'No update was rejected.',
      },
    ],
  });

  // Lineage
  const perVersion = new Map<string, Row[]>();
  for (const c of contributed) {
    const list = perVersion.get(String(c.version)) ?? [];
    list.push(c);
    perVersion.set(String(c.version), list);
  }
  sections.push({
    id: 'lineage',
    title: 'Lineage',
    blocks: [
      { kind: 'p', text: 'Which nodes\' data went into each version, with the examples each counted and its share of the version. Query: `data_contributed` (and `lineage` for one version\'s full ancestry).' },
      {
        kind: 'table',
        headers: ['version', 'round', 'nodes', 'examples', 'contributions (node: examples, share)'],
        align: ['r', 'r', 'r', 'r', 'l'],
        rows: convergence.map((c) => {
          const list = perVersion.get(String(c.version)) ?? [];
          return [
            str(c.version), str(c.round), String(list.length), int(c.total_examples),
            list.length === 0 ? '— (initial model)' : list.map((x) => `${String(x.node_id)}: ${int(x.examples)} (${pct(x.share)})`).join(', '),
          ];
        }),
        empty: 'No versions yet.',
      },
    ],
  });

  // Node health
  const healthByNode = new Map<string, { heartbeats: number; events: number; lastSeen: string; minutes: number; rss?: number }>();
  for (const h of health) {
    const id = String(h.node_id);
    const e = healthByNode.get(id) ?? { heartbeats: 0, events: 0, lastSeen: '', minutes: 0 };
    e.heartbeats += num(h.heartbeats);
    e.events += num(h.events);
    e.minutes++;
    if (String(h.last_seen) > e.lastSeen) e.lastSeen = String(h.last_seen);
    const rss = optNum((h.metrics_max as Record<string, unknown> | undefined)?.rssMb);
    if (rss !== null) e.rss = Math.max(e.rss ?? 0, rss);
    healthByNode.set(id, e);
  }
  sections.push({
    id: 'health',
    title: 'Node health',
    blocks: [{
      kind: 'table',
      headers: ['node', 'heartbeats', 'telemetry events', 'active minutes', 'last seen (UTC)', 'peak RSS (MB)'],
      align: ['l', 'r', 'r', 'r', 'l', 'r'],
      rows: [...healthByNode].sort((a, b) => naturalCompare(a[0], b[0])).map(([id, e]) => [id, int(e.heartbeats), int(e.events), int(e.minutes), time(e.lastSeen), e.rss === undefined ? '—' : fixed(e.rss, 1)]),
      empty: 'No telemetry yet.',
    }],
  });

  const doc: Doc = {
    title: `Training report: ${m.tenant}/${m.name}`,
    subtitle: m.description ?? 'Convergence and participation of a federated learning pipeline.',
    meta: [
      ['Pipeline', `${m.tenant}/${m.name}`],
      ['Strategy', `${m.strategy.name}, ${m.rounds.count} rounds, target ${m.rounds.targetUpdates} updates (at least ${m.rounds.minUpdates})`],
      ['Training', `${m.training.epochs} epoch${m.training.epochs === 1 ? '' : 's'}, batch ${m.training.batchSize}, ${m.training.optimizer} at learning rate ${m.training.learningRate}`],
      ['Source', engine(analytics)],
      ['Generated', stamp(now)],
    ],
    sections,
  };
  return { title: doc.title, markdown: renderMarkdown(doc), html: renderHtml(doc), convergence, participation };
}

/** node-2 before node-10. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
