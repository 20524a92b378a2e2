import { mkdtempSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { LIMIT_DEFAULTS, applyOverrides, loadManifest, parseManifest, parseDuration } from '../../src/config/index.ts';
import { pipelineTopics } from '../../src/protocol/index.ts';

const pipelinesDir = new URL('../../pipelines/', import.meta.url).pathname;
const base = () => parse(`
apiVersion: fedstream/v1
tenant: acme
name: p1
model: { inputShape: [4], layers: [{ type: dense, units: 2, activation: softmax }] }
data: { source: mnist, nodes: 3 }
rounds: { count: 2, targetUpdates: 3, minUpdates: 2 }
`) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- a free-form YAML tree that the tests break on purpose

function errorOf(fn: () => unknown): any { // eslint-disable-line @typescript-eslint/no-explicit-any -- the error's shape is what is under test
  try { fn(); } catch (e) { return e; }
  throw new Error('expected an error');
}

describe('pipeline manifests', () => {
  it('loads every manifest shipped in pipelines/', () => {
    const files = readdirSync(pipelinesDir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const m = loadManifest(join(pipelinesDir, f));
      expect(m.apiVersion).toBe('fedstream/v1');
      expect(m.rounds.minUpdates).toBeLessThanOrEqual(m.rounds.targetUpdates);
    }
  });

  it('resolves the embedded ClickHouse path against the manifest\'s directory, not the working directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedstream-manifest-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, JSON.stringify({ ...base(), analytics: { path: 'data/ch' } }));
    expect(loadManifest(file).analytics.path).toBe(join(dir, 'data/ch'));
    writeFileSync(file, JSON.stringify(base()));
    expect(loadManifest(file).analytics.path).toBe(join(dir, '.fedstream/clickhouse'));
    // A flag or variable is the user's own, typed where they stand: it resolves against the working directory.
    expect(applyOverrides(loadManifest(file), { clickhousePath: 'mine' }, {}).analytics.path).toBe('mine');
  });

  it('fills defaults', () => {
    const m = parseManifest(base());
    expect(m.training).toEqual({ epochs: 1, batchSize: 10, learningRate: 0.05, optimizer: 'sgd' });
    expect(m.topics.chunkSizeBytes).toBeLessThan(1_048_576);
    expect(m.analytics.database).toBe('fedstream');
  });

  it('names the path of an unknown key', () => {
    const raw = base();
    raw.rounds.rouns = 3;
    const e = errorOf(() => parseManifest(raw, 'p.yaml'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.path).toBe('rounds');
    expect(e.message).toContain('unknown key (rouns)');
    expect(e.message).toContain('p.yaml');
  });

  it('names the path and expectation of a bad value', () => {
    const raw = base();
    raw.model.layers[0].units = -2;
    const e = errorOf(() => parseManifest(raw));
    expect(e.path).toBe('model.layers[0].units');
    expect(e.message).toMatch(/expected number to be >0/);
  });

  it('rejects a bad tenant id and a minUpdates above targetUpdates', () => {
    const raw = base();
    raw.tenant = 'Acme Corp';
    raw.rounds.minUpdates = 9;
    const e = errorOf(() => parseManifest(raw));
    const paths = e.details.issues.map((i: { path: string }) => i.path);
    expect(paths).toContain('tenant');
    expect(paths).toContain('rounds.minUpdates');
  });

  it('reports YAML syntax errors with line and column', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-manifest-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'apiVersion: fedstream/v1\ntenant: [unclosed\n');
    const e = errorOf(() => loadManifest(file));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/line \d+, column \d+/);
  });

  it('reports a missing file as CONFIG_NOT_FOUND', () => {
    expect(errorOf(() => loadManifest('/nonexistent/x.yaml')).code).toBe('CONFIG_NOT_FOUND');
  });

  it('lets flags win over environment over manifest, and validates the result', () => {
    const m = parseManifest(base());
    const env = { FEDSTREAM_ROUNDS: '7', FEDSTREAM_KAFKA: 'k:1' };
    expect(applyOverrides(m, {}, env).rounds.count).toBe(7);
    expect(applyOverrides(m, { rounds: 9 }, env).rounds.count).toBe(9);
    expect(applyOverrides(m, {}, env).kafka.brokers).toBe('k:1');
    const e = errorOf(() => applyOverrides(m, { rounds: 'many' }, {}));
    expect(e.path).toBe('--rounds');
    const e2 = errorOf(() => applyOverrides(m, {}, { FEDSTREAM_ROUNDS: '0' }));
    expect(e2.path).toBe('rounds.count');
  });

  it('parses durations and names topics per tenant', () => {
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration(5)).toBe(5);
    // protocol/topics.ts is the one place that names topics.
    expect(pipelineTopics({ tenant: 'acme', name: 'p1' })['dead-letter']).toBe('acme.p1.dead-letter');
  });
});

describe('manifests written before the rounds and limits sections', () => {
  it('move strategy.rounds, targetUpdates, minUpdates, roundTimeoutMs, maxExtensions and maxUpdateNorm, and say so', async () => {
    const { manifestNotes } = await import('../../src/config/index.ts');
    const raw = base();
    delete raw.rounds;
    raw.strategy = { name: 'fedavg', rounds: 4, targetUpdates: 3, minUpdates: 2, roundTimeoutMs: 5000, maxExtensions: 1, maxUpdateNorm: 7, fraction: 0.5 };
    const m = parseManifest(raw);
    expect(m.rounds).toEqual({ count: 4, targetUpdates: 3, minUpdates: 2, timeoutMs: 5000, maxExtensions: 1, targetAliveNodes: false, aliveWindowMs: 15_000 });
    expect(m.limits).toEqual({ ...LIMIT_DEFAULTS, maxUpdateNorm: 7 });
    expect(m.strategy).toEqual({ name: 'fedavg', fraction: 0.5 });
    expect(manifestNotes(m)).toContain('strategy.rounds is now rounds.count; the manifest still loads, but move the key');
  });

  it('refuses a key given in both places, naming the old one', () => {
    const raw = base();
    raw.strategy = { name: 'fedavg', rounds: 4 };
    const e = errorOf(() => parseManifest(raw));
    expect(e.path).toBe('strategy.rounds');
    expect(e.message).toContain('also given as rounds.count');
  });
});
