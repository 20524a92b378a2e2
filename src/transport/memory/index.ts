/**
 * The in-memory adapter of the transport port: a Kafka-like log inside the process, for unit tests and the
 * embedded demo. It keeps the semantics the pipeline relies on, modelled on Kafka's:
 *
 * - topics of N partitions, each an append-only array; offsets count from 0 and are handed out as strings;
 * - keyed records go to `murmur2(key) % partitions` exactly as Kafka's default partitioner, others round-robin;
 * - a record batch above the topic's `max.message.bytes` (Kafka's default 1048588) is refused, as by the broker;
 * - consumer groups with committed offsets; the partitions of a topic are split range-style among the members
 *   of a group that subscribe to it, and every join or leave is a rebalance that restarts members from the
 *   committed offsets (uncommitted progress is redelivered, as with kafkajs' eager rebalancing);
 * - transactions: records of an open transaction sit in the log but read_committed readers stop at the first of
 *   them (the last stable offset); commit and abort each append a control record (it takes an offset, as Kafka's
 *   transaction markers do); records of aborted transactions are never shown to read_committed readers;
 *   `sendOffsets` takes effect on commit only; an open transaction is aborted by the transaction timeout or when a
 *   new producer with the same transactionalId connects, which also fences the old producer for good.
 *
 * Retention and most topic configs are stored, not enforced. Delivery is asynchronous and event-driven: consumers
 * sleep until the cluster changes (append, commit, join…), never poll.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { FedStreamError } from '../../common/errors.ts';
import { rootLogger, type Logger } from '../../common/logger.ts';
import type {
  Admin,
  Batch,
  Consumer,
  ConsumerOptions,
  EachBatchContext,
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

/** Kafka's `message.max.bytes` default: 1 MiB + 12 bytes of legacy log overhead. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
const DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_BYTES_PER_PARTITION = 1_048_576;
/** Size of a record batch header (61 bytes) plus the per-record framing, as the broker counts it. */
const BATCH_OVERHEAD_BYTES = 61 + 21;
const ERROR_BACKOFF_MS = 100;
const NO_PROGRESS_BACKOFF_MS = 50;

/** Topic-level configs Kafka 3.9 accepts; anything else is refused as the broker refuses it (INVALID_CONFIG). */
const TOPIC_CONFIGS = new Set([
  'cleanup.policy', 'compression.type', 'compression.gzip.level', 'compression.lz4.level', 'compression.zstd.level',
  'delete.retention.ms', 'file.delete.delay.ms', 'flush.messages', 'flush.ms', 'follower.replication.throttled.replicas',
  'index.interval.bytes', 'leader.replication.throttled.replicas', 'local.retention.bytes', 'local.retention.ms',
  'max.compaction.lag.ms', 'max.message.bytes', 'message.downconversion.enable', 'message.format.version',
  'message.timestamp.after.max.ms', 'message.timestamp.before.max.ms', 'message.timestamp.difference.max.ms',
  'message.timestamp.type', 'min.cleanable.dirty.ratio', 'min.compaction.lag.ms', 'min.insync.replicas', 'preallocate',
  'remote.log.copy.disable', 'remote.log.delete.on.disable', 'remote.storage.enable', 'retention.bytes', 'retention.ms',
  'segment.bytes', 'segment.index.bytes', 'segment.jitter.ms', 'segment.ms', 'unclean.leader.election.enable',
]);
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

// ---------------------------------------------------------------------------------------------------------------
// partitioning

