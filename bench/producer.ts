/**
 * Section 4: the project's producer path against Kafka's own producer benchmark on the same broker, same
 * topic layout, same record size, acks=all (idempotence on for both: the Java producer's default in 3.x and the
 * Transport producer's default).
 *
 * - Java: org.apache.kafka.tools.ProducerPerformance (kafka-tools 3.9.1, the class behind
 *   kafka-producer-perf-test.sh) with --throughput -1.
 * - Ours: one Transport producer (kafkajs 2.2.4 underneath), `send(records)` calls of B records each, one after
 *   the other, as the telemetry producers of the ingest benchmark do. The records per second at B = 500 is the
 *   figure; B = 1 (what the node SDK does for each heartbeat) and other sizes are reported beside it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { ProducerRecord } from '../src/transport/types.ts';
import { ROOT, median, progress, round, run } from './lib.ts';
import { kafka } from './sim.ts';

export interface ProducerFigures {
  recordSize: number;
  records: number;
  partitions: number;
  /** Records per second of our producer path at 500 records per send (median of reps). */
  oursPerSec: number;
  /** Records per second of ProducerPerformance (median of reps). */
  javaPerSec: number;
  ratioToJava: number;
  /** Ours at other records-per-send. */
  oursByBatch: Record<string, number>;
  /** Four Transport producers in parallel at 500 records per send. */
  ours4ProducersPerSec: number;
  javaSummary: string;
  javaCommand: string;
}

const RECORD_SIZE = 200;
const PARTITIONS = 4;

async function ours(brokers: string, topic: string, records: number, batch: number, producers = 1): Promise<number> {
  const t = kafka(brokers, 'bench-producer');
  const ps = Array.from({ length: producers }, () => t.producer({ idempotent: true }));
  await Promise.all(ps.map((p) => p.connect()));
  const values = Array.from({ length: 64 }, () => randomBytes(RECORD_SIZE));
  const recs: ProducerRecord[] = Array.from({ length: batch }, (_, i) => ({ topic, value: values[i % values.length]!, key: null }));
  const per = Math.ceil(records / producers / batch);
  const t0 = performance.now();
  await Promise.all(ps.map(async (p) => {
    for (let i = 0; i < per; i++) await p.send(recs);
  }));
  const seconds = (performance.now() - t0) / 1000;
  await Promise.all(ps.map((p) => p.disconnect()));
  await t.close();
  return (per * batch * producers) / seconds;
}

async function java(brokers: string, topic: string, records: number): Promise<{ perSec: number; summary: string; command: string }> {
  const args = [
    '-Xmx512m', '-cp', `${path.join(ROOT, '.cache', 'kafka-3.9.1', 'libs')}/*`, 'org.apache.kafka.tools.ProducerPerformance',
    '--topic', topic, '--num-records', String(records), '--record-size', String(RECORD_SIZE), '--throughput', '-1',
    '--producer-props', `bootstrap.servers=${brokers}`, 'acks=all',
  ];
  const javaBin = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const r = await run(javaBin, args, { timeoutMs: 300_000 });
  const lines = r.stdout.trim().split('\n');
  const summary = lines.at(-1) ?? '';
  const m = /records sent, ([\d.]+) records\/sec/.exec(summary);
  if (r.code !== 0 || !m) throw new Error(`ProducerPerformance failed (exit ${r.code}): ${summary} ${r.stderr.split('\n').slice(-5).join(' | ')}`);
  const command = `java -cp '.cache/kafka-3.9.1/libs/*' org.apache.kafka.tools.ProducerPerformance --topic T --num-records ${records} --record-size ${RECORD_SIZE} --throughput -1 --producer-props bootstrap.servers=… acks=all`;
  return { perSec: Number(m[1]), summary, command };
}

export async function benchProducer(brokers: string, o: { records: number; reps: number }): Promise<ProducerFigures> {
  const t = kafka(brokers, 'bench-producer-admin');
  const admin = t.admin();
  const topics: string[] = [];
  const fresh = async () => {
    const topic = `bench.producer-${randomUUID().slice(0, 8)}`;
    await admin.createTopics([{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }]);
    topics.push(topic);
    return topic;
  };
  try {
    const javaRates: number[] = [];
    const ourRates: number[] = [];
    let javaSummary = '';
    let javaCommand = '';
    // Warm-up of both (JIT, connections, the broker's log segments), then alternating reps on fresh topics.
    await ours(brokers, await fresh(), Math.min(50_000, o.records), 500);
    for (let rep = 0; rep < o.reps; rep++) {
      const j = await java(brokers, await fresh(), o.records);
      javaRates.push(j.perSec);
      javaSummary = j.summary;
      javaCommand = j.command;
      const r = await ours(brokers, await fresh(), o.records, 500);
      ourRates.push(r);
      progress(`producer: rep ${rep + 1}: Java ${Math.round(j.perSec)} records/s, ours ${Math.round(r)} records/s (${RECORD_SIZE} B, acks=all)`);
    }
    const oursByBatch: Record<string, number> = {};
    for (const b of [1, 100, 2000]) {
      const n = b === 1 ? Math.min(5_000, o.records) : b === 100 ? Math.ceil(o.records / 5) : o.records;
      oursByBatch[`b${b}`] = Math.round(await ours(brokers, await fresh(), n, b));
    }
    oursByBatch.b500 = Math.round(median(ourRates));
    const ours4 = await ours(brokers, await fresh(), o.records, 500, 4);
    progress(`producer: ours by records per send ${JSON.stringify(oursByBatch)}, 4 producers ${Math.round(ours4)} records/s`);
    const oursPerSec = median(ourRates);
    const javaPerSec = median(javaRates);
    return {
      recordSize: RECORD_SIZE,
      records: o.records,
      partitions: PARTITIONS,
      oursPerSec: Math.round(oursPerSec),
      javaPerSec: Math.round(javaPerSec),
      ratioToJava: round(oursPerSec / javaPerSec, 3),
      oursByBatch,
      ours4ProducersPerSec: Math.round(ours4),
      javaSummary,
      javaCommand,
    };
  } finally {
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.close();
    await t.close();
  }
}
