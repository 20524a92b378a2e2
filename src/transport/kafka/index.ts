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
 *   the producer) and redo the work.
 */
// First, so that kafkajs finds the faster CRC-32C in require.cache when it loads its record batch encoder.
import './kafkajs-crc.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import kafkajs from 'kafkajs';
import type {
  Admin as KafkaJsAdmin,
  Consumer as KafkaJsConsumer,
  EachBatchPayload,
  IHeaders,
  Kafka as KafkaJsClient,
  KafkaMessage,
  Message,
  Producer as KafkaJsProducer,
  RecordMetadata as KafkaJsRecordMetadata,
  TopicMessages,
  Transaction as KafkaJsTransaction,
} from 'kafkajs';
import { FedStreamError, toFedStreamError, type ErrorCode } from '../../common/errors.ts';
import { rootLogger, type Logger } from '../../common/logger.ts';
import { kafkajsLogLevel, pinoLogCreator } from './kafka-logger.ts';
import type {
  Admin,
  Batch,
  Consumer,
  ConsumerOptions,
  HealthResult,
  PartitionOffsets,
  Producer,
  ProducerOptions,
  ProducerRecord,
  RecordMetadata,
  RunOptions,
  TopicDescription,
  TopicPartitionOffset,
  TopicSpec,
  Transaction,
  Transport,
  TransportMessage,
} from '../types.ts';

const { Kafka, Partitioners, ConfigResourceTypes, ConfigSource } = kafkajs;

/** Which consumer's eachBatch the current async context runs in (see KafkaConsumer.disconnect). */
const insideBatchOf = new AsyncLocalStorage<object>();

export interface KafkaTransportOptions {
  /** `host:port` of one or more brokers. */
  brokers: string[];
  clientId?: string;
  logger?: Logger;
  /** TCP connect timeout (kafkajs default 1 s is short for a loaded CI machine). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** kafkajs' retrier for every client of this transport (defaults: 5 retries, 300 ms doubling up to 30 s). */
  retry?: { retries?: number; initialRetryTimeMs?: number; maxRetryTimeMs?: number };
  /** Longest a consumer's fetch waits at the broker for data; bounds how long pause/seek/stop take to act. */
  maxWaitTimeMs?: number;
}

/**
 * The most bytes one produce request carries per send call before the records are split across requests. Kafka's
 * default `message.max.bytes` (1048588) applies to a whole record batch, and kafkajs puts every record of a
 * partition into one batch.
 */
const MAX_REQUEST_RECORD_BYTES = 1_000_000;
const RECORD_OVERHEAD_BYTES = 32;

// ---------------------------------------------------------------------------------------------------------------
// errors

interface KafkaJsErrorLike extends Error {
  retriable?: boolean;
  type?: string;
  broker?: string;
  cause?: unknown;
}

const TRANSACTION_TYPES = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
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
export function fromKafkaJsError(err: unknown, operation: string, inTransaction = false): FedStreamError {
  if (err instanceof FedStreamError) return err;
  if (err instanceof Error && err.name === 'KafkaJSAggregateError') {
    // e.g. createTopics: one error per topic; they share a cause in practice.
    const first = (err as Error & { errors?: unknown[] }).errors?.[0];
    if (first !== undefined) return fromKafkaJsError(first, operation, inTransaction);
  }
  if (!isKafkaJsError(err)) return toFedStreamError(err, inTransaction ? 'TRANSPORT_TRANSACTION' : 'INTERNAL', operation);
  const inner = innermost(err);
  const type = inner.type;
  const details: Record<string, unknown> = { operation, kafkaError: inner.name };
  if (type) details.kafkaType = type;
  if (inner.broker) details.broker = inner.broker;
  let code: ErrorCode;
  let retriable = inner.retriable ?? err.retriable ?? false;
  if (inTransaction || (type && TRANSACTION_TYPES.has(type))) {
    code = 'TRANSPORT_TRANSACTION';
    details.kafkaRetriable = retriable;
    retriable = false;
  } else if (type && TOPIC_TYPES.has(type)) {
    code = 'TRANSPORT_TOPIC';
  } else if (TIMEOUT_NAMES.has(inner.name) || type === 'REQUEST_TIMED_OUT') {
    code = 'TRANSPORT_TIMEOUT';
  } else {
    code = 'TRANSPORT_CONNECTION';
  }
  let message = `${operation}: ${inner.message}`;
  if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') {
    message += ' (the broker refuses record batches above max.message.bytes, 1 MB by default; chunk large payloads)';
  }
  return new FedStreamError(code, message, { cause: err, retriable, details });
}