/**
 * Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), in 32-bit arithmetic. Kafka's default
 * partitioner and kafkajs' `Partitioners.DefaultPartitioner` both use it, so a key lands on the same partition
 * here as on a real cluster.
 */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  switch (length % 4) {
    case 3:
      h ^= (data[tail + 2]! & 0xff) << 16;
    // falls through
    case 2:
      h ^= (data[tail + 1]! & 0xff) << 8;
    // falls through
    case 1:
      h ^= data[tail]! & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's default partitioner picks for a key. */
export function partitionForKey(key: string | Buffer, numPartitions: number): number {
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return (murmur2(bytes) & 0x7fffffff) % numPartitions;
}

// ---------------------------------------------------------------------------------------------------------------
// the log

type TxnStatus = 'open' | 'committed' | 'aborted';

interface TxnMarker {
  status: TxnStatus;
}

interface StoredRecord {
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  timestamp: number;
  size: number;
  /** The transaction that wrote it, if any. */
  txn?: TxnMarker;
  /** A transaction marker: takes an offset, is never delivered. */
  control?: boolean;
}

class PartitionLog {
  readonly records: StoredRecord[] = [];
  /** The first offset each open transaction wrote here; the smallest is the last stable offset. */
  readonly openTxns = new Map<TxnMarker, number>();

  get end(): number {
    return this.records.length;
  }

  lastStable(): number {
    let lso = this.end;
    for (const first of this.openTxns.values()) lso = Math.min(lso, first);
    return lso;
  }
}

class TopicState {
  readonly name: string;
  readonly partitions: PartitionLog[];
  readonly configs: Record<string, string>;
  roundRobin = 0;

  constructor(name: string, numPartitions: number, configs: Record<string, string>) {
    this.name = name;
    this.partitions = Array.from({ length: numPartitions }, () => new PartitionLog());
    this.configs = configs;
  }

  get maxMessageBytes(): number {
    const configured = Number(this.configs['max.message.bytes']);
    return Number.isFinite(configured) && configured > 0 ? configured : DEFAULT_MAX_MESSAGE_BYTES;
  }
}

const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

class GroupState {
  readonly id: string;
  readonly committed = new Map<string, number>();
  readonly members: MemoryConsumer[] = [];
  generation = 0;

  constructor(id: string) {
    this.id = id;
  }
}

function topicError(message: string, details: Record<string, unknown> = {}): FedStreamError {
  // As in Kafka's protocol, an unknown topic or partition is retriable (it may be being created); the rest is not.
  return new FedStreamError('TRANSPORT_TOPIC', message, { details, retriable: details.kafkaType === 'UNKNOWN_TOPIC_OR_PARTITION' });
}

function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
}

/**
 * The shared in-process "cluster". Several transports (an aggregator and nodes in one process) can share one;
 * `createTransport()` in index.ts keeps one per process.
 */
export class MemoryCluster {
  readonly topics = new Map<string, TopicState>();
  readonly groups = new Map<string, GroupState>();
  /** The producer currently owning each transactionalId. */
  readonly transactionalOwners = new Map<string, MemoryProducer>();
  private waiters: (() => void)[] = [];

