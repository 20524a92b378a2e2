-- Telemetry: every TelemetryEvent a node publishes on <tenant>.<pipeline>.telemetry, and the
-- heartbeats among them.
--
-- Applied by src/analytics/ddl.ts (applySchema): statements end with `;` at the end of a line,
-- `--` comments are stripped, ${name} placeholders are substituted (docs/clickhouse.md lists them).
--
-- Deduplication: the sink is at-least-once, so a redelivered Kafka record arrives again with the
-- same (kafka_partition, kafka_offset) and the same event_time. Both are in the sorting key of a
-- ReplacingMergeTree, so background merges collapse the copies; queries that must be exact before
-- merges read `FINAL` (or `LIMIT 1 BY` the key).
--
-- A retried insert of the same batch is dropped at once (non_replicated_deduplication_window, on
-- every table, materialized-view targets included): either every column is sent identically, or
-- the sink passes the same insert_deduplication_token. Sparse serialization is off
-- (ratio_of_defaults_for_sparse_serialization = 1) because, on ClickHouse 26.7, a block holding a
-- column of nothing but defaults (say message = '') hashes differently on each insert and escapes
-- that deduplication.

CREATE TABLE IF NOT EXISTS ${database}.telemetry_events
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    node_id         LowCardinality(String),
    kind            LowCardinality(String) COMMENT 'HEARTBEAT, METRICS, LOG, ...',
    round           Nullable(UInt64),
    event_time      DateTime64(3, 'UTC') COMMENT 'when the node produced the event',
    metrics         Map(LowCardinality(String), Float64),
    labels          Map(LowCardinality(String), String),
    message         String DEFAULT '',
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, pipeline, event_time, node_id, kafka_partition, kafka_offset)
TTL toDateTime(event_time) + INTERVAL ${retention_days_telemetry} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'TelemetryEvent records from the telemetry topic; dedup key (tenant, pipeline, event_time, node_id, kafka_partition, kafka_offset)';

-- Heartbeats get their own table, ordered by node, so that "when did node X last report?" reads a
-- few granules. It is filled by the materialized view below and never written directly.
CREATE TABLE IF NOT EXISTS ${database}.heartbeats
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    node_id         LowCardinality(String),
    round           Nullable(UInt64),
    event_time      DateTime64(3, 'UTC'),
    metrics         Map(LowCardinality(String), Float64),
    labels          Map(LowCardinality(String), String),
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, pipeline, node_id, event_time, kafka_partition, kafka_offset)
TTL toDateTime(event_time) + INTERVAL ${retention_days_telemetry} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'telemetry_events with kind = HEARTBEAT, ordered by node (filled by heartbeats_mv)';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.heartbeats_mv TO ${database}.heartbeats
AS SELECT
    tenant, pipeline, node_id, round, event_time, metrics, labels, kafka_partition, kafka_offset, inserted_at
FROM ${database}.telemetry_events
WHERE kind = 'HEARTBEAT';
