/**
 * The public face of the transport: the port (types.ts), its two adapters (kafka/, memory/), and `createTransport`,
 * which picks one. Other folders import from here only.
 */
import type { Logger } from '../common/index.ts';
import { createKafkaTransport } from './kafka/index.ts';
import { createMemoryTransport, MemoryCluster } from './memory/index.ts';
import type { Transport } from './types.ts';

export type * from './types.ts';
export { createKafkaTransport, fromKafkaJsError, type KafkaTransportOptions } from './kafka/index.ts';
export { createMemoryTransport, MemoryCluster, murmur2, partitionForKey, DEFAULT_MAX_MESSAGE_BYTES, type MemoryTransportOptions } from './memory/index.ts';
export { kafkajsLogLevel, pinoLogCreator } from './kafka/index.ts';

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
}

/** Kafka when brokers are given (`--kafka host:port,…`), else an in-memory transport on `options.memory`. */
export function createTransport(options: CreateTransportOptions = {}): Transport {
  const brokers = (options.kafka ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length > 0) {
    return createKafkaTransport({ brokers, clientId: options.clientId, logger: options.logger });
  }
  return createMemoryTransport({ cluster: options.memory ?? new MemoryCluster(), logger: options.logger });
}