  /** Resolves at the next change of the cluster (append, transaction end, commit, rebalance, seek, pause…). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  topic(name: string): TopicState {
    const topic = this.topics.get(name);
    if (!topic) throw topicError(`topic ${name} does not exist`, { topic: name, kafkaType: 'UNKNOWN_TOPIC_OR_PARTITION' });
    return topic;
  }

  group(id: string): GroupState {
    let group = this.groups.get(id);
    if (!group) this.groups.set(id, (group = new GroupState(id)));
    return group;
  }

  /** Validates every record first, then appends them all: a refused send writes nothing. */
  append(records: ProducerRecord[], txn?: TxnMarker): RecordMetadata[] {
    const placed = records.map((r) => {
      const topic = this.topic(r.topic);
      const partitionCount = topic.partitions.length;
      let partition: number;
      if (r.partition !== undefined && r.partition !== null) {
        partition = r.partition;
        if (!Number.isInteger(partition) || partition < 0 || partition >= partitionCount) {
          throw topicError(`topic ${r.topic} has no partition ${partition} (it has ${partitionCount})`, { topic: r.topic, partition, kafkaType: 'UNKNOWN_TOPIC_OR_PARTITION' });
        }
      } else if (r.key !== undefined && r.key !== null) {
        partition = partitionForKey(r.key, partitionCount);
      } else {
        partition = topic.roundRobin++ % partitionCount;
      }
      const key = r.key === undefined || r.key === null ? null : toBuffer(r.key);
      const value = r.value === null ? null : Buffer.from(r.value);
      const headers: Record<string, Buffer> = {};
      let size = BATCH_OVERHEAD_BYTES + (key?.length ?? 0) + (value?.length ?? 0);
      for (const [k, v] of Object.entries(r.headers ?? {})) {
        headers[k] = toBuffer(v);
        size += Buffer.byteLength(k) + headers[k].length + 2;
      }
      if (size > topic.maxMessageBytes) {
        throw new FedStreamError(
          'TRANSPORT_TOPIC',
          `send: a record of ${size} bytes exceeds max.message.bytes (${topic.maxMessageBytes}) of topic ${r.topic} ` +
            '(the broker refuses record batches above max.message.bytes, 1 MB by default; chunk large payloads)',
          { retriable: false, details: { topic: r.topic, size, kafkaType: 'MESSAGE_TOO_LARGE' } },
        );
      }
      return { log: topic.partitions[partition]!, topic: r.topic, partition, key, value, headers, size, timestamp: r.timestamp ?? Date.now() };
    });

    const metadata = new Map<string, RecordMetadata>();
    for (const p of placed) {
      const offset = p.log.end;
      const record: StoredRecord = { offset, key: p.key, value: p.value, headers: p.headers, timestamp: p.timestamp, size: p.size };
      if (txn) {
        record.txn = txn;
        if (!p.log.openTxns.has(txn)) p.log.openTxns.set(txn, offset);
      }
      p.log.records.push(record);
      const k = tpKey(p.topic, p.partition);
      if (!metadata.has(k)) metadata.set(k, { topic: p.topic, partition: p.partition, baseOffset: String(offset) });
    }
    if (placed.length > 0) this.notify();
    return [...metadata.values()];
  }

  /** Writes the commit or abort marker on every partition the transaction touched. */
  endTransaction(txn: TxnMarker, status: 'committed' | 'aborted', timestamp = Date.now()): void {
    txn.status = status;
    for (const topic of this.topics.values()) {
      for (const log of topic.partitions) {
        if (!log.openTxns.delete(txn)) continue;
        log.records.push({ offset: log.end, key: null, value: null, headers: {}, timestamp, size: 0, txn, control: true });
      }
    }
    this.notify();
  }

  commit(groupId: string, offsets: TopicPartitionOffset[]): void {
    const group = this.group(groupId);
    for (const o of offsets) group.committed.set(tpKey(o.topic, o.partition), Number(o.offset));
    this.notify();
  }

