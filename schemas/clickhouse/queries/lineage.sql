-- lineage: which nodes and updates shaped version N, through its whole parent chain.
--
-- Answers: "which nodes' data shaped version N?" Version N and each of its ancestors (parent,
-- grandparent, ... down to the initial model), one row per contributing update, with the node, the
-- examples it counted and the weight the strategy gave it. A version without contributors (the
-- initial model) has one row with an empty node_id.
--
-- Parameters: {tenant:String}, {pipeline:String}, {version:UInt64}
-- Columns: version, depth (0 for N, 1 for its parent, ...), parent_version, round, strategy,
--   weights_sha256, version_created_at, total_examples, node_id, update_id, num_examples, weight
--
-- Exact under redelivery: model_versions and contributions are read FINAL.
WITH RECURSIVE chain AS
(
    SELECT version, parent_version, toUInt64(0) AS depth
    FROM model_versions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND version = {version:UInt64}
    UNION ALL
    SELECT v.version, v.parent_version, chain.depth + 1
    FROM
    (
        SELECT version, parent_version
        FROM model_versions FINAL
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    ) AS v
    INNER JOIN chain ON v.version = chain.parent_version
)
SELECT
    c.version AS version,
    c.depth AS depth,
    c.parent_version AS parent_version,
    v.round AS round,
    v.strategy AS strategy,
    v.weights_sha256 AS weights_sha256,
    v.created_at AS version_created_at,
    v.total_examples AS total_examples,
    toString(k.node_id) AS node_id,
    k.update_id AS update_id,
    k.num_examples AS num_examples,
    k.weight AS weight
FROM chain AS c
INNER JOIN
(
    SELECT version, round, toString(strategy) AS strategy, weights_sha256, created_at, total_examples
    FROM model_versions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
) AS v ON v.version = c.version
LEFT JOIN
(
    SELECT version, node_id, update_id, num_examples, weight
    FROM contributions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
) AS k ON k.version = c.version
ORDER BY version DESC, node_id, update_id
SETTINGS max_recursive_cte_evaluation_depth = 1000000;
