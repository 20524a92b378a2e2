-- The audit trail: every decision and rejection the aggregator publishes on the audit topic.
-- Rows are never updated; ReplacingMergeTree only collapses redeliveries of the same event_id.

CREATE TABLE IF NOT EXISTS ${database}.audit_log
(
    tenant          LowCardinality(String),
    pipeline        LowCardinality(String),
    event_id        String,
    event_time      DateTime64(3, 'UTC'),
    actor           LowCardinality(String) COMMENT 'who decided: aggregator, sink, operator, ...',
    action          LowCardinality(String) COMMENT 'ROUND_OPENED, UPDATE_ACCEPTED, UPDATE_REJECTED, VERSION_PUBLISHED, ...',
    round           Nullable(UInt64),
    version         Nullable(UInt64),
    node_id         LowCardinality(String) DEFAULT '',
    update_id       String DEFAULT '',
    reason          String DEFAULT '',
    details         Map(LowCardinality(String), String) DEFAULT map(),
    kafka_topic     LowCardinality(String) DEFAULT '',
    kafka_partition UInt32 DEFAULT 0,
    kafka_offset    UInt64 DEFAULT 0,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, pipeline, event_time, event_id)
TTL toDateTime(event_time) + INTERVAL ${retention_days_audit} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'AuditEvent records; dedup key (tenant, pipeline, event_time, event_id)';
