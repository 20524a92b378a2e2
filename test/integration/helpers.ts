/**
 * Helpers for tests that talk to a transport (the real broker or the in-memory one): unique names, teardown
 * registered beside creation, message collectors with waits instead of sleeps, and private brokers for outages.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { inject, onTestFinished } from 'vitest';
import { waitFor } from '../../src/common/retry.ts';
import { waitForTopics } from '../../src/protocol/topics.ts';
import type { Admin, Consumer, Producer, ProducerOptions, TopicSpec, Transport, TransportMessage } from '../../src/transport/types.ts';
import { brokersFrom, ROOT, runKafkaScript } from './global-setup.ts';

function injected<K extends 'kafkaBrokers' | 'kafkaStateDir'>(key: K): string | undefined {
  try {
    return inject(key) || undefined;
  } catch {
    return undefined;
  }
}

/** The brokers of the integration run (from the global setup), else KAFKA_BROKERS. */
export function kafkaBrokers(): string {
  const brokers = injected('kafkaBrokers') ?? process.env.KAFKA_BROKERS;
  if (!brokers) throw new Error('no Kafka broker: run through the vitest integration project (its global setup starts one) or set KAFKA_BROKERS');
  return brokers;
}

/** `prefix-<time>-<random>`: a valid topic, group or transactional id that no other test or run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Runs `fn` when the current test ends, pass or fail. Call it right where the resource is made. */
export function deferCleanup(fn: () => unknown): void {
  onTestFinished(async () => {
    await fn();
  });
}

/** Creates topics with unique names (`prefix-…`) and deletes them when the test ends. */
export async function createTestTopics(transport: Transport, specs: (Omit<TopicSpec, 'topic'> & { prefix?: string })[]): Promise<string[]> {
  const admin = transport.admin();
  const topics = specs.map(({ prefix, ...spec }) => ({ ...spec, topic: uniqueName(prefix ?? 'test') }));
  deferCleanup(async () => {
    await admin.deleteTopics(topics.map((t) => t.topic)).catch(() => undefined);
    await admin.close();
  });
  await admin.createTopics(topics);
  // Created is not yet usable everywhere on a loaded broker: wait until every partition answers with its offsets
  // (has a leader), so that the test's first produce or subscribe does not meet "does not host this topic-partition".
  await waitForTopics(transport, topics.map((t) => t.topic), { timeoutMs: 120_000 });
  return topics.map((t) => t.topic);
}

export async function createTestTopic(transport: Transport, spec: Omit<TopicSpec, 'topic'> & { prefix?: string } = {}): Promise<string> {
  const [topic] = await createTestTopics(transport, [spec]);
  return topic!;
}

/** An admin client closed when the test ends. */
export function testAdmin(transport: Transport): Admin {
  const admin = transport.admin();
  deferCleanup(() => admin.close());
  return admin;
}

/** A connected producer, disconnected when the test ends. */
export async function connectedProducer(transport: Transport, options?: ProducerOptions): Promise<Producer> {
  const producer = transport.producer(options);
  deferCleanup(() => producer.disconnect());
  await producer.connect();
  return producer;
}

export interface CollectorOptions {
  topics: string[];
  /** Default: a unique group. */
  groupId?: string;
  readCommitted?: boolean;
  fromBeginning?: boolean;
  /** Resolve every message and let the consumer commit after each batch (default true). */
  autoCommit?: boolean;
  maxBytesPerPartition?: number;
  /** Disconnect when the test ends (default true; pass false outside a test, e.g. in beforeAll). */
  cleanup?: boolean;
}

export interface Collector {
  readonly consumer: Consumer;
  readonly groupId: string;
  /** Every message delivered so far, in delivery order (redeliveries included). */
  readonly messages: TransportMessage[];
  /** Values as UTF-8 strings, in delivery order. */
  values(filter?: (m: TransportMessage) => boolean): string[];
  /** Waits until at least `count` messages arrived (optionally counting only those that pass `filter`). */
  waitForCount(count: number, options?: { timeoutMs?: number; filter?: (m: TransportMessage) => boolean }): Promise<TransportMessage[]>;
  /** Waits until a message with this value arrived. */
  waitForValue(value: string, options?: { timeoutMs?: number }): Promise<TransportMessage>;
  stop(): Promise<void>;
}

