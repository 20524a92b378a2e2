/** The in-memory log: topics of partitions, transaction markers, consumer groups and their committed offsets. */
import { FedStreamError } from '../../common/index.ts';
import { partitionForKey } from './partitioner.ts';
import type {
  ProducerRecord,
  RecordMetadata,
  TopicPartitionOffset,
} from '../types.ts';

/** Kafka's `message.max.bytes` default: 1 MiB + 12 bytes of legacy log overhead. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** Size of a record batch header (61 bytes) plus the per-record framing, as the broker counts it. */
const BATCH_OVERHEAD_BYTES = 61 + 21;

/** What the cluster needs of a consumer in a group (the consumer is in consumer.ts). */
export interface GroupMember {
  readonly memberId: string;
  readonly subscriptions: readonly string[];
  /** Called on every rebalance of the group. */
  assign(generation: number, assigned: TopicPartitionOffset[]): void;
}

/** What the cluster needs of a transactional producer (producer.ts): a newer one with its id fences it. */
export interface TransactionalOwner {
  fence(reason: string, code: 'TRANSPORT_FENCED' | 'TRANSPORT_TRANSACTION'): void;
}


export type TxnStatus = 'open' | 'committed' | 'aborted';

export interface TxnMarker {
  status: TxnStatus;
}

export interface StoredRecord {
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

export class PartitionLog {
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

export class TopicState {
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

export const tpKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

export class GroupState {
  readonly id: string;
  readonly committed = new Map<string, number>();
  readonly members: GroupMember[] = [];
  generation = 0;

  constructor(id: string) {
    this.id = id;
  }
}

export function topicError(message: string, details: Record<string, unknown> = {}): FedStreamError {
  // As in Kafka's protocol, an unknown topic or partition is retriable (it may be being created); the rest is not.
  return new FedStreamError('TRANSPORT_TOPIC', message, { details, retriable: details.kafkaType === 'UNKNOWN_TOPIC_OR_PARTITION' });
}

export function toBuffer(v: string | Buffer): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
}

/**
 * The shared in-process "cluster". Several transports (an aggregator and nodes in one process) can share one:
 * whoever composes the process creates it and hands it to each (`createTransport({ memory })`).
 */
export class MemoryCluster {
  readonly topics = new Map<string, TopicState>();
  readonly groups = new Map<string, GroupState>();
  /** The producer currently owning each transactionalId. */
  readonly transactionalOwners = new Map<string, TransactionalOwner>();
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
    const assignments = new Map<GroupMember, TopicPartitionOffset[]>(group.members.map((m) => [m, []]));
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
