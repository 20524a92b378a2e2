import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  defaultSchemaDir, loadSchemaFiles, resolveSchemaVariables, retentionVariables, splitStatements, substituteVariables, SCHEMA_VARIABLE_DEFAULTS,
} from '../../src/analytics/clickhouse/ddl.ts';
import type { FedStreamError } from '../../src/common/errors.ts';

const temp: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'fedstream-schema-'));
  temp.push(dir);
  return dir;
};
afterAll(() => { for (const dir of temp) rmSync(dir, { recursive: true, force: true }); });

function errorOf(fn: () => unknown): FedStreamError {
  try { fn(); } catch (e) { return e as FedStreamError; }
  throw new Error('expected an error');
}

describe('splitStatements', () => {
  it('splits on ; at the end of a line and reports where each statement starts', () => {
    const sql = [
      '-- header comment',
      '',
      'CREATE TABLE a (x UInt8)',
      'ENGINE = MergeTree ORDER BY x;',
      'SELECT 1;  ',
      '',
      'SELECT 2',
    ].join('\n');
    expect(splitStatements(sql)).toEqual([
      { sql: 'CREATE TABLE a (x UInt8)\nENGINE = MergeTree ORDER BY x', line: 3 },
      { sql: 'SELECT 1', line: 5 },
      { sql: 'SELECT 2', line: 7 },
    ]);
  });

  it('strips -- comments, also after code and before the terminating ;', () => {
    expect(splitStatements('SELECT 1 -- one\n, 2; -- trailing\nSELECT 3 -- ;\n;')).toEqual([
      { sql: 'SELECT 1\n, 2', line: 1 },
      { sql: 'SELECT 3', line: 3 },
    ]);
  });

  it('keeps a ; inside a line and -- or ; inside quotes', () => {
    const sql = "SELECT 'a -- b;', \"c;--\", `d--` ; SELECT 'e'\nFROM t;\nSELECT 'it''s -- fine;'\n;";
    expect(splitStatements(sql)).toEqual([
      { sql: "SELECT 'a -- b;', \"c;--\", `d--` ; SELECT 'e'\nFROM t", line: 1 },
      { sql: "SELECT 'it''s -- fine;'", line: 3 },
    ]);
  });

  it('follows a quoted string across lines and backslash escapes', () => {
    const sql = "CREATE TABLE t (x UInt8) COMMENT 'first line;\nsecond -- line';\nSELECT 'a\\'b;' ;";
    expect(splitStatements(sql)).toEqual([
      { sql: "CREATE TABLE t (x UInt8) COMMENT 'first line;\nsecond -- line'", line: 1 },
      { sql: "SELECT 'a\\'b;'", line: 3 },
    ]);
  });

  it('handles CRLF files and returns nothing for comments only', () => {
    expect(splitStatements('SELECT 1;\r\nSELECT 2;\r\n')).toEqual([{ sql: 'SELECT 1', line: 1 }, { sql: 'SELECT 2', line: 2 }]);
    expect(splitStatements('-- nothing\n\n   \n-- here;\n')).toEqual([]);
    expect(splitStatements(';\n;\n')).toEqual([]);
  });
});

describe('substituteVariables', () => {
  it('replaces every ${name} and reports the names used', () => {
    expect(substituteVariables('CREATE TABLE ${database}.t TTL d + INTERVAL ${days} DAY -- ${database}', { database: 'db', days: '7', unused: 'x' }))
      .toEqual({ sql: 'CREATE TABLE db.t TTL d + INTERVAL 7 DAY -- db', used: ['database', 'days'] });
  });

  it('refuses an unknown variable, listing the known ones', () => {
    const err = errorOf(() => substituteVariables('SELECT ${nope}', { database: 'db' }));
    expect(err.code).toBe('ANALYTICS_DDL');
    expect(err.message).toBe('unknown variable ${nope}; known: database');
  });

  it('leaves $ signs that are not placeholders alone', () => {
    expect(substituteVariables("SELECT '$x', '{pipeline:String}'", {}).sql).toBe("SELECT '$x', '{pipeline:String}'");
  });
});

