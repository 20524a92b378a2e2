/** The in-memory consumer: group membership, rebalances, fetch positions, pause/seek, and the batch loop. */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { FedStreamError, type Logger } from '../../common/index.ts';
import { tpKey, type GroupState, type MemoryCluster } from './cluster.ts';
import type {
  Batch,
  Consumer,
  ConsumerOptions,
  EachBatchContext,
  RunOptions,
  TopicPartitionOffset,
  TransportMessage,
} from '../types.ts';

const DEFAULT_MAX_BYTES_PER_PARTITION = 1_048_576;
const ERROR_BACKOFF_MS = 100;
const NO_PROGRESS_BACKOFF_MS = 50;


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

export class MemoryConsumer implements Consumer {
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
    const onRebalance = this.onRebalance;
    if (onRebalance && this.state === 'running') queueMicrotask(onRebalance);
  }

  private onPosition: RunOptions['onPosition'];
  private onRebalance: RunOptions['onRebalance'];

  async run(options: RunOptions): Promise<void> {
    this.ensure('run', 'connected');
    if (this.subscriptions.length === 0) throw new FedStreamError('TRANSPORT_TOPIC', `${this.label}: run() before subscribe()`);
    this.state = 'running';
    this.autoCommit = options.autoCommit ?? false;
    this.group.members.push(this);
    this.cluster.rebalance(this.group);
    this.sync();
    this.onPosition = options.onPosition;
    // After its own join: a member is told of the rebalances that others cause.
    this.onRebalance = options.onRebalance;
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
