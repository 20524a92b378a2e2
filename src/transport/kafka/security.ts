/**
 * Kafka client security: the manifest's `kafka.security` section (TLS, SASL) turned into kafkajs `ssl` and `sasl`
 * options, with secrets read from files or the environment at start, and the failures a misconfiguration causes
 * turned into errors that say what is wrong (docs/security.md).
 *
 * kafkajs on its own reports an untrusted certificate as a retried "Connection error", TLS to a plaintext port as
 * "Client network socket disconnected before secure TLS connection was established" after its retries, and a
 * refused write as "Not authorized to access topics" without the topic. `probeTls` checks the first broker before
 * any client connects, and `explainKafkaSecurityError` names the principal, mechanism, topic or certificate.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type tls from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import { ConfigError, FedStreamError, probeTlsHandshake, readSecret } from '../../common/index.ts';
import type { KafkaSecurity } from '../../config/index.ts';

/** A token for SASL/OAUTHBEARER, as kafkajs' `oauthBearerProvider` returns it. */
export interface OAuthBearerToken {
  value: string;
}

/** The client side of `kafka.security`, ready for kafkajs, plus a description that never holds a secret. */
export interface ResolvedKafkaSecurity {
  ssl?: tls.ConnectionOptions;
  sasl?: SASLOptions;
  /** `SASL_SSL`, `SSL`, `SASL_PLAINTEXT` or `PLAINTEXT` (Kafka's names for the four combinations). */
  protocol: 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';
  /** The principal a broker will see (`User:<name>`), when SASL names one. */
  principal?: string;
  /** The SASL mechanism in Kafka's spelling (`SCRAM-SHA-512`), when there is one. */
  mechanism?: string;
  /** Where the trusted CA comes from (a file, or the system store), for error messages. */
  caSource?: string;
}

/** What every client of one transport shares: its security, and a check of it done once before the first connect. */
export interface KafkaClientContext {
  security: ResolvedKafkaSecurity;
  /** Resolves once the first broker completed a TLS handshake the client trusts (at once without TLS). */
  preflight(): Promise<void>;
}

export interface ResolveSecurityOptions {
  /** Supplies OAUTHBEARER tokens (e.g. from an OIDC client); wins over `sasl.token`. */
  oauthBearerProvider?: () => Promise<OAuthBearerToken>;
  env?: NodeJS.ProcessEnv;
  /** Prefix of the field paths in errors (`kafka.security`, or a flag name). */
  where?: string;
}

function readPem(file: string, where: string, kind: 'certificate' | 'key'): string {
  if (!existsSync(file)) throw new ConfigError(where, `${kind} file ${file} does not exist`);
  const text = readFileSync(file, 'utf8');
  if (kind === 'certificate') {
    try {
      new X509Certificate(text);
    } catch (err) {
      throw new ConfigError(where, `${file} is not a PEM certificate (${(err as Error).message})`);
    }
  } else if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new ConfigError(where, `${file} is not a PEM private key`);
  }
  return text;
}

/** The kafkajs options for a manifest's `kafka.security` (undefined: plaintext). Throws ConfigError. */
export function resolveKafkaSecurity(sec: KafkaSecurity | undefined, o: ResolveSecurityOptions = {}): ResolvedKafkaSecurity {
  const where = o.where ?? 'kafka.security';
  const env = o.env ?? process.env;
  if (!sec || (!sec.tls && !sec.sasl)) return { protocol: 'PLAINTEXT' };
  const out: ResolvedKafkaSecurity = { protocol: sec.tls ? (sec.sasl ? 'SASL_SSL' : 'SSL') : 'SASL_PLAINTEXT' };
  if (sec.tls) {
    const t = sec.tls;
    // Hostname verification stays on: kafkajs passes these options to tls.connect, whose default checkServerIdentity applies.
    const ssl: tls.ConnectionOptions = { rejectUnauthorized: true };
    if (t.ca) ssl.ca = [readPem(t.ca, `${where}.tls.ca`, 'certificate')];
    if (t.cert) ssl.cert = readPem(t.cert, `${where}.tls.cert`, 'certificate');
    if (t.key) ssl.key = readPem(t.key, `${where}.tls.key`, 'key');
    if (t.keyPassword) ssl.passphrase = readSecret(t.keyPassword, `${where}.tls.keyPassword`, env);
    out.ssl = ssl;
    out.caSource = t.ca ? `CA file ${t.ca}` : "the system's trusted CAs";
  }
  const s = sec.sasl;
  if (s) {
    if (s.mechanism === 'oauthbearer') {
      const provider = o.oauthBearerProvider
        ?? (s.token ? (() => { const value = readSecret(s.token!, `${where}.sasl.token`, env); return async () => ({ value }); })() : undefined);
      if (!provider) throw new ConfigError(`${where}.sasl`, 'OAUTHBEARER needs a token: sasl.token: { file | env }, or a token provider passed by the program');
      out.sasl = { mechanism: 'oauthbearer', oauthBearerProvider: provider };
      out.mechanism = 'OAUTHBEARER';
    } else {
      const password = readSecret(s.password, `${where}.sasl.password`, env);
      out.sasl = s.mechanism === 'plain'
        ? { mechanism: 'plain', username: s.username, password }
        : { mechanism: s.mechanism, username: s.username, password };
      out.principal = `User:${s.username}`;
      out.mechanism = s.mechanism.toUpperCase();
    }
  }
  return out;
}

/** What a client's security settings look like in logs: never a secret. */
export function describeSecurity(r: ResolvedKafkaSecurity): string {
  return [r.protocol, r.mechanism, r.principal, r.caSource].filter(Boolean).join(', ');
}