describe('resolveSchemaVariables', () => {
  it('fills the defaults and stringifies values', () => {
    expect(resolveSchemaVariables()).toEqual(Object.fromEntries(Object.entries(SCHEMA_VARIABLE_DEFAULTS).map(([k, v]) => [k, String(v)])));
    expect(resolveSchemaVariables({ database: 'x_1', retention_days_audit: 400 })).toMatchObject({ database: 'x_1', retention_days_audit: '400', retention_days_telemetry: '30' });
  });

  it.each([
    [{ database: 'fed-stream' }, 'variables.database'],
    [{ database: 'x; DROP DATABASE y' }, 'variables.database'],
    [{ retention_days_telemetry: 0 }, 'variables.retention_days_telemetry'],
    [{ retention_days_audit: '30 DAY; DROP' }, 'variables.retention_days_audit'],
    [{ retention_days_updates: 1.5 }, 'variables.retention_days_updates'],
    [{ other: "x'" }, 'variables.other'],
  ])('refuses %j with a ConfigError naming %s', (vars, path) => {
    const err = errorOf(() => resolveSchemaVariables(vars));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message.startsWith(`${path}: `)).toBe(true);
  });
});

describe('retentionVariables', () => {
  it('maps a manifest retention block; lineage follows audit, health follows telemetry (at least 90 days)', () => {
    expect(retentionVariables({ telemetryDays: 30, updatesDays: 365, auditDays: 3650 })).toEqual({
      retention_days_telemetry: 30, retention_days_updates: 365, retention_days_audit: 3650, retention_days_lineage: 3650, retention_days_health: 90,
    });
    expect(retentionVariables({ telemetryDays: 200 })).toEqual({ retention_days_telemetry: 200, retention_days_health: 200 });
    expect(retentionVariables({ auditDays: 10, lineageDays: 20, healthDays: 5 })).toEqual({ retention_days_audit: 10, retention_days_lineage: 20, retention_days_health: 5 });
    expect(retentionVariables({})).toEqual({});
  });
});

describe('loadSchemaFiles', () => {
  it('reads *.sql in lexical order, ignores subdirectories and other files, hashes the raw text', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '010_b.sql'), 'SELECT 2;\n');
    writeFileSync(join(dir, '002_a.sql'), 'CREATE DATABASE IF NOT EXISTS ${database};\n');
    writeFileSync(join(dir, 'README.md'), '# not sql');
    mkdirSync(join(dir, 'queries'));
    writeFileSync(join(dir, 'queries', '001_q.sql'), 'SELECT {pipeline:String};');
    const files = loadSchemaFiles(dir, resolveSchemaVariables({ database: 'db' }));
    expect(files.map((f) => f.file)).toEqual(['002_a.sql', '010_b.sql']);
    expect(files[0]).toMatchObject({ statements: [{ sql: 'CREATE DATABASE IF NOT EXISTS db', line: 1 }], variables: { database: 'db' } });
    expect(files[0]?.sha256).toBe(createHash('sha256').update('CREATE DATABASE IF NOT EXISTS ${database};\n').digest('hex'));
    expect(files[1]?.variables).toEqual({});
  });

  it('names the file and statement of an unknown variable', () => {
    const dir = tempDir();
    writeFileSync(join(dir, '001_x.sql'), 'SELECT 1;\n\nSELECT ${missing};\n');
    const err = errorOf(() => loadSchemaFiles(dir, resolveSchemaVariables()));
    expect(err.code).toBe('ANALYTICS_DDL');
    expect(err.message).toContain('schema file 001_x.sql, statement 2 of 2 (line 3): unknown variable ${missing}');
    expect(err.details).toMatchObject({ file: '001_x.sql', statement: 2, line: 3 });
  });

  it('reports a missing directory as ANALYTICS_DDL', () => {
    expect(errorOf(() => loadSchemaFiles('/nonexistent/schemas', {})).code).toBe('ANALYTICS_DDL');
  });
});

