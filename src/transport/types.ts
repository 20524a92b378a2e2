/**
 * The transport port. Two adapters implement it: Kafka (kafkajs, `kafka.ts`) and an in-memory
 * log (`memory.ts`) with the same semantics the pipeline relies on: ordered partitions, keys,
 * offsets, consumer groups with committed offsets, idempotent producers, and transactions whose
 * messages and offset commits become visible to read_committed readers all at once or not at all.
 *
 * Offsets are decimal strings, as in kafkajs, because Kafka offsets are 64-bit.
 */

export type Headers = Record<string, string | Buffer>;

export interface ProducerRecord {
  topic: string;
  key?: string | Buffer | null;
  value: Buffer | null;
  headers?: Headers;
  /** Explicit partition; otherwise chosen by key hash (murmur2, as Kafka's default partitioner) or round-robin. */
  partition?: number;
  timestamp?: number;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  /** Offset of the first record of this send on that partition (may be absent inside a transaction). */
  baseOffset?: string;
}

export interface TransportMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  /** Milliseconds since the epoch (create time). */
  timestamp: number;
}

export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  /** The offset of the next message to read (last processed + 1), as in Kafka commits. */
  offset: string;
}

export interface TopicSpec {
  topic: string;
  numPartitions?: number;
  replicationFactor?: number;
  /** Kafka topic configs, e.g. { 'retention.ms': '-1', 'cleanup.policy': 'delete' }. */
  configs?: Record<string, string>;
}

export interface PartitionOffsets {
  partition: number;
  /** First offset still in the log. */
  low: string;
  /** Offset the next appended message will get (the log end offset, or the last stable offset for read_committed). */
  high: string;
}

export interface TopicDescription {
  topic: string;
  /** Number of partitions. */
  partitions: number;
  /** The configs set on the topic itself (overrides of the broker defaults), e.g. { 'retention.ms': '-1' }. */
  configs: Record<string, string>;
}

/** A member of a consumer group, as the group coordinator describes it. */
export interface ConsumerGroupMember {
  memberId: string;
  /** The client id the member's client connected with (FedStream: `<tenant>.<pipeline>.<role>`). */
  clientId: string;
  /** The member's address as the broker sees it, e.g. `/10.0.0.7`. */
  clientHost: string;
}

export interface GroupDescription {
  groupId: string;
  /** Kafka's group state: `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance` or `Dead` (never used). */
  state: string;
  /** Members with a live session (a crashed member stays until its session timeout expires). */
  members: ConsumerGroupMember[];
}

export interface Admin {
  /** Creates the topics that do not exist yet; returns the names it created. Existing topics are left as they are. */
  createTopics(topics: TopicSpec[]): Promise<string[]>;
  deleteTopics(topics: string[]): Promise<void>;
  listTopics(): Promise<string[]>;
  /** Partition count and topic-level configs; fails with TRANSPORT_TOPIC when the topic does not exist. */
  describeTopic(topic: string): Promise<TopicDescription>;
  fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** Committed offsets of a group for a topic; -1 where nothing is committed. */
  fetchCommittedOffsets(groupId: string, topic: string): Promise<TopicPartitionOffset[]>;
  /**
   * Per partition, the offset of the first record whose timestamp is at or after `timestampMs` (Kafka's ListOffsets
   * by time), or the partition's end when there is none: where to start reading "the last N seconds" of a topic.
   */
  fetchOffsetsAtTime(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]>;
  /** The group's state and members (a group nobody ever joined is `Dead` with no members). */
  describeGroup(groupId: string): Promise<GroupDescription>;
  close(): Promise<void>;
}

export interface Transaction {
  send(records: ProducerRecord[]): Promise<RecordMetadata[]>;
  /** Commits a consumer group's offsets as part of this transaction (Kafka's sendOffsetsToTransaction). */
  sendOffsets(groupId: string, offsets: TopicPartitionOffset[]): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface ProducerOptions {
  /** Enables transactions. One open transaction per producer at a time. Two producers with the same id fence each other. */
  transactionalId?: string;
  /** Idempotent delivery (default true): retries never duplicate. */
  idempotent?: boolean;
  /** Time a transaction may stay open before the broker aborts it. */
  transactionTimeoutMs?: number;
}

export interface Producer {
  connect(): Promise<void>;
  /** Sends and waits for the acknowledgement of all in-sync replicas. Concurrent calls are serialized. */
  send(records: ProducerRecord[]): Promise<RecordMetadata[]>;
  transaction(): Promise<Transaction>;
  /**
   * Transactional producers only: asks the transaction coordinator whether this producer still owns its
   * transactionalId, writing no record (Kafka: an empty transaction with `groupId`'s offsets, aborted; the
   * principal needs READ on that group, as for `sendOffsets`). Throws TRANSPORT_FENCED when a newer producer with
   * the same id fenced this one; every later call then fails the same way.
   */
  checkFenced(groupId: string): Promise<void>;
  disconnect(): Promise<void>;
}

export interface ConsumerOptions {
  groupId: string;
  /** Only see messages of committed transactions (default true). */
  readCommitted?: boolean;
  /** Where a group with no committed offset starts (default true: earliest). */
  fromBeginning?: boolean;
  /** Most bytes fetched per partition per request. */
  maxBytesPerPartition?: number;
  sessionTimeoutMs?: number;
}

export interface Batch {
  topic: string;
  partition: number;
  messages: TransportMessage[];
  /** High watermark of the partition when the batch was fetched. */
  highWatermark: string;
}

export interface EachBatchContext {
  /** Marks an offset as processed; committed by the next auto-commit or `commitOffsets`. */
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
  /** True when the consumer is stopping or rebalancing: stop processing the batch early. */
  isRunning(): boolean;
}

export interface RunOptions {
  eachBatch: (batch: Batch, ctx: EachBatchContext) => Promise<void>;
  /** Commit resolved offsets periodically (default false: the caller commits, e.g. in a transaction). */
  autoCommit?: boolean;
  /**
   * Called after every fetch of a partition, also when all its records were filtered out (transaction
   * markers, aborted records), with the offset the consumer will read next. This is how a reader knows
   * it has caught up with a transactional topic, where the last offsets are markers no reader sees.
   */
  onPosition?: (position: { topic: string; partition: number; nextOffset: string; highWatermark: string }) => void;
  /**
   * Called when the group coordinator tells this member that the group rebalances (a member joined or left), before
   * it rejoins and gets its new assignment. Kafka tells a member at its next heartbeat (within the heartbeat interval,
   * 3 s at most here). Not called for the member's own first join.
   */
  onRebalance?: () => void;
}

export interface Consumer {
  connect(): Promise<void>;
  subscribe(topics: string[]): Promise<void>;
  /** Starts delivering; returns once the consumer is running. Batches of one partition are delivered in order, one at a time. */
  run(options: RunOptions): Promise<void>;
  commitOffsets(offsets: TopicPartitionOffset[]): Promise<void>;
  /** Moves the fetch position of a partition (after `run`). */
  seek(tp: TopicPartitionOffset): void;
  pause(topics: string[]): void;
  resume(topics: string[]): void;
  disconnect(): Promise<void>;
}

export interface HealthResult {
  success: boolean;
  /** Human-readable detail: broker list, error text. */
  detail: string;
  error?: Error;
}

export interface Transport {
  /** `kafka` or `memory`. */
  readonly kind: string;
  admin(): Admin;
  producer(options?: ProducerOptions): Producer;
  consumer(options: ConsumerOptions): Consumer;
  /** Health is a value, not an exception. */
  health(): Promise<HealthResult>;
  close(): Promise<void>;
}
