-- update_status: which of these updates now have a decision their row in `updates` does not show yet?
--
-- Answers, for the sink after each batch: of the given update ids, the updates (an id from one node: the row's key
-- is (round, node_id, update_id)) whose aggregator decision is known and differs from the status stored. Accepted
-- if an UPDATE_ACCEPTED names the update id and its node, else rejected by an UPDATE_REJECTED that does: a
-- `duplicate` too, so that an update refused as a duplicate is counted as rejected (a second copy of an accepted
-- update stays accepted: acceptance wins). The sink writes each returned row back into `updates` with that status.
--
-- Parameters: {tenant:String}, {pipeline:String}, {ids:Array(String)}
-- Columns: update_id, node_id, round, base_version, num_examples, num_params, payload_bytes, metrics,
--   training_ms, created_at (epoch ms), kafka_topic, kafka_partition, kafka_offset, status
--
-- Exact under redelivery: updates and audit_log are read FINAL.
SELECT
    u.update_id AS update_id, u.node_id AS node_id, u.round AS round, u.base_version AS base_version,
    u.num_examples AS num_examples, u.num_params AS num_params, u.payload_bytes AS payload_bytes,
    u.metrics AS metrics, u.training_ms AS training_ms, toUnixTimestamp64Milli(u.created_at) AS created_at,
    u.kafka_topic AS kafka_topic, u.kafka_partition AS kafka_partition, u.kafka_offset AS kafka_offset, d.status AS status
FROM (
    SELECT *, toString(node_id) AS nid FROM updates FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND update_id IN {ids:Array(String)}
) AS u
INNER JOIN (
    SELECT update_id, toString(node_id) AS nid, if(countIf(action = 'UPDATE_ACCEPTED') > 0, 'accepted', 'rejected') AS status
    FROM audit_log FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND update_id IN {ids:Array(String)}
      AND action IN ('UPDATE_ACCEPTED', 'UPDATE_REJECTED')
    GROUP BY update_id, nid
) AS d ON u.update_id = d.update_id AND u.nid = d.nid
WHERE u.status != d.status;
