-- data_contributed: examples each node contributed to each version, one row per (version, node).
--
-- Answers: whose data, and how much of it, went into each version? share is the node's fraction of
-- the version's examples; weight is the sum of the strategy's weights for its updates (FedAvg:
-- num_examples / total_examples, so weight = share).
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: version, round, node_id, updates, examples, weight, share
--
-- Exact under redelivery: contributions is read FINAL (one row per version and update id).
SELECT
    version,
    any(round) AS round,
    toString(node_id) AS node_id,
    count() AS updates,
    sum(num_examples) AS examples,
    sum(weight) AS weight,
    examples / sum(sum(num_examples)) OVER (PARTITION BY version) AS share
FROM contributions FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
GROUP BY version, node_id
ORDER BY version, node_id;
