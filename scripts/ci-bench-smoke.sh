#!/usr/bin/env bash
# CI smoke of the benchmarks (issue 6): every section of `npm run bench` in its reduced form (--quick), on the
# benchmark's own broker (.kafka/bench). Missed performance goals never fail CI (a shared 2-core machine is no
# place to judge them); a section that errors, a figure that is missing, or a run over 10 minutes does.
set -uo pipefail
cd "$(dirname "$0")/.."

echo "ci: bench smoke (npm run bench -- --quick)"
start=$(date +%s)
timeout --signal=TERM --kill-after=30 600 npm run --silent bench -- --quick
status=$?
echo "ci: bench smoke took $(( $(date +%s) - start )) s (exit ${status})"
if [ $status -ne 0 ]; then
  [ $status -eq 124 ] && echo "ci: bench smoke timed out" >&2
  exit $status
fi

node -e '
const r = JSON.parse(require("fs").readFileSync("bench/results/latest.json", "utf8"));
const keys = ["aggregate.updateGbps", "aggregate.trafficGbps", "aggregate.memcpyGbps", "aggregate200k.updateGbps",
  "decision.p50Ms", "decision.p99Ms", "ingest.eventsPerSec", "ingest.freshnessP99Ms", "producer.ratioToJava",
  "scale.rssMb100", "scale.rssMb1000"];
const get = (k) => k.split(".").reduce((o, p) => (o == null ? undefined : o[p]), r);
const missing = keys.filter((k) => typeof get(k) !== "number" || !Number.isFinite(get(k)));
if (missing.length) { console.error("ci: bench figures missing: " + missing.join(", ")); process.exit(1); }
const flower = r.aggregate.flowerInplaceGbps;
console.log("ci: bench smoke figures: " + keys.map((k) => k + "=" + get(k)).join(" ") + " aggregate.flowerInplaceGbps=" + flower);
'
