/**
 * The public face of the transport: the port (types.ts), its two adapters (kafka/, memory/), and `createTransport`,
 * which picks one. Other folders import from here only.
 */
import type { Logger } from '../common/index.ts';
import type { KafkaSecurity } from '../config/index.ts';
import { resolveKafkaSecurity, type OAuthBearerToken } from './kafka/security.ts';
import { createKafkaTransport } from './kafka/index.ts';
import { createMemoryTransport, MemoryCluster } from './memory/index.ts';
import type { Transport } from './types.ts';

export type * from './types.ts';
export { createKafkaTransport, fromKafkaJsError, type KafkaTransportOptions } from './kafka/index.ts';
export { createMemoryTransport, MemoryCluster, murmur2, partitionForKey, DEFAULT_MAX_MESSAGE_BYTES, type MemoryTransportOptions } from './memory/index.ts';
export { kafkajsLogLevel, pinoLogCreator } from './kafka/index.ts';
export {
  resolveKafkaSecurity, describeSecurity, probeTls, explainKafkaSecurityError,
  type OAuthBearerToken, type ResolvedKafkaSecurity, type ResolveSecurityOptions,
} from './kafka/security.ts';
export type { KafkaAcl, KafkaAclAdmin } from './kafka/acl.ts';
export { createKafkaAclAdmin } from './kafka/transport.ts';

export interface CreateTransportOptions {
  /** Comma-separated `host:port` list of Kafka brokers; without it, the in-memory transport. */
  kafka?: string;
  clientId?: string;
  logger?: Logger;
  /**
   * The in-memory log to use when no brokers are given. Whoever composes the process (service/wiring.ts, the
   * demo, a test) creates it and hands the same one to every transport that should see the same topics;
   * without it, the transport gets a log of its own.
   */
  memory?: MemoryCluster;
  /** Kafka only: TLS and SASL, the manifest's `kafka.security` (secrets are read here, once). */
  security?: KafkaSecurity;
  /** Kafka only: supplies SASL/OAUTHBEARER tokens (e.g. from an OIDC client); wins over `security.sasl.token`. */
  oauthBearerProvider?: () => Promise<OAuthBearerToken>;
}

/** Kafka when brokers are given (`--kafka host:port,…`), else an in-memory transport on `options.memory`. */
export function createTransport(options: CreateTransportOptions = {}): Transport {
  const brokers = (options.kafka ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length > 0) {
    const security = resolveKafkaSecurity(options.security, { oauthBearerProvider: options.oauthBearerProvider });
    return createKafkaTransport({ brokers, clientId: options.clientId, logger: options.logger, security });
  }
  return createMemoryTransport({ cluster: options.memory ?? new MemoryCluster(), logger: options.logger });
}