  /** Recomputes the assignment of every member of a group (range-style per topic) and starts a new generation. */
  rebalance(group: GroupState): void {
    group.generation++;
    const assignments = new Map<MemoryConsumer, TopicPartitionOffset[]>(group.members.map((m) => [m, []]));
    const topics = [...new Set(group.members.flatMap((m) => m.subscriptions))].sort();
    for (const name of topics) {
      const topic = this.topics.get(name);
      if (!topic) continue;
      const members = group.members.filter((m) => m.subscriptions.includes(name));
      const n = topic.partitions.length;
      const per = Math.floor(n / members.length);
      const extra = n % members.length;
      members.forEach((member, i) => {
        const start = i * per + Math.min(i, extra);
        const count = per + (i < extra ? 1 : 0);
        for (let p = start; p < start + count; p++) assignments.get(member)!.push({ topic: name, partition: p, offset: '-1' });
      });
    }
    for (const [member, assigned] of assignments) member.assign(group.generation, assigned);
    this.notify();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// producer

class MemoryTransaction implements Transaction, TxnMarker {
  status: TxnStatus = 'open';
  private readonly producer: MemoryProducer;
  private readonly cluster: MemoryCluster;
  private readonly offsets: { groupId: string; offsets: TopicPartitionOffset[] }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(producer: MemoryProducer, cluster: MemoryCluster, timeoutMs: number) {
    this.producer = producer;
    this.cluster = cluster;
    // The coordinator aborts a transaction left open too long and bumps the producer epoch: the producer is fenced.
    this.timer = setTimeout(() => {
      if (this.status !== 'open') return;
      this.producer.fence(`its transaction stayed open longer than the transaction timeout (${timeoutMs} ms) and was aborted`);
    }, timeoutMs);
    this.timer.unref();
  }

  private guard(what: string): void {
    this.producer.checkUsable(what);
    if (this.status !== 'open') throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.producer.label}: ${what}: the transaction is already ${this.status}`);
  }

  async send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    this.guard('send');
    return this.cluster.append(records, this);
  }

  async sendOffsets(groupId: string, offsets: TopicPartitionOffset[]): Promise<void> {
    this.guard('sendOffsets');
    this.offsets.push({ groupId, offsets: offsets.map((o) => ({ ...o })) });
  }

  async commit(): Promise<void> {
    this.guard('commit');
    clearTimeout(this.timer);
    this.cluster.endTransaction(this, 'committed');
    for (const { groupId, offsets } of this.offsets) this.cluster.commit(groupId, offsets);
    this.producer.transactionEnded(this);
  }

  async abort(): Promise<void> {
    this.guard('abort');
    this.abortNow();
  }

  /** Aborts without the usability checks (fencing and timeouts abort on the producer's behalf). */
  abortNow(): void {
    if (this.status !== 'open') return;
    clearTimeout(this.timer);
    this.cluster.endTransaction(this, 'aborted');
    this.producer.transactionEnded(this);
  }
}

class MemoryProducer implements Producer {
  readonly label: string;
  private readonly cluster: MemoryCluster;
  private readonly options: ProducerOptions;
  private state: 'new' | 'connected' | 'closed' = 'new';
  private fencedReason: string | undefined;
  private current: MemoryTransaction | undefined;
  private readonly onClosed: (client: object) => void;

  constructor(cluster: MemoryCluster, options: ProducerOptions, onClosed: (client: object) => void = () => undefined) {
    this.cluster = cluster;
    this.onClosed = onClosed;
    this.options = options;
    this.label = options.transactionalId ? `producer ${options.transactionalId}` : 'producer';
  }

  async connect(): Promise<void> {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label} is closed`);
    if (this.state === 'connected') return;
    const id = this.options.transactionalId;
    if (id !== undefined) {
      const previous = this.cluster.transactionalOwners.get(id);
      if (previous && previous !== this) previous.fence(`a newer producer with transactionalId ${id} connected`);
      this.cluster.transactionalOwners.set(id, this);
    }
    this.state = 'connected';
  }

  /** Aborts the open transaction and makes every further call fail: what an epoch bump does to a Kafka producer. */
  fence(reason: string): void {
    this.fencedReason ??= reason;
    this.current?.abortNow();
  }

