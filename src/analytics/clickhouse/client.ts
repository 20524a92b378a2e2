/**
 * One ClickHouse client for the whole project, over either of two engines behind the same
 * `@clickhouse/client` API (DESIGN.md, "Embedded default and real engines"):
 *
 * - a ClickHouse server over HTTP when a URL is given;
 * - otherwise chdb, the ClickHouse engine in-process, on a data directory.
 *
 * chdb binds ONE data directory per process. Clients on the same directory share it (and share one
 * connection per database); asking for a second directory while the first is open is refused with
 * a clear error. Closing every client on a directory releases it, and then another may be opened.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createClient, type ClickHouseClient, type Logger as ClickHouseLogger, type LogParams, type ErrorLogParams, type WarnLogParams } from '@clickhouse/client';
import { ConfigError, FedStreamError, readSecret } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import { DEFAULTS, type Manifest } from '../../config/index.ts';
import { ENDPOINT_FILE, discoverEndpoint, type EndpointInfo } from './endpoint.ts';
import { toAnalyticsError } from './errors.ts';
import { probeClickhouseTls } from './tls-probe.ts';

export { toAnalyticsError } from './errors.ts';

export type AnalyticsKind = 'server' | 'embedded';

export interface AnalyticsClientOptions {
  /** ClickHouse server HTTP(S) URL. When set it wins over `path`. Credentials and a `/database` path in it are honoured. */
  url?: string;
  /** Data directory of the embedded engine, used when `url` is absent. Default `DEFAULTS.embeddedClickhousePath`. */
  path?: string;
  /** Default `DEFAULTS.clickhouseDatabase` (or the URL's path). Created when missing. */
  database?: string;
  username?: string;
  password?: string;
  /** Server over https: PEM CA bundle to trust, and client certificate and key for mutual TLS (contents, not paths). */
  tls?: { caCert?: Buffer; cert?: Buffer; key?: Buffer };
  logger: Logger;
  /** Server only: per-request timeout. Default 30 s (the @clickhouse/client default). */
  requestTimeoutMs?: number;
}

export interface AnalyticsHealth {
  success: boolean;
  /** One line for people: version, where, which database; or what failed. */
  detail: string;
  error?: FedStreamError;
}

