/**
 * Fault injection for ClickHouse, for tests and drills: a thin wrapper around a `@clickhouse/client`
 * Connection (the port both the HTTP connection and chdb's implement) that can be switched to fail
 * every request the way an unreachable server does (ECONNREFUSED), or to answer slowly.
 *
 * The embedded engine cannot be stopped and started like a server; this is how a test makes
 * "ClickHouse is down" happen and then ends it, with the same errors the client would raise.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { toAnalyticsError, type AnalyticsClient, type AnalyticsHealth } from '../../src/analytics/clickhouse/client.ts';

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

export type FaultMode = 'refused' | 'reset' | 'timeout';

export interface FaultControl {
  /** Makes every request fail until `heal()`. */
  fail(mode?: FaultMode): void;
  heal(): void;
  /** Delays every request by `ms` (0 to stop). */
  slow(ms: number): void;
  readonly failing: boolean;
  /** Requests seen and requests failed on purpose, since creation. */
  readonly calls: number;
  readonly failures: number;
}

function faultError(mode: FaultMode): Error {
  const text = {
    refused: ['connect ECONNREFUSED 127.0.0.1:8123', 'ECONNREFUSED', -111],
    reset: ['read ECONNRESET', 'ECONNRESET', -104],
    timeout: ['connect ETIMEDOUT 127.0.0.1:8123', 'ETIMEDOUT', -110],
  }[mode];
  return Object.assign(new Error(String(text[0])), { code: text[1], errno: text[2], syscall: 'connect' });
}

/** Wraps a Connection; the returned control switches the faults. */
export function faultConnection(inner: ClientConnection): { connection: ClientConnection; control: FaultControl } {
  let mode: FaultMode | undefined;
  let delayMs = 0;
  let calls = 0;
  let failures = 0;
  const gate = async (): Promise<void> => {
    calls++;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (mode) {
      failures++;
      throw faultError(mode);
    }
  };
  const wrap = <P, R>(op: (p: P) => Promise<R>) => async (p: P): Promise<R> => {
    await gate();
    return op(p);
  };
  const connection: ClientConnection = {
    query: wrap((p) => inner.query(p)),
    exec: wrap((p) => inner.exec(p)),
    command: wrap((p) => inner.command(p)),
    insert: wrap((p) => inner.insert(p)),
    ping: async (p) => {
      try {
        await gate();
      } catch (error) {
        return { success: false, error: error as Error };
      }
      return inner.ping(p);
    },
    close: () => inner.close(),
  };
  const control: FaultControl = {
    fail: (m = 'refused') => { mode = m; },
    heal: () => { mode = undefined; },
    slow: (ms) => { delayMs = Math.max(0, ms); },
    get failing() { return mode !== undefined; },
    get calls() { return calls; },
    get failures() { return failures; },
  };
  return { connection, control };
}

/**
 * An AnalyticsClient whose requests go through a fault switch, over the same engine (and, for chdb,
 * the same settings-scoped connection) as `analytics`. Closing it closes `analytics`.
 */
export function withFaults(analytics: AnalyticsClient): { analytics: AnalyticsClient; faults: FaultControl } {
  // @clickhouse/client keeps its Connection in a field; there is no accessor, and this is a test tool.
  const inner = (analytics.client as unknown as { connection?: ClientConnection }).connection;
  if (!inner) throw new Error('withFaults: this @clickhouse/client version keeps no `connection` on the client');
  const { connection, control } = faultConnection(inner);
  const client: ClickHouseClient = createClient({
    connection,
    database: analytics.database,
    application: 'fedstream',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
  });
  const health = async (): Promise<AnalyticsHealth> => {
    try {
      const ping = await client.ping();
      if (!ping.success) throw ping.error;
      return { success: true, detail: `ClickHouse (fault-injected) ${analytics.kind} at ${analytics.location}, database ${analytics.database}` };
    } catch (err) {
      const error = toAnalyticsError(err, `ClickHouse at ${analytics.location}`);
      return { success: false, detail: error.message, error };
    }
  };
  return {
    analytics: {
      client,
      database: analytics.database,
      kind: analytics.kind,
      location: analytics.location,
      ensureDatabase: () => analytics.ensureDatabase(),
      health,
      close: () => analytics.close(),
    },
    faults: control,
  };
}