  checkUsable(what: string): void {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: the producer is closed`);
    if (this.state === 'new') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: not connected, call connect() first`);
    if (this.fencedReason) {
      throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.label}: ${what}: the producer was fenced: ${this.fencedReason}`, { details: { kafkaType: 'INVALID_PRODUCER_EPOCH' } });
    }
  }

  transactionEnded(txn: MemoryTransaction): void {
    if (this.current === txn) this.current = undefined;
  }

  async send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    this.checkUsable('send');
    return this.cluster.append(records);
  }

  async transaction(): Promise<Transaction> {
    if (this.options.transactionalId === undefined) throw new FedStreamError('TRANSPORT_TRANSACTION', 'transaction() needs a producer created with a transactionalId');
    this.checkUsable('begin transaction');
    if (this.current) throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.label}: there is already an open transaction; commit or abort it first`);
    this.current = new MemoryTransaction(this, this.cluster, this.options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS);
    return this.current;
  }

  async disconnect(): Promise<void> {
    // An open transaction stays open, as on Kafka: the timeout or the next producer with this id aborts it.
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onClosed(this);
    const id = this.options.transactionalId;
    if (id !== undefined && this.cluster.transactionalOwners.get(id) === this && !this.current) this.cluster.transactionalOwners.delete(id);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// consumer

interface PartitionCursor {
  topic: string;
  partition: number;
  /** Next offset to read: the last resolved offset + 1, else the committed offset, else the reset position. */
  position: number;
  /** Resolved but not yet committed (autoCommit only). */
  dirty: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** Which consumer's eachBatch the current async context runs in: disconnect() from inside it must not wait for itself. */
const insideBatchOf = new AsyncLocalStorage<MemoryConsumer>();
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class MemoryConsumer implements Consumer {
  readonly memberId = randomUUID();
  subscriptions: string[] = [];
  private readonly cluster: MemoryCluster;
  private readonly options: ConsumerOptions;
  private readonly logger: Logger;
  private readonly group: GroupState;
  private state: 'new' | 'connected' | 'running' | 'closed' = 'new';
  private autoCommit = false;
  private assigned: TopicPartitionOffset[] = [];
  private assignedGeneration = -1;
  private syncedGeneration = -1;
  private cursors = new Map<string, PartitionCursor>();
  private readonly pendingSeeks = new Map<string, TopicPartitionOffset>();
  private readonly paused = new Set<string>();
  private nextIndex = 0;
  private loopDone: Promise<void> | undefined;

  private readonly onClosed: (client: object) => void;

  constructor(cluster: MemoryCluster, options: ConsumerOptions, logger: Logger, onClosed: (client: object) => void = () => undefined) {
    this.cluster = cluster;
    this.onClosed = onClosed;
    this.options = options;
    this.logger = logger.child({ groupId: options.groupId });
    this.group = cluster.group(options.groupId);
  }

  private get label(): string {
    return `consumer of group ${this.options.groupId}`;
  }

  private ensure(what: string, ...states: MemoryConsumer['state'][]): void {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: the consumer is closed`);
    if (!states.includes(this.state)) throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: the consumer is ${this.state}, expected ${states.join(' or ')}`);
  }

  async connect(): Promise<void> {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label} is closed`);
    if (this.state === 'new') this.state = 'connected';
  }

  async subscribe(topics: string[]): Promise<void> {
    this.ensure('subscribe', 'connected');
    for (const t of topics) this.cluster.topic(t);
    this.subscriptions = [...new Set([...this.subscriptions, ...topics])];
  }

  /** Called by the cluster on every rebalance of the group. */
  assign(generation: number, assigned: TopicPartitionOffset[]): void {
    this.assignedGeneration = generation;
    this.assigned = assigned;
  }

  private onPosition: RunOptions['onPosition'];

  async run(options: RunOptions): Promise<void> {
    this.ensure('run', 'connected');
    if (this.subscriptions.length === 0) throw new FedStreamError('TRANSPORT_TOPIC', `${this.label}: run() before subscribe()`);
    this.state = 'running';
    this.autoCommit = options.autoCommit ?? false;
    this.group.members.push(this);
    this.cluster.rebalance(this.group);
    this.sync();
    this.onPosition = options.onPosition;
    this.loopDone = this.loop(options.eachBatch);
  }

  /** Takes the assignment of the current generation: positions restart from the committed offsets. */
  private sync(): void {
    if (this.autoCommit) this.commitResolved();
    const cursors = new Map<string, PartitionCursor>();
    for (const { topic, partition } of this.assigned) {
      const log = this.cluster.topics.get(topic)?.partitions[partition];
      if (!log) continue;
      const committed = this.group.committed.get(tpKey(topic, partition));
      const reset = (this.options.fromBeginning ?? true) ? 0 : this.readCommitted ? log.lastStable() : log.end;
      cursors.set(tpKey(topic, partition), { topic, partition, position: committed ?? reset, dirty: false });
    }
    this.cursors = cursors;
    this.syncedGeneration = this.assignedGeneration;
    this.applySeeks();
  }

  private get readCommitted(): boolean {
    return this.options.readCommitted ?? true;
  }

  private applySeeks(): void {
    for (const [key, seek] of this.pendingSeeks) {
      const cursor = this.cursors.get(key);
      if (!cursor) continue;
      this.pendingSeeks.delete(key);
      cursor.position = Number(seek.offset);
      if (this.autoCommit) this.cluster.commit(this.options.groupId, [seek]);
    }
  }

  private commitResolved(): void {
    const offsets: TopicPartitionOffset[] = [];
    for (const c of this.cursors.values()) {
      if (!c.dirty) continue;
      c.dirty = false;
      offsets.push({ topic: c.topic, partition: c.partition, offset: String(c.position) });
    }
    if (offsets.length > 0) this.cluster.commit(this.options.groupId, offsets);
  }

  /**
   * The next batch to deliver, round-robin over the assigned partitions. Skips (and steps over) transaction
   * markers and, for read_committed, aborted records; stops at the last stable offset for read_committed.
   */
  private nextBatch(): Batch | undefined {
    const cursors = [...this.cursors.values()];
    const maxBytes = this.options.maxBytesPerPartition ?? DEFAULT_MAX_BYTES_PER_PARTITION;
    for (let i = 0; i < cursors.length; i++) {
      const index = (this.nextIndex + i) % cursors.length;
      const cursor = cursors[index]!;
      if (this.paused.has(cursor.topic)) continue;
      const log = this.cluster.topics.get(cursor.topic)?.partitions[cursor.partition];
      if (!log) continue;
      const limit = this.readCommitted ? log.lastStable() : log.end;
      const messages: TransportMessage[] = [];
      let bytes = 0;
      let offset = cursor.position;
      for (; offset < limit; offset++) {
        const r = log.records[offset]!;
        if (r.control || (this.readCommitted && r.txn?.status === 'aborted')) continue;
        if (messages.length > 0 && bytes + r.size > maxBytes) break;
        bytes += r.size;
        messages.push({
          topic: cursor.topic,
          partition: cursor.partition,
          offset: String(r.offset),
          key: r.key,
          value: r.value,
          headers: { ...r.headers },
          timestamp: r.timestamp,
        });
      }
      if (messages.length === 0) {
        // Only markers or aborted records: step over them, as kafkajs resolves such batches itself.
        if (offset > cursor.position) {
          cursor.position = offset;
          cursor.dirty = true;
          this.onPosition?.({ topic: cursor.topic, partition: cursor.partition, nextOffset: String(offset), highWatermark: String(log.end) });
        }
        continue;
      }
      this.nextIndex = index + 1;
      return { topic: cursor.topic, partition: cursor.partition, messages, highWatermark: String(log.end) };
    }
    return undefined;
  }

  private async loop(eachBatch: RunOptions['eachBatch']): Promise<void> {
    while (this.state === 'running') {
      if (this.syncedGeneration !== this.assignedGeneration) this.sync();
      this.applySeeks();
      const batch = this.nextBatch();
      if (this.autoCommit) this.commitResolved();
      if (!batch) {
        // Nothing to read: sleep until something changes. Nothing can change between nextBatch() and here.
        await this.cluster.changed();
        continue;
      }
      await this.deliver(batch, eachBatch);
      await yieldToEventLoop();
    }
  }

  private async deliver(batch: Batch, eachBatch: RunOptions['eachBatch']): Promise<void> {
    const key = tpKey(batch.topic, batch.partition);
    const cursor = this.cursors.get(key)!;
    const generation = this.syncedGeneration;
    const first = Number(batch.messages[0]!.offset);
    const last = Number(batch.messages[batch.messages.length - 1]!.offset);
    const before = cursor.position;
    const ctx: EachBatchContext = {
      resolveOffset: (offset: string) => {
        const next = Number(offset) + 1;
        if (this.syncedGeneration !== generation || this.cursors.get(key) !== cursor) return;
        if (next > cursor.position && Number(offset) >= first - 1 && Number(offset) <= last) {
          cursor.position = next;
          cursor.dirty = true;
        }
      },
      heartbeat: async () => undefined,
      isRunning: () => this.state === 'running' && this.assignedGeneration === generation && !this.pendingSeeks.has(key),
    };
    try {
      await insideBatchOf.run(this, () => eachBatch(batch, ctx));
    } catch (err) {
      // As kafkajs: commit what was resolved (autoCommit), then restart from the committed offsets after a pause.
      this.logger.error({ err, topic: batch.topic, partition: batch.partition }, 'eachBatch failed; redelivering from the committed offsets');
      if (this.autoCommit) this.commitResolved();
      this.syncedGeneration = -1;
      await sleep(ERROR_BACKOFF_MS);
      return;
    }
    if (this.autoCommit) this.commitResolved();
    this.onPosition?.({ topic: batch.topic, partition: batch.partition, nextOffset: String(cursor.position), highWatermark: batch.highWatermark });
    if (cursor.position === before && !this.pendingSeeks.has(key)) {
      // Nothing resolved: the batch comes again (eachBatchAutoResolve is off), but not in a hot loop.
      await sleep(NO_PROGRESS_BACKOFF_MS);
    }
  }

  async commitOffsets(offsets: TopicPartitionOffset[]): Promise<void> {
    this.ensure('commitOffsets', 'running');
    this.cluster.commit(this.options.groupId, offsets);
  }

  seek(tp: TopicPartitionOffset): void {
    this.ensure('seek', 'running');
    this.pendingSeeks.set(tpKey(tp.topic, tp.partition), { ...tp });
    this.cluster.notify();
  }

  pause(topics: string[]): void {
    this.ensure('pause', 'running');
    for (const t of topics) this.paused.add(t);
  }

  resume(topics: string[]): void {
    this.ensure('resume', 'running');
    for (const t of topics) this.paused.delete(t);
    this.cluster.notify();
  }

  async disconnect(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    this.onClosed(this);
    if (!wasRunning) return;
    this.cluster.notify();
    // Called from the consumer's own eachBatch: the loop ends when that batch returns; waiting here would deadlock.
    if (insideBatchOf.getStore() !== this) await this.loopDone;
    if (this.autoCommit) this.commitResolved();
    const i = this.group.members.indexOf(this);
    if (i >= 0) this.group.members.splice(i, 1);
    this.cluster.rebalance(this.group);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// admin

class MemoryAdmin implements Admin {
  private readonly cluster: MemoryCluster;
  private readonly onClosed: (client: object) => void;
  private closed = false;

  constructor(cluster: MemoryCluster, onClosed: (client: object) => void = () => undefined) {
    this.cluster = cluster;
    this.onClosed = onClosed;
  }

  private check(what: string): void {
    if (this.closed) throw new FedStreamError('TRANSPORT_CLOSED', `admin: ${what}: the admin client is closed`);
  }

  async createTopics(topics: TopicSpec[]): Promise<string[]> {
    this.check('createTopics');
    for (const spec of topics) {
      if (!TOPIC_NAME.test(spec.topic) || spec.topic === '.' || spec.topic === '..') {
        throw topicError(`admin: create topic ${JSON.stringify(spec.topic)}: a topic name is 1-249 characters of [a-zA-Z0-9._-]`, { topic: spec.topic, kafkaType: 'INVALID_TOPIC_EXCEPTION' });
      }
      const n = spec.numPartitions ?? 1;
      if (!Number.isInteger(n) || (n < 1 && n !== -1)) throw topicError(`admin: create topic ${spec.topic}: numPartitions must be a positive integer, got ${n}`, { topic: spec.topic, kafkaType: 'INVALID_PARTITIONS' });
      for (const name of Object.keys(spec.configs ?? {})) {
        if (!TOPIC_CONFIGS.has(name)) throw topicError(`admin: create topic ${spec.topic}: unknown topic config ${name}`, { topic: spec.topic, kafkaType: 'INVALID_CONFIG' });
      }
    }
    const created: string[] = [];
    for (const spec of topics) {
      if (this.cluster.topics.has(spec.topic)) continue;
      const n = spec.numPartitions === undefined || spec.numPartitions === -1 ? 1 : spec.numPartitions;
      this.cluster.topics.set(spec.topic, new TopicState(spec.topic, n, { ...spec.configs }));
      created.push(spec.topic);
    }
    if (created.length > 0) this.cluster.notify();
    return created;
  }

  async deleteTopics(topics: string[]): Promise<void> {
    this.check('deleteTopics');
    const gone = topics.filter((t) => this.cluster.topics.delete(t));
    if (gone.length === 0) return;
    for (const group of this.cluster.groups.values()) {
      if (group.members.some((m) => m.subscriptions.some((s) => gone.includes(s)))) this.cluster.rebalance(group);
    }
    this.cluster.notify();
  }

  async listTopics(): Promise<string[]> {
    this.check('listTopics');
    return [...this.cluster.topics.keys()].sort();
  }

  async describeTopic(topic: string): Promise<TopicDescription> {
    this.check('describeTopic');
    const t = this.cluster.topic(topic);
    return { topic, partitions: t.partitions.length, configs: { ...t.configs } };
  }

  async fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.check('fetchTopicOffsets');
    // As kafkajs' admin, which lists offsets with isolation level read_committed: high is the last stable offset.
    return this.cluster.topic(topic).partitions.map((log, partition) => ({ partition, low: '0', high: String(log.lastStable()) }));
  }

  async fetchCommittedOffsets(groupId: string, topic: string): Promise<TopicPartitionOffset[]> {
    this.check('fetchCommittedOffsets');
    const t = this.cluster.topic(topic);
    const committed = this.cluster.groups.get(groupId)?.committed;
    return t.partitions.map((_, partition) => ({ topic, partition, offset: String(committed?.get(tpKey(topic, partition)) ?? -1) }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// transport

export interface MemoryTransportOptions {
  /** The cluster to attach to; a new, empty one by default. */
  cluster?: MemoryCluster;
  logger?: Logger;
}

class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly cluster: MemoryCluster;
  private readonly logger: Logger;
  private readonly clients = new Map<object, () => Promise<void>>();
  private closed = false;

  constructor(options: MemoryTransportOptions) {
    this.cluster = options.cluster ?? new MemoryCluster();
    this.logger = (options.logger ?? rootLogger()).child({ component: 'transport', transport: 'memory' });
  }

  private ensureOpen(): void {
    if (this.closed) throw new FedStreamError('TRANSPORT_CLOSED', 'memory transport is closed');
  }

  /** Clients close with the transport; one closed on its own is forgotten. */
  private forget = (client: object): void => {
    this.clients.delete(client);
  };

  admin(): Admin {
    this.ensureOpen();
    const admin = new MemoryAdmin(this.cluster, this.forget);
    this.clients.set(admin, () => admin.close());
    return admin;
  }

  producer(options: ProducerOptions = {}): Producer {
    this.ensureOpen();
    const producer = new MemoryProducer(this.cluster, options, this.forget);
    this.clients.set(producer, () => producer.disconnect());
    return producer;
  }

  consumer(options: ConsumerOptions): Consumer {
    this.ensureOpen();
    const consumer = new MemoryConsumer(this.cluster, options, this.logger, this.forget);
    this.clients.set(consumer, () => consumer.disconnect());
    return consumer;
  }

  async health(): Promise<HealthResult> {
    if (this.closed) return { success: false, detail: 'memory transport is closed' };
    return { success: true, detail: `in-memory transport: ${this.cluster.topics.size} topic(s), ${this.cluster.groups.size} consumer group(s)` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((close) => close()));
  }
}

/** An in-memory transport; pass `cluster` to share one log between several transports in a process. */
export function createMemoryTransport(options: MemoryTransportOptions = {}): Transport & { readonly cluster: MemoryCluster } {
  return new MemoryTransport(options);
}