const text = (m: TransportMessage): string => m.value?.toString('utf8') ?? '<null>';

/** Starts a consumer that records every message it is given; resolves once the consumer is running. */
export async function collectMessages(transport: Transport, options: CollectorOptions): Promise<Collector> {
  const groupId = options.groupId ?? uniqueName('group');
  const consumer = transport.consumer({
    groupId,
    readCommitted: options.readCommitted,
    fromBeginning: options.fromBeginning,
    maxBytesPerPartition: options.maxBytesPerPartition,
  });
  if (options.cleanup !== false) deferCleanup(() => consumer.disconnect());
  const messages: TransportMessage[] = [];
  await consumer.connect();
  await consumer.subscribe(options.topics);
  await consumer.run({
    autoCommit: options.autoCommit ?? true,
    eachBatch: async (batch, ctx) => {
      for (const m of batch.messages) {
        if (!ctx.isRunning()) break;
        messages.push(m);
        ctx.resolveOffset(m.offset);
      }
    },
  });
  return {
    consumer,
    groupId,
    messages,
    values: (filter) => (filter ? messages.filter(filter) : messages).map(text),
    waitForCount: (count, { timeoutMs = 60_000, filter } = {}) => waitForMessages(messages, count, { timeoutMs, filter, what: `${count} messages on ${options.topics.join(', ')} (group ${groupId})` }),
    waitForValue: async (value, { timeoutMs = 60_000 } = {}) =>
      waitFor(() => messages.find((m) => text(m) === value), { timeoutMs, what: `a message "${value}" on ${options.topics.join(', ')} (group ${groupId})` }),
    stop: () => consumer.disconnect(),
  };
}

/** kafkajs' `waitForMessages`: waits until `messages` (filled by a consumer) holds at least `count` entries. */
export async function waitForMessages(
  messages: TransportMessage[],
  count: number,
  { timeoutMs = 60_000, filter, what }: { timeoutMs?: number; filter?: (m: TransportMessage) => boolean; what?: string } = {},
): Promise<TransportMessage[]> {
  return waitFor(
    () => {
      const seen = filter ? messages.filter(filter) : messages;
      return seen.length >= count ? seen : undefined;
    },
    { timeoutMs, what: what ?? `${count} messages` },
  );
}

/** Sends one record per value (UTF-8), one send call each unless `together`. */
export async function sendValues(
  producer: Producer,
  topic: string,
  values: string[],
  options: { key?: string; partition?: number; together?: boolean } = {},
): Promise<void> {
  const records = values.map((v) => ({ topic, key: options.key, partition: options.partition, value: Buffer.from(v) }));
  if (options.together) await producer.send(records);
  else for (const r of records) await producer.send([r]);
}

/** A broker of one's own, for tests that take it down: the shared test broker serves other test files meanwhile. */
export interface PrivateBroker {
  /** `host:port` */
  readonly brokers: string;
  readonly stateDir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stop + start on the same port with the same data: a short outage. */
  restart(): Promise<void>;
}

/** True when this run starts brokers itself (Java and the jars are there); false with an external KAFKA_BROKERS. */
export function canStartBrokers(): boolean {
  return injected('kafkaStateDir') !== undefined;
}

/** Starts a separate single-node broker (about 5 s); it is stopped and its data deleted when the test ends. */
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const stateDir = path.join(ROOT, '.kafka', uniqueName('private'));
  deferCleanup(() => runKafkaScript('clean', stateDir));
  const run = async (command: string): Promise<string | undefined> => {
    const result = await runKafkaScript(command, stateDir);
    if (result.code !== 0) throw new Error(`node scripts/kafka.mjs ${command} failed (exit ${result.code}):\n${result.stderr}`);
    return brokersFrom(result.stdout);
  };
  const brokers = await run('start');
  if (!brokers) throw new Error(`node scripts/kafka.mjs start printed no KAFKA_BROKERS line (state dir ${stateDir})`);
  return {
    brokers,
    stateDir,
    stop: async () => void (await run('stop')),
    start: async () => void (await run('start')),
    restart: async () => void (await run('restart')),
  };
}
