/**
 * What the two reports share: value formatting for tables and prose (ClickHouse's JSON values in, text out;
 * missing values as an em dash), running a named query for the manifest's pipeline, and the metadata lines.
 */
import type { Manifest } from '../../config/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import { runQuery, type QueryName } from '../queries.ts';

/** A row of a named query, as JSON. */
export type Row = Record<string, unknown>;

export function num(v: unknown): number {
  if (v === null || v === undefined || v === '') return Number.NaN;
  return Number(v);
}

/** A plottable number: null for a missing value and for NaN and ±Infinity (which no axis can place). */
export function optNum(v: unknown): number | null {
  const n = num(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * A stored non-finite float (or -0) as the report prints it — `+Inf`, `-Inf`, `NaN`, `-0` — or undefined for any other
 * value. Named queries return NaN and ±Infinity as numbers (a missing value is null: an em dash), so a diverged
 * loss reads +Inf in a table, never a dash that would look like "not reported".
 */
export function special(v: unknown): string | undefined {
  if (typeof v !== 'number') return undefined;
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return Object.is(v, -0) ? '-0' : undefined;
}

export function int(v: unknown): string {
  const n = num(v);
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

export function fixed(v: unknown, digits = 4): string {
  const s = special(v);
  if (s !== undefined) return s;
  const n = num(v);
  return Number.isFinite(n) ? String(Number(n.toFixed(digits))) : '—';
}

export function pct(v: unknown): string {
  const s = special(v);
  if (s !== undefined && s !== '-0') return s;
  const n = num(v);
  return Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : '—';
}

export function str(v: unknown): string {
  return v === null || v === undefined || v === '' ? '—' : String(v);
}

/** ClickHouse's `2026-01-02 03:04:05.678` (UTC), shortened to seconds. */
export function time(v: unknown): string {
  if (v === null || v === undefined || v === '') return '—';
  return String(v).replace(/\.\d+$/, '');
}

export function retentionText(retentionMs: number): string {
  if (retentionMs < 0) return 'forever';
  const days = retentionMs / 86_400_000;
  return Number.isInteger(days) ? `${days} day${days === 1 ? '' : 's'}` : `${Math.round(retentionMs / 3_600_000)} h`;
}

export function ms(v: unknown): string {
  const n = num(v);
  if (!Number.isFinite(n)) return '—';
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

// ---------------------------------------------------------------------------------------------
// Shared

/** Runs a named query for the manifest's tenant and pipeline. */
export async function q(analytics: AnalyticsClient, m: Manifest, name: QueryName, extra: Record<string, number> = {}): Promise<Row[]> {
  return runQuery<Row>(analytics, name, { tenant: m.tenant, pipeline: m.name, ...extra });
}

/** Where the figures come from, for the metadata. */
export function engine(a: AnalyticsClient): string {
  return `${a.kind === 'embedded' ? 'embedded ClickHouse (chdb)' : 'ClickHouse server'} at ${a.location}, database ${a.database}`;
}

/** `2030-01-01 00:00:00 UTC`. */
export function stamp(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** node-2 before node-10. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
