-- participation: what each node took part in, one row per node.
--
-- Answers: which nodes trained, how often were their updates accepted or rejected, and how many
-- examples did their accepted updates count?
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: node_id, updates_sent (distinct update ids seen on the updates topic), rounds_participated
--   (rounds it sent an update for), accepted (its update ids in some version's lineage), rejected
--   (its rejected records, whatever the reason), versions_contributed, examples_contributed (sum of
--   num_examples over its accepted updates), weight_total (sum of the weights the strategy gave
--   them), first_update, last_update (created_at of its first and last update; NULL if none)
--
-- Exact under redelivery: every source is read FINAL and counted with uniqExact over natural keys.
SELECT
    node_id,
    uniqExactIf(update_id, src = 'u') AS updates_sent,
    uniqExactIf(round, src = 'u') AS rounds_participated,
    uniqExactIf(update_id, src = 'c') AS accepted,
    uniqExactIf(update_id, src = 'r') AS rejected,
    uniqExactIf(version, src = 'c') AS versions_contributed,
    sumIf(num_examples, src = 'c') AS examples_contributed,
    sumIf(weight, src = 'c') AS weight_total,
    minIf(t, src = 'u') AS first_update,
    maxIf(t, src = 'u') AS last_update
FROM
(
    SELECT 'u' AS src, toString(node_id) AS node_id, update_id, round, toUInt64(0) AS version,
           num_examples, toFloat64(0) AS weight, toNullable(created_at) AS t
    FROM updates FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    UNION ALL
    SELECT 'c', toString(node_id), update_id, round, version, num_examples, weight, CAST(NULL AS Nullable(DateTime64(3, 'UTC')))
    FROM contributions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    UNION ALL
    SELECT 'r', toString(node_id),
           if(update_id != '', update_id, concat(kafka_topic, ':', toString(kafka_partition), ':', toString(kafka_offset))),
           ifNull(round, 0), toUInt64(0), toUInt64(0), toFloat64(0), CAST(NULL AS Nullable(DateTime64(3, 'UTC')))
    FROM rejected_updates FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND node_id != ''
)
GROUP BY node_id
ORDER BY node_id;
