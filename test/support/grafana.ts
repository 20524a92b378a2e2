/**
 * What Grafana and the grafana-clickhouse-datasource plugin do to a panel's SQL before ClickHouse sees it, for the
 * dashboard tests: template variables first (Grafana), then the plugin's macros, expanded as its
 * `pkg/macros/macros.go` does (v4): `$__timeFilter(c)` → `c >= toDateTime(from) AND c <= toDateTime(to)`, the `_ms`
 * forms with `fromUnixTimestamp64Milli`, `$__timeInterval(c)` → `toStartOfInterval(toDateTime(c), INTERVAL n second)`,
 * `$__fromTime`, `$__toTime`, `$__interval_s`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface GrafanaTarget {
  refId: string;
  datasource: { type: string; uid: string };
  rawSql?: string;
  format?: number;
  editorType?: string;
  queryType?: string;
  expr?: string;
}

export interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: GrafanaTarget[];
  gridPos: { x: number; y: number; w: number; h: number };
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  panels: GrafanaPanel[];
  templating: { list: Array<{ name: string; type: string; query: string; datasource?: { type: string; uid: string } }> };
}

export function loadDashboard(file = path.resolve('deploy/grafana/fedstream-pipeline.json')): GrafanaDashboard {
  return JSON.parse(readFileSync(file, 'utf8')) as GrafanaDashboard;
}

/** `${name}` and `$name` replaced by the variables' values, as Grafana interpolates them (raw, no quoting). */
export function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)\b/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare!;
    return name in vars ? vars[name]! : whole;
  });
}

/** The plugin's macros, for a time range [fromMs, toMs] and an interval in ms. */
export function expandMacros(sql: string, range: { fromMs: number; toMs: number; intervalMs: number }): string {
  const from = Math.floor(range.fromMs / 1000);
  const to = Math.floor(range.toMs / 1000);
  const intervalS = Math.max(1, Math.floor(range.intervalMs / 1000));
  return sql
    .replace(/\$__timeFilter_ms\(([^)]+)\)/g, (_, c: string) => `${c.trim()} >= fromUnixTimestamp64Milli(${range.fromMs}) AND ${c.trim()} <= fromUnixTimestamp64Milli(${range.toMs})`)
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, c: string) => `${c.trim()} >= toDateTime(${from}) AND ${c.trim()} <= toDateTime(${to})`)
    .replace(/\$__timeInterval_ms\(([^)]+)\)/g, (_, c: string) => `toStartOfInterval(toDateTime64(${c.trim()}, 3), INTERVAL ${Math.max(1, range.intervalMs)} millisecond)`)
    .replace(/\$__timeInterval\(([^)]+)\)/g, (_, c: string) => `toStartOfInterval(toDateTime(${c.trim()}), INTERVAL ${intervalS} second)`)
    .replace(/\$__fromTime_ms\b/g, `fromUnixTimestamp64Milli(${range.fromMs})`)
    .replace(/\$__toTime_ms\b/g, `fromUnixTimestamp64Milli(${range.toMs})`)
    .replace(/\$__fromTime\b/g, `toDateTime(${from})`)
    .replace(/\$__toTime\b/g, `toDateTime(${to})`)
    .replace(/\$__interval_s\b/g, String(intervalS));
}

/** Every query target of the dashboard's panels (rows excluded), with its panel. */
export function targetsOf(d: GrafanaDashboard): Array<{ panel: GrafanaPanel; target: GrafanaTarget }> {
  return d.panels.filter((p) => p.type !== 'row').flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
}
