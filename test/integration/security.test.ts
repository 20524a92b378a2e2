/**
 * Issue 11 on a real secured broker (`scripts/kafka.mjs start --secure`: SASL_SSL beside PLAINTEXT, KRaft's
 * StandardAuthorizer with allow.everyone.if.no.acl.found=false, SCRAM users): the whole pipeline over SASL_SSL with
 * least-privilege ACLs, each refusal observed on the broker, and no secret in any log line or ClickHouse row.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/common/index.ts';
import { parseManifest, type Manifest } from '../../src/config/index.ts';
import { ephemeralParticipants, type EphemeralParticipants } from '../../src/protocol/index.ts';
import { accessPlan, pipelineTopics } from '../../src/protocol/index.ts';
import { compose, runService } from '../../src/service/index.ts';
import { createKafkaAclAdmin, createTransport, resolveKafkaSecurity, type Transport } from '../../src/transport/index.ts';
import { readVersions } from '../support/pipeline-log.ts';
import { ROOT, runKafkaScript } from './global-setup.ts';
import { kafkaBrokers, uniqueName } from './helpers.ts';

const STATE_DIR = path.join(ROOT, '.kafka', 'secure-test');

let secureBroker = '';
let plainBroker = '';
let securityDir = '';
const passwords: Record<string, string> = {};

/** Every log line of every component in this file, to scan for secrets at the end. */
const logLines: string[] = [];
const logger: Logger = createLogger('debug', new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); done(); } }));

function security(user: string, o: { ca?: string; mechanism?: 'scram-sha-256' | 'scram-sha-512'; passwordEnv?: string } = {}) {
  return {
    tls: { ca: o.ca ?? path.join(securityDir, 'ca.pem') },
    sasl: { mechanism: o.mechanism ?? 'scram-sha-512', username: user, password: o.passwordEnv ? { env: o.passwordEnv } : { file: path.join(securityDir, 'users', `${user}.password`) } },
  } as const;
}

/** Each pipeline's participants: its aggregator's and nodes' keys, made with its manifest (in memory). */
const teams = new Map<string, EphemeralParticipants<Manifest>>();

function manifestFor(tenant: string, name: string, analyticsPath: string): Manifest {
  const team = ephemeralParticipants(parseManifest({
    apiVersion: 'fedstream/v1', tenant, name,
    model: { inputShape: [784], seed: 3, layers: [{ type: 'dense', units: 16, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 3, partition: 'iid', testExamples: 200, trainExamples: 600, seed: 5 },
    training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    rounds: { count: 2, targetUpdates: 3, minUpdates: 3, timeoutMs: 120_000 },
    analytics: { path: analyticsPath },
  }), ['node-1', 'node-2', 'node-3']);
  teams.set(`${tenant}.${name}`, team);
  return team.manifest;
}

const as = (m: Manifest, brokers: string, user?: string): Manifest =>
  ({ ...m, kafka: { brokers, ...(user ? { security: parseManifest({ ...m, kafka: { brokers, security: security(user) } }).kafka.security } : {}) } });

async function grant(m: Pick<Manifest, 'tenant' | 'name'>, role: 'node' | 'aggregator' | 'sink', principal: string, nodeId?: string): Promise<void> {
  const admin = createKafkaAclAdmin({ brokers: [secureBroker], security: resolveKafkaSecurity(security('admin')), logger });
  try {
    await admin.create(accessPlan(m, { role, principal, ...(nodeId ? { nodeId } : {}) }));
  } finally {
    await admin.close();
  }
}

/** Runs aggregator, three nodes and the sink of `m` (one principal each when `secured`); the versions' sha256s. */
async function runPipeline(m: Manifest, brokers: string, secured: boolean): Promise<string[]> {
  const users = { aggregator: 'aggregator', sink: 'sink', nodes: ['node-1', 'node-2', 'node-3'] };
  // Each process has its own key only (Kafka credentials and signing keys are separate layers of the trust model).
  const team = teams.get(`${m.tenant}.${m.name}`)!;
  const only = (id: string) => (who: string) => (who === id ? team.signerFor(id) : undefined);
  const aggregatorWiring = compose({ manifest: as(m, brokers, secured ? users.aggregator : undefined), logger, signers: only('aggregator') });
  const sinkWiring = compose({ manifest: as(m, brokers, secured ? users.sink : undefined), logger });
  const nodeWirings = users.nodes.map((u) => compose({ manifest: as(m, brokers, secured ? u : undefined), logger, signers: only(u) }));
  try {
    const aggregator = await aggregatorWiring.aggregator({ evaluate: false });
    const nodes = await Promise.all(nodeWirings.map((w, i) => w.node(users.nodes[i]!, { heartbeatMs: 500 })));
    const sink = await sinkWiring.sink({ untilFinished: true });
    const runs = [runService(aggregator, { logger, exitAfterFirst: false }), ...[...nodes, sink].map((s) => runService(s, { logger, exitAfterFirst: false }))];
    const outcomes = await Promise.all(runs);
    for (const o of outcomes) expect(o.kind, JSON.stringify(o)).toBe('done');
    const reader = createTransport({ kafka: brokers, ...(secured ? { security: security('admin') } : {}), logger });
    try {
      return (await readVersions(reader, m)).map((v) => v.weightsSha256);
    } finally {
      await reader.close();
    }
  } finally {
    await Promise.all([aggregatorWiring, sinkWiring, ...nodeWirings].map((w) => w.close()));
  }
}

async function refusal(fn: () => Promise<unknown>): Promise<{ code: string; message: string; ms: number }> {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    return { code: (e as { code: string }).code, message: (e as Error).message, ms: Date.now() - t0 };
  }
  throw new Error('expected a refusal');
}

async function controlCount(m: Manifest): Promise<number> {
  const t = createTransport({ kafka: secureBroker, security: security('admin'), logger });
  try {
    const admin = t.admin();
    const offsets = await admin.fetchTopicOffsets(pipelineTopics(m).control);
    await admin.close();
    return offsets.reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0);
  } finally {
    await t.close();
  }
}

