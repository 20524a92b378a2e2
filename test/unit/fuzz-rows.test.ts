// Property-based fuzzing of the sink's row mapping (issue 13, "Fuzzing"): records of every kind with extreme values
// (±Infinity, NaN, −0, longs at ±(2^53 − 1), negative counts, huge strings, empty maps, odd Kafka coordinates) become
// rows that their ClickHouse tables hold exactly as they are — every column's type read from schemas/clickhouse — or a
// CodecError naming the record's field and the column. Never a row that ClickHouse would refuse, wrap or round.
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RECORD_KINDS, type AuditEventRecord, type ModelUpdateRecord, type ModelVersionRecord, type RecordKind, type RoundControlRecord, type TelemetryEventRecord } from '../../src/codec/index.ts';
import { parseType } from '../../src/codec/schemas.ts';
import {
  auditRow, contributionRows, modelVersionRow, rejectedUpdateRow, roundRow, telemetryRow, updateRow, type Row, type RowSource,
} from '../../src/analytics/sink/rows.ts';
import { CodecError, type FedStreamError } from '../../src/common/errors.ts';
import { avroArbitrary, FUZZ_TIMEOUT_MS, fuzzParams, typed } from '../support/fuzz.ts';

/** Column name → { type, required } of each table, from the DDL files. */
function tableColumns(): Map<string, Map<string, { type: string; required: boolean }>> {
  const dir = new URL('../../schemas/clickhouse/', import.meta.url);
  const tables = new Map<string, Map<string, { type: string; required: boolean }>>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sql')).sort()) {
    const sql = readFileSync(new URL(file, dir), 'utf8');
    for (const m of sql.matchAll(/CREATE TABLE IF NOT EXISTS \$\{database\}\.(\w+)\s*\(\n([\s\S]*?)\n\)/g)) {
      const columns = new Map<string, { type: string; required: boolean }>();
      for (const line of (m[2] as string).split('\n')) {
        const c = /^\s+(\w+)\s+(.+?)(?:\s+(DEFAULT|MATERIALIZED|COMMENT|CODEC)\b.*?)?,?$/.exec(line);
        if (c) columns.set(c[1] as string, { type: c[2] as string, required: c[3] !== 'DEFAULT' && c[3] !== 'MATERIALIZED' });
      }
      tables.set(m[1] as string, columns);
    }
    // Columns later files add (006_privacy.sql: ALTER TABLE ... ADD COLUMN IF NOT EXISTS <name> <type> ...).
    for (const m of sql.matchAll(/ALTER TABLE \$\{database\}\.(\w+)\s+((?:\s*ADD COLUMN IF NOT EXISTS [^\n]+\n?)+)/g)) {
      const columns = tables.get(m[1] as string);
      if (!columns) continue;
      for (const c of (m[2] as string).matchAll(/ADD COLUMN IF NOT EXISTS (\w+) (.+?)(?:\s+(DEFAULT|MATERIALIZED|COMMENT|CODEC|AFTER)\b.*?)?,?$/gm)) {
        columns.set(c[1] as string, { type: c[2] as string, required: c[3] !== 'DEFAULT' && c[3] !== 'MATERIALIZED' });
      }
    }
  }
  return tables;
}
const TABLES = tableColumns();

const FLOAT_WORDS = new Set(['nan', 'inf', '-inf', '-0']);

/** Why `v` is not a value ClickHouse reads into `type` exactly, or undefined when it is. */
function misfit(type: string, v: unknown): string | undefined {
  const nullable = /^Nullable\((.*)\)$/.exec(type);
  if (nullable) return v === null ? undefined : misfit(nullable[1] as string, v);
  const lc = /^LowCardinality\((.*)\)$/.exec(type);
  if (lc) return misfit(lc[1] as string, v);
  const uint = /^UInt(8|16|32|64)$/.exec(type);
  if (uint) {
    const max = uint[1] === '64' ? Number.MAX_SAFE_INTEGER : 2 ** Number(uint[1]) - 1;
    return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max ? undefined : `not an integer in 0..${max}`;
  }
  if (type.startsWith('DateTime64')) return Number.isSafeInteger(v) ? undefined : 'not integer milliseconds';
  if (type === 'Float64') {
    if (typeof v === 'string') return FLOAT_WORDS.has(v) ? undefined : `the string ${JSON.stringify(v)}`;
    return typeof v === 'number' && Number.isFinite(v) && !Object.is(v, -0) ? undefined : `${String(v)} would not survive JSON`;
  }
  if (type === 'String') return typeof v === 'string' ? undefined : 'not a string';
  const map = /^Map\((?:LowCardinality\(String\)|String), (.*)\)$/.exec(type);
  if (map) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
    for (const [k, item] of Object.entries(v)) {
      const why = misfit(map[1] as string, item);
      if (why) return `[${JSON.stringify(k)}]: ${why}`;
    }
    return undefined;
  }
  return `no check for type ${type}`;
}

