// The sink's ClickHouse endpoint (analytics/clickhouse/endpoint.ts) with @clickhouse/client, the official client,
// on the other end: queries with bound parameters, inserts, errors with ClickHouse's code, and the discovery file.
// (The cross-process use, report and health against a running sink, is in operations.test.ts.)
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENDPOINT_FILE, createAnalyticsClient, toAnalyticsError, discoverEndpoint, serveEmbedded, type AnalyticsClient, type EmbeddedEndpoint } from '../../src/analytics/index.ts';
import { createLogger } from '../../src/common/logger.ts';

const logger = createLogger('silent');
let dir: string;
let engine: AnalyticsClient;
let endpoint: EmbeddedEndpoint;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedstream-endpoint-'));
  engine = await createAnalyticsClient({ path: dir, database: 'served', logger });
  await engine.client.command({ query: 'CREATE TABLE IF NOT EXISTS t (id UInt32, name String) ENGINE = MergeTree ORDER BY id' });
  endpoint = await serveEmbedded(engine, { logger });
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  await engine?.close();
});

describe('the embedded ClickHouse served over HTTP', () => {
  it('answers @clickhouse/client: ping, inserts, parameterised queries in the served database', async () => {
    const client = createClient({ url: endpoint.url });
    try {
      expect((await client.ping()).success).toBe(true);
      await client.insert({ table: 't', values: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }, { id: 3, name: 'c' }], format: 'JSONEachRow' });
      const rs = await client.query({ query: 'SELECT id, name, currentDatabase() AS db FROM t WHERE id >= {min:UInt32} AND name IN {names:Array(String)} ORDER BY id', query_params: { min: 2, names: ['b', 'c', 'z'] }, format: 'JSONEachRow' });
      expect(await rs.json()).toEqual([{ id: 2, name: 'b', db: 'served' }, { id: 3, name: 'c', db: 'served' }]);
    } finally {
      await client.close();
    }
  });

  it('fails a bad statement with ClickHouse\'s code, which the project\'s client maps to ANALYTICS_QUERY', async () => {
    const remote = await createAnalyticsClient({ url: endpoint.url, database: 'served', logger });
    try {
      const err = await remote.client.query({ query: 'SELECT nope FROM t', format: 'JSONEachRow' }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: '47', type: 'UNKNOWN_IDENTIFIER' });
      expect(toAnalyticsError(err, 'a query')).toMatchObject({ code: 'ANALYTICS_QUERY', retriable: false });
      expect((await remote.health()).success).toBe(true);
    } finally {
      await remote.close();
    }
  });

  it('writes where it listens into the data directory (mode 0600), which another process finds', () => {
    const file = join(dir, ENDPOINT_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(file, 'utf8'));
    expect(info).toMatchObject({ url: endpoint.url, pid: process.pid, database: 'served' });
    // This process's own file is not an endpoint for itself; another live process's is; a dead one's is not.
    expect(discoverEndpoint(dir)).toBeUndefined();
    writeFileSync(file, JSON.stringify({ ...info, pid: process.ppid }));
    expect(discoverEndpoint(dir)).toMatchObject({ url: endpoint.url, pid: process.ppid });
    writeFileSync(file, JSON.stringify({ ...info, pid: 2 ** 22 + 12345 }));
    expect(discoverEndpoint(dir)).toBeUndefined();
    writeFileSync(file, JSON.stringify(info));
  });

  it('removes its file when it stops', async () => {
    const second = mkdtempSync(join(tmpdir(), 'fedstream-endpoint-2-'));
    const again = await serveEmbedded({ client: engine.client, location: second, database: 'served' }, { logger });
    expect(existsSync(join(second, ENDPOINT_FILE))).toBe(true);
    await again.close();
    expect(existsSync(join(second, ENDPOINT_FILE))).toBe(false);
  });
});
