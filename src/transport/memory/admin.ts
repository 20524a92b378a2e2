/** The in-memory admin client: topics (validated as the broker validates them), offsets, committed offsets. */
import { FedStreamError } from '../../common/index.ts';
import { TopicState, topicError, tpKey, type MemoryCluster } from './cluster.ts';
import type {
  Admin,
  GroupDescription,
  PartitionOffsets,
  TopicDescription,
  TopicPartitionOffset,
  TopicSpec,
} from '../types.ts';

/** Topic-level configs Kafka 3.9 accepts; anything else is refused as the broker refuses it (INVALID_CONFIG). */
const TOPIC_CONFIGS = new Set([
  'cleanup.policy', 'compression.type', 'compression.gzip.level', 'compression.lz4.level', 'compression.zstd.level',
  'delete.retention.ms', 'file.delete.delay.ms', 'flush.messages', 'flush.ms', 'follower.replication.throttled.replicas',
  'index.interval.bytes', 'leader.replication.throttled.replicas', 'local.retention.bytes', 'local.retention.ms',
  'max.compaction.lag.ms', 'max.message.bytes', 'message.downconversion.enable', 'message.format.version',
  'message.timestamp.after.max.ms', 'message.timestamp.before.max.ms', 'message.timestamp.difference.max.ms',
  'message.timestamp.type', 'min.cleanable.dirty.ratio', 'min.compaction.lag.ms', 'min.insync.replicas', 'preallocate',
  'remote.log.copy.disable', 'remote.log.delete.on.disable', 'remote.storage.enable', 'retention.bytes', 'retention.ms',
  'segment.bytes', 'segment.index.bytes', 'segment.jitter.ms', 'segment.ms', 'unclean.leader.election.enable',
]);
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;


export class MemoryAdmin implements Admin {
  private readonly cluster: MemoryCluster;
  private readonly onClosed: (client: object) => void;
  private closed = false;

  constructor(cluster: MemoryCluster, onClosed: (client: object) => void = () => undefined) {
    this.cluster = cluster;
    this.onClosed = onClosed;
  }

  private check(what: string): void {
    if (this.closed) throw new FedStreamError('TRANSPORT_CLOSED', `admin: ${what}: the admin client is closed`);
  }

  async createTopics(topics: TopicSpec[]): Promise<string[]> {
    this.check('createTopics');
    for (const spec of topics) {
      if (!TOPIC_NAME.test(spec.topic) || spec.topic === '.' || spec.topic === '..') {
        throw topicError(`admin: create topic ${JSON.stringify(spec.topic)}: a topic name is 1-249 characters of [a-zA-Z0-9._-]`, { topic: spec.topic, kafkaType: 'INVALID_TOPIC_EXCEPTION' });
      }
      const n = spec.numPartitions ?? 1;
      if (!Number.isInteger(n) || (n < 1 && n !== -1)) throw topicError(`admin: create topic ${spec.topic}: numPartitions must be a positive integer, got ${n}`, { topic: spec.topic, kafkaType: 'INVALID_PARTITIONS' });
      for (const name of Object.keys(spec.configs ?? {})) {
        if (!TOPIC_CONFIGS.has(name)) throw topicError(`admin: create topic ${spec.topic}: unknown topic config ${name}`, { topic: spec.topic, kafkaType: 'INVALID_CONFIG' });
      }
    }
    const created: string[] = [];
    for (const spec of topics) {
      if (this.cluster.topics.has(spec.topic)) continue;
      const n = spec.numPartitions === undefined || spec.numPartitions === -1 ? 1 : spec.numPartitions;
      this.cluster.topics.set(spec.topic, new TopicState(spec.topic, n, { ...spec.configs }));
      created.push(spec.topic);
    }
    if (created.length > 0) this.cluster.notify();
    return created;
  }

  async deleteTopics(topics: string[]): Promise<void> {
    this.check('deleteTopics');
    const gone = topics.filter((t) => this.cluster.topics.delete(t));
    if (gone.length === 0) return;
    for (const group of this.cluster.groups.values()) {
      if (group.members.some((m) => m.subscriptions.some((s) => gone.includes(s)))) this.cluster.rebalance(group);
    }
    this.cluster.notify();
  }

  async listTopics(): Promise<string[]> {
    this.check('listTopics');
    return [...this.cluster.topics.keys()].sort();
  }

  async describeTopic(topic: string): Promise<TopicDescription> {
    this.check('describeTopic');
    const t = this.cluster.topic(topic);
    return { topic, partitions: t.partitions.length, configs: { ...t.configs } };
  }

  async fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.check('fetchTopicOffsets');
    // As kafkajs' admin, which lists offsets with isolation level read_committed: high is the last stable offset.
    return this.cluster.topic(topic).partitions.map((log, partition) => ({ partition, low: '0', high: String(log.lastStable()) }));
  }

  async fetchCommittedOffsets(groupId: string, topic: string): Promise<TopicPartitionOffset[]> {
    this.check('fetchCommittedOffsets');
    const t = this.cluster.topic(topic);
    const committed = this.cluster.groups.get(groupId)?.committed;
    return t.partitions.map((_, partition) => ({ topic, partition, offset: String(committed?.get(tpKey(topic, partition)) ?? -1) }));
  }

  async fetchOffsetsAtTime(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]> {
    this.check('fetchOffsetsAtTime');
    return this.cluster.topic(topic).partitions.map((log, partition) => {
      const first = log.records.find((r) => !r.control && r.timestamp >= timestampMs);
      return { topic, partition, offset: String(first ? first.offset : log.end) };
    });
  }

  /** Members are the running consumers of the group in this process: they never crash apart from it, so never expire. */
  async describeGroup(groupId: string): Promise<GroupDescription> {
    this.check('describeGroup');
    const group = this.cluster.groups.get(groupId);
    const members = (group?.members ?? []).map((m) => ({ memberId: m.memberId, clientId: 'memory', clientHost: 'in-process' }));
    return { groupId, state: group === undefined ? 'Dead' : members.length > 0 ? 'Stable' : 'Empty', members };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
  }
}