function checkRow(table: string, row: Row): void {
  const columns = TABLES.get(table);
  if (!columns) throw new Error(`table ${table} not in schemas/clickhouse`);
  for (const [name, value] of Object.entries(row)) {
    const column = columns.get(name);
    expect(column, `${table}.${name} is not a column`).toBeDefined();
    const why = misfit((column as { type: string }).type, value);
    expect(why, `${table}.${name} = ${JSON.stringify(value)}: ${why}`).toBeUndefined();
  }
  for (const [name, c] of columns) if (c.required) expect(Object.hasOwn(row, name), `${table}.${name} missing`).toBe(true);
  // What the client sends is JSON: the row reads back from it as it is.
  expect(JSON.parse(JSON.stringify(row))).toEqual(row);
}

/** A row error names the record's field and the column. */
function rowWhere(e: FedStreamError): boolean {
  return e instanceof CodecError && e.code === 'CODEC_INVALID' && typeof e.details.field === 'string' && typeof e.details.column === 'string';
}

const recordArbs = Object.fromEntries(
  RECORD_KINDS.map((kind) => {
    const schema = JSON.parse(readFileSync(new URL(`../../schemas/avro/${kind}.avsc`, import.meta.url), 'utf8')) as unknown;
    return [kind, avroArbitrary(parseType(schema, kind)) as fc.Arbitrary<Record<string, unknown>>];
  }),
) as Record<RecordKind, fc.Arbitrary<Record<string, unknown>>>;

const HUGE = 'x'.repeat(1 << 20);
/** A record with, now and then, a megabyte string in place of one of its strings, and an audit event that names a rejected record's coordinates. */
function extreme(kind: RecordKind): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(recordArbs[kind], fc.nat(), fc.boolean(), fc.record({ sourceTopic: fc.constantFrom('t.p.updates', ''), sourcePartition: fc.constantFrom('0', '7', '-1', '4294967296', 'x'), sourceOffset: fc.constantFrom('0', '12', '9007199254740993', '1e3', ''), bytes: fc.constantFrom('100', '-5', '1.5', 'x'), code: fc.constantFrom('norm_bound', 'duplicate', '') }, { requiredKeys: [] })).map(([value, which, huge, details]) => {
    const out = { ...value };
    const strings = Object.keys(out).filter((k) => typeof out[k] === 'string');
    if (huge && strings.length) out[strings[which % strings.length] as string] = HUGE;
    if (kind === 'AuditEvent') out.details = { ...(out.details as object), ...details };
    return out;
  });
}

const sourceArb: fc.Arbitrary<RowSource> = fc.record({
  topic: fc.constantFrom('t.p.telemetry', ''),
  partition: fc.oneof(fc.nat({ max: 100 }), fc.constant(2 ** 31 - 1)),
  offset: fc.oneof({ weight: 8, arbitrary: fc.maxSafeNat().map(String) }, { weight: 1, arbitrary: fc.constantFrom('9007199254740993', '18446744073709551615', '-1', 'x', '') }),
});

const scope = { tenant: 't', pipeline: 'p' };

/** Maps one record as the sink does: every row of it, or the error. */
function rowsOf(kind: RecordKind, r: Record<string, unknown>, s: RowSource): [string, Row][] {
  switch (kind) {
    case 'TelemetryEvent': return [['telemetry_events', telemetryRow(scope, r as unknown as TelemetryEventRecord, s)]];
    case 'RoundControl': return [['rounds', roundRow(scope, r as unknown as RoundControlRecord, s)]];
    case 'ModelUpdate': return [['updates', updateRow(scope, r as unknown as ModelUpdateRecord, 1234, s)]];
    case 'AuditEvent': {
      const rejected = rejectedUpdateRow(scope, r as unknown as AuditEventRecord, s);
      return [['audit_log', auditRow(scope, r as unknown as AuditEventRecord, s)], ...(rejected ? [['rejected_updates', rejected] as [string, Row]] : [])];
    }
    case 'ModelVersion': {
      const v = r as unknown as ModelVersionRecord;
      return [['model_versions', modelVersionRow(scope, v, s)], ...contributionRows(scope, v, s).map((c) => ['contributions', c] as [string, Row])];
    }
  }
}

describe('fuzz: the sink\'s row mapping', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('reads the column types of every table the sink writes', () => {
    for (const table of ['telemetry_events', 'rounds', 'updates', 'audit_log', 'rejected_updates', 'model_versions', 'contributions']) expect(TABLES.get(table)?.size).toBeGreaterThan(5);
    expect(TABLES.get('rounds')?.get('min_updates')?.type).toBe('UInt32');
  });

  it.each(RECORD_KINDS.map((k) => [k]))('%s with extreme values: rows their columns hold exactly, or CODEC_INVALID naming the field and the column', (kind) => {
    fc.assert(
      fc.property(extreme(kind), sourceArb, (record, source) => {
        const out = typed(() => rowsOf(kind, record, source), rowWhere);
        if (!out.ok) return;
        for (const [table, row] of out.value) {
          checkRow(table, row);
          // Longs arrive as themselves: never rounded, never sign-flipped.
          if ('round' in record && typeof record.round === 'number' && table !== 'rejected_updates') expect(row.round).toBe(record.round);
          for (const [field, column] of [['createdAt', 'created_at'], ['eventTime', 'event_time'], ['numExamples', 'num_examples'], ['deadline', 'deadline']] as const) {
            if (field in record && column in row && !(kind === 'RoundControl' && field === 'eventTime')) expect(row[column]).toBe(record[field]);
          }
        }
      }),
      fuzzParams(`rows.${kind}`, 500),
    );
  });
});
