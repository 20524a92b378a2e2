-- stragglers: nodes that were expected in a round and missed it, or whose update came too late.
--
-- Answers: which nodes slow the rounds down? One row per (round, node, kind):
--   missed  the node was expected (selected by the round's START, or, when every node was selected,
--           heard from by a heartbeat while the round was open) but sent no update for the round
--           before it closed or was abandoned;
--   stale   its update was rejected as stale_round (the round had closed) or wrong_base_version
--           (trained from an older version);
--   late    its update was created after the round's deadline (the last one, extensions included).
-- Open rounds are not judged for 'missed'.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: round, node_id, kind, expected_as (selected, active, or '' when not expected),
--   deadline, closed_at (NULL while open), update_created_at (NULL when no update), reason_code
--   (for stale), last_heartbeat (the node's last heartbeat before the round closed; NULL if none)
--
-- Exact under redelivery: the tables are read FINAL or only tested for existence.
WITH
    windows AS
    (
        SELECT
            round,
            minIf(event_time, kind = 'START') AS opened_at,
            maxIf(deadline, kind IN ('START', 'EXTEND')) AS deadline,
            if(countIf(kind IN ('CLOSE', 'ABANDON')) > 0, minIf(event_time, kind IN ('CLOSE', 'ABANDON')), NULL) AS closed_at
        FROM rounds FINAL
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
        GROUP BY round
        HAVING countIf(kind = 'START') > 0
    ),
    selected AS
    (
        SELECT DISTINCT started_round AS round, arrayJoin(splitByChar(',', nodes)) AS node_id
        FROM
        (
            SELECT assumeNotNull(round) AS started_round, details['selectedNodes'] AS nodes
            FROM audit_log FINAL
            WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
              AND action = 'ROUND_STARTED' AND round IS NOT NULL AND details['selectedNodes'] != ''
        )
    ),
    beats AS
    (
        SELECT toString(node_id) AS node_id, event_time
        FROM heartbeats
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
    ),
    active AS
    (
        SELECT DISTINCT w.round AS round, b.node_id AS node_id
        FROM windows AS w CROSS JOIN beats AS b
        WHERE w.round NOT IN (SELECT round FROM selected)
          AND b.event_time >= w.opened_at AND b.event_time <= ifNull(w.closed_at, now64(3))
    ),
    expected AS
    (
        SELECT round, node_id, 'selected' AS expected_as FROM selected
        UNION ALL
        SELECT round, node_id, 'active' FROM active
    ),
    sent AS
    (
        SELECT round, toString(node_id) AS node_id, min(created_at) AS first_created_at, max(created_at) AS last_created_at
        FROM updates FINAL
        WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
        GROUP BY round, node_id
    ),
    stale AS
    (
        SELECT rejected_round AS round, node AS node_id, any(reason_code) AS code
        FROM
        (
            SELECT assumeNotNull(round) AS rejected_round, toString(node_id) AS node, reason_code
            FROM rejected_updates FINAL
            WHERE tenant = {tenant:String} AND pipeline = {pipeline:String}
              AND reason_code IN ('stale_round', 'wrong_base_version') AND round IS NOT NULL AND node_id != ''
        )
        GROUP BY rejected_round, node
    ),
    judged AS
    (
        SELECT e.round AS round, e.node_id AS node_id, 'missed' AS kind, e.expected_as AS expected_as,
               CAST(NULL AS Nullable(DateTime64(3, 'UTC'))) AS update_created_at, '' AS reason_code
        FROM expected AS e
        INNER JOIN windows AS w ON w.round = e.round
        LEFT JOIN sent AS u ON u.round = e.round AND u.node_id = e.node_id
        WHERE w.closed_at IS NOT NULL AND u.first_created_at IS NULL
        UNION ALL
        SELECT s.round, s.node_id, 'stale', '', CAST(NULL AS Nullable(DateTime64(3, 'UTC'))), s.code
        FROM stale AS s
        UNION ALL
        SELECT u.round, u.node_id, 'late', '', toNullable(u.last_created_at), ''
        FROM sent AS u
        INNER JOIN windows AS w ON w.round = u.round
        LEFT JOIN stale AS st ON st.round = u.round AND st.node_id = u.node_id
        WHERE u.last_created_at > w.deadline AND st.code IS NULL
    ),
    last_beats AS
    (
        SELECT w.round AS round, b.node_id AS node_id, max(b.event_time) AS last_heartbeat
        FROM windows AS w CROSS JOIN beats AS b
        WHERE b.event_time <= ifNull(w.closed_at, now64(3))
        GROUP BY w.round, b.node_id
    )
SELECT
    j.round AS round,
    j.node_id AS node_id,
    j.kind AS kind,
    if(j.kind = 'missed', j.expected_as, ifNull(x.expected_as, '')) AS expected_as,
    w.deadline AS deadline,
    w.closed_at AS closed_at,
    if(j.kind = 'stale', s.first_created_at, j.update_created_at) AS update_created_at,
    j.reason_code AS reason_code,
    hb.last_heartbeat AS last_heartbeat
FROM judged AS j
LEFT JOIN windows AS w ON w.round = j.round
LEFT JOIN (SELECT round, node_id, any(expected_as) AS expected_as FROM expected GROUP BY round, node_id) AS x
    ON x.round = j.round AND x.node_id = j.node_id
LEFT JOIN sent AS s ON s.round = j.round AND s.node_id = j.node_id
LEFT JOIN last_beats AS hb ON hb.round = j.round AND hb.node_id = j.node_id
ORDER BY round, node_id, kind
SETTINGS join_use_nulls = 1;
