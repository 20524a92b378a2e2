/**
 * The demo's report: the analytics training report (convergence and participation plots, rounds,
 * stragglers, lineage per version, node health) with two sections of the compliance report added: the
 * nodes whose data shaped the final version, and every update behind it through its parent chain (with
 * update ids and weights). Everything in it comes from the named ClickHouse queries in
 * schemas/clickhouse/queries/, none of it from the demo's in-memory state.
 */
import type { AnalyticsClient } from '../analytics/index.ts';
import { complianceReport, trainingReport } from '../analytics/reports/report.ts';
import { runQuery } from '../analytics/queries.ts';
import { escapeXml } from '../analytics/reports/svg.ts';
import type { Manifest } from '../config/manifest.ts';

export interface DemoReportOptions {
  analytics: AnalyticsClient;
  manifest: Manifest;
  finalVersion: number;
  now?: Date;
}

export interface DemoReport {
  html: string;
  markdown: string;
}

/** The compliance report's sections the demo report adds, in order. */
export const LINEAGE_SECTIONS = [
  { id: 'lineage-nodes', as: 'lineage-nodes', title: 'Nodes behind the final version', heading: 'Nodes whose data shaped version' },
  { id: 'lineage', as: 'lineage-updates', title: 'Updates behind the final version', heading: 'Lineage: the updates behind each version' },
] as const;

/** `<section id="…">…</section>` of a rendered report (sections do not nest), or undefined. */
export function htmlSection(html: string, id: string): string | undefined {
  const start = html.indexOf(`<section id="${id}">`);
  if (start < 0) return undefined;
  const end = html.indexOf('</section>', start);
  return end < 0 ? undefined : html.slice(start, end + '</section>'.length);
}

/** The `## heading…` section of a rendered Markdown report, up to the next `## `, or undefined. */
export function markdownSection(markdown: string, headingPrefix: string): string | undefined {
  const start = markdown.indexOf(`\n## ${headingPrefix}`);
  if (start < 0) return undefined;
  const next = markdown.indexOf('\n## ', start + 4);
  return markdown.slice(start + 1, next < 0 ? undefined : next + 1).trimEnd() + '\n';
}

/** Adds sections to a rendered HTML report: before its footer, with links in its table of contents. */
export function insertSections(html: string, sections: Array<{ id: string; title: string; html: string }>): string {
  if (sections.length === 0) return html;
  const links = sections.map((s) => `<a href="#${s.id}">${escapeXml(s.title)}</a>`).join('');
  let out = html.includes('</nav>') ? html.replace('</nav>', `${links}</nav>`) : html;
  const body = sections.map((s) => s.html).join('\n');
  const at = out.lastIndexOf('<footer>');
  out = at >= 0 ? `${out.slice(0, at)}${body}\n${out.slice(at)}` : out.replace('</main>', `${body}\n</main>`);
  return out;
}

interface LineageRow { version: unknown; parent_version: unknown; round: unknown; node_id: unknown; update_id: unknown; num_examples: unknown; weight: unknown }

/** A plain lineage table, for a compliance report that no longer renders the sections above. */
async function lineageFallback(o: DemoReportOptions): Promise<{ id: string; title: string; html: string; markdown: string }> {
  const rows = await runQuery<LineageRow>(o.analytics, 'lineage', { tenant: o.manifest.tenant, pipeline: o.manifest.name, version: o.finalVersion });
  const cells = (r: LineageRow) => [r.version, r.parent_version, r.round, r.node_id, r.update_id, r.update_id ? r.num_examples : '', r.update_id ? Number(r.weight).toFixed(4) : ''].map((v) => String(v ?? ''));
  const head = ['version', 'parent', 'round', 'node', 'update id', 'examples', 'weight'];
  const title = 'Lineage: the updates behind each version';
  return {
    id: 'lineage-updates',
    title,
    html: `<section id="lineage-updates"><h2>${title}</h2><div class="table-wrap"><table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${cells(r).map((c) => `<td>${escapeXml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table></div></section>`,
    markdown: `## ${title}\n\n| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n${rows.map((r) => `| ${cells(r).join(' | ')} |`).join('\n')}\n`,
  };
}

/** Builds report.html (and report.md) from ClickHouse. */
export async function buildDemoReport(o: DemoReportOptions): Promise<DemoReport> {
  const now = o.now ?? new Date();
  const training = await trainingReport({ analytics: o.analytics, manifest: o.manifest, now });
  const compliance = await complianceReport({ analytics: o.analytics, manifest: o.manifest, version: o.finalVersion, now });
  const added: Array<{ id: string; title: string; html: string; markdown: string }> = [];
  for (const s of LINEAGE_SECTIONS) {
    const html = htmlSection(compliance.html, s.id);
    const markdown = markdownSection(compliance.markdown, s.heading);
    // Renamed where the training report has a section of the same id.
    if (html && markdown) added.push({ id: s.as, title: s.title, html: html.replace(`<section id="${s.id}">`, `<section id="${s.as}">`), markdown });
  }
  if (!added.some((s) => s.id === 'lineage-updates')) added.push(await lineageFallback(o));
  return {
    html: insertSections(training.html, added),
    markdown: `${training.markdown.trimEnd()}\n\n${added.map((s) => s.markdown.trimEnd()).join('\n\n')}\n`,
  };
}
