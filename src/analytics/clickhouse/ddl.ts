/**
 * Applies the ClickHouse schema (`schemas/clickhouse/*.sql`) idempotently.
 *
 * File format, kept deliberately simple so that every file also runs in clickhouse-client:
 * - files apply in lexical order of their names (`001_…`, `002_…`); subdirectories (such as
 *   `queries/`) are not schema and are ignored;
 * - `--` starts a comment to the end of the line (outside quotes); block comments are not special;
 * - a statement ends with `;` as the last thing on a line (a `;` inside a line is part of the SQL);
 *   the last statement of a file may omit it;
 * - `${name}` is replaced by a variable: `database` and the retention days (see SCHEMA_VARIABLE_DEFAULTS).
 *
 * Files are migrations: each applied file is recorded in `<database>.schema_migrations` with its
 * sha256 and skipped afterwards. Changing an applied file is refused by default (put the change in
 * a new file); `onChecksumMismatch: 'warn'` re-runs it instead, for development. Every statement is
 * written to be idempotent (`IF NOT EXISTS`), so a file interrupted half-way simply runs again.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError, FedStreamError } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import { DEFAULTS } from '../../config/index.ts';
import { assertDatabaseName, toAnalyticsError, type AnalyticsClient } from './client.ts';

export type SchemaVariables = Record<string, string | number>;

/** Retention in days per group of tables (docs/clickhouse.md lists which table uses which). */
export const SCHEMA_VARIABLE_DEFAULTS = {
  database: DEFAULTS.clickhouseDatabase,
  /** telemetry_events, heartbeats */
  retention_days_telemetry: 30,
  /** node_health_1m */
  retention_days_health: 90,
  /** updates, rejected_updates */
  retention_days_updates: 365,
  /** model_versions, contributions, rounds, round_summary: the lineage compliance reports need */
  retention_days_lineage: 3650,
  /** audit_log */
  retention_days_audit: 3650,
} as const satisfies SchemaVariables;

/**
 * Variables from a pipeline manifest's `retention` block. Lineage follows the audit retention
 * (a compliance report needs both), health follows telemetry (at least 90 days), unless given.
 */
export function retentionVariables(retention: { telemetryDays?: number; updatesDays?: number; auditDays?: number; lineageDays?: number; healthDays?: number }): SchemaVariables {
  const vars: SchemaVariables = {};
  if (retention.telemetryDays !== undefined) vars.retention_days_telemetry = retention.telemetryDays;
  if (retention.updatesDays !== undefined) vars.retention_days_updates = retention.updatesDays;
  if (retention.auditDays !== undefined) vars.retention_days_audit = retention.auditDays;
  const lineage = retention.lineageDays ?? retention.auditDays;
  if (lineage !== undefined) vars.retention_days_lineage = lineage;
  const health = retention.healthDays ?? (retention.telemetryDays === undefined ? undefined : Math.max(retention.telemetryDays, SCHEMA_VARIABLE_DEFAULTS.retention_days_health));
  if (health !== undefined) vars.retention_days_health = health;
  return vars;
}

const SAFE_VALUE = /^[A-Za-z0-9_.]+$/;

/**
 * Defaults merged with `variables`, each checked because it is spliced into SQL: `database` must be
 * an identifier, `retention_days_*` a whole number of days ≥ 1, anything else a plain token.
 */
export function resolveSchemaVariables(variables: SchemaVariables = {}): Record<string, string> {
  const merged: SchemaVariables = { ...SCHEMA_VARIABLE_DEFAULTS, ...variables };
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(merged)) {
    const path = `variables.${name}`;
    const text = String(value);
    if (name === 'database') {
      assertDatabaseName(text, path);
    } else if (name.startsWith('retention_days_')) {
      if (!/^\d+$/.test(text) || Number(text) < 1) throw new ConfigError(path, `"${text}" is not a whole number of days >= 1`);
    } else if (!SAFE_VALUE.test(text)) {
      throw new ConfigError(path, `"${text}" may only hold letters, digits, "_" and "."`);
    }
    out[name] = text;
  }
  return out;
}

export interface Statement {
  /** The SQL without comments and without the final `;`. */
  sql: string;
  /** 1-based line where the statement starts in its file. */
  line: number;
}

