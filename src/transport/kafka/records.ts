/** Conversions between the port's records and kafkajs' messages, and the split of a large send into requests. */
import type {
  IHeaders,
  KafkaMessage,
  Message,
  RecordMetadata as KafkaJsRecordMetadata,
  TopicMessages,
} from 'kafkajs';
import { FedStreamError } from '../../common/index.ts';
import type {
  ProducerRecord,
  RecordMetadata,
  TopicPartitionOffset,
  TransportMessage,
} from '../types.ts';

/**
 * The most bytes one produce request carries per send call before the records are split across requests. Kafka's
 * default `message.max.bytes` (1048588) applies to a whole record batch, and kafkajs puts every record of a
 * partition into one batch.
 */
const MAX_REQUEST_RECORD_BYTES = 1_000_000;
const RECORD_OVERHEAD_BYTES = 32;


/** A promise chain: one holder at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function recordBytes(r: ProducerRecord): number {
  let size = RECORD_OVERHEAD_BYTES + (r.value?.length ?? 0) + (r.key == null ? 0 : Buffer.byteLength(r.key));
  for (const [k, v] of Object.entries(r.headers ?? {})) size += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  return size;
}

/** Consecutive groups of records whose estimated size stays under the batch limit (a single record always forms a group). */
function splitForRequests(records: ProducerRecord[]): ProducerRecord[][] {
  const groups: ProducerRecord[][] = [];
  let current: ProducerRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = recordBytes(r);
    if (current.length > 0 && bytes + size > MAX_REQUEST_RECORD_BYTES) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(r);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

function toTopicMessages(records: ProducerRecord[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const r of records) {
    let messages = byTopic.get(r.topic);
    if (!messages) byTopic.set(r.topic, (messages = []));
    const message: Message = { key: r.key ?? null, value: r.value };
    if (r.headers) message.headers = r.headers;
    if (r.partition !== undefined) message.partition = r.partition;
    if (r.timestamp !== undefined) message.timestamp = String(r.timestamp);
    messages.push(message);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

function validateRecords(records: ProducerRecord[]): void {
  for (const r of records) {
    if (!r.topic) throw new FedStreamError('TRANSPORT_TOPIC', 'a record has no topic');
  }
}

/** Sends records in as few produce requests as the batch limit allows; one metadata entry per topic-partition. */
export async function sendInRequests(sendBatch: (batch: { topicMessages: TopicMessages[]; acks: number }) => Promise<KafkaJsRecordMetadata[]>, records: ProducerRecord[]): Promise<RecordMetadata[]> {
  validateRecords(records);
  const seen = new Map<string, RecordMetadata>();
  for (const group of splitForRequests(records)) {
    const result = await sendBatch({ topicMessages: toTopicMessages(group), acks: -1 });
    for (const m of result) {
      const key = `${m.topicName}\u0000${m.partition}`;
      if (seen.has(key)) continue;
      const meta: RecordMetadata = { topic: m.topicName, partition: m.partition };
      if (m.baseOffset !== undefined) meta.baseOffset = m.baseOffset;
      seen.set(key, meta);
    }
  }
  return [...seen.values()];
}

function toBuffer(v: Buffer | string): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
}

function toHeaders(headers: IHeaders | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    // A repeated header key arrives as an array; the last value wins, as with Java's `headers.lastHeader(key)`.
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined) out[k] = toBuffer(last);
  }
  return out;
}

export function toTransportMessage(topic: string, partition: number, m: KafkaMessage): TransportMessage {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ?? null,
    value: m.value ?? null,
    headers: toHeaders(m.headers),
    timestamp: Number(m.timestamp),
  };
}

export function offsetsByTopic(offsets: TopicPartitionOffset[]): { topic: string; partitions: { partition: number; offset: string }[] }[] {
  const byTopic = new Map<string, { partition: number; offset: string }[]>();
  for (const o of offsets) {
    let partitions = byTopic.get(o.topic);
    if (!partitions) byTopic.set(o.topic, (partitions = []));
    partitions.push({ partition: o.partition, offset: o.offset });
  }
  return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
}
