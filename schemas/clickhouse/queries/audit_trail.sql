-- audit_trail: every decision the aggregator recorded, in time order.
--
-- Answers: what was decided, when, about which round, version, node and update, and why? Rounds
-- started, extended, closed and abandoned; updates accepted and rejected (code and reason);
-- versions published; the pipeline finished.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: event_time, action, actor, round, version, node_id, update_id, code (details['code'],
--   the rejection reason code), reason, details, event_id
--
-- Exact under redelivery: audit_log is read FINAL (one row per event id).
SELECT
    event_time,
    toString(action) AS action,
    toString(actor) AS actor,
    round,
    version,
    toString(node_id) AS node_id,
    update_id,
    details['code'] AS code,
    reason,
    details,
    event_id
FROM audit_log FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
ORDER BY event_time, event_id;