/** Splits a schema file into statements (rules in the module comment). */
export function splitStatements(text: string): Statement[] {
  const statements: Statement[] = [];
  let current: string[] = [];
  let start = 0;
  let quote: string | undefined;
  const flush = (): void => {
    const sql = current.join('\n').trim();
    if (sql) statements.push({ sql, line: start });
    current = [];
    start = 0;
  };
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    let line = '';
    for (let i = 0; i < raw.length; i++) {
      const ch = raw[i] as string;
      if (quote) {
        line += ch;
        if (ch === '\\' && i + 1 < raw.length) line += raw[++i];
        else if (ch === quote) quote = undefined;
      } else if (ch === '-' && raw[i + 1] === '-') {
        break;
      } else {
        if (ch === "'" || ch === '"' || ch === '`') quote = ch;
        line += ch;
      }
    }
    line = line.trimEnd();
    if (!line.trim() && current.length === 0) return;
    if (current.length === 0) start = index + 1;
    if (!quote && line.endsWith(';')) {
      current.push(line.slice(0, -1));
      flush();
    } else {
      current.push(line);
    }
  });
  flush();
  return statements;
}

/** Replaces every `${name}`; an unknown name throws with the list of known ones. Returns the names used. */
export function substituteVariables(sql: string, variables: Record<string, string>): { sql: string; used: string[] } {
  const used = new Set<string>();
  const out = sql.replace(/\$\{([^}]*)\}/g, (_m, name: string) => {
    const value = variables[name];
    if (value === undefined) {
      throw new FedStreamError('ANALYTICS_DDL', `unknown variable \${${name}}; known: ${Object.keys(variables).sort().join(', ')}`, { details: { variable: name } });
    }
    used.add(name);
    return value;
  });
  return { sql: out, used: [...used].sort() };
}

export interface SchemaFile {
  file: string;
  sha256: string;
  statements: Statement[];
  /** The variables the file uses, with the values substituted. */
  variables: Record<string, string>;
}

/** Reads, splits and substitutes every `*.sql` in `dir`, in lexical order. Nothing is executed. */
export function loadSchemaFiles(dir: string, variables: Record<string, string>): SchemaFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new FedStreamError('ANALYTICS_DDL', `schema directory ${dir} does not exist`, { details: { dir } });
  }
  const names = readdirSync(dir).filter((n) => n.endsWith('.sql') && statSync(join(dir, n)).isFile()).sort();
  return names.map((file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const sha256 = createHash('sha256').update(text).digest('hex');
    const used: Record<string, string> = {};
    const statements = splitStatements(text).map((st, i, all) => {
      try {
        const sub = substituteVariables(st.sql, variables);
        for (const name of sub.used) used[name] = variables[name] as string;
        return { sql: sub.sql, line: st.line };
      } catch (err) {
        const e = err as FedStreamError;
        throw new FedStreamError('ANALYTICS_DDL', `schema file ${file}, statement ${i + 1} of ${all.length} (line ${st.line}): ${e.message}`, { details: { file, statement: i + 1, line: st.line, ...e.details } });
      }
    });
    return { file, sha256, statements, variables: used };
  });
}

/** `schemas/clickhouse` of this checkout: the nearest one above this module (src/ or dist/ alike). */
export function defaultSchemaDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'schemas', 'clickhouse');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return resolve('schemas', 'clickhouse');
    dir = parent;
  }
}

export interface ApplySchemaOptions {
  /** Default: `schemas/clickhouse` of this checkout. */
  dir?: string;
  /** Default: the client's database, else `DEFAULTS.clickhouseDatabase`. */
  database?: string;
  /** `retention_days_*` and any other `${name}` the files use; defaults in SCHEMA_VARIABLE_DEFAULTS. */
  variables?: SchemaVariables;
  /** What to do when an applied file's sha256 changed: refuse (default), or warn and re-run it. */
  onChecksumMismatch?: 'error' | 'warn';
  logger?: Logger;
}

export interface ApplySchemaResult {
  database: string;
  /** Files executed by this call. */
  applied: string[];
  /** Files already applied with the same sha256, not executed. */
  skipped: string[];
  /** Changed files (in 'warn' mode) and changed variables (existing tables keep their old TTL). */
  warnings: string[];
}

interface Migration {
  file: string;
  sha256: string;
  variables: string;
}

/**
 * Applies every schema file not applied yet. A statement ClickHouse rejects raises ANALYTICS_DDL
 * naming the file, the statement's number and line, and the server message; an unreachable server
 * raises ANALYTICS_UNAVAILABLE (retriable) with the same context.
 */
