/**
 * Probe behind docs/performance.md (decision latency): what one aggregator transaction costs on the real broker
 * through the Transport, with its 106 records (one ModelVersion of 810 KB, 105 small audit/control records) sent
 * one request per record, as src/aggregator/transaction.ts does, or in one send() call; and plain sends.
 *
 *   npx tsx bench/probes/tx-sends.ts          (starts the benchmark broker in .kafka/bench, or reuses it)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { median, startBroker } from '../lib.ts';
import { kafka } from '../sim.ts';

const broker = await startBroker();
const t = kafka(broker.brokers, 'bench-tx-probe');
const admin = t.admin();
const topics = ['models', 'audit', 'control'].map((k) => `bench.txprobe-${randomUUID().slice(0, 6)}.${k}`);
try {
  await admin.createTopics(topics.map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })));
  const p = t.producer({ transactionalId: `bench-tx-probe-${randomUUID()}`, idempotent: true });
  await p.connect();
  const plain = t.producer({ idempotent: true });
  await plain.connect();
  const records = [
    { topic: topics[0]!, key: 'v1', value: randomBytes(810_000) },
    ...Array.from({ length: 105 }, (_, i) => ({ topic: topics[1 + (i % 2)]!, key: `k${i}`, value: randomBytes(300) })),
  ];
  const time = async (label: string, fn: () => Promise<void>, gapMs: number) => {
    const ms: number[] = [];
    for (let i = 0; i < 10; i++) {
      // A pause between transactions: right after a commit the coordinator still writes its markers, and kafkajs
      // answers CONCURRENT_TRANSACTIONS with its 300 ms retry backoff (see the gap-0 lines).
      await new Promise((r) => setTimeout(r, gapMs));
      const t0 = performance.now();
      await fn();
      ms.push(performance.now() - t0);
    }
    process.stdout.write(`${label.padEnd(58)} median ${median(ms).toFixed(1).padStart(6)} ms  [${ms.map((x) => x.toFixed(0)).join(' ')}]\n`);
  };
  for (const gap of [200, 0]) {
    await time(`tx: 106 sends, one per record + commit (gap ${gap} ms)`, async () => {
      const tx = await p.transaction();
      for (const r of records) await tx.send([r]);
      await tx.commit();
    }, gap);
    await time(`tx: one send of the 106 records + commit (gap ${gap} ms)`, async () => {
      const tx = await p.transaction();
      await tx.send(records);
      await tx.commit();
    }, gap);
  }
  await time('plain send of the 810 KB record alone', async () => { await plain.send([records[0]!]); }, 0);
  await time('plain send of one 300 B record', async () => { await plain.send([records[1]!]); }, 0);
  await p.disconnect();
  await plain.disconnect();
} finally {
  await admin.deleteTopics(topics).catch(() => undefined);
  await admin.close();
  await t.close();
  await broker.release();
}
