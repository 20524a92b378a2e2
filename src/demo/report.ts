/**
 * The demo's report: the analytics training report (convergence and participation plots, rounds,
 * stragglers, lineage per version, node health) with two sections of the compliance report added: the
 * nodes whose data shaped the final version, and every update behind it through its parent chain (with
 * update ids and weights). Both reports are documents (analytics/reports/document.ts): the demo takes the
 * two sections from the compliance document, adds them to the training document, and renders it once.
 * Everything in it comes from the named ClickHouse queries in schemas/clickhouse/queries/, none of it
 * from the demo's in-memory state.
 */
import {
  complianceReport, findSection, renderHtml, renderMarkdown, trainingReport, withSections, type AnalyticsClient, type Document, type Section,
} from '../analytics/index.ts';
import { FedStreamError } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';

export interface DemoReportOptions {
  analytics: AnalyticsClient;
  manifest: Manifest;
  finalVersion: number;
  now?: Date;
}

export interface DemoReport {
  /** The composed document, rendered below. */
  document: Document;
  html: string;
  markdown: string;
}

/**
 * The compliance report's sections the demo report adds, in order: `id` in the compliance document, `as`
 * in the demo's (renamed where the training report has a section of the same id), `title` in its table of contents.
 */
export const LINEAGE_SECTIONS = [
  { id: 'lineage-nodes', as: 'lineage-nodes', title: 'Nodes behind the final version' },
  { id: 'lineage', as: 'lineage-updates', title: 'Updates behind the final version' },
] as const;

/** The training document with the compliance document's lineage sections added after its own. */
export function composeDemoDocument(training: Document, compliance: Document): Document {
  const added: Section[] = LINEAGE_SECTIONS.map((s) => {
    const section = findSection(compliance, s.id);
    if (!section) throw new FedStreamError('INTERNAL', `the compliance report has no section "${s.id}"`);
    return { ...section, id: s.as, navTitle: s.title };
  });
  return withSections(training, added);
}

/** Builds report.html (and report.md) from ClickHouse. */
export async function buildDemoReport(o: DemoReportOptions): Promise<DemoReport> {
  const now = o.now ?? new Date();
  const training = await trainingReport({ analytics: o.analytics, manifest: o.manifest, now });
  const compliance = await complianceReport({ analytics: o.analytics, manifest: o.manifest, version: o.finalVersion, now });
  const document = composeDemoDocument(training.document, compliance.document);
  return { document, html: renderHtml(document), markdown: renderMarkdown(document) };
}
