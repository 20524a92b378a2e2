/**
 * How far the sink has read, and whether the pipeline is over for it: the positions and high watermarks of
 * its partitions (its lag), whether every partition is read to its end, and a look for FINISH on the control
 * topic for a sink restarted after the pipeline finished.
 */
import type { Logger } from '../../common/index.ts';
import { isControlBehind, readToEnd } from '../../protocol/index.ts';
import type { RoundControlRecord } from '../../codec/index.ts';
import { PayloadReader, decode, verifyRecord, type ParticipantRegistry } from '../../protocol/index.ts';
import type { Limits } from '../../config/index.ts';
import type { Transport } from '../../transport/index.ts';

/** Per topic-partition: next offset to read, last known high watermark, time of the last delivered record. */
export class Positions {
  private readonly map = new Map<string, { next: bigint; high: bigint; deliveredAt: number }>();
  /** When consumption last (re)started: a partition quiet since then counts as read. */
  resumedAt = 0;

  update(topic: string, partition: number, next: bigint, high: bigint, delivered: boolean): void {
    const key = `${topic}/${partition}`;
    const p = this.map.get(key);
    if (!p) {
      this.map.set(key, { next, high, deliveredAt: delivered ? Date.now() : 0 });
      return;
    }
    if (next > p.next) p.next = next;
    if (high > p.high) p.high = high;
    if (delivered) p.deliveredAt = Date.now();
  }

  /** Records behind the high watermarks, as of the last fetch. */
  lag(): number {
    let lag = 0;
    for (const p of this.map.values()) if (p.high > p.next) lag += Number(p.high - p.next);
    return lag;
  }

  /**
   * Every partition of `topics` read to the end it has now. A transactional topic ends with a commit
   * marker no reader receives, so a partition also counts as read when it delivered nothing for
   * `quietMs` although consumption was not paused.
   */
  async drained(transport: Transport, topics: readonly string[], quietMs: number): Promise<boolean> {
    const admin = transport.admin();
    try {
      for (const topic of topics) {
        for (const o of await admin.fetchTopicOffsets(topic)) {
          const high = BigInt(o.high);
          if (high <= BigInt(o.low)) continue;
          const p = this.map.get(`${topic}/${o.partition}`);
          if (p && p.next >= high) continue;
          const lastActivity = Math.max(p?.deliveredAt ?? 0, this.resumedAt);
          if (Date.now() - lastActivity < quietMs) return false;
        }
      }
      return true;
    } finally {
      await admin.close().catch(() => undefined);
    }
  }
}

/**
 * True when the last round control the aggregator signed is FINISH. A sink restarted after the pipeline finished
 * never consumes FINISH again (it was committed); this lets `untilFinished()` still resolve after draining. A FINISH
 * followed by a START is a pipeline that continued (rounds.count raised): not finished. Unreadable records are
 * skipped: the sink itself dead-letters them; so is a record the aggregator did not sign.
 */
export async function finishOnTopic(transport: Transport, controlTopic: string, groupPrefix: string, log: Logger, registry: ParticipantRegistry, limits: Limits): Promise<boolean> {
  let last: RoundControlRecord | undefined;
  // Control records are chunked like any payload when large: reassembled within the manifest's limits first.
  const reader = new PayloadReader(limits);
  try {
    await readToEnd(transport, controlTopic, (msg) => {
      const { payload } = reader.accept(msg);
      if (!payload) return;
      try {
        const c = decode('RoundControl', payload.bytes);
        // A replayed FINISH (signed, but from before the pipeline continued) is behind the START after it.
        if (verifyRecord(registry, 'RoundControl', c, payload.bytes, payload.headers).ok && !isControlBehind(last, c)) last = c;
      } catch {
        // Here it only looks for the last signed control record.
      }
    }, { groupPrefix });
  } catch (err) {
    log.warn({ err }, 'could not scan the control topic for FINISH; waiting to consume it');
    return false;
  }
  return last?.kind === 'FINISH';
}

export interface FinishWatchOptions {
  transport: Transport;
  controlTopic: string;
  sourceTopics: readonly string[];
  groupId: string;
  /** A partition quiet this long although not paused counts as read (see {@link Positions.drained}). */
  quietMs: number;
  positions: Positions;
  log: Logger;
  /** True when nothing is buffered or in flight (and, with `paused` true, consumption not paused). */
  idle: (paused: boolean) => boolean;
  /** For the log line once finished. */
  figures: () => object;
  /** Only a FINISH the aggregator signed counts. */
  registry: ParticipantRegistry;
  /** The manifest's limits, which bound the reassembly of the control topic's chunked records. */
  limits: Limits;
}

/**
 * Finished = FINISH consumed (or found on the control topic), nothing buffered or in flight, and every
 * partition read to the end it has now. Waiters resolve then, or are rejected when the sink stops first.
 */
export class FinishWatch {
  /** A FINISH round control was consumed (or found on the topic). */
  seen = false;
  private readonly o: FinishWatchOptions;
  private readonly waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private drainCheck: Promise<void> | undefined;
  private scan: Promise<void> | undefined;
  private lastDrainCheck = 0;

  constructor(options: FinishWatchOptions) {
    this.o = options;
  }

  /** A batch holding FINISH was written and committed. */
  consumed(): void {
    if (this.seen) return;
    this.seen = true;
    this.o.log.info('the pipeline finished (FINISH consumed)');
  }

  wait(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.scanOnce();
    });
  }

  /** Called on every tick: checks (at most every 200 ms) whether the pipeline is over for the sink. */
  check(): void {
    if (!this.seen || this.waiters.length === 0) return;
    if (this.drainCheck || Date.now() - this.lastDrainCheck < 200 || !this.o.idle(true)) return;
    this.lastDrainCheck = Date.now();
    this.drainCheck = this.o.positions.drained(this.o.transport, this.o.sourceTopics, this.o.quietMs).then((done) => {
      if (!done || !this.o.idle(false)) return;
      this.o.log.info(this.o.figures(), 'pipeline finished and every topic drained');
      for (const w of this.waiters.splice(0)) w.resolve();
    }).catch((err: unknown) => {
      this.o.log.debug({ err }, 'drain check failed; trying again');
    }).finally(() => { this.drainCheck = undefined; });
  }

  rejectWaiters(err: unknown): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private scanOnce(): void {
    if (this.scan || this.seen) return;
    this.scan = finishOnTopic(this.o.transport, this.o.controlTopic, `${this.o.groupId}.finish-scan`, this.o.log, this.o.registry, this.o.limits).then((found) => {
      if (found && !this.seen) {
        this.seen = true;
        this.o.log.info('the pipeline had finished before this sink started (FINISH on the control topic)');
      }
    });
  }
}
