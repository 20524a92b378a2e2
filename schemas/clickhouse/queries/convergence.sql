-- convergence: how the model converged, one row per published version.
--
-- Answers: did each round make the model better? Evaluation metrics come from the aggregator's
-- held-out set (NULL when the pipeline has none), training metrics are the example-weighted mean of
-- what the contributing nodes reported for their last local epoch.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: version, parent_version (NULL for the initial model), round, strategy, created_at,
--   contributors, total_examples, rejected, eval_accuracy, eval_loss, train_accuracy, train_loss,
--   round_ms (from the round's start to its close)
--
-- Exact under redelivery: model_versions is read FINAL (one row per version).
SELECT
    version,
    parent_version,
    round,
    strategy,
    created_at,
    num_contributors AS contributors,
    total_examples,
    rejected_count AS rejected,
    if(mapContains(metrics, 'eval_accuracy'), metrics['eval_accuracy'], NULL) AS eval_accuracy,
    if(mapContains(metrics, 'eval_loss'), metrics['eval_loss'], NULL) AS eval_loss,
    if(mapContains(metrics, 'train_accuracy'), metrics['train_accuracy'], NULL) AS train_accuracy,
    if(mapContains(metrics, 'train_loss'), metrics['train_loss'], NULL) AS train_loss,
    if(mapContains(metrics, 'roundMs'), metrics['roundMs'], NULL) AS round_ms
FROM model_versions FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
ORDER BY version;
