/**
 * Probe behind docs/performance.md (decision latency): the aggregator's closing transaction on kafkajs, bare (no
 * aggregator): one version record + 105 records of 300 B over three topics, sendOffsets, commit, then the time until
 * a read_committed consumer has the version. Prints p50/p90; VERBOSE=1 prints each transaction's kafkajs requests
 * as name@created/sent+duration (ms from the start; FC = FindCoordinator). Its Java twin is TxProbe.java.
 *
 *   npx tsx bench/probes/tx-latency.ts [versionBytes, default 810000]   (starts or reuses the benchmark broker)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import '../../src/transport/kafka/kafkajs-crc.ts';
import { startBroker } from '../lib.ts';
const broker = await startBroker();
const kafka = new kafkajs.Kafka({ brokers: broker.brokers.split(','), clientId: 'txreq', logLevel: kafkajs.logLevel.NOTHING });
const admin = kafka.admin(); await admin.connect();
const id = randomUUID().slice(0, 6);
const topics = ['models', 'audit', 'control', 'updates'].map((k) => `txreq-${id}.${k}`);
await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })) });
const p = kafka.producer({ transactionalId: `txreq-${id}`, idempotent: true, maxInFlightRequests: 1 });
const reqs: string[] = [];
let T0 = 0;
p.on(p.events.REQUEST, (e) => reqs.push(`${e.payload.apiName.replace('GroupCoordinator','FC')}@${(e.payload.createdAt - T0).toFixed(0)}/${(e.payload.sentAt - T0).toFixed(0)}+${e.payload.duration}`));
await p.connect();
const c = kafka.consumer({ groupId: `obs-${id}`, readUncommitted: false, maxWaitTimeInMs: 500, minBytes: 1, maxBytesPerPartition: 4 << 20 });
await c.connect(); await c.subscribe({ topic: topics[0]!, fromBeginning: true });
let seen: (() => void) | undefined;
await c.run({ eachMessage: async () => { seen?.(); } });
await new Promise((r) => setTimeout(r, 3000));
const versionBytes = Number(process.argv[2] ?? 810_000);
const version = randomBytes(versionBytes);
const small = Array.from({ length: 105 }, (_, i) => ({ key: `k${i}`, value: randomBytes(300) }));
const totals: number[] = [];
for (let i = 0; i < 25; i++) {
  await new Promise((r) => setTimeout(r, 300));
  reqs.length = 0;
  const got = new Promise<void>((r) => { seen = r; });
  const t0 = performance.now();
  T0 = Date.now();
  const tx = await p.transaction();
  await tx.sendBatch({ topicMessages: [{ topic: topics[0]!, messages: [{ key: 'v', value: version }] }, { topic: topics[1]!, messages: small.slice(0, 100) }, { topic: topics[2]!, messages: small.slice(100) }] });
  const t1 = performance.now();
  await tx.sendOffsets({ consumerGroupId: `agg-${id}`, topics: [{ topic: topics[3]!, partitions: [{ partition: 0, offset: String(i + 1) }] }] });
  const t2 = performance.now();
  await tx.commit();
  const t3 = performance.now();
  await got;
  const t4 = performance.now();
  if (i >= 3) totals.push(t4 - t0);
  if (process.env.VERBOSE) console.log(`total ${(t4 - t0).toFixed(1)}  send ${(t1 - t0).toFixed(1)} offsets ${(t2 - t1).toFixed(1)} commit ${(t3 - t2).toFixed(1)} readable ${(t4 - t3).toFixed(1)} | ${reqs.join(' ')}`);
}
totals.sort((a, b) => a - b);
console.log(`kafkajs, ${versionBytes} B version: transaction + read_committed receipt, ms: p50 ${totals[Math.floor(totals.length / 2)]!.toFixed(1)} p90 ${totals[Math.floor(totals.length * 0.9)]!.toFixed(1)} max ${totals.at(-1)!.toFixed(1)}`);
await c.disconnect(); await p.disconnect(); await admin.deleteTopics({ topics }); await admin.disconnect(); await broker.release();
