-- Training metadata: rounds, updates (never their weights), rejections, model versions and the
-- lineage that ties them together (contributions).
--
-- Every table is a ReplacingMergeTree whose sorting key ends with the record's natural key, so
-- the at-least-once sink's redeliveries collapse on merge; exact reads before merges use FINAL or
-- `LIMIT 1 BY <key>` (docs/clickhouse.md). Duplicates must repeat the time column of the original
-- (they do: it comes from the message), since rows only collapse within one monthly partition.
-- kafka_* columns record the Kafka record each row came from, for audits.

-- One row per RoundControl the aggregator publishes (open, extend, close, abandon, ...).
CREATE TABLE IF NOT EXISTS ${database}.rounds
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    round           UInt64,
    base_version    UInt64,
    kind            LowCardinality(String) COMMENT 'what the control record announces: OPEN, EXTEND, CLOSE, ABANDON, ...',
    deadline        DateTime64(3, 'UTC'),
    min_updates     UInt32,
    target_updates  UInt32,
    event_time      DateTime64(3, 'UTC'),
    config          Map(LowCardinality(String), String) DEFAULT map(),
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, pipeline, round, event_time, kind)
TTL toDateTime(event_time) + INTERVAL ${retention_days_lineage} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'RoundControl records; dedup key (tenant, pipeline, round, event_time, kind)';

-- Update metadata. A row may be written twice: first as 'received' (seen on the updates topic),
-- then with the aggregator's decision ('accepted' or 'rejected'), same key and same created_at.
-- status_rank makes the decision win over 'received' on merge and in FINAL.
CREATE TABLE IF NOT EXISTS ${database}.updates
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    update_id       String,
    node_id         LowCardinality(String),
    round           UInt64,
    base_version    UInt64,
    num_examples    UInt64,
    num_params      UInt64,
    payload_bytes   UInt64,
    metrics         Map(LowCardinality(String), Float64) COMMENT 'local training metrics reported by the node: loss, accuracy, ...',
    training_ms     UInt64,
    created_at      DateTime64(3, 'UTC') COMMENT 'when the node published the update',
    status          LowCardinality(String) DEFAULT 'received' COMMENT 'received, accepted or rejected',
    status_rank     UInt8 MATERIALIZED if(status = 'received', 0, 1),
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(status_rank)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, pipeline, round, node_id, update_id)
TTL toDateTime(created_at) + INTERVAL ${retention_days_updates} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'ModelUpdate metadata (never weights); dedup key (tenant, pipeline, round, node_id, update_id), decided status wins';

-- Rejections, including records that could not even be decoded (then update_id, node_id may be ''
-- and round NULL). Keyed by the Kafka record the rejection was read from.
CREATE TABLE IF NOT EXISTS ${database}.rejected_updates
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    update_id       String DEFAULT '',
    node_id         LowCardinality(String) DEFAULT '',
    round           Nullable(UInt64),
    reason          String COMMENT 'for a person to read',
    reason_code     LowCardinality(String) COMMENT 'stable code: STALE_ROUND, BAD_SHAPE, NON_FINITE, NORM_BOUND, DUPLICATE, CODEC_*, ...',
    raw_size        UInt64 DEFAULT 0,
    event_time      DateTime64(3, 'UTC'),
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, pipeline, event_time, kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(event_time) + INTERVAL ${retention_days_updates} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'rejected updates and unreadable records; dedup key (tenant, pipeline, event_time, kafka_topic, kafka_partition, kafka_offset)';

CREATE TABLE IF NOT EXISTS ${database}.model_versions
(
    tenant           LowCardinality(String),
    pipeline         LowCardinality(String),
    version          UInt64,
    parent_version   Nullable(UInt64) COMMENT 'NULL for the initial model',
    round            UInt64,
    strategy         LowCardinality(String),
    weights_sha256   String,
    total_examples   UInt64,
    num_contributors UInt32,
    rejected_count   UInt32,
    metrics          Map(LowCardinality(String), Float64),
    created_at       DateTime64(3, 'UTC'),
    kafka_topic      LowCardinality(String) DEFAULT '',
    kafka_partition  UInt32 DEFAULT 0,
    kafka_offset     UInt64 DEFAULT 0,
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, pipeline, version)
TTL toDateTime(created_at) + INTERVAL ${retention_days_lineage} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'ModelVersion metadata and lineage head; dedup key (tenant, pipeline, version)';

-- Lineage: which updates (and so which nodes' data) shaped each version, with the weight each got.
CREATE TABLE IF NOT EXISTS ${database}.contributions
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    version         UInt64,
    update_id       String,
    node_id         LowCardinality(String),
    round           UInt64,
    num_examples    UInt64,
    weight          Float64 COMMENT 'the weight the strategy gave this update (FedAvg: num_examples / total_examples)',
    created_at      DateTime64(3, 'UTC') COMMENT 'created_at of the version',
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, pipeline, version, update_id)
TTL toDateTime(created_at) + INTERVAL ${retention_days_lineage} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'version <-> update <-> node lineage; dedup key (tenant, pipeline, version, update_id)';
