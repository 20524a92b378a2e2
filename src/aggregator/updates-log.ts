/**
 * The aggregator's side of the updates topic: the consumer (read-committed, manual commits), where it stands in each
 * partition, whether it is still re-reading what it had not consumed before a restart, and the offsets to commit
 * with a round's transaction.
 */
import type { Consumer, TopicPartitionOffset, Transport, TransportMessage } from '../transport/index.ts';
import type { Limits } from '../config/index.ts';
import { PayloadReader } from '../protocol/index.ts';
import { AGGREGATOR_SESSION_TIMEOUT_MS } from './ownership.ts';

export interface FollowOptions {
  groupId: string;
  /** Called for each message in log order (the caller serialises it with its other work). */
  onMessage: (msg: TransportMessage) => Promise<void>;
  /** Called when a partition has been read up to its high watermark. */
  onCaughtUp: () => Promise<void>;
  /** True once nothing more should be read. */
  stopped: () => boolean;
  /** Called when the group rebalances because another member joined or left (see RunOptions.onRebalance). */
  onRebalance?: () => void;
}

export class UpdatesLog {
  /** Reassembles chunked payloads, within the pipeline's limits. */
  readonly reader: PayloadReader;
  /** Next offset to commit per partition (last consumed + 1). */
  private readonly consumed = new Map<number, bigint>();
  /** Partitions not yet read up to the end they had at start. */
  private readonly behind = new Map<number, bigint>();
  private consumer?: Consumer;

  /** `limits`: the manifest's, which bound reassembly; `now` replaces the clock of its expiry in tests. */
  constructor(private readonly t: Transport, readonly topic: string, limits: Limits, now?: () => number) {
    this.reader = new PayloadReader(limits, now);
  }

  /** True while partitions are not yet read up to the end they had when `follow` began (rounds.ts, RECOVERING). */
  get catchingUp(): boolean {
    return this.behind.size > 0;
  }

  /** Notes the ends of the partitions, then consumes from the group's committed offsets. */
  async follow(o: FollowOptions): Promise<void> {
    const admin = this.t.admin();
    try {
      for (const p of await admin.fetchTopicOffsets(this.topic)) {
        if (BigInt(p.high) > BigInt(p.low)) this.behind.set(p.partition, BigInt(p.high));
      }
    } finally {
      await admin.close();
    }
    // A short session: after a crash, the group waits this long for the dead member before the new one takes over.
    this.consumer = this.t.consumer({ groupId: o.groupId, readCommitted: true, fromBeginning: true, sessionTimeoutMs: AGGREGATOR_SESSION_TIMEOUT_MS });
    await this.consumer.connect();
    await this.consumer.subscribe([this.topic]);
    await this.consumer.run({
      autoCommit: false,
      onPosition: (p) => this.reached(p.partition, BigInt(p.nextOffset)),
      ...(o.onRebalance ? { onRebalance: o.onRebalance } : {}),
      eachBatch: async (batch, ctx) => {
        let next: bigint | undefined;
        for (const msg of batch.messages) {
          if (o.stopped() || !ctx.isRunning()) break;
          await o.onMessage(msg);
          // Resolving moves the fetch position only; offsets commit in the round's transaction.
          ctx.resolveOffset(msg.offset);
          next = BigInt(msg.offset) + 1n;
          await ctx.heartbeat();
        }
        if (next !== undefined && next >= BigInt(batch.highWatermark)) await o.onCaughtUp();
      },
    });
  }

  /** Records that `msg` was consumed (call first thing for every message). */
  consumedMessage(msg: TransportMessage): void {
    const next = BigInt(msg.offset) + 1n;
    this.consumed.set(msg.partition, next);
    this.reached(msg.partition, next);
  }

  private reached(partition: number, next: bigint): void {
    const end = this.behind.get(partition);
    if (end !== undefined && next >= end) this.behind.delete(partition);
  }

  /** Offsets to commit: past everything consumed, except incomplete chunked payloads, which must be read again after a crash. */
  offsetsToCommit(): TopicPartitionOffset[] {
    return [...this.consumed].map(([partition, next]) => {
      const low = this.reader.pendingLowWatermark(this.topic, partition);
      const offset = low !== undefined && low < next ? low : next;
      return { topic: this.topic, partition, offset: offset.toString() };
    });
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
