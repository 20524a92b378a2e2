import { randomUUID } from 'node:crypto';
import { FedStreamError } from '../common/index.ts';
import type { Transport, TransportMessage } from '../transport/index.ts';

/**
 * Reads a topic from the beginning up to the end it had when the call started, as a read_committed
 * reader, and returns. Used to rebuild state from the log (the latest model version, the latest
 * round control). The end is known from each fetch's position, because the last offsets of a
 * transactional topic are commit markers that no reader ever receives.
 *
 * Uses a throwaway consumer group and commits nothing. The group is named under the topic
 * (`<tenant>.<pipeline>.<kind>.reader.<uuid>`), so that a tenant's ACLs (protocol/access.ts) cover it.
 */
export async function readToEnd(
  transport: Transport,
  topic: string,
  onMessage: (msg: TransportMessage) => void | Promise<void>,
  { timeoutMs = 60_000, groupPrefix = `${topic}.reader`, from }: {
    timeoutMs?: number;
    groupPrefix?: string;
    /** Where to start per partition (`fetchOffsetsAtTime`, a group's committed offsets); default the beginning. */
    from?: ReadonlyMap<number, bigint>;
  } = {},
): Promise<void> {
  const admin = transport.admin();
  let ends: Map<number, bigint>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    ends = new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.close();
  }
  const start = (partition: number): bigint => from?.get(partition) ?? 0n;
  const remaining = new Set([...ends].filter(([p, high]) => high > 0n && start(p) < high).map(([p]) => p));
  if (remaining.size === 0) return;

  const consumer = transport.consumer({ groupId: `${groupPrefix}.${randomUUID()}`, readCommitted: true, fromBeginning: true });
  await consumer.connect();
  let finish!: () => void;
  let fail!: (e: unknown) => void;
  const done = new Promise<void>((resolve, reject) => { finish = resolve; fail = reject; });
  const timer = setTimeout(() => fail(new FedStreamError('TRANSPORT_TIMEOUT', `reading ${topic} to its end took more than ${timeoutMs} ms (still behind on partitions ${[...remaining].join(',')})`)), timeoutMs);
  const reached = (partition: number, next: bigint) => {
    const end = ends.get(partition);
    if (end !== undefined && next >= end && remaining.delete(partition) && remaining.size === 0) finish();
  };
  try {
    await consumer.subscribe([topic]);
    await consumer.run({
      eachBatch: async (batch, ctx) => {
        for (const m of batch.messages) {
          if (!remaining.has(batch.partition) || !ctx.isRunning()) break;
          const end = ends.get(batch.partition)!;
          if (BigInt(m.offset) >= end) {
            // Past the end: everything before it is read. The end noted at start may be the first offset of a
            // transaction then open (the last stable offset), behind a commit marker; once that transaction commits,
            // the batch after the marker starts at `end`, and this partition is done though nothing here is resolved
            // (the position stays before the marker, so no onPosition reaches `end`: without this, the same batch
            // came again until the timeout).
            reached(batch.partition, BigInt(m.offset));
            break;
          }
          // Before the seek below took effect: not asked for.
          if (BigInt(m.offset) < start(batch.partition)) continue;
          await onMessage(m);
          ctx.resolveOffset(m.offset);
          reached(batch.partition, BigInt(m.offset) + 1n);
        }
      },
      onPosition: (p) => { if (p.topic === topic) reached(p.partition, BigInt(p.nextOffset)); },
    });
    for (const p of remaining) if (start(p) > 0n) consumer.seek({ topic, partition: p, offset: String(start(p)) });
    await done;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}