/**
 * Checks that `broker` (host:port) completes a TLS handshake that `ssl` trusts, within `timeoutMs`. Resolves when
 * it does; otherwise throws a non-retriable FedStreamError that says which: the port does not speak TLS (a plaintext
 * listener), the certificate is not trusted (its subject and issuer, and why), or the name does not match.
 * Connection refused or a timeout are retriable TRANSPORT_CONNECTION errors, as for any broker.
 */
export async function probeTls(broker: string, r: ResolvedKafkaSecurity, timeoutMs = 10_000): Promise<void> {
  if (!r.ssl) return;
  const i = broker.lastIndexOf(':');
  const { ca, cert, key, passphrase } = r.ssl;
  const o = await probeTlsHandshake({ ...(ca ? { ca: ca as Buffer | string | (Buffer | string)[] } : {}), ...(cert ? { cert: cert as Buffer | string } : {}), ...(key ? { key: key as Buffer | string } : {}), ...(passphrase ? { passphrase } : {}), host: broker.slice(0, i), port: Number(broker.slice(i + 1)), timeoutMs });
  switch (o.kind) {
    case 'ok': return;
    case 'unreachable': throw new FedStreamError('TRANSPORT_CONNECTION', `broker ${broker} cannot be reached: ${o.code}`, { details: { broker } });
    case 'timeout': throw new FedStreamError('TRANSPORT_TIMEOUT', `TLS handshake with broker ${broker} did not finish within ${o.timeoutMs} ms`, { details: { broker } });
    case 'untrusted': throw new FedStreamError('TRANSPORT_TLS', `broker ${broker} presented certificate ${o.subject} issued by ${o.issuer}, which ${r.caSource ?? 'the trust store'} does not trust: ${o.reason}`, { details: { broker, subject: o.subject, issuer: o.issuer, reason: o.reason } });
    case 'wrong-name': throw new FedStreamError('TRANSPORT_TLS', `broker ${broker} presented a certificate for other names: ${o.reason}`, { details: { broker, reason: o.reason } });
    case 'not-tls': throw new FedStreamError('TRANSPORT_TLS', `broker ${broker} does not speak TLS: is this a plaintext listener? (the manifest asks for ${r.protocol})`, { cause: o.cause, details: { broker } });
    case 'failed': throw new FedStreamError('TRANSPORT_TLS', `TLS with broker ${broker} failed: ${o.message}`, { cause: o.cause, details: { broker } });
  }
}

const AUTHORIZATION_TYPES: Record<string, string> = {
  TOPIC_AUTHORIZATION_FAILED: 'topic',
  GROUP_AUTHORIZATION_FAILED: 'consumer group',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'transactional id',
  CLUSTER_AUTHORIZATION_FAILED: 'cluster',
};

interface KafkaJsLike extends Error {
  type?: string;
  broker?: string;
  originalError?: unknown;
  cause?: unknown;
}

function chain(err: unknown): KafkaJsLike[] {
  const out: KafkaJsLike[] = [];
  let e: unknown = err;
  for (let i = 0; i < 6 && e instanceof Error; i++) {
    out.push(e as KafkaJsLike);
    e = (e as KafkaJsLike).originalError ?? (e as KafkaJsLike).cause;
  }
  return out;
}

/**
 * A security failure from kafkajs as a FedStreamError that names what was wrong, or undefined when `err` is not one.
 * `resource` is what the operation touched (a topic, a group, a transactional id) when the caller knows it: a name,
 * or names by kind when a call may be refused on more than one (a consumer's start: its group or its topics).
 * Authentication and authorization failures are never retriable: retrying cannot fix a password or an ACL.
 */
export type SecurityResource = string | { topic?: string; 'consumer group'?: string; 'transactional id'?: string };

export function explainKafkaSecurityError(err: unknown, r: ResolvedKafkaSecurity, operation: string, resource?: SecurityResource): FedStreamError | undefined {
  for (const e of chain(err)) {
    if (e.name === 'KafkaJSSASLAuthenticationError') {
      return new FedStreamError('TRANSPORT_AUTH', `${operation}: authentication failed for principal ${r.principal ?? '(token)'} with mechanism ${r.mechanism ?? 'SASL'}: ${e.message}`, {
        cause: err, retriable: false, details: { operation, principal: r.principal, mechanism: r.mechanism },
      });
    }
    const what = e.type ? AUTHORIZATION_TYPES[e.type] : undefined;
    if (what) {
      const name = typeof resource === 'object' ? resource[what as keyof typeof resource] : resource;
      const target = name ? `${what} ${name}` : `the ${what}`;
      return new FedStreamError('TRANSPORT_AUTHORIZATION', `${operation}: principal ${r.principal ?? 'User:ANONYMOUS'} is not authorized for ${target} (${e.type}); an administrator grants it with \`fedstream access\``, {
        cause: err, retriable: false, details: { operation, principal: r.principal ?? 'User:ANONYMOUS', resource: name, kafkaType: e.type },
      });
    }
    if (/self[- ]signed certificate|unable to verify|certificate has expired|Hostname\/IP does not match|ERR_TLS_CERT/i.test(e.message)) {
      return new FedStreamError('TRANSPORT_TLS', `${operation}: the broker's certificate is not trusted by ${r.caSource ?? 'the trust store'}: ${e.message}`, { cause: err, retriable: false, details: { operation } });
    }
    if (r.ssl && /disconnected before secure TLS connection/i.test(e.message)) {
      return new FedStreamError('TRANSPORT_TLS', `${operation}: the broker closed the TLS handshake: is this a plaintext listener? (${e.message})`, { cause: err, retriable: false, details: { operation } });
    }
  }
  return undefined;
}
