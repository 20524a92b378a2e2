import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/config/index.ts';
import { readSecret } from '../../src/common/index.ts';
import { explainKafkaSecurityError, probeTls, resolveKafkaSecurity } from '../../src/transport/kafka/security.ts';
import { probeClickhouseTls } from '../../src/analytics/clickhouse/tls-probe.ts';
// The same code that makes the secured development broker's certificates.
import { ensureSecurityMaterial } from '../../scripts/kafka/security.mjs';

const dir = mkdtempSync(join(tmpdir(), 'fs-security-'));
const material = ensureSecurityMaterial(join(dir, 'security'), ['admin', 'node-1']);

function manifestWith(security: unknown) {
  return parseManifest({
    apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
    model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
    data: { source: 'mnist' },
    rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    kafka: { brokers: 'localhost:9093', security },
  });
}

function errorOf(fn: () => unknown): { code: string; message: string; details: { path?: string } } {
  try { fn(); } catch (e) { return e as never; }
  throw new Error('expected an error');
}

describe('kafka.security in a manifest', () => {
  it('refuses a password written in place, without repeating it', () => {
    const e = errorOf(() => manifestWith({ tls: {}, sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'hunter2' } }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.details.path).toBe('kafka.security.sasl.password');
    expect(e.message).toContain('secrets are not accepted inline');
    expect(e.message).not.toContain('hunter2');
  });

  it('refuses SASL PLAIN without TLS', () => {
    const e = errorOf(() => manifestWith({ sasl: { mechanism: 'plain', username: 'u', password: { env: 'P' } } }));
    expect(e.details.path).toBe('kafka.security.sasl.mechanism');
    expect(e.message).toContain('over TLS only');
  });

  it('wants exactly one of file or env for a secret, and cert with key', () => {
    expect(errorOf(() => manifestWith({ tls: {}, sasl: { mechanism: 'scram-sha-256', username: 'u', password: { file: 'a', env: 'B' } } })).message).toContain('exactly one of file or env');
    expect(errorOf(() => manifestWith({ tls: { cert: 'c.pem' } })).details.path).toBe('kafka.security.tls.cert');
  });
});

describe('resolving client security', () => {
  it('reads the password from a file or the environment and says SASL_SSL with the principal', () => {
    const pw = join(dir, 'pw');
    writeFileSync(pw, 's3cret\n');
    const m = manifestWith({ tls: { ca: material.ca }, sasl: { mechanism: 'scram-sha-512', username: 'aggregator', password: { file: pw } } });
    const r = resolveKafkaSecurity(m.kafka.security);
    expect(r.protocol).toBe('SASL_SSL');
    expect(r.principal).toBe('User:aggregator');
    expect(r.mechanism).toBe('SCRAM-SHA-512');
    expect(r.sasl).toMatchObject({ mechanism: 'scram-sha-512', username: 'aggregator', password: 's3cret' });
    expect(r.ssl?.rejectUnauthorized).toBe(true);
    const fromEnv = resolveKafkaSecurity(manifestWith({ tls: {}, sasl: { mechanism: 'plain', username: 'n', password: { env: 'FS_PW' } } }).kafka.security, { env: { FS_PW: 'x' } });
    expect(fromEnv.sasl).toMatchObject({ password: 'x' });
  });

  it('names the missing file or variable, never a value', () => {
    expect(() => readSecret({ file: join(dir, 'nope') }, 'kafka.security.sasl.password')).toThrow(/secret file .*nope does not exist/);
    expect(() => readSecret({ env: 'FS_UNSET_VAR' }, 'x', {})).toThrow(/FS_UNSET_VAR is not set/);
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    const e = errorOf(() => resolveKafkaSecurity({ tls: { ca: notPem } }));
    expect(e.details.path).toBe('kafka.security.tls.ca');
    expect(e.message).toContain('is not a PEM certificate');
  });

  it('plaintext when there is no security section', () => {
    expect(resolveKafkaSecurity(undefined)).toEqual({ protocol: 'PLAINTEXT' });
  });
});

