/**
 * Section 3: telemetry ingest. Producers (bench/telemetry-child.ts, their own process) → the real broker → the
 * Sink (this process, default batching: 10,000 rows or 1 s) → ClickHouse (chdb, on disk).
 *
 * Two phases:
 *   1. capacity: the producers go as fast as they can for a short while; the rate at which rows land in
 *      ClickHouse is what the sink can take (`maxEventsPerSec`);
 *   2. sustained: a fixed offered rate the sink can keep up with (80 % of that capacity; 10,000/s when the
 *      capacity lies between 10,000 and 12,500/s) for `seconds`; the figure is
 *      the rate at which rows landed over the window (`eventsPerSec`) and the freshness of the probe events:
 *      event time (the producer's clock) → the first poll of ClickHouse that sees it (this process's clock; the
 *      same machine's wall clock). Polls run every 50 ms, so freshness is an upper bound within ~50 ms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { applySchema, createAnalyticsClient, Sink, type AnalyticsClient } from '../src/analytics/index.ts';
import { parseManifest, type Manifest } from '../src/config/manifest.ts';
import { randomUUID } from 'node:crypto';
import { topicSpecs } from '../src/protocol/topics.ts';
import { brokerPid, nextMessage, percentile, procCpuSeconds, progress, round, spawnTsChild } from './lib.ts';
import { deleteTopics, kafka, quiet } from './sim.ts';

export interface IngestFigures {
  /** Rows landed in ClickHouse per second over the sustained window. */
  eventsPerSec: number;
  /** Offered rate of the sustained window. */
  offeredPerSec: number;
  /** Events the producers got acknowledged per second in the sustained window. */
  producedPerSec: number;
  /** Rows landed per second while the producers went flat out (phase 1). */
  maxEventsPerSec: number;
  /** Events acknowledged per second by the producers in phase 1. */
  maxProducedPerSec: number;
  /**
   * Rows landed per second while the sink drained the backlog phase 1 left, with the producers stopped: what
   * the sink does with the CPU to itself (and the broker).
   */
  drainEventsPerSec: number;
  seconds: number;
  freshnessP50Ms: number;
  freshnessP99Ms: number;
  freshnessMaxMs: number;
  /** The producer's share of freshness: a probe's event time → its send acknowledged (p50 / p99). */
  producerAckP50Ms: number;
  producerAckP99Ms: number;
  probes: number;
  /** Records behind the sink at the end of the sustained window. */
  lagAtEnd: number;
  batches: number;
  /** Median time of a batch from cut to commit (insert + commit), ms. */
  flushMedianMs: number;
  /** CPU seconds per second of the benchmark process (sink + chdb + polling), the producers' process and the broker. */
  cpuSinkProcess: number;
  cpuProducerProcess: number;
  cpuBroker: number;
  /** The same for the capacity phase. */
  capacityCpu: { sink: number; producer: number; broker: number };
  /**
   * ClickHouse alone: 10,000-row JSONEachRow inserts of the sink's telemetry rows, straight through the client,
   * rows per second (what the engine takes when nothing else runs in the pipeline).
   */
  engineOnlyRowsPerSec: number;
  partitions: number;
  batchRows: number;
  batchMs: number;
}

/** Rows shaped as the sink writes them to telemetry_events. */
function telemetryRows(m: Manifest, n: number, offset: number): Record<string, unknown>[] {
  const kinds = ['HEARTBEAT', 'TRAINING', 'EVALUATION'];
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    tenant: m.tenant, pipeline: `${m.name}-engine`, node_id: `node-${String(i % 100).padStart(3, '0')}`, kind: kinds[i % 3], round: 1 + (i % 50), event_time: now,
    metrics: { cpu: (i % 100) / 100, memoryMb: 100 + (i % 400), loss: 1 / (1 + (i % 1000)) }, labels: { backend: 'wasm' }, message: '',
    kafka_topic: `${m.tenant}.${m.name}.telemetry`, kafka_partition: i % 4, kafka_offset: offset + i,
  }));
}

async function engineOnly(ch: AnalyticsClient, m: Manifest, batches: number): Promise<number> {
  const times: number[] = [];
  for (let b = 0; b < batches; b++) {
    const rows = telemetryRows(m, 10_000, b * 10_000);
    const t0 = performance.now();
    await ch.client.insert({ table: 'telemetry_events', values: rows, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: `engine-${m.name}-${b}` } });
    times.push(performance.now() - t0);
  }
  return 10_000 / (percentile(times, 50) / 1000);
}

