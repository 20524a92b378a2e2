-- round_summary: one row per round, from the round_stats view, with how the round ended.
--
-- Answers: how many nodes took part in each round, how many updates were accepted and rejected, how
-- the nodes' loss and accuracy were spread (quantiles 0.1, 0.25, 0.5, 0.75, 0.9), and how long the
-- round took. Round 0 (the publication of the initial model, which no round produced) is left out.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: round, outcome (closed, abandoned or open), base_version, version (the version the round
--   produced; NULL when none), participants, updates, accepted, rejected, extensions, min_updates,
--   target_updates, loss_quantiles, accuracy_quantiles (over the finite values), loss_nonfinite,
--   accuracy_nonfinite (updates whose value was NaN, +Inf or -Inf, left out of the quantiles), opened_at, deadline, first_update,
--   last_update, closed_at, update_span_ms, duration_ms
--
-- Exact under redelivery: round_summary keeps duplicate-proof aggregates (uniqExact, min/max,
-- groupUniqArray); rounds is read FINAL.
SELECT
    s.round AS round,
    multiIf(o.abandoned > 0, 'abandoned', o.closed > 0, 'closed', 'open') AS outcome,
    s.base_version AS base_version,
    s.version AS version,
    s.participants AS participants,
    s.updates AS updates,
    s.accepted AS accepted,
    s.rejected AS rejected,
    o.extensions AS extensions,
    s.min_updates AS min_updates,
    s.target_updates AS target_updates,
    s.loss_quantiles AS loss_quantiles,
    s.accuracy_quantiles AS accuracy_quantiles,
    s.loss_nonfinite AS loss_nonfinite,
    s.accuracy_nonfinite AS accuracy_nonfinite,
    s.opened_at AS opened_at,
    s.deadline AS deadline,
    s.first_update AS first_update,
    s.last_update AS last_update,
    s.closed_at AS closed_at,
    s.update_span_ms AS update_span_ms,
    s.duration_ms AS duration_ms
FROM
(
    SELECT *
    FROM round_stats
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND round > 0
) AS s
LEFT JOIN
(
    SELECT round, countIf(kind = 'ABANDON') AS abandoned, countIf(kind = 'CLOSE') AS closed, countIf(kind = 'EXTEND') AS extensions
    FROM rounds FINAL
    WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    GROUP BY round
) AS o ON o.round = s.round
ORDER BY round;
