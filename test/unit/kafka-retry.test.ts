/**
 * Issue 13, kind 6: retriable broker answers are retried everywhere, long enough for a loaded machine. These are the
 * decisions of the transport's own retry loops (admin reads and idempotent writes, consumer subscribe and commit),
 * on the errors kafkajs really throws, mapped as the transport maps them.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import type { FedStreamError } from '../../src/common/errors.ts';
import { KAFKA_RETRY_BUDGET_MS, fencedReplicationAnswer, fromKafkaJsError, kafkaRetryDelayMs, mappedWithRetry, retryKafkaCall } from '../../src/transport/kafka/index.ts';

const { KafkaJSProtocolError, KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSTimeout } = kafkajs as unknown as {
  KafkaJSTimeout: new (message: string) => Error;
  KafkaJSProtocolError: new (e: { message: string; type: string; code: number; retriable: boolean }) => Error;
  KafkaJSConnectionError: new (message: string) => Error;
  KafkaJSNumberOfRetriesExceeded: new (cause: Error, o: { retryCount: number; retryTime: number }) => Error;
};

/** "This server does not host this topic-partition", as kafkajs builds it from error code 3 (retriable). */
const notHosted = () => new KafkaJSProtocolError({ message: 'This server does not host this topic-partition', type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3, retriable: true });
const notLeader = () => new KafkaJSProtocolError({ message: 'This server is not the leader for that topic-partition', type: 'NOT_LEADER_FOR_PARTITION', code: 6, retriable: true });
const map = (e: Error): FedStreamError => fromKafkaJsError(e, 'admin: fetch offsets of topic t');

describe('which broker answers are asked again', () => {
  const fresh = { elapsedMs: 0, budgetMs: KAFKA_RETRY_BUDGET_MS };

  it('"does not host this topic-partition" is retried when the caller knows the topic exists, reported at once otherwise', () => {
    const e = map(notHosted());
    expect(e).toMatchObject({ code: 'TRANSPORT_TOPIC', retriable: true });
    expect(retryKafkaCall(e, { ...fresh, topicExists: true })).toBe(true);
    expect(retryKafkaCall(e, fresh)).toBe(false);
    // Also when kafkajs gave up retrying it itself: the condition inside is what counts.
    const exhausted = map(new KafkaJSNumberOfRetriesExceeded(notHosted(), { retryCount: 5, retryTime: 3000 }));
    expect(retryKafkaCall(exhausted, { ...fresh, topicExists: true })).toBe(true);
  });

  it('a leader moving and a dropped connection are retried; a non-retriable answer never is', () => {
    expect(retryKafkaCall(map(notLeader()), fresh)).toBe(true);
    expect(retryKafkaCall(map(new KafkaJSConnectionError('Connection error: ECONNREFUSED')), fresh)).toBe(true);
    const invalid = map(new KafkaJSProtocolError({ message: 'Replication factor is invalid', type: 'INVALID_REPLICATION_FACTOR', code: 38, retriable: false }));
    expect(retryKafkaCall(invalid, { ...fresh, topicExists: true })).toBe(false);
  });

  it('stops once the budget is spent: 30 s, several times what a loaded machine needed (the old loop gave up after ~5 s)', () => {
    const e = map(notLeader());
    expect(KAFKA_RETRY_BUDGET_MS).toBe(30_000);
    expect(retryKafkaCall(e, { elapsedMs: 29_999, budgetMs: KAFKA_RETRY_BUDGET_MS })).toBe(true);
    expect(retryKafkaCall(e, { elapsedMs: 30_000, budgetMs: KAFKA_RETRY_BUDGET_MS })).toBe(false);
    expect([0, 1, 2, 3, 4, 5, 6, 40].map(kafkaRetryDelayMs)).toEqual([100, 200, 400, 800, 1600, 2000, 2000, 2000]);
  });

  it('mappedWithRetry asks again until the answer is good, and gives up with the typed error', async () => {
    let calls = 0;
    const got = await mappedWithRetry('consumer g: subscribe to t', async () => {
      if (++calls < 3) throw notHosted();
      return 'subscribed';
    }, { topicExists: true });
    expect(got).toBe('subscribed');
    expect(calls).toBe(3);

    calls = 0;
    const err = await mappedWithRetry('admin: fetch offsets of topic t', async () => {
      calls++;
      throw notHosted();
    }).catch((e: unknown) => e as FedStreamError);
    expect(calls).toBe(1);
    expect(err).toMatchObject({ code: 'TRANSPORT_TOPIC', message: 'admin: fetch offsets of topic t: This server does not host this topic-partition' });

    calls = 0;
    const spent = await mappedWithRetry('admin: list topics', async () => {
      calls++;
      throw notLeader();
    }, { budgetMs: 250 }).catch((e: unknown) => e as FedStreamError);
    expect(spent).toMatchObject({ code: 'TRANSPORT_CONNECTION', retriable: true });
    expect(calls).toBeGreaterThanOrEqual(2);
  });
});