async function mapped<T>(operation: string, fn: () => Promise<T>, inTransaction = false): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromKafkaJsError(err, operation, inTransaction);
  }
}

function closedError(what: string): FedStreamError {
  return new FedStreamError('TRANSPORT_CLOSED', `${what} is closed`);
}

// ---------------------------------------------------------------------------------------------------------------
// conversions

/** A promise chain: one holder at a time, in call order. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function recordBytes(r: ProducerRecord): number {
  let size = RECORD_OVERHEAD_BYTES + (r.value?.length ?? 0) + (r.key == null ? 0 : Buffer.byteLength(r.key));
  for (const [k, v] of Object.entries(r.headers ?? {})) size += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  return size;
}

/** Consecutive groups of records whose estimated size stays under the batch limit (a single record always forms a group). */
function splitForRequests(records: ProducerRecord[]): ProducerRecord[][] {
  const groups: ProducerRecord[][] = [];
  let current: ProducerRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = recordBytes(r);
    if (current.length > 0 && bytes + size > MAX_REQUEST_RECORD_BYTES) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

function toTopicMessages(records: ProducerRecord[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const r of records) {
    let messages = byTopic.get(r.topic);
    if (!messages) byTopic.set(r.topic, (messages = []));
    const message: Message = { key: r.key ?? null, value: r.value };
    if (r.headers) message.headers = r.headers;
    if (r.partition !== undefined) message.partition = r.partition;
    if (r.timestamp !== undefined) message.timestamp = String(r.timestamp);
    messages.push(message);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

function validateRecords(records: ProducerRecord[]): void {
  for (const r of records) {
    if (!r.topic) throw new FedStreamError('TRANSPORT_TOPIC', 'a record has no topic');
  }
}

/** Sends records in as few produce requests as the batch limit allows; one metadata entry per topic-partition. */
async function sendInRequests(sendBatch: (batch: { topicMessages: TopicMessages[]; acks: number }) => Promise<KafkaJsRecordMetadata[]>, records: ProducerRecord[]): Promise<RecordMetadata[]> {
  validateRecords(records);
  const seen = new Map<string, RecordMetadata>();
  for (const group of splitForRequests(records)) {
    const result = await sendBatch({ topicMessages: toTopicMessages(group), acks: -1 });
    for (const m of result) {
      const key = `${m.topicName}\u0000${m.partition}`;
      if (seen.has(key)) continue;
      const meta: RecordMetadata = { topic: m.topicName, partition: m.partition };
      if (m.baseOffset !== undefined) meta.baseOffset = m.baseOffset;
      seen.set(key, meta);
    }
  }
  return [...seen.values()];
}

function toBuffer(v: Buffer | string): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
}

function toHeaders(headers: IHeaders | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    // A repeated header key arrives as an array; the last value wins, as with Java's `headers.lastHeader(key)`.
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined) out[k] = toBuffer(last);
  }
  return out;
}

function toTransportMessage(topic: string, partition: number, m: KafkaMessage): TransportMessage {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ?? null,
    value: m.value ?? null,
    headers: toHeaders(m.headers),
    timestamp: Number(m.timestamp),
  };
}

