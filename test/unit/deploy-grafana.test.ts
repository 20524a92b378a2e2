import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { expandMacros, interpolate, loadDashboard, targetsOf } from '../support/grafana.ts';
import { promtool } from '../support/prometheus.ts';

const d = loadDashboard();

describe('deploy/grafana dashboard', () => {
  it('every ClickHouse target has the plugin\'s SQL-editor shape; every panel has a datasource and a place', () => {
    const targets = targetsOf(d);
    const ch = targets.filter((t) => t.target.datasource.type === 'grafana-clickhouse-datasource');
    const prom = targets.filter((t) => t.target.datasource.type === 'prometheus');
    expect(ch.length).toBeGreaterThanOrEqual(6);
    expect(prom.length).toBeGreaterThanOrEqual(6);
    expect(ch.length + prom.length).toBe(targets.length);
    for (const { panel, target } of ch) {
      expect(target, panel.title).toMatchObject({ editorType: 'sql', datasource: { uid: '${DS_CLICKHOUSE}' } });
      expect([0, 1], panel.title).toContain(target.format);
      expect(target.queryType, panel.title).toBe(target.format === 0 ? 'timeseries' : 'table');
      expect(target.rawSql, panel.title).toMatch(/\bFROM fedstream\.\w+/);
      // Tenant isolation: every panel filters on the tenant and pipeline variables and on the time range.
      expect(target.rawSql, panel.title).toContain("tenant = '${tenant}' AND pipeline = '${pipeline}'");
      expect(target.rawSql, panel.title).toMatch(/\$__timeFilter\(/);
    }
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of d.panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
  });

  it('macros expand as the plugin does', () => {
    const sql = expandMacros('SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND $__timeFilter_ms(u) AND a > $__fromTime AND $__interval_s > 0',
      { fromMs: 1_700_000_000_123, toMs: 1_700_003_600_456, intervalMs: 30_000 });
    expect(sql).toBe('SELECT toStartOfInterval(toDateTime(t), INTERVAL 30 second) AS time FROM x WHERE t >= toDateTime(1700000000) AND t <= toDateTime(1700003600)'
      + ' AND u >= fromUnixTimestamp64Milli(1700000000123) AND u <= fromUnixTimestamp64Milli(1700003600456) AND a > toDateTime(1700000000) AND 30 > 0');
    expect(interpolate("tenant = '${tenant}' AND $pipeline", { tenant: 'acme', pipeline: 'mnist' })).toBe("tenant = 'acme' AND mnist");
  });

  it('every Prometheus expression parses (promtool check rules) and reads only metrics the processes export', () => {
    const exprs = targetsOf(d).filter((t) => t.target.datasource.type === 'prometheus').map((t) => ({ title: t.panel.title, expr: t.target.expr! }));
    const rules = exprs.map((e, i) => ({ record: `fedstream_dashboard:panel_${i}`, expr: interpolate(e.expr, { tenant: 'acme', pipeline: 'mnist', __rate_interval: '1m' }) }));
    const dir = mkdtempSync(path.join(tmpdir(), 'fedstream-grafana-'));
    const file = path.join(dir, 'panels.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const check = promtool(['check', 'rules', file]);
    expect(check.stdout + check.stderr).toContain(`SUCCESS: ${rules.length} rules found`);
    const source = readFileSync(path.resolve('src/service/metrics.ts'), 'utf8');
    for (const { title, expr } of exprs) {
      for (const name of expr.match(/fedstream_[a-z_]+/g) ?? []) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        expect(source, `${title}: ${name}`).toContain(`'${base}'`);
      }
    }
  });
});
