-- Roll-ups kept current by materialized views: per-minute node health and per-round summaries.
--
-- Materialized views see every inserted block. A retried identical block (or one with the same
-- insert_deduplication_token) is dropped by their targets too, but records redelivered in another
-- block after a sink restart reach them again. So the roll-ups use aggregates that a duplicate
-- cannot change: uniqExact over natural keys for counts, min/max for times, and groupUniqArray over
-- (update_id, value) pairs for loss/accuracy distributions (quantiles are computed from that exact
-- set at query time). The one exception is metrics_avg in node_health_1m, which a redelivered
-- telemetry event counts twice; exact averages come from telemetry_events FINAL.

CREATE TABLE IF NOT EXISTS ${database}.node_health_1m
(
    tenant      LowCardinality(String),
    pipeline    LowCardinality(String),
    node_id     LowCardinality(String),
    minute      DateTime('UTC'),
    events      AggregateFunction(uniqExact, UInt32, UInt64) COMMENT 'telemetry records, by (kafka_partition, kafka_offset): uniqExactMerge(events)',
    heartbeats  AggregateFunction(uniqExact, UInt32, UInt64) COMMENT 'HEARTBEAT records: uniqExactMerge(heartbeats)',
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    last_round  SimpleAggregateFunction(max, Nullable(UInt64)),
    metrics_avg AggregateFunction(avgMap, Map(LowCardinality(String), Float64)) COMMENT 'avgMapMerge(metrics_avg); may count a redelivered event twice',
    metrics_max SimpleAggregateFunction(maxMap, Map(String, Float64)),
    metrics_min SimpleAggregateFunction(minMap, Map(String, Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, pipeline, node_id, minute)
TTL minute + INTERVAL ${retention_days_health} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'per node per minute health, filled by node_health_1m_mv; always GROUP BY and -Merge';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.node_health_1m_mv TO ${database}.node_health_1m
AS SELECT
    tenant,
    pipeline,
    node_id,
    toDateTime(toStartOfMinute(event_time), 'UTC') AS minute,
    uniqExactState(kafka_partition, kafka_offset) AS events,
    uniqExactIfState(kafka_partition, kafka_offset, kind = 'HEARTBEAT') AS heartbeats,
    max(event_time) AS last_seen,
    max(round) AS last_round,
    avgMapState(metrics) AS metrics_avg,
    maxMap(metrics) AS metrics_max,
    minMap(metrics) AS metrics_min
FROM ${database}.telemetry_events
GROUP BY tenant, pipeline, node_id, minute;

-- One logical row per (tenant, pipeline, round), fed by four views (updates, rejections,
-- contributions, round control, model versions). event_date only serves partitioning and TTL: a
-- round spanning midnight has two physical rows, so always GROUP BY round (or read round_stats).
CREATE TABLE IF NOT EXISTS ${database}.round_summary
(
    tenant         LowCardinality(String),
    pipeline       LowCardinality(String),
    round          UInt64,
    event_date     Date,
    participants   AggregateFunction(uniqExact, String) COMMENT 'nodes that sent an update',
    updates        AggregateFunction(uniqExact, String) COMMENT 'update ids received',
    accepted       AggregateFunction(uniqExact, String) COMMENT 'update ids that contributed to a version',
    rejected       AggregateFunction(uniqExact, String) COMMENT 'update ids (or Kafka records) rejected',
    losses         AggregateFunction(groupUniqArray, Tuple(String, Float64)) COMMENT '(update_id, metrics[loss])',
    accuracies     AggregateFunction(groupUniqArray, Tuple(String, Float64)) COMMENT '(update_id, metrics[accuracy])',
    first_update   AggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    last_update    AggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    opened_at      AggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    deadline       AggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    base_version   AggregateFunction(min, Nullable(UInt64)),
    min_updates    AggregateFunction(max, Nullable(UInt32)),
    target_updates AggregateFunction(max, Nullable(UInt32)),
    version        AggregateFunction(max, Nullable(UInt64)) COMMENT 'the version the round produced',
    closed_at      AggregateFunction(max, Nullable(DateTime64(3, 'UTC'))) COMMENT 'created_at of that version'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (tenant, pipeline, round, event_date)
TTL event_date + INTERVAL ${retention_days_lineage} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, ratio_of_defaults_for_sparse_serialization = 1
COMMENT 'per round aggregate states; read round_stats for plain values';

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.round_summary_updates_mv TO ${database}.round_summary
AS SELECT
    tenant,
    pipeline,
    round,
    toDate(created_at) AS event_date,
    uniqExactState(toString(node_id)) AS participants,
    uniqExactState(update_id) AS updates,
    groupUniqArrayIfState((update_id, metrics['loss']), mapContains(metrics, 'loss')) AS losses,
    groupUniqArrayIfState((update_id, metrics['accuracy']), mapContains(metrics, 'accuracy')) AS accuracies,
    minState(toNullable(created_at)) AS first_update,
    maxState(toNullable(created_at)) AS last_update
FROM ${database}.updates
GROUP BY tenant, pipeline, round, event_date;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.round_summary_rejections_mv TO ${database}.round_summary
AS SELECT
    tenant,
    pipeline,
    assumeNotNull(round) AS round,
    toDate(event_time) AS event_date,
    uniqExactState(if(update_id != '', update_id, concat(kafka_topic, ':', toString(kafka_partition), ':', toString(kafka_offset)))) AS rejected
FROM ${database}.rejected_updates
WHERE round IS NOT NULL
GROUP BY tenant, pipeline, round, event_date;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.round_summary_contributions_mv TO ${database}.round_summary
AS SELECT
    tenant,
    pipeline,
    round,
    toDate(created_at) AS event_date,
    uniqExactState(update_id) AS accepted
FROM ${database}.contributions
GROUP BY tenant, pipeline, round, event_date;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.round_summary_rounds_mv TO ${database}.round_summary
AS SELECT
    tenant,
    pipeline,
    round,
    toDate(event_time) AS event_date,
    minState(toNullable(event_time)) AS opened_at,
    maxState(toNullable(deadline)) AS deadline,
    minState(toNullable(base_version)) AS base_version,
    maxState(toNullable(min_updates)) AS min_updates,
    maxState(toNullable(target_updates)) AS target_updates
FROM ${database}.rounds
GROUP BY tenant, pipeline, round, event_date;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.round_summary_versions_mv TO ${database}.round_summary
AS SELECT
    tenant,
    pipeline,
    round,
    toDate(created_at) AS event_date,
    maxState(toNullable(version)) AS version,
    maxState(toNullable(created_at)) AS closed_at
FROM ${database}.model_versions
GROUP BY tenant, pipeline, round, event_date;

-- Plain values per round, for reports, analysts and BI tools. Quantile levels: 0.1, 0.25, 0.5,
-- 0.75, 0.9 (empty when no update reported the metric). Durations in milliseconds; NULL when a
-- bound is unknown (round never opened, or no version yet).
CREATE VIEW IF NOT EXISTS ${database}.round_stats
AS SELECT
    tenant,
    pipeline,
    round,
    minMerge(base_version) AS base_version,
    maxMerge(version) AS version,
    uniqExactMerge(participants) AS participants,
    uniqExactMerge(updates) AS updates,
    uniqExactMerge(accepted) AS accepted,
    uniqExactMerge(rejected) AS rejected,
    maxMerge(min_updates) AS min_updates,
    maxMerge(target_updates) AS target_updates,
    arrayMap(x -> x.2, groupUniqArrayMerge(losses)) AS loss_values,
    if(empty(loss_values), [], arrayReduce('quantiles(0.1, 0.25, 0.5, 0.75, 0.9)', loss_values)) AS loss_quantiles,
    arrayMap(x -> x.2, groupUniqArrayMerge(accuracies)) AS accuracy_values,
    if(empty(accuracy_values), [], arrayReduce('quantiles(0.1, 0.25, 0.5, 0.75, 0.9)', accuracy_values)) AS accuracy_quantiles,
    minMerge(opened_at) AS opened_at,
    maxMerge(deadline) AS deadline,
    minMerge(first_update) AS first_update,
    maxMerge(last_update) AS last_update,
    maxMerge(closed_at) AS closed_at,
    dateDiff('millisecond', first_update, last_update) AS update_span_ms,
    dateDiff('millisecond', opened_at, closed_at) AS duration_ms
FROM ${database}.round_summary
GROUP BY tenant, pipeline, round;
