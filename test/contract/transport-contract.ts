/**
 * The transport contract: what the pipeline relies on, checked against every adapter (memory in the unit project,
 * the real broker in the integration project). A behaviour belongs here when both adapters must show it; where
 * they may differ, the test says so.
 *
 * One file past 400 lines on purpose: it is one suite that both adapters run, and a reader checks an adapter
 * against all of it at once; split, the halves would have to be kept in step by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FedStreamError } from '../../src/common/errors.ts';
import { waitFor } from '../../src/common/retry.ts';
import { partitionForKey } from '../../src/transport/memory/index.ts';
import type { Transport, TransportMessage } from '../../src/transport/types.ts';
import {
  collectMessages,
  connectedProducer,
  createTestTopic,
  createTestTopics,
  deferCleanup,
  sendValues,
  testAdmin,
  uniqueName,
} from '../integration/helpers.ts';

export interface ContractOptions {
  /** Longest wait for a delivery. */
  timeoutMs?: number;
}

const text = (m: TransportMessage): string => m.value?.toString('utf8') ?? '<null>';
function range(n: number): string[];
function range<T>(n: number, f: (i: number) => T): T[];
function range<T>(n: number, f?: (i: number) => T): (T | string)[] {
  return Array.from({ length: n }, (_, i) => (f ? f(i) : String(i)));
}

async function rejection(promise: Promise<unknown>): Promise<FedStreamError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(FedStreamError);
    return err as FedStreamError;
  }
  throw new Error('expected a rejection, but the call succeeded');
}

