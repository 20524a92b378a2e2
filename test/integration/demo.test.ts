/**
 * `fedstream demo` end to end, as a user runs it: the real command in a child process, the in-memory
 * transport (and, in the second test, the real broker), embedded ClickHouse in a temp directory.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAnalyticsClient } from '../../src/analytics/clickhouse/client.ts';
import { runQuery } from '../../src/analytics/queries.ts';
import { createLogger } from '../../src/common/logger.ts';
import { summaryProblems, type DemoSummary } from '../../src/demo/summary.ts';
import { ROOT } from './global-setup.ts';
import { kafkaBrokers } from './helpers.ts';

const UUID_V4 = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/;

const BIN = path.join(ROOT, 'bin', 'fedstream.js');
const logger = createLogger('silent');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fedstream-demo-test-'));
  dirs.push(d);
  return d;
}

function fedstream(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.FEDSTREAM_LOG_LEVEL;
    delete env.LOG_LEVEL;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const SMALL = ['--nodes', '3', '--rounds', '2', '--epochs', '1', '--batch-size', '20', '--train-examples', '600', '--test-examples', '300', '--progress', 'plain'];

describe('fedstream demo', () => {
  it('runs a small pipeline end to end: exit 0, one summary line, summary.json, and report.html drawn from ClickHouse', async () => {
    const out = tempDir();
    const r = await fedstream(['demo', ...SMALL, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    // stdout is the summary line and nothing else; progress went to stderr as plain lines.
    expect(r.stdout).toMatch(/^final accuracy=0\.\d{4} versions=3 duration=\d+\.\ds\n$/);
    expect(r.stderr).toMatch(/round 1\/2 closed: version=1 accuracy=0\.\d{4}/);
    expect(r.stderr).toMatch(/round 2\/2 closed: version=2/);
    expect(r.stderr).not.toContain('\x1b[');

    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as DemoSummary;
    expect(summaryProblems(summary)).toEqual([]);
    expect(summary).toMatchObject({ rounds: 2, versions: 3, finalVersion: 2, nodes: 3 });
    expect(summary.finalAccuracy).toBeGreaterThan(0.2);
    expect(summary.finalAccuracy).toBe(summary.perRound[1]!.accuracy);
    expect(r.stdout).toContain(`final accuracy=${summary.finalAccuracy!.toFixed(4)}`);
    expect(summary.perRound.map((p) => [p.round, p.version, p.participants])).toEqual([[1, 1, 3], [2, 2, 3]]);
    expect(summary.settings).toMatchObject({ nodes: 3, rounds: 2, epochs: 1, batchSize: 20, partition: 'shards', trainExamples: 600, testExamples: 300, transport: 'memory' });
    expect(summary.settings.clickhouse).toMatchObject({ kind: 'embedded', location: path.join(out, 'clickhouse'), database: 'fedstream' });
    expect(summary.workers.jobs.reduce((a, b) => a + b, 0)).toBe(6);
    expect(summary.clickhouseRows.model_versions).toBeGreaterThanOrEqual(3);

    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect((html.match(/<svg[\s>]/g) ?? []).length).toBeGreaterThanOrEqual(3);
    expect(html).not.toMatch(/<script|<link |src="http/);
    for (const id of ['convergence', 'participation', 'lineage', 'lineage-nodes', 'lineage-updates']) expect(html).toContain(`<section id="${id}">`);

    // The lineage rows are ClickHouse's: every update behind version 2, as the lineage query returns them.
    const analytics = await createAnalyticsClient({ path: path.join(out, 'clickhouse'), database: 'fedstream', logger });
    try {
      const lineage = await runQuery<{ version: string | number; node_id: string; update_id: string }>(analytics, 'lineage', { tenant: 'demo', pipeline: 'mnist-fedavg', version: 2 });
      const updates = lineage.filter((l) => l.update_id !== '');
      expect(updates).toHaveLength(6);
      for (const l of updates) expect(html).toContain(l.update_id);
      // One update per node and round, each with a random id of its own (nobody can compute it ahead: issue 12).
      expect(updates.map((l) => l.node_id).sort()).toEqual(['node-1', 'node-1', 'node-2', 'node-2', 'node-3', 'node-3']);
      for (const l of updates) expect(l.update_id).toMatch(UUID_V4);
      expect(new Set(updates.map((l) => l.update_id)).size).toBe(6);
    } finally {
      await analytics.close();
    }

    // A second run into the same directory starts from a clean ClickHouse.
    const again = await fedstream(['demo', ...SMALL, '--rounds', '1', '--out', out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`clearing the previous run in ${out}`);
    const second = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as DemoSummary;
    expect(second).toMatchObject({ rounds: 1, versions: 2 });
    expect(second.clickhouseRows.model_versions).toBe(2);
  });

  it('runs over a real Kafka broker with --kafka, under a pipeline name of its own', async () => {
    const out = tempDir();
    const r = await fedstream(['demo', ...SMALL, '--nodes', '2', '--rounds', '1', '--kafka', kafkaBrokers(), '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^final accuracy=0\.\d{4} versions=2 duration=\d+\.\ds\n$/);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as DemoSummary;
    expect(summary.settings).toMatchObject({ transport: 'kafka', kafka: kafkaBrokers(), nodes: 2 });
    expect(summary.settings.name).toMatch(/^mnist-fedavg-[a-z0-9]+$/);
    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toMatch(UUID_V4);
    expect(html).toContain('node-2');
  });

  it('--pipeline pipelines/mnist-dp.yaml: report.html names the strategy with its DP wrapper and shows the ε ClickHouse holds (issue 14)', async () => {
    const out = tempDir();
    // 10 nodes, as the pipeline's numSampledClients m = 10 assumes (σ = z·C/m), on a few digits each.
    const r = await fedstream(['demo', '--pipeline', 'pipelines/mnist-dp.yaml', ...SMALL, '--nodes', '10', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^final accuracy=0\.\d{4} versions=3 /);
    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('<dt>Strategy</dt><dd>fedavg with central DP, adaptive clipping, target 10 updates (at least 10)</dd>');
    const privacy = /<dt>Privacy<\/dt><dd>([^<]*)<\/dd>/.exec(html)?.[1];
    expect(privacy).toMatch(/^central DP \(adaptive clipping, noise multiplier 0\.5, .*\): ε = \d+(\.\d+)? at δ = 0\.00001 after 2 noised versions; budget ε 60 at δ 0\.00001$/);
    const analytics = await createAnalyticsClient({ path: path.join(out, 'clickhouse'), database: 'fedstream', logger });
    try {
      const rows = await runQuery<{ version: string | number; dp_epsilon: number; dp_steps: string | number }>(analytics, 'privacy', { tenant: 'demo', pipeline: 'mnist-dp' });
      const last = rows.find((x) => Number(x.version) === 2)!;
      expect(Number(last.dp_steps)).toBe(2);
      expect(Number(last.dp_epsilon)).toBeGreaterThan(0);
      expect(privacy).toContain(`ε = ${Number(Number(last.dp_epsilon).toFixed(3))} at`);
    } finally {
      await analytics.close();
    }
  });

  it('exits 2 with the flag named when a flag is bad', async () => {
    const r = await fedstream(['demo', '--nodes', 'many', '--out', tempDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nodes');
    expect(r.stdout).toBe('');
  });
});
