/**
 * Which nodes are alive: the HEARTBEAT events nodes send to the telemetry topic (every `--heartbeat-ms`, 5 s by
 * default) read back, from the offsets of `windowMs` ago (Kafka's offsets by time) so that a reader never scans the
 * topic's whole retention. A node is alive while its last heartbeat is younger than the window. Used by
 * `fedstream status` (one read) and by the aggregator when `rounds.targetAliveNodes` is on (a follower).
 *
 * Telemetry is not signed (docs/security.md): a forged heartbeat can make a node look alive. The aggregator only
 * ever lowers a round's target with this (never below `rounds.minUpdates`), so a forger can at most restore the
 * manifest's target.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { TelemetryEventRecord } from '../codec/index.ts';
import type { Manifest } from '../config/index.ts';
import type { Consumer, Transport, TransportMessage } from '../transport/index.ts';
import { readToEnd } from './log.ts';
import { PayloadReader, decode } from './wire.ts';

/** The last heartbeat of a node. */
export interface Heartbeat {
  nodeId: string;
  /** The node's clock, ms since the epoch. */
  at: number;
  /** The node's state label (`idle`, `training`, ...), when it sent one. */
  state?: string;
  roundsTrained?: number;
}

/** Default freshness window: three of the default heartbeat intervals (5 s). */
export const DEFAULT_ALIVE_WINDOW_MS = 15_000;

/** Keeps each node's latest heartbeat from a stream of telemetry messages of one pipeline. */
export class HeartbeatBook {
  private readonly last = new Map<string, Heartbeat>();
  private readonly reader: PayloadReader;

  constructor(private readonly m: Pick<Manifest, 'tenant' | 'name' | 'limits'>, private readonly log?: Logger) {
    this.reader = new PayloadReader(m.limits);
  }

  accept(msg: TransportMessage): void {
    const got = this.reader.accept(msg);
    if (!got.payload) return;
    let e: TelemetryEventRecord;
    try {
      e = decode('TelemetryEvent', got.payload.bytes);
    } catch (err) {
      this.log?.debug({ err, offset: msg.offset }, 'unreadable telemetry record; ignored for liveness');
      return;
    }
    if (e.tenant !== this.m.tenant || e.pipeline !== this.m.name || e.kind !== 'HEARTBEAT') return;
    const at = Number(e.eventTime);
    const prev = this.last.get(e.nodeId);
    if (prev && prev.at >= at) return;
    const rounds = e.metrics.roundsTrained;
    this.last.set(e.nodeId, { nodeId: e.nodeId, at, ...(e.labels.state ? { state: e.labels.state } : {}), ...(rounds === undefined ? {} : { roundsTrained: rounds }) });
  }

  /** Every node heard from, latest heartbeat first. */
  all(): Heartbeat[] {
    return [...this.last.values()].sort((a, b) => b.at - a.at);
  }

  /** Node ids whose last heartbeat is at most `windowMs` old at `now`, sorted naturally (node-2 before node-10). */
  alive(now: number, windowMs: number): string[] {
    return [...this.last.values()].filter((h) => now - h.at <= windowMs).map((h) => h.nodeId).sort(naturalCompare);
  }
}

/** `node-2` before `node-10`. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

async function offsetsAt(t: Transport, topic: string, since: number): Promise<Map<number, bigint>> {
  const admin = t.admin();
  try {
    return new Map((await admin.fetchOffsetsAtTime(topic, since)).map((o) => [o.partition, BigInt(o.offset)]));
  } finally {
    await admin.close();
  }
}

/** The heartbeats in `topic` (a pipeline's telemetry topic) of the last `windowMs`, read once to the topic's end. */
export async function readHeartbeats(t: Transport, m: Pick<Manifest, 'tenant' | 'name' | 'limits'>, topic: string, windowMs: number, now = Date.now()): Promise<HeartbeatBook> {
  const book = new HeartbeatBook(m);
  await readToEnd(t, topic, (msg) => book.accept(msg), { from: await offsetsAt(t, topic, now - windowMs) });
  return book;
}

/**
 * Follows the telemetry topic from `windowMs` ago, for as long as it runs: `book` always holds the latest heartbeat
 * per node.
 */
export class HeartbeatFollower {
  readonly book: HeartbeatBook;
  private consumer: Consumer | undefined;

  constructor(private readonly t: Transport, m: Pick<Manifest, 'tenant' | 'name' | 'limits'>, private readonly topic: string, private readonly windowMs: number, private readonly log: Logger) {
    this.book = new HeartbeatBook(m, log);
  }

  /**
   * Starts following and resolves once the heartbeats already in the topic (from `windowMs` ago to its end when
   * called) are read, or after `catchUpMs` (a slow broker must not hold a round back for long).
   */
  async start(catchUpMs = 10_000): Promise<void> {
    const from = await offsetsAt(this.t, this.topic, Date.now() - this.windowMs);
    const admin = this.t.admin();
    let ends: Map<number, bigint>;
    try {
      ends = new Map((await admin.fetchTopicOffsets(this.topic)).map((o) => [o.partition, BigInt(o.high)]));
    } finally {
      await admin.close();
    }
    const behind = new Set([...ends].filter(([p, high]) => (from.get(p) ?? 0n) < high).map(([p]) => p));
    let caughtUp!: () => void;
    const done = new Promise<void>((resolve) => { caughtUp = resolve; });
    const reached = (partition: number, next: bigint): void => {
      if (next >= (ends.get(partition) ?? 0n) && behind.delete(partition) && behind.size === 0) caughtUp();
    };
    if (behind.size === 0) caughtUp();
    // A throwaway group under the topic's name (covered by the tenant's ACLs, as readToEnd's); nothing is committed.
    const consumer = this.t.consumer({ groupId: `${this.topic}.liveness.${randomUUID()}`, readCommitted: true, fromBeginning: false });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe([this.topic]);
    await consumer.run({
      eachBatch: async (batch) => {
        for (const m of batch.messages) {
          this.book.accept(m);
          reached(batch.partition, BigInt(m.offset) + 1n);
        }
      },
      onPosition: (p) => { if (p.topic === this.topic) reached(p.partition, BigInt(p.nextOffset)); },
    });
    for (const [partition, offset] of from) consumer.seek({ topic: this.topic, partition, offset: String(offset) });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => { timer = setTimeout(resolve, catchUpMs); })]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    const c = this.consumer;
    this.consumer = undefined;
    await c?.disconnect().catch((err: unknown) => this.log.warn({ err }, 'closing the heartbeat follower failed'));
  }
}
