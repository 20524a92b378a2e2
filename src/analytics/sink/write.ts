/**
 * Writing one cut batch: its dead-letter records, then every table's rows, then the dead-letter records of
 * rows ClickHouse refused, then the status rows of updates whose decision is now known. A retried attempt
 * skips the steps already done; a retried insert is deduplicated by its token.
 */
import type { FedStreamError } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import type { Producer } from '../../transport/index.ts';
import type { AnalyticsClient } from '../clickhouse/client.ts';
import { toAnalyticsError } from '../clickhouse/errors.ts';
import { emptyRowCounts, insertWithToken, type Entry, type PendingBatch } from './batch.ts';
import { SINK_TABLES, type RowScope, type SinkTable } from './rows.ts';
import { writeStatus } from './status.ts';

/**
 * ClickHouse exception types that mean "this row cannot be stored as it is" rather than "try again":
 * such rows are isolated by bisection and dead-lettered so that one bad record never blocks the rest.
 */
const DATA_ERROR_TYPES = new Set([
  'TYPE_MISMATCH', 'INCORRECT_DATA', 'ILLEGAL_TYPE_OF_ARGUMENT', 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE', 'TOO_LARGE_STRING_SIZE',
  'CANNOT_READ_ALL_DATA', 'ATTEMPT_TO_READ_AFTER_EOF', 'INCORRECT_NUMBER_OF_COLUMNS', 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN',
  'ARGUMENT_OUT_OF_BOUND', 'TOO_LARGE_ARRAY_SIZE', 'DECIMAL_OVERFLOW', 'UNKNOWN_ELEMENT_OF_ENUM', 'INCORRECT_DATA_FORMAT',
]);

/** True when ClickHouse refused the data itself (retrying the same rows cannot help). */
export function isDataError(err: FedStreamError): boolean {
  if (err.code !== 'ANALYTICS_QUERY') return false;
  const type = String(err.details.clickhouseType ?? '');
  return DATA_ERROR_TYPES.has(type) || type.startsWith('CANNOT_PARSE');
}

/**
 * Inserts one table's rows. The token makes a retry of the same batch a no-op; the rows' hash in it
 * keeps it unique even when a topic is re-created and its offsets start again at 0 (the demo does
 * that with each run on the same ClickHouse directory). Rows ClickHouse refuses as data errors are
 * isolated by bisection and returned; any other failure is thrown (and retried).
 */
export async function insertEntries(analytics: AnalyticsClient, table: SinkTable, entries: Entry[], token: string, log: Logger): Promise<Entry[]> {
  const values = entries.map((e) => e.row);
  try {
    await insertWithToken(analytics, table, values, token);
    return [];
  } catch (raw) {
    const err = toAnalyticsError(raw, `inserting ${values.length} rows into ${analytics.database}.${table}`);
    if (!isDataError(err)) throw err;
    if (entries.length === 1) {
      const s = entries[0]!.source;
      log.warn({ err, table, source: `${s.topic}/${s.partition}/${s.offset}` }, 'ClickHouse refused a row; its record goes to the dead-letter topic');
      return entries;
    }
    const mid = Math.ceil(entries.length / 2);
    return [
      ...await insertEntries(analytics, table, entries.slice(0, mid), `${token}/a`, log),
      ...await insertEntries(analytics, table, entries.slice(mid), `${token}/b`, log),
    ];
  }
}

export interface BatchWriteDeps {
  analytics: AnalyticsClient;
  scope: RowScope;
  producer: Producer;
  log: Logger;
  /** Sends the dead-letter records of entries ClickHouse refused; returns how many records were sent. */
  deadLetterPoison: (entries: Entry[]) => Promise<number>;
}

/** One batch being written; `attempt()` may be called again after a failure and resumes where it stopped. */
export class BatchWrite {
  /** Rows inserted per table (refused rows not counted). */
  readonly inserted = emptyRowCounts();
  statusUpdates = 0;
  poisonRecords = 0;
  readonly ranges: string;
  private readonly done = new Set<string>();
  private readonly poison: Entry[] = [];

  constructor(private readonly batch: PendingBatch, private readonly deps: BatchWriteDeps) {
    this.ranges = batch.rangeText();
  }

  async attempt(): Promise<void> {
    const { batch, done, deps } = this;
    if (!done.has('dead-letter') && batch.deadLetters.length > 0) {
      await deps.producer.send(batch.deadLetters);
      done.add('dead-letter');
    }
    for (const table of SINK_TABLES) {
      const entries = batch.rows.get(table);
      if (!entries || entries.length === 0 || done.has(table)) continue;
      const bad = await insertEntries(deps.analytics, table, entries, `${table}|${this.ranges}`, deps.log);
      this.inserted[table] = entries.length - bad.length;
      this.poison.push(...bad);
      done.add(table);
    }
    if (!done.has('poison') && this.poison.length > 0) {
      this.poisonRecords = await deps.deadLetterPoison(this.poison);
      done.add('poison');
    }
    if (!done.has('status') && batch.statusIds.size > 0) {
      this.statusUpdates = await writeStatus(deps.analytics, deps.scope, [...batch.statusIds], `updates:status|${this.ranges}`);
      done.add('status');
    }
  }
}