export async function applySchema(target: AnalyticsClient | ClickHouseClient, options: ApplySchemaOptions = {}): Promise<ApplySchemaResult> {
  const analytics = isAnalyticsClient(target) ? target : undefined;
  const client = analytics ? analytics.client : (target as ClickHouseClient);
  const database = assertDatabaseName(options.database ?? analytics?.database ?? DEFAULTS.clickhouseDatabase, 'database');
  const variables = resolveSchemaVariables({ ...options.variables, database });
  const dir = resolve(options.dir ?? defaultSchemaDir());
  const log = options.logger?.child({ component: 'analytics-ddl', database });
  const files = loadSchemaFiles(dir, variables);

  const run = async (query: string, context: string): Promise<void> => {
    try {
      await client.command({ query });
    } catch (err) {
      throw toAnalyticsError(err, context);
    }
  };

  if (analytics && analytics.database === database) await analytics.ensureDatabase();
  else await run(`CREATE DATABASE IF NOT EXISTS ${database}`, `creating database ${database}`);
  await run(
    `CREATE TABLE IF NOT EXISTS ${database}.schema_migrations (file String, sha256 String, variables String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ` +
      `ENGINE = ReplacingMergeTree(applied_at) ORDER BY file COMMENT 'schema files applied by fedstream (src/analytics/ddl.ts)'`,
    `creating ${database}.schema_migrations`,
  );
  const applied = await readMigrations(client, database);

  const result: ApplySchemaResult = { database, applied: [], skipped: [], warnings: [] };
  for (const f of files) {
    const variablesJson = JSON.stringify(f.variables);
    const previous = applied.get(f.file);
    if (previous && previous.sha256 === f.sha256) {
      if (previous.variables !== variablesJson) {
        const warning = `${f.file} was applied with ${previous.variables}, now ${variablesJson}: existing tables keep their settings (TTL); ` +
          'change them with ALTER TABLE … MODIFY TTL (docs/clickhouse.md, "Retention")';
        result.warnings.push(warning);
        log?.warn({ file: f.file }, warning);
      }
      result.skipped.push(f.file);
      continue;
    }
    if (previous) {
      const message = `schema file ${f.file} changed since it was applied (sha256 ${previous.sha256.slice(0, 12)}… → ${f.sha256.slice(0, 12)}…) in ${dir}`;
      if ((options.onChecksumMismatch ?? 'error') === 'error') {
        throw new FedStreamError('ANALYTICS_DDL',
          `${message}. Applied schema files are append-only: put the change in a new file (e.g. ${nextFileName(files)}), or re-create database ${database}`,
          { details: { file: f.file, applied: previous.sha256, current: f.sha256 } });
      }
      result.warnings.push(`${message}; re-running it`);
      log?.warn({ file: f.file }, `${message}; re-running it`);
    }
    for (const [i, st] of f.statements.entries()) {
      const where = `schema file ${f.file}, statement ${i + 1} of ${f.statements.length} (line ${st.line}: ${summarize(st.sql)})`;
      try {
        await client.command({ query: st.sql });
      } catch (err) {
        const mapped = toAnalyticsError(err, '');
        const details = { ...mapped.details, context: where, file: f.file, statement: i + 1, line: st.line, sql: st.sql };
        if (mapped.code === 'ANALYTICS_UNAVAILABLE') {
          throw new FedStreamError('ANALYTICS_UNAVAILABLE', `${where}: ${mapped.message}`, { cause: err, retriable: mapped.retriable, details });
        }
        throw new FedStreamError('ANALYTICS_DDL', `${where} failed: ${mapped.message}`, { cause: err, details });
      }
    }
    await insertMigration(client, database, { file: f.file, sha256: f.sha256, variables: variablesJson });
    result.applied.push(f.file);
    log?.info({ file: f.file, statements: f.statements.length }, 'schema file applied');
  }
  return result;
}

function isAnalyticsClient(x: AnalyticsClient | ClickHouseClient): x is AnalyticsClient {
  return 'kind' in x && 'client' in x && typeof (x as AnalyticsClient).ensureDatabase === 'function';
}

async function readMigrations(client: ClickHouseClient, database: string): Promise<Map<string, Migration>> {
  try {
    const rs = await client.query({
      query: `SELECT file, argMax(sha256, applied_at) AS sha256, argMax(variables, applied_at) AS variables FROM ${database}.schema_migrations GROUP BY file`,
      format: 'JSONEachRow',
    });
    const rows = await rs.json<Migration>();
    return new Map(rows.map((r) => [r.file, r]));
  } catch (err) {
    throw toAnalyticsError(err, `reading ${database}.schema_migrations`);
  }
}

async function insertMigration(client: ClickHouseClient, database: string, row: Migration): Promise<void> {
  try {
    await client.insert({ table: `${database}.schema_migrations`, values: [row], format: 'JSONEachRow' });
  } catch (err) {
    throw toAnalyticsError(err, `recording ${row.file} in ${database}.schema_migrations`);
  }
}

function summarize(sql: string): string {
  const oneLine = sql.replace(/\s+/g, ' ');
  return oneLine.length > 80 ? `${oneLine.slice(0, 77)}...` : oneLine;
}

function nextFileName(files: SchemaFile[]): string {
  const last = files.map((f) => Number(/^(\d+)/.exec(f.file)?.[1] ?? 0)).reduce((a, b) => Math.max(a, b), 0);
  return `${String(last + 1).padStart(3, '0')}_<change>.sql`;
}
