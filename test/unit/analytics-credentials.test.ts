import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyticsOptionsFrom } from '../../src/analytics/index.ts';
import { createLogger } from '../../src/common/index.ts';
import { applyOverrides, parseManifest } from '../../src/config/index.ts';

const logger = createLogger('silent');
const base = (analytics: unknown) => parseManifest({
  apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
  model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
  data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 }, analytics,
});

describe('ClickHouse credentials', () => {
  it('reads the password from a file or the environment, never from the manifest itself', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-ch-'));
    writeFileSync(join(dir, 'pw'), 'ch-secret\n');
    const m = base({ clickhouse: 'https://ch.example.org:8443', user: 'fedstream_sink', password: { file: join(dir, 'pw') } });
    expect(analyticsOptionsFrom(m.analytics, logger)).toMatchObject({ url: 'https://ch.example.org:8443', username: 'fedstream_sink', password: 'ch-secret' });
    const fromEnv = applyOverrides(base({ clickhouse: 'http://ch:8123' }), { clickhouseUser: 'u' }, { FEDSTREAM_CLICKHOUSE_PASSWORD: 'env-secret' });
    expect(fromEnv.analytics.password).toEqual({ env: 'FEDSTREAM_CLICKHOUSE_PASSWORD' });
    expect(JSON.stringify(fromEnv)).not.toContain('env-secret');
    expect(analyticsOptionsFrom(fromEnv.analytics, logger, { FEDSTREAM_CLICKHOUSE_PASSWORD: 'env-secret' })).toMatchObject({ username: 'u', password: 'env-secret' });
  });

  it('refuses a password inside the URL or written in place, without repeating it', () => {
    expect(() => base({ clickhouse: 'http://default:hunter2@ch:8123' })).toThrow(/a password in the URL is refused/);
    try { base({ clickhouse: 'http://ch:8123', password: 'hunter2' }); } catch (e) {
      expect((e as Error).message).toContain('analytics.password: secrets are not accepted inline');
      expect((e as Error).message).not.toContain('hunter2');
      return;
    }
    throw new Error('expected a refusal');
  });

  it('reads the CA for https, naming the field when it cannot', () => {
    const m = base({ clickhouse: 'https://ch:8443', tls: { ca: '/nonexistent/ca.pem' } });
    expect(() => analyticsOptionsFrom(m.analytics, logger)).toThrow(/analytics\.tls\.ca.*cannot read \/nonexistent\/ca\.pem/);
  });
});
