/** The Kafka transport: one kafkajs client per transport, handing out admin, producer and consumer clients. */
// First, so that kafkajs finds the faster CRC-32C in require.cache when it loads its record batch encoder.
import './kafkajs-crc.ts';
import kafkajs from 'kafkajs';
import type {
  Kafka as KafkaJsClient,
} from 'kafkajs';
import { FedStreamError, type Logger, rootLogger } from '../../common/index.ts';
import type { KafkaAclAdmin } from './acl.ts';
import { KafkaAdmin } from './admin.ts';
import { probeTls, describeSecurity, type KafkaClientContext, type ResolvedKafkaSecurity } from './security.ts';
import { KafkaConsumer } from './consumer.ts';
import { closedError, fromKafkaJsError } from './errors.ts';
import { kafkajsLogLevel, pinoLogCreator } from './kafka-logger.ts';
import { KafkaProducer } from './producer.ts';
import type {
  Consumer,
  ConsumerOptions,
  HealthResult,
  Producer,
  ProducerOptions,
  Transport,
} from '../types.ts';

const { Kafka } = kafkajs;

export interface KafkaTransportOptions {
  /** `host:port` of one or more brokers. */
  brokers: string[];
  clientId?: string;
  logger?: Logger;
  /** TCP connect timeout (kafkajs default 1 s is short for a loaded CI machine). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** kafkajs' retrier for every client of this transport (defaults: 5 retries, 300 ms doubling up to 30 s). */
  retry?: { retries?: number; initialRetryTimeMs?: number; maxRetryTimeMs?: number };
  /** Longest a consumer's fetch waits at the broker for data; bounds how long pause/seek/stop take to act. */
  maxWaitTimeMs?: number;
  /** TLS and SASL (resolveKafkaSecurity of the manifest's kafka.security); absent: plaintext. */
  security?: ResolvedKafkaSecurity;
}



const HEALTH_TIMEOUT_MS = 15_000;

class KafkaTransport implements Transport {
  readonly kind = 'kafka';
  private readonly kafka: KafkaJsClient;
  private readonly options: KafkaTransportOptions;
  private readonly logger: Logger;
  private readonly clients = new Map<object, () => Promise<void>>();
  private closed = false;

  private readonly baseLogger: Logger;
  private readonly context: KafkaClientContext;
  private probed: Promise<void> | undefined;

  constructor(options: KafkaTransportOptions) {
    if (options.brokers.length === 0) throw new FedStreamError('CONFIG_INVALID', 'the Kafka transport needs at least one broker (host:port)');
    this.options = options;
    this.baseLogger = options.logger ?? rootLogger();
    this.logger = this.baseLogger.child({ component: 'transport', transport: 'kafka' });
    this.kafka = this.client(options.retry);
    const security = options.security ?? { protocol: 'PLAINTEXT' as const };
    if (security.protocol !== 'PLAINTEXT') this.logger.debug({ security: describeSecurity(security) }, 'kafka client security');
    this.context = {
      security,
      // Once per transport, and again after a failure (a broker that was down may be up now).
      preflight: () => {
        this.probed ??= probeTls(options.brokers[0]!, security).catch((err: unknown) => {
          this.probed = undefined;
          throw err;
        });
        return this.probed;
      },
    };
  }

  private client(retry: KafkaTransportOptions['retry'], connectionTimeout = this.options.connectionTimeoutMs ?? 3_000): KafkaJsClient {
    return new Kafka({
      clientId: this.options.clientId ?? 'fedstream',
      brokers: this.options.brokers,
      connectionTimeout,
      requestTimeout: this.options.requestTimeoutMs ?? 30_000,
      retry: retry && { retries: retry.retries, initialRetryTime: retry.initialRetryTimeMs, maxRetryTime: retry.maxRetryTimeMs },
      ...(this.options.security?.ssl ? { ssl: this.options.security.ssl } : {}),
      ...(this.options.security?.sasl ? { sasl: this.options.security.sasl } : {}),
      logCreator: pinoLogCreator(this.baseLogger),
      logLevel: kafkajsLogLevel(this.baseLogger),
    });
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError('kafka transport');
  }

  /** Clients close with the transport; one closed on its own is forgotten. */
  private forget = (client: object): void => {
    this.clients.delete(client);
  };

  admin(): KafkaAdmin {
    this.ensureOpen();
    const admin = new KafkaAdmin(this.kafka, this.forget, this.context);
    this.clients.set(admin, () => admin.close());
    return admin;
  }

  producer(options: ProducerOptions = {}): Producer {
    this.ensureOpen();
    const producer = new KafkaProducer(this.kafka, options, this.forget, this.context);
    this.clients.set(producer, () => producer.disconnect());
    return producer;
  }

  consumer(options: ConsumerOptions): Consumer {
    this.ensureOpen();
    const consumer = new KafkaConsumer(this.kafka, options, this.logger, this.options.maxWaitTimeMs ?? 500, this.forget, this.context);
    this.clients.set(consumer, () => consumer.disconnect());
    return consumer;
  }

  async health(): Promise<HealthResult> {
    const where = this.options.brokers.join(',');
    // A client of its own with few retries, so that an unreachable broker is reported in seconds.
    const admin = this.client({ retries: 1, initialRetryTimeMs: 200, maxRetryTimeMs: 1_000 }).admin();
    let timer: NodeJS.Timeout | undefined;
    try {
      const check = (async () => {
        await this.context.preflight();
        await admin.connect();
        return admin.describeCluster();
      })();
      check.catch(() => undefined);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FedStreamError('TRANSPORT_TIMEOUT', `no answer within ${HEALTH_TIMEOUT_MS} ms`)), HEALTH_TIMEOUT_MS);
      });
      const cluster = await Promise.race([check, timeout]);
      const brokers = cluster.brokers.map((b) => `${b.host}:${b.port}`).join(', ');
      return { success: true, detail: `kafka cluster ${cluster.clusterId}: ${cluster.brokers.length} broker(s) ${brokers}, controller ${cluster.controller ?? 'unknown'}` };
    } catch (err) {
      const error = fromKafkaJsError(err, `kafka at ${where}`, false, this.context.security);
      return { success: false, detail: error.message, error };
    } finally {
      clearTimeout(timer);
      await admin.disconnect().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((close) => close().catch((err: unknown) => this.logger.warn({ err }, 'closing a kafka client failed'))));
  }
}

/**
 * ACL administration (`fedstream access`) through an admin client of a Kafka transport of its own: the same
 * security, TLS probe and error explanations as every other client. Few retries: an operator waits for the answer.
 */
export function createKafkaAclAdmin(options: KafkaTransportOptions): KafkaAclAdmin {
  const transport = new KafkaTransport({ clientId: 'fedstream-access', retry: { retries: 2, initialRetryTimeMs: 200 }, ...options });
  const admin = transport.admin();
  return {
    create: (acls) => admin.createAcls(acls),
    describe: (prefix, principal) => admin.describeAcls(prefix, principal),
    delete: (acls) => admin.deleteAcls(acls),
    close: () => transport.close(),
  };
}

/** The Kafka transport: `createKafkaTransport({ brokers: ['127.0.0.1:9092'], clientId, logger })`. */
export function createKafkaTransport(options: KafkaTransportOptions): Transport {
  return new KafkaTransport(options);
}
