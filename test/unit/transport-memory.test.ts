import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { FedStreamError } from '../../src/common/errors.ts';
import { waitFor } from '../../src/common/retry.ts';
import { createMemoryTransport, createTransport, MemoryCluster, murmur2, partitionForKey } from '../../src/transport/index.ts';
import { transportContract } from '../contract/transport-contract.ts';
import { collectMessages, connectedProducer, createTestTopic, deferCleanup, sendValues, testAdmin, uniqueName } from '../integration/helpers.ts';

transportContract('memory', () => createMemoryTransport(), { timeoutMs: 5_000 });

describe('memory transport', () => {
  it("partitions keys like kafkajs' DefaultPartitioner (Kafka's murmur2)", () => {
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'node-17', 'ü-unicode-✓', ...Array.from({ length: 300 }, (_, i) => `key-${i * 7919}`)];
    for (const n of [1, 2, 3, 7, 12, 50]) {
      const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));
      for (const key of keys) {
        const expected = partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
        expect(partitionForKey(key, n)).toBe(expected);
        expect(partitionForKey(Buffer.from(key), n)).toBe(expected);
      }
    }
    // Known value from Kafka's own test suite (UtilsTest.testMurmur2): "21" hashes to -973932308.
    expect(murmur2(Buffer.from('21'))).toBe(-973932308);
  });

  it('createTransport({ memory }) puts transports on the log the composer hands them, and no hidden global', async () => {
    const cluster = new MemoryCluster();
    const a = createTransport({ memory: cluster });
    const b = createTransport({ memory: cluster });
    expect(a.kind).toBe('memory');
    const topic = uniqueName('shared');
    await a.admin().createTopics([{ topic }]);
    expect(await b.admin().listTopics()).toContain(topic);
    expect(cluster.topics.has(topic)).toBe(true);
    // Without a cluster, a transport has a log of its own.
    const own = createTransport();
    expect(await own.admin().listTopics()).not.toContain(topic);
    await own.close();
    await a.close();
    expect((await b.health()).success).toBe(true);
    await b.admin().deleteTopics([topic]);
    await b.close();
  });

  it('createTransport({ kafka }) picks Kafka without connecting', async () => {
    const t = createTransport({ kafka: ' 127.0.0.1:1 , 127.0.0.1:2 ' });
    expect(t.kind).toBe('kafka');
    await t.close();
  });

  it('aborts a transaction left open past its timeout and fences its producer', async () => {
    const transport = createMemoryTransport();
    deferCleanup(() => transport.close());
    const topic = await createTestTopic(transport);
    const producer = await connectedProducer(transport, { transactionalId: uniqueName('slow'), transactionTimeoutMs: 30 });
    const txn = await producer.transaction();
    await txn.send([{ topic, value: Buffer.from('too-late') }]);
    const admin = testAdmin(transport);
    // The abort marker moves the last stable offset past the aborted record.
    await waitFor(async () => (await admin.fetchTopicOffsets(topic))[0]!.high === '2', { timeoutMs: 2_000, what: 'the timeout abort' });
    const err = await txn.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).code).toBe('TRANSPORT_TRANSACTION');
    await expect(producer.send([{ topic, value: Buffer.from('x') }])).rejects.toMatchObject({ code: 'TRANSPORT_TRANSACTION' });
  });

  it('redelivers a batch whose offsets were not resolved, and restarts from the committed offset when eachBatch throws', async () => {
    const transport = createMemoryTransport();
    deferCleanup(() => transport.close());
    const topic = await createTestTopic(transport);
    const producer = await connectedProducer(transport);
    await sendValues(producer, topic, ['a', 'b', 'c'], { together: true });
    const consumer = transport.consumer({ groupId: uniqueName('flaky') });
    deferCleanup(() => consumer.disconnect());
    const deliveries: string[][] = [];
    await consumer.connect();
    await consumer.subscribe([topic]);
    await consumer.run({
      eachBatch: async (batch, ctx) => {
        deliveries.push(batch.messages.map((m) => m.value!.toString()));
        if (deliveries.length === 1) return; // resolves nothing: same batch again
        if (deliveries.length === 2) {
          ctx.resolveOffset(batch.messages[0]!.offset); // "a" resolved but never committed…
          throw new Error('boom'); // …so the restart begins at "a" again
        }
        for (const m of batch.messages) ctx.resolveOffset(m.offset);
      },
    });
    await waitFor(() => deliveries.length >= 3, { timeoutMs: 5_000, what: 'three deliveries' });
    expect(deliveries.slice(0, 3)).toEqual([['a', 'b', 'c'], ['a', 'b', 'c'], ['a', 'b', 'c']]);
  });

  it('does not deliver to a consumer before run() nor after disconnect()', async () => {
    const transport = createMemoryTransport();
    deferCleanup(() => transport.close());
    const topic = await createTestTopic(transport);
    const producer = await connectedProducer(transport);
    const collector = await collectMessages(transport, { topics: [topic] });
    await sendValues(producer, topic, ['1']);
    await collector.waitForCount(1);
    await collector.stop();
    await sendValues(producer, topic, ['2']);
    expect(collector.values()).toEqual(['1']);
    expect(() => collector.consumer.seek({ topic, partition: 0, offset: '0' })).toThrow(FedStreamError);
  });

  it('refuses subscriptions to missing topics and sends to missing partitions', async () => {
    const transport = createMemoryTransport();
    deferCleanup(() => transport.close());
    const consumer = transport.consumer({ groupId: uniqueName('g') });
    await consumer.connect();
    await expect(consumer.subscribe([uniqueName('missing')])).rejects.toMatchObject({ code: 'TRANSPORT_TOPIC' });
    const topic = await createTestTopic(transport, { numPartitions: 2 });
    const producer = await connectedProducer(transport);
    await expect(producer.send([{ topic, partition: 2, value: null }])).rejects.toMatchObject({ code: 'TRANSPORT_TOPIC' });
    await expect(transport.producer().send([{ topic, value: null }])).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' });
  });
});
