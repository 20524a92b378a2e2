// The analytics SQL files, checked without an engine: each is named, commented, parameterized,
// tenant- and pipeline-scoped on every table it reads, and documented in docs/analytics.md.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QUERY_NAMES, defaultQueryDir, listQueryNames, loadQuery, parseQueryFile } from '../../src/analytics/queries.ts';
import type { FedStreamError } from '../../src/common/errors.ts';

const TABLES = ['telemetry_events', 'heartbeats', 'rounds', 'updates', 'rejected_updates', 'model_versions', 'contributions', 'audit_log', 'node_health_1m', 'round_summary', 'round_stats'];
const docs = readFileSync(join(defaultQueryDir(), '..', '..', '..', 'docs', 'analytics.md'), 'utf8');

function errorOf(fn: () => unknown): FedStreamError {
  try {
    fn();
  } catch (e) {
    return e as FedStreamError;
  }
  throw new Error('expected an error');
}

describe('query files', () => {
  it('are exactly the named queries', () => {
    expect(listQueryNames()).toEqual([...QUERY_NAMES].sort());
  });

  for (const name of QUERY_NAMES) {
    describe(name, () => {
      const q = loadQuery(name);

      it('has a header saying what it answers, its parameters and its columns', () => {
        expect(q.summary.length).toBeGreaterThan(20);
        expect(q.header).toMatch(/^Parameters: /m);
        expect(q.header).toMatch(/^Columns: /m);
        const declared = /^Parameters: (.*)$/m.exec(q.header)![1]!;
        for (const p of q.parameters) expect(declared, `{${p.name}:${p.type}} in the header`).toContain(`{${p.name}:${p.type}}`);
      });

      it('takes {tenant:String} and {pipeline:String} and filters every table it reads by both', () => {
        expect(q.parameters.slice(0, 2)).toEqual([{ name: 'tenant', type: 'String' }, { name: 'pipeline', type: 'String' }]);
        const reads = [...q.sql.matchAll(/\b(?:FROM|JOIN)\s+([a-z_0-9]+)/g)].map((m) => m[1]!).filter((t) => TABLES.includes(t));
        expect(reads.length).toBeGreaterThan(0);
        const tenantFilters = q.sql.match(/tenant = \{tenant:String\}/g)?.length ?? 0;
        const pipelineFilters = q.sql.match(/pipeline = \{pipeline:String\}/g)?.length ?? 0;
        expect(tenantFilters, `${reads.join(', ')}`).toBeGreaterThanOrEqual(reads.length);
        expect(pipelineFilters).toBe(tenantFilters);
        // Each table read is followed by its own tenant filter, before the next table is read.
        const positions = [...q.sql.matchAll(/\b(?:FROM|JOIN)\s+([a-z_0-9]+)/g)].filter((m) => TABLES.includes(m[1]!)).map((m) => m.index!);
        positions.forEach((at, i) => {
          const next = positions[i + 1] ?? q.sql.length;
          expect(q.sql.slice(at, next), `filter after ${q.sql.slice(at, at + 40)}`).toMatch(/tenant = \{tenant:String\} AND pipeline = \{pipeline:String\}/);
        });
      });

      it('reads the ReplacingMergeTree tables FINAL, so that redelivered rows count once', () => {
        for (const m of q.sql.matchAll(/\b(?:FROM|JOIN)\s+(rounds|updates|rejected_updates|model_versions|contributions|audit_log)\b(\s+FINAL)?/g)) {
          expect(m[2], `${m[1]} in ${name}`).toBeDefined();
        }
      });

      it('is documented in docs/analytics.md', () => {
        expect(docs).toContain(`### ${name}\n`);
      });
    });
  }

  it('refuses a file without its header or with more than one statement', () => {
    expect(errorOf(() => parseQueryFile('x', 'SELECT 1;')).message).toMatch(/must start with a comment "-- x: /);
    expect(errorOf(() => parseQueryFile('x', '-- x: what\nSELECT 1;\nSELECT 2;')).message).toMatch(/exactly one statement, found 2/);
    const ok = parseQueryFile('x', '-- x: one thing\n-- Parameters: {a:UInt64}\nSELECT {a:UInt64} + {a:UInt64}, {b:String}; -- trailing\n');
    expect(ok.sql).toBe('SELECT {a:UInt64} + {a:UInt64}, {b:String}');
    expect(ok.parameters).toEqual([{ name: 'a', type: 'UInt64' }, { name: 'b', type: 'String' }]);
  });

  it('refuses unknown names with the list of known ones', () => {
    expect(errorOf(() => loadQuery('nope')).message).toMatch(/no query named "nope".*known: audit_trail, convergence/);
    expect(errorOf(() => loadQuery('../etc/passwd')).code).toBe('ANALYTICS_QUERY');
  });
});
