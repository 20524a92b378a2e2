import type { Manifest } from '../config/index.ts';
import { parseDuration, topicPrefix } from '../config/index.ts';
import { TOPIC_KINDS, type TopicKind } from '../config/index.ts';
import type { Logger } from 'pino';
import { FedStreamError } from '../common/index.ts';
import { sleep } from '../common/index.ts';
import type { Admin, PartitionOffsets, TopicSpec, Transport } from '../transport/index.ts';

export type PipelineTopics = Record<TopicKind, string>;

/** The topic kinds the sink reads (the dead-letter topic it only writes): its intake and its ACLs (access.ts). */
export const SINK_TOPIC_KINDS = ['telemetry', 'audit', 'control', 'updates', 'models'] as const satisfies readonly TopicKind[];
export type SinkTopicKind = (typeof SINK_TOPIC_KINDS)[number];

export function pipelineTopics(m: Pick<Manifest, 'tenant' | 'name'>): PipelineTopics {
  const prefix = topicPrefix(m);
  return Object.fromEntries(TOPIC_KINDS.map((k) => [k, `${prefix}.${k}`])) as PipelineTopics;
}

/** Default retention per topic kind, in ms; -1 keeps forever. */
const DEFAULT_RETENTION_MS: Record<TopicKind, number> = {
  // Every model version stays readable: models are never deleted by time or size.
  models: -1,
  // Control is tiny and the round history is useful for replay and audit.
  control: -1,
  // Updates are needed until their round's offsets are committed; a week leaves room for slow rounds and replays.
  updates: 7 * 86_400_000,
  telemetry: 7 * 86_400_000,
  audit: -1,
  'dead-letter': 30 * 86_400_000,
};

/**
 * The six topics of a pipeline with their configs. `models` keeps every version
 * (retention.ms=-1, retention.bytes=-1, cleanup.policy=delete: never compacted, never expired),
 * so that any version and its lineage can be read back from Kafka.
 */
export function topicSpecs(m: Manifest): TopicSpec[] {
  const names = pipelineTopics(m);
  return TOPIC_KINDS.map((kind) => {
    const retentionMs = m.topics.retention?.[kind] !== undefined ? parseDuration(m.topics.retention[kind]!) : DEFAULT_RETENTION_MS[kind];
    const configs: Record<string, string> = {
      'cleanup.policy': 'delete',
      'retention.ms': String(kind === 'models' ? -1 : retentionMs),
      'retention.bytes': '-1',
    };
    // Control and models are read in order by every node: one partition keeps a single total order.
    const numPartitions = kind === 'control' || kind === 'models' ? 1 : m.topics.partitions;
    return { topic: names[kind], numPartitions, replicationFactor: m.topics.replicationFactor, configs };
  });
}

/** Creates the pipeline's topics that are missing (idempotent); returns the ones it created. */
export async function ensureTopics(admin: Admin, m: Manifest): Promise<string[]> {
  return admin.createTopics(topicSpecs(m));
}

/**
 * Waits until the topics exist and answers their offsets. Readers (nodes, the sink) do not create topics (the
 * aggregator or `fedstream topics` does, with their configs), so one that starts first waits here.
 */
export async function waitForTopics(
  transport: Transport,
  topics: string[],
  { logger, timeoutMs = 300_000, isStopped = () => false }: { logger?: Logger; timeoutMs?: number; isStopped?: () => boolean } = {},
): Promise<Map<string, PartitionOffsets[]>> {
  const admin = transport.admin();
  const deadline = Date.now() + timeoutMs;
  let logged = false;
  try {
    for (;;) {
      try {
        const out = new Map<string, PartitionOffsets[]>();
        for (const topic of topics) out.set(topic, await admin.fetchTopicOffsets(topic));
        return out;
      } catch (err) {
        // A missing topic, or one just created whose partitions have no leader yet (NOT_LEADER_FOR_PARTITION and the
        // like are retriable): both mean "not ready yet" until the deadline.
        const notYet = err instanceof FedStreamError && (err.code === 'TRANSPORT_TOPIC' || err.retriable);
        if (!notYet || Date.now() > deadline || isStopped()) throw err;
        if (!logged) logger?.info({ topics }, 'waiting for the pipeline topics to be created');
        logged = true;
        await sleep(500);
      }
    }
  } finally {
    await admin.close();
  }
}
