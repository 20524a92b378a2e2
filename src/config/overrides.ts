/**
 * Flags and environment over a manifest: flags win over the environment, which wins over the manifest, and the
 * result is validated again so that an override can never smuggle in a bad value.
 */
import { ConfigError } from '../common/index.ts';
import { parseManifest, type KafkaSecurity, type Manifest } from './manifest.ts';

/** Overrides from flags and environment (flags win over env, env over the manifest). */
export interface Overrides {
  kafka?: string;
  clickhouse?: string;
  clickhousePath?: string;
  rounds?: number | string;
  tenant?: string;
  epochs?: number | string;
  batchSize?: number | string;
  learningRate?: number | string;
  nodes?: number | string;
  targetUpdates?: number | string;
  minUpdates?: number | string;
  roundTimeoutMs?: number | string;
  /** rounds.targetAliveNodes: `true`/`false` (a flag without value is true). */
  targetAliveNodes?: boolean | string;
  /** PEM CA bundle for TLS to the brokers (turns TLS on). */
  kafkaCa?: string;
  /** PEM client certificate and key for mutual TLS. */
  kafkaCert?: string;
  kafkaKey?: string;
  /** SASL mechanism: scram-sha-256, scram-sha-512, plain, oauthbearer. */
  kafkaSaslMechanism?: string;
  kafkaUser?: string;
  /** A file holding the SASL password (the password itself is never a flag). */
  kafkaPasswordFile?: string;
  clickhouseUser?: string;
  /** A file holding the ClickHouse password (FEDSTREAM_CLICKHOUSE_PASSWORD may hold the password itself). */
  clickhousePasswordFile?: string;
  clickhouseCa?: string;
}

/** The environment variable that may hold the SASL password itself (a secret may live in the environment). */
export const KAFKA_PASSWORD_ENV = 'FEDSTREAM_KAFKA_PASSWORD';
/** The environment variable that may hold the ClickHouse password itself. */
export const CLICKHOUSE_PASSWORD_ENV = 'FEDSTREAM_CLICKHOUSE_PASSWORD';

const ENV: Record<keyof Overrides, string> = {
  kafka: 'FEDSTREAM_KAFKA',
  clickhouse: 'FEDSTREAM_CLICKHOUSE',
  clickhousePath: 'FEDSTREAM_CLICKHOUSE_PATH',
  rounds: 'FEDSTREAM_ROUNDS',
  tenant: 'FEDSTREAM_TENANT',
  epochs: 'FEDSTREAM_EPOCHS',
  batchSize: 'FEDSTREAM_BATCH_SIZE',
  learningRate: 'FEDSTREAM_LEARNING_RATE',
  nodes: 'FEDSTREAM_NODES',
  targetUpdates: 'FEDSTREAM_TARGET_UPDATES',
  minUpdates: 'FEDSTREAM_MIN_UPDATES',
  roundTimeoutMs: 'FEDSTREAM_ROUND_TIMEOUT_MS',
  targetAliveNodes: 'FEDSTREAM_TARGET_ALIVE_NODES',
  kafkaCa: 'FEDSTREAM_KAFKA_CA',
  kafkaCert: 'FEDSTREAM_KAFKA_CERT',
  kafkaKey: 'FEDSTREAM_KAFKA_KEY',
  kafkaSaslMechanism: 'FEDSTREAM_KAFKA_SASL_MECHANISM',
  kafkaUser: 'FEDSTREAM_KAFKA_USER',
  kafkaPasswordFile: 'FEDSTREAM_KAFKA_PASSWORD_FILE',
  clickhouseUser: 'FEDSTREAM_CLICKHOUSE_USER',
  clickhousePasswordFile: 'FEDSTREAM_CLICKHOUSE_PASSWORD_FILE',
  clickhouseCa: 'FEDSTREAM_CLICKHOUSE_CA',
};

export const OVERRIDE_ENV = ENV;

function num(value: number | string, where: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) throw new ConfigError(where, `expected a number, got "${value}"`);
  return n;
}

