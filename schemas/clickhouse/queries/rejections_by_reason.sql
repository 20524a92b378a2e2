-- rejections_by_reason: why updates (and unreadable records) were rejected, one row per reason code.
--
-- Answers: what goes wrong most often, on which nodes, and since when? Codes are the aggregator's
-- (docs/protocol.md: stale_round, wrong_base_version, norm_bound, non_finite, duplicate, ...) and, for
-- records the sink could not read, the error code (CODEC_*).
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: reason_code, rejections, nodes (distinct known node ids), rounds (distinct rounds),
--   topics (source topics), first_at, last_at, example_reason (one reason text, for people)
--
-- Exact under redelivery: rejected_updates is read FINAL (one row per rejected Kafka record).
SELECT
    reason_code,
    count() AS rejections,
    uniqExactIf(node_id, node_id != '') AS nodes,
    uniqExactIf(assumeNotNull(round), round IS NOT NULL) AS rounds,
    arraySort(groupUniqArray(toString(kafka_topic))) AS topics,
    min(event_time) AS first_at,
    max(event_time) AS last_at,
    argMin(reason, event_time) AS example_reason
FROM rejected_updates FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
GROUP BY reason_code
ORDER BY rejections DESC, reason_code;
