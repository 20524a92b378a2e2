-- node_health: per node per minute, from the node_health_1m roll-up.
--
-- Answers: was each node alive (heartbeats), how busy was it (events), what did it report
-- (average and maximum of each metric: rssMb, uptimeS, loss, ...) and which round did it last mention?
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: node_id, minute, events, heartbeats, last_seen, last_round, metrics_avg, metrics_max, metrics_min
--
-- Exact under redelivery for events and heartbeats (uniqExact over Kafka coordinates) and the
-- max/min; metrics_avg may count a redelivered event twice (docs/clickhouse.md, "Roll-ups").
--
-- Non-finite metrics: metrics_avg averages the finite values only (one NaN would make the minute's average
-- NaN); metrics_max and metrics_min keep +Inf and -Inf, and NaN when nothing else was reported.
SELECT
    toString(node_id) AS node_id,
    minute,
    uniqExactMerge(events) AS events,
    uniqExactMerge(heartbeats) AS heartbeats,
    max(last_seen) AS last_seen,
    max(last_round) AS last_round,
    avgMapMerge(metrics_avg) AS metrics_avg,
    maxMap(metrics_max) AS metrics_max,
    minMap(metrics_min) AS metrics_min
FROM node_health_1m
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
GROUP BY node_id, minute
ORDER BY node_id, minute;