/** Applies overrides, then validates the result again so that an override can never smuggle in a bad value. */
export function applyOverrides(manifest: Manifest, flags: Overrides = {}, env: NodeJS.ProcessEnv = process.env): Manifest {
  const pick = <K extends keyof Overrides>(k: K): { value: Overrides[K] | string; where: string } | undefined => {
    if (flags[k] !== undefined) return { value: flags[k], where: `--${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}` };
    const e = env[ENV[k]];
    if (e !== undefined && e !== '') return { value: e, where: ENV[k] };
    return undefined;
  };
  const m = structuredClone(manifest) as Manifest & Record<string, unknown>;
  const set = (k: keyof Overrides, apply: (v: string | number, where: string) => void) => {
    const got = pick(k);
    if (got) apply(got.value as string | number, got.where);
  };
  set('kafka', (v) => { m.kafka = { ...m.kafka, brokers: String(v) }; });
  set('clickhouse', (v) => { m.analytics = { ...m.analytics, clickhouse: String(v) }; });
  set('clickhousePath', (v) => { m.analytics = { ...m.analytics, path: String(v), clickhouse: undefined }; });
  set('tenant', (v) => { m.tenant = String(v); });
  set('rounds', (v, w) => { m.rounds.count = num(v, w); });
  set('targetUpdates', (v, w) => { m.rounds.targetUpdates = num(v, w); });
  set('minUpdates', (v, w) => { m.rounds.minUpdates = num(v, w); });
  set('roundTimeoutMs', (v, w) => { m.rounds.timeoutMs = num(v, w); });
  set('targetAliveNodes', (v, w) => {
    const text = String(v).trim().toLowerCase();
    if (text !== 'true' && text !== 'false') throw new ConfigError(w, `expected true or false, got "${String(v)}"`);
    m.rounds.targetAliveNodes = text === 'true';
  });
  set('epochs', (v, w) => { m.training.epochs = num(v, w); });
  set('batchSize', (v, w) => { m.training.batchSize = num(v, w); });
  set('learningRate', (v, w) => { m.training.learningRate = num(v, w); });
  set('nodes', (v, w) => {
    if (m.data.source !== 'mnist') throw new ConfigError(w, 'only applies to data.source mnist');
    m.data.nodes = num(v, w);
  });
  applySecurityOverrides(m, pick, env);
  set('clickhouseUser', (v) => { m.analytics = { ...m.analytics, user: String(v) }; });
  set('clickhouseCa', (v) => { m.analytics = { ...m.analytics, tls: { ...(m.analytics.tls ?? {}), ca: String(v) } }; });
  const chPasswordFile = pick('clickhousePasswordFile');
  if (chPasswordFile) m.analytics = { ...m.analytics, password: { file: String(chPasswordFile.value) } };
  else if (env[CLICKHOUSE_PASSWORD_ENV]) m.analytics = { ...m.analytics, password: { env: CLICKHOUSE_PASSWORD_ENV } };
  if (m.analytics.clickhouse === undefined) delete (m.analytics as Record<string, unknown>).clickhouse;
  return parseManifest(m, 'manifest with overrides');
}

type Pick_ = <K extends keyof Overrides>(k: K) => { value: Overrides[K] | string; where: string } | undefined;

/**
 * Kafka security from flags and environment, over the manifest's `kafka.security`: `--kafka-ca` turns TLS on,
 * `--kafka-sasl-mechanism` with `--kafka-user` and `--kafka-password-file` (or FEDSTREAM_KAFKA_PASSWORD) turn SASL
 * on. The result is validated with the manifest, so PLAIN without TLS is refused here too.
 */
function applySecurityOverrides(m: Manifest, pick: Pick_, env: NodeJS.ProcessEnv): void {
  const str = (k: keyof Overrides) => { const got = pick(k); return got === undefined ? undefined : String(got.value); };
  const ca = str('kafkaCa');
  const cert = str('kafkaCert');
  const key = str('kafkaKey');
  const mechanism = str('kafkaSaslMechanism');
  const user = str('kafkaUser');
  const passwordFile = str('kafkaPasswordFile');
  const passwordInEnv = env[KAFKA_PASSWORD_ENV] !== undefined && env[KAFKA_PASSWORD_ENV] !== '';
  if ([ca, cert, key, mechanism, user, passwordFile].every((v) => v === undefined) && !passwordInEnv) return;
  const sec: Record<string, unknown> = { ...(m.kafka.security ?? {}) };
  if (ca !== undefined || cert !== undefined || key !== undefined) {
    sec.tls = { ...(m.kafka.security?.tls ?? {}), ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) };
  }
  if (mechanism !== undefined || user !== undefined || passwordFile !== undefined || passwordInEnv) {
    const prev = (m.kafka.security?.sasl ?? {}) as Record<string, unknown>;
    const sasl: Record<string, unknown> = { ...prev, ...(mechanism !== undefined ? { mechanism } : {}) };
    if (sasl.mechanism !== 'oauthbearer') {
      if (user !== undefined) sasl.username = user;
      if (passwordFile !== undefined) sasl.password = { file: passwordFile };
      else if (passwordInEnv) sasl.password = { env: KAFKA_PASSWORD_ENV };
    }
    sec.sasl = sasl;
  }
  m.kafka = { ...m.kafka, security: sec as KafkaSecurity };
}
