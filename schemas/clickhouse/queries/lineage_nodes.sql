-- lineage_nodes: the nodes whose data shaped version N, one row per node.
--
-- Answers, in one query: "which nodes' data shaped version N?" Over N and all its ancestors: the
-- versions each node contributed to, its updates and the examples they counted.
--
-- Parameters: {tenant:String}, {pipeline:String}, {version:UInt64}
-- Columns: node_id, versions (sorted), updates, examples, first_version, last_version
--
-- Exact under redelivery: model_versions and contributions are read FINAL.
WITH RECURSIVE chain AS
(
    SELECT version, parent_version
    FROM model_versions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND version = {version:UInt64}
    UNION ALL
    SELECT v.version, v.parent_version
    FROM
    (
        SELECT version, parent_version
        FROM model_versions FINAL
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    ) AS v
    INNER JOIN chain ON v.version = chain.parent_version
)
SELECT
    toString(k.node_id) AS node_id,
    arraySort(groupUniqArray(k.version)) AS versions,
    uniqExact(k.update_id) AS updates,
    sum(k.num_examples) AS examples,
    min(k.version) AS first_version,
    max(k.version) AS last_version
FROM
(
    SELECT version, node_id, update_id, num_examples
    FROM contributions FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
) AS k
WHERE k.version IN (SELECT version FROM chain)
GROUP BY node_id
ORDER BY node_id
SETTINGS max_recursive_cte_evaluation_depth = 1000000;
