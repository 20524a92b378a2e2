/** The in-memory producer and its transactions (timeouts, fencing, offsets committed with the transaction). */
import { FedStreamError } from '../../common/index.ts';
import type { MemoryCluster, TxnMarker, TxnStatus } from './cluster.ts';
import type {
  Producer,
  ProducerOptions,
  ProducerRecord,
  RecordMetadata,
  TopicPartitionOffset,
  Transaction,
} from '../types.ts';

const DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000;


class MemoryTransaction implements Transaction, TxnMarker {
  status: TxnStatus = 'open';
  private readonly producer: MemoryProducer;
  private readonly cluster: MemoryCluster;
  private readonly offsets: { groupId: string; offsets: TopicPartitionOffset[] }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(producer: MemoryProducer, cluster: MemoryCluster, timeoutMs: number) {
    this.producer = producer;
    this.cluster = cluster;
    // The coordinator aborts a transaction left open too long and bumps the producer epoch: the producer is fenced.
    this.timer = setTimeout(() => {
      if (this.status !== 'open') return;
      this.producer.fence(`its transaction stayed open longer than the transaction timeout (${timeoutMs} ms) and was aborted`, 'TRANSPORT_TRANSACTION');
    }, timeoutMs);
    this.timer.unref();
  }

  private guard(what: string): void {
    this.producer.checkUsable(what);
    if (this.status !== 'open') throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.producer.label}: ${what}: the transaction is already ${this.status}`);
  }

  async send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    this.guard('send');
    return this.cluster.append(records, this);
  }

  async sendOffsets(groupId: string, offsets: TopicPartitionOffset[]): Promise<void> {
    this.guard('sendOffsets');
    this.offsets.push({ groupId, offsets: offsets.map((o) => ({ ...o })) });
  }

  async commit(): Promise<void> {
    this.guard('commit');
    clearTimeout(this.timer);
    this.cluster.endTransaction(this, 'committed');
    for (const { groupId, offsets } of this.offsets) this.cluster.commit(groupId, offsets);
    this.producer.transactionEnded(this);
  }

  async abort(): Promise<void> {
    this.guard('abort');
    this.abortNow();
  }

  /** Aborts without the usability checks (fencing and timeouts abort on the producer's behalf). */
  abortNow(): void {
    if (this.status !== 'open') return;
    clearTimeout(this.timer);
    this.cluster.endTransaction(this, 'aborted');
    this.producer.transactionEnded(this);
  }
}

export class MemoryProducer implements Producer {
  readonly label: string;
  private readonly cluster: MemoryCluster;
  private readonly options: ProducerOptions;
  private state: 'new' | 'connected' | 'closed' = 'new';
  private fencedReason: string | undefined;
  private fencedCode: 'TRANSPORT_FENCED' | 'TRANSPORT_TRANSACTION' = 'TRANSPORT_FENCED';
  private current: MemoryTransaction | undefined;
  private readonly onClosed: (client: object) => void;

  constructor(cluster: MemoryCluster, options: ProducerOptions, onClosed: (client: object) => void = () => undefined) {
    this.cluster = cluster;
    this.onClosed = onClosed;
    this.options = options;
    this.label = options.transactionalId ? `producer ${options.transactionalId}` : 'producer';
  }

  async connect(): Promise<void> {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label} is closed`);
    if (this.state === 'connected') return;
    const id = this.options.transactionalId;
    if (id !== undefined) {
      const previous = this.cluster.transactionalOwners.get(id);
      if (previous && previous !== this) previous.fence(`a newer producer with transactionalId ${id} connected`, 'TRANSPORT_FENCED');
      this.cluster.transactionalOwners.set(id, this);
    }
    this.state = 'connected';
  }

  /**
   * Aborts the open transaction and makes every further call fail: what an epoch bump does to a Kafka producer.
   * `code`: TRANSPORT_FENCED when a newer producer took over, TRANSPORT_TRANSACTION when the coordinator aborted.
   */
  fence(reason: string, code: 'TRANSPORT_FENCED' | 'TRANSPORT_TRANSACTION'): void {
    if (this.fencedReason === undefined) this.fencedCode = code;
    this.fencedReason ??= reason;
    this.current?.abortNow();
  }

  checkUsable(what: string): void {
    if (this.state === 'closed') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: the producer is closed`);
    if (this.state === 'new') throw new FedStreamError('TRANSPORT_CLOSED', `${this.label}: ${what}: not connected, call connect() first`);
    if (this.fencedReason) {
      throw new FedStreamError(this.fencedCode, `${this.label}: ${what}: the producer was fenced: ${this.fencedReason}`, { details: { kafkaType: 'INVALID_PRODUCER_EPOCH' } });
    }
  }

  async checkFenced(groupId: string): Promise<void> {
    if (this.options.transactionalId === undefined) throw new FedStreamError('TRANSPORT_TRANSACTION', 'checkFenced() needs a producer created with a transactionalId');
    this.checkUsable(`check fencing (group ${groupId})`);
  }

  transactionEnded(txn: MemoryTransaction): void {
    if (this.current === txn) this.current = undefined;
  }

  async send(records: ProducerRecord[]): Promise<RecordMetadata[]> {
    this.checkUsable('send');
    return this.cluster.append(records);
  }

  async transaction(): Promise<Transaction> {
    if (this.options.transactionalId === undefined) throw new FedStreamError('TRANSPORT_TRANSACTION', 'transaction() needs a producer created with a transactionalId');
    this.checkUsable('begin transaction');
    if (this.current) throw new FedStreamError('TRANSPORT_TRANSACTION', `${this.label}: there is already an open transaction; commit or abort it first`);
    this.current = new MemoryTransaction(this, this.cluster, this.options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS);
    return this.current;
  }

  async disconnect(): Promise<void> {
    // An open transaction stays open, as on Kafka: the timeout or the next producer with this id aborts it.
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.onClosed(this);
    const id = this.options.transactionalId;
    if (id !== undefined && this.cluster.transactionalOwners.get(id) === this && !this.current) this.cluster.transactionalOwners.delete(id);
  }
}
