/**
 * The aggregator's transactions across a broker outage (found by the chaos run, docs/reliability.md): the broker
 * restarted while the aggregator sent a round's records, and the aggregator stopped with TRANSPORT_TRANSACTION
 * (ECONNREFUSED) instead of retrying the transaction. A transaction that failed before its commit, on a cause kafkajs
 * calls transient, is now aborted and done again with a new producer; a failed commit (its outcome unknown) and
 * fencing are not retried. The errors are kafkajs' own, mapped by the Kafka transport as it maps them in a transaction.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.ts';
import type { FedStreamError } from '../../src/common/errors.ts';
import { retriableBeforeCommit, transact } from '../../src/aggregator/transaction.ts';
import { fromKafkaJsError } from '../../src/transport/kafka/index.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import type { Producer, Transaction, Transport } from '../../src/transport/index.ts';

const { KafkaJSConnectionError, KafkaJSProtocolError, KafkaJSNonRetriableError } = kafkajs as unknown as Record<string, new (...args: unknown[]) => Error>;
const log = createLogger('silent');
const refused = () => fromKafkaJsError(new KafkaJSConnectionError!('Connection error: connect ECONNREFUSED 127.0.0.1:9092', { broker: '127.0.0.1:9092' }), 'producer p.aggregator: send', true);

describe('retriableBeforeCommit', () => {
  it('retries a transaction that failed before its commit on a transient cause, never a commit, fencing or a permanent cause', () => {
    const before = retriableBeforeCommit(refused(), false) as FedStreamError;
    expect(before).toMatchObject({ code: 'TRANSPORT_TRANSACTION', retriable: true, details: { kafkaRetriable: true, retriedWholeTransaction: true } });
    expect(retriableBeforeCommit(refused(), true)).toMatchObject({ retriable: false });
    const fenced = fromKafkaJsError(new KafkaJSProtocolError!({ message: 'old epoch', type: 'INVALID_PRODUCER_EPOCH', code: 47, retriable: false }), 'send', true);
    expect(retriableBeforeCommit(fenced, false)).toMatchObject({ code: 'TRANSPORT_FENCED', retriable: false });
    expect(retriableBeforeCommit(fromKafkaJsError(new KafkaJSNonRetriableError!('Invalid topic'), 'send', true), false)).toMatchObject({ retriable: false });
    expect(retriableBeforeCommit(new TypeError('bug'), false)).toBeInstanceOf(TypeError);
  });
});

/** The memory transport, with the next transaction of any producer failing once at `stage` as the Kafka transport does. */
function failingOnce(t: Transport, stage: 'send' | 'commit'): { transport: Transport; failures: () => number } {
  let pending = 1;
  const wrap = (p: Producer): Producer => ({
    ...p,
    connect: () => p.connect(),
    send: (r) => p.send(r),
    disconnect: () => p.disconnect(),
    checkFenced: (g) => p.checkFenced(g),
    transaction: async (): Promise<Transaction> => {
      const tx = await p.transaction();
      const fail = async (s: typeof stage) => {
        if (s !== stage || pending === 0) return;
        pending--;
        throw refused();
      };
      return {
        send: async (r) => { await fail('send'); return tx.send(r); },
        sendOffsets: (g, o) => tx.sendOffsets(g, o),
        commit: async () => { await fail('commit'); return tx.commit(); },
        abort: () => tx.abort(),
      };
    },
  });
  return { transport: { ...t, producer: (o) => wrap(t.producer(o)), admin: () => t.admin(), consumer: (o) => t.consumer(o) } as Transport, failures: () => 1 - pending };
}

async function values(t: Transport, topic: string): Promise<string[]> {
  const out: string[] = [];
  await readToEnd(t, topic, (m) => { out.push(m.value!.toString()); });
  return out;
}

describe('transact across a broker outage', () => {
  it('a send refused mid-transaction: aborted, done again with a new producer, each record committed once', async () => {
    const t = createMemoryTransport({ cluster: new MemoryCluster(), logger: log });
    await t.admin().createTopics([{ topic: 'v', numPartitions: 1 }]);
    const { transport, failures } = failingOnce(t, 'send');
    const slot = { producer: transport.producer({ transactionalId: 'p.aggregator', idempotent: true }) };
    await slot.producer.connect();
    const first = slot.producer;
    await transact({ transport, slot, transactionalId: 'p.aggregator', groupId: 'p.aggregator', log, what: 'close round 1', records: [{ topic: 'v', value: Buffer.from('version 1') }], offsets: [] });
    expect(failures()).toBe(1);
    expect(slot.producer).not.toBe(first);
    expect(await values(t, 'v')).toEqual(['version 1']);
  });

  it('a commit that failed is not sent again (it may have committed): the error reaches the caller', async () => {
    const t = createMemoryTransport({ cluster: new MemoryCluster(), logger: log });
    await t.admin().createTopics([{ topic: 'v', numPartitions: 1 }]);
    const { transport, failures } = failingOnce(t, 'commit');
    const slot = { producer: transport.producer({ transactionalId: 'p.aggregator', idempotent: true }) };
    await slot.producer.connect();
    await expect(transact({ transport, slot, transactionalId: 'p.aggregator', groupId: 'p.aggregator', log, what: 'close round 1', records: [{ topic: 'v', value: Buffer.from('version 1') }], offsets: [] }))
      .rejects.toMatchObject({ code: 'TRANSPORT_TRANSACTION', retriable: false });
    expect(failures()).toBe(1);
    expect(await values(t, 'v')).toEqual([]);
  });
});
