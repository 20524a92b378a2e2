-- version_chain: the sha256 chain of model versions, one row per version.
--
-- Answers: does every version name a parent that exists, and does the weights_sha256 stored with
-- the version equal the one the aggregator announced in its VERSION_PUBLISHED audit event? (The
-- compliance report also recomputes each hash from the weights on the models topic.)
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: version, parent_version, round, created_at, weights_sha256, parent_sha256 (NULL when the
--   parent is missing or there is none), published_sha256 (from the audit log; '' if no event),
--   parent_ok (1 when the parent exists, or it is the initial model), audit_ok (1 when the two hashes
--   are equal), kafka_topic, kafka_partition, kafka_offset (where the version was read)
--
-- Exact under redelivery: model_versions and audit_log are read FINAL.
SELECT
    v.version AS version,
    v.parent_version AS parent_version,
    v.round AS round,
    v.created_at AS created_at,
    v.weights_sha256 AS weights_sha256,
    if(p.version IS NULL, NULL, p.weights_sha256) AS parent_sha256,
    ifNull(a.published_sha256, '') AS published_sha256,
    toUInt8(v.parent_version IS NULL OR p.version IS NOT NULL) AS parent_ok,
    toUInt8(a.published_sha256 IS NOT NULL AND a.published_sha256 = v.weights_sha256) AS audit_ok,
    toString(v.kafka_topic) AS kafka_topic,
    v.kafka_partition AS kafka_partition,
    v.kafka_offset AS kafka_offset
FROM
(
    SELECT version, parent_version, round, created_at, weights_sha256, kafka_topic, kafka_partition, kafka_offset
    FROM model_versions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
) AS v
LEFT JOIN
(
    SELECT version, weights_sha256
    FROM model_versions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
) AS p ON p.version = v.parent_version
LEFT JOIN
(
    SELECT published_version AS version, argMax(sha, event_time) AS published_sha256
    FROM
    (
        SELECT assumeNotNull(version) AS published_version, details['weightsSha256'] AS sha, event_time
        FROM audit_log FINAL
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND action = 'VERSION_PUBLISHED' AND version IS NOT NULL
    )
    GROUP BY published_version
) AS a ON a.version = v.version
ORDER BY version
SETTINGS join_use_nulls = 1;
