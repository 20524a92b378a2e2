/** kafkajs errors as FedStreamErrors: the code from the error's kind, `retriable` from kafkajs' own flag. */
import { type ErrorCode, FedStreamError, toFedStreamError } from '../../common/index.ts';
import { explainKafkaSecurityError, type ResolvedKafkaSecurity, type SecurityResource } from './security.ts';

interface KafkaJsErrorLike extends Error {
  retriable?: boolean;
  type?: string;
  broker?: string;
  cause?: unknown;
}

/**
 * The transaction coordinator's "a newer producer with this transactionalId exists": InitProducerId of another
 * instance bumped the epoch. PRODUCER_FENCED (90, KIP-588) is answered to newer request versions; kafkajs 2.2.4
 * speaks older ones (answered INVALID_PRODUCER_EPOCH) and does not know code 90 by name.
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED is not fencing: an ACL refuses the id (TRANSPORT_AUTHORIZATION).
 */
const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']);

function isFencing(e: KafkaJsErrorLike): boolean {
  if (e.type && FENCED_TYPES.has(e.type)) return true;
  // kafkajs turns a code it does not know into KAFKAJS_UNKNOWN_ERROR_CODE, keeping the number only in the message.
  return e.type === 'KAFKAJS_UNKNOWN_ERROR_CODE' && /\bUnknown error code 90$/.test(e.message);
}

const TRANSACTION_TYPES = new Set([
  'INVALID_TXN_STATE',
  'INVALID_PRODUCER_ID_MAPPING',
  'INVALID_TRANSACTION_TIMEOUT',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'TRANSACTION_COORDINATOR_FENCED',
  'CONCURRENT_TRANSACTIONS',
]);
const TOPIC_TYPES = new Set([
  'UNKNOWN_TOPIC_OR_PARTITION',
  'TOPIC_ALREADY_EXISTS',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_PARTITIONS',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_REPLICA_ASSIGNMENT',
  'INVALID_CONFIG',
  'POLICY_VIOLATION',
  'TOPIC_DELETION_DISABLED',
  'TOPIC_AUTHORIZATION_FAILED',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
]);
const TIMEOUT_NAMES = new Set(['KafkaJSRequestTimeoutError', 'KafkaJSTimeout', 'KafkaJSLockTimeout']);

function isKafkaJsError(err: unknown): err is KafkaJsErrorLike {
  return err instanceof Error && err.name.startsWith('KafkaJS');
}

/** kafkajs wraps the last failure in KafkaJSNumberOfRetriesExceeded (and other errors) as `cause`. */
function innermost(err: KafkaJsErrorLike): KafkaJsErrorLike {
  let current = err;
  for (let depth = 0; depth < 10 && isKafkaJsError(current.cause); depth++) current = current.cause;
  return current;
}

