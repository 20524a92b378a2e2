/** The Kafka admin client: topics with their configs, offsets, committed offsets. */
// First, so that kafkajs finds the faster CRC-32C in require.cache when it loads its record batch encoder.
import './kafkajs-crc.ts';
import kafkajs from 'kafkajs';
import type {
  Admin as KafkaJsAdmin,
  Kafka as KafkaJsClient,
} from 'kafkajs';
import { FedStreamError } from '../../common/index.ts';
import { createAcls, deleteAcls, describeAcls, type KafkaAcl } from './acl.ts';
import { closedError, fencedReplicationAnswer, fromKafkaJsError, mapped, mappedWithRetry } from './errors.ts';
import type { KafkaClientContext } from './security.ts';
import type {
  Admin,
  GroupDescription,
  PartitionOffsets,
  TopicDescription,
  TopicPartitionOffset,
  TopicSpec,
} from '../types.ts';

const { ConfigResourceTypes, ConfigSource } = kafkajs;

export class KafkaAdmin implements Admin {
  private readonly admin: KafkaJsAdmin;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly onClosed: (client: object) => void;

  private readonly ctx: KafkaClientContext | undefined;
  /** The most brokers this client has seen in the cluster's metadata (fencedReplicationAnswer). */
  private brokersSeen = 0;

  constructor(kafka: KafkaJsClient, onClosed: (client: object) => void = () => undefined, ctx?: KafkaClientContext) {
    this.admin = kafka.admin();
    this.onClosed = onClosed;
    this.ctx = ctx;
  }

  private async ready(): Promise<KafkaJsAdmin> {
    if (this.closed) throw closedError('admin');
    this.connecting ??= mapped('admin: connect', async () => { await this.ctx?.preflight(); await this.admin.connect(); }, { security: this.ctx?.security }).catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    await this.connecting;
    return this.admin;
  }

  /** A kafkajs call with this client's security, for errors that name the principal and the resource. */
  private call<T>(operation: string, fn: () => Promise<T>, resource?: string): Promise<T> {
    return mapped(operation, fn, { security: this.ctx?.security, resource });
  }

  /**
   * A read, or a write that may be repeated (creating a topic or an ACL that exists is no error), retried while the
   * broker's answer is retriable: a topic created a moment ago has partitions whose leader this client's metadata
   * does not know yet (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION "This server does
   * not host this topic-partition"), which kafkajs' admin does not retry on every path, least of all on a loaded
   * machine.
   */
  private async read<T>(operation: string, fn: () => Promise<T>, resource?: string, o: { topicExists?: boolean } = {}): Promise<T> {
    // A missing topic is the caller's to wait for (protocol/topics.ts waitForTopics), not this loop's; unless the
    // caller knows it exists (it created it, or listed it), when "does not host this topic-partition" is transient.
    // Retried for KAFKA_RETRY_BUDGET_MS (30 s), not a fixed few attempts (~5 s), which a loaded machine outlasted.
    return mappedWithRetry(operation, fn, { security: this.ctx?.security, resource, topicExists: o.topicExists });
  }

  /** Notes how many brokers the cluster's metadata lists now; best effort (a fenced broker is not listed). */
  private async countBrokers(admin: KafkaJsAdmin): Promise<number> {
    try {
      this.brokersSeen = Math.max(this.brokersSeen, (await admin.describeCluster()).brokers.length);
    } catch {
      // The count stays what it was; the caller's own request reports the broker's state.
    }
    return this.brokersSeen;
  }

  async createTopics(topics: TopicSpec[]): Promise<string[]> {
    const admin = await this.ready();
    if (this.brokersSeen === 0) await this.countBrokers(admin);
    // One request per topic: kafkajs reports only "all created or not" per request, and callers need the names.
    const created = await Promise.all(
      topics.map(async (spec) => {
        const configs = Object.entries(spec.configs ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
        // kafkajs' own wait for the new topic's leaders may fail retriably after the broker created it: then the
        // repeated request finds the topic there, and this request is still the one that created it.
        let failedRetriably = false;
        const operation = `admin: create topic ${spec.topic}${configs ? ` (configs ${configs})` : ''}`;
        const ok = await this.read(operation, async () => {
          try {
            return await admin.createTopics({
              waitForLeaders: true,
              topics: [
                {
                  topic: spec.topic,
                  numPartitions: spec.numPartitions,
                  replicationFactor: spec.replicationFactor,
                  configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({ name, value })),
                },
              ],
            });
          } catch (err) {
            if ((err as { retriable?: boolean }).retriable) failedRetriably = true;
            // "Replication-factor is invalid" while the controller has fenced the brokers (nothing was created):
            // asked again (errors.ts, fencedReplicationAnswer).
            const e = fromKafkaJsError(err, operation, false, this.ctx?.security, spec.topic);
            throw e.details.kafkaType === 'INVALID_REPLICATION_FACTOR' ? fencedReplicationAnswer(e, spec.replicationFactor, await this.countBrokers(admin)) : e;
          }
        }, spec.topic, { topicExists: true });
        if (!ok && failedRetriably) return spec.topic;
        return ok ? spec.topic : undefined;
      }),
    );
    return created.filter((t): t is string => t !== undefined);
  }

