/**
 * ClickHouse credentials and TLS against a real ClickHouse server (test/support/clickhouse-server.ts: Debian's
 * clickhouse-server, the only server installable here; 18.16, so this file checks the connection, not the schema):
 * the user and a password from a file or the environment over https verified against the CA; a wrong password, an
 * unknown user, an untrusted certificate and https to the plain port each fail at once with their own code and a
 * message that names the user or the certificate problem, never the password; `fedstream health` with the flags.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsOptionsFrom, createAnalyticsClient, type AnalyticsHealth } from '../../src/analytics/index.ts';
import { createLogger, type FedStreamError } from '../../src/common/index.ts';
import { applyOverrides, parseManifest } from '../../src/config/index.ts';
import { ensureSecurityMaterial, type SecurityMaterial } from '../../scripts/kafka/security.mjs';
import { startClickhouseServer, type ClickhouseServer } from '../support/clickhouse-server.ts';
import { ROOT } from './global-setup.ts';
import { kafkaBrokers } from './helpers.ts';

const PASSWORD = `ch-${Math.random().toString(36).slice(2)}-secret`;
const logLines: string[] = [];
const logger = createLogger('debug', new Writable({ write(chunk, _e, done) { logLines.push(String(chunk)); done(); } }));

let dir = '';
let server: ClickhouseServer;
let tls: SecurityMaterial;
let passwordFile = '';

function manifest(analytics: Record<string, unknown>) {
  return parseManifest({
    apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
    model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
    data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    analytics,
  });
}

async function healthOf(analytics: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<AnalyticsHealth> {
  const client = await createAnalyticsClient({ ...analyticsOptionsFrom(manifest(analytics).analytics, logger, env), requestTimeoutMs: 10_000 });
  try {
    return await client.health();
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fs-ch-server-'));
  tls = ensureSecurityMaterial(path.join(dir, 'tls'), ['admin']);
  passwordFile = path.join(dir, 'password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  server = await startClickhouseServer(path.join(dir, 'server'), { fedstream: PASSWORD }, { cert: path.join(tls.dir, 'broker.pem'), key: path.join(tls.dir, 'broker.key') });
}, 600_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe(`a real ClickHouse server's users and https`, () => {
  it('connects as the user, the password from a file, over https verified against the CA', async () => {
    const h = await healthOf({ clickhouse: server.httpsUrl, user: 'fedstream', password: { file: passwordFile }, tls: { ca: tls.ca } });
    expect(h, h.detail).toMatchObject({ success: true });
    expect(h.detail).toContain(`ClickHouse ${server.version} at ${server.httpsUrl}`);
  });

  it('takes the password from FEDSTREAM_CLICKHOUSE_PASSWORD through the overrides', async () => {
    const env = { FEDSTREAM_CLICKHOUSE_PASSWORD: PASSWORD };
    const m = applyOverrides(manifest({ clickhouse: server.httpsUrl, tls: { ca: tls.ca } }), { clickhouseUser: 'fedstream' }, env);
    expect(JSON.stringify(m)).not.toContain(PASSWORD);
    const client = await createAnalyticsClient(analyticsOptionsFrom(m.analytics, logger, env));
    try {
      expect((await client.health()).success).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('a wrong password or an unknown user: ANALYTICS_AUTH at once, naming the user, never the password', async () => {
    const wrongFile = path.join(dir, 'wrong');
    writeFileSync(wrongFile, 'not-the-password\n');
    for (const [user, file] of [['fedstream', wrongFile], ['nobody', passwordFile]] as const) {
      const t0 = Date.now();
      const h = await healthOf({ clickhouse: server.httpsUrl, user, password: { file }, tls: { ca: tls.ca } });
      expect(h.success).toBe(false);
      expect(h.error).toMatchObject({ code: 'ANALYTICS_AUTH', retriable: false });
      expect(h.error?.message).toContain(user);
      expect(h.error?.message).not.toContain(PASSWORD);
      expect(Date.now() - t0).toBeLessThan(10_000);
    }
  });

  it('an untrusted certificate and https to the plain port: ANALYTICS_TLS when the client is made, saying which, within seconds', async () => {
    const make = (url: string, ca: string) => createAnalyticsClient(analyticsOptionsFrom(manifest({ clickhouse: url, user: 'fedstream', password: { file: passwordFile }, tls: { ca } }).analytics, logger));
    let t0 = Date.now();
    const rogue = await make(server.httpsUrl, tls.rogueCa).then(() => undefined, (e: FedStreamError) => e);
    expect(rogue).toMatchObject({ code: 'ANALYTICS_TLS', retriable: false });
    expect(rogue?.message).toMatch(/certificate CN=localhost issued by CN=FedStream development CA, which is not trusted by the configured CA/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    t0 = Date.now();
    const plain = await make(server.httpUrl.replace('http://127.0.0.1', 'https://localhost'), tls.ca).then(() => undefined, (e: FedStreamError) => e);
    expect(plain).toMatchObject({ code: 'ANALYTICS_TLS' });
    expect(plain?.message).toMatch(/plain HTTP port \(8123\) behind an https:\/\/ URL/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('`fedstream health` with --clickhouse-user, --clickhouse-password-file and --clickhouse-ca', async () => {
    const args = ['health', '--kafka', kafkaBrokers(), '--clickhouse', server.httpsUrl, '--clickhouse-user', 'fedstream', '--clickhouse-password-file', passwordFile, '--clickhouse-ca', tls.ca];
    const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'fedstream.js'), ...args], { cwd: ROOT, env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (b: Buffer) => { text += b.toString(); });
      child.stderr.on('data', (b: Buffer) => { text += b.toString(); });
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, text }));
    });
    expect(out.code, out.text).toBe(0);
    expect(out.text).toMatch(new RegExp(`clickhouse ok +ClickHouse ${server.version.replaceAll('.', '\\.')} at ${server.httpsUrl}`));
    expect(out.text).not.toContain(PASSWORD);
  }, 120_000);

  it('wrote the password into no log line', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((l) => l.includes(PASSWORD))).toEqual([]);
  });
});
