/**
 * The analytics SQL: named, commented, parameterized files in `schemas/clickhouse/queries/<name>.sql`.
 * They are what the reports run and what an analyst pastes into clickhouse-client or a BI tool (in
 * the FedStream database: `clickhouse-client --database fedstream --param_tenant=demo ...`).
 *
 * File format: a header of `--` comments (the first line is `<name>: what it answers`, then
 * `Parameters:` and `Columns:`), then one SELECT. Every query takes `{tenant:String}` and
 * `{pipeline:String}` and filters every table it reads by both.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedStreamError } from '../common/index.ts';
import type { AnalyticsClient } from './clickhouse/client.ts';
import { toAnalyticsError } from './clickhouse/errors.ts';
import { splitStatements } from './clickhouse/ddl.ts';
import { EXACT_FLOAT_OUTPUT, rowsFromCompact } from './clickhouse/floats.ts';

export const QUERY_NAMES = [
  'convergence',
  'participation',
  'participation_matrix',
  'stragglers',
  'rejections_by_reason',
  'node_health',
  'node_processes',
  'data_contributed',
  'lineage',
  'lineage_nodes',
  'version_chain',
  'audit_trail',
  'round_summary',
  'update_status',
  'privacy',
] as const;
export type QueryName = (typeof QUERY_NAMES)[number];

export interface QueryParameter {
  name: string;
  /** The ClickHouse type in the placeholder, e.g. `String`, `UInt64`. */
  type: string;
}

export interface QueryFile {
  name: string;
  file: string;
  /** The first header line, after `<name>:`. */
  summary: string;
  /** The whole header comment, without the `--` markers. */
  header: string;
  /** The SQL to send: comments stripped, no trailing `;`. */
  sql: string;
  /** Every `{name:Type}` placeholder, in order of first use. */
  parameters: QueryParameter[];
}

/** `schemas/clickhouse/queries` of this checkout, found from this module's location. */
export function defaultQueryDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'schemas', 'clickhouse', 'queries');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return resolve('schemas', 'clickhouse', 'queries');
    dir = parent;
  }
}

const cache = new Map<string, QueryFile>();

/** Parses one query file's text (exported for tests). */
export function parseQueryFile(name: string, text: string, file = `${name}.sql`): QueryFile {
  const lines = text.split(/\r?\n/);
  const header: string[] = [];
  for (const line of lines) {
    const m = /^--\s?(.*)$/.exec(line);
    if (!m) break;
    header.push(m[1] ?? '');
  }
  const first = header[0] ?? '';
  const prefix = `${name}:`;
  if (!first.startsWith(prefix)) {
    throw new FedStreamError('ANALYTICS_QUERY', `query file ${file} must start with a comment "-- ${prefix} <what it answers>"`, { details: { file } });
  }
  const statements = splitStatements(text);
  if (statements.length !== 1) {
    throw new FedStreamError('ANALYTICS_QUERY', `query file ${file} must hold exactly one statement, found ${statements.length}`, { details: { file } });
  }
  const sql = statements[0]!.sql;
  const parameters: QueryParameter[] = [];
  for (const m of sql.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*):([^}]+)\}/g)) {
    if (!parameters.some((p) => p.name === m[1])) parameters.push({ name: m[1]!, type: m[2]!.trim() });
  }
  return { name, file, summary: first.slice(prefix.length).trim(), header: header.join('\n').trim(), sql, parameters };
}

/** Loads a query by name from `dir` (default: this checkout's `schemas/clickhouse/queries`). */
export function loadQuery(name: string, dir: string = defaultQueryDir()): QueryFile {
  if (!/^[a-z0-9_]+$/.test(name)) throw new FedStreamError('ANALYTICS_QUERY', `"${name}" is not a query name (lowercase letters, digits and _)`);
  const file = join(dir, `${name}.sql`);
  const cached = cache.get(file);
  if (cached) return cached;
  if (!existsSync(file)) {
    throw new FedStreamError('ANALYTICS_QUERY', `no query named "${name}" in ${dir}; known: ${listQueryNames(dir).join(', ')}`, { details: { name, dir } });
  }
  const parsed = parseQueryFile(name, readFileSync(file, 'utf8'), file);
  cache.set(file, parsed);
  return parsed;
}

/** The names of the query files in `dir`, sorted. */
export function listQueryNames(dir: string = defaultQueryDir()): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).sort();
}

/** A value for a placeholder: a scalar, or an array for an `Array(...)` placeholder. */
export type QueryParamValue = string | number | bigint | boolean | readonly string[] | readonly number[];
export type QueryParams = { tenant: string; pipeline: string } & Record<string, QueryParamValue>;

/**
 * Runs a named query and returns its rows (as JSON: 64-bit integers come back as strings, times as
 * `'YYYY-MM-DD hh:mm:ss.sss'` UTC, NULL as null). Floats come back as themselves, at any depth (maps,
 * arrays, tuples): NaN, Infinity, -Infinity and -0 included (JSON alone would turn the first three into
 * null; clickhouse/floats.ts). Every placeholder must have a value.
 */
export async function runQuery<T = Record<string, unknown>>(analytics: AnalyticsClient, name: QueryName | (string & {}), params: QueryParams): Promise<T[]> {
  const q = loadQuery(name);
  const missing = q.parameters.filter((p) => params[p.name] === undefined).map((p) => `{${p.name}:${p.type}}`);
  if (missing.length > 0) {
    throw new FedStreamError('ANALYTICS_QUERY', `query ${name} needs ${missing.join(', ')}`, { details: { name, missing } });
  }
  const queryParams = Object.fromEntries(q.parameters.map((p) => {
    const v = params[p.name];
    return [p.name, typeof v === 'bigint' ? v.toString() : v];
  }));
  return queryRows<T>(analytics, q.sql, queryParams, `query ${name} (${q.file})`);
}

/**
 * Runs any SELECT and returns its rows as {@link runQuery} does: floats exactly (NaN, ±Infinity, -0 at any depth),
 * 64-bit integers as strings. `context` prefixes the message of the ANALYTICS_* error a failure becomes.
 */
export async function queryRows<T = Record<string, unknown>>(analytics: AnalyticsClient, sql: string, params: Record<string, unknown> = {}, context = 'query'): Promise<T[]> {
  try {
    const rs = await analytics.client.query({
      query: sql, query_params: params, format: 'JSONCompactEachRowWithNamesAndTypes', clickhouse_settings: EXACT_FLOAT_OUTPUT,
    });
    return rowsFromCompact<T>(await rs.json<unknown[]>());
  } catch (err) {
    throw toAnalyticsError(err, context);
  }
}
