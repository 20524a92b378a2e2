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

export const TOPIC_KINDS = ['control', 'updates', 'models', 'telemetry', 'audit', 'dead-letter'] as const;
export type TopicKind = (typeof TOPIC_KINDS)[number];