describe('the TLS probe', () => {
  let tlsServer: tls.Server;
  let plainServer: net.Server;
  let otherName: tls.Server;
  let tlsPort = 0;
  let plainPort = 0;
  let otherPort = 0;
  beforeAll(async () => {
    tlsServer = tls.createServer({ key: readFileSync(join(material.dir, 'broker.key')), cert: readFileSync(join(material.dir, 'broker.pem')) }, (s) => s.end());
    // What a plaintext Kafka listener does with a ClientHello: reads a nonsense size and closes.
    plainServer = net.createServer((s) => s.once('data', () => s.destroy()));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => plainServer.listen(0, '127.0.0.1', r));
    // The same certificate served on a loopback address it does not name.
    otherName = tls.createServer({ key: readFileSync(join(material.dir, 'broker.key')), cert: readFileSync(join(material.dir, 'broker.pem')) }, (s) => s.end());
    await new Promise<void>((r) => otherName.listen(0, '127.0.0.2', r));
    otherPort = (otherName.address() as net.AddressInfo).port;
    tlsPort = (tlsServer.address() as net.AddressInfo).port;
    plainPort = (plainServer.address() as net.AddressInfo).port;
  });
  afterAll(() => { tlsServer.close(); plainServer.close(); otherName.close(); });

  it('passes a broker whose certificate the CA signed for its name', async () => {
    await expect(probeTls(`localhost:${tlsPort}`, resolveKafkaSecurity({ tls: { ca: material.ca } }))).resolves.toBeUndefined();
  });

  it('names the certificate and why it is not trusted', async () => {
    const err = await probeTls(`localhost:${tlsPort}`, resolveKafkaSecurity({ tls: { ca: material.rogueCa } })).catch((e) => e);
    expect(err.code).toBe('TRANSPORT_TLS');
    expect(err.retriable).toBe(false);
    expect(err.message).toContain('certificate CN=localhost issued by CN=FedStream development CA');
    expect(err.message).toContain(`CA file ${material.rogueCa}`);
  });

  it('says a plaintext port does not speak TLS', async () => {
    const err = await probeTls(`127.0.0.1:${plainPort}`, resolveKafkaSecurity({ tls: { ca: material.ca } })).catch((e) => e);
    expect(err.code).toBe('TRANSPORT_TLS');
    expect(err.message).toContain('does not speak TLS: is this a plaintext listener?');
  });

  it('says when the name is not the certificate\'s', async () => {
    // The certificate names localhost and 127.0.0.1, not 127.0.0.2.
    const err = await probeTls(`127.0.0.2:${otherPort}`, resolveKafkaSecurity({ tls: { ca: material.ca } })).catch((e) => e);
    expect(err.code).toBe('TRANSPORT_TLS');
    expect(err.message).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list/);
  });

  // The same probe (src/common/tls-probe.ts) under ClickHouse's codes: the outcome is shared, the wording is each's.
  it('ClickHouse: trusted passes, untrusted and plaintext are ANALYTICS_TLS, unreachable is left to the requests', async () => {
    const ca = readFileSync(material.ca);
    await expect(probeClickhouseTls(new URL(`https://localhost:${tlsPort}`), { ca })).resolves.toBeUndefined();
    const untrusted = await probeClickhouseTls(new URL(`https://localhost:${tlsPort}`), { ca: readFileSync(material.rogueCa) });
    expect(untrusted?.code).toBe('ANALYTICS_TLS');
    expect(untrusted?.message).toContain('certificate CN=localhost issued by CN=FedStream development CA');
    const plain = await probeClickhouseTls(new URL(`https://127.0.0.1:${plainPort}`), { ca });
    expect(plain?.message).toContain('does not speak TLS: is this the plain HTTP port (8123)');
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(probeClickhouseTls(new URL(`https://127.0.0.1:${closedPort}`), { ca })).resolves.toBeUndefined();
  });

  it('ClickHouse: a port that waits for a request line is named after the handshake timeout', async () => {
    const silent = net.createServer(() => { /* reads the ClientHello, answers nothing, like ClickHouse's HTTP port */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const err = await probeClickhouseTls(new URL(`https://127.0.0.1:${port}`), { ca: readFileSync(material.ca), timeoutMs: 300 });
      expect(err?.code).toBe('ANALYTICS_TLS');
      expect(err?.message).toContain('no TLS handshake within 300 ms');
    } finally { silent.close(); }
  });
});

