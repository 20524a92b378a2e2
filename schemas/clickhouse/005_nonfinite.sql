-- Non-finite metrics (NaN, +Inf, -Inf) in the roll-ups, and each update counted once (issue 13, kind 2).
--
-- 1. round_stats keeps one value per update id. The sink writes an update twice (received, then its decided
--    status, same key), and both rows reach round_summary_updates_mv, whose groupUniqArray((update_id, value))
--    collapses the two only when the values are bit for bit equal. A status row whose metrics differed from the
--    first (the sink once rewrote +Inf as nan: JSON's null) added a second pair: three loss values for two
--    updates. The sink now rewrites the metrics exactly, and round_stats takes one pair per update id, so rows
--    already stored that way are counted once too.
-- 2. round_stats keeps every value as stored in loss_values / accuracy_values (NaN and ±Inf included) and takes
--    quantiles over the finite values only: one +Inf makes every interpolated quantile inf, one NaN makes them
--    meaningless. How many values were left out is in loss_nonfinite / accuracy_nonfinite.
-- 3. node_health_1m.metrics_avg averages finite values only (one NaN heartbeat metric would make the minute's
--    average NaN); metrics_max / metrics_min keep non-finite values (max ignores NaN unless nothing else was
--    reported, then it is NaN: the value as it was sent).
--
-- MODIFY QUERY swaps a view's query in place (no window without the view); every statement is idempotent.

ALTER TABLE ${database}.node_health_1m_mv MODIFY QUERY
SELECT
    tenant,
    pipeline,
    node_id,
    toDateTime(toStartOfMinute(event_time), 'UTC') AS minute,
    uniqExactState(kafka_partition, kafka_offset) AS events,
    uniqExactIfState(kafka_partition, kafka_offset, kind = 'HEARTBEAT') AS heartbeats,
    max(event_time) AS last_seen,
    max(round) AS last_round,
    avgMapState(mapFilter((k, v) -> isFinite(v), metrics)) AS metrics_avg,
    maxMap(metrics) AS metrics_max,
    minMap(metrics) AS metrics_min
FROM ${database}.telemetry_events
GROUP BY tenant, pipeline, node_id, minute;

-- Plain values per round (004_rollups.sql's round_stats, plus the non-finite handling of (2) above). Quantile
-- levels: 0.1, 0.25, 0.5, 0.75, 0.9, over the finite values (empty when there are none).
CREATE OR REPLACE VIEW ${database}.round_stats
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
    arraySort(x -> x.1, groupUniqArrayMerge(losses)) AS loss_pairs,
    arrayMap(x -> x.2, arrayFilter((x, i) -> i = 1 OR x.1 != loss_pairs[i - 1].1, loss_pairs, arrayEnumerate(loss_pairs))) AS loss_values,
    arrayFilter(x -> isFinite(x), loss_values) AS loss_finite,
    length(loss_values) - length(loss_finite) AS loss_nonfinite,
    if(empty(loss_finite), [], arrayReduce('quantiles(0.1, 0.25, 0.5, 0.75, 0.9)', loss_finite)) AS loss_quantiles,
    arraySort(x -> x.1, groupUniqArrayMerge(accuracies)) AS accuracy_pairs,
    arrayMap(x -> x.2, arrayFilter((x, i) -> i = 1 OR x.1 != accuracy_pairs[i - 1].1, accuracy_pairs, arrayEnumerate(accuracy_pairs))) AS accuracy_values,
    arrayFilter(x -> isFinite(x), accuracy_values) AS accuracy_finite,
    length(accuracy_values) - length(accuracy_finite) AS accuracy_nonfinite,
    if(empty(accuracy_finite), [], arrayReduce('quantiles(0.1, 0.25, 0.5, 0.75, 0.9)', accuracy_finite)) AS accuracy_quantiles,
    minMerge(opened_at) AS opened_at,
    maxMerge(deadline) AS deadline,
    minMerge(first_update) AS first_update,
    maxMerge(last_update) AS last_update,
    maxMerge(closed_at) AS closed_at,
    dateDiff('millisecond', first_update, last_update) AS update_span_ms,
    dateDiff('millisecond', opened_at, closed_at) AS duration_ms
FROM ${database}.round_summary
GROUP BY tenant, pipeline, round;
