/** The Kafka producer: serialized idempotent sends, fencing on connect, and transactions. */
// First, so that kafkajs finds the faster CRC-32C in require.cache when it loads its record batch encoder.
import './kafkajs-crc.ts';
import kafkajs from 'kafkajs';
import type {
  Kafka as KafkaJsClient,
  Producer as KafkaJsProducer,
  Transaction as KafkaJsTransaction,
} from 'kafkajs';
import { FedStreamError, sleep } from '../../common/index.ts';
import { closedError, mapped } from './errors.ts';
import type { ResolvedKafkaSecurity } from './security.ts';
import type { KafkaClientContext } from './security.ts';
import { Mutex, offsetsByTopic, sendInRequests } from './records.ts';
import type {
  Producer,
  ProducerOptions,
  ProducerRecord,
  RecordMetadata,
  TopicPartitionOffset,
  Transaction,
} from '../types.ts';

const { Partitioners } = kafkajs;
/** Attempts of `checkFenced` after a retriable answer (25 ms doubling: about 6 s in all). */
const PROBE_RETRIES = 8;

/** The topics a send writes, for an authorization error that names them. */
function topicsOf(records: readonly ProducerRecord[]): string {
  return [...new Set(records.map((r) => r.topic))].join(', ');
}

/**
 * Failures after which this producer is done for good: fenced by a newer producer with its transactionalId
 * (TRANSPORT_FENCED, errors.ts), or by a newer transaction coordinator.
 */
function endsTheProducer(err: FedStreamError): boolean {
  return err.code === 'TRANSPORT_FENCED' || err.details.kafkaType === 'TRANSACTION_COORDINATOR_FENCED';
}

class KafkaTransaction implements Transaction {
  private readonly txn: KafkaJsTransaction;
  private readonly producer: KafkaProducer;

  constructor(txn: KafkaJsTransaction, producer: KafkaProducer) {
    this.txn = txn;
    this.producer = producer;
  }

  private run<T>(what: string, fn: () => Promise<T>, resource?: string): Promise<T> {
    return this.producer.mutex.run(async () => {
      this.producer.checkNotFenced(what);
      try {
        return await mapped(`${this.producer.label}: ${what}`, fn, { inTransaction: true, security: this.producer.security, resource });
      } catch (err) {
        this.producer.noteFailure(err as FedStreamError);
        throw err;
      }
    });
  }

  send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    return this.run('send', () => sendInRequests((b) => this.txn.sendBatch(b), records), topicsOf(records));
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

export class KafkaProducer implements Producer {
  readonly mutex = new Mutex();
  readonly label: string;
  private readonly producer: KafkaJsProducer;
  private readonly options: ProducerOptions;
  private state: 'new' | 'connected' | 'closed' = 'new';
  private fencedBy: FedStreamError | undefined;
  private readonly onClosed: (client: object) => void;

  readonly security: ResolvedKafkaSecurity | undefined;
  private readonly ctx: KafkaClientContext | undefined;

  constructor(kafka: KafkaJsClient, options: ProducerOptions, onClosed: (client: object) => void = () => undefined, ctx?: KafkaClientContext) {
    this.options = options;
    this.onClosed = onClosed;
    this.ctx = ctx;
    this.security = ctx?.security;
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
    await mapped(`${this.label}: connect`, async () => { await this.ctx?.preflight(); await this.producer.connect(); }, { security: this.security });
    if (this.options.transactionalId) {
      // InitProducerId now: bumps the epoch, fences older producers with this id and aborts their open transaction.
      await mapped(
        `${this.label}: init transactions`,
        async () => {
          const txn = await this.producer.transaction();
          await txn.abort();
        },
        { inTransaction: true, security: this.security, resource: this.options.transactionalId },
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
      throw new FedStreamError(this.fencedBy.code === 'TRANSPORT_FENCED' ? 'TRANSPORT_FENCED' : 'TRANSPORT_TRANSACTION', `${this.label}: ${what}: the producer was fenced (${this.fencedBy.message})`, {
        cause: this.fencedBy,
        details: this.fencedBy.details,
      });
    }
  }

  noteFailure(err: FedStreamError): void {
    if (endsTheProducer(err)) this.fencedBy ??= err;
  }

  /**
   * An empty transaction that registers `groupId`'s offsets (none) and is aborted: AddOffsetsToTxn carries this
   * producer's id and epoch to the transaction coordinator, which answers INVALID_PRODUCER_EPOCH once a newer
   * producer with the same transactionalId initialised. No record is written; the abort leaves a transaction
   * marker in the group's `__consumer_offsets` partition. Three round trips.
   */
  async checkFenced(groupId: string): Promise<void> {
    if (!this.options.transactionalId) throw new FedStreamError('TRANSPORT_TRANSACTION', 'checkFenced() needs a producer created with a transactionalId');
    await this.mutex.run(async () => {
      this.checkNotFenced('check fencing');
      for (let attempt = 0; ; attempt++) {
        try {
          await mapped(`${this.label}: check fencing`, async () => {
            const txn = await this.producer.transaction();
            try {
              await txn.sendOffsets({ consumerGroupId: groupId, topics: [] });
            } catch (err) {
              await txn.abort().catch(() => undefined);
              throw err;
            }
            await txn.abort();
          }, { inTransaction: true, security: this.security, resource: { 'transactional id': this.options.transactionalId!, 'consumer group': groupId } });
          return;
        } catch (err) {
          const e = err as FedStreamError;
          // Right after a commit the coordinator answers CONCURRENT_TRANSACTIONS for a few ms, and kafkajs does not
          // retry AddOffsetsToTxn: ask again shortly, as it does for AddPartitionsToTxn.
          if (e.code !== 'TRANSPORT_FENCED' && e.details.kafkaRetriable === true && attempt < PROBE_RETRIES) {
            await sleep(Math.min(1_000, 25 * 2 ** attempt));
            continue;
          }
          this.noteFailure(e);
          throw err;
        }
      }
    });
  }

  send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    return this.mutex.run(async () => {
      this.checkNotFenced('send');
      return mapped(`${this.label}: send`, () => sendInRequests((b) => this.producer.sendBatch(b), records), { security: this.security, resource: topicsOf(records) });
    });
  }

  async transaction(): Promise<Transaction> {
    if (!this.options.transactionalId) throw new FedStreamError('TRANSPORT_TRANSACTION', 'transaction() needs a producer created with a transactionalId');
    this.checkNotFenced('begin transaction');
    const txn = await mapped(`${this.label}: begin transaction`, () => this.producer.transaction(), { inTransaction: true, security: this.security, resource: this.options.transactionalId });
    return new KafkaTransaction(txn, this);
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onClosed(this);
    await this.mutex.run(() => mapped(`${this.label}: disconnect`, () => this.producer.disconnect()));
  }
}