export interface AnalyticsClient {
  /** The raw client. Use it for queries and inserts; call `close()` on this wrapper, not on it. */
  readonly client: ClickHouseClient;
  readonly database: string;
  readonly kind: AnalyticsKind;
  /** The server URL without credentials, or the absolute data directory. */
  readonly location: string;
  /** Embedded only: the other process whose endpoint this client queries, when it holds the directory (endpoint.ts). */
  readonly servedBy?: EndpointInfo;
  /** Creates the database when missing (idempotent). `createAnalyticsClient` already tried once. */
  ensureDatabase(): Promise<void>;
  /** Ping plus `SELECT version()`. Never throws. */
  health(): Promise<AnalyticsHealth>;
  /** Idempotent. Embedded: releases the data directory when the last client on it closes. */
  close(): Promise<void>;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Throws a ConfigError unless `name` is a plain identifier (it is spliced into DDL). */
export function assertDatabaseName(name: string, path = 'analytics.database'): string {
  if (!IDENTIFIER.test(name)) throw new ConfigError(path, `"${name}" is not a valid database name (letters, digits and _, not starting with a digit)`);
  return name;
}

/**
 * Client options from a manifest's `analytics` section: the password read from its file or variable, TLS files read.
 * The embedded engine has no users: `user` and `password` apply to a server only. Throws ConfigError naming the
 * field (never the secret).
 */
export function analyticsOptionsFrom(a: Manifest['analytics'], logger: Logger, env: NodeJS.ProcessEnv = process.env): AnalyticsClientOptions {
  const file = (f: string, where: string): Buffer => {
    try {
      return readFileSync(f);
    } catch (err) {
      throw new ConfigError(where, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return {
    ...(a.clickhouse ? { url: a.clickhouse } : {}),
    path: a.path,
    database: a.database,
    ...(a.user ? { username: a.user } : {}),
    ...(a.password ? { password: readSecret(a.password, 'analytics.password', env) } : {}),
    ...(a.tls?.ca ? { tls: { caCert: file(a.tls.ca, 'analytics.tls.ca'), ...(a.tls.cert && a.tls.key ? { cert: file(a.tls.cert, 'analytics.tls.cert'), key: file(a.tls.key, 'analytics.tls.key') } : {}) } } : {}),
    logger,
  };
}

export async function createAnalyticsClient(options: AnalyticsClientOptions): Promise<AnalyticsClient> {
  return options.url ? createServerClient(options, options.url) : createEmbeddedClient(options);
}

// ---------------------------------------------------------------------------------------------
// Server over HTTP

async function createServerClient(options: AnalyticsClientOptions, rawUrl: string): Promise<AnalyticsClient> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ConfigError('analytics.clickhouse', `"${rawUrl}" is not a URL; expected http[s]://host:8123`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError('analytics.clickhouse', `"${rawUrl}" must use http or https (the ClickHouse HTTP interface, port 8123 by default)`);
  }
  const fromPath = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : undefined;
  const database = assertDatabaseName(options.database ?? fromPath ?? DEFAULTS.clickhouseDatabase);
  const username = options.username ?? (url.username ? decodeURIComponent(url.username) : DEFAULTS.clickhouseUser);
  const password = options.password ?? (url.password ? decodeURIComponent(url.password) : '');
  // Credentials and database travel as options, never inside the URL we log or hand on.
  const base = new URL(url.origin);
  base.search = url.search;
  const location = base.toString().replace(/\/$/, '');
  const logger = options.logger.child({ component: 'analytics', clickhouse: location, database });

  const make = (db: string | undefined): ClickHouseClient => createClient({
    url: base.toString(),
    username,
    password,
    ...(db === undefined ? {} : { database: db }),
    application: 'fedstream',
    ...(options.tls?.caCert ? { tls: options.tls.cert && options.tls.key ? { ca_cert: options.tls.caCert, cert: options.tls.cert, key: options.tls.key } : { ca_cert: options.tls.caCert } } : {}),
    clickhouse_settings: BASE_SETTINGS,
    request_timeout: options.requestTimeoutMs ?? 30_000,
    log: { LoggerClass: loggerClassFor(logger) },
  });

  const client = make(database);
  const ensureDatabase = async (): Promise<void> => {
    // A request that names a missing database fails, so this one goes without.
    const bootstrap = make(undefined);
    try {
      await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
    } catch (err) {
      const mapped = toAnalyticsError(err, `creating database ${database} at ${location}`);
      // A user allowed into an existing database but not to create one: fine if it exists.
      if (mapped.code === 'ANALYTICS_UNAVAILABLE' || !(await databaseExists(bootstrap, database))) throw mapped;
    } finally {
      await bootstrap.close();
    }
  };

  // A TLS misconfiguration is refused here, at start and in seconds: no request could ever succeed.
  if (url.protocol === 'https:') {
    const tlsError = await probeClickhouseTls(url, { ...(options.tls?.caCert ? { ca: options.tls.caCert } : {}), ...(options.tls?.cert && options.tls.key ? { cert: options.tls.cert, key: options.tls.key } : {}) });
    if (tlsError) {
      await client.close();
      throw tlsError;
    }
  }

  try {
    await ensureDatabase();
  } catch (err) {
    // Not fatal here: health() reports it (a value, for `fedstream health`), and applySchema calls
    // ensureDatabase() again and raises it, retriable or not, where the caller can act on it.
    logger.warn({ err }, 'could not make sure the database exists; trying again on first use');
  }

  let closed = false;
  return {
    client,
    database,
    kind: 'server',
    location,
    ensureDatabase,
    health: () => health(client, `at ${location}`, database),
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
  };
}

async function databaseExists(client: ClickHouseClient, database: string): Promise<boolean> {
  try {
    const rs = await client.query({ query: 'SELECT count() AS n FROM system.databases WHERE name = {db:String}', query_params: { db: database }, format: 'JSONEachRow' });
    const rows = await rs.json<{ n: number | string }>();
    return Number(rows[0]?.n ?? 0) > 0;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Embedded (chdb)

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/**
 * Settings every client runs with, on both engines. 64-bit integers come back as JSON strings (no
 * precision loss past 2^53), as the server did by default for years; ClickHouse 26 (chdb) changed
 * the default to numbers, so it is pinned here to keep server and embedded results identical.
 */
const BASE_SETTINGS = { output_format_json_quote_64bit_integers: 1 } as const;

/**
 * Per-request settings scoped to their request on chdb, as they are over HTTP.
 *
 * chdb applies a request's `clickhouse_settings` with `SET`, which lasts for the rest of the
 * connection: an `insert_deduplication_token` given for one insert would silently deduplicate away
 * every later insert without one. This wrapper runs requests one at a time and, after a request
 * that carried settings, puts each back to its base value (`baseline`) or to DEFAULT.
 */
function scopeSettings(inner: ClientConnection, baseline: Record<string, string | number>): ClientConnection {
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const reset = async (keys: string[]): Promise<void> => {
    for (const key of keys) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
      const value = key in baseline ? String(baseline[key]) : 'DEFAULT';
      // A key chdb never SET (HTTP-only settings it drops) may not exist in the engine: ignore.
      await inner.command({ query: `SET ${key} = ${value}` }).catch(() => undefined);
    }
  };
  const scoped = <P extends { clickhouse_settings?: Record<string, unknown> }, R>(op: (params: P) => Promise<R>) =>
    (params: P): Promise<R> => serial(async () => {
      const keys = Object.entries(params.clickhouse_settings ?? {}).filter(([, v]) => v !== undefined).map(([k]) => k);
      try {
        return await op(params);
      } finally {
        if (keys.length > 0) await reset(keys);
      }
    });
  return {
    query: scoped((p) => inner.query(p)),
    exec: scoped((p) => inner.exec(p)),
    command: scoped((p) => inner.command(p)),
    insert: scoped((p) => inner.insert(p)),
    ping: (p) => serial(() => inner.ping(p)),
    close: () => serial(() => inner.close()),
  };
}

interface EmbeddedEntry {
  client: ClickHouseClient;
  refs: number;
}

/** Process-wide: the data directory chdb is bound to, and one shared client per database on it. */
const embedded = {
  path: undefined as string | undefined,
  clients: new Map<string, Promise<EmbeddedEntry>>(),
};

async function createEmbeddedClient(options: AnalyticsClientOptions): Promise<AnalyticsClient> {
  const database = assertDatabaseName(options.database ?? DEFAULTS.clickhouseDatabase);
  const path = resolve(options.path ?? DEFAULTS.embeddedClickhousePath);
  if (embedded.path !== undefined && embedded.path !== path && embedded.clients.size > 0) {
    throw new FedStreamError('ANALYTICS_UNAVAILABLE',
      `the embedded ClickHouse (chdb) in this process is already open at ${embedded.path}; it binds one data directory per process, ` +
      `so ${path} cannot be opened until every client on ${embedded.path} is closed (or use a ClickHouse server URL)`,
      { retriable: false, details: { path, boundPath: embedded.path } });
  }
  const logger = options.logger.child({ component: 'analytics', clickhousePath: path, database });

  // Another process (a running sink) owns the directory and serves it over HTTP (endpoint.ts): connect to that.
  if (!(embedded.path === path && embedded.clients.size > 0)) {
    const served = discoverEndpoint(path);
    if (served) {
      const remote = await createServerClient({ ...options, database }, served.url);
      logger.debug({ url: served.url, pid: served.pid }, 'the embedded ClickHouse is held by another process; querying it through its endpoint');
      return { ...remote, kind: 'embedded', location: `${path} (served by process ${served.pid} at ${served.url})`, servedBy: served };
    }
  }

  embedded.path = path;
  let pending = embedded.clients.get(database);
  if (!pending) {
    pending = openEmbedded(path, database, logger);
    embedded.clients.set(database, pending);
  }
  let entry: EmbeddedEntry;
  try {
    entry = await pending;
  } catch (err) {
    if (embedded.clients.get(database) === pending) embedded.clients.delete(database);
    if (embedded.clients.size === 0) embedded.path = undefined;
    throw err;
  }
  entry.refs++;

  const ensureDatabase = async (): Promise<void> => {
    try {
      await entry.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
      await entry.client.command({ query: `USE ${database}` });
    } catch (err) {
      throw toAnalyticsError(err, `creating database ${database} in ${path}`);
    }
  };

  let closed = false;
  return {
    client: entry.client,
    database,
    kind: 'embedded',
    location: path,
    ensureDatabase,
    health: () => health(entry.client, `embedded at ${path}`, database),
    async close() {
      if (closed) return;
      closed = true;
      if (--entry.refs > 0) return;
      embedded.clients.delete(database);
      if (embedded.clients.size === 0) embedded.path = undefined;
      await entry.client.close();
    },
  };
}

async function openEmbedded(path: string, database: string, logger: Logger): Promise<EmbeddedEntry> {
  try {
    mkdirSync(path, { recursive: true });
  } catch (err) {
    throw new FedStreamError('ANALYTICS_UNAVAILABLE', `cannot create the embedded ClickHouse directory ${path}: ${(err as Error).message}`, { cause: err, retriable: false, details: { path } });
  }
  // Loaded on demand: a process that talks to a server never loads the native engine.
  const { createChdbConnection } = await import('chdb/connection');
  let client: ClickHouseClient;
  try {
    // chdb types its connection against its own copy of @clickhouse/client-common, which
    // @clickhouse/client 1.23 bundles separately: same shape, distinct declarations, hence the cast.
    const connection = scopeSettings(createChdbConnection({ path }) as unknown as ClientConnection, BASE_SETTINGS);
    client = createClient({ connection, database, application: 'fedstream', log: { LoggerClass: loggerClassFor(logger) } });
  } catch (err) {
    throw lockedHint(err, path) ?? toAnalyticsError(err, `opening the embedded ClickHouse at ${path}`);
  }
  try {
    // chdb ignores the client's `database` option: every statement runs in the connection's
    // current database, which USE sets for the life of the connection.
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
    await client.command({ query: `USE ${database}` });
    await client.command({ query: `SET ${Object.entries(BASE_SETTINGS).map(([k, v]) => `${k} = ${v}`).join(', ')}` });
  } catch (err) {
    await client.close().catch(() => undefined);
    throw lockedHint(err, path) ?? toAnalyticsError(err, `preparing database ${database} in ${path}`);
  }
  logger.debug('embedded ClickHouse opened');
  return { client, refs: 0 };
}

/** chdb's refusal of a directory another process holds, said so with what to do; undefined for other errors. */
function lockedHint(err: unknown, path: string): FedStreamError | undefined {
  const text = err instanceof Error ? err.message : String(err);
  if (!/Cannot lock file|Another server instance/i.test(text)) return undefined;
  return new FedStreamError('ANALYTICS_UNAVAILABLE',
    `the embedded ClickHouse at ${path} is held by another process, which serves no query endpoint (${ENDPOINT_FILE} is missing): ` +
    'chdb opens a data directory in one process at a time. A running `fedstream sink` serves it to other commands; stop whatever else holds it, ' +
    'or use a ClickHouse server (--clickhouse http://host:8123)', { cause: err, retriable: true, details: { path } });
}

// ---------------------------------------------------------------------------------------------
// Health

async function health(client: ClickHouseClient, where: string, database: string): Promise<AnalyticsHealth> {
  try {
    const ping = await client.ping();
    if (!ping.success) throw ping.error;
    const rs = await client.query({ query: 'SELECT version() AS version, currentDatabase() AS database', format: 'JSONEachRow' });
    const [row] = await rs.json<{ version: string; database: string }>();
    return { success: true, detail: `ClickHouse ${row?.version ?? '?'} ${where}, database ${database}` };
  } catch (err) {
    const error = toAnalyticsError(err, `ClickHouse ${where}`);
    return { success: false, detail: error.message, error };
  }
}

// ---------------------------------------------------------------------------------------------
// @clickhouse/client's log lines go to our pino logger.

function loggerClassFor(log: Logger): new () => ClickHouseLogger {
  const fields = (p: LogParams): Record<string, unknown> => ({ chModule: p.module, ...p.args });
  return class implements ClickHouseLogger {
    trace(p: LogParams): void { log.trace(fields(p), p.message); }
    debug(p: LogParams): void { log.debug(fields(p), p.message); }
    info(p: LogParams): void { log.info(fields(p), p.message); }
    warn(p: WarnLogParams): void { log.warn({ ...fields(p), err: p.err }, p.message); }
    error(p: ErrorLogParams): void { log.error({ ...fields(p), err: p.err }, p.message); }
  };
}