describe('explaining kafkajs security failures', () => {
  const r = resolveKafkaSecurity(manifestWith({ tls: { ca: material.ca }, sasl: { mechanism: 'scram-sha-256', username: 'node-1', password: { env: 'P' } } }).kafka.security, { env: { P: 'p' } });
  it('authentication: principal and mechanism', () => {
    const e = Object.assign(new Error('SASL SCRAM SHA256 authentication failed: invalid credentials'), { name: 'KafkaJSSASLAuthenticationError' });
    const got = explainKafkaSecurityError(e, r, 'connect producer');
    expect(got?.code).toBe('TRANSPORT_AUTH');
    expect(got?.message).toContain('authentication failed for principal User:node-1 with mechanism SCRAM-SHA-256');
    expect(got?.message).not.toContain('"p"');
  });
  it('authorization: principal and the topic', () => {
    const inner = Object.assign(new Error('Not authorized to access topics: [Topic authorization failed]'), { name: 'KafkaJSProtocolError', type: 'TOPIC_AUTHORIZATION_FAILED' });
    const e = Object.assign(new Error('wrapped'), { name: 'KafkaJSNonRetriableError', originalError: inner });
    const got = explainKafkaSecurityError(e, r, 'send', 'acme.p.control');
    expect(got?.code).toBe('TRANSPORT_AUTHORIZATION');
    expect(got?.message).toContain('principal User:node-1 is not authorized for topic acme.p.control (TOPIC_AUTHORIZATION_FAILED)');
  });
  it('leaves other errors alone', () => {
    expect(explainKafkaSecurityError(new Error('boom'), r, 'send')).toBeUndefined();
  });
});

describe('security from flags and environment', () => {
  it('--kafka-ca turns TLS on; mechanism, user and password file turn SASL on; the password may sit in the environment', async () => {
    const { applyOverrides } = await import('../../src/config/index.ts');
    const m = manifestWith(undefined);
    const flagged = applyOverrides(m, { kafkaCa: material.ca, kafkaSaslMechanism: 'scram-sha-512', kafkaUser: 'node-1', kafkaPasswordFile: '/run/secrets/pw' }, {});
    expect(flagged.kafka.security).toEqual({ tls: { ca: material.ca }, sasl: { mechanism: 'scram-sha-512', username: 'node-1', password: { file: '/run/secrets/pw' } } });
    const fromEnv = applyOverrides(m, {}, { FEDSTREAM_KAFKA_CA: material.ca, FEDSTREAM_KAFKA_SASL_MECHANISM: 'scram-sha-256', FEDSTREAM_KAFKA_USER: 'u', FEDSTREAM_KAFKA_PASSWORD: 'not-in-the-manifest' });
    expect(fromEnv.kafka.security?.sasl).toEqual({ mechanism: 'scram-sha-256', username: 'u', password: { env: 'FEDSTREAM_KAFKA_PASSWORD' } });
    expect(JSON.stringify(fromEnv)).not.toContain('not-in-the-manifest');
    expect(errorOf(() => applyOverrides(m, { kafkaSaslMechanism: 'plain', kafkaUser: 'u', kafkaPasswordFile: 'f' }, {})).message).toContain('over TLS only');
  });
});
