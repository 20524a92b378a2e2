/**
 * Probe behind docs/performance.md (ingest): the sink's per-row cost of building a telemetry_events row, through
 * src/analytics/sink/rows.ts (`telemetryRow`, added to a sink batch), and the same row written inline.
 *
 *   npx tsx bench/probes/sink-rows.ts
 */
import { PendingBatch } from '../../src/analytics/sink/batch.ts';
import { telemetryRow } from '../../src/analytics/sink/rows.ts';
import { parseManifest } from '../../src/config/manifest.ts';

const m = parseManifest({
  apiVersion: 'fedstream/v1', tenant: 'bench', name: 'rowprobe', model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
  data: { source: 'mnist', nodes: 100 }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
});
const event = { tenant: 'bench', pipeline: 'rowprobe', nodeId: 'node-001', kind: 'HEARTBEAT' as const, round: 3, eventTime: Date.now(), metrics: { cpu: 0.5, memoryMb: 200, loss: 0.1 }, labels: { backend: 'wasm' }, message: null };
const source = { topic: 'bench.rowprobe.telemetry', partition: 1, offset: '12345', key: null, bytes: Buffer.alloc(0) };

// What the sink runs for every telemetry record: the pure row mapping, then the batch.
const scope = { tenant: m.tenant, pipeline: m.name };

function float(v: number): number | string {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
}
/** The same row, written out field by field. */
function rowWithoutSpreads(e: typeof event, s: typeof source): Record<string, unknown> {
  const metrics: Record<string, number | string> = {};
  for (const k in e.metrics) metrics[k] = float(Number(e.metrics[k as keyof typeof e.metrics]));
  return {
    tenant: m.tenant, pipeline: m.name, node_id: e.nodeId, kind: e.kind, round: e.round === null ? null : Number(e.round), event_time: Number(e.eventTime),
    metrics, labels: e.labels ?? {}, message: e.message ?? '', kafka_topic: s.topic, kafka_partition: s.partition, kafka_offset: Number(s.offset),
  };
}

const N = 100_000;
for (let rep = 0; rep < 3; rep++) {
  let t0 = performance.now();
  const batch = new PendingBatch();
  for (let i = 0; i < N; i++) batch.add('telemetry_events', telemetryRow(scope, event, source), source);
  const sinkNs = ((performance.now() - t0) * 1e6) / N;
  const keep: unknown[] = [];
  t0 = performance.now();
  for (let i = 0; i < N; i++) keep.push({ row: rowWithoutSpreads(event, source), source });
  const plainNs = ((performance.now() - t0) * 1e6) / N;
  process.stdout.write(`rep ${rep + 1}: telemetryRow ${sinkNs.toFixed(0)} ns/row; the same row without object spreads ${plainNs.toFixed(0)} ns/row\n`);
}