  /**
   * Deletes those of `topics` that exist. Retried like createTopics while the broker's answer is retriable: each attempt
   * lists the topics again and deletes only those still present, so it may be repeated — an attempt that failed after
   * the broker deleted a topic (a timeout on a loaded machine, a connection lost, another client deleting it first:
   * "This server does not host this topic-partition") leaves the next one less to do, never an error.
   */
  async deleteTopics(topics: string[]): Promise<void> {
    const admin = await this.ready();
    await this.read(`admin: delete topics ${topics.join(', ')}`, async () => {
      const existing = new Set(await admin.listTopics());
      const present = topics.filter((t) => existing.has(t));
      if (present.length > 0) await admin.deleteTopics({ topics: present });
    }, topics.join(', '), { topicExists: true });
  }

  async listTopics(): Promise<string[]> {
    const admin = await this.ready();
    return (await this.read('admin: list topics', () => admin.listTopics())).sort();
  }

  /** kafkajs retries UNKNOWN_TOPIC_OR_PARTITION for seconds; a missing topic is answered at once instead. */
  private async requireTopic(admin: KafkaJsAdmin, topic: string, operation: string): Promise<void> {
    const topics = await this.read('admin: list topics', () => admin.listTopics());
    if (!topics.includes(topic)) {
      throw new FedStreamError('TRANSPORT_TOPIC', `${operation}: topic ${topic} does not exist`, {
        retriable: true,
        details: { topic, kafkaType: 'UNKNOWN_TOPIC_OR_PARTITION' },
      });
    }
  }

  async describeTopic(topic: string): Promise<TopicDescription> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: describe topic ${topic}`);
    const [metadata, configs] = await Promise.all([
      this.read(`admin: describe topic ${topic}`, () => admin.fetchTopicMetadata({ topics: [topic] }), topic, { topicExists: true }),
      this.read(`admin: describe configs of topic ${topic}`, () =>
        admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] }),
      topic, { topicExists: true }),
    ]);
    const partitions = metadata.topics.find((t) => t.name === topic)?.partitions.length ?? 0;
    const own: Record<string, string> = {};
    for (const entry of configs.resources[0]?.configEntries ?? []) {
      if (entry.configSource === ConfigSource.TOPIC_CONFIG) own[entry.configName] = entry.configValue;
    }
    return { topic, partitions, configs: own };
  }

  async fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: fetch offsets of topic ${topic}`);
    const offsets = await this.read(`admin: fetch offsets of topic ${topic}`, () => admin.fetchTopicOffsets(topic), topic, { topicExists: true });
    return offsets.map(({ partition, low, high }) => ({ partition, low, high })).sort((a, b) => a.partition - b.partition);
  }

  async fetchCommittedOffsets(groupId: string, topic: string): Promise<TopicPartitionOffset[]> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: fetch committed offsets of group ${groupId}`);
    const result = await this.read(`admin: fetch committed offsets of group ${groupId}`, () => admin.fetchOffsets({ groupId, topics: [topic] }), topic, { topicExists: true });
    return result
      .flatMap((t) => t.partitions.map(({ partition, offset }) => ({ topic: t.topic, partition, offset })))
      .sort((a, b) => a.partition - b.partition);
  }

  async fetchOffsetsAtTime(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]> {
    const admin = await this.ready();
    await this.requireTopic(admin, topic, `admin: fetch offsets of topic ${topic} at ${timestampMs}`);
    const offsets = await this.read(`admin: fetch offsets of topic ${topic} at ${timestampMs}`, () => admin.fetchTopicOffsetsByTimestamp(topic, timestampMs), topic, { topicExists: true });
    return offsets.map(({ partition, offset }) => ({ topic, partition, offset })).sort((a, b) => a.partition - b.partition);
  }

  async describeGroup(groupId: string): Promise<GroupDescription> {
    const admin = await this.ready();
    const { groups } = await this.read(`admin: describe consumer group ${groupId}`, () => admin.describeGroups([groupId]));
    const g = groups.find((x) => x.groupId === groupId);
    if (!g) return { groupId, state: 'Dead', members: [] };
    return { groupId, state: g.state, members: g.members.map(({ memberId, clientId, clientHost }) => ({ memberId, clientId, clientHost })) };
  }

  /** Kafka only (`fedstream access`): creates ALLOW bindings; idempotent. */
  async createAcls(acls: readonly KafkaAcl[]): Promise<void> {
    const admin = await this.ready();
    await this.read(`admin: create ${acls.length} ACLs`, () => createAcls(admin, acls));
  }

  /** Kafka only: the ALLOW bindings on resources named under `namePrefix`, optionally of one principal. */
  async describeAcls(namePrefix: string, principal?: string): Promise<KafkaAcl[]> {
    const admin = await this.ready();
    return this.read(`admin: describe ACLs of ${namePrefix}*`, () => describeAcls(admin, namePrefix, principal));
  }

  /** Kafka only: deletes exactly these bindings; how many the broker removed. */
  async deleteAcls(acls: readonly KafkaAcl[]): Promise<number> {
    const admin = await this.ready();
    return this.read(`admin: delete ${acls.length} ACLs`, () => deleteAcls(admin, acls));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    if (this.connecting) await this.admin.disconnect().catch(() => undefined);
  }
}
