-- node_processes: which process each node ran in, and that process's peak resident memory.
--
-- Answers: how much memory did the nodes use, counted once per process. Nodes run in separate processes in a
-- deployment, but the demo runs every node in one process: its heartbeats all report that one process's
-- memory, which a per-node column would repeat. Heartbeats name their process (labels pid and host); those
-- that do not (older nodes) are left out.
--
-- Parameters: {tenant:String}, {pipeline:String}
-- Columns: host, pid, nodes (the node ids the process reported for, sorted), peak_rss_mb, heartbeats
SELECT
    labels['host'] AS host,
    labels['pid'] AS pid,
    arraySort(groupUniqArray(toString(node_id))) AS nodes,
    max(metrics['rssMb']) AS peak_rss_mb,
    count() AS heartbeats
FROM heartbeats FINAL
WHERE tenant = {tenant:String} AND pipeline = {pipeline:String} AND labels['pid'] != '' AND mapContains(metrics, 'rssMb')
GROUP BY host, pid
ORDER BY host, pid;