/** Maps anything kafkajs throws into the FedStreamError family; `operation` names what was being done. */
export function fromKafkaJsError(err: unknown, operation: string, inTransaction = false, security?: ResolvedKafkaSecurity, resource?: SecurityResource): FedStreamError {
  if (err instanceof FedStreamError) return err;
  // Authentication, authorization and TLS failures first: retrying cannot fix a password, an ACL or a certificate.
  const denied = explainKafkaSecurityError(err, security ?? { protocol: 'PLAINTEXT' }, operation, resource);
  if (denied) return denied;
  if (err instanceof Error && err.name === 'KafkaJSAggregateError') {
    // e.g. createTopics: one error per topic; they share a cause in practice.
    const first = (err as Error & { errors?: unknown[] }).errors?.[0];
    if (first !== undefined) return fromKafkaJsError(first, operation, inTransaction);
  }
  // kafkajs 2.2.4 reads an empty metadata answer from a stalled broker as `null` and fails inside itself with a
  // TypeError ("Cannot destructure property 'topicMetadata' of '(intermediate value)' as it is null"): a broker that
  // did not answer, as transient as a dropped connection, for the idempotent admin calls.
  if (!inTransaction && operation.startsWith('admin:') && err instanceof TypeError && /^Cannot (destructure|read) propert(y|ies) .* (of|as it is) .*(null|undefined)/.test(err.message)) {
    return new FedStreamError('TRANSPORT_CONNECTION', `${operation}: the broker's answer was empty (${err.message})`, { cause: err, retriable: true, details: { operation } });
  }
  // kafkajs 2.2.4 throws a plain Error('Broker not connected') from a broker object whose connection was torn down
  // (a request timeout on a stalled broker) before it has asked again for the broker's API versions
  // (kafkajs/src/broker/index.js, notInitializedLookup; tulios/kafkajs#418). Nothing was sent: as transient as a
  // dropped connection.
  if (!inTransaction && err instanceof Error && !isKafkaJsError(err) && err.message === 'Broker not connected') {
    return new FedStreamError('TRANSPORT_CONNECTION', `${operation}: ${err.message} (the client's connection to the broker was reset; nothing was sent)`, { cause: err, retriable: true, details: { operation } });
  }
  if (!isKafkaJsError(err)) return toFedStreamError(err, inTransaction ? 'TRANSPORT_TRANSACTION' : 'INTERNAL', operation);
  const inner = innermost(err);
  const type = inner.type;
  const details: Record<string, unknown> = { operation, kafkaError: inner.name };
  if (type) details.kafkaType = type;
  if (inner.broker) details.broker = inner.broker;
  let code: ErrorCode;
  let retriable = inner.retriable ?? err.retriable ?? false;
  if (isFencing(inner)) {
    // Never retried, in place or with a new producer: the instance that fenced this one owns the work now.
    code = 'TRANSPORT_FENCED';
    details.kafkaRetriable = retriable;
    retriable = false;
  } else if (inTransaction || (type && TRANSACTION_TYPES.has(type))) {
    code = 'TRANSPORT_TRANSACTION';
    details.kafkaRetriable = retriable;
    retriable = false;
  } else if (type && TOPIC_TYPES.has(type)) {
    code = 'TRANSPORT_TOPIC';
  } else if (TIMEOUT_NAMES.has(inner.name) || type === 'REQUEST_TIMED_OUT') {
    code = 'TRANSPORT_TIMEOUT';
    // kafkajs marks its own timeouts not retriable (e.g. createTopics' "Timed out while waiting for topic leaders" on
    // a loaded broker). An admin call's timeout says nothing definite and those calls are idempotent (reads, topic and
    // ACL creation): asked again. A send's timeout keeps kafkajs' verdict.
    if (operation.startsWith('admin:')) {
      details.kafkaRetriable = retriable;
      retriable = true;
    }
  } else {
    code = 'TRANSPORT_CONNECTION';
  }
  let message = `${operation}: ${inner.message}`;
  if (code === 'TRANSPORT_FENCED') {
    message += ' (fenced: a newer producer with the same transactional id, another instance of this service, took over)';
  } else if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') {
    message += ' (the broker refuses record batches above max.message.bytes, 1 MB by default; chunk large payloads)';
  }
  return new FedStreamError(code, message, { cause: err, retriable, details });
}

/**
 * createTopics answered INVALID_REPLICATION_FACTOR ("Replication-factor is invalid") for a factor the cluster can
 * hold: `replicationFactor` (the broker's default when undefined or -1, taken as 1) is at most the number of brokers
 * this client has seen in the cluster. KRaft answers so while the controller has fenced every broker that could hold
 * the replicas ("Unable to replicate the partition 1 time(s): All brokers are currently fenced"), e.g. the only broker
 * of a test cluster whose heartbeats a loaded machine delayed past its session; it is unfenced by its next heartbeat.
 * Then the error is retriable (creating a topic may be repeated); a factor above the brokers seen stays a mistake,
 * reported at once. docs/reliability.md, "A broker fenced by its own controller".
 */
export function fencedReplicationAnswer(err: FedStreamError, replicationFactor: number | undefined, brokersSeen: number): FedStreamError {
  if (err.retriable || err.details.kafkaType !== 'INVALID_REPLICATION_FACTOR') return err;
  const wanted = replicationFactor === undefined || replicationFactor < 1 ? 1 : replicationFactor;
  if (wanted > brokersSeen) return err;
  return new FedStreamError(err.code, `${err.message} (replication factor ${wanted}, ${brokersSeen} broker(s) seen in the cluster: the broker(s) are fenced by the controller for now)`, {
    cause: err,
    retriable: true,
    details: { ...err.details, brokersSeen, replicationFactor: wanted, kafkaRetriable: false },
  });
}

