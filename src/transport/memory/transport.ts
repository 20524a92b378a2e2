/** The in-memory transport: hands out admin, producer and consumer clients on one cluster and closes them with it. */
import { FedStreamError, type Logger, rootLogger } from '../../common/index.ts';
import { MemoryAdmin } from './admin.ts';
import { MemoryCluster } from './cluster.ts';
import { MemoryConsumer } from './consumer.ts';
import { MemoryProducer } from './producer.ts';
import type {
  Admin,
  Consumer,
  ConsumerOptions,
  HealthResult,
  Producer,
  ProducerOptions,
  Transport,
} from '../types.ts';

export interface MemoryTransportOptions {
  /** The cluster to attach to; a new, empty one by default. */
  cluster?: MemoryCluster;
  logger?: Logger;
}

class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly cluster: MemoryCluster;
  private readonly logger: Logger;
  private readonly clients = new Map<object, () => Promise<void>>();
  private closed = false;

  constructor(options: MemoryTransportOptions) {
    this.cluster = options.cluster ?? new MemoryCluster();
    this.logger = (options.logger ?? rootLogger()).child({ component: 'transport', transport: 'memory' });
  }

  private ensureOpen(): void {
    if (this.closed) throw new FedStreamError('TRANSPORT_CLOSED', 'memory transport is closed');
  }

  /** Clients close with the transport; one closed on its own is forgotten. */
  private forget = (client: object): void => {
    this.clients.delete(client);
  };

  admin(): Admin {
    this.ensureOpen();
    const admin = new MemoryAdmin(this.cluster, this.forget);
    this.clients.set(admin, () => admin.close());
    return admin;
  }

  producer(options: ProducerOptions = {}): Producer {
    this.ensureOpen();
    const producer = new MemoryProducer(this.cluster, options, this.forget);
    this.clients.set(producer, () => producer.disconnect());
    return producer;
  }

  consumer(options: ConsumerOptions): Consumer {
    this.ensureOpen();
    const consumer = new MemoryConsumer(this.cluster, options, this.logger, this.forget);
    this.clients.set(consumer, () => consumer.disconnect());
    return consumer;
  }

  async health(): Promise<HealthResult> {
    if (this.closed) return { success: false, detail: 'memory transport is closed' };
    return { success: true, detail: `in-memory transport: ${this.cluster.topics.size} topic(s), ${this.cluster.groups.size} consumer group(s)` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((close) => close()));
  }
}

/** An in-memory transport; pass `cluster` to share one log between several transports in a process. */
export function createMemoryTransport(options: MemoryTransportOptions = {}): Transport & { readonly cluster: MemoryCluster } {
  return new MemoryTransport(options);
}
