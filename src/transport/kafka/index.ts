/**
 * The Kafka adapter of the transport port, on kafkajs 2.2.4.
 *
 * - Producers are idempotent by default (acks=all, one request in flight) and serialize their sends through a
 *   promise chain: kafkajs assigns sequence numbers per request, and concurrent sends on one idempotent producer
 *   can reach the broker out of order (OUT_OF_ORDER_SEQUENCE_NUMBER).
 * - A transactional producer fences older producers with the same transactionalId when it connects (kafkajs would
 *   only do so at its first `transaction()`), so that "the new instance took over" holds as soon as `connect()`
 *   returns, as with the Java client's `initTransactions()`.
 * - A send is split into several produce requests when its records would exceed the broker's 1 MB record-batch
 *   limit together (kafkajs puts all records of one partition into one batch); a single record above the limit is
 *   refused by the broker with a non-retriable TRANSPORT_TOPIC error. Large payloads are chunked by src/codec.
 * - kafkajs errors become FedStreamErrors: the code from the error's kind, `retriable` from kafkajs' own flag
 *   (of the underlying error when kafkajs gave up retrying, because the condition itself is still transient).
 *   Inside a transaction every failure is TRANSPORT_TRANSACTION and not retriable in place: abort (or recreate
 *   the producer) and redo the work. Fencing by a newer producer with the same transactionalId is TRANSPORT_FENCED,
 *   in or out of a transaction: never retried, the other instance owns the work (`Producer.checkFenced` asks).
 */
// First, so that kafkajs finds the faster CRC-32C in require.cache when it loads its record batch encoder.
import './kafkajs-crc.ts';

export { KAFKA_RETRY_BUDGET_MS, crashedOnOutage, fencedReplicationAnswer, fromKafkaJsError, kafkaRetryDelayMs, mappedWithRetry, retryKafkaCall } from './errors.ts';
export { EXPECTED_BROKER_ERRORS, isExpectedBrokerError, kafkajsLogLevel, pinoLogCreator } from './kafka-logger.ts';
export { createKafkaTransport, type KafkaTransportOptions } from './transport.ts';