describe('the schema files', () => {
  const files = loadSchemaFiles(defaultSchemaDir(), resolveSchemaVariables());
  const statements = files.flatMap((f) => f.statements.map((s) => ({ file: f.file, sql: s.sql })));
  const tables = statements.filter((s) => /^CREATE TABLE/.test(s.sql));

  it('are found from this checkout and numbered', () => {
    expect(defaultSchemaDir()).toMatch(/schemas\/clickhouse$/);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f.file).toMatch(/^\d{3}_[a-z0-9_]+\.sql$/);
  });

  it('are idempotent: every CREATE says IF NOT EXISTS, and nothing drops or alters data', () => {
    for (const s of statements) {
      // A later file may give a view a new query (005_nonfinite.sql): a plain view replaced whole, a materialized
      // view's query swapped in place. Both are idempotent and leave every stored row as it is.
      if (/^(CREATE OR REPLACE VIEW|ALTER TABLE fedstream\.\w+_mv MODIFY QUERY)\b/.test(s.sql)) {
        expect(s.file, s.sql.slice(0, 80)).not.toMatch(/^00[1-4]_/);
        expect(s.sql.replace(/^ALTER TABLE/, ''), s.file).not.toMatch(/\b(DROP|ALTER|TRUNCATE|RENAME)\b/);
        continue;
      }
      // A later file may add columns (006_privacy.sql): each clause ADD COLUMN IF NOT EXISTS, nothing else.
      if (/^ALTER TABLE fedstream\.\w+\s+ADD COLUMN IF NOT EXISTS\b/.test(s.sql)) {
        expect(s.file, s.sql.slice(0, 80)).not.toMatch(/^00[1-5]_/);
        for (const clause of s.sql.replace(/^ALTER TABLE fedstream\.\w+\s+/, '').split(/,\s*(?=ADD COLUMN)/)) expect(clause, s.file).toMatch(/^ADD COLUMN IF NOT EXISTS \w+ /);
        expect(s.sql, s.file).not.toMatch(/\b(DROP|TRUNCATE|RENAME|MODIFY|UPDATE|DELETE)\b/);
        continue;
      }
      expect(s.sql, s.file).toMatch(/^CREATE (TABLE|MATERIALIZED VIEW|VIEW) IF NOT EXISTS fedstream\.\w+/);
      expect(s.sql, s.file).not.toMatch(/\b(DROP|ALTER|TRUNCATE|RENAME)\b/);
    }
  });

  it('give every table tenant-first ordering, monthly partitions, a TTL and batch deduplication', () => {
    expect(tables.map((t) => /fedstream\.(\w+)/.exec(t.sql)?.[1]).sort()).toEqual([
      'audit_log', 'contributions', 'heartbeats', 'model_versions', 'node_health_1m', 'rejected_updates', 'round_summary', 'rounds', 'telemetry_events', 'updates',
    ]);
    for (const t of tables) {
      expect(t.sql).toMatch(/tenant\s+LowCardinality\(String\)/);
      expect(t.sql).toMatch(/pipeline\s+LowCardinality\(String\)/);
      expect(t.sql).toMatch(/ORDER BY \(tenant, pipeline, /);
      expect(t.sql).toMatch(/PARTITION BY toYYYYMM\(/);
      expect(t.sql).toMatch(/TTL .* \+ INTERVAL \d+ DAY/);
      expect(t.sql).toMatch(/non_replicated_deduplication_window = \d+/);
      expect(t.sql).toMatch(/ratio_of_defaults_for_sparse_serialization = 1/);
      expect(t.sql).toMatch(/ENGINE = (Replacing|Aggregating)MergeTree/);
      // Times are DateTime64(3) in UTC (the per-minute roll-up keeps whole minutes).
      expect(t.sql).not.toMatch(/DateTime64\(3\)/);
    }
  });

  it('never store weights', () => {
    for (const s of statements) expect(s.sql).not.toMatch(/\b(weights|tensors?)\s+(Array|String)/);
  });

  it('use every retention variable', () => {
    const used = new Set(files.flatMap((f) => Object.keys(f.variables)));
    expect([...used].sort()).toEqual(Object.keys(SCHEMA_VARIABLE_DEFAULTS).sort());
  });
});
