/**
 * The training report: convergence and participation, with plots (svg.ts), rounds, stragglers, lineage per
 * version and node health. Every figure comes from the named queries in `schemas/clickhouse/queries/`.
 */
import type { Logger } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import type { Document, Report, Section } from './document.ts';
import { engine, fixed, int, ms, naturalCompare, num, optNum, pct, q, stamp, str, time, type Row } from './format.ts';
import { renderHtml } from './html.ts';
import { privacyLine } from './privacy.ts';
import { renderMarkdown } from './markdown.ts';
import { PALETTE, barChart, heatmap, lineChart } from './svg.ts';

/** What the training report reads. */
export interface TrainingReportOptions {
  analytics: AnalyticsClient;
  manifest: Manifest;
  logger?: Logger;
  now?: Date;
}

/** The training report, rendered, with the figures it was built from. */
export interface TrainingReport extends Report {
  convergence: Row[];
  participation: Row[];
}

/** The training report: convergence and participation, with plots. */
export async function trainingReport(o: TrainingReportOptions): Promise<TrainingReport> {
  const { analytics, manifest: m } = o;
  const now = o.now ?? new Date();
  const [convergence, participation, matrix, rounds, stragglers, reasons, contributed, health, processes] = await Promise.all([
    q(analytics, m, 'convergence'),
    q(analytics, m, 'participation'),
    q(analytics, m, 'participation_matrix'),
    q(analytics, m, 'round_summary'),
    q(analytics, m, 'stragglers'),
    q(analytics, m, 'rejections_by_reason'),
    q(analytics, m, 'data_contributed'),
    q(analytics, m, 'node_health'),
    q(analytics, m, 'node_processes'),
  ]);
  // Differential privacy (privacy.ts): one header line, only when the manifest has a privacy section.
  const privacy = m.privacy ? privacyLine(m, await q(analytics, m, 'privacy')) : undefined;

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
  const roundTime = new Map(rounds.map((r) => [String(r.round), r.duration_ms]));
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
      { kind: 'plot', caption: 'Accuracy by model version. Evaluation on the held-out set; training accuracy is the example-weighted mean the nodes reported.', svg: lineChart({ title: 'Accuracy by version', xLabel: 'model version', yLabel: 'accuracy', series: accuracySeries, ...(unitRange ? { yMin: 0, yMax: 1 } : {}), width: 540 }) },
      { kind: 'plot', caption: 'Loss by model version.', svg: lineChart({ title: 'Loss by version', xLabel: 'model version', yLabel: 'loss', series: lossSeries, width: 540 }) },
      {
        kind: 'table',
        headers: ['version', 'round', 'contributors', 'examples', 'rejected', 'eval accuracy', 'eval loss', 'train accuracy', 'train loss', 'round time', 'published (UTC)'],
        align: ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        // The round's time from one source for every table: the control records (round_summary's duration_ms,
        // START to CLOSE), not the aggregator's in-memory clock, which restarts with the process.
        rows: convergence.map((c) => [str(c.version), str(c.round), int(c.contributors), int(c.total_examples), int(c.rejected), pct(c.eval_accuracy), fixed(c.eval_loss), pct(c.train_accuracy), fixed(c.train_loss), ms(roundTime.get(String(c.round))), time(c.created_at)]),
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
        kind: 'plot',
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
        kind: 'plot',
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
        kind: 'plot',
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
        kind: 'plot',
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
        headers: ['round', 'outcome', 'base', 'version', 'participants', 'accepted', 'rejected', 'extensions', 'median loss (finite)', 'median accuracy (finite)', 'duration', 'opened (UTC)'],
        align: ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
        rows: rounds.map((r) => [
          str(r.round), str(r.outcome), str(r.base_version), str(r.version), int(r.participants), int(r.accepted), int(r.rejected), int(r.extensions),
          withNonFinite(fixed((r.loss_quantiles as unknown[] | undefined)?.[2]), r.loss_nonfinite),
          withNonFinite(pct((r.accuracy_quantiles as unknown[] | undefined)?.[2]), r.accuracy_nonfinite), ms(r.duration_ms), time(r.opened_at),
        ]),
        empty: 'No rounds yet.',
      },
    ],
  });

  sections.push({
    id: 'stragglers',
    title: 'Stragglers',
    blocks: [
      { kind: 'paragraph', text: 'Missed: expected in the round (selected by its START, or alive while it was open when every node was selected) but sent no update. Stale: the update came after its round closed, or from an older version. Late: created after the deadline.' },
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
      { kind: 'paragraph', text: 'Which nodes\' data went into each version, with the examples each counted and its share of the version. Query: `data_contributed` (and `lineage` for one version\'s full ancestry).' },
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
  // Memory belongs to processes: a node's own figure only where the node is its own process; a process that ran
  // several nodes (the demo) is shown once, in the table below, never once per node.
  const processOf = new Map<string, { label: string; nodes: string[] }>();
  const processRows: string[][] = [];
  for (const p of processes) {
    const nodes = (Array.isArray(p.nodes) ? p.nodes.map(String) : []).sort(naturalCompare);
    const label = `${str(p.host)} pid ${str(p.pid)}`;
    for (const n of nodes) processOf.set(n, { label, nodes });
    processRows.push([str(p.host), str(p.pid), nodes.join(', '), fixed(p.peak_rss_mb, 1)]);
  }
  const rssCell = (id: string, rss: number | undefined): string => {
    const p = processOf.get(id);
    if (p && p.nodes.length > 1) return `shared (${p.label})`;
    return rss === undefined ? '—' : fixed(rss, 1);
  };
  sections.push({
    id: 'health',
    title: 'Node health',
    blocks: [{
      kind: 'table',
      headers: ['node', 'heartbeats', 'telemetry events', 'active minutes', 'last seen (UTC)', 'peak RSS (MB)'],
      align: ['l', 'r', 'r', 'r', 'l', 'r'],
      rows: [...healthByNode].sort((a, b) => naturalCompare(a[0], b[0])).map(([id, e]) => [id, int(e.heartbeats), int(e.events), int(e.minutes), time(e.lastSeen), rssCell(id, e.rss)]),
      empty: 'No telemetry yet.',
    }, ...(processRows.length > 0 ? [{
      kind: 'table' as const,
      headers: ['host', 'pid', 'nodes in the process', 'peak RSS (MB)'],
      align: ['l', 'r', 'l', 'r'] as Array<'l' | 'r'>,
      rows: processRows.sort((a, b) => naturalCompare(a[2]!, b[2]!)),
      empty: 'No process reported its memory.',
    }] : [])],
  });

  const closed = rounds.filter((r) => r.outcome === 'closed').length;
  const decided = closed + rounds.filter((r) => r.outcome === 'abandoned').length;
  const doc: Document = {
    title: `Training report: ${m.tenant}/${m.name}`,
    subtitle: m.description ?? 'Convergence and participation of a federated learning pipeline.',
    meta: [
      { key: 'Pipeline', value: `${m.tenant}/${m.name}` },
      { key: 'Strategy', value: `${strategyLabel(m)}, target ${m.rounds.targetUpdates} updates (at least ${m.rounds.minUpdates})` },
      // The rounds that ran (from ClickHouse), not the manifest's count, which a run may not have reached or may have raised.
      { key: 'Rounds', value: `${decided} decided (${closed} closed, ${decided - closed} abandoned)${rounds.length > decided ? `, ${rounds.length - decided} open` : ''}; the manifest asks for ${m.rounds.count}` },
      ...(privacy ? [{ key: 'Privacy', value: privacy }] : []),
      { key: 'Training', value: `${m.training.epochs} epoch${m.training.epochs === 1 ? '' : 's'}, batch ${m.training.batchSize}, ${m.training.optimizer} at learning rate ${m.training.learningRate}` },
      { key: 'Source', value: engine(analytics) },
      { key: 'Generated', value: stamp(now) },
    ],
    sections,
  };
  return { title: doc.title, document: doc, markdown: renderMarkdown(doc), html: renderHtml(doc), convergence, participation };
}

/** A median over the finite values, with how many non-finite values (NaN, ±Inf) it left out, when any. */
function withNonFinite(median: string, nonFinite: unknown): string {
  const n = num(nonFinite);
  return Number.isFinite(n) && n > 0 ? `${median} (${n} non-finite)` : median;
}

/**
 * The strategy's name and the options the manifest sets (`fedadam (eta 0.05, beta1 0.9)`); unset options have the
 * defaults of docs/strategies.md. Central DP wraps the strategy (aggregator/strategies/dp-registry.ts), so it is named
 * here too (`fedavg with central DP, adaptive clipping`); its ε is the report's Privacy line.
 */
export function strategyLabel(m: Pick<Manifest, 'strategy' | 'privacy'>): string {
  const s = m.strategy;
  const options = Object.entries(s).filter(([k]) => k !== 'name').map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  const base = options.length ? `${s.name} (${options.join(', ')})` : s.name;
  return m.privacy?.central ? `${base} with central DP, ${m.privacy.central.clipping} clipping` : base;
}
