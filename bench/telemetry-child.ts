/**
 * Telemetry load for bench/ingest.ts, in its own process: TelemetryEvents from 100 simulated nodes sent through
 * the project's producer path (toRecords + Transport producer, acks=all, idempotent), at a target rate or as fast
 * as it goes (rate 0). Every 50 ms one event comes from the node `probe`, always to the same partition, so that
 * the parent can time when each probe's event time became queryable.
 *
 * argv[2]: JSON { brokers, manifest, rate, seconds, producers, batch }. IPC out: { type: 'ready' }, then
 * { type: 'done', sent, seconds, probes, cpuPerSecond, lastProbeAt, probeAckP50Ms, probeAckP99Ms }.
 */
import type { TelemetryEventRecord } from '../src/codec/index.ts';
import { createLogger } from '../src/common/logger.ts';
import { parseManifest } from '../src/config/manifest.ts';
import { pipelineTopics } from '../src/protocol/topics.ts';
import { toRecords } from '../src/protocol/wire.ts';
import { createKafkaTransport } from '../src/transport/kafka/index.ts';
import type { ProducerRecord } from '../src/transport/types.ts';

interface Config {
  brokers: string;
  manifest: unknown;
  /** Events per second offered; 0: as fast as the producers go. */
  rate: number;
  seconds: number;
  producers: number;
  /** Events per send call. */
  batch: number;
}

const c = JSON.parse(process.argv[2] ?? '{}') as Config;
const m = parseManifest(c.manifest);
const topic = pipelineTopics(m).telemetry;
const chunk = m.topics.chunkSizeBytes;
const KINDS = ['HEARTBEAT', 'TRAINING', 'EVALUATION'] as const;

let seq = 0;
function event(nodeId: string, now: number): ProducerRecord {
  const i = seq++;
  const e: TelemetryEventRecord = {
    tenant: m.tenant,
    pipeline: m.name,
    nodeId,
    kind: KINDS[i % 3]!,
    round: 1 + (i % 50),
    eventTime: now,
    metrics: { cpu: (i % 100) / 100, memoryMb: 100 + (i % 400), loss: 1 / (1 + (i % 1000)) },
    labels: { backend: 'wasm' },
    message: null,
  };
  return toRecords(topic, 'TelemetryEvent', e, nodeId, chunk)[0]!;
}

async function main(): Promise<void> {
  const t = createKafkaTransport({ brokers: c.brokers.split(','), clientId: 'bench-telemetry', logger: createLogger('warn') });
  const producers = Array.from({ length: c.producers }, () => t.producer({ idempotent: true }));
  await Promise.all(producers.map((p) => p.connect()));
  process.send?.({ type: 'ready' });
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const end = t0 + c.seconds * 1000;
  let sent = 0;
  let probes = 0;
  let lastProbeAt = 0;
  /** Producer side of freshness: event time of a probe → its batch acknowledged. */
  const probeAckMs: number[] = [];
  let nextProbe = t0;
  const batchOf = (n: number, withProbe: boolean): ProducerRecord[] => {
    const now = Date.now();
    const out: ProducerRecord[] = [];
    if (withProbe && now >= nextProbe) {
      out.push(event('probe', now));
      probes++;
      lastProbeAt = now;
      nextProbe = now + 50;
    }
    for (let k = out.length; k < n; k++) out.push(event(`node-${String(seq % 100).padStart(3, '0')}`, now));
    return out;
  };
  // Each producer sends its batches one after the other (sends of one idempotent producer are serialized anyway);
  // with a target rate, a producer waits until the events it has sent are due.
  await Promise.all(producers.map(async (p, w) => {
    let mine = 0;
    for (;;) {
      const now = Date.now();
      if (now >= end) return;
      if (c.rate > 0) {
        const due = ((now - t0) / 1000) * (c.rate / c.producers);
        if (mine >= due) {
          await new Promise((r) => setTimeout(r, Math.max(1, ((mine - due) / (c.rate / c.producers)) * 1000)));
          continue;
        }
      }
      const n = c.rate > 0 ? Math.max(1, Math.min(c.batch, Math.ceil(((now - t0) / 1000) * (c.rate / c.producers) - mine))) : c.batch;
      const recs = batchOf(n, w === 0);
      const probeAt = recs[0]?.key === 'probe' ? lastProbeAt : 0;
      await p.send(recs);
      if (probeAt) probeAckMs.push(Date.now() - probeAt);
      mine += recs.length;
      sent += recs.length;
    }
  }));
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuPerSecond = (cpu.user + cpu.system) / 1e6 / seconds;
  await Promise.all(producers.map((p) => p.disconnect()));
  await t.close();
  probeAckMs.sort((a, b) => a - b);
  const pct = (q: number) => probeAckMs[Math.min(probeAckMs.length - 1, Math.max(0, Math.ceil((q / 100) * probeAckMs.length) - 1))] ?? NaN;
  process.send?.({ type: 'done', sent, seconds, probes, cpuPerSecond, lastProbeAt, probeAckP50Ms: pct(50), probeAckP99Ms: pct(99) });
  setTimeout(() => {
    process.disconnect?.();
    process.exit(0);
  }, 100);
}

main().catch((err: unknown) => {
  process.stderr.write(`telemetry-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
