import { afterEach, describe, expect, it } from 'vitest';
import type { Service } from '../../src/common/index.ts';
import { ProcessMetrics, serveMetrics, type MetricsServer } from '../../src/service/index.ts';
import { promtool } from '../support/prometheus.ts';

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function fakeService(name: string, healthy: boolean): Service<unknown> {
  return { name, start: async () => undefined, stop: async () => undefined, done: new Promise(() => undefined), health: () => ({ healthy, state: healthy ? 'running' : 'failed', detail: '' }) };
}

/** A sample's value in exposition text (`name{labels} value`), by name and a label subset. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('process metrics', () => {
  it('turns the aggregator\'s events into counters, gauges and histograms, and promtool finds nothing to lint', async () => {
    const m = new ProcessMetrics({ role: 'aggregator', pipeline: 'acme.mnist' });
    m.watch('aggregator', fakeService('aggregator', true));
    const e = m.instrumentation;
    e.emit({ type: 'version.published', version: 0, round: 0, at: 1_700_000_000_000 });
    e.emit({ type: 'round.started', round: 1, baseVersion: 0, deadline: 1_700_000_120_000, targetUpdates: 3, minUpdates: 2 });
    e.emit({ type: 'update.accepted', round: 1, nodeId: 'node-1', foldSeconds: 0.002 });
    e.emit({ type: 'update.accepted', round: 1, nodeId: 'node-2', foldSeconds: 0.004 });
    e.emit({ type: 'update.rejected', round: 1, nodeId: 'node-3', code: 'wrong_base_version' });
    e.emit({ type: 'update.rejected', round: 1, nodeId: null, code: 'undecodable' });
    e.emit({ type: 'update.rejected', round: 1, nodeId: 'node-3', code: 'wrong_base_version' });
    e.emit({ type: 'round.decided', round: 1, outcome: 'closed', why: 'deadline with 2 of 3 updates', decisionSeconds: 0.3, roundSeconds: 120, accepted: 2, rejected: 3, version: 1, evalAccuracy: 0.91 });
    e.emit({ type: 'version.published', version: 1, round: 1, at: 1_700_000_121_000 });
    const server = await serveMetrics(m, { port: 0 });
    servers.push(server);
    const res = await fetch(server.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    const p = { pipeline: 'acme.mnist' };
    expect(sample(text, 'fedstream_aggregator_updates_accepted_total', p)).toBe(2);
    expect(sample(text, 'fedstream_aggregator_updates_rejected_total', { ...p, reason: 'wrong_base_version' })).toBe(2);
    expect(sample(text, 'fedstream_aggregator_updates_rejected_total', { reason: 'undecodable' })).toBe(1);
    expect(sample(text, 'fedstream_aggregator_rounds_total', { outcome: 'closed' })).toBe(1);
    expect(sample(text, 'fedstream_aggregator_rounds_total', { outcome: 'abandoned' })).toBe(0);
    expect(sample(text, 'fedstream_aggregator_fold_seconds_count')).toBe(2);
    expect(sample(text, 'fedstream_aggregator_fold_seconds_sum')).toBeCloseTo(0.006, 6);
    expect(sample(text, 'fedstream_aggregator_decision_seconds_bucket', { outcome: 'closed', le: '0.25' })).toBe(0);
    expect(sample(text, 'fedstream_aggregator_decision_seconds_bucket', { outcome: 'closed', le: '0.5' })).toBe(1);
    expect(sample(text, 'fedstream_aggregator_round')).toBe(1);
    expect(sample(text, 'fedstream_aggregator_round_deadline_timestamp_seconds')).toBe(1_700_000_120);
    expect(sample(text, 'fedstream_aggregator_round_accepted_updates')).toBe(2);
    expect(sample(text, 'fedstream_model_version')).toBe(1);
    expect(sample(text, 'fedstream_model_versions_published_total')).toBe(2);
    expect(sample(text, 'fedstream_model_last_published_timestamp_seconds')).toBe(1_700_000_121);
    expect(sample(text, 'fedstream_model_eval_accuracy_ratio')).toBe(0.91);
    expect(sample(text, 'fedstream_service_healthy', { service: 'aggregator' })).toBe(1);
    // prom-client's default process metrics are there too.
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    const lint = promtool(['check', 'metrics'], text);
    expect(lint.stderr + lint.stdout).toBe('');
    expect(lint.status).toBe(0);
  });

  it('a node\'s series carry its id; the sink\'s gauges are read at scrape time', async () => {
    const node = new ProcessMetrics({ role: 'node', pipeline: 'acme.mnist', nodeId: 'node-7', processMetrics: false });
    node.instrumentation.emit({ type: 'node.trained', nodeId: 'node-7', round: 2, trainingSeconds: 1.5, numExamples: 600, bytes: 4096, loss: 0.3 });
    node.instrumentation.emit({ type: 'node.refused', nodeId: 'node-7', round: 3, code: 'CONFIG_INVALID' });
    const nt = await node.text();
    expect(sample(nt, 'fedstream_node_rounds_trained_total', { node_id: 'node-7', pipeline: 'acme.mnist' })).toBe(1);
    expect(sample(nt, 'fedstream_node_examples_trained_total')).toBe(600);
    expect(sample(nt, 'fedstream_node_update_sent_bytes_total')).toBe(4096);
    expect(sample(nt, 'fedstream_node_training_seconds_bucket', { le: '2.5' })).toBe(1);
    expect(sample(nt, 'fedstream_node_rounds_refused_total', { code: 'CONFIG_INVALID' })).toBe(1);
    // Only a node's own series: no aggregator or sink zeros to confuse a query over every target.
    expect(nt).not.toMatch(/^fedstream_(aggregator|model|sink)_/m);

    const sink = new ProcessMetrics({ role: 'sink', pipeline: 'acme.mnist', processMetrics: false });
    let lag = 40;
    sink.watch('sink', fakeService('sink', false), () => ({ lag, bufferedRows: 7, paused: 0 }));
    sink.instrumentation.emit({ type: 'sink.batch', seconds: 0.02, rows: { telemetry: 5, audit: 3 }, messages: 8, deadLettered: 1, retries: 2, trigger: 'time' });
    let st = await sink.text();
    expect(sample(st, 'fedstream_sink_lag_records')).toBe(40);
    expect(sample(st, 'fedstream_sink_rows_inserted_total', { table: 'audit' })).toBe(3);
    expect(sample(st, 'fedstream_sink_records_consumed_total')).toBe(8);
    expect(sample(st, 'fedstream_sink_insert_retries_total')).toBe(2);
    expect(sample(st, 'fedstream_sink_insert_seconds_count')).toBe(1);
    expect(sample(st, 'fedstream_service_healthy', { service: 'sink' })).toBe(0);
    lag = 0;
    st = await sink.text();
    expect(sample(st, 'fedstream_sink_lag_records')).toBe(0);
    for (const text of [nt, st]) {
      const lint = promtool(['check', 'metrics'], text);
      expect(lint.stderr + lint.stdout).toBe('');
    }
  });

  it('refuses a bad or taken port with CONFIG_INVALID naming --metrics-port, and answers 404 off /metrics', async () => {
    const m = new ProcessMetrics({ role: 'sink', pipeline: 'p.q', processMetrics: false });
    await expect(serveMetrics(m, { port: 70_000 })).rejects.toMatchObject({ code: 'CONFIG_INVALID', path: '--metrics-port' });
    const first = await serveMetrics(m, { port: 0 });
    servers.push(first);
    await expect(serveMetrics(m, { port: first.port })).rejects.toThrow(/--metrics-port: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    expect((await fetch(first.url.replace('/metrics', '/'))).status).toBe(404);
  });
});
