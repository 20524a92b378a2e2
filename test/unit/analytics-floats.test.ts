// Decoding ClickHouse's JSON floats (output_format_json_quote_denormals = 1) back into NaN, ±Infinity and -0, by
// column type, so that a String column holding "inf" stays a string (src/analytics/clickhouse/floats.ts).
import { describe, expect, it } from 'vitest';
import { decodeByType, decodeFloat, parseType, rowsFromCompact } from '../../src/analytics/clickhouse/floats.ts';
import { fixed, optNum, pct } from '../../src/analytics/reports/format.ts';

describe('non-finite floats read back from ClickHouse JSON', () => {
  it('parses nested, named and quoted type names', () => {
    expect(parseType('Map(LowCardinality(String), Float64)')).toEqual({
      name: 'Map', args: [{ name: 'LowCardinality', args: [{ name: 'String', args: [] }] }, { name: 'Float64', args: [] }],
    });
    expect(parseType("Tuple(a DateTime64(3, 'UTC'), `b c` Float64)").args.map((t) => t.name)).toEqual(['DateTime64', 'Float64']);
    expect(parseType("Enum8('a, b' = 1)").args).toHaveLength(1);
  });

  it('turns the quoted denormals into numbers and leaves everything else alone', () => {
    expect([decodeFloat('nan'), decodeFloat('-nan'), decodeFloat('inf'), decodeFloat('-inf'), decodeFloat('+inf')]).toEqual([NaN, NaN, Infinity, -Infinity, Infinity]);
    expect(Object.is(decodeFloat(-0), -0)).toBe(true);
    expect(decodeFloat(Number.MAX_VALUE)).toBe(Number.MAX_VALUE);
    expect(decodeFloat('1.5')).toBe('1.5');
  });

  it('decodes floats at any depth, only in float positions', () => {
    const t = parseType('Tuple(String, Array(Nullable(Float64)), Map(String, Float64))');
    expect(decodeByType(t, ['inf', ['nan', null, '-inf', -0], { x: 'inf', y: 2 }])).toEqual(['inf', [NaN, null, -Infinity, -0], { x: Infinity, y: 2 }]);
    expect(decodeByType(parseType('Tuple(id String, v Float64)'), { id: 'nan', v: 'nan' })).toEqual({ id: 'nan', v: NaN });
    expect(decodeByType(parseType('String'), 'inf')).toBe('inf');
  });

  it('maps a compact result to rows by name', () => {
    const rows = rowsFromCompact<Record<string, unknown>>([['id', 'f'], ['String', 'Float64'], ['nan', 'nan'], ['-inf', '-inf']]);
    expect(rows).toEqual([{ id: 'nan', f: NaN }, { id: '-inf', f: -Infinity }]);
    expect(rowsFromCompact([])).toEqual([]);
    expect(() => rowsFromCompact([['a'], ['String', 'UInt8']])).toThrow(/names and types/);
  });

  it('prints a stored non-finite value as itself in reports, a missing one as a dash, and plots neither', () => {
    expect([Infinity, -Infinity, NaN, -0, null, 0.25].map((v) => fixed(v))).toEqual(['+Inf', '-Inf', 'NaN', '-0', '—', '0.25']);
    expect([Infinity, NaN, -0, undefined, 0.25].map((v) => pct(v))).toEqual(['+Inf', 'NaN', '0.0%', '—', '25.0%']);
    expect([Infinity, NaN, null, 2].map(optNum)).toEqual([null, null, null, 2]);
  });
});
