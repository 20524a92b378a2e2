/**
 * The aggregator's one way to publish: a Kafka transaction of records (and, when given, the consumed offsets of the
 * updates topic), retried as a whole with a new producer on failure; and the fault injection the recovery tests use.
 */
import type { Logger } from 'pino';
import { FedStreamError, isFedStreamError } from '../common/index.ts';
import { retry } from '../common/index.ts';
import type { Producer, ProducerRecord, TopicPartitionOffset, Transport } from '../transport/index.ts';

/** Where a fault may be injected: after the first accepted update of a round, or with a transaction sent but not committed. */
export type FaultPoint = 'mid-round' | 'before-commit';

/** A transactional producer that a failed transaction replaces. */
export interface ProducerSlot {
  producer: Producer;
}

export interface TransactOptions {
  transport: Transport;
  slot: ProducerSlot;
  transactionalId: string;
  groupId: string;
  log: Logger;
  /** What the transaction does, for logs and errors (`close round 3`). */
  what: string;
  records: ProducerRecord[];
  offsets: TopicPartitionOffset[];
  /** Called after the sends, before the commit (fault injection). */
  beforeCommit?: () => void;
}

/**
 * One Kafka transaction: the records, then the offsets. A retriable failure aborts and retries the whole transaction
 * with a new producer (put in `slot`); the caller's in-memory state is untouched until it commits. Throws
 * FedStreamError (TRANSPORT_TRANSACTION unless the cause already is one) when the retries run out.
 */
export async function transact(o: TransactOptions): Promise<void> {
  await retry(async (attempt) => {
    if (attempt > 0) {
      await o.slot.producer.disconnect().catch(() => undefined);
      o.slot.producer = o.transport.producer({ transactionalId: o.transactionalId, idempotent: true });
      await o.slot.producer.connect();
    }
    const tx = await o.slot.producer.transaction().catch((err: unknown) => { throw retriableBeforeCommit(err, false); });
    let committing = false;
    try {
      // One send: the transport keeps the records' order per partition (chunks of a payload stay in order)
      // and splits requests at the broker's size limit; 106 awaited sends cost ~140 ms (docs/performance.md).
      await tx.send(o.records);
      if (o.offsets.length) await tx.sendOffsets(o.groupId, o.offsets);
      o.beforeCommit?.();
      committing = true;
      await tx.commit();
    } catch (err) {
      await tx.abort().catch(() => undefined);
      throw retriableBeforeCommit(err, committing);
    }
  }, {
    // With the delays below, about 90 s: a broker restarted on a loaded machine is back well within it.
    retries: 25,
    initialDelayMs: 200,
    maxDelayMs: 5_000,
    onRetry: (err, attempt, delayMs) => o.log.warn({ err, attempt, delayMs, what: o.what }, 'transaction failed; retrying'),
  }).catch((err) => {
    throw isFedStreamError(err) ? err : new FedStreamError('TRANSPORT_TRANSACTION', `${o.what}: ${(err as Error).message}`, { cause: err });
  });
}

/**
 * A failed transaction's error as `transact` retries it. The transport marks every error inside a transaction as not
 * retriable in place (TRANSPORT_TRANSACTION, kafkajs' own verdict kept as `details.kafkaRetriable`): a call is never
 * repeated inside a transaction. The whole transaction is, though, when it certainly did not commit — it failed before
 * the commit was asked (a send or the offsets, e.g. the broker down for a restart) and was aborted — and kafkajs
 * called the cause transient. A failed commit is never retried here: it may have committed (the answer lost), and
 * sending the records again would publish them twice; the aggregator stops and a restart recovers from the log.
 * Fencing is never retried.
 */
export function retriableBeforeCommit(err: unknown, committing: boolean): unknown {
  if (committing || !isFedStreamError(err) || err.retriable || err.code === 'TRANSPORT_FENCED') return err;
  if (err.details.kafkaRetriable !== true) return err;
  return new FedStreamError(err.code, err.message, { cause: err, retriable: true, details: { ...err.details, retriedWholeTransaction: true } });
}

/**
 * Fault injection: a function is called at every point; a string `kill:<point>:<round>` sends SIGKILL to this process
 * at that point of that round (the CLI reads it from FEDSTREAM_FAULT).
 */
export function faultAt(fault: string | ((point: FaultPoint, round: number) => void) | undefined, point: FaultPoint, round: number, log: Logger): void {
  if (!fault) return;
  if (typeof fault === 'function') return fault(point, round);
  const [action, p, r] = fault.split(':');
  if (action === 'kill' && p === point && Number(r) === round) {
    log.warn({ point, round }, 'fault injection: SIGKILL');
    process.kill(process.pid, 'SIGKILL');
  }
}
