/**
 * Which consumer crashes the Kafka transport restarts itself (found by the chaos run, docs/reliability.md): kafkajs
 * restarts a crashed consumer only when the innermost cause is retriable, and "Failed to find group coordinator" —
 * every broker refusing connections while the broker restarts — is a KafkaJSNonRetriableError by class, so a node's
 * consumer stopped for good and the node exited with nothing left to run. The errors are kafkajs' own classes, as its
 * consumer emits them in CRASH.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { crashedOnOutage } from '../../src/transport/kafka/index.ts';

const k = kafkajs as unknown as Record<string, new (...args: unknown[]) => Error>;

describe('crashedOnOutage', () => {
  it('is true for a broker that is not there: no coordinator, connection refused or closed, timeouts, retries exhausted', () => {
    // As kafkajs' retrier wraps it (retry/index.js): the cause kept as `cause`.
    const cause = new k.KafkaJSGroupCoordinatorNotFound!('Failed to find group coordinator');
    const noCoordinator = new k.KafkaJSNonRetriableError!(cause, { cause });
    expect(noCoordinator.name).toBe('KafkaJSNonRetriableError');
    expect(crashedOnOutage(noCoordinator)).toBe(true);
    expect(crashedOnOutage(new k.KafkaJSConnectionError!('Connection error: connect ECONNREFUSED 127.0.0.1:9092'))).toBe(true);
    expect(crashedOnOutage(new k.KafkaJSNumberOfRetriesExceeded!(new k.KafkaJSConnectionError!('refused'), { retryCount: 5, retryTime: 1000 }))).toBe(true);
    expect(crashedOnOutage(new k.KafkaJSRequestTimeoutError!('Request Fetch timed out'))).toBe(true);
  });

  it('is false for what restarting cannot fix: authorization, a protocol refusal, a bug', () => {
    const denied = new k.KafkaJSProtocolError!({ message: 'Not authorized to access group', type: 'GROUP_AUTHORIZATION_FAILED', code: 30, retriable: false });
    expect(crashedOnOutage(new k.KafkaJSNonRetriableError!(denied, { cause: denied }))).toBe(false);
    expect(crashedOnOutage(new k.KafkaJSNonRetriableError!('Invalid topic'))).toBe(false);
    expect(crashedOnOutage(new TypeError('bug in eachBatch'))).toBe(false);
    expect(crashedOnOutage(undefined)).toBe(false);
  });
});
