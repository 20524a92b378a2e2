-- privacy: the differential-privacy guarantee of each model version (central DP-FedAvg).
--
-- Answers: "what (epsilon, delta) does version N carry?" One row per version, oldest first: epsilon is that of the
-- version and all before it together (the RDP accountant composes every noised release), node-level, at delta.
-- dp_mechanism is empty and the dp_* columns NULL for versions published without central DP; dp_epsilon is inf when
-- the noise multiplier is 0 (no finite guarantee). docs/strategies.md says what it means.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: version, round, strategy, dp_mechanism, dp_epsilon, dp_delta, dp_noise_multiplier, dp_sampling_rate,
--   dp_steps, clipping_norm (the metric dp_clipping_norm: the norm the round clipped with), created_at
--
-- Exact under redelivery: model_versions is read FINAL.
SELECT
    version,
    round,
    toString(strategy) AS strategy,
    toString(dp_mechanism) AS dp_mechanism,
    dp_epsilon,
    dp_delta,
    dp_noise_multiplier,
    dp_sampling_rate,
    dp_steps,
    if(mapContains(metrics, 'dp_clipping_norm'), metrics['dp_clipping_norm'], NULL) AS clipping_norm,
    created_at
FROM model_versions FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
ORDER BY version;
