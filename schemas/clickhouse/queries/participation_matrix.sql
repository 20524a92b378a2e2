-- participation_matrix: node x round, one row per (round, node) that sent anything.
--
-- Answers: who took part in which round, and with what outcome? (The training report draws it as a
-- heatmap.) A node with two updates in one round counts as accepted when either was.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: round, node_id, status (accepted, rejected, or received: no decision seen yet), updates,
--   examples (num_examples of its accepted updates), loss, accuracy (its reported training metrics,
--   averaged over its updates of the round; NULL when not reported), loss_nonfinite, accuracy_nonfinite
--
-- Non-finite metrics (docs/clickhouse.md, "Non-finite values"): the average is taken over the finite values, so
-- that one diverged update (loss +Inf) or a NaN does not hide the node's other updates of the round; when every
-- value the node reported is non-finite, the column holds one of them as it was stored (+Inf, -Inf or NaN).
-- loss_nonfinite / accuracy_nonfinite count the non-finite values of the (round, node).
--
-- Exact under redelivery: updates is read FINAL, so the decided status wins over 'received'.
SELECT
    round,
    node_id,
    multiIf(n_accepted > 0, 'accepted', n_rejected > 0, 'rejected', 'received') AS status,
    updates,
    examples,
    loss,
    accuracy,
    loss_nonfinite,
    accuracy_nonfinite
FROM
(
    SELECT
        round,
        toString(node_id) AS node_id,
        countIf(status = 'accepted') AS n_accepted,
        countIf(status = 'rejected') AS n_rejected,
        count() AS updates,
        sumIf(num_examples, status = 'accepted') AS examples,
        countIf(mapContains(metrics, 'loss') AND isFinite(metrics['loss'])) AS loss_finite,
        countIf(mapContains(metrics, 'loss') AND NOT isFinite(metrics['loss'])) AS loss_nonfinite,
        multiIf(loss_finite > 0, toNullable(avgIf(metrics['loss'], mapContains(metrics, 'loss') AND isFinite(metrics['loss']))),
                loss_nonfinite > 0, toNullable(anyIf(metrics['loss'], mapContains(metrics, 'loss'))), NULL) AS loss,
        countIf(mapContains(metrics, 'accuracy') AND isFinite(metrics['accuracy'])) AS accuracy_finite,
        countIf(mapContains(metrics, 'accuracy') AND NOT isFinite(metrics['accuracy'])) AS accuracy_nonfinite,
        multiIf(accuracy_finite > 0, toNullable(avgIf(metrics['accuracy'], mapContains(metrics, 'accuracy') AND isFinite(metrics['accuracy']))),
                accuracy_nonfinite > 0, toNullable(anyIf(metrics['accuracy'], mapContains(metrics, 'accuracy'))), NULL) AS accuracy
    FROM updates FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    GROUP BY round, node_id
)
ORDER BY round, node_id;