export function transportContract(name: string, makeTransport: () => Transport | Promise<Transport>, options: ContractOptions = {}): void {
  const timeoutMs = options.timeoutMs ?? 60_000;

  describe(`transport contract: ${name}`, () => {
    let transport: Transport;

    beforeAll(async () => {
      transport = await makeTransport();
    });
    afterAll(async () => {
      await transport?.close();
    });

    describe('produce and consume', () => {
      it('keeps the order of records within each partition', async () => {
        const topic = await createTestTopic(transport, { numPartitions: 3 });
        const producer = await connectedProducer(transport);
        const records = range(30).map((i) => ({ topic, partition: Number(i) % 3, value: Buffer.from(i) }));
        await producer.send(records.slice(0, 10));
        await producer.send(records.slice(10));

        const collector = await collectMessages(transport, { topics: [topic] });
        const messages = await collector.waitForCount(30, { timeoutMs });
        expect(messages).toHaveLength(30);
        for (const partition of [0, 1, 2]) {
          const inPartition = messages.filter((m) => m.partition === partition);
          expect(inPartition.map(text)).toEqual(range(30).filter((i) => Number(i) % 3 === partition));
          expect(inPartition.map((m) => Number(m.offset))).toEqual(range(10, (i) => i));
        }
      });

      it("sends records with the same key to one partition, the one Kafka's default partitioner picks", async () => {
        const topic = await createTestTopic(transport, { numPartitions: 4 });
        const producer = await connectedProducer(transport);
        const keys = range(8, (i) => `node-${i}`);
        await producer.send(keys.flatMap((key) => range(3, (j) => ({ topic, key, value: Buffer.from(`${key}/${j}`) }))));

        const collector = await collectMessages(transport, { topics: [topic] });
        const messages = await collector.waitForCount(24, { timeoutMs });
        for (const key of keys) {
          const ofKey = messages.filter((m) => m.key?.toString() === key);
          expect(ofKey.map(text)).toEqual(range(3, (j) => `${key}/${j}`));
          expect(new Set(ofKey.map((m) => m.partition))).toEqual(new Set([partitionForKey(key, 4)]));
        }
      });

      it('round-trips keys, values, headers and timestamps', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        const binary = Buffer.from([0, 1, 2, 250, 255]);
        await producer.send([
          { topic, key: binary, value: Buffer.from('with headers'), headers: { 'content-type': 'avro', raw: Buffer.from([9, 8, 7]) }, timestamp: 1_700_000_000_000 },
          { topic, key: 'tombstone', value: null },
        ]);

        const collector = await collectMessages(transport, { topics: [topic] });
        const [first, second] = await collector.waitForCount(2, { timeoutMs });
        expect(first!.key).toEqual(binary);
        expect(first!.value).toEqual(Buffer.from('with headers'));
        expect(first!.headers['content-type']).toEqual(Buffer.from('avro'));
        expect(first!.headers.raw).toEqual(Buffer.from([9, 8, 7]));
        expect(first!.timestamp).toBe(1_700_000_000_000);
        expect(second!.key).toEqual(Buffer.from('tombstone'));
        expect(second!.value).toBeNull();
        expect(second!.headers).toEqual({});
        expect(Math.abs(second!.timestamp - Date.now())).toBeLessThan(120_000);
      });

      it('returns the partition and base offset of each send', async () => {
        const topic = await createTestTopic(transport, { numPartitions: 2 });
        const producer = await connectedProducer(transport);
        await producer.send([{ topic, partition: 1, value: Buffer.from('a') }]);
        const metadata = await producer.send([
          { topic, partition: 1, value: Buffer.from('b') },
          { topic, partition: 1, value: Buffer.from('c') },
          { topic, partition: 0, value: Buffer.from('d') },
        ]);
        const byPartition = Object.fromEntries(metadata.map((m) => [m.partition, m]));
        expect(byPartition[1]).toMatchObject({ topic, partition: 1, baseOffset: '1' });
        expect(byPartition[0]).toMatchObject({ topic, partition: 0, baseOffset: '0' });
      });

      it('delivers concurrent sends of an idempotent producer once each, in call order', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport, { idempotent: true });
        await Promise.all(range(40).map((i) => producer.send([{ topic, value: Buffer.from(i) }])));

        const collector = await collectMessages(transport, { topics: [topic] });
        await collector.waitForCount(40, { timeoutMs });
        expect(collector.values()).toEqual(range(40));
        const admin = testAdmin(transport);
        expect(await admin.fetchTopicOffsets(topic)).toEqual([{ partition: 0, low: '0', high: '40' }]);
      });

      it('refuses a record above max.message.bytes (non-retriable), and carries several records near the limit in one send', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        const err = await rejection(producer.send([{ topic, value: Buffer.alloc(1_500_000, 1) }]));
        expect(err.code).toBe('TRANSPORT_TOPIC');
        expect(err.retriable).toBe(false);
        expect(err.message).toMatch(/max\.message\.bytes/);

        const chunk = 900 * 1024;
        await producer.send(range(3).map((i) => ({ topic, key: 'payload-1', value: Buffer.alloc(chunk, Number(i)), headers: { chunk: i } })));
        const collector = await collectMessages(transport, { topics: [topic] });
        const messages = await collector.waitForCount(3, { timeoutMs });
        expect(messages.map((m) => [m.headers.chunk?.toString(), m.value?.length, m.value?.[0]])).toEqual([
          ['0', chunk, 0],
          ['1', chunk, 1],
          ['2', chunk, 2],
        ]);
      });
    });

    describe('consumer groups', () => {
      it('resume from the committed offset after a disconnect', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['a', 'b', 'c', 'd', 'e'], { together: true });
        const groupId = uniqueName('resume');
        const admin = testAdmin(transport);

        const first = transport.consumer({ groupId });
        deferCleanup(() => first.disconnect());
        const seen: string[] = [];
        await first.connect();
        await first.subscribe([topic]);
        await first.run({
          eachBatch: async (batch) => {
            seen.push(...batch.messages.map(text));
          },
        });
        await waitFor(() => seen.length >= 5, { timeoutMs, what: 'five messages' });
        // Processed everything, but commits only up to "c" (next offset 3): "d" and "e" must come again.
        await first.commitOffsets([{ topic, partition: 0, offset: '3' }]);
        await first.disconnect();
        expect(await admin.fetchCommittedOffsets(groupId, topic)).toEqual([{ topic, partition: 0, offset: '3' }]);

        await sendValues(producer, topic, ['f', 'g'], { together: true });
        const second = await collectMessages(transport, { topics: [topic], groupId });
        await second.waitForCount(4, { timeoutMs });
        expect(second.values()).toEqual(['d', 'e', 'f', 'g']);
        await second.stop();
        // The collector auto-commits what it resolved.
        expect(await admin.fetchCommittedOffsets(groupId, topic)).toEqual([{ topic, partition: 0, offset: '7' }]);
      });

      it('report -1 for a group that committed nothing', async () => {
        const topic = await createTestTopic(transport, { numPartitions: 2 });
        const admin = testAdmin(transport);
        expect(await admin.fetchCommittedOffsets(uniqueName('nobody'), topic)).toEqual([
          { topic, partition: 0, offset: '-1' },
          { topic, partition: 1, offset: '-1' },
        ]);
      });

      it('are independent of each other', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['1', '2', '3'], { together: true });
        const a = await collectMessages(transport, { topics: [topic] });
        await a.waitForCount(3, { timeoutMs });
        const b = await collectMessages(transport, { topics: [topic] });
        await b.waitForCount(3, { timeoutMs });
        expect(a.values()).toEqual(['1', '2', '3']);
        expect(b.values()).toEqual(['1', '2', '3']);
      });

      it('start at the end with fromBeginning: false, and see what is sent once run() returned', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['old-1', 'old-2']);
        const collector = await collectMessages(transport, { topics: [topic], fromBeginning: false });
        await sendValues(producer, topic, ['new-1', 'new-2']);
        await collector.waitForCount(2, { timeoutMs });
        expect(collector.values()).toEqual(['new-1', 'new-2']);
      });

      it('split the partitions of a topic among their members, and hand them over when a member leaves', async () => {
        const topic = await createTestTopic(transport, { numPartitions: 2 });
        const producer = await connectedProducer(transport);
        const groupId = uniqueName('split');
        const a = await collectMessages(transport, { topics: [topic], groupId });
        const b = await collectMessages(transport, { topics: [topic], groupId });
        for (const partition of [0, 1]) await sendValues(producer, topic, range(5, (i) => `p${partition}-${i}`), { partition, together: true });

        await waitFor(() => a.messages.length + b.messages.length >= 10, { timeoutMs, what: 'ten messages across the group' });
        const partitionsOf = (c: typeof a): number[] => [...new Set(c.messages.map((m) => m.partition))].sort();
        expect(partitionsOf(a)).toHaveLength(1);
        expect(partitionsOf(b)).toHaveLength(1);
        expect(partitionsOf(a)).not.toEqual(partitionsOf(b));
        expect([...a.values(), ...b.values()].sort()).toEqual([...range(5, (i) => `p0-${i}`), ...range(5, (i) => `p1-${i}`)].sort());

        const bPartition = partitionsOf(b)[0]!;
        await b.stop();
        await sendValues(producer, topic, ['late'], { partition: bPartition });
        await a.waitForValue('late', { timeoutMs });
        // b committed what it processed, so a starts on b's partition where b stopped.
        expect(a.values((m) => m.partition === bPartition)).toEqual(['late']);
      });

      it('seek moves the position of a partition', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['0', '1', '2', '3', '4'], { together: true });
        const collector = await collectMessages(transport, { topics: [topic] });
        await collector.waitForCount(5, { timeoutMs });
        collector.consumer.seek({ topic, partition: 0, offset: '2' });
        await collector.waitForCount(8, { timeoutMs });
        expect(collector.values()).toEqual(['0', '1', '2', '3', '4', '2', '3', '4']);
      });

      it('pause holds back a topic until resume', async () => {
        const [held, flowing] = await createTestTopics(transport, [{ prefix: 'held' }, { prefix: 'flowing' }]);
        const producer = await connectedProducer(transport);
        const collector = await collectMessages(transport, { topics: [held!, flowing!] });
        collector.consumer.pause([held!]);
        await sendValues(producer, held!, ['held-1']);
        await sendValues(producer, flowing!, ['flowing-1']);
        await collector.waitForValue('flowing-1', { timeoutMs });
        expect(collector.values()).toEqual(['flowing-1']);
        collector.consumer.resume([held!]);
        await collector.waitForValue('held-1', { timeoutMs });
      });
    });

    describe('transactions', () => {
      it('make records and consumer offsets visible together, on commit', async () => {
        const [input, output] = await createTestTopics(transport, [{ prefix: 'input' }, { prefix: 'output' }]);
        const admin = testAdmin(transport);
        const plain = await connectedProducer(transport);
        await sendValues(plain, input!, ['u1', 'u2', 'u3'], { together: true });
        const groupId = uniqueName('aggregator');
        const reader = await collectMessages(transport, { topics: [output!], readCommitted: true });

        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });
        const txn = await producer.transaction();
        await txn.send([
          { topic: output!, key: 'model', value: Buffer.from('v1') },
          { topic: output!, key: 'audit', value: Buffer.from('closed round 1') },
        ]);
        await txn.sendOffsets(groupId, [{ topic: input!, partition: 0, offset: '3' }]);
        // Before commit: read_committed readers see neither the records nor the offsets.
        expect(await admin.fetchTopicOffsets(output!)).toEqual([{ partition: 0, low: '0', high: '0' }]);
        expect(await admin.fetchCommittedOffsets(groupId, input!)).toEqual([{ topic: input!, partition: 0, offset: '-1' }]);

        await txn.commit();
        await reader.waitForCount(2, { timeoutMs });
        expect(reader.values()).toEqual(['v1', 'closed round 1']);
        // On Kafka, commit() returns once the coordinator decided; the markers (and the offsets) land just after.
        await expect.poll(() => admin.fetchCommittedOffsets(groupId, input!), { timeout: timeoutMs }).toEqual([{ topic: input!, partition: 0, offset: '3' }]);
        // Two records and the commit marker, which takes an offset as on Kafka.
        expect(await admin.fetchTopicOffsets(output!)).toEqual([{ partition: 0, low: '0', high: '3' }]);
      });

      it('report the position past trailing commit markers through onPosition, so a reader knows it reached the end', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });
        for (const v of ['a', 'b']) {
          const txn = await producer.transaction();
          await txn.send([{ topic, value: Buffer.from(v) }]);
          await txn.commit();
        }
        const admin = testAdmin(transport);
        // Two records and two commit markers: the end is 4, the last record is at offset 2.
        await expect.poll(async () => (await admin.fetchTopicOffsets(topic))[0]!.high, { timeout: timeoutMs }).toBe('4');
        const positions: string[] = [];
        const seen: string[] = [];
        const consumer = transport.consumer({ groupId: uniqueName('pos'), readCommitted: true, fromBeginning: true });
        deferCleanup(() => consumer.disconnect());
        await consumer.connect();
        await consumer.subscribe([topic]);
        await consumer.run({
          eachBatch: async (batch, ctx) => {
            for (const m of batch.messages) { seen.push(text(m)); ctx.resolveOffset(m.offset); }
          },
          onPosition: (p) => { if (p.topic === topic) positions.push(p.nextOffset); },
        });
        await waitFor(() => positions.includes('4'), { timeoutMs, what: 'position 4' });
        expect(seen).toEqual(['a', 'b']);
      });

      it('hold back later records from read_committed readers while a transaction is open (last stable offset)', async () => {
        const topic = await createTestTopic(transport);
        const admin = testAdmin(transport);
        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });
        const plain = await connectedProducer(transport);
        const txn = await producer.transaction();
        await txn.send([{ topic, value: Buffer.from('in-txn') }]);
        await sendValues(plain, topic, ['after-txn-start']);
        const uncommitted = await collectMessages(transport, { topics: [topic], readCommitted: false });
        await uncommitted.waitForCount(2, { timeoutMs });
        expect(await admin.fetchTopicOffsets(topic)).toEqual([{ partition: 0, low: '0', high: '0' }]);

        const committed = await collectMessages(transport, { topics: [topic], readCommitted: true });
        await txn.commit();
        await committed.waitForCount(2, { timeoutMs });
        expect(committed.values()).toEqual(['in-txn', 'after-txn-start']);
        expect(uncommitted.values()).toEqual(['in-txn', 'after-txn-start']);
      });

      it('abort hides records from read_committed readers (read_uncommitted readers see them)', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });
        const plain = await connectedProducer(transport);
        const txn = await producer.transaction();
        await txn.send([
          { topic, value: Buffer.from('aborted-1') },
          { topic, value: Buffer.from('aborted-2') },
        ]);
        await txn.abort();
        await sendValues(plain, topic, ['after']);

        const committed = await collectMessages(transport, { topics: [topic], readCommitted: true });
        const uncommitted = await collectMessages(transport, { topics: [topic], readCommitted: false });
        await committed.waitForValue('after', { timeoutMs });
        await uncommitted.waitForValue('after', { timeoutMs });
        expect(committed.values()).toEqual(['after']);
        // Kafka's EndTxn returns before the broker writes the abort marker, so "after" may land before the marker (2)
        // or after it (3); the memory log writes the marker at once.
        expect(Number(committed.messages[0]!.offset)).toBeGreaterThanOrEqual(2);
        expect(uncommitted.values()).toEqual(['aborted-1', 'aborted-2', 'after']);
      });

      it('commit consumer offsets sent with sendOffsets only with the transaction', async () => {
        const topic = await createTestTopic(transport);
        const plain = await connectedProducer(transport);
        await sendValues(plain, topic, ['a', 'b', 'c', 'd'], { together: true });
        const admin = testAdmin(transport);
        const groupId = uniqueName('txn-offsets');
        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });

        const aborted = await producer.transaction();
        await aborted.sendOffsets(groupId, [{ topic, partition: 0, offset: '2' }]);
        await aborted.abort();
        expect(await admin.fetchCommittedOffsets(groupId, topic)).toEqual([{ topic, partition: 0, offset: '-1' }]);

        const committed = await producer.transaction();
        await committed.sendOffsets(groupId, [{ topic, partition: 0, offset: '2' }]);
        await committed.commit();
        await expect.poll(() => admin.fetchCommittedOffsets(groupId, topic), { timeout: timeoutMs }).toEqual([{ topic, partition: 0, offset: '2' }]);

        const collector = await collectMessages(transport, { topics: [topic], groupId });
        await collector.waitForCount(2, { timeoutMs });
        expect(collector.values()).toEqual(['c', 'd']);
      });

      it('allow one open transaction per producer', async () => {
        const producer = await connectedProducer(transport, { transactionalId: uniqueName('txn') });
        const txn = await producer.transaction();
        const err = await rejection(producer.transaction());
        expect(err.code).toBe('TRANSPORT_TRANSACTION');
        await txn.abort();
        const next = await producer.transaction();
        await next.abort();
        const ended = await rejection(next.commit());
        expect(ended.code).toBe('TRANSPORT_TRANSACTION');
      });

      it('fence the older producer when a new one connects with the same transactionalId', async () => {
        const topic = await createTestTopic(transport);
        const transactionalId = uniqueName('fenced');
        const old = await connectedProducer(transport, { transactionalId });
        const oldTxn = await old.transaction();
        await oldTxn.send([{ topic, value: Buffer.from('from-old') }]);

        const successor = await connectedProducer(transport, { transactionalId });
        const err = await rejection(oldTxn.commit());
        expect(err.code).toBe('TRANSPORT_FENCED');
        expect(err.retriable).toBe(false);
        expect((await rejection(old.transaction().then((t) => t.send([{ topic, value: Buffer.from('again') }])))).code).toBe('TRANSPORT_FENCED');
        expect((await rejection(old.send([{ topic, value: Buffer.from('plain') }]))).code).toBe('TRANSPORT_FENCED');
        expect((await rejection(old.checkFenced(uniqueName('group')))).code).toBe('TRANSPORT_FENCED');

        const txn = await successor.transaction();
        await txn.send([{ topic, value: Buffer.from('from-successor') }]);
        await txn.commit();
        // The successor is not fenced, and asking writes no record.
        await successor.checkFenced(uniqueName('group'));
        const reader = await collectMessages(transport, { topics: [topic], readCommitted: true });
        await reader.waitForValue('from-successor', { timeoutMs });
        expect(reader.values()).toEqual(['from-successor']);
      });
    });

    describe('admin', () => {
      it('creates only the missing topics, with their configs', async () => {
        const admin = testAdmin(transport);
        const [a, b, c] = [uniqueName('admin-a'), uniqueName('admin-b'), uniqueName('admin-c')];
        deferCleanup(() => admin.deleteTopics([a, b, c]));
        const created = await admin.createTopics([
          { topic: a, numPartitions: 2, configs: { 'retention.ms': '-1', 'cleanup.policy': 'delete' } },
          { topic: b },
        ]);
        expect(created.sort()).toEqual([a, b].sort());
        expect(await admin.createTopics([{ topic: a, numPartitions: 5 }, { topic: c }])).toEqual([c]);
        const listed = await admin.listTopics();
        expect(listed).toEqual(expect.arrayContaining([a, b, c]));

        const described = await admin.describeTopic(a);
        expect(described).toMatchObject({ topic: a, partitions: 2 });
        expect(described.configs).toMatchObject({ 'retention.ms': '-1', 'cleanup.policy': 'delete' });
        expect(await admin.describeTopic(b)).toEqual({ topic: b, partitions: 1, configs: {} });

        await admin.deleteTopics([a, uniqueName('never-existed')]);
        await waitFor(async () => !(await admin.listTopics()).includes(a), { timeoutMs, what: `topic ${a} to be deleted` });
      });

      it('refuses unknown topic configs, and reports missing topics with TRANSPORT_TOPIC', async () => {
        const admin = testAdmin(transport);
        const bad = uniqueName('bad-config');
        deferCleanup(() => admin.deleteTopics([bad]));
        expect((await rejection(admin.createTopics([{ topic: bad, configs: { 'retention.typo': '1' } }]))).code).toBe('TRANSPORT_TOPIC');
        const missing = uniqueName('missing');
        expect((await rejection(admin.describeTopic(missing))).code).toBe('TRANSPORT_TOPIC');
        expect((await rejection(admin.fetchTopicOffsets(missing))).code).toBe('TRANSPORT_TOPIC');
        expect((await rejection(admin.fetchCommittedOffsets(uniqueName('group'), missing))).code).toBe('TRANSPORT_TOPIC');
        const consumer = transport.consumer({ groupId: uniqueName('group') });
        deferCleanup(() => consumer.disconnect());
        await consumer.connect();
        expect((await rejection(consumer.subscribe([missing]))).code).toBe('TRANSPORT_TOPIC');
      });

      it('fetchTopicOffsets reports the low and high offsets of each partition', async () => {
        const topic = await createTestTopic(transport, { numPartitions: 2 });
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['a', 'b', 'c'], { partition: 0, together: true });
        await sendValues(producer, topic, ['d'], { partition: 1 });
        const admin = testAdmin(transport);
        expect(await admin.fetchTopicOffsets(topic)).toEqual([
          { partition: 0, low: '0', high: '3' },
          { partition: 1, low: '0', high: '1' },
        ]);
      });
    });

    describe('lifecycle', () => {
      it('health() is a successful value', async () => {
        const health = await transport.health();
        expect(health.success).toBe(true);
        expect(health.detail).not.toBe('');
      });

      it('a consumer may disconnect from inside its own eachBatch', async () => {
        const topic = await createTestTopic(transport);
        const producer = await connectedProducer(transport);
        await sendValues(producer, topic, ['stop-here']);
        const consumer = transport.consumer({ groupId: uniqueName('self-stop') });
        deferCleanup(() => consumer.disconnect());
        let stopped = false;
        await consumer.connect();
        await consumer.subscribe([topic]);
        await consumer.run({
          eachBatch: async () => {
            await consumer.disconnect();
            stopped = true;
          },
        });
        await waitFor(() => stopped, { timeoutMs, what: 'the consumer to stop itself' });
      });

      it('clients of a closed transport fail with TRANSPORT_CLOSED', async () => {
        const topic = await createTestTopic(transport);
        const other = await makeTransport();
        const producer = other.producer();
        await producer.connect();
        await other.close();
        expect((await rejection(producer.send([{ topic, value: Buffer.from('x') }]))).code).toBe('TRANSPORT_CLOSED');
        expect(() => other.producer()).toThrow(FedStreamError);
      });
    });
  });
}