function offsetsByTopic(offsets: TopicPartitionOffset[]): { topic: string; partitions: { partition: number; offset: string }[] }[] {
  const byTopic = new Map<string, { partition: number; offset: string }[]>();
  for (const o of offsets) {
    let partitions = byTopic.get(o.topic);
    if (!partitions) byTopic.set(o.topic, (partitions = []));
    partitions.push({ partition: o.partition, offset: o.offset });
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}

// ---------------------------------------------------------------------------------------------------------------
// producer

/** Broker answers meaning "a newer producer with this transactionalId exists" (or the broker expired ours). */
const FENCING_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTION_COORDINATOR_FENCED']);

class KafkaTransaction implements Transaction {
  private readonly txn: KafkaJsTransaction;
  private readonly producer: KafkaProducer;

  constructor(txn: KafkaJsTransaction, producer: KafkaProducer) {
    this.txn = txn;
    this.producer = producer;
  }

  private run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.producer.mutex.run(async () => {
      this.producer.checkNotFenced(what);
      try {
        return await mapped(`${this.producer.label}: ${what}`, fn, true);
      } catch (err) {
        this.producer.noteFailure(err as FedStreamError);
        throw err;
      }
    });
  }

  send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    return this.run('send', () => sendInRequests((b) => this.txn.sendBatch(b), records));
  }

  sendOffsets(groupId: string, offsets: TopicPartitionOffset[]): Promise<void> {
    return this.run(`sendOffsets for group ${groupId}`, () => this.txn.sendOffsets({ consumerGroupId: groupId, topics: offsetsByTopic(offsets) }));
  }

  commit(): Promise<void> {
    return this.run('commit', () => this.txn.commit());
  }

  abort(): Promise<void> {
    return this.run('abort', () => this.txn.abort());
  }
}

class KafkaProducer implements Producer {
  readonly mutex = new Mutex();
  readonly label: string;
  private readonly producer: KafkaJsProducer;
  private readonly options: ProducerOptions;
  private state: 'new' | 'connected' | 'closed' = 'new';
  private fencedBy: FedStreamError | undefined;
  private readonly onClosed: (client: object) => void;

