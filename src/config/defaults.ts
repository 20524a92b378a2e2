/**
 * Defaults in one place. docker-compose.yml and the README are checked against these by tests.
 */
export const DEFAULTS = {
  /** Where `--kafka` points when neither the flag, FEDSTREAM_KAFKA nor the manifest says otherwise (docker-compose's broker). */
  kafkaBrokers: '127.0.0.1:9092',
  /** ClickHouse server HTTP interface (docker-compose's clickhouse service). */
  clickhouseUrl: 'http://127.0.0.1:8123',
  clickhouseDatabase: 'fedstream',
  clickhouseUser: 'default',
  /** Embedded ClickHouse (chdb) data directory, relative to the working directory. */
  embeddedClickhousePath: '.fedstream/clickhouse',
  /** Kafka's default max.message.bytes is 1048588; chunks stay well under it with room for headers. */
  chunkSizeBytes: 900 * 1024,
  /** Kafka version the project starts for tests and pins in docker-compose.yml. */
  kafkaVersion: '3.9.1',
  /** ClickHouse server image tag in docker-compose.yml (an LTS line). */
  clickhouseServerVersion: '25.8',
  demoOutDir: './fedstream-demo',
} as const;

/** Smallest and largest `topics.chunkSizeBytes` a manifest may set: the bounds a reader checks chunk headers against. */
export const CHUNK_SIZE_BOUNDS = { min: 1024, max: 1_000_000 } as const;

/**
 * Defaults of the manifest's `limits` section (docs/security.md, "Hostile-input limits"): what any input may make a
 * reader hold or the aggregator count, whoever sent it. Sizes in bytes, ages in milliseconds.
 */
export const LIMIT_DEFAULTS = {
  maxUpdateNorm: 1000,
  /** Largest `numExamples` one update may claim. */
  maxExamplesPerUpdate: 10_000_000,
  /** Largest |value| of a metric that is averaged and published (non-finite values never are). */
  maxMetricAbs: 1e9,
  /** Largest whole payload (declared `fedstream-size`) a reader reassembles: 64 MiB, ~16M float32 parameters. */
  maxPayloadBytes: 64 * 1024 * 1024,
  /** Most incomplete chunked payloads a reader holds per topic. */
  maxPendingPayloads: 256,
  /** Most bytes of incomplete chunked payloads a reader holds per topic. */
  maxPendingBytes: 128 * 1024 * 1024,
  /** An incomplete payload with no new chunk for this long is expired. */
  maxPendingAgeMs: 10 * 60_000,
  /** Most raw bytes of rejected messages the aggregator keeps for the dead-letter topic until a round's transaction. */
  maxDeadLetterBytesPerRound: 64 * 1024 * 1024,
  /** Most rejections of one round audited one by one; beyond, they are counted by code in the round's closing event. */
  maxRejectionsPerRound: 10_000,
} as const;

export const TOPIC_KINDS = ['control', 'updates', 'models', 'telemetry', 'audit', 'dead-letter'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];