const analyticsDir = mkdtempSync(path.join(tmpdir(), 'fs-secure-ch-'));

beforeAll(async () => {
  const started = await runKafkaScript('start', STATE_DIR, ['--secure', `--lease=${process.pid}`]);
  if (started.code !== 0) throw new Error(`the secured broker did not start:\n${started.stderr.slice(-3000)}`);
  const line = (k: string) => new RegExp(`^${k}=(\\S+)$`, 'm').exec(started.stdout)?.[1] ?? '';
  secureBroker = line('KAFKA_SECURE_BROKERS');
  plainBroker = line('KAFKA_BROKERS');
  securityDir = line('KAFKA_SECURITY_DIR');
  for (const u of ['admin', 'aggregator', 'sink', 'node-1', 'node-2', 'node-3', 'tenant-b-node', 'revoked-node']) {
    passwords[u] = readFileSync(path.join(securityDir, 'users', `${u}.password`), 'utf8').trim();
  }
}, 180_000);

afterAll(async () => {
  await runKafkaScript('release', STATE_DIR, [`--lease=${process.pid}`]);
  rmSync(analyticsDir, { recursive: true, force: true });
});

describe('a pipeline on the secured broker', () => {
  it('trains over SASL_SSL with least-privilege ACLs exactly as on the plain listener', async () => {
    const name = uniqueName('sec');
    const m = manifestFor('acme', name, path.join(analyticsDir, 'secure'));
    await grant(m, 'aggregator', 'aggregator');
    await grant(m, 'sink', 'sink');
    for (const n of ['node-1', 'node-2', 'node-3']) await grant(m, 'node', n, n);
    const secured = await runPipeline(m, secureBroker, true);
    expect(secured).toHaveLength(3);
    // The same pipeline on the plaintext listener of a broker without an authorizer (the suite's broker).
    const plain = await runPipeline(manifestFor('acme', `${name}-plain`, path.join(analyticsDir, 'plain')), kafkaBrokers(), false);
    expect(secured).toEqual(plain);
  }, 300_000);

  it('refuses a node that writes control or models, names the topic, and nothing is written', async () => {
    const m = manifestFor('acme', uniqueName('deny'), path.join(analyticsDir, 'deny'));
    await grant(m, 'aggregator', 'aggregator');
    await grant(m, 'node', 'node-1', 'node-1');
    const agg = createTransport({ kafka: secureBroker, security: security('aggregator'), logger });
    const admin = agg.admin();
    await admin.createTopics(Object.values(pipelineTopics(m)).map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })));
    await admin.close();
    await agg.close();
    const before = await controlCount(m);
    const node = createTransport({ kafka: secureBroker, security: security('node-1'), logger });
    try {
      const p = node.producer();
      await p.connect();
      await p.send([{ topic: pipelineTopics(m).updates, key: Buffer.from('node-1'), value: Buffer.from('allowed') }]);
      for (const kind of ['control', 'models', 'audit'] as const) {
        const r = await refusal(() => p.send([{ topic: pipelineTopics(m)[kind], key: Buffer.from('x'), value: Buffer.from('FINISH') }]));
        expect(r.code).toBe('TRANSPORT_AUTHORIZATION');
        expect(r.message).toContain(`principal User:node-1 is not authorized for topic ${pipelineTopics(m)[kind]}`);
      }
    } finally {
      await node.close();
    }
    expect(await controlCount(m)).toBe(before);
  }, 120_000);

  it("keeps tenant A's principal out of tenant B's topics and groups", async () => {
    const b = manifestFor('tenant-b', uniqueName('iso'), path.join(analyticsDir, 'iso'));
    await grant(b, 'aggregator', 'aggregator');
    const agg = createTransport({ kafka: secureBroker, security: security('aggregator'), logger });
    const admin = agg.admin();
    await admin.createTopics(Object.values(pipelineTopics(b)).map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })));
    await admin.close();
    await agg.close();
    // node-1 holds a node's ACLs on tenant acme only.
    await grant({ tenant: 'acme', name: b.name }, 'node', 'node-1', 'node-1');
    const intruder = createTransport({ kafka: secureBroker, security: security('node-1'), logger });
    try {
      const p = intruder.producer();
      await p.connect();
      const write = await refusal(() => p.send([{ topic: pipelineTopics(b).updates, key: Buffer.from('x'), value: Buffer.from('x') }]));
      expect(write.code).toBe('TRANSPORT_AUTHORIZATION');
      const c = intruder.consumer({ groupId: `${b.tenant}.${b.name}.node.node-1.x`, fromBeginning: true });
      await c.connect();
      const read = await refusal(async () => {
        await c.subscribe([pipelineTopics(b).models]);
        await c.run({ eachBatch: async () => undefined });
      });
      expect(read.code).toBe('TRANSPORT_AUTHORIZATION');
      expect(read.message).toMatch(/consumer group tenant-b\.|topic tenant-b\./);
    } finally {
      await intruder.close();
    }
  }, 120_000);

  it('refuses a revoked node from its next request on (fedstream access revoke)', async () => {
    const m = manifestFor('acme', uniqueName('rev'), path.join(analyticsDir, 'rev'));
    await grant(m, 'aggregator', 'aggregator');
    const agg = createTransport({ kafka: secureBroker, security: security('aggregator'), logger });
    const admin = agg.admin();
    await admin.createTopics([{ topic: pipelineTopics(m).updates, numPartitions: 1, replicationFactor: 1 }]);
    await admin.close();
    await agg.close();
    await grant(m, 'node', 'revoked-node', 'node-9');
    const node = createTransport({ kafka: secureBroker, security: security('revoked-node'), logger });
    let t: Transport | undefined = node;
    try {
      const p = node.producer();
      await p.connect();
      await p.send([{ topic: pipelineTopics(m).updates, key: Buffer.from('k'), value: Buffer.from('before') }]);
      const manifestFile = path.join(analyticsDir, `${m.name}.yaml`);
      writeFileSync(manifestFile, JSON.stringify({ apiVersion: 'fedstream/v1', tenant: m.tenant, name: m.name, model: m.model, data: m.data, rounds: m.rounds }));
      const cli = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'fedstream.js'), 'access', 'revoke', '-p', manifestFile,
        '--principal', 'User:revoked-node', '--kafka', secureBroker,
        '--kafka-ca', path.join(securityDir, 'ca.pem'), '--kafka-sasl-mechanism', 'scram-sha-512', '--kafka-user', 'admin',
        '--kafka-password-file', path.join(securityDir, 'users', 'admin.password')], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'warn' } });
      expect(cli.status, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(new RegExp(`revoked User:revoked-node on acme\\.${m.name}\\.\\*: \\d+ ACLs removed`));
      logLines.push(cli.stdout, cli.stderr);
      const acl = createKafkaAclAdmin({ brokers: [secureBroker], security: resolveKafkaSecurity(security('admin')), logger });
      expect(await acl.describe(`${m.tenant}.${m.name}.`, 'User:revoked-node')).toEqual([]);
      await acl.close();
      const r = await refusal(() => p.send([{ topic: pipelineTopics(m).updates, key: Buffer.from('k'), value: Buffer.from('after') }]));
      expect(r.code).toBe('TRANSPORT_AUTHORIZATION');
    } finally {
      await t?.close();
      t = undefined;
    }
  }, 120_000);

  it('takes OAUTHBEARER tokens from a token provider (the broker\'s development validator trusts unsigned ones)', async () => {
    const m = manifestFor('acme', uniqueName('oauth'), path.join(analyticsDir, 'oauth'));
    await grant(m, 'aggregator', 'aggregator');
    const agg = createTransport({ kafka: secureBroker, security: security('aggregator'), logger });
    const admin = agg.admin();
    await admin.createTopics([{ topic: pipelineTopics(m).updates, numPartitions: 1, replicationFactor: 1 }, { topic: pipelineTopics(m).control, numPartitions: 1, replicationFactor: 1 }]);
    await admin.close();
    await agg.close();
    await grant(m, 'node', 'node-2', 'node-2');
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    let asked = 0;
    const oauthBearerProvider = async () => {
      asked++;
      const now = Math.floor(Date.now() / 1000);
      return { value: `${b64({ alg: 'none' })}.${b64({ sub: 'node-2', iat: now, exp: now + 600 })}.` };
    };
    const t = createTransport({ kafka: secureBroker, security: { tls: { ca: path.join(securityDir, 'ca.pem') }, sasl: { mechanism: 'oauthbearer' } }, oauthBearerProvider, logger });
    try {
      const p = t.producer();
      await p.connect();
      await p.send([{ topic: pipelineTopics(m).updates, key: Buffer.from('node-2'), value: Buffer.from('u') }]);
      expect(asked).toBeGreaterThan(0);
      const r = await refusal(() => p.send([{ topic: pipelineTopics(m).control, key: Buffer.from('x'), value: Buffer.from('FINISH') }]));
      expect(r.code).toBe('TRANSPORT_AUTHORIZATION');
    } finally {
      await t.close();
    }
  }, 120_000);

  it('says what is wrong within seconds: wrong password, unknown user, untrusted CA, TLS to the plaintext port', async () => {
    process.env.FS_TEST_WRONG_PASSWORD = 'not-the-password';
    const cases: Array<[string, Parameters<typeof createTransport>[0], string, RegExp]> = [
      ['wrong password', { kafka: secureBroker, security: security('node-1', { passwordEnv: 'FS_TEST_WRONG_PASSWORD' }) }, 'TRANSPORT_AUTH', /authentication failed for principal User:node-1 with mechanism SCRAM-SHA-512/],
      ['unknown user', { kafka: secureBroker, security: { ...security('node-1', { passwordEnv: 'FS_TEST_WRONG_PASSWORD' }), sasl: { mechanism: 'scram-sha-256', username: 'nobody', password: { env: 'FS_TEST_WRONG_PASSWORD' } } } }, 'TRANSPORT_AUTH', /principal User:nobody with mechanism SCRAM-SHA-256/],
      ['untrusted CA', { kafka: secureBroker, security: security('node-1', { ca: path.join(securityDir, 'rogue-ca.pem') }) }, 'TRANSPORT_TLS', /certificate CN=localhost issued by CN=FedStream development CA, which CA file .*rogue-ca\.pem does not trust/],
      ['TLS to plaintext', { kafka: plainBroker, security: security('node-1') }, 'TRANSPORT_TLS', /does not speak TLS: is this a plaintext listener\?/],
    ];
    for (const [what, options, code, message] of cases) {
      const t = createTransport({ ...options, logger });
      try {
        const r = await refusal(async () => { const p = t.producer(); await p.connect(); });
        expect(r.code, what).toBe(code);
        expect(r.message, what).toMatch(message);
        expect(r.ms, what).toBeLessThan(10_000);
      } finally {
        await t.close();
      }
    }
  }, 120_000);

  it('wrote no secret into any log line of this file, nor into ClickHouse', async () => {
    const secrets = Object.values(passwords);
    expect(secrets.length).toBeGreaterThan(5);
    expect(logLines.length).toBeGreaterThan(100);
    const all = logLines.join('');
    for (const [user, pw] of Object.entries(passwords)) expect(all.includes(pw), `${user}'s password in the logs`).toBe(false);
    expect(all.includes('not-the-password')).toBe(false);
    const wiring = compose({ manifest: manifestFor('acme', 'scan', path.join(analyticsDir, 'secure')), logger });
    try {
      const ch = await wiring.analytics();
      const tables = (await (await ch.client.query({ query: 'SHOW TABLES', format: 'JSONEachRow' })).json<{ name: string }>()).map((r) => r.name);
      expect(tables.length).toBeGreaterThan(3);
      for (const table of tables) {
        const text = await (await ch.client.query({ query: `SELECT * FROM ${table}`, format: 'TabSeparated' })).text();
        for (const pw of secrets) expect(text.includes(pw), `a password in ClickHouse table ${table}`).toBe(false);
      }
    } finally {
      await wiring.close();
    }
  }, 120_000);
});