interface Window {
  landed: number;
  produced: number;
  seconds: number;
  probeLatencies: number[];
  probes: number;
  lagAtEnd: number;
  cpuSink: number;
  cpuProducer: number;
  cpuBroker: number;
  probeAckP50Ms: number;
  probeAckP99Ms: number;
}

/** Event times (ms) of the probe events newer than `after` that ClickHouse returns now. */
async function newProbes(ch: AnalyticsClient, m: Manifest, after: number): Promise<number[]> {
  const rs = await ch.client.query({
    query: `SELECT toUnixTimestamp64Milli(event_time) AS t FROM telemetry_events
            WHERE tenant = {t:String} AND pipeline = {p:String} AND event_time > fromUnixTimestamp64Milli({after:Int64}) AND node_id = 'probe'
            ORDER BY t`,
    query_params: { t: m.tenant, p: m.name, after },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ t: string | number }>()).map((r) => Number(r.t));
}

export async function benchIngest(brokers: string, o: { seconds: number; capacitySeconds?: number; rate?: number; partitions?: number }): Promise<IngestFigures> {
  const partitions = o.partitions ?? 4;
  const batchRows = 10_000;
  const batchMs = 1_000;
  const m = parseManifest({
    apiVersion: 'fedstream/v1', tenant: 'bench', name: `ingest-${randomUUID().slice(0, 8)}`,
    model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
    data: { source: 'mnist', nodes: 100 },
    rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    topics: { partitions },
    // Telemetry is not signed; open enrolment lets the sink start without a keys directory.
    participants: { enrolment: 'open' },
  });
  const t = kafka(brokers, 'bench-ingest');
  const admin = t.admin();
  await admin.createTopics(topicSpecs(m));
  await admin.close();
  const dir = mkdtempSync(path.join(tmpdir(), 'fedstream-bench-ch-'));
  const ch = await createAnalyticsClient({ path: path.join(dir, 'clickhouse'), logger: quiet });
  await applySchema(ch, { logger: quiet });
  let landed = 0;
  const flushMs: number[] = [];
  const sink = new Sink({
    manifest: m, transport: t, analytics: ch, logger: quiet, batchRows, batchMs,
    onFlush: (f) => {
      landed += f.rows.telemetry_events;
      flushMs.push(f.ms);
    },
  });
  await sink.start();

  const window = async (rate: number, seconds: number, label: string): Promise<Window> => {
    const cfg = { brokers, manifest: m, rate, seconds, producers: 4, batch: 500 };
    const child = spawnTsChild('bench/telemetry-child.ts', [JSON.stringify(cfg)]);
    await nextMessage(child, (msg: { type: string }) => msg.type === 'ready', 60_000, 'telemetry producers start');
    const startLanded = landed;
    const t0 = Date.now();
    const bpid = brokerPid();
    const cpu0 = procCpuSeconds(process.pid) ?? 0;
    const bcpu0 = bpid ? procCpuSeconds(bpid) ?? 0 : 0;
    let bcpuAtEnd = bcpu0;
    const probeLatencies: number[] = [];
    let seenUpTo = t0 - 1;
    let lastReport = t0;
    const done = nextMessage<{ type: string; sent: number; seconds: number; probes: number; cpuPerSecond: number; lastProbeAt: number; probeAckP50Ms: number; probeAckP99Ms: number }>(child, (msg) => msg.type === 'done', (seconds + 120) * 1000, 'telemetry producers');
    let finished: { sent: number; seconds: number; probes: number; lastProbeAt: number } | undefined;
    void done.then((d) => { finished = d; }, () => undefined);
    let cpuAtEnd = cpu0;
    let landedAtEnd = startLanded;
    let endAt = 0;
    // Poll until the producers are done and the last probe landed (or 30 s more went by).
    for (;;) {
      const before = Date.now();
      if (!endAt && before >= t0 + seconds * 1000) {
        endAt = before;
        landedAtEnd = landed;
        cpuAtEnd = procCpuSeconds(process.pid) ?? 0;
        bcpuAtEnd = bpid ? procCpuSeconds(bpid) ?? 0 : 0;
      }
      const fresh = await newProbes(ch, m, seenUpTo);
      const after = Date.now();
      // The poll that first returns a probe is when it became queryable (at the latest).
      for (const e of fresh) probeLatencies.push(after - e);
      const maxT = fresh.length ? fresh[fresh.length - 1]! : seenUpTo;
      seenUpTo = maxT;
      if (after - lastReport >= 5_000) {
        lastReport = after;
        progress(`ingest ${label}: ${Math.round((landed - startLanded) / ((after - t0) / 1000))} rows/s landed, lag ${sink.metrics().lag}, freshness of the latest probe ${after - maxT} ms`);
      }
      if (finished && (maxT >= finished.lastProbeAt || after - t0 > (seconds + 30) * 1000)) break;
      await new Promise((r) => setTimeout(r, Math.max(0, 50 - (after - before))));
    }
    const d = await done;
    const windowSeconds = (endAt - t0) / 1000;
    return {
      landed: landedAtEnd - startLanded,
      produced: d.sent,
      seconds: windowSeconds,
      probeLatencies,
      probes: d.probes,
      lagAtEnd: sink.metrics().lag,
      cpuSink: (cpuAtEnd - cpu0) / windowSeconds,
      cpuProducer: d.cpuPerSecond,
      cpuBroker: (bcpuAtEnd - bcpu0) / windowSeconds,
      probeAckP50Ms: d.probeAckP50Ms,
      probeAckP99Ms: d.probeAckP99Ms,
    };
  };

  try {
    const engineOnlyRowsPerSec = await engineOnly(ch, m, 6);
    progress(`ingest: ClickHouse alone takes ${Math.round(engineOnlyRowsPerSec)} rows/s (10,000-row JSONEachRow inserts)`);
    const capSeconds = o.capacitySeconds ?? Math.max(3, Math.min(15, o.seconds / 4));
    progress(`ingest: capacity phase, producers flat out for ${capSeconds} s`);
    const cap = await window(0, capSeconds, 'capacity');
    const maxEventsPerSec = cap.landed / cap.seconds;
    progress(`ingest: capacity ${Math.round(maxEventsPerSec)} rows/s landed (${Math.round(cap.produced / capSeconds)} events/s acknowledged)`);
    // Let the sink drain the backlog of phase 1 before the sustained window; how fast it does is a figure too.
    const drainStart = Date.now();
    const landedBefore = landed;
    const backlog = sink.metrics().lag;
    while (sink.metrics().lag > 0 && Date.now() < drainStart + 60_000) await new Promise((r) => setTimeout(r, 100));
    const drainSeconds = (Date.now() - drainStart) / 1000;
    const drainEventsPerSec = backlog > 20_000 && drainSeconds > 1 ? (landed - landedBefore) / drainSeconds : NaN;
    if (Number.isFinite(drainEventsPerSec)) progress(`ingest: drained a backlog of ${backlog} records at ${Math.round(drainEventsPerSec)} rows/s (producers stopped)`);
    // A rate the pipeline can sustain (lag stays bounded), so that freshness is the steady state's and not a
    // backlog's: 80 % of the capacity, or the goal of 10,000/s when the capacity has room for it.
    const sustainable = Math.max(500, Math.round((0.8 * maxEventsPerSec) / 500) * 500);
    const rate = o.rate && o.rate > 0 ? o.rate : maxEventsPerSec >= 12_500 ? sustainable : maxEventsPerSec >= 10_000 ? 10_000 : sustainable;
    progress(`ingest: sustained phase, ${rate} events/s offered for ${o.seconds} s`);
    const s = await window(rate, o.seconds, 'sustained');
    return {
      eventsPerSec: Math.round(s.landed / s.seconds),
      offeredPerSec: rate,
      producedPerSec: Math.round(s.produced / s.seconds),
      maxEventsPerSec: Math.round(maxEventsPerSec),
      maxProducedPerSec: Math.round(cap.produced / cap.seconds),
      drainEventsPerSec: Math.round(drainEventsPerSec),
      seconds: round(s.seconds, 1),
      freshnessP50Ms: percentile(s.probeLatencies, 50),
      freshnessP99Ms: percentile(s.probeLatencies, 99),
      freshnessMaxMs: Math.max(...s.probeLatencies),
      producerAckP50Ms: s.probeAckP50Ms,
      producerAckP99Ms: s.probeAckP99Ms,
      probes: s.probeLatencies.length,
      lagAtEnd: s.lagAtEnd,
      batches: flushMs.length,
      flushMedianMs: percentile(flushMs, 50),
      cpuSinkProcess: round(s.cpuSink, 2),
      cpuProducerProcess: round(s.cpuProducer, 2),
      cpuBroker: round(s.cpuBroker, 2),
      capacityCpu: { sink: round(cap.cpuSink, 2), producer: round(cap.cpuProducer, 2), broker: round(cap.cpuBroker, 2) },
      engineOnlyRowsPerSec: Math.round(engineOnlyRowsPerSec),
      partitions,
      batchRows,
      batchMs,
    };
  } finally {
    await sink.stop().catch(() => undefined);
    await ch.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await deleteTopics(t, m);
    await t.close();
  }
}
