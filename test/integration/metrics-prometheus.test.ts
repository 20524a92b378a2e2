/**
 * Metrics end to end: an aggregator, a sink and two nodes run as real `fedstream` processes on the real broker with
 * `--metrics-port`; a real Prometheus server (Debian's package; its own config in a temp dir, a free port, a 1 s
 * scrape interval) scrapes all four, and the test asserts on PromQL results through its HTTP API. One garbage record
 * on the updates topic gives a rejection to count. The live endpoint's text also passes `promtool check metrics`.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pipelineTopics } from '../../src/protocol/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { waitFor } from '../../src/common/retry.ts';
import { freePort, promtool, startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { connectedProducer, deferCleanup, kafkaBrokers } from './helpers.ts';
import { fedstream, quietLogger, smallManifest, waitForLog, writeManifest } from './pipeline-helpers.ts';

/** The single value of an instant query (NaN when the result is empty). */
async function scalar(p: PrometheusServer, q: string): Promise<number> {
  const r = await p.query(q);
  return r.length === 0 ? Number.NaN : Number(r[0]!.value[1]);
}

describe('Prometheus scrapes the aggregator, sink and nodes', () => {
  it('rounds, accepted and rejected updates, versions, decision latency, sink rows and node training time are queryable with PromQL', async () => {
    const brokers = kafkaBrokers();
    // Rounds paced by their deadline (a target of 3 that two nodes never reach; a quorum of 2 at 3 s: room for both nodes' training on a loaded machine), and many
    // of them: the test stops the processes once Prometheus has seen enough.
    const m = smallManifest({
      data: { source: 'mnist', nodes: 2, partition: 'iid', testExamples: 200, trainExamples: 400, seed: 5 },
      rounds: { count: 500, targetUpdates: 3, minUpdates: 2, timeoutMs: 3_000 },
    });
    const { file, dir } = writeManifest(m);
    const [aggPort, sinkPort, n1Port, n2Port] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const prom = await startPrometheus(path.join(dir, 'prometheus'), [
      { job: 'fedstream-aggregator', targets: [`127.0.0.1:${aggPort}`] },
      { job: 'fedstream-sink', targets: [`127.0.0.1:${sinkPort}`] },
      { job: 'fedstream-node', targets: [`127.0.0.1:${n1Port}`, `127.0.0.1:${n2Port}`] },
    ], { intervalS: 1 });
    deferCleanup(() => prom.stop());
    const common = ['-p', file, '--kafka', brokers];
    const agg = fedstream(['aggregator', ...common, '--no-evaluate', '--metrics-port', String(aggPort)], { dir, name: 'aggregator' });
    const sink = fedstream(['sink', ...common, '--clickhouse-path', path.join(dir, 'ch'), '--batch-ms', '200', '--metrics-port', String(sinkPort)], { dir, name: 'sink' });
    await waitForLog(agg, /started round 1|recovered state/);
    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const producer = await connectedProducer(t);
    await producer.send([{ topic: pipelineTopics(m).updates, key: 'node-9', value: Buffer.from('not an Avro update'), headers: {} }]);
    const nodes = [['node-1', n1Port], ['node-2', n2Port]].map(([id, port]) =>
      fedstream(['node', ...common, '--node-id', String(id), '--heartbeat-ms', '1000', '--metrics-port', String(port)], { dir, name: String(id) }));


    const pipeline = `${m.tenant}.${m.name}`;
    const sel = `pipeline="${pipeline}"`;
    // Three versions after the initial one, seen by Prometheus, and the sink has written rows.
    await waitFor(async () => (await scalar(prom, `fedstream_model_version{${sel}}`)) >= 3
      && (await scalar(prom, `sum(fedstream_sink_rows_inserted_total{${sel}})`)) > 0
      && (await scalar(prom, `sum(fedstream_node_rounds_trained_total{${sel}})`)) >= 6, {
      timeoutMs: 360_000, intervalMs: 500, what: 'Prometheus to see version 3, sink rows and 6 trained rounds',
    }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}; Prometheus targets: ${await prom.targets()}`);
    });

    expect((await prom.query('up')).map((s) => [s.metric.job, s.value[1]]).sort()).toEqual([
      ['fedstream-aggregator', '1'], ['fedstream-node', '1'], ['fedstream-node', '1'], ['fedstream-sink', '1'],
    ]);
    const closed = await scalar(prom, `fedstream_aggregator_rounds_total{${sel}, outcome="closed"}`);
    expect(closed).toBeGreaterThanOrEqual(3);
    // Every closed round took its two updates (at its deadline: the target of 3 is never met); the garbage record
    // is the one rejection.
    const accepted = await scalar(prom, `fedstream_aggregator_updates_accepted_total{${sel}}`);
    expect(accepted).toBeGreaterThanOrEqual(2 * closed);
    expect(await scalar(prom, `fedstream_aggregator_round_target_updates{${sel}}`)).toBe(3);
    expect(await scalar(prom, `fedstream_aggregator_round_min_updates{${sel}}`)).toBe(2);
    // Each round lasted about its 3 s deadline (timed from when the aggregator opened it, a little after the
    // deadline was set): none closed early, as the target of 3 is never met.
    const meanRound = await scalar(prom, `fedstream_aggregator_round_duration_seconds_sum{${sel}, outcome="closed"} / fedstream_aggregator_round_duration_seconds_count{${sel}, outcome="closed"}`);
    expect(meanRound).toBeGreaterThan(1.0);
    expect(meanRound).toBeLessThan(20);
    expect(await scalar(prom, `fedstream_aggregator_updates_rejected_total{${sel}, reason="undecodable"}`)).toBe(1);
    // Besides it, only what a loaded machine legitimately causes: an update that arrived after its round's 3 s
    // deadline (stale_round), or one read again after a consumer restart (duplicate). Nothing else is rejected.
    const others = (await prom.query(`sum by (reason) (fedstream_aggregator_updates_rejected_total{${sel}, reason!="undecodable"}) > 0`)).map((x) => x.metric.reason);
    expect(others.filter((r) => r !== 'stale_round' && r !== 'duplicate')).toEqual([]);
    expect(await scalar(prom, `fedstream_model_versions_published_total{${sel}}`)).toBeGreaterThanOrEqual(4);
    expect(await scalar(prom, `fedstream_aggregator_decision_seconds_count{${sel}, outcome="closed"}`)).toBeGreaterThanOrEqual(3);
    const p90 = await scalar(prom, `histogram_quantile(0.9, sum by (le) (fedstream_aggregator_decision_seconds_bucket{${sel}}))`);
    expect(p90).toBeGreaterThan(0);
    expect(p90).toBeLessThan(60);
    expect(await scalar(prom, `fedstream_aggregator_fold_seconds_count{${sel}}`)).toBeGreaterThanOrEqual(6);
    expect(await scalar(prom, `fedstream_aggregator_round{${sel}}`)).toBeGreaterThanOrEqual(4);
    // Nodes: both trained, each with its own series.
    const trained = await prom.query(`fedstream_node_rounds_trained_total{${sel}}`);
    expect(trained.map((s) => s.metric.node_id).sort()).toEqual(['node-1', 'node-2']);
    expect(trained.every((s) => Number(s.value[1]) >= 3)).toBe(true);
    expect(await scalar(prom, `sum(fedstream_node_training_seconds_sum{${sel}}) > 0`)).toBeGreaterThan(0);
    // Sink: batches, insert latency, lag, rows by table.
    expect(await scalar(prom, `fedstream_sink_batches_total{${sel}}`)).toBeGreaterThan(0);
    expect(await scalar(prom, `fedstream_sink_insert_seconds_count{${sel}}`)).toBeGreaterThan(0);
    expect(await scalar(prom, `fedstream_sink_lag_records{${sel}}`)).toBeGreaterThanOrEqual(0);
    const tables = (await prom.query(`fedstream_sink_rows_inserted_total{${sel}} > 0`)).map((s) => s.metric.table);
    expect(tables).toEqual(expect.arrayContaining(['model_versions', 'telemetry_events', 'audit_log', 'rounds']));
    // Process metrics of every target, and health.
    expect((await prom.query(`process_resident_memory_bytes{${sel}}`)).length).toBe(4);
    expect(await scalar(prom, `min(fedstream_service_healthy{${sel}})`)).toBe(1);

    // The live exposition of a real process passes promtool's lint.
    const text = await (await fetch(`http://127.0.0.1:${aggPort}/metrics`)).text();
    const lint = promtool(['check', 'metrics'], text);
    expect(lint.stdout + lint.stderr).toBe('');

    for (const p of [agg, sink, ...nodes]) p.kill('SIGTERM');
    await Promise.all([agg, sink, ...nodes].map((p) => p.exited));
  }, 480_000);
});