  constructor(kafka: KafkaJsClient, options: ProducerOptions, onClosed: (client: object) => void = () => undefined) {
    this.options = options;
    this.onClosed = onClosed;
    const idempotent = options.transactionalId !== undefined || options.idempotent !== false;
    this.label = options.transactionalId ? `producer ${options.transactionalId}` : 'producer';
    this.producer = kafka.producer({
      idempotent,
      // Idempotence keeps order only with one request in flight in kafkajs.
      maxInFlightRequests: idempotent ? 1 : undefined,
      transactionalId: options.transactionalId,
      transactionTimeout: options.transactionTimeoutMs,
      // A transaction begun right after a commit is answered CONCURRENT_TRANSACTIONS while the coordinator still
      // writes the markers (a few ms). kafkajs' default first backoff of 300 ms then delays the round's decision
      // by ~300 ms (bench/probes/tx-sends.ts, gap 0); Java's producer retries that case after 20 ms. Only the first
      // backoff changes: retries stay unlimited, kafkajs' own default for idempotent producers (a limit would
      // weaken its exactly-once promise, and kafkajs warns about it); the backoff still doubles up to the client's
      // maxRetryTime.
      ...(options.transactionalId ? { retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 25 } } : {}),
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  }

  async connect(): Promise<void> {
    if (this.state === 'closed') throw closedError(this.label);
    if (this.state === 'connected') return;
    await mapped(`${this.label}: connect`, () => this.producer.connect());
    if (this.options.transactionalId) {
      // InitProducerId now: bumps the epoch, fences older producers with this id and aborts their open transaction.
      await mapped(
        `${this.label}: init transactions`,
        async () => {
          const txn = await this.producer.transaction();
          await txn.abort();
        },
        true,
      );
    }
    this.state = 'connected';
  }

  private ensureConnected(): void {
    if (this.state === 'closed') throw closedError(this.label);
    if (this.state === 'new') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label} is not connected: call connect() first`);
  }

  /**
   * Once the broker said this producer is fenced, every further call fails, plain sends included (kafkajs would
   * still send those with a separate producer id): the instance that took over owns the work now.
   */
  checkNotFenced(what: string): void {
    this.ensureConnected();
    if (this.fencedBy) {
      throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.label}: ${what}: the producer was fenced (${this.fencedBy.message})`, {
        cause: this.fencedBy,
        details: this.fencedBy.details,
      });
    }
  }

  noteFailure(err: FedStreamError): void {
    if (FENCING_TYPES.has(String(err.details.kafkaType))) this.fencedBy ??= err;
  }

  send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    return this.mutex.run(async () => {
      this.checkNotFenced('send');
      return mapped(`${this.label}: send`, () => sendInRequests((b) => this.producer.sendBatch(b), records));
    });
  }

  async transaction(): Promise<Transaction> {
    if (!this.options.transactionalId) throw new FedStreamError('TRANSPORT_TRANSACTION', 'transaction() needs a producer created with a transactionalId');
    this.checkNotFenced('begin transaction');
    const txn = await mapped(`${this.label}: begin transaction`, () => this.producer.transaction(), true);
    return new KafkaTransaction(txn, this);
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onClosed(this);
    await this.mutex.run(() => mapped(`${this.label}: disconnect`, () => this.producer.disconnect()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// consumer

class KafkaConsumer implements Consumer {
  private readonly consumer: KafkaJsConsumer;
  private readonly options: ConsumerOptions;
  private readonly logger: Logger;
  private state: 'new' | 'connected' | 'running' | 'closed' = 'new';
  private readonly onClosed: (client: object) => void;

  constructor(kafka: KafkaJsClient, options: ConsumerOptions, logger: Logger, maxWaitTimeMs: number, onClosed: (client: object) => void = () => undefined) {
    this.options = options;
    this.onClosed = onClosed;
    this.logger = logger.child({ groupId: options.groupId });
    const sessionTimeout = options.sessionTimeoutMs ?? 30_000;
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      readUncommitted: options.readCommitted === false,
      sessionTimeout,
      heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeout / 3)),
      maxBytesPerPartition: options.maxBytesPerPartition,
      maxWaitTimeInMs: maxWaitTimeMs,
      allowAutoTopicCreation: false,
    });
  }

  async connect(): Promise<void> {
    if (this.state === 'closed') throw closedError(`consumer of group ${this.options.groupId}`);
    if (this.state !== 'new') return;
    await mapped(`consumer ${this.options.groupId}: connect`, () => this.consumer.connect());
    this.state = 'connected';
  }

  async subscribe(topics: string[]): Promise<void> {
    this.ensure('connected');
    await mapped(`consumer ${this.options.groupId}: subscribe to ${topics.join(', ')}`, () =>
      this.consumer.subscribe({ topics, fromBeginning: this.options.fromBeginning ?? true }),
    );
  }

  private ensure(...states: KafkaConsumer['state'][]): void {
    if (this.state === 'closed') throw closedError(`consumer of group ${this.options.groupId}`);
    if (!states.includes(this.state)) {
      throw new FedStreamError('TRANSPORT_CLOSED', `consumer of group ${this.options.groupId} is ${this.state}; expected ${states.join(' or ')}`);
    }
  }

  async run(options: RunOptions): Promise<void> {
    this.ensure('connected');
    this.state = 'running';
    const c = this.consumer;
    const { eachBatch } = options;
    // kafkajs' run() returns after joining the group but resolves a new group's starting offsets (earliest/latest)
    // only in its first fetch. Waiting for that fetch makes "records sent after run() returns are seen" hold for
    // fromBeginning: false as well.
    const removers: (() => void)[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.logger.warn('the consumer has not fetched 30 s after run(); returning anyway');
        done();
      }, 30_000);
      const done = (err?: unknown): void => {
        clearTimeout(timer);
        for (const remove of removers.splice(0)) remove();
        if (err) reject(err);
        else resolve();
      };
      removers.push(
        c.on(c.events.GROUP_JOIN, (e) => {
          const assigned = Object.values(e.payload.memberAssignment).some((partitions) => partitions.length > 0);
          if (!assigned) done();
        }),
        c.on(c.events.FETCH, () => done()),
        // kafkajs restarts the consumer after a retriable crash (e.g. the coordinator still loading on a new broker).
        c.on(c.events.CRASH, (e) => {
          if (!e.payload.restart) done(e.payload.error);
        }),
      );
    });
    ready.catch(() => undefined);
    // Where the consumer stands after each fetch, also when kafkajs filtered every record out (transaction markers,
    // aborted records) and resolved the batch itself without calling eachBatch.
    const resolvedInBatch = new Map<string, bigint>();
    const lastRecordInBatch = new Map<string, bigint>();
    if (options.onPosition) {
      const onPosition = options.onPosition;
      c.on(c.events.END_BATCH_PROCESS, (e) => {
        const p = e.payload as { topic: string; partition: number; highWatermark: string; batchSize: number; lastOffset: string };
        const key = `${p.topic}/${p.partition}`;
        const resolved = resolvedInBatch.get(key);
        const lastRecord = lastRecordInBatch.get(key);
        resolvedInBatch.delete(key);
        lastRecordInBatch.delete(key);
        // lastOffset counts the control records (commit markers) of the fetch. When every record handed to eachBatch
        // was resolved, the consumer is past those markers too.
        let next: bigint | undefined;
        if (p.batchSize === 0) next = BigInt(p.lastOffset) + 1n;
        else if (resolved !== undefined) next = resolved === lastRecord ? BigInt(p.lastOffset) + 1n : resolved + 1n;
        if (next !== undefined) onPosition({ topic: p.topic, partition: p.partition, nextOffset: next.toString(), highWatermark: String(p.highWatermark) });
      });
    }
    c.on(c.events.CRASH, (e) => {
      if (e.payload.restart) this.logger.warn({ err: e.payload.error }, 'kafka consumer crashed; kafkajs restarts it');
      else this.logger.error({ err: e.payload.error }, 'kafka consumer crashed and stopped');
    });
    await mapped(`consumer ${this.options.groupId}: run`, () =>
      c.run({
        autoCommit: options.autoCommit ?? false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
          if (batch.messages.length === 0) return;
          const mappedBatch: Batch = {
            topic: batch.topic,
            partition: batch.partition,
            highWatermark: batch.highWatermark,
            messages: batch.messages.map((m) => toTransportMessage(batch.topic, batch.partition, m)),
          };
          const key = `${batch.topic}/${batch.partition}`;
          lastRecordInBatch.set(key, BigInt(batch.messages[batch.messages.length - 1]!.offset));
          const resolve = (offset: string): void => {
            resolveOffset(offset);
            const o = BigInt(offset);
            const prev = resolvedInBatch.get(key);
            if (prev === undefined || o > prev) resolvedInBatch.set(key, o);
          };
          await insideBatchOf.run(this, () => eachBatch(mappedBatch, { resolveOffset: resolve, heartbeat, isRunning: () => isRunning() && !isStale() }));
        },
      }),
    );
    await mapped(`consumer ${this.options.groupId}: start`, () => ready);
  }

  async commitOffsets(offsets: TopicPartitionOffset[]): Promise<void> {
    this.ensure('running');
    await mapped(`consumer ${this.options.groupId}: commit offsets`, () => this.consumer.commitOffsets(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset }))));
  }

  seek(tp: TopicPartitionOffset): void {
    this.ensure('running');
    this.consumer.seek({ topic: tp.topic, partition: tp.partition, offset: tp.offset });
  }

  pause(topics: string[]): void {
    this.ensure('running');
    this.consumer.pause(topics.map((topic) => ({ topic })));
  }

  resume(topics: string[]): void {
    this.ensure('running');
    this.consumer.resume(topics.map((topic) => ({ topic })));
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onClosed(this);
    const disconnecting = mapped(`consumer ${this.options.groupId}: disconnect`, () => this.consumer.disconnect());
    if (insideBatchOf.getStore() === this) {
      // kafkajs' disconnect waits for the running batch to end; awaited from inside that batch it never would.
      disconnecting.catch((err: unknown) => this.logger.warn({ err }, 'disconnecting the consumer failed'));
      return;
    }
    await disconnecting;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// admin

class KafkaAdmin implements Admin {
  private readonly admin: KafkaJsAdmin;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly onClosed: (client: object) => void;

  constructor(kafka: KafkaJsClient, onClosed: (client: object) => void = () => undefined) {
    this.admin = kafka.admin();
    this.onClosed = onClosed;
  }

  private async ready(): Promise<KafkaJsAdmin> {
    if (this.closed) throw closedError('admin');
    this.connecting ??= mapped('admin: connect', () => this.admin.connect()).catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    await this.connecting;
    return this.admin;
  }

  async createTopics(topics: TopicSpec[]): Promise<string[]> {
    const admin = await this.ready();
    // One request per topic: kafkajs reports only "all created or not" per request, and callers need the names.
    const created = await Promise.all(
      topics.map(async (spec) => {
        const configs = Object.entries(spec.configs ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
        const ok = await mapped(`admin: create topic ${spec.topic}${configs ? ` (configs ${configs})` : ''}`, () =>
          admin.createTopics({
            waitForLeaders: true,
            topics: [
              {
                topic: spec.topic,
                numPartitions: spec.numPartitions,
                replicationFactor: spec.replicationFactor,
                configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
              },
            ],
          }),
        );
        return ok ? spec.topic : undefined;
      }),
    );
    return created.filter((t): t is string => t !== undefined);
  }

  async deleteTopics(topics: string[]): Promise<void> {
    const admin = await this.ready();
    const existing = new Set(await mapped('admin: list topics', () => admin.listTopics()));
    const present = topics.filter((t) => existing.has(t));
    if (present.length === 0) return;
    await mapped(`admin: delete topics ${present.join(', ')}`, () => admin.deleteTopics({ topics: present }));
  }

  async listTopics(): Promise<string[]> {
    const admin = await this.ready();
    return (await mapped('admin: list topics', () => admin.listTopics())).sort();
  }

  /** kafkajs retries UNKNOWN_TOPIC_OR_PARTITION for seconds; a missing topic is answered at once instead. */
  private async requireTopic(admin: KafkaJsAdmin, topic: string, operation: string): Promise<void> {
    const topics = await mapped('admin: list topics', () => admin.listTopics());
    if (!topics.includes(topic)) {
      throw new FedStreamError('TRANSPORT_TOPIC', `${operation}: topic ${topic} does not exist`, {
        retriable: true,
        details: { topic, kafkaType: 'UNKNOWN_TOPIC_OR_PARTITION' },
      });
    }
  }

  async describeTopic(topic: string): Promise<TopicDescription> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: describe topic ${topic}`);
    const [metadata, configs] = await Promise.all([
      mapped(`admin: describe topic ${topic}`, () => admin.fetchTopicMetadata({ topics: [topic] })),
      mapped(`admin: describe configs of topic ${topic}`, () =>
        admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] }),
      ),
    ]);
    const partitions = metadata.topics.find((t) => t.name === topic)?.partitions.length ?? 0;
    const own: Record<string, string> = {};
    for (const entry of configs.resources[0]?.configEntries ?? []) {
      if (entry.configSource === ConfigSource.TOPIC_CONFIG) own[entry.configName] = entry.configValue;
    }
    return { topic, partitions, configs: own };
  }

  async fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: fetch offsets of topic ${topic}`);
    const offsets = await mapped(`admin: fetch offsets of topic ${topic}`, () => admin.fetchTopicOffsets(topic));
    return offsets.map(({ partition, low, high }) => ({ partition, low, high })).sort((a, b) => a.partition - b.partition);
  }

  async fetchCommittedOffsets(groupId: string, topic: string): Promise<TopicPartitionOffset[]> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: fetch committed offsets of group ${groupId}`);
    const result = await mapped(`admin: fetch committed offsets of group ${groupId}`, () => admin.fetchOffsets({ groupId, topics: [topic] }));
    return result
      .flatMap((t) => t.partitions.map(({ partition, offset }) => ({ topic: t.topic, partition, offset })))
      .sort((a, b) => a.partition - b.partition);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    if (this.connecting) await this.admin.disconnect().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// transport

const HEALTH_TIMEOUT_MS = 15_000;

class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  private readonly kafka: KafkaJsClient;
  private readonly options: KafkaTransportOptions;
  private readonly logger: Logger;
  private readonly clients = new Map<object, () => Promise<void>>();
  private closed = false;

  private readonly baseLogger: Logger;

  constructor(options: KafkaTransportOptions) {
    if (options.brokers.length === 0) throw new FedStreamError('CONFIG_INVALID', 'the Kafka transport needs at least one broker (host:port)');
    this.options = options;
    this.baseLogger = options.logger ?? rootLogger();
    this.logger = this.baseLogger.child({ component: 'transport', transport: 'kafka' });
    this.kafka = this.client(options.retry);
  }

  private client(retry: KafkaTransportOptions['retry'], connectionTimeout = this.options.connectionTimeoutMs ?? 3_000): KafkaJsClient {
    return new Kafka({
      clientId: this.options.clientId ?? 'fedstream',
      brokers: this.options.brokers,
      connectionTimeout,
      requestTimeout: this.options.requestTimeoutMs ?? 30_000,
      retry: retry && { retries: retry.retries, initialRetryTime: retry.initialRetryTimeMs, maxRetryTime: retry.maxRetryTimeMs },
      logCreator: pinoLogCreator(this.baseLogger),
      logLevel: kafkajsLogLevel(this.baseLogger),
    });
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('kafka transport');
  }

  /** Clients close with the transport; one closed on its own is forgotten. */
  private forget = (client: object): void => {
    this.clients.delete(client);
  };

  admin(): Admin {
    this.ensureOpen();
    const admin = new KafkaAdmin(this.kafka, this.forget);
    this.clients.set(admin, () => admin.close());
    return admin;
  }

  producer(options: ProducerOptions = {}): Producer {
    this.ensureOpen();
    const producer = new KafkaProducer(this.kafka, options, this.forget);
    this.clients.set(producer, () => producer.disconnect());
    return producer;
  }

  consumer(options: ConsumerOptions): Consumer {
    this.ensureOpen();
    const consumer = new KafkaConsumer(this.kafka, options, this.logger, this.options.maxWaitTimeMs ?? 500, this.forget);
    this.clients.set(consumer, () => consumer.disconnect());
    return consumer;
  }

  async health(): Promise<HealthResult> {
    const where = this.options.brokers.join(',');
    // A client of its own with few retries, so that an unreachable broker is reported in seconds.
    const admin = this.client({ retries: 1, initialRetryTimeMs: 200, maxRetryTimeMs: 1_000 }).admin();
    let timer: NodeJS.Timeout | undefined;
    try {
      const check = (async () => {
        await admin.connect();
        return admin.describeCluster();
      })();
      check.catch(() => undefined);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FedStreamError('TRANSPORT_TIMEOUT', `no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
      });
      const cluster = await Promise.race([check, timeout]);
      const brokers = cluster.brokers.map((b) => `${b.host}:${b.port}`).join(', ');
      return { success: true, detail: `kafka cluster ${cluster.clusterId}: ${cluster.brokers.length} broker(s) ${brokers}, controller ${cluster.controller ?? 'unknown'}` };
    } catch (err) {
      const error = fromKafkaJsError(err, `kafka at ${where}`);
      return { success: false, detail: error.message, error };
    } finally {
      clearTimeout(timer);
      await admin.disconnect().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((close) => close().catch((err: unknown) => this.logger.warn({ err }, 'closing a kafka client failed'))));
  }
}

/** The Kafka transport: `createKafkaTransport({ brokers: ['127.0.0.1:9092'], clientId, logger })`. */
export function createKafkaTransport(options: KafkaTransportOptions): Transport {
  return new KafkaTransport(options);
}
