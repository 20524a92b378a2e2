// docker-compose.yml must agree with src/config/defaults.ts: what host clients reach by default is
// what compose publishes, and the pipeline services inside the network reach the same servers.
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/defaults.ts';

interface Service {
  image?: string;
  ports?: string[];
  environment?: Record<string, string | number> | string[];
  command?: string | string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] | string };
}

const root = new URL('../../', import.meta.url);
const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

function env(name: string): Record<string, string> {
  const e = services[name]?.environment ?? {};
  const entries = Array.isArray(e) ? e.map((kv) => kv.split(/=(.*)/s).slice(0, 2) as [string, string]) : Object.entries(e);
  return Object.fromEntries(entries.map(([k, v]) => [k, String(v)]));
}

/** Host port → container port of "[ip:]host:container" mappings. */
function published(name: string): Map<number, number> {
  return new Map((services[name]?.ports ?? []).map((p) => {
    const parts = String(p).split(':');
    return [Number(parts.at(-2)), Number(parts.at(-1))];
  }));
}

function command(name: string): string {
  const c = services[name]?.command ?? '';
  return Array.isArray(c) ? c.join(' ') : c;
}

function flag(cmd: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)--${name}[ =](\\S+)`).exec(cmd)?.[1];
}

/** "NAME://host:port,…" → { NAME: { host, port } } */
function listeners(value: string): Record<string, { host: string; port: number }> {
  return Object.fromEntries(value.split(',').map((l) => {
    const m = /^(\w+):\/\/([^:]*):(\d+)$/.exec(l.trim());
    if (!m) throw new Error(`bad listener ${l}`);
    return [m[1], { host: m[2] as string, port: Number(m[3]) }];
  }));
}

const [defaultKafkaHost, defaultKafkaPort] = DEFAULTS.kafkaBrokers.split(':') as [string, string];
const clickhouseUrl = new URL(DEFAULTS.clickhouseUrl);
const pipelineServices = Object.keys(services).filter((s) => /fedstream (aggregator|sink|node)\b/.test(command(s)));

describe('docker-compose.yml', () => {
  it('defines the servers and the pipeline processes', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['kafka', 'clickhouse', 'aggregator', 'sink']));
    expect(pipelineServices.filter((s) => /fedstream node\b/.test(command(s))).length).toBeGreaterThanOrEqual(1);
    expect(pipelineServices).toEqual(expect.arrayContaining(['aggregator', 'sink']));
  });

  it('pins the versions from DEFAULTS', () => {
    expect(services.kafka?.image).toBe(`apache/kafka:${DEFAULTS.kafkaVersion}`);
    expect(services.clickhouse?.image).toBe(`clickhouse/clickhouse-server:${DEFAULTS.clickhouseServerVersion}`);
  });

  it('runs Kafka as a single KRaft node that host clients reach at DEFAULTS.kafkaBrokers', () => {
    const e = env('kafka');
    for (const key of ['KAFKA_NODE_ID', 'KAFKA_PROCESS_ROLES', 'KAFKA_LISTENERS', 'KAFKA_ADVERTISED_LISTENERS', 'KAFKA_CONTROLLER_QUORUM_VOTERS',
      'KAFKA_CONTROLLER_LISTENER_NAMES', 'KAFKA_LISTENER_SECURITY_PROTOCOL_MAP']) {
      expect(e[key], key).toBeTruthy();
    }
    for (const key of ['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR', 'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR']) {
      expect(e[key], key).toBe('1');
    }
    expect(e.KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS).toBe('0');
    expect(e.KAFKA_PROCESS_ROLES?.split(',').sort()).toEqual(['broker', 'controller']);

    const bound = listeners(e.KAFKA_LISTENERS as string);
    const advertised = listeners(e.KAFKA_ADVERTISED_LISTENERS as string);
    const protocols = Object.fromEntries((e.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP as string).split(',').map((kv) => kv.split(':')));
    for (const name of Object.keys(bound)) expect(protocols[name], `protocol for ${name}`).toBeDefined();
    const controller = e.KAFKA_CONTROLLER_LISTENER_NAMES as string;
    expect(bound[controller]).toBeDefined();
    expect(advertised[controller]).toBeUndefined();
    expect(e.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe(`${e.KAFKA_NODE_ID}@kafka:${bound[controller]?.port}`);
    if (e.KAFKA_INTER_BROKER_LISTENER_NAME) expect(advertised[e.KAFKA_INTER_BROKER_LISTENER_NAME]).toBeDefined();

    // The host listener: advertised as DEFAULTS.kafkaBrokers and published on that port.
    const external = Object.entries(advertised).find(([, l]) => `${l.host}:${l.port}` === DEFAULTS.kafkaBrokers);
    expect(external, `a listener advertised as ${DEFAULTS.kafkaBrokers}`).toBeDefined();
    const [externalName] = external as [string, { host: string; port: number }];
    expect(published('kafka').get(Number(defaultKafkaPort))).toBe(bound[externalName]?.port);
    expect(defaultKafkaHost).toBe('127.0.0.1');
  });

  it('runs ClickHouse where DEFAULTS.clickhouseUrl points, with the default database and user', () => {
    expect(published('clickhouse').get(Number(clickhouseUrl.port))).toBe(8123);
    const e = env('clickhouse');
    expect(e.CLICKHOUSE_DB).toBe(DEFAULTS.clickhouseDatabase);
    expect(e.CLICKHOUSE_USER).toBe(DEFAULTS.clickhouseUser);
    expect(e.CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT).toBe('1');
    expect(e.CLICKHOUSE_PASSWORD ?? '').toBe(''); // documented: a password-less default user, ports on 127.0.0.1 only
  });

  it('publishes ports on the loopback interface only', () => {
    for (const name of ['kafka', 'clickhouse']) {
      for (const p of services[name]?.ports ?? []) expect(String(p).startsWith('127.0.0.1:'), `${name} ${p}`).toBe(true);
    }
  });

  it('health-checks both servers', () => {
    expect(JSON.stringify(services.kafka?.healthcheck?.test)).toContain('kafka-broker-api-versions.sh');
    expect(JSON.stringify(services.clickhouse?.healthcheck?.test)).toContain(':8123/ping');
  });

  it('points every pipeline process at the internal Kafka listener and, where used, at the clickhouse service', () => {
    const internal = Object.entries(listeners(env('kafka').KAFKA_ADVERTISED_LISTENERS as string)).find(([, l]) => l.host === 'kafka')?.[1];
    expect(internal).toBeDefined();
    for (const name of pipelineServices) {
      const cmd = command(name);
      expect(flag(cmd, 'kafka'), name).toBe(`kafka:${internal?.port}`);
      const pipeline = flag(cmd, 'pipeline');
      expect(pipeline && existsSync(new URL(pipeline, root)), `${name}: ${pipeline} exists`).toBe(true);
      const ch = flag(cmd, 'clickhouse');
      if (ch) expect(ch).toBe(`http://clickhouse:${new URL(DEFAULTS.clickhouseUrl).port}`);
      const deps = services[name]?.depends_on as Record<string, { condition: string }>;
      expect(deps.kafka?.condition, name).toBe('service_healthy');
      if (ch) expect(deps.clickhouse?.condition, name).toBe('service_healthy');
    }
    for (const name of ['aggregator', 'sink']) expect(flag(command(name), 'clickhouse')).toBeDefined();
  });

  it('gives each node its own id', () => {
    const ids = pipelineServices.filter((s) => /fedstream node\b/.test(command(s))).map((s) => flag(command(s), 'node-id'));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^node-\d+$/);
  });
});
