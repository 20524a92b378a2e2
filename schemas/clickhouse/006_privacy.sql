-- Differential privacy of each model version (issue 14, item 4): the (epsilon, delta) guarantee of the version and
-- all before it, from the ModelVersion's `privacy` field (central DP-FedAvg, src/aggregator/strategies/dp-*.ts; the
-- RDP accountant, src/ml/privacy/rdp.ts). NULL for a version published without central DP and for rows written
-- before this migration. Shown in the compliance report (src/analytics/reports/compliance.ts). Idempotent.

ALTER TABLE ${database}.model_versions
    ADD COLUMN IF NOT EXISTS dp_epsilon Nullable(Float64) COMMENT 'epsilon (nats) of this version and all before it, at dp_delta; node-level; NULL without central DP, inf without noise' AFTER metrics,
    ADD COLUMN IF NOT EXISTS dp_delta Nullable(Float64) COMMENT 'the delta dp_epsilon is given at' AFTER dp_epsilon,
    ADD COLUMN IF NOT EXISTS dp_noise_multiplier Nullable(Float64) COMMENT 'z: noise std over the clipping norm' AFTER dp_delta,
    ADD COLUMN IF NOT EXISTS dp_sampling_rate Nullable(Float64) COMMENT 'q: nodes sampled per round over the population' AFTER dp_noise_multiplier,
    ADD COLUMN IF NOT EXISTS dp_steps Nullable(UInt64) COMMENT 'noised releases composed so far' AFTER dp_sampling_rate,
    ADD COLUMN IF NOT EXISTS dp_mechanism LowCardinality(String) DEFAULT '' COMMENT 'central-fixed, central-adaptive, or empty without central DP' AFTER dp_steps;