/** Where a call happens, for error messages: the client's security (its principal) and the resource it touched. */
export interface CallContext {
  inTransaction?: boolean;
  security?: ResolvedKafkaSecurity;
  /** What the call touches, for an authorization error: a bare name, or names by kind. */
  resource?: SecurityResource;
}

export async function mapped<T>(operation: string, fn: () => Promise<T>, context: boolean | CallContext = false): Promise<T> {
  const c = typeof context === 'boolean' ? { inTransaction: context } : context;
  try {
    return await fn();
  } catch (err) {
    throw fromKafkaJsError(err, operation, c.inTransaction ?? false, c.security, c.resource);
  }
}

/**
 * Whether a kafkajs call that failed with `err` is asked again (issue 13, kind 6: retriable broker answers are
 * retried everywhere, for long enough on a loaded machine). Only retriable answers are, within `budgetMs` since the
 * first attempt. "This server does not host this topic-partition" (UNKNOWN_TOPIC_OR_PARTITION, TRANSPORT_TOPIC) is
 * transient only when the caller knows the topic exists (it created or listed it: a leader not yet known to this
 * client's metadata); otherwise a missing topic is reported at once, for the caller to wait on.
 */
export function retryKafkaCall(err: FedStreamError, o: { elapsedMs: number; budgetMs: number; topicExists?: boolean }): boolean {
  if (!err.retriable || o.elapsedMs >= o.budgetMs) return false;
  return err.code !== 'TRANSPORT_TOPIC' || o.topicExists === true;
}

/** The wait before attempt `attempt + 1` of a retried kafkajs call: 100 ms doubling, at most 2 s. */
export function kafkaRetryDelayMs(attempt: number): number {
  return Math.min(2_000, 100 * 2 ** Math.min(attempt, 10));
}

/** How long a retriable broker answer is retried by the transport's own loops (admin reads, subscribe, commit). */
export const KAFKA_RETRY_BUDGET_MS = 30_000;

/**
 * `mapped`, asked again while `retryKafkaCall` says so (the call must be one that may be repeated: a read, or a write
 * whose repetition changes nothing, as creating a topic that exists or committing the same offsets).
 */
export async function mappedWithRetry<T>(operation: string, fn: () => Promise<T>, context: CallContext & { topicExists?: boolean; budgetMs?: number } = {}): Promise<T> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await mapped(operation, fn, context);
    } catch (err) {
      const e = err as FedStreamError;
      if (!retryKafkaCall(e, { elapsedMs: Date.now() - started, budgetMs: context.budgetMs ?? KAFKA_RETRY_BUDGET_MS, topicExists: context.topicExists })) throw err;
      await new Promise((r) => setTimeout(r, kafkaRetryDelayMs(attempt)));
    }
  }
}

export function closedError(what: string): FedStreamError {
  return new FedStreamError('TRANSPORT_CLOSED', `${what} is closed`);
}

/** kafkajs errors that mean "the broker is not there right now", whatever kafkajs' own retriable flag says. */
const OUTAGE_NAMES = new Set([
  'KafkaJSGroupCoordinatorNotFound', 'KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound', 'KafkaJSNumberOfRetriesExceeded', 'KafkaJSMetadataNotLoaded',
]);

/**
 * Whether a consumer that kafkajs stopped after a crash (its CRASH event with `restart: false`) stopped on a broker
 * outage, and is started again by the transport. kafkajs restarts a crashed consumer only when the crash's innermost
 * cause is retriable; "Failed to find group coordinator" (every broker refusing connections, e.g. the broker
 * restarting for longer than kafkajs' retries) is a KafkaJSNonRetriableError by class, so the consumer stopped for
 * good and its process ended with nothing left to run (found by the chaos run, docs/reliability.md). Authorization,
 * TLS and protocol errors are not outages.
 */
export function crashedOnOutage(err: unknown): boolean {
  for (let e = err as KafkaJsErrorLike | undefined, depth = 0; e && depth < 10; e = e.cause as KafkaJsErrorLike | undefined, depth++) {
    if (OUTAGE_NAMES.has(e.name ?? '')) return true;
  }
  return false;
}

