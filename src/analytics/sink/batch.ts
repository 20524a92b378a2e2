/**
 * The sink's batches: rows gathered with the Kafka coordinates they came from, cut by rows or age, and
 * inserted with an `insert_deduplication_token` made of the batch's offset ranges and its rows' hash, so
 * that a retried insert of the same batch is dropped by ClickHouse (docs/clickhouse.md, "Deduplication").
 */
import { createHash } from 'node:crypto';
import type { ProducerRecord, TopicPartitionOffset, TransportMessage } from '../../transport/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import { SINK_TABLES, type Row, type RowSource, type SinkTable } from './rows.ts';

/** Where a row came from: for offsets, dead-lettering and poison-row isolation. */
export interface Source extends RowSource {
  key: Buffer | null;
  bytes: Buffer;
}

export interface Entry {
  row: Row;
  source: Source;
}

interface Range {
  topic: string;
  partition: number;
  first: bigint;
  last: bigint;
}

/** A batch being filled, then flushed. */
export class PendingBatch {
  readonly rows = new Map<SinkTable, Entry[]>();
  rowCount = 0;
  messages = 0;
  startedAt = 0;
  readonly ranges = new Map<string, Range>();
  readonly deadLetters: ProducerRecord[] = [];
  /** Update ids whose status may be decidable after this batch lands. */
  readonly statusIds = new Set<string>();
  finish = false;
  /** Set when the batch is cut: what cut it, and the offsets to commit once it is written. */
  trigger = '';
  commitOffsets: TopicPartitionOffset[] = [];

  /** Nothing to write: no record taken, no row, no dead-letter record (an expired chunk makes the last two alone). */
  isEmpty(): boolean {
    return this.messages === 0 && this.rowCount === 0 && this.deadLetters.length === 0;
  }

  add(table: SinkTable, row: Row, source: Source): void {
    if (this.startedAt === 0) this.startedAt = Date.now();
    let list = this.rows.get(table);
    if (!list) this.rows.set(table, (list = []));
    list.push({ row, source });
    this.rowCount++;
  }

  note(msg: TransportMessage): void {
    if (this.startedAt === 0) this.startedAt = Date.now();
    this.messages++;
    const key = `${msg.topic}/${msg.partition}`;
    const offset = BigInt(msg.offset);
    const r = this.ranges.get(key);
    if (!r) this.ranges.set(key, { topic: msg.topic, partition: msg.partition, first: offset, last: offset });
    else {
      if (offset < r.first) r.first = offset;
      if (offset > r.last) r.last = offset;
    }
  }

  /** `<topic>:<partition>:<first>-<last>` for each partition, sorted: the batch's identity on the log. */
  rangeText(): string {
    return [...this.ranges.values()]
      .map((r) => `${r.topic}:${r.partition}:${r.first}-${r.last}`)
      .sort()
      .join(',');
  }
}

/**
 * What makes a batch's token unique beyond its offsets: the count and the first and last rows. Rows
 * are a pure function of the records, so a retry of the batch gives the same hash; a topic re-created
 * with the same name (offsets from 0 again) holds other records, whose times differ.
 */
export function contentHash(values: Row[]): string {
  const h = createHash('sha256').update(String(values.length));
  if (values.length > 0) h.update(JSON.stringify(values[0])).update(JSON.stringify(values[values.length - 1]));
  return h.digest('hex').slice(0, 16);
}

export function emptyRowCounts(): Record<SinkTable, number> {
  return Object.fromEntries(SINK_TABLES.map((t) => [t, 0])) as Record<SinkTable, number>;
}

/** Inserts rows in JSONEachRow with a deduplication token made of `token` and the rows' {@link contentHash}. */
export async function insertWithToken(analytics: AnalyticsClient, table: string, values: Row[], token: string): Promise<void> {
  await analytics.client.insert({
    table,
    values,
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `${token}#${contentHash(values)}` },
  });
}
