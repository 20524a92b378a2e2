/**
 * Reads accepted updates again from the updates topic, by their position (partition, offset of the first chunk).
 * The robust strategies use it beyond their memory budget (strategies/spill.ts): the Kafka log already holds every
 * update of the round, so instead of keeping them in memory the aggregator reads them once per block of coordinates.
 *
 * Each call is one pass: a consumer of a fresh group (read-committed, as the aggregator's own) is moved to the first
 * wanted offset of each partition, reassembles payloads (chunked ones too) and hands over each wanted payload once,
 * in log order per partition. Nothing is committed. Positions of another round, rejected updates and foreign records
 * in between are read and ignored.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { FedStreamError } from '../common/index.ts';
import type { Limits } from '../config/index.ts';
import { PayloadReader, type Payload } from '../protocol/index.ts';
import type { Transport } from '../transport/index.ts';

/** Where a payload starts in the updates topic. */
export interface LogPosition {
  partition: number;
  /** Offset of the payload's first chunk (a decimal string, as Kafka's). */
  offset: string;
}

export interface UpdateLogReader {
  /** One pass: calls `each(i, payload)` once for every `at[i]`; rejects with TRANSPORT_TIMEOUT naming what is missing. */
  read(at: readonly LogPosition[], each: (index: number, payload: Payload) => void): Promise<void>;
}

/** Reads of `topic` within `limits` (those of reassembly); a pass that takes longer than `timeoutMs` fails. */
export function updatesLogReader(t: Transport, topic: string, limits: Limits, log: Logger, timeoutMs = 300_000): UpdateLogReader {
  return {
    async read(at, each) {
      const wanted = new Map<string, number>();
      const start = new Map<number, bigint>();
      at.forEach((p, i) => {
        wanted.set(`${p.partition}@${p.offset}`, i);
        const o = BigInt(p.offset);
        const s = start.get(p.partition);
        if (s === undefined || o < s) start.set(p.partition, o);
      });
      if (wanted.size === 0) return;
      const admin = t.admin();
      let ends: Array<{ partition: number; high: string }>;
      try {
        ends = await admin.fetchTopicOffsets(topic);
      } finally {
        await admin.close();
      }
      const reader = new PayloadReader(limits);
      // Next offset to process per partition: a batch fetched before the seek took effect is skipped where it repeats.
      const next = new Map(start);
      const consumer = t.consumer({ groupId: `${topic}.reread.${randomUUID()}`, readCommitted: true, fromBeginning: true });
      let finish!: () => void;
      let fail!: (e: unknown) => void;
      const done = new Promise<void>((resolve, reject) => { finish = resolve; fail = reject; });
      const missing = () => [...wanted.keys()].join(', ');
      const timer = setTimeout(() => fail(new FedStreamError('TRANSPORT_TIMEOUT', `re-reading ${wanted.size} updates from ${topic} took more than ${timeoutMs} ms (not found: ${missing()})`, { details: { topic } })), timeoutMs);
      const t0 = Date.now();
      try {
        await consumer.connect();
        await consumer.subscribe([topic]);
        await consumer.run({
          eachBatch: async (batch, ctx) => {
            log.trace({ partition: batch.partition, first: batch.messages[0]?.offset, messages: batch.messages.length, wanted: wanted.size }, 're-read batch');
            for (const m of batch.messages) {
              if (wanted.size === 0 || !ctx.isRunning()) break;
              // The fetch position moves only with resolved offsets (transport/kafka/consumer.ts).
              ctx.resolveOffset(m.offset);
              const from = next.get(batch.partition);
              if (from === undefined || BigInt(m.offset) < from) continue;
              next.set(batch.partition, BigInt(m.offset) + 1n);
              const got = reader.accept(m);
              const p = got.payload;
              if (!p) continue;
              const key = `${p.partition}@${p.firstOffset}`;
              const i = wanted.get(key);
              if (i === undefined) continue;
              wanted.delete(key);
              try {
                each(i, p);
              } catch (err) {
                // The caller's refusal (an update that is not the one folded) ends the pass with its own error.
                fail(err);
                return;
              }
            }
            if (wanted.size === 0) finish();
          },
        });
        log.trace({ start: [...start].map(([p, o]) => `${p}@${o}`) }, 're-read consumer running; seeking');
        for (const e of ends) {
          const s = start.get(e.partition);
          consumer.seek({ topic, partition: e.partition, offset: (s ?? BigInt(e.high)).toString() });
        }
        await done;
        log.debug({ topic, updates: at.length, ms: Date.now() - t0 }, 'updates re-read from the log');
      } finally {
        clearTimeout(timer);
        await consumer.disconnect().catch(() => undefined);
      }
    },
  };
}
