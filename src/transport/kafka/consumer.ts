/** The Kafka consumer: group membership, the batch loop, pause/seek, and a disconnect that may come from inside a batch. */
import { AsyncLocalStorage } from 'node:async_hooks';
import type {
  Consumer as KafkaJsConsumer,
  ConsumerRunConfig,
  EachBatchPayload,
  Kafka as KafkaJsClient,
} from 'kafkajs';
import { FedStreamError, type Logger } from '../../common/index.ts';
import { closedError, crashedOnOutage, mapped, mappedWithRetry } from './errors.ts';
import type { KafkaClientContext } from './security.ts';
import { toTransportMessage } from './records.ts';
import type {
  Batch,
  Consumer,
  ConsumerOptions,
  RunOptions,
  TopicPartitionOffset,
} from '../types.ts';

/** Which consumer's eachBatch the current async context runs in (see KafkaConsumer.disconnect). */
const insideBatchOf = new AsyncLocalStorage<object>();


export class KafkaConsumer implements Consumer {
  private readonly consumer: KafkaJsConsumer;
  private readonly options: ConsumerOptions;
  private readonly logger: Logger;
  private state: 'new' | 'connected' | 'running' | 'closed' = 'new';
  private readonly onClosed: (client: object) => void;
  private readonly ctx: KafkaClientContext | undefined;
  /** Subscribed topics, for errors that name them. */
  private topics: string[] = [];

  constructor(kafka: KafkaJsClient, options: ConsumerOptions, logger: Logger, maxWaitTimeMs: number, onClosed: (client: object) => void = () => undefined, ctx?: KafkaClientContext) {
    this.options = options;
    this.ctx = ctx;
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
    await mapped(`consumer ${this.options.groupId}: connect`, async () => { await this.ctx?.preflight(); await this.consumer.connect(); }, { security: this.ctx?.security, resource: { 'consumer group': this.options.groupId } });
    this.state = 'connected';
  }

  async subscribe(topics: string[]): Promise<void> {
    this.topics = [...new Set([...this.topics, ...topics])];
    this.ensure('connected');
    // Callers subscribe to topics they made sure of (ensureTopics, a listing): "does not host this topic-partition"
    // there is a leader this client's metadata does not know yet, and is asked again.
    await mappedWithRetry(`consumer ${this.options.groupId}: subscribe to ${topics.join(', ')}`, () =>
      this.consumer.subscribe({ topics, fromBeginning: this.options.fromBeginning ?? true }),
    { security: this.ctx?.security, resource: { topic: topics.join(', '), 'consumer group': this.options.groupId }, topicExists: true });
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
    if (options.onRebalance) {
      const onRebalance = options.onRebalance;
      // kafkajs emits REBALANCING when a heartbeat or fetch is answered REBALANCE_IN_PROGRESS, before it rejoins.
      c.on(c.events.REBALANCING, () => onRebalance());
    }
    let started = false;
    c.on(c.events.CRASH, (e) => {
      if (e.payload.restart) this.logger.warn({ err: e.payload.error }, 'kafka consumer crashed; kafkajs restarts it');
      else if (started && this.state === 'running' && crashedOnOutage(e.payload.error)) {
        // As kafkajs does after a retriable crash: a new group member from the committed offsets (errors.ts).
        this.logger.warn({ err: e.payload.error }, 'kafka consumer stopped on a broker outage; starting it again');
        this.restartAfterOutage(runConfig);
      } else this.logger.error({ err: e.payload.error }, 'kafka consumer crashed and stopped');
    });
    const runConfig: ConsumerRunConfig = {
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
    };
    await mapped(`consumer ${this.options.groupId}: run`, () => c.run(runConfig));
    await mapped(`consumer ${this.options.groupId}: start`, () => ready, { security: this.ctx?.security, resource: { 'consumer group': this.options.groupId, topic: this.topics.join(', ') } });
    started = true;
  }

  /** Connects and runs the stopped kafkajs consumer again, every 2 s while the broker refuses, until it runs or is closed. */
  private restartAfterOutage(runConfig: ConsumerRunConfig): void {
    const attempt = (): void => {
      if (this.state !== 'running') return;
      this.consumer.connect().then(() => this.consumer.run(runConfig)).catch((err: unknown) => {
        this.logger.warn({ err }, 'starting the kafka consumer again failed; retrying in 2 s');
        setTimeout(attempt, 2_000);
      });
    };
    setTimeout(attempt, 1_000);
  }

  async commitOffsets(offsets: TopicPartitionOffset[]): Promise<void> {
    this.ensure('running');
    // Committing the same offsets again changes nothing: a retriable answer (a coordinator moving, a timeout) is asked again.
    await mappedWithRetry(`consumer ${this.options.groupId}: commit offsets`, () => this.consumer.commitOffsets(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset }))), { security: this.ctx?.security, resource: { 'consumer group': this.options.groupId } });
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
