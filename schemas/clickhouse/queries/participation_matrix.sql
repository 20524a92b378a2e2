-- participation_matrix: node x round, one row per (round, node) that sent anything.
--
-- Answers: who took part in which round, and with what outcome? (The training report draws it as a
-- heatmap.) A node with two updates in one round counts as accepted when either was.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: round, node_id, status (accepted, rejected, or received: no decision seen yet), updates,
--   examples (num_examples of its accepted updates), loss, accuracy (its reported training metrics,
--   averaged over its updates of the round; NULL when not reported)
--
-- Exact under redelivery: updates is read FINAL, so the decided status wins over 'received'.
SELECT
    round,
    node_id,
    multiIf(n_accepted > 0, 'accepted', n_rejected > 0, 'rejected', 'received') AS status,
    updates,
    examples,
    loss,
    accuracy
FROM
(
    SELECT
        round,
        toString(node_id) AS node_id,
        countIf(status = 'accepted') AS n_accepted,
        countIf(status = 'rejected') AS n_rejected,
        count() AS updates,
        sumIf(num_examples, status = 'accepted') AS examples,
        avgIf(metrics['loss'], mapContains(metrics, 'loss')) AS loss,
        avgIf(metrics['accuracy'], mapContains(metrics, 'accuracy')) AS accuracy
    FROM updates FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    GROUP BY round, node_id
)
ORDER BY round, node_id;