describe('a broker stalled by load (seen in a fresh-clone CI run beside two CPU hogs)', () => {
  const fresh = { elapsedMs: 0, budgetMs: KAFKA_RETRY_BUDGET_MS };
  it('kafkajs\' own timeout, which it marks not retriable ("Timed out while waiting for topic leaders"), is retried outside a transaction', () => {
    const timeout = new KafkaJSTimeout('Timed out while waiting for topic leaders');
    expect((timeout as Error & { retriable?: boolean }).retriable).toBe(false);
    const e = fromKafkaJsError(timeout, 'admin: create topic t');
    expect(e).toMatchObject({ code: 'TRANSPORT_TIMEOUT', retriable: true });
    expect(retryKafkaCall(e, fresh)).toBe(true);
    expect(fromKafkaJsError(timeout, 'commit', true)).toMatchObject({ code: 'TRANSPORT_TRANSACTION', retriable: false });
    // A send's timeout keeps kafkajs' verdict: asking again could write twice.
    expect(fromKafkaJsError(timeout, 'send to t')).toMatchObject({ code: 'TRANSPORT_TIMEOUT', retriable: false });
  });
  it('kafkajs reading an empty answer ("Cannot destructure property \'topicMetadata\' ... as it is null") is a retriable connection error', () => {
    const e = fromKafkaJsError(new TypeError("Cannot destructure property 'topicMetadata' of '(intermediate value)' as it is null."), 'admin: list topics');
    expect(e).toMatchObject({ code: 'TRANSPORT_CONNECTION', retriable: true });
    expect(e.message).toContain("admin: list topics: the broker's answer was empty");
    // Any other TypeError is a bug, not the broker: not retried.
    expect(fromKafkaJsError(new TypeError('x is not a function'), 'admin: list topics')).toMatchObject({ code: 'INTERNAL', retriable: false });
  });
  it('kafkajs\' "Broker not connected" (a broker object whose connection a timeout reset; nothing was sent) is a retriable connection error outside a transaction', () => {
    // kafkajs/src/broker/index.js throws it as a plain Error, which the mapping would otherwise call INTERNAL.
    const e = fromKafkaJsError(new Error('Broker not connected'), 'admin: list topics');
    expect(e).toMatchObject({ code: 'TRANSPORT_CONNECTION', retriable: true });
    expect(retryKafkaCall(e, fresh)).toBe(true);
    expect(fromKafkaJsError(new Error('Broker not connected'), 'send to t')).toMatchObject({ code: 'TRANSPORT_CONNECTION', retriable: true });
    expect(fromKafkaJsError(new Error('Broker not connected'), 'commit', true)).toMatchObject({ code: 'TRANSPORT_TRANSACTION', retriable: false });
    expect(fromKafkaJsError(new Error('Broker not connected yet?'), 'admin: list topics')).toMatchObject({ code: 'INTERNAL', retriable: false });
  });
});

describe('a broker fenced by its own controller (KRaft: "All brokers are currently fenced")', () => {
  const fresh = { elapsedMs: 0, budgetMs: KAFKA_RETRY_BUDGET_MS, topicExists: true };
  // What kafkajs makes of error code 38, which the broker answers while every broker that could hold the replicas is fenced.
  const invalidRf = () => fromKafkaJsError(new KafkaJSProtocolError({ message: 'Replication-factor is invalid', type: 'INVALID_REPLICATION_FACTOR', code: 38, retriable: false }), 'admin: create topic t');

  it('is asked again when the factor is one the cluster holds: at most the brokers this client has seen', () => {
    expect(invalidRf()).toMatchObject({ code: 'TRANSPORT_TOPIC', retriable: false });
    for (const rf of [1, undefined, -1]) {
      const e = fencedReplicationAnswer(invalidRf(), rf, 1);
      expect(e).toMatchObject({ code: 'TRANSPORT_TOPIC', retriable: true, details: { kafkaType: 'INVALID_REPLICATION_FACTOR', brokersSeen: 1, replicationFactor: 1 } });
      expect(e.message).toContain('fenced by the controller');
      expect(retryKafkaCall(e, fresh)).toBe(true);
    }
    expect(fencedReplicationAnswer(invalidRf(), 3, 3).retriable).toBe(true);
  });

  it('a factor above the brokers seen is a mistake, reported at once; so is any other answer', () => {
    expect(fencedReplicationAnswer(invalidRf(), 3, 1)).toMatchObject({ retriable: false, message: 'admin: create topic t: Replication-factor is invalid' });
    // No broker seen at all (the client met the cluster while it was fenced): not asked again.
    expect(fencedReplicationAnswer(invalidRf(), 1, 0).retriable).toBe(false);
    const badConfig = fromKafkaJsError(new KafkaJSProtocolError({ message: 'Configuration is invalid', type: 'INVALID_CONFIG', code: 40, retriable: false }), 'admin: create topic t');
    expect(fencedReplicationAnswer(badConfig, 1, 1)).toBe(badConfig);
  });
});
