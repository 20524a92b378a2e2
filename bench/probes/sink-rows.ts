/**
 * Probe behind docs/performance.md (ingest): the sink's per-row cost of building a telemetry_events row, with the
 * object spreads of src/analytics/sink.ts (`{ ...this.base(), …, ...this.coords(s) }`) and without them.
 *
 *   npx tsx bench/probes/sink-rows.ts
 */
import { Sink } from '../../src/analytics/sink/sink.ts';
import { parseManifest } from '../../src/config/manifest.ts';
import { quiet } from '../sim.ts';

const m = parseManifest({
  apiVersion: 'fedstream/v1', tenant: 'bench', name: 'rowprobe', model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
  data: { source: 'mnist', nodes: 100 }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
});
const event = { tenant: 'bench', pipeline: 'rowprobe', nodeId: 'node-001', kind: 'HEARTBEAT', round: 3, eventTime: Date.now(), metrics: { cpu: 0.5, memoryMb: 200, loss: 0.1 }, labels: { backend: 'wasm' }, message: null };
const source = { topic: 'bench.rowprobe.telemetry', partition: 1, offset: '12345', key: null, bytes: Buffer.alloc(0) };

interface SinkInternals {
  telemetry(e: unknown, s: unknown): void;
  cut(trigger: string): void;
  ready: unknown[];
}
// The private method the sink runs for every telemetry record (reached through a cast: a probe, not an API).
const sink = new Sink({ manifest: m, transport: {} as never, analytics: {} as never, logger: quiet }) as unknown as SinkInternals;

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
  for (let i = 0; i < N; i++) sink.telemetry(event, source);
  const sinkNs = ((performance.now() - t0) * 1e6) / N;
  sink.cut('probe');
  sink.ready.length = 0;
  const keep: unknown[] = [];
  t0 = performance.now();
  for (let i = 0; i < N; i++) keep.push({ row: rowWithoutSpreads(event, source), source });
  const plainNs = ((performance.now() - t0) * 1e6) / N;
  process.stdout.write(`rep ${rep + 1}: Sink.telemetry ${sinkNs.toFixed(0)} ns/row; the same row without object spreads ${plainNs.toFixed(0)} ns/row\n`);
}
