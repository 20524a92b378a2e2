/**
 * The Grafana dashboard's ClickHouse panels against real data: a small `fedstream demo` run (the real command,
 * embedded ClickHouse in a temp directory), then every panel's SQL and every ClickHouse template variable's query,
 * with Grafana's variables and the plugin's macros expanded as they would be (test/support/grafana.ts), run on
 * that ClickHouse: each must succeed and return rows.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnalyticsClient, type AnalyticsClient } from '../../src/analytics/clickhouse/client.ts';
import { queryRows } from '../../src/analytics/queries.ts';
import { createLogger } from '../../src/common/logger.ts';
import { expandMacros, interpolate, loadDashboard, targetsOf } from '../support/grafana.ts';
import { ROOT } from './global-setup.ts';

const logger = createLogger('silent');
let dir: string;
let analytics: AnalyticsClient;
let range: { fromMs: number; toMs: number; intervalMs: number };

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fedstream-grafana-'));
  const started = Date.now();
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'fedstream.js'), 'demo', '--nodes', '3', '--rounds', '2', '--epochs', '1', '--batch-size', '20',
      '--train-examples', '600', '--test-examples', '300', '--progress', 'none', '--out', dir], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'warn' } });
    child.on('error', reject);
    child.on('close', resolve);
  });
  expect(code).toBe(0);
  // The dashboard's default range is the last 6 hours; the run is inside it, with a 1-minute interval.
  range = { fromMs: started - 6 * 3_600_000, toMs: Date.now() + 60_000, intervalMs: 60_000 };
  analytics = await createAnalyticsClient({ path: path.join(dir, 'clickhouse'), database: 'fedstream', logger });
}, 300_000);

afterAll(async () => {
  await analytics?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the Grafana dashboard on a demo run', () => {
  const d = loadDashboard();
  const vars = { tenant: 'demo', pipeline: 'mnist-fedavg' };

  it('the tenant and pipeline variables list the demo\'s', async () => {
    const tenants = await queryRows<{ tenant: string }>(analytics, d.templating.list.find((v) => v.name === 'tenant')!.query, {}, 'variable tenant');
    expect(tenants.map((t) => t.tenant)).toContain('demo');
    const pipelines = await queryRows<{ pipeline: string }>(analytics, interpolate(d.templating.list.find((v) => v.name === 'pipeline')!.query, vars), {}, 'variable pipeline');
    expect(pipelines.map((p) => p.pipeline)).toEqual(['mnist-fedavg']);
  });

  for (const { panel, target } of targetsOf(d).filter((t) => t.target.datasource.type === 'grafana-clickhouse-datasource')) {
    it(`panel "${panel.title}" returns rows`, async () => {
      const sql = expandMacros(interpolate(target.rawSql!, vars), range);
      expect(sql).not.toMatch(/\$\{?\w/);
      const rows = await queryRows<Record<string, unknown>>(analytics, sql, {}, `panel ${panel.title}`);
      expect(rows.length).toBeGreaterThan(0);
      // A time series has its time column first, as the plugin expects.
      if (target.format === 0) expect(Object.keys(rows[0]!)[0]).toBe('time');
    });
  }

  it('panels list nodes in natural order (node-2 before node-10) and the accuracy series has one point per version', async () => {
    const perNode = targetsOf(d).find((t) => t.panel.title === 'Accepted updates per node')!.target;
    const rows = await queryRows<{ node_id: string; accepted: string | number }>(analytics, expandMacros(interpolate(perNode.rawSql!, vars), range), {}, 'per node');
    expect(rows.map((r) => r.node_id)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(rows.map((r) => Number(r.accepted))).toEqual([2, 2, 2]);
    const acc = targetsOf(d).find((t) => t.panel.title === 'Held-out accuracy by version')!.target;
    expect(await queryRows(analytics, expandMacros(interpolate(acc.rawSql!, vars), range), {}, 'accuracy')).toHaveLength(3);
  });

  it('the demo\'s report shows memory once per process (its nodes share one), the rounds that ran, nodes in natural order', () => {
    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    expect(html).toMatch(/<dt>Rounds<\/dt><dd>2 decided \(2 closed, 0 abandoned\); the manifest asks for \d+<\/dd>/);
    const health = html.slice(html.indexOf('<section id="health">'), html.indexOf('</section>', html.indexOf('<section id="health">')));
    // Every node ran in the demo's one process: no per-node figure repeated three times, one process row instead.
    expect((health.match(/<td class="r">shared \([^)]*pid \d+\)<\/td>/g) ?? []).length).toBe(3);
    expect(health).toMatch(/<td>node-1, node-2, node-3<\/td><td class="r">\d+\.\d<\/td>/);
    expect((health.match(/nodes in the process/g) ?? []).length).toBe(1);
  });
});
